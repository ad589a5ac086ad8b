"""`python -m physlm check-device`: one command to run when a CUDA GPU is at hand.

It runs, in order, and writes one report (`device-check.json`, with `device-check.md` beside it):

1. the CUDA-only unit tests (test files that skip without CUDA, and `tests/test_kernels*.py`);
2. the trainer in bf16 on a 12-layer, 768-wide model: tokens/s and model FLOP utilisation
   (training FLOPs per token x tokens/s over the bf16 GEMM rate measured in the same run;
   target >= 45%), eager and with torch.compile;
3. `physlm bench cfg` on CUDA (target >= 10,000 cfg3f sentences/s);
4. `physlm bench canon`, where the Canon kernel's bench exists;
5. every chapter at `smoke` on CUDA, into a scratch run cache and scratch notebooks (the
   published edition in book/parts/ is left alone).

A step that fails is recorded and the next one runs; the exit status is 1 if any failed or
missed its target. Without CUDA it stops at once with a message saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from physlm.checkpoint import atomic_write_text

MFU_TARGET = 0.45
CFG_TARGET = 10_000.0  # cfg3f sentences/s on the GPU
BENCH_MODEL = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50_304)
BENCH_BATCH, BENCH_SEQ = 16, 1024
REPORT = "device-check"


class NoCuda(RuntimeError):
    """check-device was started on a machine where torch sees no CUDA device."""


def require_cuda() -> str:
    """The device's name, or NoCuda with what torch reports."""
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        raise NoCuda(
            "check-device needs a CUDA GPU, and torch sees none "
            f"(torch {torch.__version__}, CUDA build {build}); run it on the GPU machine, "
            "e.g. a GPU Jupyter server's terminal"
        )
    return torch.cuda.get_device_name(0)


# ------------------------------------------------------------------------------ FLOPs


def matmul_weights(model: nn.Module) -> int:
    """Weights that take part in a matmul per token: every nn.Linear's, counted once per use
    (a tied output head is a second matmul on the embedding, so it counts again)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def train_flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Forward + backward FLOPs per token of a decoder: 6 per matmul weight, plus attention.

    A weight costs 2 FLOPs per token forward (multiply, add) and 4 backward (gradients of input
    and weight). Attention's scores QK^T and weighted sum AV cost 2 x 2 x T x d forward per
    token per layer, 3x that with backward: 12 L T d. Counted over the full T x T square, as
    PaLM's MFU does (a causal kernel skips half of it; the convention keeps figures comparable).
    Embedding lookups, norms and activations are not matmuls and are not counted.
    """
    cfg = model.cfg
    return 6.0 * matmul_weights(model) + 12.0 * cfg.n_layer * seq_len * cfg.n_embd


def utilisation(flops_per_token: float, tokens_per_s: float, gemm_flops: float) -> float:
    """Model FLOP utilisation: the model's useful FLOP/s over the measured GEMM ceiling."""
    if gemm_flops <= 0:
        raise ValueError(f"gemm_flops must be > 0, got {gemm_flops}")
    return flops_per_token * tokens_per_s / gemm_flops


# ---------------------------------------------------------------------------- parsing

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def pytest_counts(output: str) -> dict[str, int]:
    """{'passed': n, 'failed': n, ...} from pytest's closing summary line."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    counts: dict[str, int] = {}
    for n, what in _PYTEST_COUNT.findall(last):
        counts["errors" if what.startswith("error") else what] = int(n)
    return counts


def cfg_gpu_rate(output: str) -> float | None:
    """The `gpu: X sentences/s` figure of `physlm bench cfg`, or None if it printed none."""
    m = re.search(r"^gpu: ([\d.,]+) sentences/s", output, re.MULTILINE)
    return float(m.group(1).replace(",", "")) if m else None


def cuda_test_files(tests: Path) -> list[Path]:
    """Test files with tests that run only on CUDA, and the kernel tests."""
    found = set(tests.glob("test_kernels*.py"))
    for path in tests.glob("test_*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"skipif\(\s*not torch\.cuda\.is_available\(\)", text):
            found.add(path)
    return sorted(found)


# ------------------------------------------------------------------------------ steps


@dataclass
class Step:
    name: str
    ok: bool = False
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    note: str = ""


def _run(name: str, fn: Callable[[Step], None]) -> Step:
    """Run one step; an exception fails that step only, with its traceback in the note."""
    step = Step(name)
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        fn(step)
    except Exception:  # noqa: BLE001 - a failed step is reported, the others still run
        step.ok = False
        step.note = (step.note + "\n" if step.note else "") + traceback.format_exc(limit=6)
    step.seconds = round(time.perf_counter() - t0, 1)
    brief = {k: v for k, v in step.figures.items() if k != "output"}
    print(f"   {'ok' if step.ok else 'FAILED'} in {step.seconds:.0f}s {brief}", flush=True)
    if step.figures.get("output"):
        print(step.figures["output"], flush=True)
    return step


def _capture(main: Callable[[list[str]], int | None], argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = int(main(argv) or 0)
    return rc, out.getvalue()


def step_cuda_tests(root: Path, timeout: int) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        files = cuda_test_files(root / "tests")
        step.figures["files"] = [f.name for f in files]
        if not files:
            step.ok, step.note = True, "no CUDA-only test files found"
            return
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
        proc = subprocess.run(
            cmd + [str(f) for f in files],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        step.figures.update(pytest_counts(proc.stdout))
        step.ok = proc.returncode == 0 and step.figures.get("passed", 0) > 0
        if not step.ok:
            step.note = proc.stdout[-3000:] + proc.stderr[-1000:]

    return run


def step_train_mfu(steps: int, warmup: int) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        from physlm.bench.matmul import gemm_rate
        from physlm.bench.train import RandomTokens
        from physlm.model import GPT, ModelConfig
        from physlm.train import TrainConfig, train

        cfg = ModelConfig(**BENCH_MODEL)
        flops = train_flops_per_token(GPT(cfg), BENCH_SEQ)
        gemm = gemm_rate(8192, torch.bfloat16, "cuda")
        step.figures.update(
            model="12 layers x 768, context 1024, batch 16, bf16",
            train_gflop_per_token=round(flops / 1e9, 3),
            bf16_gemm_tflops=round(gemm / 1e12, 1),
        )
        best = 0.0
        for compiled in (False, True):
            data = RandomTokens(cfg.vocab_size, BENCH_BATCH, BENCH_SEQ)
            tcfg = TrainConfig(
                steps=steps, warmup_steps=10, precision="bf16", compile=compiled, log_every=steps
            )
            with tempfile.TemporaryDirectory() as run_dir:
                with contextlib.redirect_stdout(io.StringIO()):
                    train(cfg, tcfg, data, run_dir, progress=False)
            tps, _ = data.throughput(warmup, steps)
            mfu = utilisation(flops, tps, gemm)
            label = "compiled" if compiled else "eager"
            step.figures[f"{label}_tokens_per_s"] = round(tps)
            step.figures[f"{label}_mfu"] = round(mfu, 3)
            best = max(best, mfu)
        step.figures["target_mfu"] = MFU_TARGET
        step.ok = best >= MFU_TARGET
        if not step.ok:
            step.note = f"best MFU {best:.1%} is below the target {MFU_TARGET:.0%}"

    return run


def step_bench_cfg() -> Callable[[Step], None]:
    def run(step: Step) -> None:
        from physlm.bench import cfg

        rc, out = _capture(cfg.main, ["--sentences", "4096", "--batch-size", "1024"])
        rate = cfg_gpu_rate(out)
        step.figures.update(gpu_sentences_per_s=rate, target=CFG_TARGET, output=out.strip())
        step.ok = rc == 0 and rate is not None and rate >= CFG_TARGET
        if rate is None:
            step.note = "bench cfg printed no GPU rate"

    return run


def step_bench_canon(root: Path) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        if not (root / "physlm" / "bench" / "canon.py").is_file():
            step.ok, step.note = True, "skipped: physlm/bench/canon.py does not exist yet"
            return
        from physlm.bench import canon

        rc, out = _capture(canon.main, [])
        step.figures["output"] = out.strip()
        step.ok = rc == 0

    return run


def step_chapters(root: Path, work: Path, timeout: int) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        import nbformat

        from physlm import book

        failed = []
        paths = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PHYSLM_RUNS": str(work / "runs")}
        env["PYTHONPATH"] = os.pathsep.join(paths)
        for name in book.chapter_names(root):
            t0 = time.perf_counter()
            out = work / "chapters" / f"{name}.ipynb"
            out.parent.mkdir(parents=True, exist_ok=True)
            source = work / "chapters" / f"{name}.source.ipynb"
            nbformat.write(book.load_source(root, name), str(source))
            cmd = [sys.executable, "-m", "papermill", str(source), str(out), "-p", "scale",
                   "smoke", "--cwd", str(root), "-k", book.KERNEL, "--no-progress-bar"]  # fmt: skip
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            step.figures[name] = f"{'ok' if proc.returncode == 0 else 'FAILED'} " + (
                f"in {time.perf_counter() - t0:.0f}s"
            )
            if proc.returncode != 0:
                failed.append(name)
                step.note += f"{name}:\n{proc.stderr[-2000:]}\n"
        step.ok = not failed

    return run


# ----------------------------------------------------------------------------- report


def markdown(device: str, steps: list[Step]) -> str:
    lines = [f"# Device check: {device}", "", "| step | result | seconds | figures |",
             "|---|---|---|---|"]  # fmt: skip
    for s in steps:
        figs = ", ".join(
            f"{k}={v}" for k, v in s.figures.items() if k != "output" and not isinstance(v, list)
        )
        lines.append(f"| {s.name} | {'ok' if s.ok else 'FAILED'} | {s.seconds:.0f} | {figs} |")
    notes = [f"## {s.name}\n\n```\n{s.note.strip()}\n```" for s in steps if s.note.strip()]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_report(out: Path, device: str, steps: list[Step]) -> tuple[Path, Path]:
    """`device-check.json` and `device-check.md` in `out`, each written atomically."""
    payload = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ok": all(s.ok for s in steps),
        "steps": [asdict(s) for s in steps],
    }
    js, md = out / f"{REPORT}.json", out / f"{REPORT}.md"
    atomic_write_text(js, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(md, markdown(device, steps))
    return js, md


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=None, help="folder of the report (default: the run cache)"
    )
    p.add_argument("--steps", type=int, default=60, help="training steps per MFU run")
    p.add_argument("--warmup", type=int, default=20, help="first steps left out of the timing")
    p.add_argument("--skip-chapters", action="store_true", help="leave out the smoke chapters")


def check_args(args: argparse.Namespace) -> None:
    if args.warmup < 0 or args.steps < args.warmup + 2:
        raise ValueError(
            f"--steps must be at least --warmup + 2 and --warmup >= 0, "
            f"got {args.steps} and {args.warmup}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="physlm check-device", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """The whole check (see the module docstring); NoCuda without a GPU."""
    check_args(args)
    device = require_cuda()
    from physlm.book import repo_root
    from physlm.runs import default_root

    root = repo_root()
    out = args.out or default_root()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="physlm-device-") as work:
        plan = [
            ("CUDA unit tests", step_cuda_tests(root, timeout=240)),
            ("bf16 training MFU", step_train_mfu(args.steps, args.warmup)),
            ("bench cfg", step_bench_cfg()),
            ("bench canon", step_bench_canon(root)),
        ]
        if not args.skip_chapters:
            plan.append(("chapters at smoke", step_chapters(root, Path(work), timeout=300)))
        steps = [_run(name, fn) for name, fn in plan]
    js, md = write_report(out, device, steps)
    print(f"report: {js} and {md}")
    return 0 if all(s.ok for s in steps) else 1
