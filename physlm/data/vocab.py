"""A closed word-level vocabulary for the synthetic worlds.

The worlds are generated from finite pools and templates, so their vocabulary is known in advance:
no tokenizer download, no unknown words, and every id a model sees is one the data can produce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

PAD, EOS, BOS, DOM = "<pad>", "<eos>", "<bos>", "<dom>"
SPECIALS: tuple[str, ...] = (PAD, EOS, BOS, DOM)

# A word is a run of letters/digits, optionally joined by inner hyphens or apostrophes;
# every other non-space character (",", ".", ...) is a token of its own.
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")"}


def split_words(text: str) -> list[str]:
    """Split text into the word-level tokens of this package."""
    return _WORD.findall(text)


class Vocab:
    """Special tokens first (``<pad>`` = 0, ``<eos>``, ``<bos>``, ``<dom>``), then sorted words.

    Sorting makes the ids independent of the order in which a generator met the words.
    ``<dom>`` is the domain token of Part 3.3 Result 12 (prepended to every useful biography).
    """

    def __init__(self, words: Iterable[str], extra_specials: Sequence[str] = ()):
        words = set(words)
        specials = list(SPECIALS) + [s for s in extra_specials if s not in SPECIALS]
        if len(set(specials)) != len(specials):
            raise ValueError(f"extra_specials repeats a token: {list(extra_specials)}")
        clash = words & set(specials)
        if clash:
            raise ValueError(f"words may not contain special tokens, got {sorted(clash)}")
        if any(not w or any(c.isspace() for c in w) for w in words):
            raise ValueError("words must be non-empty and contain no whitespace")
        self.itos: list[str] = specials + sorted(words)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.eos_id = self.stoi[PAD], self.stoi[EOS]
        self.bos_id, self.dom_id = self.stoi[BOS], self.stoi[DOM]
        self.n_specials = len(specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def id(self, word: str) -> int:
        """The id of one token; ValueError if it is not in this closed vocabulary."""
        try:
            return self.stoi[word]
        except KeyError:
            raise ValueError(f"token {word!r} is not in the vocabulary") from None

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """Ids of a text (split with `split_words`) or of an already split token list."""
        tokens = split_words(text) if isinstance(text, str) else list(text)
        return [self.id(t) for t in tokens]

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        """Join tokens with spaces, except before punctuation, so decode(encode(s)) == s."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary of size {len(self.itos)}")
            tok = self.itos[i]
            if skip_specials and i < self.n_specials:
                continue
            if out and tok not in _NO_SPACE_BEFORE:
                out.append(" ")
            out.append(tok)
        return "".join(out)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The token strings of some ids."""
        return [self.itos[int(i)] for i in ids]
