"""Post-training weight quantization: round-to-nearest and GPTQ, as fake quantization.

Part 3.3 (Allen-Zhu & Li, arXiv 2404.05405, Sec. 8, Result 8) quantizes trained models with GPTQ
(the auto_gptq package) and measures their capacity again: int8 keeps the ~2 bits/param, int4
drops it to ~0.7. This module reproduces that step in plain torch. A quantized model here is a
copy whose weights are replaced by their quantize-dequantize values (same dtype, each value on
the integer grid times a scale), so every measure runs on it unchanged; only storage differs.

The grid is the GPTQ default: asymmetric min/max per output channel (row of the weight), with a
zero point, optionally per group of `group_size` input columns. As in auto_gptq, the default
quantizes the linear layers and leaves embeddings, norms and the output head in float.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

BITS = (2, 3, 4, 8)
METHODS = ("gptq", "rtn")
BITS_ATTR = "quant_bits"  # set on every quantized module; read by `weight_bits_report`
GROUP_ATTR = "quant_group_size"
SCALE_BITS = 16  # auto_gptq stores one fp16 scale (and a `bits`-bit zero point) per row/group


def quant_grid(w: Tensor, bits: int, sym: bool = False) -> tuple[Tensor, Tensor]:
    """Per-row scale and zero point of the min/max grid (GPTQ's quantizer, Frantar et al. 2022).

    The range is widened to contain 0 so that zero weights stay exact; an all-zero row gets the
    range [-1, 1]. `sym` centres the grid on zero (GPTQ's symmetric option).
    """
    maxq = 2**bits - 1
    lo = w.min(dim=1, keepdim=True).values.clamp(max=0)
    hi = w.max(dim=1, keepdim=True).values.clamp(min=0)
    if sym:
        hi = torch.maximum(-lo, hi)
        lo = -hi
    flat = hi == lo
    lo, hi = torch.where(flat, -1.0, lo), torch.where(flat, 1.0, hi)
    scale = (hi - lo) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-lo / scale)
    return scale, zero


def fake_quant(w: Tensor, scale: Tensor, zero: Tensor, bits: int) -> Tensor:
    """Round to the grid `scale * (k - zero)`, k in 0..2^bits-1, and map back to floats."""
    k = torch.clamp(torch.round(w / scale) + zero, 0, 2**bits - 1)
    return scale * (k - zero)


def _groups(cols: int, group_size: int | None) -> list[tuple[int, int]]:
    step = group_size or cols
    return [(c, min(c + step, cols)) for c in range(0, cols, step)]


def rtn_weight(w: Tensor, bits: int, group_size: int | None = None, sym: bool = False) -> Tensor:
    """Round-to-nearest baseline: each row (or row-group) on its own min/max grid."""
    q = torch.empty_like(w)
    for c0, c1 in _groups(w.shape[1], group_size):
        scale, zero = quant_grid(w[:, c0:c1], bits, sym)
        q[:, c0:c1] = fake_quant(w[:, c0:c1], scale, zero, bits)
    return q


def gptq_weight(
    w: Tensor,
    hessian: Tensor,
    bits: int,
    group_size: int | None = None,
    sym: bool = False,
    percdamp: float = 0.01,
    blocksize: int = 128,
) -> Tensor:
    """GPTQ (Frantar et al. 2022, arXiv 2210.17323, Alg. 1) for one weight [out, in].

    Columns are quantized left to right; each one's rounding error is spread over the columns not
    yet quantized so that ||W X - Q X||^2 (Hessian H = 2 X X^T / n) stays small. The update
    directions are the rows of the upper Cholesky factor of H^-1. Updates are applied lazily per
    block of columns (the paper's Sec. 4 "lazy batch" form); the result is the same. Returns the
    quantized values in float64. Inputs never active in calibration (zero diagonal) get zero
    weights, as in the reference code. With groups, each group's grid is set from the weights as
    updated when its first column comes up; blocks hold whole groups so those updates are all in.
    """
    w = w.detach().to(torch.float64).clone()
    h = hessian.detach().to(torch.float64).clone()
    cols = w.shape[1]
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += percdamp * torch.diag(h).mean() * torch.eye(cols, dtype=h.dtype, device=h.device)
    try:
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"Hessian is not positive definite; raise percdamp ({percdamp})") from exc
    if group_size is not None:
        blocksize = group_size * max(1, blocksize // group_size)
    q = torch.zeros_like(w)
    scale, zero = quant_grid(w, bits, sym)
    for b0 in range(0, cols, blocksize):
        b1 = min(b0 + blocksize, cols)
        wb, hb = w[:, b0:b1].clone(), hinv[b0:b1, b0:b1]
        err = torch.zeros_like(wb)
        for i in range(b1 - b0):
            if group_size is not None and (b0 + i) % group_size == 0:
                scale, zero = quant_grid(wb[:, i : i + group_size], bits, sym)
            qi = fake_quant(wb[:, i : i + 1], scale, zero, bits)
            q[:, b0 + i : b0 + i + 1] = qi
            err[:, i : i + 1] = (wb[:, i : i + 1] - qi) / hb[i, i]
            wb[:, i:] -= err[:, i : i + 1] @ hb[i : i + 1, i:]
        w[:, b1:] -= err @ hinv[b0:b1, b1:]
    return q


class _Stop(Exception):
    """Ends a calibration forward early, once the layer being quantized has seen its input."""


def _hessians(
    model: nn.Module, layers: list[nn.Linear], batches: list[Tensor], stop: bool = False
) -> dict:
    """H = 2 X X^T / n of each layer's inputs over all calibration tokens (forward hooks).

    With `stop` (one layer, called once per forward) the forward ends right after that layer.
    """
    sums: dict[nn.Module, Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def hook(mod: nn.Module, inputs: tuple, _out: Tensor) -> None:
        x = inputs[0].detach().reshape(-1, mod.in_features).to(torch.float64)
        sums[mod] = sums.get(mod, 0) + x.T @ x
        counts[mod] = counts.get(mod, 0) + x.shape[0]
        if stop:
            raise _Stop

    handles = [layer.register_forward_hook(hook) for layer in layers]
    device = next(model.parameters()).device
    try:
        for x in batches:
            try:
                model(x.to(device))
            except _Stop:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return {m: 2 * sums[m] / counts[m] for m in sums}


def _called_once(model: nn.Module, layers: list[nn.Linear], x: Tensor) -> set[nn.Module]:
    """Layers that run exactly once per forward: only those may end a forward early."""
    calls = dict.fromkeys(layers, 0)

    def count(mod: nn.Module, _inputs: tuple, _out: Tensor) -> None:
        calls[mod] += 1

    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        model(x.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return {m for m, n in calls.items() if n == 1}


def _check(bits: int, method: str, group_size: int | None, percdamp: float) -> None:
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if group_size is not None and (not isinstance(group_size, int) or group_size <= 0):
        raise ValueError(f"group_size must be None or a positive int, got {group_size!r}")
    if not percdamp >= 0:
        raise ValueError(f"percdamp must be >= 0, got {percdamp!r}")


def quantize_model(
    model: nn.Module,
    bits: int,
    calib: Iterable[Tensor] | None,
    method: str = "gptq",
    group_size: int | None = None,
    *,
    sym: bool = False,
    embeddings: bool = False,
    skip: Sequence[str] = ("lm_head",),
    percdamp: float = 0.01,
    sequential: bool = True,
) -> nn.Module:
    """A quantized deep copy of `model`; the original is untouched.

    Every nn.Linear whose qualified name is not in `skip` is quantized, in module order. With
    `method="gptq"` each layer's Hessian comes from running `model(x)` for x in `calib`; with
    `sequential` (GPTQ's default) it is re-collected after the earlier layers are quantized, so
    later layers correct for earlier errors (each pass stops right after the layer in question).
    `sequential=False` collects all Hessians once from the float model (faster: one pass instead
    of one per layer). A layer the calibration never reaches falls back to round-to-nearest.
    `embeddings=True` also rounds every nn.Embedding table to nearest, row by row (GPTQ has
    nothing to gain on a lookup table). A weight shared by several modules (tied embeddings) is
    quantized once, by the first module that owns it.
    """
    _check(bits, method, group_size, percdamp)
    batches = list(calib) if calib is not None else []
    if method == "gptq" and not batches:
        raise ValueError("calib must hold at least one input batch for method='gptq'")
    for x in batches:
        if not isinstance(x, Tensor):
            raise ValueError(f"calib must yield tensors of token ids, got {type(x).__name__}")
    qmodel = copy.deepcopy(model)
    skip = set(skip)
    kinds = (nn.Linear, nn.Embedding) if embeddings else (nn.Linear,)
    todo = [m for n, m in qmodel.named_modules() if isinstance(m, kinds) and n not in skip]
    was_training = qmodel.training
    qmodel.eval()
    done: set[int] = set()
    with torch.no_grad():
        linears = [m for m in todo if isinstance(m, nn.Linear)]
        hessians, once = {}, set()
        if method == "gptq":
            if sequential:
                once = _called_once(qmodel, linears, batches[0])
            else:
                hessians = _hessians(qmodel, linears, batches)
        for m in todo:
            w = m.weight
            if id(w) not in done:
                h = None
                if method == "gptq" and isinstance(m, nn.Linear):
                    if sequential:
                        hessians = _hessians(qmodel, [m], batches, stop=m in once)
                    h = hessians.get(m)
                w64 = w.to(torch.float64)
                if h is None:
                    new = rtn_weight(w64, bits, group_size, sym)
                else:
                    new = gptq_weight(w64, h, bits, group_size, sym, percdamp)
                w.copy_(new.to(w.dtype))
                done.add(id(w))
            setattr(m, BITS_ATTR, bits)
            setattr(m, GROUP_ATTR, group_size)
    qmodel.train(was_training)
    return qmodel


@dataclass(frozen=True)
class WeightBitsReport:
    """Storage of a (fake-)quantized model: integer weights, their grids, and float rest."""

    quantized_params: int
    float_params: int
    grids: int  # (scale, zero point) pairs: one per row, or per row-group
    total_bits: int

    @property
    def params(self) -> int:
        return self.quantized_params + self.float_params


def weight_bits_report(model: nn.Module, float_bits: int = 16) -> WeightBitsReport:
    """Count quantized and float parameters and the bits to store them.

    A quantized weight costs `bits` per entry plus, per grid, a 16-bit scale and a `bits`-bit
    zero point (auto_gptq's packed layout); every other parameter costs `float_bits` (16: the
    paper trains in fp16). Shared (tied) parameters count once.
    """
    if float_bits <= 0:
        raise ValueError(f"float_bits must be positive, got {float_bits!r}")
    quant: dict[int, tuple[int, int]] = {}  # id(weight) -> (bits, grids)
    for m in model.modules():
        bits = getattr(m, BITS_ATTR, None)
        if bits is not None:
            rows, cols = m.weight.shape
            quant[id(m.weight)] = (bits, rows * len(_groups(cols, getattr(m, GROUP_ATTR, None))))
    qparams = fparams = grids = total = 0
    for p in model.parameters():  # yields each shared parameter once
        if id(p) in quant:
            bits, g = quant[id(p)]
            qparams, grids = qparams + p.numel(), grids + g
            total += p.numel() * bits + g * (SCALE_BITS + bits)
        else:
            fparams += p.numel()
            total += p.numel() * float_bits
    return WeightBitsReport(qparams, fparams, grids, total)
