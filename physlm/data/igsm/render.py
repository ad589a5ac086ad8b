"""iGSM text: problem sentences, the question, the solution (Part 2.1 Sec. 2.1 formats).

The wording follows the paper's format (official ``Problem.parse`` / ``to_sol``, detail level
0, the most detailed): a problem sentence reads "The number of each A's B equals 5 more than
the sum of each C's D and each E's F."; the question "How many B does A have?"; a solution
sentence "Define A's B as a; c = d + e = 3 + 4 = 7; so a = 5 + c = 5 + 7 = 12." Parameters carry
"each" in the problem and not in the solution, as in the paper. Sentences end with ". ", the
question with "?". Only our nouns (`physlm.data.igsm.names`) differ from the paper's. The
official generator can also write terser solutions (its detail levels 1-11: no names, no
substituted values); only level 0 is implemented.
"""

from __future__ import annotations

from physlm.data.igsm.dependency import DependencyGraph
from physlm.data.igsm.solution import Equation, Sentence, Solution
from physlm.data.igsm.structure import Param, Structure


def param_phrase(structure: Structure, p: Param, each: bool) -> str:
    owner, owned = structure.names(p)
    return f"{'each ' if each else ''}{owner}'s {owned}"


def problem_sentence(graph: DependencyGraph, p: Param) -> str:
    """The sentence that states instance parameter p (no final period)."""
    s, f = graph.structure, graph.formulas[p]
    head = f"The number of {param_phrase(s, p, True)} equals"
    if not f.operands:
        return f"{head} {f.const}"
    names = [param_phrase(s, x, True) for x in f.operands]
    if len(names) == 1:
        inner = names[0]
    elif f.combine == "diff":
        inner = f"the difference of {names[0]} and {names[1]}"
    elif len(names) == 2:
        inner = f"the sum of {names[0]} and {names[1]}"
    else:
        inner = "the sum of " + ", ".join(names[:-1]) + f" and {names[-1]}"
    if f.const_op == "add":
        inner = f"{f.const} more than {inner}"
    elif f.const_op == "mul":
        inner = f"{f.const} times as much as {inner}"
    return f"{head} {inner}"


def question(structure: Structure, q: Param) -> str:
    owner, owned = structure.names(q)
    return f"How many {owned} does {owner} have?"


def equation_text(eq: Equation, last: bool) -> str:
    lhs = f"so {eq.lhs}" if last else eq.lhs
    if eq.sign is None:
        (x,) = eq.operands
        return f"{lhs} = {eq.result}" if x.const else f"{lhs} = {x.name} = {eq.result}"
    a, b = eq.operands
    return (
        f"{lhs} = {a.name} {eq.sign} {b.name} = {a.value} {eq.sign} {b.value} = {eq.result}"
    )


def sentence_text(structure: Structure, s: Sentence) -> str:
    parts = [f"Define {param_phrase(structure, s.param, False)} as {s.letter}"]
    n = len(s.equations)
    parts += [equation_text(eq, t == n - 1) for t, eq in enumerate(s.equations)]
    return "; ".join(parts)


def solution_text(structure: Structure, solution: Solution) -> str:
    return "".join(f"{sentence_text(structure, s)}. " for s in solution.sentences).rstrip()


def problem_text(graph: DependencyGraph, order: list[Param] | tuple[Param, ...]) -> str:
    return " ".join(f"{problem_sentence(graph, p)}." for p in order)
