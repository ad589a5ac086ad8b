"""Part 2.2's solutions with mistakes: retry and retry_weak data.

Part 2.2 (Sec. 4, "retry data"): at the start of each solution sentence, with probability
`rate`, the solution first writes "Define W as" for a parameter W that cannot be computed yet,
then the token [BACK], then goes on; the insertion repeats, so that a sentence is preceded by at
least j wrong starts with probability rate**j (official ``id_retry_gen``; rates 0.01 to 0.5 were
tried). W is drawn uniformly among the problem's parameters (stated or abstract) that are neither
computed yet nor computable, distinct within one sentence.

Part 2.2 (Sec. 6, Result 8, "retry_weak", official ``id_retry_weak_gen``): the cheap variant
takes W among the parameters the solution computes *later* (a future step: it need not be
uncomputable), which teaches not to skip steps.

The fragment is written "Define W as [BACK]." (a sentence of its own: the official parser drops
retries at sentence boundaries). With rate 0 both give the error-free solution. ``roles`` marks
the tokens of each fragment, so a stream can mask the mistake out of the loss, as the paper's
ablation does (official ``mask_label``: the wrong parameter's name; ``mask_label2``: the whole
"Define W as"); [BACK] itself is always learned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from physlm.data.igsm.generator import Problem
from physlm.data.igsm.render import param_phrase, sentence_text
from physlm.data.igsm.structure import Param
from physlm.data.igsm.tokens import BACK, tokenize

KINDS = ("retry", "retry_weak")


@dataclass(frozen=True)
class RetrySolution:
    """The solution's sentences, each preceded by its wrong starts ``wrong[s]``."""

    problem: Problem
    wrong: tuple[tuple[Param, ...], ...]

    @property
    def n_retries(self) -> int:
        return sum(len(w) for w in self.wrong)

    def tokens(self) -> tuple[list[str], list[str]]:
        """Tokens and their roles: "step" (the error-free solution), "define", "name", "as"
        (the fragment before [BACK]), "back" ([BACK] and its period)."""
        st = self.problem.structure
        toks: list[str] = []
        roles: list[str] = []
        for ws, sent in zip(self.wrong, self.problem.solution.sentences, strict=True):
            for w in ws:
                name = tokenize(param_phrase(st, w, False))
                toks += ["Define", *name, "as", BACK, "."]
                roles += ["define"] + ["name"] * len(name) + ["as", "back", "back"]
            step = tokenize(sentence_text(st, sent)) + ["."]
            toks += step
            roles += ["step"] * len(step)
        return toks, roles

    @property
    def text(self) -> str:
        st = self.problem.structure
        parts = []
        for ws, sent in zip(self.wrong, self.problem.solution.sentences, strict=True):
            parts += [f"Define {param_phrase(st, w, False)} as {BACK}." for w in ws]
            parts.append(f"{sentence_text(st, sent)}.")
        return " ".join(parts)


def with_retries(problem: Problem, rate: float, seed: int | str, kind: str = "retry"):
    """`problem`'s solution with wrong starts inserted at `rate` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be a probability in [0, 1), got {rate!r}")
    rng = random.Random(f"igsm-{kind}-{seed}")
    graph = problem.graph
    order = problem.solution.params
    every = graph.structure.all_params
    done: set[Param] = set()
    wrong: list[tuple[Param, ...]] = []
    for s, p in enumerate(order):
        if kind == "retry":
            pool = [
                x for x in every if x not in done and any(y not in done for y in graph.preds(x))
            ]
        else:
            pool = list(order[s + 1 :])
        picked: list[Param] = []
        while pool and rng.random() < rate:
            picked.append(pool.pop(rng.randrange(len(pool))))
        wrong.append(tuple(picked))
        done.add(p)
    return RetrySolution(problem, tuple(wrong))
