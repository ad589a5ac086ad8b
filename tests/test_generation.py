"""Sampling and generation measures against hand-written loops and planted models.

Planted models are modules whose logits we control: one samples from the grammar's exact
next-token law (computed by the DP of `cfg_parse`), so its every sentence is valid; a uniform
one almost never closes a valid sentence; a copier always predicts the row's first token.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from physlm.data.cfg import random_grammar
from physlm.data.cfg_stream import CFGStream, CFGTokens
from physlm.measure.cfg_parse import accepts_sentences, next_token_probs, pad_sentences
from physlm.measure.generation import (
    cfg_generation_accuracy,
    collision_support,
    exact_match,
    greedy_grouped,
    sample,
)
from physlm.model import GPT, ModelConfig

GRAMMAR = random_grammar(3, sizes=(1, 2, 2, 2), num_rules=(2, 2))
TOK = CFGTokens(GRAMMAR.num_terminals)


class GrammarLaw(nn.Module):
    """Next token drawn from the grammar's exact law given the text since the last <bos>."""

    def __init__(self, block_size: int = 64) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(block_size=block_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        prefixes = []
        for row in idx.tolist():
            start = len(row) - 1 - row[::-1].index(TOK.bos)
            prefixes.append(row[start + 1 :])
        tokens, lengths = pad_sentences(prefixes)
        law = next_token_probs(GRAMMAR, tokens, lengths)
        last = law[torch.arange(len(prefixes)), lengths]  # (B, V+1): terminals, then end
        logits = torch.full((idx.shape[0], idx.shape[1], TOK.vocab_size), -1e9)
        probs = torch.nan_to_num(last, nan=0.0)
        logits[:, -1, 1 : TOK.eos + 1] = probs.clamp_min(1e-30).log().float()
        return logits


class Uniform(nn.Module):
    def __init__(self, vocab: int, block_size: int = 64) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(block_size=block_size)
        self.vocab = vocab

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(idx.shape[0], idx.shape[1], self.vocab)


class CopyFirst(nn.Module):
    """Always predicts the first token of the row."""

    def __init__(self, vocab: int = 10) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(block_size=32)
        self.vocab = vocab

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(idx.shape[0], idx.shape[1], self.vocab)
        logits[torch.arange(idx.shape[0]), :, idx[:, 0]] = 5.0
        return logits


def tiny_gpt(block_size: int = 16) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=16, block_size=block_size))


def test_greedy_equals_hand_written_loop():
    model = tiny_gpt()
    prompts = torch.randint(0, 11, (3, 4), generator=torch.Generator().manual_seed(1))
    got = sample(model, prompts, 6, temperature=0.0)
    idx = prompts.clone()
    with torch.no_grad():
        for _ in range(6):
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert got == idx[:, 4:].tolist()
    assert model.training  # mode restored


def test_sampling_is_seeded_and_stops():
    model = tiny_gpt()
    prompts = torch.zeros(8, 2, dtype=torch.long)
    a = sample(model, prompts, 10, 1.0, torch.Generator().manual_seed(3))
    b = sample(model, prompts, 10, 1.0, torch.Generator().manual_seed(3))
    assert a == b and all(len(r) == 10 for r in a)
    stop = a[0][2]
    cut = sample(model, prompts, 10, 1.0, torch.Generator().manual_seed(3), stop_token=stop)
    for full, short in zip(a, cut, strict=True):
        if stop in full:
            assert short == full[: full.index(stop) + 1]
        else:
            assert short == full


def test_block_size_error():
    model = tiny_gpt(block_size=8)
    prompts = torch.zeros(1, 4, dtype=torch.long)
    assert len(sample(model, prompts, 5, temperature=0.0)[0]) == 5  # 4 + 5 - 1 = 8 fits
    with pytest.raises(ValueError, match="block_size"):
        sample(model, prompts, 6)
    with pytest.raises(ValueError, match="max_new"):
        sample(model, prompts, 0)


@pytest.mark.parametrize("cut", [0, 4])
def test_grammar_law_model_is_always_right(cut):
    res = cfg_generation_accuracy(GrammarLaw(), GRAMMAR, n=12, cut=cut, batch_size=12, seed=1)
    assert res["accuracy"] == 1.0 and res["truncated"] == 0.0
    assert all(accepts_sentences(GRAMMAR, res["sentences"]))  # independent re-check
    lo, hi = GRAMMAR.width_bounds[0][0]
    assert all(lo <= n <= hi for n in res["lengths"])
    assert 0.0 < res["diversity"] <= 1.0
    if cut:
        stream = CFGStream(grammar=GRAMMAR, batch_size=1, seq_len=64)
        again = cfg_generation_accuracy(GrammarLaw(), stream, n=12, cut=cut, seed=1)
        assert again["sentences"] == res["sentences"]  # deterministic for a seed


def test_uniform_model_is_mostly_wrong():
    res = cfg_generation_accuracy(Uniform(TOK.vocab_size), GRAMMAR, n=32, seed=0)
    assert res["accuracy"] < 0.2
    assert len(res["lengths"]) == 32


def test_exact_match_on_copier():
    model = CopyFirst()
    prompts = [[3, 1], [5, 2, 2], [7], [4, 4]]
    right = [[3, 3], [5], [7, 7, 7], [4]]
    assert exact_match(model, prompts, right) == 1.0
    half = [[3, 3], [6], [7, 1], [4]]
    assert exact_match(model, prompts, half, batch_size=1) == 0.5
    with pytest.raises(ValueError):
        exact_match(model, prompts, right[:2])


def test_greedy_grouped_keeps_the_order_and_runs_a_batch_to_its_largest_count():
    model = CopyFirst()
    prompts = [[3, 1], [5, 2, 2], [7], [4, 4], [6, 1]]
    counts = [2, 1, 3, 1, 4]
    got = greedy_grouped(model, prompts, counts, batch_size=2)  # a batch runs to its largest
    assert all(
        g[:c] == [p[0]] * c and len(g) >= c for g, p, c in zip(got, prompts, counts, strict=True)
    )
    alone = greedy_grouped(model, prompts, counts, batch_size=1)
    assert alone == [[p[0]] * c for p, c in zip(prompts, counts, strict=True)]  # in order
    assert greedy_grouped(model, [[2, 1]], [5], stop_token=2) == [[2]]  # stops at the stop token
    with pytest.raises(ValueError, match="max_new needs one count per prompt"):
        greedy_grouped(model, prompts, counts[:2])


class Recorder(GrammarLaw):
    """The grammar's law, remembering the prompts it was first shown."""

    def __init__(self) -> None:
        super().__init__()
        self.first: list[list[int]] | None = None

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.first is None:
            self.first = idx.tolist()
        return super().forward(idx)


def test_prefix_noise_corrupts_the_prompt_and_scores_the_clean_prefix():
    cut, n = 6, 10
    clean = cfg_generation_accuracy(GrammarLaw(), GRAMMAR, n=n, cut=cut, batch_size=n, seed=2)
    model = Recorder()
    noisy = cfg_generation_accuracy(
        model, GRAMMAR, n=n, cut=cut, batch_size=n, seed=2, prefix_noise=0.34
    )
    vocab = range(1, GRAMMAR.num_terminals + 1)
    rows = zip(model.first, noisy["sentences"], clean["sentences"], noisy["correct"], strict=True)
    for shown, sent, ref, ok in rows:
        assert sent[:cut] == ref[:cut]  # reported with the clean prefix
        holes = [i for i in range(cut) if shown[1 + i] != ref[i]]
        assert len(holes) == 3  # ceil(0.34 * 6) distinct positions, each to another terminal
        # correct iff some terminals at the corrupted positions make a sentence (brute force)
        fills = [dict(zip(holes, f, strict=True)) for f in itertools.product(vocab, repeat=3)]
        truth = any(
            accepts_sentences(GRAMMAR, [[f.get(i, t) for i, t in enumerate(sent)]])[0]
            for f in fills
        )
        assert ok == truth
    assert any(noisy["correct"]) and not all(noisy["correct"])  # both outcomes are exercised
    with pytest.raises(ValueError, match="prefix_noise"):
        cfg_generation_accuracy(GrammarLaw(), GRAMMAR, n=2, cut=0, prefix_noise=0.1)


def test_collision_support():
    assert collision_support([[1], [2], [3]]) == float("inf")
    assert collision_support([[1], [1], [2], [3]]) == 6.0  # 4*3/2 pairs, one collides
    g = torch.Generator().manual_seed(0)
    draws = torch.randint(0, 50, (400,), generator=g).tolist()
    est = collision_support([[d] for d in draws])
    assert 35 < est < 65  # K = 50 equally likely strings
    with pytest.raises(ValueError, match="at least 2"):
        collision_support([[1]])
