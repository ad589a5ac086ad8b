"""Brevo: reasoning breadth (Part 4.1 Sec. 3 and App. A.2), our own generator and checker.

An instance is a random DAG over n named nodes and a query node; the answer lists every node the
query depends on (its ancestors, reached through parent links) in an order where each node comes
after all of its parents, the query last. The model must search the graph in its head: no chain
of thought, the answer is written at once. Construction (the paper's generator, sizes shrunk):

* n is drawn from {3, ..., N} with P(n) proportional to 1 / (n + sqrt(N)) in training (small
  graphs are common, "easy first"), and n = N at test.
* Node names are a random n-subset of N single-token names (Brevo1).
* The first `leaves` nodes, leaves ~ U{1, ..., floor((n - 1) / 4) + 1}, have no parents. Each later
  node picks U{1, ..., min(k, 4)} parents among the k earlier nodes that still have fewer than 4
  children, so every node has at most 4 parents and 4 children.
* The query is the last node generated (where the official code's quarter-range draw lands).
* The answer order is Kahn's algorithm on the reversed graph from the query with random
  tie-breaking, reversed: dependencies first.

A sample is ``<bos> (parent child)* <query> q <answer> a_1 ... a_m <eos>`` with the edges in a
random order, one sample per row; the loss counts from the answer marker on (on the answer and
``<eos>``). Every row of a batch is padded to the batch's longest sample, so a step costs what its
graphs need. Instance r of step s is drawn from ``(seed, s, r)``: ``batch(step)`` is a pure
function of (seed, step), and every architecture trained with one seed sees identical data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from physlm.data import check_ints, config_from, easy_first_sizes, padded_batch
from physlm.data.vocab import Vocab

VERSION = "brevo-1"
QUERY, ANSWER = "<query>", "<answer>"
MAX_DEGREE = 4  # parents and children per node (Part 4.1 App. A.2)
_TEST_STREAM = 1 << 30  # test instances come from another part of the seed space than training
size_weights = easy_first_sizes  # P(n) of the training graphs, n = 3..N


@dataclass(frozen=True)
class BrevoInstance:
    """One DAG with its query: `parents[i]` lists node i's parents (indices into `names`)."""

    names: tuple[int, ...]  # node name ids, 0..N-1, in generation order
    parents: tuple[tuple[int, ...], ...]
    edges: tuple[tuple[int, int], ...]  # (parent, child) node indices in the order written
    query: int
    answer: tuple[int, ...]  # node indices, dependencies first, the query last

    @property
    def n(self) -> int:
        return len(self.names)


def draw_instance(rng: np.random.Generator, n: int, max_nodes: int) -> BrevoInstance:
    """A Brevo DAG of n nodes whose names come from `max_nodes` (see the module docstring)."""
    if not 3 <= n <= max_nodes:
        raise ValueError(f"n must be in 3..max_nodes={max_nodes}, got {n}")
    names = tuple(int(x) for x in rng.choice(max_nodes, size=n, replace=False))
    leaves = int(rng.integers(1, (n - 1) // 4 + 2))
    children = [0] * n
    parents: list[tuple[int, ...]] = [()] * n
    for i in range(leaves, n):
        avail = [j for j in range(i) if children[j] < MAX_DEGREE]
        k = int(rng.integers(1, min(len(avail), MAX_DEGREE) + 1))
        chosen = sorted(int(j) for j in rng.choice(avail, size=k, replace=False))
        for j in chosen:
            children[j] += 1
        parents[i] = tuple(chosen)
    edges = [(p, c) for c in range(n) for p in parents[c]]
    order = rng.permutation(len(edges))
    query = n - 1
    return BrevoInstance(
        names=names,
        parents=tuple(parents),
        edges=tuple(edges[i] for i in order),
        query=query,
        answer=_answer_order(rng, parents, query),
    )


def _answer_order(rng: np.random.Generator, parents: list[tuple[int, ...]], query: int) -> tuple:
    """Ancestors of `query` and itself, dependencies first: reversed Kahn from the query."""
    need = {query}
    stack = [query]
    while stack:
        for p in parents[stack.pop()]:
            if p not in need:
                need.add(p)
                stack.append(p)
    waiting = {v: 0 for v in need}  # children inside `need` not yet emitted
    for v in need:
        for p in parents[v]:
            waiting[p] += 1
    ready, out = [query], []
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        out.append(v)
        for p in parents[v]:
            waiting[p] -= 1
            if waiting[p] == 0:
                ready.append(p)
    return tuple(reversed(out))


def brevo_vocab(max_nodes: int) -> Vocab:
    """Specials, the query and answer markers, then the N node names ``n0 .. n{N-1}``."""
    return Vocab([f"n{i}" for i in range(max_nodes)], extra_specials=(QUERY, ANSWER))


def max_sample_len(max_nodes: int) -> int:
    """Tokens of the longest possible sample: every node after the first with 4 parents."""
    return 1 + 2 * MAX_DEGREE * (max_nodes - 1) + 3 + max_nodes + 1


@dataclass(frozen=True)
class BrevoConfig:
    """max_nodes: N (graphs of 3..N nodes in training); batch_size instances per step."""

    max_nodes: int = 10
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        check_ints(self, (("max_nodes", 3), ("batch_size", 1), ("seed", 0)))


class BrevoStream:
    """Brevo samples as a `physlm.data.BatchSource` (see the module docstring)."""

    def __init__(self, config: BrevoConfig | None = None, **kwargs) -> None:
        self.config = config_from(BrevoConfig, config, kwargs)
        self.vocab = brevo_vocab(self.config.max_nodes)
        self.vocab_size = len(self.vocab)
        self.block_size = max_sample_len(self.config.max_nodes)
        self._weights = easy_first_sizes(self.config.max_nodes)
        self._node0 = self.vocab.id("n0")

    def spec(self) -> dict:
        return {"kind": "brevo", "version": VERSION, **asdict(self.config)}

    def instance(self, step: int, row: int, n: int | None = None) -> BrevoInstance:
        """Instance `row` of training step `step` (n drawn), or of a test set (n given)."""
        rng = np.random.default_rng([self.config.seed, step, row])
        if n is None:
            n = 3 + int(rng.choice(len(self._weights), p=self._weights))
        return draw_instance(rng, n, self.config.max_nodes)

    def test_set(self, n: int, count: int, seed: int = 0) -> list[BrevoInstance]:
        """`count` held-out instances of exactly n nodes (drawn apart from every training step)."""
        return [self.instance(_TEST_STREAM + seed, i, n) for i in range(count)]

    def prompt(self, inst: BrevoInstance) -> list[int]:
        """``<bos>``, the edges, ``<query> q <answer>``: what the model continues."""
        name = [self._node0 + x for x in inst.names]
        ids = [self.vocab.bos_id]
        for p, c in inst.edges:
            ids += [name[p], name[c]]
        return ids + [self.vocab.id(QUERY), name[inst.query], self.vocab.id(ANSWER)]

    def answer(self, inst: BrevoInstance) -> list[int]:
        return [self._node0 + inst.names[v] for v in inst.answer] + [self.vocab.eos_id]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        samples = []
        for r in range(self.config.batch_size):
            inst = self.instance(step, r)
            p, a = self.prompt(inst), self.answer(inst)
            samples.append((p + a, [False] * len(p) + [True] * len(a)))  # the answer and <eos>
        return padded_batch(samples, self.vocab.pad_id)


def check_answer(prompt: list[int], reply: list[int], vocab: Vocab) -> bool:
    """Whether `reply` (tokens after ``<answer>``, up to ``<eos>``) is a right answer to `prompt`.

    Independent of the generator: it reads the graph back from the prompt's tokens, finds the
    query's ancestors by its own search and accepts any order in which every listed node's
    parents come before it, each needed node exactly once, the query last, then ``<eos>``.
    """
    q_at = prompt.index(vocab.id(QUERY))
    pairs = prompt[1:q_at]
    query = prompt[q_at + 1]
    par: dict[int, set[int]] = {}
    for p, c in zip(pairs[0::2], pairs[1::2], strict=True):
        par.setdefault(c, set()).add(p)
    need, frontier = {query}, [query]
    while frontier:
        for p in par.get(frontier.pop(), ()):
            if p not in need:
                need.add(p)
                frontier.append(p)
    if vocab.eos_id not in reply:
        return False
    listed = reply[: reply.index(vocab.eos_id)]
    if len(listed) != len(need) or set(listed) != need or listed[-1] != query:
        return False
    seen: set[int] = set()
    for v in listed:
        if not par.get(v, set()) <= seen:
            return False
        seen.add(v)
    return True
