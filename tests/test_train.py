"""The trainer: it learns, it is deterministic, and a resumed run equals an uninterrupted one."""

import math

import pytest
import torch
from toydata import CountingData

from physlm.checkpoint import list_checkpoints
from physlm.model import GPT, ModelConfig
from physlm.train import TrainConfig, lr_at, train

MODEL = ModelConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=32, block_size=16)
TRAIN = TrainConfig(steps=60, lr=3e-3, warmup_steps=5, log_every=10, checkpoint_every=20)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_falls(tmp_path):
    _, metrics = train(MODEL, TRAIN, CountingData(), tmp_path, progress=False)
    losses = [m["loss"] for m in metrics if m["kind"] == "train"]
    assert losses[0] > 2.0
    assert losses[-1] < 0.5 * losses[0]


def test_same_seed_same_model(tmp_path):
    a, _ = train(MODEL, TRAIN, CountingData(), tmp_path / "a", progress=False)
    b, _ = train(MODEL, TRAIN, CountingData(), tmp_path / "b", progress=False)
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k


def test_resume_equals_uninterrupted(tmp_path):
    full, full_metrics = train(MODEL, TRAIN, CountingData(), tmp_path / "full", progress=False)
    train(MODEL, TRAIN, CountingData(), tmp_path / "cut", progress=False, stop_after=30)
    assert [p.name for p in list_checkpoints(tmp_path / "cut" / "checkpoints")][
        0
    ] == "step-00000020"
    resumed, metrics = train(MODEL, TRAIN, CountingData(), tmp_path / "cut", progress=False)
    for k, v in weights(full).items():
        assert torch.equal(v, weights(resumed)[k]), k
    assert [m["loss"] for m in metrics] == [m["loss"] for m in full_metrics]


def test_corrupt_checkpoint_is_skipped_with_a_message(tmp_path, capsys):
    train(MODEL, TRAIN, CountingData(), tmp_path, progress=False, stop_after=45)
    newest = list_checkpoints(tmp_path / "checkpoints")[0]
    model_file = newest / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])  # truncate
    full, _ = train(MODEL, TRAIN, CountingData(), tmp_path / "ref", progress=False)
    resumed, _ = train(MODEL, TRAIN, CountingData(), tmp_path, progress=False)
    out = capsys.readouterr().out
    assert "step-00000040 is not usable" in out and "resuming from checkpoint step-00000020" in out
    for k, v in weights(full).items():
        assert torch.equal(v, weights(resumed)[k]), k


def test_evals_are_logged(tmp_path):
    cfg = TrainConfig(steps=20, warmup_steps=2, eval_every=10, log_every=5)
    calls = []

    def probe(model, step):
        calls.append(step)
        assert not model.training
        return {"answer": 42.0}

    _, metrics = train(MODEL, cfg, CountingData(), tmp_path, evals={"probe": probe}, progress=False)
    assert calls == [10, 20]
    assert [m["probe/answer"] for m in metrics if m["kind"] == "eval"] == [42.0, 42.0]


def test_schedule_warmup_then_cosine_to_floor():
    cfg = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert math.isclose(lr_at(cfg, 0), 0.1)
    assert math.isclose(lr_at(cfg, 9), 1.0)
    assert math.isclose(lr_at(cfg, 10), 1.0)
    assert math.isclose(lr_at(cfg, 60), 0.55)
    assert math.isclose(lr_at(cfg, 110), 0.1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(steps=0), "steps"),
        (dict(lr=-1.0), "lr"),
        (dict(precision="fp8"), "precision"),
        (dict(min_lr_ratio=2.0), "min_lr_ratio"),
    ],
)
def test_bad_train_config_names_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**({"steps": 10} | bad))


def test_vocab_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train(MODEL.with_(vocab_size=8), TRAIN, CountingData(vocab_size=16), tmp_path)


def test_loss_columns_cut_only_what_no_loss_can_see():
    """The trimmed batch gives the full batch's loss and gradients (the model is causal)."""
    from physlm.model import GPT, lm_loss
    from physlm.tiny_run import CountingRows
    from physlm.train import loss_columns

    torch.manual_seed(0)
    data = CountingRows(vocab_size=16, batch_size=3, seq_len=16, seed=3)  # targets: 9, 1, 10
    batch = data.batch(0)
    x, y, mask = batch["x"], batch["y"], batch["mask"]
    tx, ty, tmask = loss_columns(x, y, mask)
    last = int(mask.any(0).nonzero()[-1])
    assert tx.shape[1] == ty.shape[1] == tmask.shape[1] == last + 1 < x.shape[1]
    model = GPT(MODEL)
    lm_loss(model(x), y, mask).backward()  # every column, the loss masked
    full = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    lm_loss(model(tx, at=tmask), ty[tmask]).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, full[n], atol=1e-6), n
    none = torch.zeros_like(mask)
    assert loss_columns(x, y, none)[0].shape[1] == 1  # no target at all: one column is kept


# ------------------------------------------------------------------ masked-LM objective (encoder)

ENCODER = MODEL.with_(vocab_size=17, causal=False)  # one id past the data's 16: [MASK]
MASKED = TrainConfig(steps=1, lr=1e-3, warmup_steps=0, log_every=1, objective="masked")


def test_masked_batch_chooses_only_loss_tokens_in_the_recipe_shares():
    from physlm.train import masked_lm_batch

    data = CountingData(batch_size=64, seq_len=12)
    batch = data.batch(3)
    batch["mask"][:, 8:] = False  # the tail is not a target: its tokens may not be chosen
    cfg = TrainConfig(steps=10, mask_rate=0.5, mask_recipe=(0.5, 0.25, 0.25))
    out = masked_lm_batch(batch, cfg, step=3, mask_id=16)
    chosen = out["mask"]
    assert torch.equal(out["y"], batch["x"])
    assert not chosen[:, 0].any() and not chosen[:, 9:].any()  # x[t] counts iff mask[t - 1]
    rate = chosen[:, 2:9].float().mean().item()  # allowed: 2..8 (CountingData skips t = 0)
    assert abs(rate - 0.5) < 0.06
    unchosen = ~chosen
    assert torch.equal(out["x"][unchosen], batch["x"][unchosen])
    became_mask = (out["x"] == 16) & chosen
    assert abs(became_mask.sum().item() / chosen.sum().item() - 0.5) < 0.08
    changed = (out["x"] != batch["x"]) & chosen & ~became_mask
    assert 0 < changed.sum().item() / chosen.sum().item() < 0.25  # random draws may hit the same
    assert set(out["x"][changed].tolist()) <= set(batch["x"][:, 1:].flatten().tolist())
    again = masked_lm_batch(data.batch(3) | {"mask": batch["mask"]}, cfg, step=3, mask_id=16)
    assert all(torch.equal(again[k], out[k]) for k in out)  # a pure function of (seed, step)
    other = masked_lm_batch(batch, cfg, step=4, mask_id=16)
    assert not torch.equal(other["mask"], chosen)


def test_masked_loss_is_cross_entropy_on_the_chosen_positions_only(tmp_path):
    """The first logged loss (before any update) equals a hand computation on the same batch."""
    from physlm.train import masked_lm_batch, seed_everything

    data = CountingData(batch_size=4, seq_len=10)
    _, metrics = train(ENCODER, MASKED, data, tmp_path, progress=False)
    seed_everything(MASKED.seed)
    model = GPT(ENCODER)
    m = masked_lm_batch(data.batch(0), MASKED, step=0, mask_id=16)
    assert m["mask"].any() and not m["mask"].all()
    with torch.no_grad():
        logp = torch.log_softmax(model(m["x"]), dim=-1)  # every position, full width
    picked = [-logp[b, t, m["y"][b, t]] for b, t in m["mask"].nonzero().tolist()]
    assert metrics[0]["loss"] == pytest.approx(float(sum(picked) / len(picked)), rel=1e-5)


def test_objectives_refuse_the_wrong_model(tmp_path):
    with pytest.raises(ValueError, match="vocab_size must be at least 17"):
        train(MODEL.with_(causal=False), MASKED, CountingData(), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="needs ModelConfig.causal=True"):
        train(ENCODER, TRAIN, CountingData(), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="objective must be one of"):
        TrainConfig(steps=1, objective="mlm")
    with pytest.raises(ValueError, match="mask_rate"):
        TrainConfig(steps=1, mask_rate=0.0)
    with pytest.raises(ValueError, match="mask_recipe"):
        TrainConfig(steps=1, mask_recipe=(0.8, 0.1))
    assert TrainConfig.from_dict(MASKED.to_dict()) == MASKED  # the recipe survives JSON


def test_encoder_learns_counting_from_masked_tokens(tmp_path):
    cfg = TrainConfig(steps=200, lr=3e-3, warmup_steps=5, log_every=20, objective="masked")
    _, metrics = train(ENCODER, cfg, CountingData(batch_size=32), tmp_path, progress=False)
    losses = [m["loss"] for m in metrics if m["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
