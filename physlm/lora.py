"""LoRA fine-tuning of a physlm GPT through `peft`: Part 3.1's QA fine-tuning setup.

Part 3.1 (arXiv 2309.14316, Sec. 4 and the fine-tuning parameters in its appendix) fine-tunes a
BIO-pretrained model on QA data with LoRA on the embedding layer (rank r' = 128) plus the query
and value matrices of every attention layer (rank r = 8 or 16, the better run reported); Part
3.2 (arXiv 2309.14402) teaches knowledge manipulation the same way. Everything else stays
frozen. Low-rank updates W + (alpha / r) B A start at zero (one factor is zero-initialised), so
the adapted model computes the pretrained function until the first step.

The model fuses q, k, v into one `Attention.qkv` map; adapting q and v alone needs them as
separate modules, which `ModelConfig.split_qkv` provides and `to_split_qkv` converts to, exactly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import peft
import torch
from peft import (
    LoraConfig,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from peft.tuners.lora import LoraLayer
from torch import Tensor, nn

from physlm.model import GPT

RANK = 8  # Part 3.1 Sec. 4: r = 8 or 16 on the query/value matrices
EMBEDDING_RANK = 128  # Part 3.1 Sec. 4: r' = 128 on the embedding layer
PAPER_TARGETS = ("embedding", "query", "value")
# Our module names for each target, as regular expressions on the full module name.
TARGET_MODULES = {
    "embedding": r"wte",
    "query": r"blocks\.\d+\.attn\.q",
    "key": r"blocks\.\d+\.attn\.k",
    "value": r"blocks\.\d+\.attn\.v",
}
ADAPTER = "default"  # peft's adapter name; one adapter per model here


@dataclass(frozen=True)
class LoraSetup:
    """What `add_lora` puts on a model; frozen and plain, so it can key a run cache.

    `rank` applies to the attention targets and `embedding_rank` to the embedding. `alpha` is
    peft's lora_alpha for every target (update scale alpha / rank); None scales every update by
    1, i.e. alpha = that target's rank. `dropout` acts on the attention targets' input only
    (peft applies no dropout on the embedding path).
    """

    rank: int = RANK
    embedding_rank: int = EMBEDDING_RANK
    alpha: float | None = None
    targets: tuple[str, ...] = PAPER_TARGETS
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rank", "embedding_rank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"LoRA {name} must be a positive int, got {value!r}")
        a = self.alpha
        if a is not None and (
            isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a) or a <= 0
        ):
            raise ValueError(f"LoRA alpha must be None or a finite number > 0, got {a!r}")
        targets = self.targets
        if isinstance(targets, str) or not isinstance(targets, tuple | list):
            raise ValueError(
                f"LoRA targets must be a tuple of names from {tuple(TARGET_MODULES)}, "
                f"got {targets!r}"
            )
        unknown = [t for t in targets if t not in TARGET_MODULES]
        if not targets or unknown or len(set(targets)) != len(targets):
            raise ValueError(
                f"LoRA targets must be distinct names from {tuple(TARGET_MODULES)}, at least one, "
                f"got {tuple(targets)!r}"
            )
        object.__setattr__(self, "targets", tuple(targets))
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0.0 <= d < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {d!r}")

    @property
    def attention_targets(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t != "embedding")

    def to_dict(self) -> dict:
        return asdict(self)

    def peft_config(self) -> LoraConfig:
        """The peft configuration: one regex over our module names, the embedding's own rank."""
        pattern = "|".join(TARGET_MODULES[t] for t in self.targets)
        ranks, alphas = {}, {}
        if "embedding" in self.targets:
            ranks[TARGET_MODULES["embedding"]] = self.embedding_rank
            alphas[TARGET_MODULES["embedding"]] = self.alpha or self.embedding_rank
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha or self.rank,
            target_modules=f"(?:{pattern})",
            rank_pattern=ranks,
            alpha_pattern=alphas,
            lora_dropout=float(self.dropout),
            bias="none",
        )


def _check_gpt(model: nn.Module) -> None:
    if not isinstance(model, GPT):
        raise ValueError(f"model must be a physlm.model.GPT, got {type(model).__name__}")


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


def add_lora(
    model: GPT,
    rank: int = RANK,
    alpha: float | None = None,
    targets: tuple[str, ...] = PAPER_TARGETS,
    dropout: float = 0.0,
    embedding_rank: int = EMBEDDING_RANK,
) -> GPT:
    """Inject LoRA adapters into `model` in place, freeze everything else, return the model.

    The defaults are Part 3.1's QA fine-tuning (Sec. 4): embedding rank 128, query/value rank 8.
    The result is still a `GPT` whose `forward(idx)` returns logits, so the trainer and the run
    cache handle it as any model; `model.lora_setup` records the `LoraSetup`. Query, key or
    value targets need a model built with `ModelConfig.split_qkv=True` (see `to_split_qkv`).
    """
    setup = LoraSetup(rank, embedding_rank, alpha, targets, dropout)
    return apply_lora(model, setup)


def apply_lora(model: GPT, setup: LoraSetup) -> GPT:
    """`add_lora` with the settings given as one `LoraSetup`."""
    _check_gpt(model)
    if has_lora(model):
        raise ValueError("model already carries LoRA adapters; add_lora adds one set only")
    if setup.attention_targets and not model.cfg.split_qkv:
        raise ValueError(
            f"LoRA targets {setup.attention_targets} need a model with ModelConfig.split_qkv=True "
            "(q, k, v as separate maps); convert a fused model with physlm.lora.to_split_qkv"
        )
    inject_adapter_in_model(setup.peft_config(), model, adapter_name=ADAPTER)
    for name, p in model.named_parameters():  # peft freezes the rest; make it a stated fact
        p.requires_grad_("lora_" in name)
    model.lora_setup = setup
    return model


def to_split_qkv(model: GPT) -> GPT:
    """A new model with `split_qkv=True` computing the same function as `model`.

    The fused `qkv` weight stacks the query, key and value maps row-wise (rows [0, d), [d, 2d),
    [2d, 3d)), so each becomes one slice. A model that is already split is copied.
    """
    _check_gpt(model)
    if has_lora(model):
        raise ValueError("model carries LoRA adapters; convert the base model before add_lora")
    if model.cfg.split_qkv:
        return copy.deepcopy(model)
    cfg = model.cfg.with_(split_qkv=True)  # raises ValueError for Part 1's attention variants
    state = {}
    for key, value in model.state_dict().items():
        if ".attn.qkv." in key:
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                state[key.replace(".attn.qkv.", f".attn.{name}.")] = part
        else:
            state[key] = value
    with torch.random.fork_rng(devices=[]):  # the throwaway init must not move the caller's RNG
        split = GPT(cfg)
    split.load_state_dict(state)
    return split.to(model.wte.weight.device).train(model.training)


def with_lora(base: GPT, setup: LoraSetup | None = None) -> GPT:
    """A LoRA-adapted copy of a pretrained `base` (split if needed); `base` is left untouched.

    This is the model builder a fine-tuning run needs: pretrained weights plus fresh adapters.
    """
    setup = setup or LoraSetup()
    _check_gpt(base)
    if setup.attention_targets and not base.cfg.split_qkv:
        model = to_split_qkv(base)
    else:
        model = copy.deepcopy(base)
    return apply_lora(model, setup)


def finetune_args(base: GPT, base_key: str, setup: LoraSetup | None = None) -> dict[str, Any]:
    """Keyword arguments for `runs.get_or_train` that LoRA-fine-tune the pretrained `base`.

    `model_cfg` is the adapted model's config, `build` makes it from `base` after the trainer
    seeds (so adapter init is reproducible), and `build_spec` keys the run by the parent run's
    key, the LoRA settings and the peft version (its init code is not in the code hash).
    Use: `get_or_train(train_cfg=..., data=..., **finetune_args(parent.model, parent.key))`.
    """
    setup = setup or LoraSetup()
    _check_gpt(base)
    if not isinstance(base_key, str) or not base_key:
        raise ValueError(f"base_key must be the parent run's key, got {base_key!r}")
    cfg = base.cfg.with_(split_qkv=True) if setup.attention_targets else base.cfg
    return {
        "model_cfg": cfg,
        "build": lambda: with_lora(base, setup),
        "build_spec": {"init": base_key, "lora": setup.to_dict(), "peft": peft.__version__},
    }


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The adapter parameters by name: the only ones `add_lora` leaves trainable."""
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with requires_grad (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_state_dict(model: GPT) -> dict[str, Tensor]:
    """The adapter weights alone (peft's key format), e.g. to store next to a base run."""
    if not has_lora(model):
        raise ValueError("model carries no LoRA adapters; call add_lora first")
    state = get_peft_model_state_dict(model, adapter_name=ADAPTER)
    return {k: v.detach().clone() for k, v in state.items()}


def load_lora_state_dict(model: GPT, state: dict[str, Tensor]) -> None:
    """Load adapter weights saved by `lora_state_dict` into a model with the same `LoraSetup`."""
    if not has_lora(model):
        raise ValueError("model carries no LoRA adapters; call add_lora with the same setup first")
    expected = set(get_peft_model_state_dict(model, adapter_name=ADAPTER))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(
            f"state does not match the model's adapters: missing {missing[:3]}, "
            f"unexpected {extra[:3]}"
        )
    try:
        set_peft_model_state_dict(model, state, adapter_name=ADAPTER)
    except RuntimeError as e:  # shape mismatch: another rank or model size
        raise ValueError(f"state does not fit the model's adapters: {e}") from e


def merge_lora(model: GPT) -> GPT:
    """A plain GPT (no peft modules) computing the adapted function, each W + (alpha/r) B A.

    With tied embeddings, LoRA changes the input embedding only (peft adapts the lookup; the
    output head reads the frozen base matrix), so the merged model unties them: `wte` gets the
    updated matrix and `lm_head` keeps the base one (`tie_embeddings=False`).
    """
    _check_gpt(model)
    if not has_lora(model):
        raise ValueError("model carries no LoRA adapters; nothing to merge")
    state = {}
    for key, value in model.state_dict().items():
        if "lora_" not in key:
            state[key.replace(".base_layer.", ".")] = value
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            key = f"{name}.weight"
            state[key] = state[key] + module.get_delta_weight(ADAPTER).to(state[key].dtype)
    cfg = model.cfg
    if cfg.tie_embeddings and isinstance(model.wte, LoraLayer):
        cfg = cfg.with_(tie_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        merged = GPT(cfg)
    merged.load_state_dict({k: v.detach() for k, v in state.items()})
    return merged.to(model.wte.weight.device).train(model.training)
