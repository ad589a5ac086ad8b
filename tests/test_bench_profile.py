"""`physlm bench train --profile N`: where a training step's time goes."""

import contextlib
from types import SimpleNamespace

import pytest
import torch

from physlm.bench import train as bench


def event(key, total, self_time):
    return SimpleNamespace(key=key, cpu_time_total=total, self_cpu_time_total=self_time)


def test_phase_split_divides_the_wall_time_per_step():
    events = [
        event("phase:forward", 300.0, 1.0),
        event("phase:loss", 100.0, 1.0),
        event("phase:backward", 250.0, 1.0),
        event("phase:clip", 50.0, 1.0),
        event("Optimizer.step#AdamW.step", 200.0, 50.0),
        event("aten::mm", 400.0, 380.0),
        event("aten::_fused_adamw_", 120.0, 120.0),
    ]
    phases = bench.phase_split(events, wall_us=2000.0, steps=2)
    assert phases == {
        "step": 1000.0,
        "forward": 150.0,
        "loss": 50.0,
        "backward": 125.0,
        "clip": 25.0,
        "optimizer": 100.0,
        "rest of the loop": 550.0,
        "inside aten ops (self)": 250.0,
    }


def test_the_phase_marks_leave_training_unchanged(tmp_path):
    """The patched trainer computes bit for bit what the plain one does."""
    cfg = bench.FALLBACK_BENCH_TRAIN["model"].with_(n_layer=1, n_embd=32)
    tcfg = bench.TrainConfig(steps=3, warmup_steps=1, log_every=1)
    data = bench.RandomTokens(cfg.vocab_size, 2, 16)
    plain, _ = bench.train(cfg, tcfg, data, tmp_path / "a", progress=False)
    with contextlib.ExitStack() as marks:
        for patch in bench._phase_marks("physlm", cfg):
            marks.enter_context(patch)
        marked, _ = bench.train(cfg, tcfg, data, tmp_path / "b", progress=False)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, marked.state_dict()[k])


def test_profile_prints_both_sides(capsys):
    pytest.importorskip("transformers", reason="the bench's baseline needs transformers")
    assert bench.main(["--profile", "2", "--steps", "6", "--warmup", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for side in ("physlm", "transformers"):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{side}: step "))
        assert all(phase in line for phase in bench.PHASES)
    assert "aten::mm" in out and "ratio physlm/transformers" not in out


def test_profile_must_be_positive():
    with pytest.raises(SystemExit):
        bench.main(["--profile", "0"])
