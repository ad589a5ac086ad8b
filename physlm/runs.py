"""Content-addressed run cache: a finished run is loaded, an interrupted one resumes.

A run's key hashes its model config, train config, data spec and the source of the code that
shapes training, so any change there trains afresh: the trainer, model, kernels, data
generators and this module for every run, and for each run the module that defines its data
source, its `build` hook (e.g. LoRA) and its evals. Its
directory holds `config.json`, `metrics.jsonl`, `checkpoints/`, `model.safetensors` and `DONE`,
which is written last and names the model's checksum: a partial run is never served.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import PartialState
from safetensors.torch import load_model, save_model

from physlm.checkpoint import atomic_write_text, sha256_file
from physlm.model import GPT, ModelConfig
from physlm.train import EvalFn, TrainConfig, train

if TYPE_CHECKING:
    from physlm.data import BatchSource

PACKAGE = Path(__file__).resolve().parent
CODE_FILES = (
    "model.py",
    "train.py",
    "checkpoint.py",
    "runs.py",
    "kernels/**/*.py",
    "data/**/*.py",
)
"""What every run executes, as globs under the package; a run adds the files of its own data
source, build hook and evals (`run_sources`)."""
DONE = "DONE"
FINAL = "model.safetensors"


def default_root() -> Path:
    """`runs/` at the repository root, or $PHYSLM_RUNS."""
    return Path(os.environ.get("PHYSLM_RUNS", PACKAGE.parent / "runs"))


def _source_bytes(path: Path) -> bytes:
    """A hashed file's content (one place to read it, so tests can simulate an edit)."""
    return path.read_bytes()


def core_sources() -> list[Path]:
    """The package files every run executes (CODE_FILES)."""
    return sorted({p for pattern in CODE_FILES for p in PACKAGE.glob(pattern)})


def _defining_files(obj: object) -> list[Path]:
    """Source files of the classes (with their bases) or function that `obj` is or runs."""
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        owners: list[object] = [obj]
    else:
        cls = obj if isinstance(obj, type) else type(obj)
        owners = [c for c in cls.__mro__ if c is not object]
    files = []
    for owner in owners:
        try:
            files.append(Path(inspect.getsourcefile(owner)).resolve())
        except TypeError:  # built in: nothing of ours to hash
            continue
    return files


def run_sources(
    data: BatchSource | None = None,
    build: Callable[[], GPT] | None = None,
    evals: dict[str, EvalFn] | None = None,
) -> list[Path]:
    """Every source file whose edit must retrain this run: the core plus the files defining
    its data source, build hook and evals (wherever they live: package, tests, ...)."""
    extra = [f for obj in (data, build, *(evals or {}).values()) if obj is not None
             for f in _defining_files(obj)]  # fmt: skip
    return sorted(set(core_sources()) | {f for f in extra if f.is_file()})


def _label(path: Path) -> str:
    """A file's name in the hash: relative to the package, so a checkout's location is not."""
    for root in (PACKAGE, PACKAGE.parent):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def code_version(
    data: BatchSource | None = None,
    build: Callable[[], GPT] | None = None,
    evals: dict[str, EvalFn] | None = None,
) -> str:
    """Hash of the sources that decide what a run computes (`run_sources`)."""
    h = hashlib.sha256()
    for path in run_sources(data, build, evals):
        h.update(_label(path).encode())
        h.update(_source_bytes(path))
    return h.hexdigest()[:16]


def run_key(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: BatchSource,
    build_spec: dict | None = None,
    build: Callable[[], GPT] | None = None,
    evals: dict[str, EvalFn] | None = None,
) -> str:
    """The run's name in the cache: a hash of everything `_config` records."""
    return _key_of(_config(model_cfg, train_cfg, data, build_spec, build, evals))


def _key_of(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class Run:
    key: str
    dir: Path
    model: GPT
    metrics: list[dict]
    cached: bool

    def last(self, name: str) -> float:
        """The most recent logged value of metric `name`."""
        for row in reversed(self.metrics):
            if name in row:
                return row[name]
        raise KeyError(f"metric {name!r} was never logged in run {self.key}")


def _config(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: BatchSource,
    build_spec: dict | None,
    build: Callable[[], GPT] | None = None,
    evals: dict[str, EvalFn] | None = None,
) -> dict:
    """What a run's key hashes and `config.json` records; `build` only for built models."""
    config = {
        "model": model_cfg.to_dict(),
        "train": train_cfg.to_dict(),
        "data": data.spec(),
        "code": code_version(data, build, evals),
    }
    if build_spec is not None:
        config["build"] = build_spec
    return config


def _read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_done(run_dir: Path) -> bool:
    """A run counts as finished only if DONE names the checksum of the stored final model."""
    try:
        done = json.loads((run_dir / DONE).read_text())
        return sha256_file(run_dir / FINAL) == done["model_sha256"]
    except (OSError, ValueError, KeyError):
        return False


def continue_from(base: Run) -> dict:
    """Keyword arguments for `get_or_train` that start from `base`'s weights, all trainable.

    Full fine-tuning of a cached run: the new run is built as a copy of the base model (its own
    optimizer starts fresh) and keyed by the base run's key, so a new base trains a new run.
    """
    model = base.model

    def build() -> GPT:
        out = copy.deepcopy(model)  # no fresh init: the caller's random state is left as is
        for p in out.parameters():
            p.requires_grad_(True)
        return out.train()

    return {"model_cfg": model.cfg, "build": build, "build_spec": {"init": base.key, "full": True}}


RUN_LOG_ENV = "PHYSLM_RUN_LOG"
"""When set, a file that every served run is noted in ("trained KEY" or "loaded KEY FINISHED",
FINISHED the time its DONE marker was written), so that a chapter's execution can tell a cold
cache from a warm one (worker processes inherit it)."""


def _note_use(how: str, key: str, run_dir: Path | None = None) -> None:
    path = os.environ.get(RUN_LOG_ENV)
    if path:
        finished = f" {(run_dir / DONE).stat().st_mtime:.3f}" if run_dir is not None else ""
        with open(path, "a", encoding="utf-8") as f:  # one short line per run: append is atomic
            f.write(f"{how} {key}{finished}\n")


def get_or_train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: BatchSource,
    root: str | Path | None = None,
    evals: dict[str, EvalFn] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    build: Callable[[], GPT] | None = None,
    build_spec: dict | None = None,
) -> Run:
    """Load the finished run for this configuration, or train (resuming if interrupted).

    `build` makes the starting model instead of `GPT(model_cfg)` (see `train`), e.g. a
    pretrained model with LoRA adapters; `build_spec` must then describe it (the parent run's
    key, the LoRA settings, ...) as plain JSON values, since it keys the run.
    """
    if (build is None) != (build_spec is None):
        raise ValueError("get_or_train needs build and build_spec together, or neither")
    config = _config(model_cfg, train_cfg, data, build_spec, build, evals)
    key = _key_of(config)
    run_dir = Path(root or default_root()) / key
    if is_done(run_dir):
        model = GPT(model_cfg) if build is None else build()
        load_model(model, str(run_dir / FINAL))
        model.eval()
        _note_use("loaded", key, run_dir)
        return Run(key, run_dir, model, _read_metrics(run_dir / "metrics.jsonl"), cached=True)
    # One process, or every rank of `accelerate launch`. `cpu` as the trainer's Accelerator has
    # it: a state made without it first would see one process per rank on a machine without CUDA.
    state = PartialState(cpu=not torch.cuda.is_available())
    if (run_dir / DONE).exists() and state.is_main_process:
        print(f"run {key}: DONE marker does not match the stored model; resuming from checkpoints")
        (run_dir / DONE).unlink()
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2, sort_keys=True))
    state.wait_for_everyone()
    model, metrics = train(
        model_cfg,
        train_cfg,
        data,
        run_dir,
        evals=evals,
        progress=progress,
        stop_after=stop_after,
        build=build,
    )
    if stop_after is not None and stop_after < train_cfg.steps:
        return Run(key, run_dir, model, metrics, cached=False)
    if state.is_main_process:  # only one process writes the final model and the marker
        tmp = run_dir / f".{FINAL}.tmp"
        save_model(model, str(tmp))
        os.replace(tmp, run_dir / FINAL)
        done = json.dumps({"model_sha256": sha256_file(run_dir / FINAL)})
        atomic_write_text(run_dir / DONE, done)
        _note_use("trained", key)
    state.wait_for_everyone()
    return Run(key, run_dir, model, metrics, cached=False)
