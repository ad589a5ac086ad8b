"""The capacity measure of Part 3.3, pinned against hand computations and controlled fake models.

The fake models know chosen parts of the data exactly: at a value position they spread
probability over the pool entries that agree with the tokens so far (a trie), so the summed loss
of a value is exactly ln(pool size), and of a name exactly ln N0 (pools) or ln N (people).
"""

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from torch import nn

from physlm.data.biod import BioDStream
from physlm.data.bios import COUNTED, BioSStream
from physlm.measure.capacity import (
    BIOS_LOG2_S0,
    BIOS_N0,
    LOG2E,
    Losses,
    biod_bits,
    biod_max_bits,
    bios_bits,
    bios_max_bits,
    bits_from_losses,
    capacity_ratio,
    measure_capacity,
    measure_losses,
)

NEG = -1e4


# ----------------------------------------------------------------------------------------------
# formulas


def test_bios_constants_and_max_bits_per_person():
    assert BIOS_N0 == 160_000_000
    assert BIOS_LOG2_S0 == pytest.approx(47.5916, abs=1e-4)
    for n, per_person in ((10_000, 61.56), (100_000, 58.24), (1_000_000, 54.91)):
        assert bios_max_bits(n) / n == pytest.approx(per_person, abs=0.01)
        assert bios_max_bits(n) == pytest.approx(n * math.log2(BIOS_N0 / n) + n * BIOS_LOG2_S0)


def test_bios_bits_perfect_uniform_partial():
    n = 5000
    assert bios_bits(n, math.log(n), 0.0) == pytest.approx(bios_max_bits(n))
    assert bios_bits(n, math.log(BIOS_N0), BIOS_LOG2_S0 / LOG2E) == pytest.approx(0, abs=1e-6)
    half = bios_bits(n, math.log(n), BIOS_LOG2_S0 / LOG2E / 2)
    assert half == pytest.approx(n * math.log2(BIOS_N0 / n) + n * BIOS_LOG2_S0 / 2)
    assert 0 < half < bios_max_bits(n)
    # one extra nat of loss per person costs N log2(e) bits
    assert bios_bits(n, 1.0, 3.0) - bios_bits(n, 1.0, 4.0) == pytest.approx(n * LOG2E)
    exact = bios_bits(n, 1.0, 3.0, exact=True) - bios_bits(n, 1.0, 3.0)
    assert exact == pytest.approx(n * math.log2(1 - n / BIOS_N0))
    assert capacity_ratio(bios_max_bits(n), 100_000) == pytest.approx(bios_max_bits(n) / 1e5)


def test_biod_bits_hand_computed():
    n, K, C, D, L, T = 1000, 4, 2, 50, 3, 20
    log2_n0 = math.log2(1e6)
    total = n * math.log2(1e6 / n) + n * K * C * math.log2(D) + K * D * (L * math.log2(T)
                                                                     - math.log2(D))
    assert biod_max_bits(n, K, C, D, L, T, log2_n0) == pytest.approx(total)
    # knows the chunk strings but nobody's values, names uniform over the name space
    chunks_only = biod_bits(n, K, C, D, L, T, math.log(1e6), C * math.log(D), 0.0, log2_n0)
    assert chunks_only == pytest.approx(K * D * math.log2(T ** L / D))
    # knows nothing at all
    nothing = biod_bits(n, K, C, D, L, T, math.log(1e6), C * L * math.log(T),
                        (L - 1) * math.log(T), log2_n0)
    assert nothing == pytest.approx(n * K * C * math.log2(D / T ** L) + K * D * math.log2(T / D))
    assert nothing < 0 < chunks_only < total
    exact = biod_max_bits(n, K, C, D, L, T, log2_n0, exact=True) - total
    assert exact == pytest.approx(n * math.log2(1 - n / 1e6) + K * D * math.log2(1 - D / T ** L))


def test_formula_errors():
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="params"):
            capacity_ratio(1.0, bad)
        with pytest.raises(ValueError, match="n_people"):
            bios_bits(bad, 0.0, 0.0)
    with pytest.raises(ValueError, match="K"):
        biod_bits(10, 0, 1, 1, 1, 1, 0.0, 0.0, 0.0, 5.0)
    with pytest.raises(ValueError, match="exact"):
        bios_bits(10, 0.0, 0.0, log2_n0=3.0, exact=True)  # N >= N0
    with pytest.raises(ValueError, match="kind"):
        bits_from_losses(Losses(1, 0.0, 0.0), {"kind": "bioX", "n_people": 1})


# ----------------------------------------------------------------------------------------------
# fake models


class TableModel(nn.Module):
    """Logits looked up per input row: log-probabilities at chosen positions, else the target."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.v = vocab_size
        self.rows: dict[tuple, tuple[list[int], dict]] = {}
        self.scale = nn.Parameter(torch.ones(()))

    def add(self, x: torch.Tensor, y: torch.Tensor, special: dict):
        self.rows[tuple(x.tolist())] = (y.tolist(), special)

    def forward(self, x):
        out = torch.full((x.shape[0], x.shape[1], self.v), NEG)
        for b, row in enumerate(x.tolist()):
            y, special = self.rows[tuple(row)]
            for t, target in enumerate(y):
                if t in special:
                    ids, logp = special[t]
                    out[b, t, ids] = torch.tensor(logp, dtype=torch.float32)
                else:
                    out[b, t, target] = 0.0
        return out * self.scale


class Uniform(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.v = vocab_size
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.zeros(x.shape[0], x.shape[1], self.v) + self.w


def trie(seqs):
    """prefix -> Counter of next tokens, over a list of token sequences."""
    t = defaultdict(Counter)
    for s in seqs:
        for i in range(len(s)):
            t[tuple(s[:i])][s[i]] += 1
    return t


def trie_logp(t, prefix):
    c = t[tuple(prefix)]
    total = sum(c.values())
    ids = list(c)
    return ids, [math.log(c[i] / total) for i in ids]


def spread(special, positions, y, tr):
    """Fill ``special`` so that the tokens at ``positions`` follow trie ``tr``."""
    seq = [int(y[p]) for p in positions]
    for i, p in enumerate(positions):
        special[p] = trie_logp(tr, seq[:i])


def bios_pools_tokens(stream):
    w = stream.world
    return {"pronoun": [[i] for i in w.pronoun], "birth_month": [[i] for i in w.month],
            "birth_day": [[i] for i in w.day], "birth_year": [[i] for i in w.year],
            "birth_city": w.city, "university": w.university, "major": w.major,
            "employer": w.employer}


def bios_model(stream, names: str, known: set[str]):
    """names: 'pools' (uniform over N0) or 'people' (uniform over the N people); attributes in
    ``known`` are predicted exactly, the others uniformly over their pool."""
    w = stream.world
    pools = {k: trie(v) for k, v in bios_pools_tokens(stream).items()}
    people = trie([[w.first[f], w.middle[m], w.last[last]] for f, m, last in
                   zip(stream.people.first, stream.people.middle, stream.people.last,
                       strict=True)])
    pool_names = [[(ids, [-math.log(len(ids))] * len(ids))] for ids in (w.first, w.middle,
                                                                        w.last)]
    model = TableModel(stream.vocab_size)
    for b in stream.eval_batches(16):
        for r in range(b["x"].shape[0]):
            y, special = b["y"][r], {}
            pos = torch.nonzero(b["name_mask"][r]).ravel().tolist()
            if names == "people":
                spread(special, pos, y, people)
            else:
                for i, p in enumerate(pos):
                    special[p] = pool_names[i][0]
            for a, key in enumerate(COUNTED):
                if key not in known:
                    spread(special, torch.nonzero(b["attr"][r] == a).ravel().tolist(), y,
                           pools[key])
            model.add(b["x"][r], y, special)
    return model


@pytest.fixture(scope="module")
def bios_small():
    return BioSStream(n_people=24, exposures=1, batch_size=2, seq_len=200, seed=5)


def test_bios_pool_uniform_guesser_scores_zero(bios_small):
    s = bios_small
    model = bios_model(s, "pools", known=set())
    losses = measure_losses(model, s, batch_size=5)
    assert losses.p1 == pytest.approx(math.log(BIOS_N0), rel=1e-5)
    assert losses.p2 == pytest.approx(BIOS_LOG2_S0 / LOG2E, rel=1e-5)
    assert losses.per_attribute["birth_city"] == pytest.approx(math.log(200), rel=1e-5)
    assert losses.per_attribute["employer"] == pytest.approx(math.log(263), rel=1e-5)
    cap = measure_capacity(model, s, params=1000)
    assert abs(cap.bits) < 1e-3 * s.config.n_people
    assert cap.max_bits == pytest.approx(bios_max_bits(24))


def test_bios_perfect_model_scores_the_maximum(bios_small):
    s = bios_small
    model = bios_model(s, "people", known=set(COUNTED))
    losses = measure_losses(model, s)
    assert losses.p1 == pytest.approx(math.log(24), rel=1e-5)
    assert losses.p2 == pytest.approx(0.0, abs=1e-6)
    cap = measure_capacity(model, s, params=777)
    assert cap.bits == pytest.approx(cap.max_bits, rel=1e-6)
    assert cap.ratio == pytest.approx(bios_max_bits(24) / 777, rel=1e-6)


def test_bios_partial_knowledge_lands_between(bios_small):
    s = bios_small
    model = bios_model(s, "people", known={"birth_month", "birth_day", "birth_year"})
    cap = measure_capacity(model, s, params=1000)
    want = 24 * math.log2(BIOS_N0 / 24) + 24 * math.log2(12 * 28 * 200)
    assert cap.bits == pytest.approx(want, rel=1e-5)
    assert 0 < cap.bits < cap.max_bits


def test_bios_uniform_over_vocabulary_by_hand(bios_small):
    s = bios_small
    v = s.vocab_size
    model = Uniform(v)
    model.train()
    losses = measure_losses(model, s, batch_size=7)
    assert model.training  # the mode is restored
    counted = [sum(spans[k][1] - spans[k][0] for k in COUNTED)
               for spans in (s.render_person(i)[1] for i in range(24))]
    assert losses.p1 == pytest.approx(3 * math.log(v), rel=1e-6)
    assert losses.p2 == pytest.approx(np.mean(counted) * math.log(v), rel=1e-6)
    assert bits_from_losses(losses, s.knowledge())[0] < 0


def test_domain_token_rows_are_measured_the_same(bios_small):
    s = BioSStream(n_people=24, exposures=1, batch_size=2, seq_len=200, seed=5,
                   domain_token=True)
    losses = measure_losses(Uniform(s.vocab_size), s)
    base = measure_losses(Uniform(bios_small.vocab_size), bios_small)
    assert losses.p1 == pytest.approx(base.p1) and losses.p2 == pytest.approx(base.p2)


def biod_model(stream, names: str, values: str):
    """names: 'pools' | 'people'; values: 'known' | 'chunks' (knows the chunk strings only) |
    'nothing' (uniform over the T chunk tokens)."""
    c = stream.config
    model = TableModel(stream.vocab_size)
    people = trie([[int(stream.name_tok[p][stream.names[i, p]]) for p in range(2)]
                   for i in range(c.n_people)])
    chunk_tries = [trie(stream.chunk_tok[a].tolist()) for a in range(c.n_attributes)]
    alphabet = stream.value_tok.tolist()
    for b in stream.eval_batches(8):
        for r in range(b["x"].shape[0]):
            y, special = b["y"][r], {}
            pos = torch.nonzero(b["name_mask"][r]).ravel().tolist()
            if names == "people":
                spread(special, pos, y, people)
            else:
                for i, p in enumerate(pos):
                    ids = stream.name_tok[i].tolist()
                    special[p] = (ids, [-math.log(len(ids))] * len(ids))
            for p0 in torch.nonzero(b["chunk_start"][r] >= 0).ravel().tolist():
                a = int(b["chunk_start"][r, p0]) // c.diversity
                span = list(range(p0, p0 + c.chunk_len))
                if values == "chunks":
                    spread(special, span, y, chunk_tries[a])
                elif values == "nothing":
                    for p in span:
                        special[p] = (alphabet, [-math.log(c.chunk_vocab)] * c.chunk_vocab)
            model.add(b["x"][r], y, special)
    return model


@pytest.fixture(scope="module")
def biod_small():
    return BioDStream(n_people=30, n_attributes=3, chunks=2, diversity=8, chunk_len=3,
                      chunk_vocab=5, exposures=1, batch_size=2, seq_len=60, seed=4,
                      name_pools=(20, 30))


def test_biod_perfect_model_scores_the_maximum(biod_small):
    s = biod_small
    cap = measure_capacity(biod_model(s, "people", "known"), s, params=500)
    assert cap.losses.p1 == pytest.approx(math.log(30), rel=1e-5)
    assert cap.losses.p2 == pytest.approx(0, abs=1e-6) and cap.losses.p3 == pytest.approx(0)
    want = biod_max_bits(30, 3, 2, 8, 3, 5, math.log2(600))
    assert cap.bits == pytest.approx(want, rel=1e-6) and cap.max_bits == pytest.approx(want)


def test_biod_chunk_strings_only(biod_small):
    s = biod_small
    cap = measure_capacity(biod_model(s, "pools", "chunks"), s, params=500)
    assert cap.losses.p1 == pytest.approx(math.log(600), rel=1e-5)
    assert cap.losses.p2 == pytest.approx(2 * math.log(8), rel=1e-5)  # per attribute
    assert cap.losses.p3 == pytest.approx(0, abs=1e-6)
    assert cap.bits == pytest.approx(3 * 8 * math.log2(5 ** 3 / 8), rel=1e-4)


def test_biod_know_nothing_by_hand(biod_small):
    s = biod_small
    losses = measure_losses(biod_model(s, "pools", "nothing"), s)
    assert losses.p2 == pytest.approx(2 * 3 * math.log(5), rel=1e-5)
    seen = {(a, int(d)) for a in range(3) for d in np.unique(s.values[:, a])}
    assert losses.chunks_seen == len(seen)
    p3 = np.mean([3 - int(s.prefix_len[a, d]) for a, d in seen]) * math.log(5)
    assert losses.p3 == pytest.approx(p3, rel=1e-5)
    assert set(losses.per_attribute) == {"attr0", "attr1", "attr2"}


def test_eval_must_cover_every_person(bios_small):
    class Short:
        def knowledge(self):
            return bios_small.knowledge()

        def eval_batches(self, batch_size):
            yield next(bios_small.eval_batches(5))

    with pytest.raises(ValueError, match="covered 5 people"):
        measure_losses(Uniform(bios_small.vocab_size), Short())
