"""Labels for Part 2.1's V-probing: what a model could know about each parameter, when.

Part 2.1 (Sec. 4, official ``Problem.lora_label`` / ``lora_label2``), over every parameter of
the problem (stated instance parameters and abstract ones) and at every probe point t: t = 0 is
the end of the question (before any solution token), t = s the end of solution sentence s.

* nece(A): A is needed to answer the question (the same at every t),
* dep(A, B): A depends on B, directly or through other parameters (the transitive closure),
* known(A) at t: A was computed by sentences 1..t,
* can_next(A) at t: A is not known yet but every parameter it depends on is,
* nece_next(A) at t: can_next(A) and nece(A),
* value(A) at t: A's value once known, `mod` (a class of its own) before.

Departure: the official lists also the instance parameters of item pairs without an edge (never
stated, never computable); here only the problem's own parameters are labelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physlm.data.igsm.generator import Problem
from physlm.data.igsm.structure import Param


@dataclass(frozen=True)
class ProbeLabels:
    params: tuple[Param, ...]
    nece: np.ndarray  # [P] bool
    dep: np.ndarray  # [P, P] bool: dep[a, b] = A depends on B
    known: np.ndarray  # [S + 1, P] bool
    can_next: np.ndarray  # [S + 1, P] bool
    nece_next: np.ndarray  # [S + 1, P] bool
    value: np.ndarray  # [S + 1, P] int, mod = unknown


def probe_labels(problem: Problem) -> ProbeLabels:
    graph = problem.graph
    params = graph.structure.all_params
    index = {p: t for t, p in enumerate(params)}
    n, order = len(params), problem.solution.params
    nece = np.array([p in problem.necessary for p in params], dtype=bool)
    dep = np.zeros((n, n), dtype=bool)
    for p in params:
        for b in graph.necessary(p) - {p}:
            dep[index[p], index[b]] = True
    known = np.zeros((len(order) + 1, n), dtype=bool)
    for t, p in enumerate(order, start=1):
        known[t:, index[p]] = True
    preds = [np.array([index[x] for x in graph.preds(p)], dtype=np.int64) for p in params]
    can_next = np.zeros_like(known)
    for t in range(len(order) + 1):
        for a in range(n):
            can_next[t, a] = not known[t, a] and bool(known[t, preds[a]].all())
    values = np.array([graph.values[p] for p in params], dtype=np.int64)
    value = np.where(known, values[None, :], graph.mod)
    return ProbeLabels(params, nece, dep, known, can_next, can_next & nece[None, :], value)


def probe_input(
    prefix: list[int], vocab, a: tuple[str, str], b: tuple[str, str] | None = None
) -> list[int]:
    """Part 2.1 Sec. 4's probe input: the text up to the probe point, then ``[START] A [END]``
    (one parameter: nece, can_next, known, value) or ``[START] A [MID] B [END]`` (a pair: dep);
    the probe reads the model at the last token, ``[END]``."""
    def words(p: tuple[str, str]) -> list[int]:
        return vocab.encode([p[0], "'s", p[1]])

    out = [*prefix, vocab.start_id, *words(a)]
    if b is not None:
        out += [vocab.mid_id, *words(b)]
    return out + [vocab.end_id]


def probe_positions(ids: list[int], sol_id: int, period_id: int) -> list[int]:
    """Token positions of the probe points in a sample's ids: the ``<sol>`` token (end of the
    question) and the period closing each solution sentence."""
    ids = [int(i) for i in ids]
    start = ids.index(sol_id)
    return [start] + [t for t in range(start + 1, len(ids)) if ids[t] == period_id]


def define_points(ids: list[int], vocab) -> list[tuple[int, tuple[str, str] | None]]:
    """Part 2.2's probe points: the position of every "as" that ends a "Define A as" in the
    solution (where the can_next(A) probe reads the model), with A as (owner, owned), or None
    when the words between "Define" and "as" are not "X 's Y"."""
    words = [vocab.itos[int(i)] for i in ids]
    start = words.index("<sol>") if "<sol>" in words else 0
    out: list[tuple[int, tuple[str, str] | None]] = []
    t = start + 1
    while t < len(words):
        if words[t] == "Define" and "as" in words[t + 1 :]:
            end = words.index("as", t + 1)
            name = words[t + 1 : end]
            out.append((end, (name[0], name[2]) if len(name) == 3 and name[1] == "'s" else None))
            t = end
        t += 1
    return out
