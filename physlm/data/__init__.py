"""Synthetic worlds: one module per data family, all served through the `BatchSource` protocol.

A training batch is a dict ``{"x": LongTensor[B, T], "y": LongTensor[B, T],
"mask": BoolTensor[B, T]}``: inputs, next-token targets, and where the loss counts.
``batch(step)`` must be a pure function of the source's seed and ``step`` so that a run resumed
after a crash sees exactly the data it would have seen.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

__all__ = [
    "BatchSource",
    "check_ints",
    "config_from",
    "easy_first_sizes",
    "make_batch",
    "padded_batch",
]

C = TypeVar("C")


@runtime_checkable
class BatchSource(Protocol):
    """What the trainer and the run cache need from a data source."""

    vocab_size: int

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of optimizer step ``step``; a pure function of (seed, step)."""
        ...

    def spec(self) -> dict:
        """JSON-able description of every parameter that changes the data (part of the run key)."""
        ...


def make_batch(rows: np.ndarray | torch.Tensor, pad_id: int) -> dict[str, torch.Tensor]:
    """Turn token rows of length T+1 into ``{"x", "y", "mask"}``.

    ``x`` is ``rows[:, :-1]``, ``y`` is ``rows[:, 1:]`` and the loss counts wherever the target
    is not ``pad_id``, so padding at the end of a row is never learned.
    """
    t = torch.as_tensor(np.asarray(rows) if not isinstance(rows, torch.Tensor) else rows)
    if t.dim() != 2 or t.shape[1] < 2:
        raise ValueError(f"rows must have shape [B, T+1] with T >= 1, got {tuple(t.shape)}")
    t = t.to(torch.long)
    x, y = t[:, :-1].contiguous(), t[:, 1:].contiguous()
    return {"x": x, "y": y, "mask": y != pad_id}


def check_ints(config: object, bounds: tuple[tuple[str, int], ...], what: str = "") -> None:
    """Each named field of `config` must be an int (not a bool) of at least its bound; the error
    names the field (after `what`, e.g. "world ") and what is allowed."""
    for name, lo in bounds:
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{what}{name} must be an int >= {lo}, got {v!r}")


def padded_batch(samples: list[tuple[list[int], list[bool]]], pad_id: int) -> dict:
    """One sample per row, padded to the longest: ``samples`` are (tokens, is-target flags).

    The loss counts where a token is a target (at the position that predicts it), so a step
    costs what its longest sample needs and padding is never learned.
    """
    width = max(len(ids) for ids, _ in samples)
    rows = np.full((len(samples), width), pad_id, dtype=np.int64)
    keep = np.zeros((len(samples), width - 1), dtype=bool)
    for r, (ids, target) in enumerate(samples):
        if len(target) != len(ids):
            raise ValueError(f"sample {r} has {len(ids)} tokens but {len(target)} target flags")
        rows[r, : len(ids)] = ids
        keep[r, : len(ids) - 1] = target[1:]  # position t predicts token t + 1
    out = make_batch(rows, pad_id)
    out["mask"] = torch.from_numpy(keep)
    return out


def easy_first_sizes(max_size: int) -> np.ndarray:
    """P(n) for n = 3..N, proportional to 1 / (n + sqrt(N)): Part 4.1's easy-first curriculum
    (App. A), under which small instances are common and n = N is the rarest."""
    n = np.arange(3, max_size + 1, dtype=np.float64)
    w = 1.0 / (n + np.sqrt(max_size))
    return w / w.sum()


def config_from(cls: type[C], config: C | None, kwargs: dict) -> C:
    """A stream's config: the one passed, or one built from keyword arguments (not both)."""
    if config is None:
        return cls(**kwargs)
    if kwargs:
        raise ValueError(f"pass either a {cls.__name__} or keyword arguments, not both")
    return config


def fit_per_row(seq_len: int, slot: int, requested: int | None) -> int:
    """Biographies per row: as many `slot`-token biographies as always fit, or `requested`.

    Packed rows hold whole biographies only, so a row must fit the longest one (plus its
    separator); a request for more than fit is refused, naming the parameter.
    """
    fit = seq_len // slot
    if requested is None:
        if fit < 1:
            raise ValueError(
                f"seq_len must be at least {slot} to hold one biography, got {seq_len}"
            )
        return fit
    if requested > fit:
        raise ValueError(
            f"bios_per_row={requested} may not fit in seq_len={seq_len}: at most {fit} "
            f"biographies of up to {slot} tokens always fit"
        )
    return requested
