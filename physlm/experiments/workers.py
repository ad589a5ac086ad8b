"""Independent runs side by side in worker processes, one torch thread each.

Tiny models use one core poorly and two threads under contention far worse, so a chapter's
independent runs share the machine's cores as processes instead. Each run is deterministic on its
own and lands in the run cache, so parallelism changes no number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_in_workers(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """fn(item) for every item, in up to `workers` spawned processes (in order, results kept).

    With one worker or one item it runs here, in this process. `fn` must be a module-level
    function (it is pickled by name).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if workers == 1 or len(items) <= 1:
        return [fn(item) for item in items]
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(min(workers, len(items)), initializer=_one_thread) as pool:
        return pool.map(fn, items, chunksize=1)
