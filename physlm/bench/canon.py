"""Canon layer speed: the layer alone, and what Canon-ABCD adds to a training step.

`python -m physlm bench canon [--layers L --width D --batch B --seq T --rounds R]`

* The layer alone (forward + backward) at the widths a block feeds it (d for A and C, 3d for
  B, the MLP's up width for D): the shifted-sum reference (`physlm.model.canon_shifted_sum`,
  what a CPU runs) against `nn.Conv1d` with the transposes to and from (B, m, T); on CUDA also
  the fused Triton kernel (`physlm.kernels.canon`), with its achieved memory bandwidth as a
  fraction of the device-to-device copy rate measured in the same run (the kernel's target is
  >= 70%: it moves the bytes a copy moves, once).
* A training step (forward, backward, AdamW) of the same model with `canon="ABCD"` and with no
  Canon: the overhead as a ratio. On CUDA also with the reference forced in place of the kernel
  (the paper's "naive" implementation costs 12-14%; the target for the kernel is <= 5% on a
  12-layer, 768-wide model at context 1024, the CUDA default here).

Variants alternate for `--rounds` rounds so that other load on the machine falls on all of them;
the best round of each is reported. Ratios, not absolute times, are what carry across machines.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

import torch
import torch.nn.functional as F

import physlm.model as model_module
from physlm.bench.matmul import cpu_threads
from physlm.model import CANON_KERNEL, GPT, ModelConfig, canon_shifted_sum

CPU_SHAPE = dict(layers=4, width=128, batch=32, seq=128)  # the Part 4.1 chapter's cpu models
CUDA_SHAPE = dict(layers=12, width=768, batch=16, seq=1024)  # GPT-2 small at context 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(
    fns: dict[str, Callable[[], object]], device: torch.device, rounds: int, reps: int
) -> dict[str, float]:
    """Best-of-`rounds` seconds per call of each function, the functions interleaved."""
    for fn in fns.values():  # warm-up: allocation, kernel compilation, autotuning caches
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            _sync(device)
            best[name] = min(best[name], (time.perf_counter() - t0) / reps)
    return best


def conv1d_canon(x: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    """The paper's fallback: Conv1d over (B, m, T) with k - 1 padding, cut to T, plus x."""
    T = x.shape[1]
    return x + conv(x.transpose(1, 2))[..., :T].transpose(1, 2)


def copy_rate(device: torch.device, rounds: int) -> float:
    """Bytes/s of a large device-to-device copy (read + write counted)."""
    src = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    t = best_times({"copy": lambda: dst.copy_(src)}, device, rounds, reps=10)["copy"]
    return 2 * src.numel() / t


def layer_bench(
    batch: int,
    seq: int,
    width: int,
    dtype: torch.dtype,
    device: torch.device,
    rounds: int,
    reps: int,
) -> dict[str, dict[str, float]]:
    """Seconds of forward and of forward + backward per implementation, for one layer."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, seq, width, generator=gen).to(device=device, dtype=dtype)
    x.requires_grad_()
    grad = torch.randn(batch, seq, width, generator=gen).to(device=device, dtype=dtype)
    conv = torch.nn.Conv1d(
        width, width, CANON_KERNEL, groups=width, bias=False, padding=CANON_KERNEL - 1
    ).to(device=device, dtype=dtype)
    weight = torch.nn.Parameter(conv.weight.detach().float().clone())
    impls: dict[str, Callable[[], torch.Tensor]] = {
        "shifted-sum": lambda: canon_shifted_sum(x, weight),
        "conv1d": lambda: conv1d_canon(x, conv),
    }
    if device.type == "cuda":
        from physlm.kernels.canon import canon_fused

        impls["kernel"] = lambda: canon_fused(x, weight)
    out = {}
    with torch.no_grad():
        fwd = best_times(impls, device, rounds, reps)
    both = best_times(
        {k: (lambda f=f: f().backward(grad)) for k, f in impls.items()}, device, rounds, reps
    )
    for name in impls:
        out[name] = {"forward": fwd[name], "forward+backward": both[name]}
    return out


def step_bench(
    cfg: ModelConfig, batch: int, seq: int, device: torch.device, rounds: int, reps: int
) -> dict[str, float]:
    """Seconds per training step (forward, backward, AdamW) with and without Canon-ABCD."""
    variants = {"no canon": cfg, "canon ABCD": cfg.with_(canon="ABCD")}
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (batch, seq + 1), generator=gen).to(device)
    steps = {}
    for name, c in variants.items():
        torch.manual_seed(0)
        model = GPT(c).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

        def step(model=model, opt=opt) -> None:
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps[name] = step
    if device.type == "cuda":
        canon_step = steps["canon ABCD"]

        def reference_step() -> None:
            with mock.patch.object(model_module, "_fused_canon", lambda: None):
                canon_step()

        steps["canon ABCD, reference"] = reference_step
    return best_times(steps, device, rounds, reps)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="physlm bench canon", description=__doc__.split("\n")[0])
    for name in CPU_SHAPE:
        p.add_argument(
            f"--{name}",
            type=int,
            default=None,
            help=f"default {CPU_SHAPE[name]} on CPU, {CUDA_SHAPE[name]} on CUDA",
        )
    p.add_argument("--mlp", choices=("gelu", "gated"), default="gated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=None, help="calls per round (3 CPU, 20 CUDA)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    args = p.parse_args(argv)
    for name in ("rounds", "reps", *CPU_SHAPE):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name} must be positive, got {value}")
    return args


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms"


def main(argv: list[str] | None = None) -> int:
    """Print layer times and ratios, kernel bandwidth (CUDA), and the step overhead."""
    args = _parse(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    shape = {
        k: getattr(args, k) or v
        for k, v in (CUDA_SHAPE if device.type == "cuda" else CPU_SHAPE).items()
    }
    reps = args.reps or (20 if device.type == "cuda" else 3)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_threads()
    cfg = ModelConfig(
        vocab_size=512,
        n_layer=shape["layers"],
        n_head=max(1, shape["width"] // 64),
        n_embd=shape["width"],
        block_size=shape["seq"],
        mlp=args.mlp,
    )
    print(
        f"device: {where}; model {shape['layers']}L{shape['width']}D mlp={args.mlp}, "
        f"batch {shape['batch']} x {shape['seq']} tokens"
    )
    up = 2 * cfg.hidden if cfg.mlp == "gated" else cfg.hidden
    widths = {"A/C": cfg.n_embd, "B": 3 * cfg.n_embd, "D": up}
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" else [])
    rate = copy_rate(device, args.rounds) if device.type == "cuda" else None
    if rate is not None:
        print(f"device-to-device copy: {rate / 1e9:.0f} GB/s (read + write)")
    for dtype in dtypes:
        for place, width in widths.items():
            res = layer_bench(shape["batch"], shape["seq"], width, dtype, device, args.rounds, reps)
            name = str(dtype).removeprefix("torch.")
            print(f"layer {place} (m={width}, {name}):")
            for impl, t in res.items():
                print(
                    f"  {impl:12s} forward {_ms(t['forward'])}   "
                    f"forward+backward {_ms(t['forward+backward'])}"
                )
            ratio = res["conv1d"]["forward+backward"] / res["shifted-sum"]["forward+backward"]
            print(f"  ratio conv1d/shifted-sum (forward+backward): {ratio:.2f}")
            if "kernel" in res:
                k = res["kernel"]
                print(
                    f"  ratio shifted-sum/kernel (forward+backward): "
                    f"{res['shifted-sum']['forward+backward'] / k['forward+backward']:.2f}"
                )
                n_bytes = shape["batch"] * shape["seq"] * width * torch.finfo(dtype).bits // 8
                bw_fwd = 2 * n_bytes / k["forward"]  # read x, write y
                bw_bwd = 3 * n_bytes / (k["forward+backward"] - k["forward"])  # g, x, grad_x
                print(
                    f"  kernel bandwidth: forward {bw_fwd / rate:.0%}, backward "
                    f"{bw_bwd / rate:.0%} of the copy rate"
                )
    steps = step_bench(cfg, shape["batch"], shape["seq"], device, args.rounds, max(1, reps // 4))
    base = steps["no canon"]
    print("training step:")
    for name, t in steps.items():
        print(f"  {name:24s} {_ms(t)}   x{t / base:.3f} of no canon")
    return 0
