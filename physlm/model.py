"""One decoder-only transformer; every variant the papers compare is a switch on `ModelConfig`.

"GPT2" in Parts 2-3 means GPT-2 with rotary position embedding on a fraction of each head's
dimensions (GPT-NeoX style, Part 3.1 App. B); Part 3.3 writes shapes as GPT2-l-h (l layers, h
heads, width 64h, no dropout). LLaMA/Mistral differ by the gated (SwiGLU) MLP and RMSNorm.

Part 1 (arXiv 2305.13673, position-embedding comparison) compares GPT (learned absolute
positions, `pos="learned"`), GPT_rel (`"relative"`), GPT_rot (`"rope"`), GPT_pos
(`"position_only"`) and GPT_uni (`"uniform"`); see `Attention` for the three new ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POSITIONS = ("learned", "rope", "none", "relative", "position_only", "uniform")
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
    rel_max_distance: int | None = None  # "relative"/"position_only": None = block_size - 1
    split_qkv: bool = False  # q, k, v as three maps, so LoRA can adapt q and v alone

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
        if not isinstance(self.split_qkv, bool):
            raise ValueError(f"ModelConfig.split_qkv must be a bool, got {self.split_qkv!r}")
        if self.split_qkv and self.pos not in POSITIONS[:3]:
            raise ValueError(
                f"ModelConfig.split_qkv=True needs pos in {POSITIONS[:3]}, got pos={self.pos!r}"
            )
        self._check_part1_positions()

    def _check_part1_positions(self) -> None:
        """Validate the fields only Part 1's attention variants read."""
        d = self.rel_max_distance
        if d is not None and (
            isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= self.block_size - 1
        ):
            raise ValueError(
                "ModelConfig.rel_max_distance must be None or an int in "
                f"[1, block_size - 1 = {self.block_size - 1}], got {d!r}"
            )
        if self.pos in ("position_only", "uniform") and self.qk_norm:
            raise ValueError(
                f"ModelConfig.qk_norm needs queries and keys; pos={self.pos!r} has none"
            )

    @property
    def rel_distances(self) -> int:
        """Rows of the relative-distance tables: distances 0..D, farther ones clipped to D."""
        d = self.block_size - 1 if self.rel_max_distance is None else self.rel_max_distance
        return d + 1

    @property
    def max_uniform_heads(self) -> int:
        """Most `uniform` heads whose windows 2^h differ within the block (2^(H-2) < block).

        More heads are allowed, as in the paper's 12-head GPT_uni with a 512-token context: the
        extra heads average the whole prefix, like the last distinct one.
        """
        heads = 1
        while 2 ** (heads - 1) < self.block_size:
            heads += 1
        return heads

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


def clipped_distances(seq_len: int, max_distance: int, device: torch.device) -> Tensor:
    """(T, T) long table min(i - j, D) for j <= i, 0 above the diagonal (masked anyway)."""
    pos = torch.arange(seq_len, device=device)
    return (pos[:, None] - pos[None, :]).clamp(0, max_distance)


def uniform_weights(n_head: int, seq_len: int, device: torch.device) -> Tensor:
    """(H, T, T) fixed GPT_uni attention: head h averages tokens i - 2^h < j <= i.

    Part 1 (arXiv 2305.13673, position-embedding comparison) gives head h "the previous
    2^h - 1 tokens"; Part 4.1 Sec. 4 recalls the same model as averaging the past k tokens for
    k in {1, 2, 4, 8, ...}. Both agree if the window is the current token plus the 2^h - 1
    before it (head 0 is the token itself), which is the reading used here. Near the start of
    the sequence a head averages the tokens that exist.
    """
    pos = torch.arange(seq_len, device=device)
    gap = pos[:, None] - pos[None, :]  # i - j
    window = 2 ** torch.arange(n_head, device=device)[:, None, None]
    inside = (gap >= 0) & (gap < window)
    return inside / inside.sum(-1, keepdim=True)


class Attention(nn.Module):
    """Causal multi-head attention; `cfg.pos` picks how scores are formed.

    `learned`, `rope`, `none`: softmax(q.k / sqrt(d_head)) through SDPA. Part 1's variants
    (arXiv 2305.13673, position-embedding comparison), with d = min(i - j, D) the clipped
    distance (D = `rel_max_distance`):
    - `relative` (GPT_rel): DeBERTa's disentangled attention (He et al. 2021, Sec. 3.1),
      score = (q_i.k_j + q_i.K_r[d] + Q_r[d].k_j) / sqrt(3 d_head), where K_r, Q_r project
      one relative-distance table shared by all layers (`GPT.wre`), as in DeBERTa. Only
      j <= i occurs in a decoder, so one table row per distance d >= 0 serves both terms.
    - `position_only` (GPT_pos): score = a_h[d], a learned scalar per head and distance:
      where to look ignores content, what is read (values) does not.
    - `uniform` (GPT_uni): fixed weights from `uniform_weights`; no scores are learned, and the
      module holds only the value and output maps.

    `cfg.split_qkv` holds the query, key and value maps as three modules `q`, `k`, `v` instead
    of one fused `qkv`: the same function (the fused weight is their row-wise concatenation),
    but Part 3.1's LoRA fine-tuning (arXiv 2309.14316 Sec. 4) adapts the query and value
    matrices alone, which needs them as separate modules.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.pos in ("position_only", "uniform"):
            self.v = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        elif cfg.split_qkv:
            self.q = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
            self.k = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
            self.v = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        else:
            self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        if cfg.qk_norm:
            self.q_norm = make_norm(cfg, cfg.head_dim)
            self.k_norm = make_norm(cfg, cfg.head_dim)
        if cfg.pos == "relative":
            self.rel_q = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
            self.rel_k = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        if cfg.pos == "position_only":
            self.pos_logits = nn.Parameter(torch.zeros(cfg.n_head, cfg.rel_distances))

    def forward(self, x: Tensor, rope: tuple[Tensor, ...] | None) -> Tensor:
        """`rope` is `rotary_operands(...)` cut to this length, or None.

        For Part 1's variants it is instead `GPT.position_operands(T)`.
        """
        if self.cfg.pos in ("relative", "position_only", "uniform"):
            return self._part1_forward(x, rope)
        B, T, C = x.shape
        H = self.cfg.n_head
        if self.cfg.split_qkv:
            qkv = torch.stack((self.q(x), self.k(x), self.v(x))).view(3, B, T, H, C // H)
            qkv = qkv.transpose(2, 3)
        else:
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

    def _heads(self, t: Tensor) -> Tensor:
        """(B, T, C) -> (B, H, T, d_head)."""
        B, T, C = t.shape
        return t.view(B, T, self.cfg.n_head, C // self.cfg.n_head).transpose(1, 2)

    def _merge(self, y: Tensor) -> Tensor:
        B, H, T, hd = y.shape
        return self.proj(y.transpose(1, 2).reshape(B, T, H * hd))

    def _relative_parts(
        self, x: Tensor, operands: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """(q, k, v, bias, scale): bias is the causal c2p + p2c term, already times scale."""
        table, dist = operands
        B, T, C = x.shape
        H = self.cfg.n_head
        q, k, v = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        rows = table.shape[0]
        k_r = self.rel_k(table).view(rows, H, C // H).transpose(0, 1)  # (H, D+1, d_head)
        q_r = self.rel_q(table).view(rows, H, C // H).transpose(0, 1)
        i = torch.arange(T, device=x.device)
        c2p = (q @ k_r.transpose(-1, -2))[:, :, i[:, None], dist]  # q_i . K_r[d(i, j)]
        p2c = (k @ q_r.transpose(-1, -2))[:, :, i[None, :], dist]  # Q_r[d(i, j)] . k_j
        scale = 1.0 / math.sqrt(3 * (C // H))
        bias = ((c2p + p2c) * scale).masked_fill(i[None, :] > i[:, None], float("-inf"))
        return q, k, v, bias, scale

    def attention_weights(self, x: Tensor, operands: tuple[Tensor, ...]) -> Tensor:
        """(B, H, T, T) attention probabilities of Part 1's variants, for analysis and tests."""
        pos = self.cfg.pos
        if pos == "relative":
            q, k, _, bias, scale = self._relative_parts(x, operands)
            return torch.softmax((q @ k.transpose(-1, -2)) * scale + bias, dim=-1)
        if pos == "position_only":
            (dist,) = operands
            T = dist.shape[0]
            logits = self.pos_logits[:, dist].masked_fill(
                torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf")
            )
            return torch.softmax(logits, dim=-1).expand(x.shape[0], -1, -1, -1)
        if pos == "uniform":
            (weights,) = operands
            return weights.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        raise ValueError(f"attention_weights covers pos in {POSITIONS[3:]}, got {pos!r}")

    def _part1_forward(self, x: Tensor, operands: tuple[Tensor, ...]) -> Tensor:
        if self.cfg.pos == "relative":
            q, k, v, bias, scale = self._relative_parts(x, operands)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=scale)
            return self._merge(y)
        v = self._heads(self.v(x))
        return self._merge(self.attention_weights(x, operands).to(v.dtype) @ v)


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
        if cfg.pos == "relative":  # DeBERTa's relative-distance table, shared by all layers
            self.wre = nn.Embedding(cfg.rel_distances, cfg.n_embd)
        if cfg.pos == "uniform":
            weights = uniform_weights(cfg.n_head, cfg.block_size, torch.device("cpu"))
            self.register_buffer("uniform_w", weights, persistent=False)
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
        if self.cfg.pos in ("relative", "position_only", "uniform"):
            rope = self.position_operands(T)
        for block in self.blocks:
            x = block(x, rope)
        return self.lm_head(self.ln_f(x))

    def position_operands(self, seq_len: int) -> tuple[Tensor, ...]:
        """What Part 1's attention variants read besides x, for a sequence of `seq_len`."""
        cfg, device = self.cfg, self.wte.weight.device
        if cfg.pos == "relative":
            return self.wre.weight, clipped_distances(seq_len, cfg.rel_distances - 1, device)
        if cfg.pos == "position_only":
            return (clipped_distances(seq_len, cfg.rel_distances - 1, device),)
        if cfg.pos == "uniform":
            return (self.uniform_w[:, :seq_len, :seq_len],)
        raise ValueError(f"position operands exist for pos in {POSITIONS[3:]}, got {cfg.pos!r}")


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
