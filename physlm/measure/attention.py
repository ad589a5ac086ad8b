"""Attention maps of every layer and head, and Part 1's boundary-to-boundary measure.

`attention_maps` recomputes the probabilities each `Attention` module forms (the SDPA variants do
not expose them) from the module's own input, read by a forward pre-hook: nothing in the model
changes. `boundary_attention` is Part 1's (arXiv 2305.13673, Sec. 5) test that attention
connects subtree ends: attention depends strongly on distance alone, so the average weight at
each distance is subtracted first, and what remains is averaged from level-l NT-end queries to
level-l NT-end keys and to every other key.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physlm.model import GPT


def _scores_sdpa(attn: nn.Module, x: Tensor, rope: tuple[Tensor, ...] | None) -> Tensor:
    """softmax(q.k / sqrt(d_head)) with the causal mask, as `Attention.forward` forms it."""
    cfg = attn.cfg
    B, T, C = x.shape
    H = cfg.n_head
    if getattr(cfg, "split_qkv", False):
        q, k = attn.q(x), attn.k(x)
    else:
        q, k, _ = attn.qkv(x).split(C, dim=-1)
    q = q.view(B, T, H, C // H).transpose(1, 2)
    k = k.view(B, T, H, C // H).transpose(1, 2)
    if cfg.qk_norm:
        q, k = attn.q_norm(q), attn.k_norm(k)
    if rope is not None:
        c, s, r = (t.to(q.dtype) for t in rope)
        q, k = q * c + (q @ r) * s, k * c + (k @ r) * s
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(C // H)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
    return F.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)


@torch.no_grad()
def attention_maps(model: GPT, idx: Tensor) -> Tensor:
    """(L, B, H, T, T) attention probabilities of every layer for token ids `idx` [B, T]."""
    if idx.dim() != 2 or idx.dtype != torch.long:
        raise ValueError(f"idx must be a LongTensor [B, T], got {tuple(idx.shape)} {idx.dtype}")
    captured: list[tuple[Tensor, tuple[Tensor, ...] | None]] = []
    hooks = [
        block.attn.register_forward_pre_hook(lambda _m, args: captured.append(args))
        for block in model.blocks
    ]
    was_training = model.training
    model.eval()
    try:
        model(idx)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    maps = []
    for block, (x, operands) in zip(model.blocks, captured, strict=True):
        if model.cfg.pos in ("relative", "position_only", "uniform"):
            maps.append(block.attn.attention_weights(x, operands))
        else:
            maps.append(_scores_sdpa(block.attn, x, operands))
    return torch.stack([m.float() for m in maps])


def distance_baseline(maps: Tensor, valid: Tensor) -> Tensor:
    """Mean attention weight at each distance i - j, per layer and head: (L, H, T).

    `valid` [B, T] marks real tokens; only pairs of real tokens with j <= i count.
    """
    L, B, H, T, _ = maps.shape
    i = torch.arange(T)
    dist = (i[:, None] - i[None, :]).clamp(min=-1)  # -1 above the diagonal
    pair = valid[:, :, None] & valid[:, None, :] & (dist >= 0)[None]
    out = torch.zeros(L, H, T)
    for d in range(T):
        sel = pair & (dist == d)[None]
        n = sel.sum()
        if n:
            out[:, :, d] = (maps * sel[None, :, None]).sum(dim=(1, 3, 4)) / n
    return out


def boundary_attention(maps: Tensor, ends: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Excess attention from NT-end queries to NT-end keys, and to other keys: (L, H) each.

    `ends` [B, T] marks the last token of each subtree at one level (keys and queries alike),
    `valid` [B, T] the real tokens. Excess = weight minus the mean weight at the same distance
    (`distance_baseline`); a key before the query only (j < i), so a token's attention to itself
    is left out.
    """
    L, B, H, T, _ = maps.shape
    if ends.shape != (B, T) or valid.shape != (B, T):
        raise ValueError(f"ends and valid must have shape {(B, T)}")
    base = distance_baseline(maps, valid)  # (L, H, T)
    i = torch.arange(T)
    dist = (i[:, None] - i[None, :]).clamp(min=0)
    excess = maps - base[:, :, dist].unsqueeze(1)  # (L, B, H, T, T)
    earlier = (i[None, :] < i[:, None])[None]
    q_end = (ends & valid)[:, :, None]
    to_end = q_end & (ends & valid)[:, None, :] & earlier
    to_other = q_end & (~ends & valid)[:, None, :] & earlier

    def mean(sel: Tensor) -> Tensor:
        n = sel.sum().clamp(min=1)
        return (excess * sel[None, :, None]).sum(dim=(1, 3, 4)) / n

    return mean(to_end), mean(to_other)
