"""The batched CFG dynamic programs against independent computations.

Independent methods: the language of a small grammar enumerated with each string's probability;
a top-down recursive recogniser / inside computation memoised on start positions (a different
algorithm from the bottom-up band joins under test); the textbook CYK of the bench; sampling.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict
from functools import cache

import numpy as np
import pytest
import torch

from physlm.bench.cfg import cyk_accepts
from physlm.data.cfg import Grammar, named_grammar, random_grammar, sample
from physlm.measure.cfg_parse import (
    WILDCARD,
    accepts,
    accepts_sentences,
    grammar_kl,
    next_token_probs,
    pad_sentences,
    sentence_logprob,
)


def language(g: Grammar) -> dict[tuple[int, ...], float]:
    """Every sentence of a small grammar with its probability (sum over derivations)."""

    @cache
    def strings(level: int, sym: int) -> dict[tuple[int, ...], float]:
        if level == g.depth:
            return {(sym + 1,): 1.0}
        out: dict[tuple[int, ...], float] = defaultdict(float)
        rhs_list = g.rules[level][sym]
        for rhs in rhs_list:
            parts = [list(strings(level + 1, c).items()) for c in rhs]
            for combo in itertools.product(*parts):
                out[sum((s for s, _ in combo), ())] += math.prod(p for _, p in combo) / len(
                    rhs_list)
        return dict(out)

    return strings(0, 0)


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def inside_top_down(g: Grammar, sent: list[int]) -> float:
    """log P(sent) by recursion from the root, in log space: a symbol at position i maps to
    {end: log probability}. -inf outside the language."""
    n = len(sent)

    @cache
    def ends(level: int, sym: int, i: int) -> tuple[tuple[int, float], ...]:
        if level == g.depth:
            return ((i + 1, 0.0),) if i < n and sent[i] == sym + 1 else ()
        out: dict[int, float] = defaultdict(lambda: -math.inf)
        rhs_list = g.rules[level][sym]
        for rhs in rhs_list:
            cur = {i: -math.log(len(rhs_list))}
            for c in rhs:
                nxt: dict[int, float] = defaultdict(lambda: -math.inf)
                for pos, p in cur.items():
                    for end, q in ends(level + 1, c, pos):
                        nxt[end] = _logadd(nxt[end], p + q)
                cur = nxt
            for end, p in cur.items():
                out[end] = _logadd(out[end], p)
        return tuple(out.items())

    return dict(ends(0, 0, 0)).get(n, -math.inf) if n else -math.inf


def small_grammars() -> list[Grammar]:
    return [
        random_grammar(1, sizes=(1, 2, 2, 2), num_rules=(1, 3), rule_len=(1, 3)),
        random_grammar(2, sizes=(1, 3, 3), num_rules=(2, 3), rule_len=(2, 3)),
        random_grammar(7, sizes=(1, 2, 3, 3), num_rules=(2, 2), rule_len=(1, 2)),
    ]


@pytest.mark.parametrize("g", small_grammars(), ids=["unary", "two-level", "three-level"])
def test_membership_equals_the_enumerated_language(g: Grammar) -> None:
    lang = language(g)
    longest = max(map(len, lang))
    assert longest <= 12
    vocab = range(1, g.num_terminals + 1)
    every = [s for n in range(longest + 2) for s in itertools.product(vocab, repeat=n)]
    every = every[:120_000]
    tokens, lengths = pad_sentences(every)
    got = accepts(g, tokens, lengths)
    truth = torch.tensor([s in lang for s in every])
    assert truth.any() and not truth.all()
    assert torch.equal(got, truth)


@pytest.mark.parametrize("g", small_grammars(), ids=["unary", "two-level", "three-level"])
def test_wildcards_mean_some_terminal_fits(g: Grammar) -> None:
    lang = language(g)
    rng = random.Random(0)
    strings = [list(s) for s in sorted(lang)[:60]]
    strings += [[rng.randint(1, g.num_terminals) for _ in range(len(s))] for s in strings]
    masked = []
    for s in strings:
        k = rng.randint(1, min(3, len(s)))
        where = rng.sample(range(len(s)), k)
        masked.append([WILDCARD if i in where else t for i, t in enumerate(s)])
    tokens, lengths = pad_sentences(masked)
    got = accepts(g, tokens, lengths).tolist()
    vocab = range(1, g.num_terminals + 1)
    for m, ok in zip(masked, got, strict=True):
        holes = [i for i, t in enumerate(m) if t == WILDCARD]
        fills = itertools.product(vocab, repeat=len(holes))
        truth = any(
            tuple(dict(zip(holes, f, strict=True)).get(i, t) for i, t in enumerate(m)) in lang
            for f in fills
        )
        assert ok == truth
    assert any(got) and not all(got)


@pytest.mark.parametrize("g", small_grammars(), ids=["unary", "two-level", "three-level"])
def test_probabilities_equal_the_enumerated_language(g: Grammar) -> None:
    lang = language(g)
    prefix: dict[tuple[int, ...], float] = defaultdict(float)
    for s, p in lang.items():
        for t in range(len(s) + 1):
            prefix[s[:t]] += p
    sents = sorted(lang, key=lambda s: -lang[s])[:150]
    tokens, lengths = pad_sentences(sents)
    logp = sentence_logprob(g, tokens, lengths)
    assert torch.allclose(logp, torch.tensor([math.log(lang[s]) for s in sents],
                                             dtype=torch.float64), atol=1e-12)
    probs = next_token_probs(g, tokens, lengths)
    vocab = range(1, g.num_terminals + 1)
    for b, s in enumerate(sents):
        rows = []
        for t in range(len(s) + 1):
            den = prefix[s[:t]]
            rows.append([prefix.get(s[:t] + (v,), 0.0) / den for v in vocab]
                        + [lang.get(s[:t], 0.0) / den])
        assert torch.allclose(probs[b, : len(s) + 1], torch.tensor(rows, dtype=torch.float64),
                              atol=1e-12)
        assert torch.isnan(probs[b, len(s) + 1 :]).all()


def corrupt(sent: list[int], rng: random.Random, vocab: int) -> list[int]:
    out = list(sent)
    kind = rng.choice(["swap", "substitute", "substitute", "delete", "insert"])
    i = rng.randrange(len(out) - 1)
    if kind == "substitute":
        out[i] = rng.choice([v for v in range(1, vocab + 1) if v != out[i]])
    elif kind == "swap":
        out[i], out[i + 1] = out[i + 1], out[i]
    elif kind == "delete":
        del out[i]
    else:
        out.insert(i, rng.randrange(1, vocab + 1))
    return out


@pytest.mark.parametrize("name", ["cfg3f", "cfg3b", "cfg3h"])
def test_corrupted_sentences_agree_with_a_top_down_parser(name: str) -> None:
    g = named_grammar(name)
    rng = random.Random(0)
    valid = sample(g, 30, seed=5).sentences()
    broken = [corrupt(s, rng, g.num_terminals) for s in valid for _ in range(3)]
    noise = [[rng.randrange(1, 4) for _ in range(len(s))] for s in valid[:5]]
    cases = valid + broken + noise
    got = accepts_sentences(g, cases, batch_size=64)
    truth = [inside_top_down(g, s) > -math.inf for s in cases]
    assert got == truth
    assert all(got[: len(valid)]) and not any(got[-len(noise) :])
    assert not all(got[len(valid) : -len(noise)])  # corruptions are mostly caught


def test_some_corruptions_stay_in_the_language() -> None:
    """Single substitutions that keep a cfg3f sentence valid exist, and are accepted."""
    g = named_grammar("cfg3f")
    rng = random.Random(1)
    base = sample(g, 4, seed=6).sentences()
    cases = []
    for s in base:
        for _ in range(40):
            t = list(s)
            i = rng.randrange(len(t))
            t[i] = rng.choice([v for v in (1, 2, 3) if v != t[i]])
            cases.append(t)
    got = accepts_sentences(g, cases)
    truth = [inside_top_down(g, s) > -math.inf for s in cases]
    assert got == truth
    assert any(truth) and not all(truth)


def test_textbook_cyk_agrees() -> None:
    g = named_grammar("cfg3b")
    rng = random.Random(2)
    sents = sorted(sample(g, 20, seed=7).sentences(), key=len)[:2]
    cases = sents + [corrupt(s, rng, 3) for s in sents]
    assert accepts_sentences(g, cases) == [cyk_accepts(g, s) for s in cases]
    small = small_grammars()[0]
    strings = [list(s) for n in range(1, 8) for s in itertools.product((1, 2), repeat=n)]
    assert accepts_sentences(small, strings) == [cyk_accepts(small, s) for s in strings]


@pytest.mark.parametrize(
    ("g", "pick"),
    [(named_grammar("cfg3f"), [0, 1, 2, 3]),
     (random_grammar(3, sizes=(1,) + (3,) * 7, num_rules=(4, 4)), [2, 3])],
    ids=["cfg3f", "depth-7"],
)
def test_probabilities_agree_with_top_down_inside_and_chain_rule(g: Grammar, pick: list) -> None:
    """Sentence 2 of the cfg3k-shaped member has 851 tokens and probability e^-797, below
    float64's range (e^-745): only the rescaled DP gets it right."""
    sents = [sample(g, 4, seed=8).sentences()[i] for i in pick]
    tokens, lengths = pad_sentences(sents)
    logp = sentence_logprob(g, tokens, lengths, batch_size=1)
    probs = next_token_probs(g, tokens, lengths, batch_size=1)
    for b, s in enumerate(sents):
        ref = inside_top_down(g, s)
        assert abs(logp[b].item() - ref) < 1e-9 * abs(ref)
        n = len(s)
        rows = probs[b, : n + 1]
        assert torch.allclose(rows.sum(-1), torch.ones(n + 1, dtype=torch.float64), atol=1e-12)
        picked = rows[torch.arange(n), tokens[b, :n] - 1]
        chain = picked.log().sum() + rows[n, -1].log()
        assert abs(chain.item() - ref) < 1e-9 * abs(ref)
        assert torch.isnan(probs[b, n + 1 :]).all()


def test_next_token_law_matches_sampling_frequencies() -> None:
    """Chi-square of sampled continuation counts against the DP, pooled over frequent prefixes."""
    stat, dof = 0.0, 0
    for g, n, min_count in ((small_grammars()[1], 20_000, 300),
                            (named_grammar("cfg3f"), 6_000, 300)):
        s = sample(g, n, seed=11)
        sents = s.sentences()
        counts: dict[tuple[int, ...], Counter] = defaultdict(Counter)
        example: dict[tuple[int, ...], tuple[int, int]] = {}
        for i, x in enumerate(sents):
            for t in range(min(len(x), 6) + 1):
                nxt = x[t] if t < len(x) else 0  # 0: end of sentence
                counts[tuple(x[:t])][nxt] += 1
                example.setdefault(tuple(x[:t]), (i, t))
        frequent = [p for p, c in counts.items() if sum(c.values()) >= min_count]
        assert len(frequent) >= 10
        rows = sorted({example[p][0] for p in frequent})
        tokens, lengths = pad_sentences([sents[i] for i in rows])
        probs = next_token_probs(g, tokens, lengths)
        at = {i: k for k, i in enumerate(rows)}
        for p in frequent:
            i, t = example[p]
            law = probs[at[i], t].numpy()
            total = sum(counts[p].values())
            observed = np.array([counts[p][v] for v in (*range(1, g.num_terminals + 1), 0)])
            expected = law * total
            assert np.all(observed[expected == 0] == 0)
            live = expected > 0
            stat += float(((observed[live] - expected[live]) ** 2 / expected[live]).sum())
            dof += int(live.sum()) - 1
    assert stat < dof + 5 * math.sqrt(2 * dof), (stat, dof)


def test_kl_recipe() -> None:
    g = named_grammar("cfg3f")
    tokens, lengths = pad_sentences(sample(g, 2, seed=9).sentences())
    target = next_token_probs(g, tokens, lengths)
    assert grammar_kl(target, target).abs().item() < 1e-12
    uniform = torch.full_like(target, 0.25)
    keep = ~torch.isnan(target).any(-1)
    t = (target[keep] + 1e-5) / (1 + 4e-5)
    manual = (t * (t.log() - math.log(0.25))).sum(-1).mean()
    assert abs(grammar_kl(target, uniform).item() - manual.item()) < 1e-12
    with pytest.raises(ValueError, match="shapes"):
        grammar_kl(target, uniform[:1])


def test_edge_inputs_and_bad_parameters() -> None:
    g = named_grammar("cfg3f")
    tokens, lengths = pad_sentences([[], [1, 2, 3], [7] * 200, [0, 1]])
    assert accepts(g, tokens, lengths).tolist() == [False] * 4
    assert torch.isinf(sentence_logprob(g, tokens, lengths)).all()
    probs = next_token_probs(g, tokens, lengths)
    assert torch.allclose(probs[0, 0].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.isnan(probs[2, 1]).all()  # no sentence starts with 7
    with pytest.raises(ValueError, match="tokens"):
        accepts(g, tokens[0], lengths)
    with pytest.raises(ValueError, match="lengths"):
        accepts(g, tokens, lengths[:2])
    with pytest.raises(ValueError, match="lengths"):
        accepts(g, tokens, lengths + 500)
    with pytest.raises(ValueError, match="batch_size"):
        accepts_sentences(g, [[1]], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        next_token_probs(g, tokens, lengths, batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    g = named_grammar("cfg3f")
    rng = random.Random(3)
    sents = sample(g, 64, seed=10).sentences()
    cases = sents + [corrupt(s, rng, 3) for s in sents]
    tokens, lengths = pad_sentences(cases)
    cpu = accepts(g, tokens, lengths)
    gpu = accepts(g, tokens.cuda(), lengths.cuda())
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    few = tokens[:4], lengths[:4]
    assert torch.allclose(next_token_probs(g, few[0].cuda(), few[1].cuda()).cpu(),
                          next_token_probs(g, *few), atol=1e-12, equal_nan=True)
