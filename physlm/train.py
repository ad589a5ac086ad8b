"""The one training path: CPU, one GPU or many (`accelerate launch`), with exact resume.

Exact resume rests on two facts: a data source's batch is a pure function of the step, and the
checkpoint holds the model, optimizer, scheduler and RNG states. The model has no dropout, so a
run resumed at step s continues exactly as an uninterrupted one would.

Two objectives share the loop: next-token prediction (a decoder) and the masked-language-model
objective of BERT (Devlin et al. 2019, Sec. 3.1) for an encoder (`ModelConfig.causal=False`),
which Part 1 compares with GPT. The masking is drawn from (seed, step) alone, like the batch,
so resume stays exact and every process of a multi-process run masks the same global batch.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.utils import DistributedType
from tqdm.std import tqdm

from physlm.checkpoint import (
    atomic_write_text,
    load_latest,
    prune_checkpoints,
    save_checkpoint,
)
from physlm.model import GPT, ModelConfig, lm_loss

if TYPE_CHECKING:
    from physlm.data import BatchSource

PRECISIONS = ("auto", "fp32", "bf16")
OBJECTIVES = ("next_token", "masked")
FUSED_DEVICES = ("cpu", "cuda")  # where torch has a fused AdamW kernel
EvalFn = Callable[[GPT, int], dict[str, float]]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run. AdamW with linear warmup and cosine decay to min_lr_ratio * lr."""

    steps: int
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0
    checkpoint_every: int = 0
    precision: str = "auto"
    compile: bool = False
    objective: str = "next_token"  # or "masked": BERT's masked-LM loss, for an encoder
    mask_rate: float = 0.15  # "masked": share of the loss positions chosen as targets
    # "masked": of the chosen positions, shares replaced by [MASK], by a random token, kept
    mask_recipe: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"TrainConfig.steps must be a positive int, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"TrainConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}"
            )
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"TrainConfig.mask_rate must be in (0, 1), got {self.mask_rate!r}")
        recipe = tuple(self.mask_recipe)
        if len(recipe) != 3 or min(recipe) < 0 or abs(sum(recipe) - 1.0) > 1e-9:
            raise ValueError(
                "TrainConfig.mask_recipe must be three shares >= 0 summing to 1 ([MASK], random "
                f"token, kept), got {self.mask_recipe!r}"
            )
        object.__setattr__(self, "mask_recipe", tuple(float(r) for r in recipe))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def every_checkpoint(self) -> int:
        """Default: ten checkpoints per run, so a crash loses at most a tenth of the work."""
        return self.checkpoint_every or max(1, math.ceil(self.steps / 10))


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine from 1 down to min_lr_ratio."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, biases).

    `fused` updates all parameters in one kernel (CPU and CUDA): the same AdamW, ~3x faster
    than the per-tensor loop, which is most of the optimizer's share of a small model's step.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=fused or None
    )


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    cuda = torch.cuda.is_available()
    if cfg.precision == "bf16" and not cuda:
        raise ValueError("TrainConfig.precision='bf16' needs a CUDA device; use 'auto' or 'fp32'")
    mixed = "bf16" if cuda and cfg.precision in ("auto", "bf16") else "no"
    return Accelerator(mixed_precision=mixed, cpu=not cuda)


def _step_fn(acc: Accelerator, optimizer: torch.optim.Optimizer) -> Callable[[], Any]:
    """The optimizer step to call each iteration.

    Accelerate's wrapper probes the installed packages on every `step()` (~0.1 ms, several
    percent of a small model's step). Where it would do nothing but call the wrapped optimizer
    (no fp16 loss scaler, no XLA gradient sync), call that optimizer directly.
    """
    inner = getattr(optimizer, "optimizer", None)
    plain = (
        type(optimizer) is AcceleratedOptimizer
        and acc.scaler is None
        and acc.distributed_type != DistributedType.XLA
        and isinstance(inner, torch.optim.Optimizer)
    )
    return inner.step if plain else optimizer.step


def _clip_fn(acc: Accelerator, model: torch.nn.Module, max_norm: float) -> Callable[[], Any]:
    """Scale gradients so their global L2 norm is at most `max_norm`, as clip_grad_norm_ does.

    accelerate's and torch's clip_grad_norm_ spend more time in Python than in arithmetic on a
    small model (clipping was ~5% of a step of the bench shape). Where the gradients are plain
    tensors of one device and dtype (one process, or DDP after its all-reduce) and no fp16 loss
    scaler is involved, the same computation runs as two foreach kernels.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    plain = (
        acc.distributed_type
        in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU)
        and acc.scaler is None
        and len({(p.device, p.dtype) for p in params}) == 1
    )
    if not plain:
        return lambda: acc.clip_grad_norm_(model.parameters(), max_norm)

    def clip() -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))

    return clip


def loss_columns(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple:
    """(x, y, mask) without the columns after the batch's last loss target.

    In a causal model no loss position attends to a later one, so those columns change neither
    the loss nor a gradient; rows padded to a fixed width (bioS, QA) spend a fifth to a half of
    their positions there.
    """
    hit = mask.any(0).nonzero()
    keep = int(hit[-1]) + 1 if len(hit) else 1
    if keep == x.shape[1]:
        return x, y, mask
    return x[:, :keep], y[:, :keep], mask[:, :keep]


def masked_lm_batch(
    batch: dict[str, torch.Tensor], cfg: TrainConfig, step: int, mask_id: int
) -> dict[str, torch.Tensor]:
    """The masked-LM version of a next-token batch: {"x": corrupted input, "y": the original
    tokens, "mask": the chosen positions}, so the loss counts on those positions only.

    A token x[t] may be chosen when it is one the next-token loss counts (the data's mask at
    t - 1): padding and a row's first token never are. Each such position is chosen with
    probability `mask_rate`; a chosen one becomes `mask_id`, a random token or stays itself in
    the shares of `mask_recipe`. Random tokens are drawn from the batch's own tokens (the data's
    unigram law), so padding and markers that never occur as targets are not invented.
    """
    x, mask = batch["x"], batch["mask"]
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    allowed = torch.zeros_like(mask)
    allowed[:, 1:] = mask[:, :-1]
    chosen = allowed & (torch.rand(x.shape, generator=g) < cfg.mask_rate)
    kind = torch.rand(x.shape, generator=g)
    pool = x[allowed] if allowed.any() else x.flatten()
    random_tok = pool[torch.randint(len(pool), x.shape, generator=g)]
    to_mask, to_random = cfg.mask_recipe[0], cfg.mask_recipe[0] + cfg.mask_recipe[1]
    corrupted = torch.where(chosen & (kind < to_mask), torch.full_like(x, mask_id), x)
    corrupted = torch.where(chosen & (kind >= to_mask) & (kind < to_random), random_tok, corrupted)
    return {"x": corrupted, "y": x, "mask": chosen}


def _globally_normalised(loss: torch.Tensor, mask: torch.Tensor, world: int) -> tuple:
    """This rank's loss rescaled so that N processes compute one process's update.

    `lm_loss` is the mean over this rank's n_r loss tokens, and DDP (what accelerate wraps the
    model in) averages gradients over the `world` ranks. Each rank's mean would then weigh a
    token by 1 / (world * n_r): ranks with fewer loss tokens would count more. One process
    instead takes the mean over all N = sum_r n_r tokens of the global batch. Scaling rank r's
    loss by world * n_r / N makes it world * S_r / N (S_r its summed token losses), and DDP's
    average of those is sum_r S_r / N: the global mean, token for token as in one process (up
    to the order of float additions). One all-reduce of (S_r, n_r) per step gives N and the
    global mean loss that is logged. A single process never comes here, so its arithmetic is
    untouched. Returns (the rescaled loss, the global mean loss, N).
    """
    import torch.distributed as dist

    count = mask.sum().to(torch.float64)
    local = loss.detach().to(torch.float64) * count.clamp_min(1.0)  # = S_r (0 when n_r = 0)
    totals = torch.stack([local, count])
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    total_loss, total_count = totals.tolist()
    factor = world * max(float(count), 1.0) / max(total_count, 1.0)
    return loss * factor, total_loss / max(total_count, 1.0), int(total_count)


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _read_metrics(path: Path, upto_step: int) -> list[dict]:
    """Metrics logged up to and including `upto_step` (later lines belong to lost work)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # a torn last line from a crash
        if row["step"] <= upto_step:
            rows.append(row)
    return rows


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: BatchSource,
    run_dir: str | Path,
    evals: dict[str, EvalFn] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    build: Callable[[], GPT] | None = None,
) -> tuple[GPT, list[dict]]:
    """Train (or resume) a model in `run_dir`; return the unwrapped model and its metrics.

    `evals` are called every `eval_every` steps and at the end, each returning named numbers.
    `stop_after` ends the process's work early (for tests of interrupted runs). `build` makes
    the starting model instead of `GPT(model_cfg)`, e.g. pretrained weights with LoRA adapters
    (`physlm.lora.with_lora`); it is called after seeding, and only parameters that require
    grad are trained.
    """
    if data.vocab_size > model_cfg.vocab_size:
        raise ValueError(
            f"data vocab_size {data.vocab_size} exceeds "
            f"ModelConfig.vocab_size {model_cfg.vocab_size}"
        )
    masked = train_cfg.objective == "masked"
    if masked and data.vocab_size >= model_cfg.vocab_size:
        raise ValueError(
            f"objective 'masked' writes [MASK] as id {data.vocab_size} (one past the data's "
            f"vocabulary): ModelConfig.vocab_size must be at least {data.vocab_size + 1}, "
            f"got {model_cfg.vocab_size}"
        )
    if not masked and not model_cfg.causal:
        raise ValueError(
            "objective 'next_token' needs ModelConfig.causal=True: a bidirectional model sees "
            "the token it is asked to predict (use objective='masked' for an encoder)"
        )
    run_dir = Path(run_dir)
    ckpt_root = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    acc = make_accelerator(train_cfg)
    seed_everything(train_cfg.seed)
    model = GPT(model_cfg) if build is None else build()
    if model.cfg != model_cfg:
        raise ValueError(f"build made a model with config {model.cfg}, not model_cfg {model_cfg}")
    optimizer = make_optimizer(model, train_cfg, fused=acc.device.type in FUSED_DEVICES)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(train_cfg, s))

    start = 0
    # Every process loads the same checkpoint (reads only), so all ranks resume at one step.
    resumed = load_latest(ckpt_root, model, log=acc.print)
    if resumed is not None:
        start, state = resumed
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
    metrics = _read_metrics(metrics_path, start) if acc.is_main_process else []
    if acc.is_main_process:
        atomic_write_text(metrics_path, "".join(json.dumps(m) + "\n" for m in metrics))

    model, optimizer = acc.prepare(model, optimizer)
    optimizer_step = _step_fn(acc, optimizer)
    clip_gradients = _clip_fn(acc, model, train_cfg.grad_clip)
    if train_cfg.compile:
        model = torch.compile(model)
    rank, world = acc.process_index, acc.num_processes
    end = train_cfg.steps if stop_after is None else min(train_cfg.steps, stop_after)
    bar = tqdm(
        total=train_cfg.steps,
        initial=start,
        disable=not (progress and acc.is_main_process),
        mininterval=5.0,
        desc="train",
        dynamic_ncols=False,
        ncols=80,
    )
    tokens_seen = 0
    t0 = time.perf_counter()

    def log(row: dict) -> None:
        if acc.is_main_process:
            metrics.append(row)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def run_evals(step: int) -> None:
        if not evals:
            return
        raw = acc.unwrap_model(model)
        raw.eval()
        with torch.no_grad(), acc.autocast():
            row = {"step": step, "kind": "eval"}
            for name, fn in evals.items():
                row.update({f"{name}/{k}": float(v) for k, v in fn(raw, step).items()})
        raw.train()
        log(row)

    model.train()
    loss_sum, loss_count = 0.0, 0
    for step in range(start, end):
        batch = data.batch(step)
        if masked:
            batch = masked_lm_batch(batch, train_cfg, step, mask_id=data.vocab_size)
        x, y, mask = (batch[k][rank::world].to(acc.device) for k in ("x", "y", "mask"))
        if x.shape[0] == 0:
            raise ValueError(
                f"a batch of {batch['x'].shape[0]} rows leaves process {rank} of {world} "
                "without rows; use a batch size of at least the number of processes"
            )
        if model_cfg.causal:  # an encoder's positions all see the later columns
            x, y, mask = loss_columns(x, y, mask)
        with acc.autocast():
            logits = model(x, at=mask)
        loss = lm_loss(logits, y[mask])
        if world > 1:
            loss, global_loss, global_tokens = _globally_normalised(loss, mask, world)
        acc.backward(loss)
        if train_cfg.grad_clip > 0:
            clip_gradients()
        optimizer_step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if world > 1:
            loss_sum += global_loss
            tokens_seen += global_tokens
        else:
            loss_sum += loss.item()
            tokens_seen += int(mask.sum())
        loss_count += 1
        done = step + 1
        bar.update(1)
        if done % max(1, train_cfg.log_every) == 0 or done == train_cfg.steps:
            log(
                {
                    "step": done,
                    "kind": "train",
                    "loss": loss_sum / loss_count,
                    "lr": scheduler.get_last_lr()[0],
                }
            )
            bar.set_postfix(loss=f"{loss_sum / loss_count:.3f}", refresh=False)
            loss_sum, loss_count = 0.0, 0
        if train_cfg.eval_every and done % train_cfg.eval_every == 0 and done < train_cfg.steps:
            run_evals(done)
        if done % train_cfg.every_checkpoint == 0 or done == train_cfg.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(),
                }
                save_checkpoint(ckpt_root, done, acc.unwrap_model(model), state)
                prune_checkpoints(ckpt_root)
    bar.close()
    final_eval_logged = any(
        m.get("kind") == "eval" and m["step"] == train_cfg.steps for m in metrics
    )
    if end == train_cfg.steps and evals and not final_eval_logged:
        run_evals(train_cfg.steps)
    elapsed = time.perf_counter() - t0
    if acc.is_main_process and start < end:
        acc.print(
            f"trained steps {start}..{end} in {elapsed:.1f}s "
            f"({tokens_seen / max(elapsed, 1e-9):,.0f} loss tokens/s)"
        )
    raw = acc.unwrap_model(model)
    raw.eval()
    return raw, metrics
