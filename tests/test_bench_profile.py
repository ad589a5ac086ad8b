"""`physlm bench train --profile N`: where a training step's time goes."""

from types import SimpleNamespace

import pytest

from physlm.bench import train as bench


def event(key, total, self_time):
    return SimpleNamespace(key=key, cpu_time_total=total, self_cpu_time_total=self_time)


def test_phase_split_divides_the_wall_time_per_step():
    events = [
        event("autograd::engine::evaluate_function: MmBackward0", 300.0, 10.0),
        event("autograd::engine::evaluate_function: GeluBackward0", 100.0, 5.0),
        event("Optimizer.step#AdamW.step", 200.0, 50.0),
        event("aten::mm", 400.0, 380.0),
        event("aten::_fused_adamw_", 120.0, 120.0),
    ]
    phases = bench.phase_split(events, wall_us=2000.0, steps=2)
    assert phases["step"] == 1000.0
    assert phases["backward"] == 200.0
    assert phases["optimizer"] == 100.0
    assert phases["forward, loss, clip, loop"] == 700.0
    assert phases["inside aten ops (self)"] == 250.0


def test_profile_prints_both_sides(capsys):
    pytest.importorskip("transformers", reason="the bench's baseline needs transformers")
    assert bench.main(["--profile", "2", "--steps", "6", "--warmup", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for side in ("physlm", "transformers"):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{side}: step "))
        assert "backward" in line and "optimizer" in line
    assert "aten::mm" in out and "ratio physlm/transformers" not in out


def test_profile_must_be_positive():
    with pytest.raises(SystemExit):
        bench.main(["--profile", "0"])
