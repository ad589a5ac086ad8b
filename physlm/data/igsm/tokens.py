"""Word-level tokens of iGSM text and the closed vocabulary of one world.

The official data uses the GPT-2 tokenizer with three separator ids (222 before the problem,
223 before the solution, 224 before the answer; iGSM README). Here the vocabulary is closed and
word level, as in the rest of the package: format words, the 52 letters, the numbers 0..mod-1,
the world's nouns, "'s" as a token of its own, punctuation, and the specials ``<bos>`` (the
problem starts), ``<sol>`` (the solution starts), ``<ans>`` (the answer follows), ``<eos>``,
Part 2.2's ``[BACK]`` (official ``retry_key_word``) and the V-probing markers ``[START]``,
``[MID]``, ``[END]`` (never in the data; a probe appends them).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from physlm.data.igsm.names import NameWorld, WorldConfig
from physlm.data.igsm.presets import LETTERS
from physlm.data.vocab import Vocab

SOL, ANS, BACK = "<sol>", "<ans>", "[BACK]"
# Part 2.1 Sec. 4 (V-probing): the probed parameters are appended between these markers
START, MID, END = "[START]", "[MID]", "[END]"
FORMAT_WORDS = (
    "The number of each equals more than times as much the sum and difference How many does "
    "have Define so"
).split() + ["'s", ".", ",", ";", "?", "=", "+", "-", "*"]

_TOKEN = re.compile(
    r"\[(?:BACK|START|MID|END)\]|<sol>|<ans>|<bos>|<eos>|'s\b|[A-Za-z]+|\d+|[^\sA-Za-z0-9]"
)
_GLUED = {"'s", ".", ",", ";", "?"}


def tokenize(text: str) -> list[str]:
    """Split iGSM text into its tokens ("Abc's" -> "Abc", "'s")."""
    return _TOKEN.findall(text)


def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens back into text: detokenize(tokenize(t)) == t for generated text."""
    out: list[str] = []
    for t in tokens:
        if out and t not in _GLUED:
            out.append(" ")
        out.append(t)
    return "".join(out)


class IGSMVocab(Vocab):
    """`physlm.data.vocab.Vocab` over one world's words, with the iGSM specials."""

    def __init__(self, world: NameWorld, mod: int):
        words = set(FORMAT_WORDS) | set(LETTERS) | {str(i) for i in range(mod)}
        clash = words & set(world.all_names())
        if clash:
            raise ValueError(f"world nouns clash with format words: {sorted(clash)}")
        specials = (SOL, ANS, BACK, START, MID, END)
        super().__init__(words | set(world.all_names()), extra_specials=specials)
        self.sol_id, self.ans_id, self.back_id = self.id(SOL), self.id(ANS), self.id(BACK)
        self.start_id, self.mid_id, self.end_id = self.id(START), self.id(MID), self.id(END)

    @property
    def digest(self) -> str:
        """sha256 of the id map: equal digests, equal token ids."""
        return hashlib.sha256(json.dumps(self.itos).encode()).hexdigest()[:12]

    def encode_text(self, text: str) -> list[int]:
        return self.encode(tokenize(text))

    def decode_text(self, ids: Sequence[int]) -> str:
        return detokenize(self.itos[int(i)] for i in ids)


@lru_cache(maxsize=8)
def name_world(config: WorldConfig) -> NameWorld:
    """The world of a config, built once per process."""
    return NameWorld(config)


@lru_cache(maxsize=8)
def igsm_vocab(config: WorldConfig, mod: int) -> IGSMVocab:
    return IGSMVocab(name_world(config), mod)
