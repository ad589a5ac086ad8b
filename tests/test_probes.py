"""Tests for physlm.measure.probes: planted features found, absent ones not, frozen model kept."""

from __future__ import annotations

import pytest
import torch

from physlm.measure.probes import (
    P_PROBING,
    Q_PROBING,
    embedding_delta,
    fit_embedding_lowrank_probe,
    fit_linear_probe,
    fit_probes,
    flatten_positions,
    hidden_states,
    probe_accuracies,
    train_test_split,
)
from physlm.model import GPT, ModelConfig

torch.set_num_threads(1)


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=kw.pop("vocab_size", 16), n_layer=2, n_head=2, n_embd=32, block_size=16, **kw
    )
    return GPT(cfg)


def planted(n: int, d: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian features labelled by the argmax of a fixed random projection: linear by design."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    proj = torch.randn(d, classes, generator=g)
    return x, (x @ proj).argmax(dim=1)


# ------------------------------------------------------------------------- linear probe


def test_probe_finds_planted_linear_feature():
    x, y = planted(1200, 24, 4, seed=1)
    tr, te = train_test_split(len(x), 0.25, seed=0)
    probe = fit_linear_probe(x[tr], y[tr], l2=1e-4)
    assert probe.accuracy(x[te], y[te]) > 0.93
    assert probe.accuracy(x[tr], y[tr]) > 0.95


def test_probe_does_not_find_absent_feature():
    x, _ = planted(1200, 24, 4, seed=2)
    y = torch.randint(0, 4, (1200,), generator=torch.Generator().manual_seed(3))
    tr, te = train_test_split(len(x), 0.5, seed=0)
    probe = fit_linear_probe(x[tr], y[tr], l2=1e-4)
    held_out = probe.accuracy(x[te], y[te])
    # Chance is 0.25; 600 test items give a standard error of ~0.018.
    assert 0.17 < held_out < 0.33
    assert probe.accuracy(x[tr], y[tr]) > held_out  # it fits noise on train, not on test


def test_probe_negative_labels_skipped_and_predictions_match_logits():
    x, y = planted(300, 8, 3, seed=4)
    y_masked = y.clone()
    y_masked[::3] = -1
    probe = fit_linear_probe(x, y_masked)
    assert probe.num_classes == 3
    keep = y_masked >= 0
    manual = (probe.predict(x[keep]) == y[keep]).float().mean().item()
    assert probe.accuracy(x, y_masked) == pytest.approx(manual)
    z = (x - probe.mean) / probe.scale
    assert torch.allclose(probe.logits(x), z @ probe.weight.T + probe.bias)


def test_probe_is_deterministic():
    x, y = planted(400, 12, 5, seed=5)
    p1, p2 = fit_linear_probe(x, y), fit_linear_probe(x, y)
    assert torch.equal(p1.weight, p2.weight) and torch.equal(p1.bias, p2.bias)


def test_per_position_multi_label_probes():
    # Part 1 shape: [N, T, d] states, one label column per level, padding masked out.
    g = torch.Generator().manual_seed(6)
    feats = torch.randn(40, 10, 16, generator=g)
    proj = torch.randn(16, 3, generator=g)
    level0 = (feats @ proj[:, :2]).argmax(-1)  # linear in the features
    level1 = torch.randint(0, 3, (40, 10), generator=g)  # not there
    labels = torch.stack((level0, level1), dim=-1)
    mask = torch.ones(40, 10, dtype=torch.bool)
    mask[:, 8:] = False
    tr, te = train_test_split(40, 0.5, seed=1)  # split sequences, not tokens
    xtr, ytr = flatten_positions(feats[tr], labels[tr], mask[tr])
    xte, yte = flatten_positions(feats[te], labels[te], mask[te])
    assert xtr.shape == (20 * 8, 16) and ytr.shape == (20 * 8, 2)
    probes = fit_probes(xtr, ytr, l2=1e-3)
    acc = probe_accuracies(probes, xte, yte)
    assert acc[0] > 0.9 and acc[1] < 0.5


def test_train_test_split():
    tr, te = train_test_split(10, 0.3, seed=2)
    assert len(te) == 3 and len(tr) == 7
    assert sorted(torch.cat((tr, te)).tolist()) == list(range(10))
    tr2, te2 = train_test_split(10, 0.3, seed=2)
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    assert not torch.equal(te, train_test_split(10, 0.3, seed=3)[1])


def test_linear_probe_value_errors():
    x, y = planted(20, 4, 2, seed=0)
    with pytest.raises(ValueError, match="features"):
        fit_linear_probe(x[0], y)
    with pytest.raises(ValueError, match="labels"):
        fit_linear_probe(x, y.float())
    with pytest.raises(ValueError, match="labels"):
        fit_linear_probe(x, y[:5])
    with pytest.raises(ValueError, match="num_classes"):
        fit_linear_probe(x, y + 3, num_classes=2)
    with pytest.raises(ValueError, match="l2"):
        fit_linear_probe(x, y, l2=-1.0)
    with pytest.raises(ValueError, match="no entry"):
        fit_linear_probe(x, torch.full_like(y, -1))
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(10, 1.0)
    with pytest.raises(ValueError, match="n must"):
        train_test_split(1)
    with pytest.raises(ValueError, match="mask"):
        flatten_positions(
            torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3)
        )


# ------------------------------------------------------------------------ hidden states


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_hidden_states_shapes_and_logits(pos):
    model = tiny_gpt(pos=pos)
    model.train()
    idx = torch.randint(0, 16, (3, 9), generator=torch.Generator().manual_seed(0))
    states = hidden_states(model, idx)
    assert sorted(states) == [0, 1]
    assert all(s.shape == (3, 9, 32) and not s.requires_grad for s in states.values())
    assert model.training  # mode restored
    with torch.no_grad():
        logits = model(idx)
        again = model.lm_head(model.ln_f(states[1]))
    assert torch.allclose(again, logits, atol=1e-6)
    # The first block's output is the block applied to the embeddings.
    only_first = hidden_states(model, idx, layers=[-2])
    assert list(only_first) == [0] and torch.equal(only_first[0], states[0])


def test_hidden_states_value_errors():
    model = tiny_gpt()
    idx = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="layers"):
        hidden_states(model, idx, layers=[2])
    with pytest.raises(ValueError, match="layers"):
        hidden_states(model, idx, layers=[])
    with pytest.raises(ValueError, match="idx"):
        hidden_states(model, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="idx"):
        hidden_states(model, idx + 16)


# ------------------------------------------------------- P-probing / Q-probing


def probe_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random sequences, a random probed position each, label = a fixed map of that token."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 16, (n, 10), generator=g)
    positions = torch.randint(2, 10, (n,), generator=g)
    token_class = torch.randint(0, 4, (16,), generator=g)
    labels = token_class[inputs[torch.arange(n), positions]]
    return inputs, positions, labels


def test_lowrank_probe_keeps_model_bit_identical_and_starts_at_zero_delta():
    model = tiny_gpt()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs, positions, labels = probe_data(120, seed=1)
    with torch.no_grad():
        logits_before = model(inputs)
    res = fit_embedding_lowrank_probe(
        model, inputs, positions, labels, rank=2, steps=5, batch_size=16, lr=1e-2
    )
    assert res.rank == 2 and res.a.shape == (16, 2) and res.b.shape == (2, 32)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert model.training
    with torch.no_grad():
        assert torch.equal(model(inputs), logits_before)  # no hook left behind

    # Zero steps: the delta is exactly zero and the hooked model computes what the model does.
    zero = fit_embedding_lowrank_probe(model, inputs, positions, labels, rank=3, steps=0)
    assert torch.count_nonzero(zero.b) == 0 and torch.count_nonzero(zero.a) > 0
    with torch.no_grad(), embedding_delta(model, zero.a, zero.b):
        hooked = model(inputs)
    assert torch.equal(hooked, logits_before)
    # ... while a non-zero delta does change the model's outputs (the hook is live).
    with torch.no_grad(), embedding_delta(model, zero.a, torch.ones_like(zero.b)):
        assert not torch.allclose(model(inputs), logits_before)


def test_lowrank_probe_learns_token_at_position():
    model = tiny_gpt(seed=1)
    inputs, positions, labels = probe_data(500, seed=2)
    res = fit_embedding_lowrank_probe(
        model,
        inputs,
        positions,
        labels,
        rank=2,
        steps=300,
        batch_size=50,
        lr=1e-2,
        weight_decay=0.0,
    )
    assert res.train_accuracy > 0.95
    assert res.test_accuracy > 0.9
    assert res.accuracy(
        model, inputs[res.test_index], positions[res.test_index], labels[res.test_index]
    ) == pytest.approx(res.test_accuracy)


def test_lowrank_probe_random_labels_near_chance():
    model = tiny_gpt(seed=2)
    inputs, positions, _ = probe_data(400, seed=3)
    labels = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(9))
    res = fit_embedding_lowrank_probe(
        model,
        inputs,
        positions,
        labels,
        rank=2,
        steps=150,
        lr=1e-2,
        test_fraction=0.5,
        **{"norm": "batch"},
    )
    assert res.test_accuracy < 0.4  # chance 0.25; 200 test items


def test_lowrank_probe_deterministic_for_seed():
    model = tiny_gpt(seed=3)
    inputs, positions, labels = probe_data(100, seed=4)
    kw = dict(rank=2, steps=20, batch_size=10, lr=1e-2, seed=7)
    r1 = fit_embedding_lowrank_probe(model, inputs, positions, labels, **kw)
    r2 = fit_embedding_lowrank_probe(model, inputs, positions, labels, **kw)
    assert torch.equal(r1.a, r2.a) and torch.equal(r1.b, r2.b)
    assert r1.test_accuracy == r2.test_accuracy
    r3 = fit_embedding_lowrank_probe(model, inputs, positions, labels, **{**kw, "seed": 8})
    assert not torch.equal(r1.b, r3.b)


def test_paper_presets_run():
    model = tiny_gpt(seed=4)
    inputs, positions, labels = probe_data(60, seed=5)
    assert P_PROBING["rank"] == 2 and Q_PROBING["rank"] == 16
    for preset in (P_PROBING, Q_PROBING):
        res = fit_embedding_lowrank_probe(model, inputs, positions, labels, steps=2, **preset)
        assert res.a.shape[1] == preset["rank"]


def test_lowrank_probe_value_errors():
    model = tiny_gpt()
    inputs, positions, labels = probe_data(20, seed=0)
    fit = fit_embedding_lowrank_probe
    with pytest.raises(ValueError, match="rank"):
        fit(model, inputs, positions, labels, rank=0)
    with pytest.raises(ValueError, match="norm"):
        fit(model, inputs, positions, labels, rank=2, norm="group")
    with pytest.raises(ValueError, match="positions"):
        fit(model, inputs, positions + 10, labels, rank=2)
    with pytest.raises(ValueError, match="positions"):
        fit(model, inputs, positions[:5], labels, rank=2)
    with pytest.raises(ValueError, match="labels"):
        fit(model, inputs, positions, labels[:5], rank=2)
    with pytest.raises(ValueError, match="labels"):
        fit(model, inputs, positions, labels - 10, rank=2)
    with pytest.raises(ValueError, match="inputs"):
        fit(model, inputs + 100, positions, labels, rank=2)
    with pytest.raises(ValueError, match="steps"):
        fit(model, inputs, positions, labels, rank=2, steps=-1)
    with pytest.raises(ValueError, match="num_classes"):
        fit(model, inputs, positions, labels, rank=2, num_classes=1)
