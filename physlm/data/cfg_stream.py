"""Part 1's training stream: fresh CFG sentences at every step, packed into token rows.

Part 1 (arXiv 2305.13673, Sec. 2 and App. A.1) pre-trains on fresh samples only (never a repeat:
100k steps x 96 x 512 tokens) with sentences joined by BOS/EOS separators and cut into 512-token
windows. `CFGStream.batch(step)` draws its sentences with a seed derived from (seed, step), so a
resumed run sees the same data.

Token ids (`CFGTokens`): 0 = pad (masked out of the loss), terminals keep the official ids 1..V,
V+1 = <eos> (the official EOS id), V+2 = <bos> (ours: the official generator has no BOS id; its
V+2 is MASK, unused here). `vocab_size` = V+3; NT ids never occur in the text.

Layouts (`packing`):

* ``"cut"``: the paper's format. ``<bos> s <eos> <bos> s <eos> ...`` as one stream cut into
  windows of seq_len+1 tokens; a sentence may start in one row and end in the next. No padding.
* ``"whole"``: whole sentences only, packed greedily into each row, the rest padded (masked).
  A sentence whose ``<bos> s <eos>`` is longer than a row is redrawn (a departure that trims the
  length distribution; choose seq_len above the grammar's longest sentences to avoid it).
* ``"single"``: one sentence per row, padded.

Structural noise (Part 1's robustness experiment: "injecting structural or syntactic noise into
pretraining data"): with probability `noise` a sentence is corrupted before packing by replacing
``ceil(noise_fraction * length)`` distinct positions with a different, uniformly drawn terminal.
The paper's exact corruption recipe was not available in the sources consulted; this one is ours.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from physlm.data import check_ints, config_from, make_batch
from physlm.data.cfg import NAMED_GRAMMARS, Grammar, named_grammar
from physlm.data.cfg import sample as sample_grammar

VERSION = "cfg-stream-1"
PACKINGS = ("cut", "whole", "single")
_T_SENT, _T_NOISE = 1, 2  # stream tags mixed into the per-step seeds


@dataclass(frozen=True)
class CFGTokens:
    """The id map of the stream's vocabulary (see the module docstring)."""

    num_terminals: int

    @property
    def pad(self) -> int:
        return 0

    @property
    def eos(self) -> int:
        return self.num_terminals + 1

    @property
    def bos(self) -> int:
        return self.num_terminals + 2

    @property
    def vocab_size(self) -> int:
        return self.num_terminals + 3

    def is_terminal(self, token: int) -> bool:
        return 1 <= token <= self.num_terminals


def grammar_digest(grammar: Grammar) -> str:
    """sha256 of the grammar's shape and rules: equal digests mean the same language."""
    text = f"{grammar.sizes}\n{grammar.describe()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CFGStreamConfig:
    """grammar: a `Grammar` or the name of one of Part 1's (cfg3b/i/h/g/f). batch_size x seq_len
    tokens per step. packing: "cut", "whole" or "single". noise: probability that a sentence is
    corrupted; noise_fraction: share of its tokens replaced (at least one)."""

    grammar: Grammar | str
    batch_size: int
    seq_len: int
    seed: int = 0
    packing: str = "cut"
    noise: float = 0.0
    noise_fraction: float = 0.15

    def __post_init__(self) -> None:
        if isinstance(self.grammar, str):
            if self.grammar not in NAMED_GRAMMARS:
                raise ValueError(
                    f"grammar must be a Grammar or one of {NAMED_GRAMMARS}, got {self.grammar!r}"
                )
        elif not isinstance(self.grammar, Grammar):
            raise ValueError(f"grammar must be a Grammar or a name, got {type(self.grammar)}")
        check_ints(self, (("batch_size", 1), ("seq_len", 2), ("seed", 0)))
        if self.packing not in PACKINGS:
            raise ValueError(f"packing must be one of {PACKINGS}, got {self.packing!r}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be a probability in [0, 1], got {self.noise!r}")
        if not 0.0 < self.noise_fraction <= 1.0:
            raise ValueError(f"noise_fraction must be in (0, 1], got {self.noise_fraction!r}")
        g = self.resolved_grammar()
        shortest = g.width_bounds[0][0][0]
        if self.packing != "cut" and shortest + 2 > self.seq_len + 1:
            raise ValueError(
                f"seq_len must be >= {shortest + 1} so that the shortest sentence of "
                f"{g.name} ({shortest} tokens) fits a row with <bos> and <eos>, got {self.seq_len}"
            )

    def resolved_grammar(self) -> Grammar:
        return named_grammar(self.grammar) if isinstance(self.grammar, str) else self.grammar


def _seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of the integer parts."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def corrupt(
    sentence: np.ndarray, fraction: float, num_terminals: int, rng: np.random.Generator
) -> np.ndarray:
    """Replace ceil(fraction * len) distinct positions by a different uniform terminal."""
    out = sentence.copy()
    k = min(len(out), max(1, math.ceil(fraction * len(out))))
    pos = rng.choice(len(out), size=k, replace=False)
    if num_terminals > 1:
        shift = rng.integers(1, num_terminals, size=k)  # never the original terminal
        out[pos] = (out[pos] - 1 + shift) % num_terminals + 1
    return out


class CFGStream:
    """Part 1's CFG text as a `physlm.data.BatchSource` (see the module docstring)."""

    def __init__(self, config: CFGStreamConfig | None = None, **kwargs) -> None:
        self.config = c = config_from(CFGStreamConfig, config, kwargs)
        self.grammar = c.resolved_grammar()
        self.tokens = CFGTokens(self.grammar.num_terminals)
        self.vocab_size = self.tokens.vocab_size

    @cached_property
    def _chunk(self) -> int:
        """Sentences drawn per sampler call: about one step's worth."""
        c = self.config
        per_row = (c.seq_len + 1) / (self.grammar.mean_length + 2)
        rows = c.batch_size if c.packing == "single" else math.ceil(c.batch_size * per_row)
        return max(8, rows + c.batch_size)

    def sentences(self, step: int, chunk: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
        """Chunk `chunk` of step `step`'s sentences (terminal ids 1..V) and which were corrupted.

        Steps draw chunks 0, 1, ... until their rows are full; a pure function of (seed, step,
        chunk).
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        c = self.config
        draw = sample_grammar(self.grammar, self._chunk, _seed(c.seed, _T_SENT, step, chunk))
        sents = draw.sentences()
        rng = np.random.default_rng(_seed(c.seed, _T_NOISE, step, chunk))
        noisy = rng.random(len(sents)) < c.noise
        out = []
        for s, bad in zip(sents, noisy, strict=True):
            arr = np.asarray(s, dtype=np.int64)
            out.append(
                corrupt(arr, c.noise_fraction, self.grammar.num_terminals, rng) if bad else arr
            )
        return out, noisy

    def _framed(self, step: int):
        """<bos> s <eos> token arrays of step `step`, in order, forever."""
        t = self.tokens
        chunk = 0
        while True:
            sents, _ = self.sentences(step, chunk)
            for s in sents:
                yield np.concatenate([[t.bos], s, [t.eos]])
            chunk += 1

    def rows(self, step: int) -> np.ndarray:
        """The [batch_size, seq_len + 1] token rows of step `step`."""
        c = self.config
        width = c.seq_len + 1
        framed = self._framed(step)
        if c.packing == "cut":
            parts, total = [], 0
            while total < c.batch_size * width:
                parts.append(next(framed))
                total += len(parts[-1])
            return np.concatenate(parts)[: c.batch_size * width].reshape(c.batch_size, width)
        out = np.full((c.batch_size, width), self.tokens.pad, dtype=np.int64)
        pending = next(framed)
        for r in range(c.batch_size):
            used = 0
            while True:
                while len(pending) > width:  # longer than any row: redrawn (see docstring)
                    pending = next(framed)
                if used + len(pending) > width or (c.packing == "single" and used):
                    break
                out[r, used : used + len(pending)] = pending
                used += len(pending)
                pending = next(framed)
        return out

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return make_batch(self.rows(step), self.tokens.pad)

    def spec(self) -> dict:
        c = self.config
        return {
            "kind": "cfg",
            "version": VERSION,
            "grammar": self.grammar.name,
            "grammar_digest": grammar_digest(self.grammar),
            "batch_size": c.batch_size,
            "seq_len": c.seq_len,
            "seed": c.seed,
            "packing": c.packing,
            "noise": c.noise,
            "noise_fraction": c.noise_fraction,
        }
