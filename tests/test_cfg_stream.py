"""CFGStream: purity, validity of every packed sentence (checked by the DP parser), masks, noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physlm.data import BatchSource
from physlm.data.cfg import random_grammar
from physlm.data.cfg_stream import CFGStream, CFGStreamConfig, grammar_digest
from physlm.measure.cfg_parse import accepts_sentences

GRAMMAR = random_grammar(3, sizes=(1, 2, 2, 2), num_rules=(2, 2))



def framed(row: list[int], bos: int, eos: int) -> list[list[int]]:
    """Sentences that start with bos and end with eos inside one row (independent scan)."""
    out, cur = [], None
    for t in row:
        if t == bos:
            cur = []
        elif t == eos:
            if cur is not None:
                out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(t)
    return out


def stream(**kw) -> CFGStream:
    base = dict(grammar=GRAMMAR, batch_size=4, seq_len=64, seed=1)
    return CFGStream(**{**base, **kw})


@pytest.mark.parametrize("packing", ["cut", "whole", "single"])
def test_pure_in_seed_and_step(packing):
    s = stream(packing=packing)
    assert isinstance(s, BatchSource)
    a, b = s.batch(5), stream(packing=packing).batch(5)
    for k in ("x", "y", "mask"):
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["x"], s.batch(6)["x"])
    assert not torch.equal(a["x"], stream(packing=packing, seed=2).batch(5)["x"])
    assert a["x"].shape == (4, 64)


@pytest.mark.parametrize("packing", ["cut", "whole", "single"])
def test_every_packed_sentence_is_in_the_language(packing):
    s = stream(packing=packing)
    rows = s.rows(0)
    sents = [x for r in rows.tolist() for x in framed(r, s.tokens.bos, s.tokens.eos)]
    assert len(sents) >= 4
    assert all(accepts_sentences(GRAMMAR, sents))


def test_whole_packing_masks_exactly_the_non_pad_targets():
    s = stream(packing="whole")
    rows = s.rows(3)
    b = s.batch(3)
    assert torch.equal(b["mask"], torch.as_tensor(rows[:, 1:] != 0))
    for r in rows.tolist():
        used = len(r) - (r[::-1].index(s.tokens.eos) if s.tokens.eos in r else len(r))
        assert all(t == 0 for t in r[used:])  # nothing after the last eos but padding
        assert r[0] == s.tokens.bos
        assert sum(len(x) + 2 for x in framed(r, s.tokens.bos, s.tokens.eos)) == used
    single = stream(packing="single").rows(0)
    assert all(r.tolist().count(s.tokens.bos) == 1 for r in single)
    assert stream(packing="cut").batch(0)["mask"].all()


def test_noise_rate_and_noisy_sentences_are_rejected():
    s = stream(noise=0.3, noise_fraction=0.2, batch_size=16)
    flags, good, bad = [], 0, []
    for step in range(4):
        sents, noisy = s.sentences(step)
        flags += noisy.tolist()
        ok = accepts_sentences(GRAMMAR, [x.tolist() for x in sents])
        good += sum(o for o, n in zip(ok, noisy, strict=True) if not n)
        bad += [o for o, n in zip(ok, noisy, strict=True) if n]
        assert good == sum(1 for n in flags if not n)  # clean sentences stay valid
    rate = float(np.mean(flags))
    sd = (0.3 * 0.7 / len(flags)) ** 0.5
    assert abs(rate - 0.3) < 4 * sd
    assert np.mean(bad) < 0.5  # most corrupted sentences leave the language
    clean = stream(noise=0.0).sentences(0)[1]
    assert not clean.any()


def test_spec_and_vocab():
    s = stream()
    spec = s.spec()
    assert spec["grammar_digest"] == grammar_digest(GRAMMAR)
    other = random_grammar(4, sizes=(1, 2, 2, 2), num_rules=(2, 2))
    assert stream(grammar=other).spec()["grammar_digest"] != spec["grammar_digest"]
    assert s.vocab_size == GRAMMAR.num_terminals + 3
    assert int(s.batch(0)["x"].max()) < s.vocab_size
    assert CFGStream(grammar="cfg3b", batch_size=1, seq_len=512).vocab_size == 6


@pytest.mark.parametrize(
    "kw",
    [
        {"grammar": "cfg9"},
        {"packing": "bogus"},
        {"noise": 1.5},
        {"noise_fraction": 0.0},
        {"seq_len": 3, "packing": "whole"},
        {"batch_size": 0},
    ],
)
def test_bad_config(kw):
    with pytest.raises(ValueError):
        CFGStreamConfig(**{**dict(grammar=GRAMMAR, batch_size=4, seq_len=64), **kw})
