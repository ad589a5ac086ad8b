"""Two processes train what one process trains: `accelerate launch -m physlm train tiny`.

The launches use `--multi_gpu`, which starts one process per rank through torch's launcher even
on a machine without CUDA; the trainer's Accelerator then runs on the CPU with gloo. (With
`--cpu` accelerate uses its one-process launcher unless mpirun is configured.) The tiny run's
rows carry different numbers of loss tokens, so the two ranks hold different counts and a
per-rank mean would train another model than the single process does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from physlm.checkpoint import list_checkpoints, verify_checkpoint
from physlm.runs import DONE, FINAL, get_or_train, is_done, run_key
from physlm.tiny_run import setting
from physlm.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent
MODEL_CFG, TRAIN_CFG, DATA = setting()
KEY = run_key(MODEL_CFG, TRAIN_CFG, DATA)
MLM_CFG, MLM_TRAIN, MLM_DATA = setting(objective="masked")  # the encoder twin, trained second
MLM_KEY = run_key(MLM_CFG, MLM_TRAIN, MLM_DATA)
TOL = 1e-5  # float addition order differs (DDP's all-reduce); measured ~1e-7 on 240 steps
KILL_AFTER = TRAIN_CFG.steps * 3 // 8  # SIGKILL once a checkpoint at or past this step exists


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root: Path, processes: int = 2) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "physlm", "train", "tiny", "--scale", "smoke",
    ]  # fmt: skip
    # On the CPU even where GPUs exist: the comparison is of float32 arithmetic, not bf16.
    env = {**os.environ, "PHYSLM_RUNS": str(root), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"launch failed ({proc.returncode}):\n{out[-4000:]}"
    return out


def losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train"]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / FINAL))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def loss_diff(a: Path, b: Path) -> float:
    la, lb = losses(a), losses(b)
    assert [s for s, _ in la] == [s for s, _ in lb], "logged steps differ"
    return max(abs(x - y) for (_, x), (_, y) in zip(la, lb, strict=True))


def ranks(proc: subprocess.Popen) -> dict[int, psutil.Process]:
    """The training processes under a launch, by their RANK."""
    found = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            rank = child.environ().get("RANK")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if rank is not None and "physlm" in " ".join(child.cmdline()):
            found[int(rank)] = child
    return found


def newest_intact_step(ckpts: Path) -> int:
    for path in list_checkpoints(ckpts):
        if not verify_checkpoint(path):
            return json.loads((path / "manifest.json").read_text())["step"]
    return 0


def kill_rank_halfway(root: Path, rank: int = 1, timeout: float = 240) -> int:
    """Launch two processes, SIGKILL `rank` once a checkpoint at >= KILL_AFTER is written;
    return the newest intact checkpoint's step after the launch ended."""
    proc = launch(root)
    ckpts = root / KEY / "checkpoints"
    deadline = time.monotonic() + timeout
    try:
        while newest_intact_step(ckpts) < KILL_AFTER:
            assert proc.poll() is None, f"launch ended before the kill:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.005)
        ranks(proc)[rank].send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, "the launch succeeded although one of its ranks was killed"
    assert not (root / KEY / DONE).exists(), "the killed run was marked DONE"
    step = newest_intact_step(ckpts)
    assert KILL_AFTER <= step < TRAIN_CFG.steps, f"kill landed at step {step}, not halfway"
    return step


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The single-process reference, two processes uninterrupted, two processes killed halfway
    and relaunched, and a copy of the killed run resumed by one process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu_only = pytest.MonkeyPatch()
    cpu_only.setattr(torch.cuda, "is_available", lambda: False)  # the reference as well
    try:
        base = tmp_path_factory.mktemp("dist")
        out = {name: base / name for name in ("one", "two", "killed", "to_one")}
        whole = launch(out["two"])  # starts first: the launches' imports overlap the reference
        get_or_train(MODEL_CFG, TRAIN_CFG, DATA, root=out["one"], progress=False)
        get_or_train(MLM_CFG, MLM_TRAIN, MLM_DATA, root=out["one"], progress=False)
        out["two_log"] = finish(whole)
        out["kill_step"] = kill_rank_halfway(out["killed"])
        shutil.copytree(out["killed"], out["to_one"])
        relaunch = launch(out["killed"])
        get_or_train(MODEL_CFG, TRAIN_CFG, DATA, root=out["to_one"], progress=False)
        out["killed_log"] = finish(relaunch)
        return out
    finally:
        cpu_only.undo()
        torch.set_num_threads(threads)


def test_two_processes_train_what_one_trains(runs):
    one, two = runs["one"] / KEY, runs["two"] / KEY
    assert loss_diff(one, two) < TOL
    assert max_diff(weights(one), weights(two)) < TOL


def test_two_processes_train_the_masked_lm_of_one(runs):
    """The masked positions are drawn for the whole batch, so each rank trains on its rows'
    share of one draw; a per-rank draw would train another model. (Measured: ~1e-7 in loss and
    weights over the twin's 40 steps; a per-rank mean instead of the global one: 7e-3 in the
    loss at step 10, 5e-2 in the weights.)"""
    assert MLM_TRAIN.objective == "masked" and not MLM_CFG.causal
    one, two = runs["one"] / MLM_KEY, runs["two"] / MLM_KEY
    assert loss_diff(one, two) < TOL
    assert max_diff(weights(one), weights(two)) < TOL
    assert runs["two_log"].count("trained steps 0..") == 2


def test_the_ranks_hold_different_token_counts():
    """Otherwise a per-rank mean would equal the global one and the check above proves less."""
    counts = [[int(DATA.batch(s)["mask"][r::2].sum()) for r in range(2)] for s in range(20)]
    assert sum(a != b for a, b in counts) >= 15


def test_only_the_main_process_writes(runs):
    one, two = runs["one"] / KEY, runs["two"] / KEY
    assert sorted(p.name for p in runs["two"].iterdir()) == sorted([KEY, MLM_KEY])
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == sorted(
        p.name for p in (one / "checkpoints").iterdir()
    ), "stray or temporary checkpoint directories"
    steps = [s for s, _ in losses(two)]
    assert steps == list(range(TRAIN_CFG.log_every, TRAIN_CFG.steps + 1, TRAIN_CFG.log_every))
    assert is_done(two) and is_done(runs["two"] / MLM_KEY)


def test_a_killed_rank_resumes_to_the_same_result(runs):
    killed, two = runs["killed"] / KEY, runs["two"] / KEY
    assert f"trained steps {runs['kill_step']}..{TRAIN_CFG.steps}" in runs["killed_log"]
    assert is_done(killed)
    assert [s for s, _ in losses(killed)] == [s for s, _ in losses(two)]
    assert loss_diff(killed, two) == 0.0  # resume is exact: the same launch, uninterrupted
    assert max_diff(weights(killed), weights(two)) == 0.0
    assert max_diff(weights(killed), weights(runs["one"] / KEY)) < TOL


def test_started_with_two_resumed_with_one(runs):
    to_one = runs["to_one"] / KEY
    assert is_done(to_one)
    assert loss_diff(to_one, runs["one"] / KEY) < TOL
    assert max_diff(weights(to_one), weights(runs["one"] / KEY)) < TOL
    assert max_diff(weights(to_one), weights(runs["killed"] / KEY)) < TOL


def test_one_process_never_reduces(monkeypatch, tmp_path):
    """One process keeps the arithmetic it always had: no collective, no rescaled loss."""

    def refuse(*args, **kwargs):
        raise AssertionError("a single process called all_reduce")

    monkeypatch.setattr(torch.distributed, "all_reduce", refuse)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    short = TrainConfig(steps=3, log_every=1)
    run = get_or_train(MODEL_CFG, short, DATA, root=tmp_path, progress=False)
    assert [m["step"] for m in run.metrics] == [1, 2, 3]
