"""The structure graph of an iGSM problem: layers of items, edges between adjacent layers.

Part 2.1 (Sec. 2.1, "structure graph"): a problem picks d consecutive categories of one
hierarchy, l_i items in layer i, and edges between items of adjacent layers. Each edge
(A in layer i, B in layer i+1) is an *instance parameter*, "the number of each A's B". An
*abstract parameter* (A, C), with C a category below A's layer, is "the number of A's C": all
C-items reachable from A, i.e. the sum over A's children X of A's X times X's C (or of A's X
alone when C is X's own category). Abstract parameters are never stated; they follow from the
structure (the paper's implicit dependencies).

Sizes follow the official generator (``Graph`` and ``IdGen_PT.gen_param_light``): depth d and
the width range [w0, w1] are drawn by a softmax around the relative difficulty
(op - 1) / (max_edge - 1); the edge count is the smaller of two uniform draws from
[(d - 1) w0, max_edge]; every lower item has at least one parent; layers grow from w0 toward w1
until the edges fit. Departure: an abstract parameter (A, C) exists only if some C-item is
reachable from A (an empty sum is never asked for); the official lists all (A, C) pairs. The
official vocabulary also marks some items as unique (a sentence "A has B" then fixes the count to
1); our nouns are all countable, so every instance parameter has a formula.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from physlm.data.igsm.names import NameWorld


class Param(NamedTuple):
    """kind 0: instance parameter, edge (layer i, item j) -> (layer i+1, item k);
    kind 1: abstract parameter, item (i, j) and the category of layer k > i."""

    kind: int
    i: int
    j: int
    k: int


@dataclass(frozen=True)
class Structure:
    """One problem's structure graph. ``items[i][j]`` is the name of item j of layer i,
    ``categories[i]`` the name of layer i's category, ``children[i][j]`` the sorted indices of
    item (i, j)'s children in layer i + 1."""

    hierarchy: int
    top: int  # the first layer's index in its hierarchy
    categories: tuple[str, ...]
    items: tuple[tuple[str, ...], ...]
    children: tuple[tuple[tuple[int, ...], ...], ...]
    abstract: bool = True  # False: no abstract parameters (a small world's departure)

    @property
    def depth(self) -> int:
        return len(self.items)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(layer) for layer in self.items)

    @cached_property
    def instance_params(self) -> tuple[Param, ...]:
        return tuple(
            Param(0, i, j, k)
            for i in range(self.depth - 1)
            for j, kids in enumerate(self.children[i])
            for k in kids
        )

    @property
    def n_edges(self) -> int:
        return len(self.instance_params)

    @cached_property
    def reach(self) -> dict[tuple[int, int], frozenset[int]]:
        """(i, j) -> the layers below i that hold an item reachable from item (i, j)."""
        out: dict[tuple[int, int], frozenset[int]] = {}
        for i in range(self.depth - 1, -1, -1):
            for j in range(self.sizes[i]):
                kids = self.children[i][j] if i < self.depth - 1 else ()
                layers: set[int] = {i + 1} if kids else set()
                for x in kids:
                    layers |= out[(i + 1, x)]
                out[(i, j)] = frozenset(layers)
        return out

    @cached_property
    def abstract_params(self) -> tuple[Param, ...]:
        if not self.abstract:
            return ()
        return tuple(
            Param(1, i, j, k)
            for i in range(self.depth - 1)
            for j in range(self.sizes[i])
            for k in sorted(self.reach[(i, j)])
        )

    @cached_property
    def all_params(self) -> tuple[Param, ...]:
        return self.instance_params + self.abstract_params

    def abstract_terms(self, p: Param) -> tuple[tuple[Param, Param | None], ...]:
        """The summands of abstract parameter p: (A's X, X's C) per child X that reaches C,
        with None for the second factor when X is itself a C-item (Part 2.1 Sec. 2.1)."""
        if p.kind != 1:
            raise ValueError(f"abstract_terms needs an abstract parameter, got {p}")
        return self._terms[p]

    @cached_property
    def _terms(self) -> dict[Param, tuple[tuple[Param, Param | None], ...]]:
        out = {}
        for p in self.abstract_params:
            terms: list[tuple[Param, Param | None]] = []
            for x in self.children[p.i][p.j]:
                if p.k == p.i + 1:
                    terms.append((Param(0, p.i, p.j, x), None))
                elif p.k in self.reach[(p.i + 1, x)]:
                    terms.append((Param(0, p.i, p.j, x), Param(1, p.i + 1, x, p.k)))
            out[p] = tuple(terms)
        return out

    def names(self, p: Param) -> tuple[str, str]:
        """(owner, owned) nouns of p: item A and item B (instance) or category C (abstract)."""
        owner = self.items[p.i][p.j]
        owned = self.items[p.i + 1][p.k] if p.kind == 0 else self.categories[p.k]
        return owner, owned


def _softmax_choice(rng: random.Random, values: list[int], rel: float) -> int:
    """Draw from `values` with weights exp(-(rel - pos)^2), positions spread over [0.2, 0.8]
    (the official generator's three positions 0.2, 0.5, 0.8 for the values 2, 3, 4)."""
    if len(values) == 1:
        return values[0]
    pos = [0.2 + 0.6 * t / (len(values) - 1) for t in range(len(values))]
    w = [math.exp(-((rel - p) ** 2)) for p in pos]
    return rng.choices(values, weights=w)[0]


def sample_structure(
    rng: random.Random,
    op: int,
    max_edge: int,
    depth: tuple[int, int],
    width: tuple[int, int],
    world: NameWorld,
    abstract: bool = True,
) -> Structure:
    """A random structure graph for a problem of `op` operations (see the module docstring);
    without `abstract` parameters if asked (then only instance parameters exist)."""
    rel = (op - 1) / (max_edge - 1)
    d = _softmax_choice(rng, list(range(depth[0], depth[1] + 1)), rel)
    widths = list(range(width[0], width[1] + 1))
    t0, t1 = _softmax_choice(rng, widths, rel), _softmax_choice(rng, widths, rel)
    w0, w1 = min(t0, t1), max(t0, t1)
    grow = rng.random()
    lo_e = (d - 1) * w0
    e = min(rng.randint(lo_e, max_edge), rng.randint(lo_e, max_edge))
    e = min(max(e, lo_e), (d - 1) * w1 * w1)

    sizes = [w0] * d
    while True:
        capacity = sum(sizes[i] * sizes[i + 1] for i in range(d - 1))
        lowest = sum(sizes[1:])  # every lower item needs one parent
        growable = [i for i in range(d) if sizes[i] < w1]
        if capacity < e:
            sizes[rng.choice(growable)] += 1
        elif lowest == e or not growable or rng.random() >= grow:
            break
        else:
            sizes[rng.choice(growable)] += 1

    edges: set[tuple[int, int, int]] = set()
    for i in range(d - 1):
        for k in range(sizes[i + 1]):
            edges.add((i, rng.randrange(sizes[i]), k))
    free = [
        (i, j, k)
        for i in range(d - 1)
        for j in range(sizes[i])
        for k in range(sizes[i + 1])
        if (i, j, k) not in edges
    ]
    edges.update(rng.sample(free, e - len(edges)))

    h = rng.randrange(world.config.hierarchies)
    top = rng.randint(0, world.config.layers - d)
    items = tuple(tuple(rng.sample(world.items[h][top + i], sizes[i])) for i in range(d))
    children = tuple(
        tuple(tuple(k for k in range(sizes[i + 1]) if (i, j, k) in edges) for j in range(sizes[i]))
        for i in range(d - 1)
    )
    return Structure(
        h, top, tuple(world.categories[h][top : top + d]), items, children, abstract
    )
