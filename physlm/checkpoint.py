"""Atomic, verifiable checkpoints: a training run must never load a torn or corrupt file silently.

A checkpoint is a directory `step-XXXXXXXX/` holding the model (safetensors), the trainer state
(optimizer, scheduler, RNG) and a `manifest.json` with the sha256 of every file. It is written
under a temporary name and renamed into place, and the manifest is written last, so a directory
without a valid manifest is by construction incomplete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer.pt"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(root: Path, step: int, model: nn.Module, state: dict[str, Any]) -> Path:
    """Write checkpoint `step` under `root` atomically and return its directory."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        save_model(model, str(tmp / MODEL_FILE))
        buf = io.BytesIO()
        torch.save(state, buf)
        (tmp / STATE_FILE).write_bytes(buf.getvalue())
        files = {n: sha256_file(tmp / n) for n in (MODEL_FILE, STATE_FILE)}
        manifest = {"step": step, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def verify_checkpoint(path: Path) -> str | None:
    """None when the checkpoint is complete and intact, else a reason why it is not."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return f"no readable manifest ({e.__class__.__name__})"
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.exists():
            return f"{name} is missing"
        if sha256_file(file) != digest:
            return f"{name} does not match its checksum (truncated or corrupt)"
    return None


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint directories, newest first (temporary ones excluded)."""
    if not root.exists():
        return []
    return sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True)


def load_latest(root: Path, model: nn.Module, log=print) -> tuple[int, dict[str, Any]] | None:
    """Load the newest intact checkpoint into `model`; report and skip any damaged one.

    Returns (step, trainer state), or None when there is nothing good to resume from.
    """
    for path in list_checkpoints(root):
        problem = verify_checkpoint(path)
        if problem:
            log(f"checkpoint {path.name} is not usable: {problem}; trying an older one")
            continue
        load_model(model, str(path / MODEL_FILE))
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
        step = json.loads((path / MANIFEST).read_text())["step"]
        log(f"resuming from checkpoint {path.name}")
        return step, state
    if list_checkpoints(root):
        log("no intact checkpoint found; restarting the run from step 0")
    return None


def prune_checkpoints(root: Path, keep: int = 2) -> None:
    """Keep the newest `keep` checkpoints; older ones are only a fallback and cost disk."""
    for path in list_checkpoints(root)[keep:]:
        shutil.rmtree(path, ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
