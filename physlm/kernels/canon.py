"""Fused Triton kernel for Part 4.1's Canon layer, next to its PyTorch reference.

The layer (arXiv 2512.17351 Sec. 4) is y = x + causal depthwise conv(x) with kernel 4 on
x of shape (..., T, m). It does 8 multiply-adds per element, so it is bound by memory
traffic: run as separate PyTorch ops (or Conv1d with transposes) it reads and writes x
several times, which is where the paper's 12-14% "naive" overhead comes from. Here the
forward reads x once and writes y once; the backward reads the upstream gradient and x once,
writes grad_x once, and reduces grad_w per tile into a small buffer that one `sum` finishes
(no atomics, so the result is deterministic).

Importing this module needs Triton (`physlm.model` falls back to the reference without it).
Under `TRITON_INTERPRET=1` the same kernels run on CPU tensors, which is how the tests
compare them with `reference` on a machine without a GPU. The kernels call no jitted helper
of `triton.language` (`cdiv`, `sum`, `zeros`): those are decorated when Triton is imported,
so a copy of this module loaded later with the interpreter on could not call them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from physlm.model import CANON_KERNEL, canon_shifted_sum

reference = canon_shifted_sum  # the PyTorch reference: what the CPU path runs

BLOCK_T = 64  # tokens per program; also the grad_w partial-sum granularity
BLOCK_C = 128  # channels per program (contiguous in memory)


# tl.sum's own combine function: the interpreter recognises it and reduces with numpy (any
# other combine function it calls element by element, ~100x slower).
_SUM = tl.standard._sum_combine


@triton.jit
def _canon_forward(
    x_ptr,
    w_ptr,
    y_ptr,
    T,
    M,
    K: tl.constexpr,
    RESIDUAL: tl.constexpr,
    BT: tl.constexpr,
    BC: tl.constexpr,
):
    """y[b, t, c] = sum_j w[c, j] * x[b, t - (K-1) + j, c] (+ x[b, t, c]), fp32 accumulation."""
    pid_bt, pid_c = tl.program_id(0), tl.program_id(1)
    n_tblocks = (T + BT - 1) // BT
    b, tb = pid_bt // n_tblocks, pid_bt % n_tblocks
    t = tb * BT + tl.arange(0, BT)
    c = pid_c * BC + tl.arange(0, BC)
    c_ok = c < M
    base = b.to(tl.int64) * T * M
    acc = tl.full((BT, BC), 0.0, tl.float32)
    for s in tl.static_range(K):  # tap K-1-s reads the token s steps back
        w = tl.load(w_ptr + c * K + (K - 1 - s), mask=c_ok, other=0.0).to(tl.float32)
        if RESIDUAL and s == 0:
            w = w + 1.0
        src = t - s
        ok = ((src >= 0) & (src < T))[:, None] & c_ok[None, :]
        xs = tl.load(x_ptr + base + src[:, None] * M + c[None, :], mask=ok, other=0.0)
        acc += xs.to(tl.float32) * w[None, :]
    out_ok = (t < T)[:, None] & c_ok[None, :]
    out = acc.to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + base + t[:, None] * M + c[None, :], out, mask=out_ok)


@triton.jit
def _canon_backward(
    g_ptr,
    x_ptr,
    w_ptr,
    gx_ptr,
    gw_ptr,
    T,
    M,
    K: tl.constexpr,
    RESIDUAL: tl.constexpr,
    WANT_X: tl.constexpr,
    WANT_W: tl.constexpr,
    BT: tl.constexpr,
    BC: tl.constexpr,
):
    """grad_x[t] = sum_s w[K-1-s] * g[t + s] (+ g[t]); this tile's share of
    grad_w[c, K-1-s] = sum_t g[t] * x[t - s] goes to row pid_bt of the partial buffer."""
    pid_bt, pid_c = tl.program_id(0), tl.program_id(1)
    n_tblocks = (T + BT - 1) // BT
    b, tb = pid_bt // n_tblocks, pid_bt % n_tblocks
    t = tb * BT + tl.arange(0, BT)
    c = pid_c * BC + tl.arange(0, BC)
    c_ok = c < M
    t_ok = t < T
    here = t_ok[:, None] & c_ok[None, :]
    base = b.to(tl.int64) * T * M
    g_here = tl.load(g_ptr + base + t[:, None] * M + c[None, :], mask=here, other=0.0)
    g_here = g_here.to(tl.float32)
    acc = tl.full((BT, BC), 0.0, tl.float32)
    for s in tl.static_range(K):
        if WANT_X:
            w = tl.load(w_ptr + c * K + (K - 1 - s), mask=c_ok, other=0.0).to(tl.float32)
            if RESIDUAL and s == 0:
                w = w + 1.0
            later = t + s
            ok = (later < T)[:, None] & c_ok[None, :]
            gs = tl.load(g_ptr + base + later[:, None] * M + c[None, :], mask=ok, other=0.0)
            acc += gs.to(tl.float32) * w[None, :]
        if WANT_W:
            earlier = t - s
            ok = ((earlier >= 0) & t_ok)[:, None] & c_ok[None, :]
            xs = tl.load(x_ptr + base + earlier[:, None] * M + c[None, :], mask=ok, other=0.0)
            part = tl.reduce(g_here * xs.to(tl.float32), 0, _SUM)
            row = pid_bt.to(tl.int64) * M * K
            tl.store(gw_ptr + row + c * K + (K - 1 - s), part, mask=c_ok)
    if WANT_X:
        out = acc.to(gx_ptr.dtype.element_ty)
        tl.store(gx_ptr + base + t[:, None] * M + c[None, :], out, mask=here)


def _as_btm(x: Tensor) -> Tensor:
    """(..., T, m) -> contiguous (B, T, m), the layout the kernels index."""
    if x.dim() < 2:
        raise ValueError(f"canon input must be (..., T, m), got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[-2], x.shape[-1]).contiguous()


def _taps(weight: Tensor, m: int) -> Tensor:
    if weight.shape != (m, 1, CANON_KERNEL):
        raise ValueError(
            f"canon weight must have shape (m, 1, {CANON_KERNEL}) = ({m}, 1, {CANON_KERNEL}) "
            f"for an input of width {m}, got {tuple(weight.shape)}"
        )
    return weight.detach().reshape(m, CANON_KERNEL).float().contiguous()


def _grid(B: int, T: int, M: int) -> tuple[int, int]:
    return B * triton.cdiv(T, BLOCK_T), triton.cdiv(M, BLOCK_C)


class CanonFunction(torch.autograd.Function):
    """Autograd wrapper: the fused forward, the fused backward for x and weight."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, residual: bool) -> Tensor:
        xs = _as_btm(x)
        B, T, M = xs.shape
        w = _taps(weight, M)
        y = torch.empty_like(xs)
        if xs.numel():
            _canon_forward[_grid(B, T, M)](
                xs, w, y, T, M, K=CANON_KERNEL, RESIDUAL=residual, BT=BLOCK_T, BC=BLOCK_C
            )
        ctx.save_for_backward(xs, weight)
        ctx.residual, ctx.shape = residual, x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        xs, weight = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        B, T, M = xs.shape
        g = grad.reshape(B, T, M).contiguous()
        grid = _grid(B, T, M)
        gx = torch.empty_like(xs) if want_x else xs  # a placeholder the kernel never writes
        gw = torch.empty(grid[0] if want_w else 1, M, CANON_KERNEL, device=xs.device)
        if xs.numel() and (want_x or want_w):
            _canon_backward[grid](
                g,
                xs,
                _taps(weight, M),
                gx,
                gw,
                T,
                M,
                K=CANON_KERNEL,
                RESIDUAL=ctx.residual,
                WANT_X=want_x,
                WANT_W=want_w,
                BT=BLOCK_T,
                BC=BLOCK_C,
            )
        grad_x = gx.view(ctx.shape) if want_x else None
        grad_w = gw.sum(0).view_as(weight).to(weight.dtype) if want_w else None
        return grad_x, grad_w, None


def canon_fused(x: Tensor, weight: Tensor, residual: bool = True) -> Tensor:
    """The Canon layer by the fused kernels: same contract as `reference`."""
    return CanonFunction.apply(x, weight, residual)
