"""The machine's matrix-multiply rate: the ceiling that training throughput is judged against.

Model FLOP utilisation needs a denominator measured on the same machine in the same run, not a
datasheet peak: a 2-core CPU shared with other jobs, or a GPU with its own clocks, reaches what it
reaches. The rate is that of square n x n GEMMs, 2 n^3 floating-point operations each.
"""

from __future__ import annotations

import argparse
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(
    n: int = 1024,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    repeats: int = 5,
    min_flop: float = 2e9,
) -> float:
    """Best-of-`repeats` FLOP/s of `reps` back-to-back n x n matmuls (~`min_flop` per repeat).

    The best repeat, not the mean, because other load on the machine only ever slows a repeat.
    """
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if repeats <= 0:
        raise ValueError(f"repeats must be positive, got {repeats!r}")
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    flop = 2.0 * n**3
    reps = max(1, int(min_flop // flop))
    torch.mm(a, b, out=out)  # first call: library initialisation, allocation
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return flop * reps / max(best, 1e-12)


def cpu_threads() -> str:
    n = torch.get_num_threads()
    return f"cpu, {n} thread{'s' if n != 1 else ''}"


def default_gemm(device: torch.device) -> tuple[torch.dtype, int]:
    """The dtype training runs its matmuls in, and a size that saturates the device."""
    if device.type == "cuda":
        return torch.bfloat16, 4096
    return torch.float32, 1024


def main(argv: list[str] | None = None) -> int:
    """`python -m physlm bench matmul`: print the GEMM rate of this machine."""
    p = argparse.ArgumentParser(prog="physlm bench matmul", description=main.__doc__)
    p.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=None,
        help="matrix sizes (default: 1024 on CPU, 4096 on CUDA)",
    )
    p.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help="default: float32 on CPU, bfloat16 on CUDA",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads is not None:
        if args.threads <= 0:
            p.error(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype, n0 = default_gemm(device)
    dtype = DTYPES[args.dtype] if args.dtype else dtype
    where = "cuda" if device.type == "cuda" else cpu_threads()
    for n in args.n or [n0]:
        rate = gemm_rate(n, dtype, device)
        print(f"GEMM {str(dtype).removeprefix('torch.')} n={n} ({where}): {rate / 1e9:.1f} GFLOP/s")
    return 0
