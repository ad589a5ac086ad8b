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

__all__ = ["BatchSource", "config_from", "make_batch"]

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

