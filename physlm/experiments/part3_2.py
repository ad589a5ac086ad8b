"""Part 3.2's experiments as functions of a `ManipulationScale`: pretrain, fine-tune, score.

Part 3.2 (Sec. 2) starts from a Part 3.1 model that has stored and can extract the bioS
knowledge (pretrained on bioS multi5+permute), teaches one manipulation skill on the people
P_train, and tests it out of distribution on P_test. Here:

1. a *parent* run trains on the biographies of all N people mixed with the Part 3.1 QA of
   P_train (Part 3.1's mixed training, Result 1), so that the model extracts knowledge for P_test;
2. a *fine-tune* run continues from the parent's weights on the Part 3.2 tasks of P_train (with
   the "train with hint" mix of Sec. 4.1), with biography rows kept in the mix;
3. every task is scored by exact match on P_test, with and without a hint at test time.

A second parent pretrains on the reverse biographies (`physlm.data.bios_reverse`) for the
inverse-search comparison of Result 7. Continuing from the parent is a run of its own in the
run cache: its key names the parent's key, and it starts from a step-0 checkpoint that holds
the parent's weights and a fresh optimizer, so the one trainer does the fine-tuning.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
import torch

from physlm.data.bios import BioSStream
from physlm.data.bios_qa import (
    HINTED,
    QA_ATTRIBUTES,
    QAItem,
    QAStream,
    p31_items,
    p32_items,
    qa_vocab,
    split_people,
)
from physlm.data.bios_reverse import ReverseBioSStream
from physlm.measure.generation import sample
from physlm.model import GPT, ModelConfig
from physlm.runs import Run, get_or_train
from physlm.scales import SCALES, Shape
from physlm.train import TrainConfig

CHAPTER = "part3_2_knowledge_manipulation"

# Part 3.2 tasks the chapter trains and tests (names of `physlm.data.bios_qa.p32_tasks`)
RETRIEVAL = ("partial_birth_day", "partial_birth_year")
CLASSIFY = ("month_mod2", "month_mod12")
COMPARE = ("month_later",)
INVERSE = ("inverse:birth_date->first", "inverse:birth_date,birth_city->full")


@dataclass(frozen=True)
class ManipulationScale:
    """Part 3.2 at one scale: people, model, both training stages and the tasks.

    ``pretrain_exposures`` counts biography exposures of every person in the parent run;
    ``qa_fraction`` is the share of QA rows there (Part 3.1 mixed training uses 0.8 of tokens).
    ``finetune_epochs`` counts passes over the fine-tuning items; ``finetune_qa_fraction`` is
    their share of rows (the rest keeps biographies in the mix).
    """

    scale: str
    people: int
    shape: Shape
    rows: int
    seq_len: int
    pretrain_exposures: int
    qa_fraction: str
    lr: float
    finetune_epochs: int
    finetune_qa_fraction: str
    finetune_lr: float
    weight_decay: float = 0.1
    warmup_steps: int = 100
    variants: int = 5  # multiM with M = 5, each rendering also permuted (multi5+permute)
    reverse: int = 6  # the reverse parent: the name after all six sentences (reverse6)
    tasks: tuple[str, ...] = (*RETRIEVAL, *CLASSIFY, *COMPARE, *INVERSE)
    test_people: int | None = None  # P_test people scored per task (None: all)
    workers: int = 1
    threads: int | None = 1
    max_params: int = field(default=10**6, repr=False)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        for name in ("people", "rows", "seq_len", "pretrain_exposures", "finetune_epochs",
                     "variants", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.people < 4:
            raise ValueError(f"people must be at least 4 (two per half), got {self.people}")
        for name in ("qa_fraction", "finetune_qa_fraction"):
            q = Fraction(getattr(self, name))
            if not 0 < q < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.reverse <= 6:
            raise ValueError(f"reverse must be in 0..6, got {self.reverse!r}")
        if self.shape.approx_params() > self.max_params:
            raise ValueError(
                f"model {self.shape.label()} has ~{self.shape.approx_params():,} non-embedding "
                f"parameters, too large for scale {self.scale!r} (at most {self.max_params:,})"
            )
        if self.test_people is not None and self.test_people < 2:
            raise ValueError(f"test_people must be None or at least 2, got {self.test_people!r}")


_SCALES: dict[str, ManipulationScale] = {
    "smoke": ManipulationScale(
        scale="smoke", people=40, shape=Shape(2, 2, 32), rows=8, seq_len=256,
        pretrain_exposures=4, qa_fraction="1/2", lr=3e-3, finetune_epochs=1,
        finetune_qa_fraction="1/2", finetune_lr=1e-3, warmup_steps=5, test_people=12,
    ),
    "cpu": ManipulationScale(
        scale="cpu", people=200, shape=Shape(4, 4, 64), rows=4, seq_len=256,
        pretrain_exposures=100, qa_fraction="1/4", lr=3e-3, finetune_epochs=16,
        finetune_qa_fraction="3/4", finetune_lr=2e-3, warmup_steps=50, workers=2,
    ),
    "gpu": ManipulationScale(
        scale="gpu", people=20_000, shape=Shape(12, 12, 768), rows=96, seq_len=512,
        pretrain_exposures=500, qa_fraction="4/5", lr=1e-3, finetune_epochs=20,
        finetune_qa_fraction="4/5", finetune_lr=3e-4, warmup_steps=1000, threads=None,
        max_params=10**8, test_people=5000,
    ),
    "paper": ManipulationScale(
        scale="paper", people=100_000, shape=Shape(12, 12, 768), rows=96, seq_len=512,
        pretrain_exposures=540, qa_fraction="4/5", lr=1e-3, finetune_epochs=50,
        finetune_qa_fraction="4/5", finetune_lr=3e-4, warmup_steps=1000, threads=None,
        max_params=10**9,
    ),
}


def scale_for(scale: str, **overrides) -> ManipulationScale:
    """The Part 3.2 plan at ``scale`` (smoke, cpu, gpu, paper), with fields overridden."""
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {tuple(_SCALES)}, got {scale!r}")
    return replace(_SCALES[scale], **overrides) if overrides else _SCALES[scale]


# ---------------------------------------------------------------------------------------------
# data


def bios_stream(plan: ManipulationScale, reverse: bool = False, seed: int = 0) -> BioSStream:
    """bioS multi5+permute (Part 3.1 Sec. 4.2), or its reverse6 twin (Part 3.2 Sec. 6)."""
    kw = dict(
        n_people=plan.people, exposures=plan.pretrain_exposures, batch_size=plan.rows,
        seq_len=plan.seq_len, seed=seed, order="shuffle", template_variants=plan.variants,
        order_variants=plan.variants,
    )
    return ReverseBioSStream(reverse=plan.reverse, **kw) if reverse else BioSStream(**kw)


def halves(plan: ManipulationScale, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """P_train, P_test (Part 3.1 Sec. 2): QA of the first half is trained, the second tested."""
    return split_people(plan.people, seed)


def _steps_with(bio_rows: int, rows: int, qa_fraction: str) -> int:
    """Steps of a mixed stream whose biography rows number ``bio_rows``."""
    return max(1, math.ceil(Fraction(bio_rows) / (rows * (1 - Fraction(qa_fraction)))))


def pretrain_data(plan: ManipulationScale, reverse: bool = False, seed: int = 0) -> QAStream:
    """The parent's stream: every person's biography, and the Part 3.1 QA of P_train."""
    bios = bios_stream(plan, reverse, seed)
    train, _ = halves(plan, seed)
    return QAStream(p31_items(bios, train), bios=bios, batch_size=plan.rows,
                    seq_len=plan.seq_len, seed=seed, qa_fraction=plan.qa_fraction)


def finetune_items(plan: ManipulationScale, bios: BioSStream, seed: int = 0) -> list[QAItem]:
    """P_train items of the fine-tune: Part 3.1 QA and every task of the plan.

    Classification and comparison are trained with a hint for half of the people (Part 3.2
    Sec. 4.1, "train with hint"); the other tasks have no hint.
    """
    train, _ = halves(plan, seed)
    items = p31_items(bios, train)
    for task in plan.tasks:
        items += p32_items(bios, task, train, hint="half" if task in HINTED else False, seed=seed)
    return items


def finetune_data(plan: ManipulationScale, reverse: bool = False, seed: int = 0) -> QAStream:
    """The fine-tune's stream: the task items of P_train, with biography rows in the mix."""
    bios = bios_stream(plan, reverse, seed)
    return QAStream(finetune_items(plan, bios, seed), bios=bios, batch_size=plan.rows,
                    seq_len=plan.seq_len, seed=seed + 1, qa_fraction=plan.finetune_qa_fraction)


# ---------------------------------------------------------------------------------------------
# runs


def model_config(plan: ManipulationScale) -> ModelConfig:
    return plan.shape.config(len(qa_vocab()), plan.seq_len)


def pretrain_config(plan: ManipulationScale, data: QAStream, seed: int = 0) -> TrainConfig:
    bio_rows = data.bios.steps_for(plan.pretrain_exposures) * plan.rows
    steps = _steps_with(bio_rows, plan.rows, plan.qa_fraction)
    return TrainConfig(
        steps=steps, lr=plan.lr, weight_decay=plan.weight_decay,
        warmup_steps=min(plan.warmup_steps, max(1, steps // 10)), min_lr_ratio=0.1, seed=seed,
        log_every=max(1, steps // 50),
    )


def finetune_config(plan: ManipulationScale, data: QAStream, seed: int = 0) -> TrainConfig:
    steps = data.steps_for(plan.finetune_epochs)
    return TrainConfig(
        steps=steps, lr=plan.finetune_lr, weight_decay=plan.weight_decay,
        warmup_steps=0, min_lr_ratio=0.1, seed=seed, log_every=max(1, steps // 50),
    )


def pretrain(plan: ManipulationScale, reverse: bool = False, seed: int = 0,
             progress: bool = True) -> Run:
    """The parent run: biographies of everyone, Part 3.1 QA of P_train (cached)."""
    data = pretrain_data(plan, reverse, seed)
    return get_or_train(model_config(plan), pretrain_config(plan, data, seed), data,
                        progress=progress)


def _copy_of(parent: GPT) -> GPT:
    """A trainable copy of the parent: every weight is fine-tuned."""
    model = copy.deepcopy(parent)
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train()


def finetune(plan: ManipulationScale, reverse: bool = False, seed: int = 0,
             progress: bool = True) -> tuple[Run, Run]:
    """(parent, fine-tuned) runs: the Part 3.2 tasks on P_train, from the parent (cached).

    The fine-tune starts from the parent's weights (the trainer's ``build`` hook); its run key
    names the parent's key, so a new parent trains a new fine-tune.
    """
    parent = pretrain(plan, reverse, seed, progress)
    data = finetune_data(plan, reverse, seed)
    run = get_or_train(
        model_config(plan), finetune_config(plan, data, seed), data, progress=progress,
        build=lambda: _copy_of(parent.model), build_spec={"init": parent.key, "full": True},
    )
    return parent, run


def _pretrain_only(args: tuple[ManipulationScale, bool, int]) -> str:
    plan, reverse, seed = args
    torch.set_num_threads(1)
    return pretrain(plan, reverse, seed, progress=False).key


def _finetune_only(args: tuple[ManipulationScale, bool, int]) -> str:
    plan, reverse, seed = args
    torch.set_num_threads(1)
    return finetune(plan, reverse, seed, progress=False)[1].key


def prefetch(plan: ManipulationScale, seed: int = 0, workers: int | None = None) -> None:
    """Train the chapter's four runs (two parents, then two fine-tunes) in worker processes.

    Forward and reverse runs are independent, so each stage trains them side by side, one
    thread each; the runs land in the run cache, where `finetune` finds them.
    """
    workers = plan.workers if workers is None else workers
    if workers <= 1:
        return
    import multiprocessing as mp

    jobs = [(plan, False, seed), (plan, True, seed)]
    with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        pool.map(_pretrain_only, jobs, chunksize=1)
        pool.map(_finetune_only, jobs, chunksize=1)


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train every run of the chapter into the run cache (`physlm train ...`)."""
    plan = scale_for(scale)
    prefetch(plan, seed, workers)
    for reverse in (False, True):
        finetune(plan, reverse, seed)
    return 4


# ---------------------------------------------------------------------------------------------
# scoring


@dataclass(frozen=True)
class Scored:
    """Per-item outcomes of a task: answer right, hint right (hinted prompts only)."""

    task: str
    hint: bool
    answer_ok: np.ndarray
    hint_ok: np.ndarray | None

    @property
    def accuracy(self) -> float:
        return float(self.answer_ok.mean())

    @property
    def hint_accuracy(self) -> float:
        return float("nan") if self.hint_ok is None else float(self.hint_ok.mean())


def complete(model: GPT, items: list[QAItem], extra: int = 4, batch_size: int = 128,
             max_new: int | None = None) -> list[list[int]]:
    """Greedy completions of the items' prompts: ``len(completion) + extra`` tokens each, or
    ``max_new`` tokens when given (then nothing about the true answer is used).

    Prompts of equal length are batched together, so no padding enters a context.
    """
    out: list[list[int]] = [[] for _ in items]
    groups: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.target_span[0], []).append(i)
    for plen, idx in sorted(groups.items()):
        for s in range(0, len(idx), batch_size):
            chunk = idx[s: s + batch_size]
            x = torch.tensor([items[i].ids[:plen] for i in chunk], dtype=torch.long)
            n = max_new or max(items[i].target_span[1] - plen for i in chunk) + extra
            for i, g in zip(chunk, sample(model, x, n, temperature=0.0), strict=True):
                out[i] = g
    return out


def score(model: GPT, items: list[QAItem]) -> Scored:
    """Exact match of the answer (Part 3.1/3.2: greedy generation, whole answer right).

    Unhinted: the generation must start with the answer's tokens. Hinted: the generation is
    read as ``hint . Answer : answer``; the tokens after the first "Answer :" must be the
    answer, and the hint is right when the text before them equals the item's hint. The closing
    "." of an item is not trained (it is outside the completion), so it is not asked for.
    """
    if not items:
        raise ValueError("items must not be empty")
    v = qa_vocab()
    ans, colon = v.id("Answer"), v.id(":")
    gens = complete(model, items)
    answer_ok, hint_ok = [], []
    for it, g in zip(items, gens, strict=True):
        a0, a1 = it.answer_span
        want = list(it.ids[a0:a1])
        if not it.hint:
            answer_ok.append(g[: len(want)] == want)
            continue
        cut = next((k for k in range(len(g) - 1) if g[k] == ans and g[k + 1] == colon), None)
        if cut is None:
            answer_ok.append(False)
            hint_ok.append(False)
            continue
        answer_ok.append(g[cut + 2: cut + 2 + len(want)] == want)
        true_hint = list(it.ids[it.target_span[0]: a0])  # "hint . Answer :"
        hint_ok.append(g[: cut + 2] == true_hint)
    hinted = any(it.hint for it in items)
    return Scored(items[0].task, hinted, np.asarray(answer_ok),
                  np.asarray(hint_ok) if hinted else None)


def scored_people(plan: ManipulationScale, seed: int = 0) -> np.ndarray:
    """The P_test people scored (all of P_test, or its first ``plan.test_people``)."""
    _, test = halves(plan, seed)
    return test if plan.test_people is None else test[: plan.test_people]


def score_task(model: GPT, plan: ManipulationScale, bios: BioSStream, task: str,
               hint: bool = False, seed: int = 0) -> Scored:
    """A Part 3.2 task (or a Part 3.1 attribute, named as in QA_ATTRIBUTES) on P_test."""
    people = scored_people(plan, seed)
    if task in QA_ATTRIBUTES:
        items = p31_items(bios, people, attributes=(task,))
    else:
        items = p32_items(bios, task, people, hint=hint, seed=seed)
    return score(model, items)


def chance(task: str, bios: BioSStream, people: np.ndarray, seed: int = 0) -> float:
    """Accuracy of always giving the most common answer of the task on these people."""
    items = p32_items(bios, task, people, seed=seed)
    _, counts = np.unique([it.answer for it in items], return_counts=True)
    return float(counts.max() / len(items))


# ---------------------------------------------------------------------------------------------
# inverse search with an external index (Part 3.2 Result 9: retrieval augmentation)


def records(bios: BioSStream, people=None) -> list[tuple[int, dict[str, str]]]:
    """(person, {attribute: value}) as the biographies state them, for an index."""
    rows: dict[int, dict[str, str]] = {}
    for it in p31_items(bios, people):
        rows.setdefault(it.person, {})[it.task] = it.answer
    return list(rows.items())


def forward_checker(model: GPT, bios: BioSStream):
    """``check(people, attribute, value)``: is the model's greedy answer to the Part 3.1
    question about each person exactly ``value``? (Only the value stated in the inverse
    question is used, never the person's own facts.)"""
    v = qa_vocab()

    def check(people, attribute: str, value: str) -> list[bool]:
        want = v.encode(value)
        items = p31_items(bios, list(people), attributes=(attribute,))
        gens = complete(model, items, max_new=len(want))
        return [g[: len(want)] == want for g in gens]

    return check


def given_values(task: str, facts: dict[str, str]) -> dict[str, str]:
    """The attribute values an inverse-search question states (task ``inverse:a,b->t``)."""
    given = task.removeprefix("inverse:").split("->")[0].split(",")
    return {a: facts[a] for a in given}


@torch.no_grad()
def name_recall(model: GPT, bios: BioSStream, people) -> float:
    """Share of people whose full name the model predicts inside their own biography.

    Teacher-forced: the evaluation rendering is fed with ``<eos>`` in front, and all three name
    tokens must be the model's top prediction. In a reverse biography this is "attributes ->
    name" learned during pretraining, the knowledge inverse search would need.
    """
    hits = []
    for person in np.asarray(people).tolist():
        tokens, spans = bios.render_person(person)
        row = torch.tensor([[bios.vocab.eos_id, *tokens]])
        pred = model(row)[0].argmax(-1)  # pred[t] predicts row[t + 1]
        s, e = spans["name"]
        hits.append(bool((pred[s:e] == row[0, s + 1: e + 1]).all()))
    return float(np.mean(hits))
