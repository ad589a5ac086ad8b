"""Depo: reasoning depth (Part 4.1 Sec. 3 and App. A.1), our own generator.

An instance is a directed cycle over n "words" (a random permutation), given as its n edges in a
random order, followed by queries "the k-th successor of word a": the model must follow k links
in its head, with no chain of thought. Construction (the paper's generator, sizes shrunk):

* n is drawn from {3, ..., N} with P(n) proportional to 1 / (n + sqrt(N)) in training, n = N at
  test; the n words are distinct.
* A word is 1-2 tokens (Depo1) or 5-7 tokens (Depo2) over `symbols` symbols; its last token is
  written with a second copy of the alphabet, so a word's end is visible.
* The shuffled word list is the cycle w_0 -> w_1 -> ... -> w_{n-1} -> w_0; the context lists
  every edge as the tokens of w_i followed by those of w_{i+1}, in a random order.
* min(n, 10) queries on distinct words, each ``<hop k> a <ans> succ^k(a)`` with k uniform in
  1..K in training.

A sample is ``<bos> edges queries <eos>``, one per row, rows padded to the batch's longest; the
loss counts on each ``<ans>`` marker and answer word (where the query word ends, and its answer).
Instance r of step s is drawn from ``(seed, s, r)``: ``batch(step)`` is a pure function of
(seed, step), and every architecture trained with one seed sees identical data. The test asks one
query per prompt (`prompt`), at hop counts the chapter picks (the paper: powers of 2 up to K).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from physlm.data import check_ints, config_from, easy_first_sizes, padded_batch
from physlm.data.vocab import Vocab

VERSION = "depo-1"
ANSWER = "<ans>"
QUERIES = 10  # queries per training sample (fewer when the cycle is shorter)
_TEST_STREAM = 1 << 30


@dataclass(frozen=True)
class DepoConfig:
    """max_nodes: N; max_hops: K; word lengths in [min_word, max_word] over `symbols`."""

    max_nodes: int = 16
    max_hops: int = 4
    min_word: int = 1
    max_word: int = 2
    symbols: int = 50
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        check_ints(self, (("max_nodes", 3), ("max_hops", 1), ("min_word", 1), ("max_word", 1),
                          ("symbols", 2), ("batch_size", 1), ("seed", 0)))  # fmt: skip
        if self.max_word < self.min_word:
            raise ValueError(f"max_word must be >= min_word={self.min_word}, got {self.max_word}")
        if self.max_nodes > words_available(self.min_word, self.max_word, self.symbols):
            raise ValueError(
                f"max_nodes={self.max_nodes} exceeds the distinct words of {self.min_word}-"
                f"{self.max_word} tokens over {self.symbols} symbols"
            )


def words_available(min_word: int, max_word: int, symbols: int) -> int:
    return sum(symbols**length for length in range(min_word, max_word + 1))


@dataclass(frozen=True)
class DepoInstance:
    """A cycle of words (`words[i]` points to `words[(i + 1) % n]`) and its training queries."""

    words: tuple[tuple[int, ...], ...]  # symbol indices; the last one is a word's end
    edges: tuple[int, ...]  # the order in which the edges i -> i + 1 are written
    queries: tuple[tuple[int, int], ...]  # (word index, hops)

    @property
    def n(self) -> int:
        return len(self.words)

    def successor(self, node: int, hops: int) -> int:
        return (node + hops) % self.n


class DepoStream:
    """Depo samples as a `physlm.data.BatchSource` (see the module docstring)."""

    def __init__(self, config: DepoConfig | None = None, **kwargs) -> None:
        self.config = c = config_from(DepoConfig, config, kwargs)
        words = [f"s{i}" for i in range(c.symbols)] + [f"e{i}" for i in range(c.symbols)]
        hops = [f"<hop{k}>" for k in range(1, c.max_hops + 1)]
        self.vocab = Vocab(words, extra_specials=(ANSWER, *hops))
        self.vocab_size = len(self.vocab)
        self._sym0, self._end0 = self.vocab.id("s0"), self.vocab.id("e0")
        self._hop = {k: self.vocab.id(f"<hop{k}>") for k in range(1, c.max_hops + 1)}
        self._weights = easy_first_sizes(c.max_nodes)
        per_edge, per_query = 2 * c.max_word, 2 * c.max_word + 2
        self.block_size = 1 + c.max_nodes * per_edge + QUERIES * per_query + 1

    def spec(self) -> dict:
        return {"kind": "depo", "version": VERSION, **asdict(self.config)}

    def _words(self, rng: np.random.Generator, n: int) -> tuple[tuple[int, ...], ...]:
        c, seen, out = self.config, set(), []
        while len(out) < n:
            length = int(rng.integers(c.min_word, c.max_word + 1))
            word = tuple(int(x) for x in rng.integers(0, c.symbols, size=length))
            if word not in seen:
                seen.add(word)
                out.append(word)
        return tuple(out)

    def instance(self, step: int, row: int, n: int | None = None) -> DepoInstance:
        """Instance `row` of training step `step` (n drawn), or of a test set (n given)."""
        c = self.config
        rng = np.random.default_rng([c.seed, step, row])
        if n is None:
            n = 3 + int(rng.choice(len(self._weights), p=self._weights))
        if not 3 <= n <= c.max_nodes:
            raise ValueError(f"n must be in 3..max_nodes={c.max_nodes}, got {n}")
        words = self._words(rng, n)
        edges = tuple(int(i) for i in rng.permutation(n))
        asked = rng.choice(n, size=min(n, QUERIES), replace=False)
        hops = rng.integers(1, c.max_hops + 1, size=len(asked))
        queries = tuple((int(a), int(k)) for a, k in zip(asked, hops, strict=True))
        return DepoInstance(words, edges, queries)

    def test_set(self, n: int, count: int, seed: int = 0) -> list[DepoInstance]:
        """`count` held-out cycles of exactly n words (drawn apart from every training step)."""
        return [self.instance(_TEST_STREAM + seed, i, n) for i in range(count)]

    def word(self, inst: DepoInstance, node: int) -> list[int]:
        w = inst.words[node]
        return [self._sym0 + x for x in w[:-1]] + [self._end0 + w[-1]]

    def context(self, inst: DepoInstance) -> list[int]:
        ids = [self.vocab.bos_id]
        for i in inst.edges:
            ids += self.word(inst, i) + self.word(inst, inst.successor(i, 1))
        return ids

    def prompt(self, inst: DepoInstance, node: int, hops: int) -> list[int]:
        """The context and one query, up to ``<ans>``: what the model continues at test."""
        if not 1 <= hops <= self.config.max_hops:
            raise ValueError(f"hops must be in 1..max_hops={self.config.max_hops}, got {hops}")
        return (
            self.context(inst) + [self._hop[hops]] + self.word(inst, node) + [self.vocab.id(ANSWER)]
        )

    def answer(self, inst: DepoInstance, node: int, hops: int) -> list[int]:
        return self.word(inst, inst.successor(node, hops))

    def sample(self, inst: DepoInstance) -> tuple[list[int], list[bool]]:
        """Tokens of a training sample and, per token, whether it is a loss target."""
        ids = self.context(inst)
        target = [False] * len(ids)
        for node, hops in inst.queries:
            q = [self._hop[hops]] + self.word(inst, node)
            a = [self.vocab.id(ANSWER)] + self.answer(inst, node, hops)
            ids += q + a
            target += [False] * len(q) + [True] * len(a)
        return ids + [self.vocab.eos_id], target + [False]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        samples = [self.sample(self.instance(step, r)) for r in range(self.config.batch_size)]
        return padded_batch(samples, self.vocab.pad_id)
