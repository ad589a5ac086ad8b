"""The run cache: hit, miss, invalidation, partial runs never served, SIGKILL then resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from toydata import CountingData

from physlm.model import ModelConfig
from physlm.runs import DONE, continue_from, get_or_train, is_done, run_key
from physlm.train import TrainConfig

MODEL = ModelConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=32, block_size=16)
TRAIN = TrainConfig(steps=30, lr=3e-3, warmup_steps=5, log_every=10, checkpoint_every=10)
HERE = Path(__file__).parent


def test_miss_then_hit_returns_the_same_model(tmp_path):
    first = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path, progress=False)
    second = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path, progress=False)
    assert not first.cached and second.cached
    assert first.key == second.key
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k])
    assert first.metrics == second.metrics
    assert second.last("loss") == first.metrics[-1]["loss"]


def test_continue_from_starts_at_the_base_weights_and_is_keyed_by_it(tmp_path):
    base = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path, progress=False)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    args = continue_from(base)
    start = args["build"]()
    assert start is not base.model and start.training
    assert all(p.requires_grad for p in start.parameters())
    for k, v in start.state_dict().items():
        assert torch.equal(v, before[k])
    one = TrainConfig(steps=2, lr=1e-3, warmup_steps=0, log_every=1)
    tuned = get_or_train(train_cfg=one, data=CountingData(), root=tmp_path, progress=False,
                         **args)
    scratch = get_or_train(MODEL, one, CountingData(), root=tmp_path, progress=False)
    assert tuned.key != scratch.key and tuned.key != base.key
    cfg = json.loads((tuned.dir / "config.json").read_text())
    assert cfg["build"] == {"init": base.key, "full": True}
    for k, v in base.model.state_dict().items():  # the base model is left as it was
        assert torch.equal(v, before[k])
    moved = max((tuned.model.state_dict()[k] - before[k]).abs().max() for k in before)
    far = max((scratch.model.state_dict()[k] - before[k]).abs().max() for k in before)
    assert 0 < moved < far


def test_key_changes_with_model_train_and_data():
    base = run_key(MODEL, TRAIN, CountingData())
    assert run_key(MODEL.with_(n_embd=64), TRAIN, CountingData()) != base
    assert run_key(MODEL, TrainConfig(steps=31), CountingData()) != base
    assert run_key(MODEL, TRAIN, CountingData(seed=1)) != base
    assert run_key(MODEL, TRAIN, CountingData()) == base


def test_partial_run_is_never_served(tmp_path):
    partial = get_or_train(
        MODEL, TRAIN, CountingData(), root=tmp_path, progress=False, stop_after=15
    )
    assert not is_done(partial.dir)
    full = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path, progress=False)
    assert not full.cached and is_done(full.dir)
    assert full.metrics[-1]["step"] == 30


def test_tampered_final_model_is_not_served(tmp_path):
    run = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path, progress=False)
    final = run.dir / "model.safetensors"
    final.write_bytes(final.read_bytes()[:-8])
    again = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path, progress=False)
    assert not again.cached
    assert is_done(again.dir)
    assert json.loads((again.dir / DONE).read_text())["model_sha256"]


def _run(root: Path, objective: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, str(HERE / "killable_run.py"), str(root), objective],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("objective", ["next_token", "masked"])
def test_sigkill_halfway_then_resume_gives_the_uninterrupted_result(tmp_path, objective):
    reference = _run(tmp_path / "ref", objective)
    ref = json.loads(reference.communicate(timeout=300)[0].splitlines()[-1])

    victim = _run(tmp_path / "cut", objective)
    deadline = time.time() + 300
    ckpts: list[Path] = []
    while time.time() < deadline:
        ckpts = list((tmp_path / "cut").glob("*/checkpoints/step-*"))
        if any(int(p.name.split("-")[1]) >= 60 for p in ckpts):
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert ckpts, "the victim never wrote a checkpoint"
    assert not list((tmp_path / "cut").glob(f"*/{DONE}")), "killed too late: run already done"

    resumed = _run(tmp_path / "cut", objective)
    out = json.loads(resumed.communicate(timeout=300)[0].splitlines()[-1])
    assert out["cached"] is False
    assert out["losses"] == ref["losses"]


def test_served_runs_are_noted_for_the_chapter(tmp_path, monkeypatch):
    from physlm.runs import RUN_LOG_ENV

    log = tmp_path / "runs.log"
    monkeypatch.setenv(RUN_LOG_ENV, str(log))
    first = get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path / "r", progress=False)
    get_or_train(MODEL, TRAIN, CountingData(), root=tmp_path / "r", progress=False)
    trained, loaded = log.read_text().splitlines()
    assert trained == f"trained {first.key}"
    how, key, finished = loaded.split()
    assert (how, key) == ("loaded", first.key)
    assert float(finished) == pytest.approx((first.dir / DONE).stat().st_mtime, abs=1e-3)
