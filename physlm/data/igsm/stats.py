"""Summary numbers of a set of iGSM problems, for a chapter's data section.

Part 2.1 (Sec. 2.2 and the official README) describes its data by the op distribution, the
sample and solution lengths (iGSM-med: about 405 GPT-2 tokens per sample, 158 in the solution,
as measured by a reproduction) and how many stated parameters the answer does not need.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from physlm.data.igsm.generator import Problem
from physlm.data.igsm.tokens import tokenize


def describe(problems: Sequence[Problem]) -> dict:
    """n, op counts, mean/max word tokens of a sample and of its solution, mean edges (stated
    parameters), mean unnecessary stated parameters, and the share of problems whose solution
    needs an abstract parameter."""
    if not problems:
        raise ValueError("problems must not be empty")
    n = len(problems)
    # <bos> problem <sol> solution <ans> answer <eos>
    sample = [len(tokenize(p.text)) + len(tokenize(p.solution_text)) + 5 for p in problems]
    solution = [len(tokenize(p.solution_text)) for p in problems]
    unnecessary = [sum(x not in p.necessary for x in p.order) for p in problems]
    return {
        "n": n,
        "op": dict(sorted(Counter(p.op for p in problems).items())),
        "mean_tokens": sum(sample) / n,
        "max_tokens": max(sample),
        "mean_solution_tokens": sum(solution) / n,
        "mean_edges": sum(p.structure.n_edges for p in problems) / n,
        "mean_unnecessary_stated": sum(unnecessary) / n,
        "abstract_share": sum(any(x.kind == 1 for x in p.necessary) for p in problems) / n,
    }
