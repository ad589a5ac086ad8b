"""GPU memory a training run needs, estimated before it starts: a preset that cannot fit fails
here, naming what to change, instead of hours into a queue on a GPU server.

Training in bf16 autocast (what the trainer does on CUDA) keeps per parameter an fp32 weight,
an fp32 gradient and AdamW's two fp32 moments: 16 bytes. Activations saved for the backward
pass are bf16 (2 bytes) per element; per token and layer they are counted from the blocks'
structure (see `activation_elements`); the logits are kept in bf16 and again as fp32 for the
loss, with an fp32 gradient. Allocator slack and CUDA workspaces are not counted, which is
why the limit sits below the card's memory only by what those take in practice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physlm.model import GPT, ModelConfig

GPU_BYTES = 80 * 10**9  # an H100's 80 GB
BYTES_PER_PARAM = 4 + 4 + 8  # fp32 weight, fp32 gradient, AdamW exp_avg and exp_avg_sq
ACTIVATION_BYTES = 2  # bf16
LOGIT_BYTES = 2 + 4 + 4  # bf16 logits, their fp32 copy for the loss, its fp32 gradient


def param_count(cfg: ModelConfig) -> int:
    """Parameters of the model (tied embeddings once), built on the meta device: no memory."""
    with torch.device("meta"):
        model = GPT(cfg)
    return sum(p.numel() for p in model.parameters())


def activation_elements(cfg: ModelConfig) -> int:
    """Elements saved for backward per token and layer (an upper count, from the blocks).

    Attention: the norm's input and output (2d), the q|k|v projection (3d), q, k, v as the
    attention kernel takes them after rotary (3d), its output (d), the output projection's
    result feeding the residual (d): 10d. MLP: the norm's input and output (2d), the up
    projection (w: hidden, or 2 x hidden gated), the activation's output (hidden) and, gated,
    the gate's activation (hidden). A Canon layer keeps its input (the width it acts on).
    Attention scores are not stored: the fused attention kernel recomputes them.
    """
    d = cfg.n_embd
    hidden = cfg.hidden
    attention = 10 * d
    if cfg.mlp == "none":
        mlp = 0
    elif cfg.mlp == "gated":
        mlp = 2 * d + 2 * hidden + hidden + hidden
    else:
        mlp = 2 * d + hidden + hidden
    canon_widths = {"A": d, "B": 3 * d, "C": d, "D": 2 * hidden if cfg.mlp == "gated" else hidden}
    canon = sum(canon_widths[c] for c in cfg.canon)
    return attention + mlp + canon


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    rows: int
    seq_len: int
    state_bytes: int  # weights, gradients, optimizer moments
    activation_bytes: int
    logit_bytes: int

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes + self.logit_bytes

    def describe(self) -> str:
        gb = 1e9
        return (
            f"~{self.total / gb:.1f} GB: {self.params:,} parameters x {BYTES_PER_PARAM} bytes "
            f"(weights, gradients, AdamW) = {self.state_bytes / gb:.1f} GB, activations of "
            f"{self.rows} rows x {self.seq_len} tokens = {self.activation_bytes / gb:.1f} GB, "
            f"logits {self.logit_bytes / gb:.1f} GB"
        )


def training_memory(cfg: ModelConfig, rows: int, seq_len: int) -> MemoryEstimate:
    """What one optimizer step of `rows` x `seq_len` tokens holds on one GPU at its peak."""
    for name, v in (("rows", rows), ("seq_len", seq_len)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    params = param_count(cfg)
    tokens = rows * seq_len
    per_token = cfg.n_layer * activation_elements(cfg) + 2 * cfg.n_embd  # + embeddings, final norm
    return MemoryEstimate(
        params=params,
        rows=rows,
        seq_len=seq_len,
        state_bytes=BYTES_PER_PARAM * params,
        activation_bytes=ACTIVATION_BYTES * tokens * per_token,
        logit_bytes=LOGIT_BYTES * tokens * cfg.vocab_size,
    )


def check_fits(
    cfg: ModelConfig, rows: int, seq_len: int, what: str, limit: int = GPU_BYTES
) -> MemoryEstimate:
    """The estimate, or a ValueError naming the run and the parameter to lower."""
    est = training_memory(cfg, rows, seq_len)
    if est.total > limit:
        batch_part = est.activation_bytes + est.logit_bytes
        knob = (
            "rows (the batch per step; the global batch can be kept with more GPUs)"
            if batch_part >= est.state_bytes
            else "the model size (n_layer, n_embd)"
        )
        raise ValueError(
            f"{what} needs {est.describe()}, over the {limit / 1e9:.0f} GB of one GPU; "
            f"lower {knob}"
        )
    return est
