"""Part 1's experiment plumbing: scales, settings, model inputs and the distribution measures."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from physlm.data.cfg import sample
from physlm.experiments import part1 as E
from physlm.measure.cfg_parse import accepts_sentences
from physlm.model import GPT
from physlm.scales import PART1_POSITIONS, SCALES, Shape, part1

PLAN = part1("smoke")
GRAMMAR = PLAN.grammar.build()


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_builds_its_grammar_and_models(scale):
    plan = part1(scale)
    g = plan.grammar.build()
    assert g.sizes[0] == 1 and g.num_terminals == 3
    for pos in plan.positions:
        cfg = plan.model_config(10, pos)
        assert cfg.pos == pos and cfg.n_layer == plan.shape.layers
    assert set(plan.positions) == set(PART1_POSITIONS)
    if scale in ("gpu", "paper"):
        assert plan.cut == 50 and plan.seq_len == 512  # the paper's cut and context


def test_scale_checks_name_the_parameter():
    with pytest.raises(ValueError, match="scale must be one of"):
        part1("huge")
    with pytest.raises(ValueError, match="positions must be drawn from"):
        dataclasses.replace(PLAN, positions=("rope", "alibi"))
    with pytest.raises(ValueError, match="too large for scale 'smoke'"):
        dataclasses.replace(PLAN, shape=Shape(12, 12, 768))
    with pytest.raises(ValueError, match="steps must be a positive int"):
        part1("smoke", steps=0)
    assert part1("smoke", steps=7).steps == 7


def test_settings_and_data_streams():
    settings = E.chapter_settings(PLAN)
    assert [s.pos for s in settings] == [*PLAN.positions, "rope", "rope"]
    assert [s.noisy for s in settings] == [False] * len(PLAN.positions) + [True, False]
    assert [s.encoder for s in settings] == [False] * (len(PLAN.positions) + 1) + [True]
    assert E.chapter_settings(dataclasses.replace(PLAN, encoder=False)) == settings[:-1]
    with pytest.raises(ValueError, match="encoder setting is GPT_rot's shape"):
        E.Setting("relative", encoder=True)
    with pytest.raises(ValueError, match="mask_rate must be in"):
        dataclasses.replace(PLAN, mask_rate=1.0)
    clean = E.make_data(PLAN, E.Setting("rope"))
    noisy = E.make_data(PLAN, E.Setting("rope", noisy=True))
    assert clean.config.noise == 0.0 and noisy.config.noise == PLAN.noise
    assert clean.spec() != noisy.spec()
    assert len({s.label() for s in settings}) == len(settings)


def test_framed_input():
    draw = sample(GRAMMAR, 5, 0)
    tok = E.make_data(PLAN, E.Setting("rope")).tokens
    idx = E.framed(draw.tokens, draw.lengths, tok)
    assert idx.shape == (5, draw.tokens.shape[1] + 1)
    assert (idx[:, 0] == tok.bos).all()
    for b, n in enumerate(draw.lengths):
        assert idx[b, 1 : 1 + n].tolist() == draw.tokens[b, :n].tolist()


class Oracle(nn.Module):
    """Logits that put the grammar's exact law on the right ids (from an EvalSet's target)."""

    def __init__(self, ev: E.EvalSet, vocab: int) -> None:
        super().__init__()
        self.ev, self.vocab = ev, vocab

    def forward(self, idx):
        tok = self.ev.tokens
        law = torch.nan_to_num(self.ev.target, nan=1.0 / self.ev.target.shape[-1])
        logits = torch.full((*idx.shape, self.vocab), -50.0, dtype=torch.float64)
        cols = [*range(1, tok.num_terminals + 1), tok.eos]
        logits[..., cols] = law.clamp_min(1e-30).log()
        return logits


def test_kl_is_zero_for_the_grammar_and_uniform_for_a_flat_model():
    ev = E.eval_set(GRAMMAR, 12, 3)
    vocab = E.make_data(PLAN, E.Setting("rope")).vocab_size
    assert E.kl_to_grammar(Oracle(ev, vocab), ev) < 1e-6
    flat = GPT(PLAN.model_config(vocab, "rope"))
    with torch.no_grad():
        flat.lm_head.weight.zero_()  # tied: every logit 0, a uniform guess
    assert abs(E.kl_to_grammar(flat, ev) - E.uniform_kl(ev)) < 1e-6
    assert E.uniform_kl(ev) > 0.1


def test_eval_set_law_is_normalised_and_sentences_valid():
    ev = E.eval_set(GRAMMAR, 10, 1)
    assert all(accepts_sentences(GRAMMAR, ev.draw.sentences()))
    rows = ev.target[~torch.isnan(ev.target).any(-1)]
    torch.testing.assert_close(rows.sum(-1), torch.ones(len(rows), dtype=rows.dtype))
    assert int(ev.valid.sum()) == int(ev.draw.lengths.sum())


def test_probe_and_attention_rows_cover_every_level_task_and_layer():
    ev = E.eval_set(GRAMMAR, 20, 2)
    torch.manual_seed(0)
    model = GPT(PLAN.model_config(E.make_data(PLAN, E.Setting("rope")).vocab_size, "rope"))
    rows = E.probe_parse(model, ev)
    levels = range(1, GRAMMAR.depth)
    want = {(lv, t, ly) for lv in levels for t in E.PROBE_TASKS for ly in (1, 2)}
    assert {(r["level"], r["task"], r["layer"]) for r in rows} == want
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    # the majority rate, recomputed independently from the NT-end labels of the test sentences
    _, test = E.train_test_split(20, 0.2, 2)
    ends = ev.draw.boundaries[test.numpy(), 1, :][ev.valid[test].numpy()]
    share = max(ends.mean(), 1 - ends.mean())
    got = next(r for r in rows if r["level"] == 1 and r["task"] == "NT end")
    assert abs(got["majority"] - share) < 1e-9
    # n is the accuracy's sample size: every real token of the test sentences for NT ends, the
    # level-l NT ends among them for the ancestor
    assert got["n"] == int(ev.valid[test].sum()) == len(ends)
    anc = next(r for r in rows if r["level"] == 1 and r["task"] == E.PROBE_TASKS[0])
    assert anc["n"] == int(ends.sum())
    att = E.attention_to_ends(model, ev)
    assert {(r["level"], r["layer"]) for r in att} == {(lv, ly) for lv in levels for ly in (1, 2)}
    assert all(np.isfinite(r["end - other (best head)"]) for r in att)


def test_repeats_counts_samples_that_repeat_an_earlier_one():
    assert E.repeats([]) == 0
    assert E.repeats([[1, 2], [2, 1], [3]]) == 0
    assert E.repeats([[1, 2], [1, 2], [1, 2], [3]]) == 2
    # a memorising sampler repeats itself; the grammar's own samples of a large language do not
    draw = sample(GRAMMAR, 50, 4).sentences()
    assert E.repeats(draw * 2) == len(draw) + E.repeats(draw)


def test_kl_by_position_averages_back_to_the_kl():
    ev = E.eval_set(GRAMMAR, 12, 5)
    torch.manual_seed(1)
    model = GPT(PLAN.model_config(E.make_data(PLAN, E.Setting("rope")).vocab_size, "rope"))
    rows = E.kl_by_position(model, ev)
    assert [r["prefix"] for r in rows] == sorted(r["prefix"] for r in rows)
    assert rows[0]["prefix"] == 0 and rows[0]["sentences"] == 12  # every sentence after <bos>
    assert rows[-1]["sentences"] >= 1 and all(r["kl"] >= 0 for r in rows)
    weighted = sum(r["kl"] * r["sentences"] for r in rows) / sum(r["sentences"] for r in rows)
    assert abs(weighted - E.kl_to_grammar(model, ev)) < 1e-9
    assert max(r["kl"] for r in E.kl_by_position(Oracle(ev, model.cfg.vocab_size), ev)) < 1e-6


def test_attention_excess_has_every_level_layer_and_head_and_feeds_the_rows():
    ev = E.eval_set(GRAMMAR, 10, 6)
    torch.manual_seed(2)
    model = GPT(PLAN.model_config(E.make_data(PLAN, E.Setting("rope")).vocab_size, "rope"))
    excess = E.attention_excess(model, ev)
    assert excess.shape == (GRAMMAR.depth - 1, PLAN.shape.layers, PLAN.shape.heads)
    rows = E.attention_rows(excess)
    assert rows == E.attention_to_ends(model, ev)
    for r in rows:
        gap = excess[r["level"] - 1, r["layer"] - 1]
        assert r["best head"] == int(gap.argmax())
        assert r["end - other (best head)"] == float(gap.max())


def test_encoder_run_is_bidirectional_masked_and_keyed_apart(tmp_path, monkeypatch):
    """The encoder setting trains GPT_rot's shape with causal=False on masked tokens, one id more
    for [MASK]; its run key differs from GPT_rot's, whose run is untouched."""
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    plan = dataclasses.replace(PLAN, steps=4)
    enc = E.train_setting(plan, E.Setting("rope", encoder=True), progress=False)
    dec = E.train_setting(plan, E.Setting("rope"), progress=False)
    assert enc.key != dec.key
    vocab = E.make_data(plan, E.Setting("rope")).vocab_size
    assert enc.model.cfg == dec.model.cfg.with_(vocab_size=vocab + 1, causal=False)
    assert E.train_config(plan, 0, "masked").objective == "masked"


def test_masked_token_accuracy_counts_masked_terminals_against_the_majority_guess():
    ev = E.eval_set(GRAMMAR, 40, 4)
    vocab = ev.tokens.vocab_size + 1
    torch.manual_seed(0)
    untrained = GPT(PLAN.model_config(vocab, "rope").with_(causal=False))
    res = E.masked_token_accuracy(untrained, ev, 0.3, seed=1)
    assert res["n"] > 0 and 0 <= res["correct"] <= res["n"]
    # the targets, recomputed: each a terminal of a sentence, about 30% of them chosen
    assert abs(res["n"] / int(ev.valid.sum()) - 0.3) < 0.08
    assert res["majority"] >= res["n"] / ev.tokens.num_terminals  # the most frequent of 3
    assert E.masked_token_accuracy(untrained, ev, 0.3, seed=1) == res  # seeded


def test_encoder_states_see_each_sentence_alone():
    """An encoder's states of a sentence do not depend on the padding or the other sentences
    of the batch; a decoder's come straight from the padded batch."""
    ev = E.eval_set(GRAMMAR, 6, 5)
    vocab = ev.tokens.vocab_size + 1
    torch.manual_seed(0)
    enc = GPT(PLAN.model_config(vocab, "rope").with_(causal=False)).eval()
    states = E.sentence_states(enc, ev)
    b = int(np.argmin(ev.draw.lengths))
    n = int(ev.draw.lengths[b])
    alone = E.hidden_states(enc, ev.idx[b : b + 1, : n + 2])
    for layer, h in states.items():
        torch.testing.assert_close(h[b, : n + 2], alone[layer][0])
        assert not h[b, n + 2 :].any()
    dec = GPT(PLAN.model_config(vocab, "rope")).eval()
    for layer, h in E.sentence_states(dec, ev).items():
        torch.testing.assert_close(h, E.hidden_states(dec, ev.idx)[layer])
