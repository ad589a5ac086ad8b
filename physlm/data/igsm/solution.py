"""The shortest solution of an iGSM problem, broken into binary steps with one letter each.

Part 2.1 (Sec. 2.1, "solution"): the solution computes exactly the parameters the question
needs (the shortest solution), one sentence per parameter, in a topological order. A sentence
names its parameter and gives it a letter, then computes it one binary operation at a time:
"12 + 13 + 7" becomes an intermediate letter for 12 + 13, then that letter + 7 (official
``Expression.binarify``: a left fold). Letters are drawn without repetition from a-z, A-Z
(official ``feasible_symbols``), so a problem has at most 52 steps. Each equation writes its
operands by name, then by value, then the result; a lone constant is written once
("so a = 5"), a lone parameter by name and value ("so a = b = 7").

One sentence costs ``ops`` equations, so a problem's op equals the number of equations
(the number of ";" in the solution text).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

from physlm.data.igsm.dependency import DependencyGraph
from physlm.data.igsm.presets import LETTERS
from physlm.data.igsm.structure import Param

SIGNS = {"sum": "+", "add": "+", "diff": "-", "mul": "*"}


class Operand(NamedTuple):
    """A letter (``const`` False) or a constant written as a number (``const`` True)."""

    name: str
    value: int
    const: bool = False


class Equation(NamedTuple):
    """``lhs = operands (joined by sign) = values = result``; sign None for a lone operand."""

    lhs: str
    operands: tuple[Operand, ...]
    sign: str | None
    result: int


@dataclass(frozen=True)
class Sentence:
    """One solution sentence: parameter, its letter, its equations (the last defines it)."""

    param: Param
    letter: str
    equations: tuple[Equation, ...]


@dataclass(frozen=True)
class Solution:
    sentences: tuple[Sentence, ...]

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(s.param for s in self.sentences)

    @property
    def n_equations(self) -> int:
        return sum(len(s.equations) for s in self.sentences)


def random_topological_order(
    graph: DependencyGraph, params: frozenset[Param], rng: random.Random
) -> list[Param]:
    """A uniformly chosen ready parameter at each step (Kahn's algorithm with random ties)."""
    indeg = {p: sum(x in params for x in graph.preds(p)) for p in params}
    succ: dict[Param, list[Param]] = {p: [] for p in params}
    for p in params:
        for x in graph.preds(p):
            if x in params:
                succ[x].append(p)
    ready = sorted(p for p in params if indeg[p] == 0)
    order: list[Param] = []
    while ready:
        p = ready.pop(rng.randrange(len(ready)))
        order.append(p)
        for s in sorted(succ[p]):
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) != len(params):
        raise ValueError("the parameters given have a dependency cycle")
    return order


def _apply(sign: str, a: int, b: int, mod: int) -> int:
    return (a + b if sign == "+" else a - b if sign == "-" else a * b) % mod


class _Writer:
    """Draws letters and folds operand lists into binary equations."""

    def __init__(self, letters: list[str], mod: int):
        self.letters, self.mod, self.eqs = letters, mod, []

    def letter(self) -> str:
        if not self.letters:
            raise ValueError(f"a solution may use at most {len(LETTERS)} letters")
        return self.letters.pop()

    def binary(self, lhs: str | None, a: Operand, sign: str, b: Operand) -> Operand:
        lhs = lhs if lhs is not None else self.letter()
        r = _apply(sign, a.value, b.value, self.mod)
        self.eqs.append(Equation(lhs, (a, b), sign, r))
        return Operand(lhs, r)

    def fold(self, lhs: str | None, terms: list[Operand], sign: str) -> Operand:
        """terms[0] sign terms[1] sign ... as a left fold; the last step gets `lhs`."""
        acc = terms[0]
        for t, term in enumerate(terms[1:], start=2):
            acc = self.binary(lhs if t == len(terms) else None, acc, sign, term)
        return acc

    def single(self, lhs: str, x: Operand) -> None:
        self.eqs.append(Equation(lhs, (x,), None, x.value))


def write_sentence(
    graph: DependencyGraph, p: Param, letter_of: dict[Param, str], letters: list[str]
) -> Sentence:
    """The sentence computing p from the letters of its (already written) dependencies."""
    v, mod = graph.values, graph.mod
    w = _Writer(letters, mod)
    own = w.letter()

    def ref(x: Param) -> Operand:
        return Operand(letter_of[x], v[x])

    if p.kind == 1:
        terms = graph.structure.abstract_terms(p)
        if len(terms) == 1 and terms[0][1] is not None:
            w.binary(own, ref(terms[0][0]), "*", ref(terms[0][1]))
        else:
            summands = [
                ref(a) if b is None else w.binary(None, ref(a), "*", ref(b)) for a, b in terms
            ]
            if len(summands) == 1:
                w.single(own, summands[0])
            else:
                w.fold(own, summands, "+")
    else:
        f = graph.formulas[p]
        const = Operand(str(f.const), f.const % mod, True) if f.const is not None else None
        if not f.operands:
            w.single(own, const)
        else:
            xs = [ref(x) for x in f.operands]
            sign = SIGNS[f.combine]
            if const is None:
                if len(xs) == 1:
                    w.single(own, xs[0])
                else:
                    w.fold(own, xs, sign)
            else:
                inner = xs[0] if len(xs) == 1 else w.fold(None, xs, sign)
                w.binary(own, const, SIGNS[f.const_op], inner)
    letter_of[p] = own
    return Sentence(p, own, tuple(w.eqs))


def shortest_solution(graph: DependencyGraph, q: Param, rng: random.Random) -> Solution:
    """The solution of the question about q: its necessary parameters in a random topological
    order, letters drawn at random without repetition."""
    order = random_topological_order(graph, graph.necessary(q), rng)
    letters = list(LETTERS)
    rng.shuffle(letters)
    letter_of: dict[Param, str] = {}
    return Solution(tuple(write_sentence(graph, p, letter_of, letters) for p in order))
