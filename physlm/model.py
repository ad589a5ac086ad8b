"""One decoder-only transformer; every variant the papers compare is a switch on `ModelConfig`.

"GPT2" in Parts 2-3 means GPT-2 with rotary position embedding on a fraction of each head's
dimensions (GPT-NeoX style, Part 3.1 App. B); Part 3.3 writes shapes as GPT2-l-h (l layers, h
heads, width 64h, no dropout). LLaMA/Mistral differ by the gated (SwiGLU) MLP and RMSNorm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POSITIONS = ("learned", "rope", "none")
MLPS = ("gelu", "gated", "none")
NORMS = ("layer", "rms")


@dataclass(frozen=True)
class ModelConfig:
    """Every knob of the model. Frozen so it can key the run cache."""

    vocab_size: int
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 128
    block_size: int = 256
    pos: str = "rope"
    rope_fraction: float = 0.25
    rope_base: float = 10000.0
    mlp: str = "gelu"
    mlp_hidden: int | None = None
    norm: str = "layer"
    tie_embeddings: bool = True
    qk_norm: bool = False
    bias: bool = False
    init_std: float = 0.02

    def __post_init__(self) -> None:
        positive = ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"ModelConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        for name, allowed in (("pos", POSITIONS), ("mlp", MLPS), ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"ModelConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        if not 0.0 < self.rope_fraction <= 1.0:
            raise ValueError(
                f"ModelConfig.rope_fraction must be in (0, 1], got {self.rope_fraction!r}"
            )
        if self.pos == "rope" and self.rotary_dim < 2:
            raise ValueError(
                "ModelConfig.rope_fraction too small: fewer than 2 rotated dims per head "
                f"(head_dim={self.head_dim}, rope_fraction={self.rope_fraction})"
            )
        if self.mlp_hidden is not None and self.mlp_hidden <= 0:
            raise ValueError(f"ModelConfig.mlp_hidden must be positive, got {self.mlp_hidden!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def rotary_dim(self) -> int:
        """Rotated dims per head, rounded down to an even number (NeoX `rotary_pct`)."""
        return int(self.head_dim * self.rope_fraction) // 2 * 2

    @property
    def hidden(self) -> int:
        """MLP width: 4d for GELU; for SwiGLU 8d/3 rounded up to 8, which keeps parameters equal."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp == "gated":
            return int(math.ceil(8 * self.n_embd / 3 / 8) * 8)
        return 4 * self.n_embd

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **changes)


def gpt2_shape(layers: int, heads: int, **kw) -> ModelConfig:
    """The papers' GPT2-l-h shape: l layers, h heads, width 64h (Part 3.3 Sec. 4, Part 4.1)."""
    if heads <= 0 or layers <= 0:
        raise ValueError(f"gpt2_shape needs positive layers and heads, got {layers}, {heads}")
    return ModelConfig(n_layer=layers, n_head=heads, n_embd=64 * heads, **kw)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = dim or cfg.n_embd
    return RMSNorm(dim) if cfg.norm == "rms" else nn.LayerNorm(dim, bias=cfg.bias)


def rope_tables(cfg: ModelConfig, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos/sin of shape (T, rotary_dim/2) for the NeoX half-split rotation."""
    half = cfg.rotary_dim // 2
    inv_freq = cfg.rope_base ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first rotary_dim dims of each head (x: B, H, T, head_dim); the rest pass."""
    rot = cos.shape[-1] * 2
    x1, x2, rest = x[..., : rot // 2], x[..., rot // 2 : rot], x[..., rot:]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s, rest), dim=-1)


def rotary_operands(cfg: ModelConfig, seq_len: int, device: torch.device) -> tuple[Tensor, ...]:
    """(C, S, R) with `x * C + (x @ R) * S == apply_rope(x, *rope_tables(...))` at full head width.

    The same rotation without slicing and concatenating: C and S are (T, head_dim) tables (1 and
    0 on the dims that pass), R the signed permutation that takes each rotated half to the other.
    On small models slices and `cat` cost more than the arithmetic; this is ~10% of a training
    step there. R has one entry +-1 per column, so `x @ R` is exact and the result equals
    `apply_rope` up to the rounding of the final multiply-add.
    """
    cos, sin = rope_tables(cfg, seq_len, device)
    half, hd = cfg.rotary_dim // 2, cfg.head_dim
    pad = (0, hd - 2 * half)
    c = F.pad(torch.cat((cos, cos), dim=-1), pad, value=1.0)
    s = F.pad(torch.cat((sin, sin), dim=-1), pad, value=0.0)
    r = torch.zeros(hd, hd, device=device)
    i = torch.arange(half, device=device)
    r[i + half, i] = -1.0  # output dim i takes -x[i + half]
    r[i, i + half] = 1.0  # output dim i + half takes x[i]
    return c, s, r


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        if cfg.qk_norm:
            self.q_norm = make_norm(cfg, cfg.head_dim)
            self.k_norm = make_norm(cfg, cfg.head_dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, ...] | None) -> Tensor:
        """`rope` is `rotary_operands(...)` cut to this length, or None."""
        B, T, C = x.shape
        H = self.cfg.n_head
        qkv = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        qk, v = qkv[:2], qkv[2]
        if self.cfg.qk_norm:
            qk = torch.stack((self.q_norm(qk[0]), self.k_norm(qk[1])))
        if rope is not None:
            c, s, r = (t.to(qk.dtype) for t in rope)  # under autocast qk is already bf16
            qk = torch.addcmul(qk * c, qk @ r, s)  # q and k rotated in one pass
        q, k = qk
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """GPT-2's GELU MLP, or the gated SwiGLU of LLaMA/Mistral (Part 3.3 Result 5-7)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gated = cfg.mlp == "gated"
        width = 2 * cfg.hidden if self.gated else cfg.hidden
        self.up = nn.Linear(cfg.n_embd, width, bias=cfg.bias)
        self.down = nn.Linear(cfg.hidden, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)
        if self.gated:
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = F.gelu(h, approximate="tanh")
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.has_mlp = cfg.mlp != "none"
        if self.has_mlp:
            self.ln2 = make_norm(cfg)
            self.mlp = MLP(cfg)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        x = x + self.attn(self.ln1(x), rope)
        if self.has_mlp:
            x = x + self.mlp(self.ln2(x))
        return x


class GPT(nn.Module):
    """Pre-norm decoder-only transformer returning next-token logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.pos == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        if cfg.pos == "rope":
            # Computed once, not per step; not persistent, so checkpoints hold weights only.
            operands = rotary_operands(cfg, cfg.block_size, torch.device("cpu"))
            for name, table in zip(("rope_c", "rope_s", "rope_r"), operands, strict=True):
                self.register_buffer(name, table, persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2L)."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.zeros_(p) if name.endswith("bias") else nn.init.ones_(p)
            elif name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.cfg.n_layer))
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        if T > self.cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.cfg.block_size}")
        x = self.wte(idx)
        if self.cfg.pos == "learned":
            x = x + self.wpe(torch.arange(T, device=idx.device))
        rope = (self.rope_c[:T], self.rope_s[:T], self.rope_r) if self.cfg.pos == "rope" else None
        for block in self.blocks:
            x = block(x, rope)
        return self.lm_head(self.ln_f(x))


def count_params(model: GPT, used_token_ids: Tensor | None = None) -> int:
    """Parameters, optionally excluding embedding rows of tokens the data never uses.

    Part 3.3 counts P this way (GPT-2 small is 88M, not 124M, on bioS): rows of unused tokens
    store nothing. With untied embeddings the output head's unused rows are excluded too.
    """
    total = sum(p.numel() for p in model.parameters())
    if used_token_ids is None:
        return total
    used = int(torch.unique(torch.as_tensor(used_token_ids)).numel())
    vocab, width = model.wte.weight.shape
    if used > vocab:
        raise ValueError(f"used_token_ids has {used} distinct ids, more than vocab_size {vocab}")
    unused_rows = (vocab - used) * (1 if model.cfg.tie_embeddings else 2)
    return total - unused_rows * width


def lm_loss(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean next-token cross-entropy over the positions where `mask` is true."""
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    )
    if mask is None:
        return flat.mean()
    m = mask.reshape(-1).to(flat.dtype)
    return (flat * m).sum() / m.sum().clamp_min(1.0)
