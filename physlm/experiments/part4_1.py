"""Part 4.1's experiments (arXiv 2512.17351) as functions of a `CanonScale`.

One model shape is trained once per architecture variant (position encoding and Canon switches)
on identical Brevo data, and each trained model answers held-out graphs of N and N/2 nodes by
greedy decoding, scored by the independent Brevo checker. The chapter only picks the calls and
shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physlm.data.brevo import BrevoInstance, BrevoStream, check_answer
from physlm.experiments.workers import run_in_workers
from physlm.measure.generation import greedy_grouped
from physlm.model import GPT, ModelConfig
from physlm.runs import Run, get_or_train
from physlm.scales import CanonScale, part4_1
from physlm.train import TrainConfig

CHAPTER = "part4_1_canon"
# The architecture switches of each variant (Part 4.1 Sec. 4-5). "Canon" alone is Canon-ABCD with
# the residual form at PyTorch's default init; the ablations change one thing of NoPE + Canon.
VARIANTS: dict[str, dict] = {
    "RoPE": dict(pos="rope"),
    "RoPE + Canon": dict(pos="rope", canon="ABCD"),
    "NoPE": dict(pos="none"),
    "NoPE + Canon": dict(pos="none", canon="ABCD"),
    "NoPE + Canon-A": dict(pos="none", canon="A"),
    "NoPE + Canon-AC": dict(pos="none", canon="AC"),
    "NoPE + Canon (no residual)": dict(pos="none", canon="ABCD", canon_residual=False),
    "NoPE + Canon (frozen)": dict(pos="none", canon="ABCD", canon_frozen=True),
}


def check_variants(plan: CanonScale) -> None:
    unknown = [v for v in plan.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variants must be drawn from {list(VARIANTS)}, got {unknown}")


def make_data(plan: CanonScale, seed: int = 0) -> BrevoStream:
    """The one Brevo stream every variant trains on (same seed, same batches)."""
    return BrevoStream(max_nodes=plan.max_nodes, batch_size=plan.batch_size, seed=seed)


def model_config(plan: CanonScale, variant: str, data: BrevoStream) -> ModelConfig:
    """GPT-2's block with rotary on every head dimension (RoPE) or no position encoding (NoPE)."""
    check_variants(plan)
    return ModelConfig(
        vocab_size=data.vocab_size,
        n_layer=plan.shape.layers,
        n_head=plan.shape.heads,
        n_embd=plan.shape.width,
        block_size=data.block_size,
        rope_fraction=1.0,
        **VARIANTS[variant],
    )


def train_config(plan: CanonScale, seed: int = 0) -> TrainConfig:
    """Part 4.1 App. A's AdamW (0.9, 0.98), eps 1e-6, warmup then cosine to 10%, at our steps."""
    return TrainConfig(
        steps=plan.steps,
        lr=plan.lr,
        warmup_steps=plan.warmup_steps,
        weight_decay=plan.weight_decay,
        min_lr_ratio=0.1,
        seed=seed,
        log_every=max(1, plan.steps // 50),
    )


def train_variant(plan: CanonScale, variant: str, seed: int = 0, progress: bool = True) -> Run:
    """Train (or load from the run cache) the model of one variant."""
    data = make_data(plan, seed)
    return get_or_train(
        model_config(plan, variant, data), train_config(plan, seed), data, progress=progress
    )


def _train_only(args: tuple[CanonScale, str, int]) -> str:
    plan, variant, seed = args
    torch.set_num_threads(1)
    return train_variant(plan, variant, seed, progress=False).key


def prefetch(plan: CanonScale, seed: int = 0, workers: int = 1) -> None:
    """Train the missing runs side by side in worker processes (see `run_in_workers`), those
    with more Canon places (slower per step on a CPU) first so that the workers finish
    together."""
    check_variants(plan)
    if workers > 1:
        longest_first = sorted(plan.variants, key=lambda v: -len(VARIANTS[v].get("canon", "")))
        run_in_workers(_train_only, [(plan, v, seed) for v in longest_first], workers)


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train every run of the chapter into the run cache (`physlm train part4_1_canon`)."""
    plan = part4_1(scale)
    prefetch(plan, seed, workers=plan.workers if workers is None else workers)
    for v in plan.variants:
        train_variant(plan, v, seed)
    return len(plan.variants)


# ------------------------------------------------------------------------------ measures


@dataclass(frozen=True)
class Answered:
    """One test graph: what the model wrote after ``<answer>`` and whether the checker took it."""

    instance: BrevoInstance
    prompt: list[int]
    reply: list[int]
    correct: bool
    right_set: bool  # the listed nodes are exactly the needed ones, whatever their order


@torch.no_grad()
def answer_all(
    model: GPT, data: BrevoStream, instances: list[BrevoInstance], batch_size: int = 64
) -> list[Answered]:
    """Greedy answers to every instance (`greedy_grouped`), scored by the Brevo checker."""
    prompts = [data.prompt(i) for i in instances]
    block = model.cfg.block_size
    # the nodes and <eos>, two tokens of slack to see a longer wrong answer, within the context
    budget = [
        min(len(i.answer) + 3, block - len(p) + 1) for i, p in zip(instances, prompts, strict=True)
    ]
    replies = greedy_grouped(model, prompts, budget, batch_size, stop_token=data.vocab.eos_id)
    eos = data.vocab.eos_id
    return [
        Answered(inst, p, r, check_answer(p, r, data.vocab),
                 set(r[: r.index(eos)] if eos in r else r) == set(data.answer(inst)[:-1]))
        for inst, p, r in zip(instances, prompts, replies, strict=True)
    ]  # fmt: skip


def accuracy(answered: list[Answered]) -> tuple[int, int]:
    """(right answers, graphs): exact set of needed nodes in a valid order, no partial credit."""
    return sum(a.correct for a in answered), len(answered)
