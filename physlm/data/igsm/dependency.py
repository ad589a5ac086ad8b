"""The dependency graph of an iGSM problem: what each parameter is computed from.

Part 2.1 (Sec. 2.1, "dependency graph"): a DAG over the parameters plus a random-number node.
Each problem sentence states one instance parameter as

* a random constant ("equals 5"),
* one other parameter, the sum of several, or the difference of two (*direct* dependencies on
  instance parameters, *instance* dependencies on abstract ones),
* optionally combined with a random constant: "5 more than ..." or "5 times as much as ...";

with at most `max_operands` quantities per sentence (official max_param = 4, the constant
counted). Abstract parameters depend implicitly on the structure (`Structure.abstract_terms`).
All arithmetic is modulo `mod` (the paper: 23); constants are uniform in 0..mod-1, those of a
multiplication in 1..mod-1 (official ``Num``).

Operations (Part 2.1 Sec. 2.2, official ``op_num``): a parameter with in-degree g (the random
node counted) costs max(1, g - 1) binary operations; a problem's op is the sum over the
parameters the question needs (the shortest solution). Sampling here is our own: instance
parameters are defined in a random order, each from parameters already defined (so the graph is
acyclic by construction), and `physlm.data.igsm.generator` keeps a question whose op is
the target. The official generator instead designs the necessary part first; the definitions above
are the paper's, the sampling distribution of graph shapes is not.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cached_property

from physlm.data.igsm.structure import Param, Structure

COMBINES = ("sum", "diff")
CONST_OPS = ("add", "mul")


@dataclass(frozen=True)
class Formula:
    """How an instance parameter is stated: ``const`` (or None), ``const_op`` ("add", "mul" or
    None when there is no constant or nothing else), ``operands`` and ``combine`` ("sum" of
    them, or "diff" of exactly two)."""

    const: int | None
    const_op: str | None
    operands: tuple[Param, ...]
    combine: str = "sum"

    def __post_init__(self) -> None:
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {self.combine!r}")
        if self.combine == "diff" and len(self.operands) != 2:
            raise ValueError("a difference needs exactly two operands")
        if not self.operands and (self.const is None or self.const_op is not None):
            raise ValueError("a formula without operands is a bare constant")
        if self.operands and (self.const is None) != (self.const_op is None):
            raise ValueError("const and const_op go together")
        if self.const_op is not None and self.const_op not in CONST_OPS:
            raise ValueError(f"const_op must be one of {CONST_OPS}, got {self.const_op!r}")

    @property
    def in_degree(self) -> int:
        """Incoming edges in the dependency graph, the random-constant node counted."""
        return len(self.operands) + (self.const is not None)


def ops_for(in_degree: int) -> int:
    """Binary operations to compute a parameter of this in-degree (official ``op_num``)."""
    return max(1, in_degree - 1)


class DependencyGraph:
    """The formulas of one problem's instance parameters on a structure graph, mod `mod`."""

    def __init__(self, structure: Structure, formulas: dict[Param, Formula], mod: int):
        missing = set(structure.instance_params) - set(formulas)
        if missing:
            raise ValueError(f"every instance parameter needs a formula, missing {sorted(missing)}")
        self.structure, self.formulas, self.mod = structure, formulas, mod

    def preds(self, p: Param) -> tuple[Param, ...]:
        """The parameters p is computed from (the random constant left out)."""
        return self._preds[p]

    @cached_property
    def _preds(self) -> dict[Param, tuple[Param, ...]]:
        out: dict[Param, tuple[Param, ...]] = {}
        for p in self.structure.all_params:
            if p.kind == 0:
                out[p] = self.formulas[p].operands
                continue
            ps: list[Param] = []
            for a, b in self.structure.abstract_terms(p):
                ps.append(a)
                if b is not None:
                    ps.append(b)
            out[p] = tuple(ps)
        return out

    def in_degree(self, p: Param) -> int:
        return self.formulas[p].in_degree if p.kind == 0 else len(self.preds(p))

    def ops(self, p: Param) -> int:
        return ops_for(self.in_degree(p))

    @cached_property
    def topological(self) -> tuple[Param, ...]:
        """All parameters in one topological order (ValueError if the graph has a cycle)."""
        params = self.structure.all_params
        indeg = {p: len(self.preds(p)) for p in params}
        succ: dict[Param, list[Param]] = {p: [] for p in params}
        for p in params:
            for q in self.preds(p):
                succ[q].append(p)
        ready = [p for p in params if indeg[p] == 0]
        order: list[Param] = []
        while ready:
            p = ready.pop()
            order.append(p)
            for s in succ[p]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
        if len(order) != len(params):
            raise ValueError("the dependency graph has a cycle")
        return tuple(order)

    @cached_property
    def values(self) -> dict[Param, int]:
        """Every parameter's value mod `mod`."""
        m, v = self.mod, {}
        for p in self.topological:
            if p.kind == 1:
                total = 0
                for a, b in self.structure.abstract_terms(p):
                    total += v[a] * (v[b] if b is not None else 1)
                v[p] = total % m
                continue
            f = self.formulas[p]
            if not f.operands:
                v[p] = f.const % m
                continue
            xs = [v[x] for x in f.operands]
            inner = xs[0] - xs[1] if f.combine == "diff" else sum(xs)
            if f.const_op == "add":
                inner = f.const + inner
            elif f.const_op == "mul":
                inner = f.const * inner
            v[p] = inner % m
        return v

    def necessary(self, q: Param) -> frozenset[Param]:
        """The parameters the question about q needs: q and all its ancestors."""
        seen, stack = {q}, [q]
        while stack:
            for x in self.preds(stack.pop()):
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
        return frozenset(seen)

    def op_count(self, q: Param) -> int:
        """Operations of the shortest solution for the question about q."""
        return sum(self.ops(p) for p in self.necessary(q))

    @cached_property
    def all_op_counts(self) -> dict[Param, int]:
        """op_count of every parameter, in one pass over ancestor sets."""
        anc: dict[Param, frozenset[Param]] = {}
        for p in self.topological:
            s = {p}
            for x in self.preds(p):
                s |= anc[x]
            anc[p] = frozenset(s)
        ops = {p: self.ops(p) for p in anc}
        return {p: sum(ops[x] for x in a) for p, a in anc.items()}


def _pick_weighted(rng: random.Random, pool: list[Param], weights: list[float], n: int):
    pool, weights, out = list(pool), list(weights), []
    for _ in range(n):
        t = rng.choices(range(len(pool)), weights=weights)[0]
        out.append(pool.pop(t))
        weights.pop(t)
    return out


def sample_formulas(
    rng: random.Random,
    structure: Structure,
    mod: int,
    max_operands: int,
    density: float,
    abstract_bias: float,
) -> dict[Param, Formula]:
    """Formulas for every instance parameter, each over parameters defined before it.

    `density` in [0, 1] raises the number of operands and lowers the share of bare constants;
    `abstract_bias` multiplies the odds of quoting an abstract parameter (official p1 bias).
    """
    order = list(structure.instance_params)
    rng.shuffle(order)
    waiting: dict[Param, int] = {}
    needed_by: dict[Param, list[Param]] = {}
    for a in structure.abstract_params:
        ps = []
        for x, y in structure.abstract_terms(a):
            ps.append(x)
            if y is not None:
                ps.append(y)
        waiting[a] = len(ps)
        for x in ps:
            needed_by.setdefault(x, []).append(a)
    available: list[Param] = []
    formulas: dict[Param, Formula] = {}
    p_const = 0.5 * (1.0 - density)

    def define(p: Param) -> None:
        available.append(p)
        for a in needed_by.get(p, ()):
            waiting[a] -= 1
            if waiting[a] == 0:
                define(a)

    for p in order:
        if not available or rng.random() < p_const:
            formulas[p] = Formula(rng.randrange(mod), None, ())
        else:
            n_max = min(max_operands, len(available))
            n = 1 + sum(rng.random() < density for _ in range(n_max - 1))
            weights = [abstract_bias if x.kind == 1 else 1.0 for x in available]
            operands = tuple(_pick_weighted(rng, available, weights, n))
            combine = "diff" if n == 2 and rng.random() < 0.5 else "sum"
            const = const_op = None
            if n < max_operands and rng.random() < 0.5:
                const_op = rng.choice(CONST_OPS)
                const = rng.randrange(1, mod) if const_op == "mul" else rng.randrange(mod)
            formulas[p] = Formula(const, const_op, operands, combine)
        define(p)
    return formulas


def abstract_bias(rng: random.Random) -> float:
    """exp(|N(0, 1)|): the official generator's random preference for abstract parameters."""
    return math.exp(abs(rng.gauss(0.0, 1.0)))
