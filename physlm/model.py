"""One transformer; every variant the papers compare is a switch on `ModelConfig`.

"GPT2" in Parts 2-3 means GPT-2 with rotary position embedding on a fraction of each head's
dimensions (GPT-NeoX style, Part 3.1 App. B); Part 3.3 writes shapes as GPT2-l-h (l layers, h
heads, width 64h, no dropout). LLaMA/Mistral differ by the gated (SwiGLU) MLP and RMSNorm.

Part 1 (arXiv 2305.13673, position-embedding comparison) compares GPT (learned absolute
positions, `pos="learned"`), GPT_rel (`"relative"`), GPT_rot (`"rope"`), GPT_pos
(`"position_only"`) and GPT_uni (`"uniform"`); see `Attention` for the three new ones.

Part 4.1 (arXiv 2512.17351, Sec. 4) adds Canon layers at up to four places in a block
(`canon="ABCD"`, see `Canon`); `llama_canon` is the paper's LlamaCanon recipe.

`causal=False` lets every position attend to every other: the encoder-only (BERT-style) model
Part 1 compares with GPT, trained with the trainer's masked-language-model objective.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POSITIONS = ("learned", "rope", "none", "relative", "position_only", "uniform")
MLPS = ("gelu", "gated", "none")
NORMS = ("layer", "rms")
CANON_PLACES = "ABCD"  # Part 4.1: A pre-attention, B on q|k|v, C pre-MLP, D on the MLP's up
CANON_KERNEL = 4


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
    canon: str = ""  # Part 4.1 Canon layers: placements from "ABCD" in order, e.g. "AC"
    canon_residual: bool = True  # h + conv(h) (the paper's default) or conv(h) alone
    canon_frozen: bool = False  # keep Canon weights at their random init (an ablation)
    causal: bool = True  # False: bidirectional attention (an encoder, for masked-LM training)

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
        self._check_canon()
        self._check_causal()

    def _check_causal(self) -> None:
        """An encoder uses the SDPA path (the other variants build causal scores by hand) and no
        Canon layer (a causal convolution by definition)."""
        if not isinstance(self.causal, bool):
            raise ValueError(f"ModelConfig.causal must be a bool, got {self.causal!r}")
        if not self.causal and (self.pos not in POSITIONS[:3] or self.canon):
            raise ValueError(
                f"ModelConfig.causal=False (an encoder) needs pos in {POSITIONS[:3]} and "
                f"canon='', got pos={self.pos!r}, canon={self.canon!r}"
            )

    def _check_canon(self) -> None:
        """Canon placements: letters of "ABCD", each once, in order; each needs its site."""
        c = self.canon
        if not isinstance(c, str) or any(ch not in CANON_PLACES for ch in c) or (
            "".join(sorted(set(c))) != c
        ):
            raise ValueError(
                "ModelConfig.canon must be '' or distinct letters of 'ABCD' in that order "
                f"(e.g. 'ABCD', 'AC'), got {c!r}"
            )
        for name in ("canon_residual", "canon_frozen"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if "B" in c and self.pos not in POSITIONS[:3]:
            raise ValueError(
                f"ModelConfig.canon 'B' acts on q|k|v, which needs pos in {POSITIONS[:3]}, "
                f"got pos={self.pos!r}"
            )
        if ("C" in c or "D" in c) and self.mlp == "none":
            raise ValueError(
                f"ModelConfig.canon {c!r}: 'C' and 'D' sit in the MLP sublayer, which "
                "mlp='none' removes"
            )

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


def llama_canon(vocab_size: int, **changes) -> ModelConfig:
    """Part 4.1's LlamaCanon recipe: Llama (gated MLP, RMSNorm) with QK-norm, RoPE on a
    quarter of each head and Canon-ABCD (arXiv 2512.17351 Sec. 4-5; the released
    LlamaCanon configs use rope_dim = head_dim / 4). `changes` override any field."""
    recipe = dict(
        mlp="gated", norm="rms", qk_norm=True, pos="rope", rope_fraction=0.25, canon="ABCD"
    )
    return ModelConfig(vocab_size=vocab_size, **{**recipe, **changes})


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


def _taps(weight: Tensor, dtype: torch.dtype, residual: bool) -> Tensor:
    """(m, k) taps in `dtype`; with `residual` the identity folds into the current-token tap."""
    k = weight.shape[-1]
    w = weight.reshape(weight.shape[0], k).to(dtype)
    return torch.cat((w[:, :-1], w[:, -1:] + 1), dim=1) if residual else w


class _ShiftedSum(torch.autograd.Function):
    """Forward and backward of `canon_shifted_sum` as in-place multiply-adds on shifted slices:
    about 2x faster on a CPU than autograd over padded copies (or than `nn.Conv1d`)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, residual: bool) -> Tensor:
        k, T = weight.shape[-1], x.shape[-2]
        w = _taps(weight, x.dtype, residual)
        y = x * w[:, k - 1]
        for s in range(1, min(k, T)):  # tap k-1-s reads the token s steps back
            y[..., s:, :].addcmul_(x[..., : T - s, :], w[:, k - 1 - s])
        ctx.save_for_backward(x, weight)
        ctx.residual = residual
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # Canon-B's arrives permuted from the attention heads
        k, T = weight.shape[-1], x.shape[-2]
        w = _taps(weight, x.dtype, ctx.residual)
        lead = tuple(range(x.dim() - 1))
        want_x, want_w = ctx.needs_input_grad[:2]  # frozen Canon weights need no grad_w
        grad_x = grad * w[:, k - 1] if want_x else None
        acc = torch.promote_types(x.dtype, torch.float32)  # bf16 sums accumulate in fp32
        grad_w = torch.zeros(weight.shape[0], k, dtype=acc, device=x.device)
        if want_w:
            grad_w[:, k - 1] = (grad * x).sum(lead, dtype=acc)
        for s in range(1, min(k, T)):
            later, earlier = grad[..., s:, :], x[..., : T - s, :]
            if want_x:
                grad_x[..., : T - s, :].addcmul_(later, w[:, k - 1 - s])
            if want_w:
                grad_w[:, k - 1 - s] = (later * earlier).sum(lead, dtype=acc)
        grad_w = grad_w.view_as(weight).to(weight.dtype) if want_w else None
        return grad_x, grad_w, None


def canon_shifted_sum(x: Tensor, weight: Tensor, residual: bool = True) -> Tensor:
    """Causal depthwise conv of `x` (..., T, m) with `weight` (m, 1, k), plus x if `residual`.

    The same function as `nn.Conv1d(m, m, k, groups=m, padding=k - 1)` cut to the first T
    outputs, written as k shifted, per-channel-scaled copies of x: without the transposes to
    and from (B, m, T) it is faster on a CPU at the book's sizes (`physlm bench canon`).
    Output t is sum_j weight[:, 0, j] * x[t - (k - 1) + j], positions before 0 being zero.
    """
    return _ShiftedSum.apply(x, weight, residual)


@functools.cache
def _fused_canon():
    """The Triton kernel (`physlm.kernels.canon`) for CUDA tensors, or None without Triton."""
    try:
        from physlm.kernels.canon import canon_fused
    except ImportError:
        return None
    return canon_fused


class Canon(nn.Module):
    """Part 4.1's Canon layer (arXiv 2512.17351 Sec. 4): h + causal depthwise conv(h).

    Kernel 4, no bias, no activation. `weight` keeps `nn.Conv1d`'s layout (m, 1, 4) and
    its default init, U(-1/2, 1/2) for fan-in 4: the paper warns against re-initialising it
    to std 0.02, so `GPT.reset_parameters` leaves it to `reset_parameters` here. On CUDA the
    fused Triton kernel runs it; elsewhere `canon_shifted_sum`.
    """

    def __init__(self, channels: int, residual: bool = True, frozen: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.weight = nn.Parameter(torch.empty(channels, 1, CANON_KERNEL))
        self.weight.requires_grad_(not frozen)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """`nn.Conv1d`'s default: kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(k), 1/sqrt(k))."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        fused = _fused_canon() if x.is_cuda else None
        if fused is not None:
            return fused(x, self.weight, self.residual)
        return canon_shifted_sum(x, self.weight, self.residual)


def make_canon(cfg: ModelConfig, place: str, channels: int) -> Canon | None:
    """The Canon layer at `place` if `cfg.canon` asks for one there."""
    if place not in cfg.canon:
        return None
    return Canon(channels, residual=cfg.canon_residual, frozen=cfg.canon_frozen)


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
    """Multi-head attention, causal unless `cfg.causal` is False; `cfg.pos` picks the scores.

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
        self.canon_b = make_canon(cfg, "B", 3 * cfg.n_embd)

    def forward(self, x: Tensor, rope: tuple[Tensor, ...] | None) -> Tensor:
        """`rope` is `rotary_operands(...)` cut to this length, or None.

        For Part 1's variants it is instead `GPT.position_operands(T)`.
        """
        if self.cfg.pos in ("relative", "position_only", "uniform"):
            return self._part1_forward(x, rope)
        B, T, C = x.shape
        H = self.cfg.n_head
        if self.canon_b is not None:
            qk, v = self._canon_qkv(x)
        elif self.cfg.split_qkv:
            qkv = torch.stack((self.q(x), self.k(x), self.v(x))).view(3, B, T, H, C // H)
            qkv = qkv.transpose(2, 3)
        else:
            qkv = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        if self.canon_b is None:
            qk, v = qkv[:2], qkv[2]
            if self.cfg.qk_norm:
                qk = torch.stack((self.q_norm(qk[0]), self.k_norm(qk[1])))
        if rope is not None:
            c, s, r = (t.to(qk.dtype) for t in rope)  # under autocast qk is already bf16
            qk = torch.addcmul(qk * c, qk @ r, s)  # q and k rotated in one pass
        q, k = qk
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.cfg.causal)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def _canon_qkv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(qk, v) with Canon-B on q|k|v after QK-norm and before RoPE (Part 4.1 Sec. 4).

        qk: (2, B, H, T, d_head), v: (B, H, T, d_head), as the plain path returns them.
        """
        B, T, C = x.shape
        H, hd = self.cfg.n_head, C // self.cfg.n_head
        if self.cfg.split_qkv:
            q, k, v = self.q(x), self.k(x), self.v(x)
        else:
            q, k, v = self.qkv(x).split(C, dim=-1)
        if self.cfg.qk_norm:
            q = self.q_norm(q.view(B, T, H, hd)).view(B, T, C)
            k = self.k_norm(k.view(B, T, H, hd)).view(B, T, C)
        qkv = self.canon_b(torch.cat((q, k, v), dim=-1))
        qkv = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
        return qkv[:2], qkv[2]

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
        # gather, not advanced indexing: its backward is a scatter-add, the indexing's an
        # index_put that cost a quarter of a GPT_rel step on the CPU; the values are the same.
        idx = dist.expand(B, H, T, T)
        c2p = (q @ k_r.transpose(-1, -2)).gather(-1, idx)  # q_i . K_r[d(i, j)]
        p2c = (q_r @ k.transpose(-1, -2)).gather(-2, idx)  # Q_r[d(i, j)] . k_j
        i = torch.arange(T, device=x.device)
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
        self.canon_d = make_canon(cfg, "D", width)  # on gate|up together, pre-activation
        self.down = nn.Linear(cfg.hidden, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)
        if self.canon_d is not None:
            h = self.canon_d(h)
        if self.gated:
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            # GELU's definition, x * Phi(x): GPT-2's tanh form differs by < 1e-3 and costs
            # four times as much on the CPU (a fifth of a Part 1 step).
            h = F.gelu(h)
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = make_norm(cfg)
        self.canon_a = make_canon(cfg, "A", cfg.n_embd)  # after the pre-attention norm
        self.attn = Attention(cfg)
        self.has_mlp = cfg.mlp != "none"
        if self.has_mlp:
            self.ln2 = make_norm(cfg)
            self.canon_c = make_canon(cfg, "C", cfg.n_embd)  # after the pre-MLP norm
            self.mlp = MLP(cfg)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        h = self.ln1(x)
        if self.canon_a is not None:
            h = self.canon_a(h)
        x = x + self.attn(h, rope)
        if self.has_mlp:
            h = self.ln2(x)
            if self.canon_c is not None:
                h = self.canon_c(h)
            x = x + self.mlp(h)
        return x


class GPT(nn.Module):
    """Pre-norm transformer returning logits: of the next token (decoder, the default) or, with
    `causal=False`, of each position's own token (an encoder, for masked positions)."""

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
        """GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2L).

        Canon weights get their own (Conv1d) init instead, in their place in this order.
        """
        std = self.cfg.init_std
        canon = {id(m.weight): m for m in self.modules() if isinstance(m, Canon)}
        for name, p in self.named_parameters():
            if id(p) in canon:
                canon[id(p)].reset_parameters()
            elif p.dim() < 2:
                nn.init.zeros_(p) if name.endswith("bias") else nn.init.ones_(p)
            elif name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.cfg.n_layer))
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: Tensor, at: Tensor | None = None) -> Tensor:
        """Logits (B, T, vocab); with `at`, a (B, T) bool mask, only the (n, vocab) rows where
        it is true, in row-major order: a loss needs no others, and the output head is about
        half the work of a step where the vocabulary is large (Part 3.1's 3,294 tokens)."""
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
        if at is not None:
            if at.shape != idx.shape:
                raise ValueError(
                    f"at must have the shape of idx {tuple(idx.shape)}, got {tuple(at.shape)}"
                )
            x = x.flatten(0, 1).index_select(0, at.flatten().nonzero().squeeze(1))
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
    """Mean next-token cross-entropy over the positions where `mask` is true.

    With no positions (a rank whose rows hold no target) it is a zero that still reaches every
    parameter, so a backward pass and gradient synchronisation run as on the others.
    """
    if targets.numel() == 0:
        return logits.sum() * 0.0
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    )
    if mask is None:
        return flat.mean()
    m = mask.reshape(-1).to(flat.dtype)
    return (flat * m).sum() / m.sum().clamp_min(1.0)
