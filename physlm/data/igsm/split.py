"""The train/test split of Part 2.1: by a hash of the solution's template.

Part 2.1 (Sec. 2.2; official ``Problem.to_hash`` and ``tools.to_sketch``): a solution's
*template* is its text with every parameter replaced by its type (instance or abstract), every
number by 0 and the letters renamed in order of first appearance; sha256 of the template mod 23
is its bin. Training problems come from bins 0..15, test problems from 16..22 (official
``const/params.py``; a secondary summary says "< 17", the code is taken as authoritative), so no
test problem shares its solution template with any training problem.

The template is computed from the solution *text* and the world's nouns only, so a test can
recompute it from what a model reads.
"""

from __future__ import annotations

import hashlib

from physlm.data.igsm.names import NameWorld
from physlm.data.igsm.presets import HASH_MOD, LETTERS
from physlm.data.igsm.tokens import tokenize

_LETTERS = frozenset(LETTERS)


def solution_template(solution: str, world: NameWorld) -> str:
    """The template of a solution text (see the module docstring)."""
    toks = tokenize(solution)
    out: list[str] = []
    rename: dict[str, str] = {}
    t = 0
    while t < len(toks):
        tok = toks[t]
        if world.is_item(tok) and t + 2 < len(toks) and toks[t + 1] == "'s":
            out.append("Abst" if world.is_category(toks[t + 2]) else "Inst")
            t += 3
            continue
        if tok.isdigit():
            out.append("0")
        elif tok in _LETTERS:
            rename.setdefault(tok, LETTERS[len(rename)])
            out.append(rename[tok])
        else:
            out.append(tok)
        t += 1
    return " ".join(out)


def template_bin(solution: str, world: NameWorld, mod: int = HASH_MOD) -> int:
    """sha256 of the solution's template, mod 23: the split bin."""
    digest = hashlib.sha256(solution_template(solution, world).encode()).hexdigest()
    return int(digest, 16) % mod
