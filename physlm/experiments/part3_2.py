"""Part 3.2's experiments as functions of a `ManipulationScale`: parents, fine-tunes, scores.

Part 3.2 (Sec. 2) starts from a Part 3.1 model that has stored the bioS knowledge, pretrained on
bioS multi5+permute, teaches manipulation skills on the people P_train and tests them out of
distribution on P_test. Here:

1. the *forward parent* is Part 3.1's own pretrained multi5+permute run
   (`physlm.experiments.part3_1.pretrained`): the same run key, so the two chapters share one run
   through the run cache, and Part 3.2 trains it itself when it runs alone;
2. the *reverse parent* is pretrained by the same Part 3.1 recipe on the reverse6 twin of those
   biographies (`physlm.data.bios_reverse`), for the inverse-search comparison of Result 7;
3. a *fine-tune* continues from each parent on P_train: the Part 3.1 questions (the paper's
   "QA-fine-tuned" starting point, Result 5) and every Part 3.2 task of the plan, classification
   and comparison "trained with hint" (Sec. 4.1), with biography rows kept in the mix;
4. every task is scored by exact match of a greedy answer on P_test, with and without a hint.

A fine-tune is a run of its own in the run cache: its key names the parent's key, and it starts
from a step-0 checkpoint that holds the parent's weights and a fresh optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch

from physlm.claims import Acc, compare
from physlm.data.bios import BioSStream, bios_world
from physlm.data.bios_qa import (
    HINTED,
    QA_ATTRIBUTES,
    QAItem,
    QAStream,
    p31_items,
    p32_items,
    p32_tasks,
    qa_vocab,
)
from physlm.data.bios_reverse import NAMING_EXTRA, ReverseBioSStream
from physlm.experiments import part3_1
from physlm.experiments.part3_1 import KnowledgeScale
from physlm.experiments.workers import run_in_workers
from physlm.measure.generation import sample
from physlm.model import GPT
from physlm.runs import Run, continue_from, get_or_train
from physlm.scales import SCALES
from physlm.train import TrainConfig

CHAPTER = "part3_2_knowledge_manipulation"

# Part 3.2 tasks the chapter trains and tests (names of `physlm.data.bios_qa.p32_tasks`)
RETRIEVAL = ("partial_birth_day", "partial_birth_year")
# Result 1's pair: asking the company city before the company itself
DUAL = ("dual:birth_city,employer", "dual:work_city,employer")
CLASSIFY = ("month_mod2", "month_mod6", "month_mod12", "major_mod5")
COMPARE = ("month_later", "month_diff", "major_luckier")
INVERSE = ("inverse:birth_date->first", "inverse:birth_date,birth_city->full")


@dataclass(frozen=True)
class ManipulationScale:
    """Part 3.2 at one scale: the Part 3.1 plan it starts from, the fine-tune and the tasks.

    ``knowledge`` is Part 3.1's plan at the same scale: people, model and pretraining recipe, so
    the forward parent is Part 3.1's run of the ``source`` variant. The fine-tune makes
    ``finetune_epochs`` passes over its items at peak rate ``finetune_lr``, in rows of the
    parent's shape, a share ``finetune_qa_fraction`` of them QA (the rest biographies).
    """

    scale: str
    knowledge: KnowledgeScale
    finetune_epochs: int
    finetune_qa_fraction: str
    finetune_lr: float
    weight_decay: float = 0.1
    source: str = "multi5+permute"  # the Part 3.1 variant Part 3.2 starts from (Sec. 2)
    reverse: int = 6  # the reverse parent: the name after all six sentences (reverse6)
    tasks: tuple[str, ...] = (*RETRIEVAL, *DUAL, *CLASSIFY, *COMPARE, *INVERSE)
    test_people: int | None = None  # P_test people scored per task (None: all)
    workers: int = 1
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if not isinstance(self.knowledge, KnowledgeScale):
            raise ValueError(
                "knowledge must be a part3_1.KnowledgeScale (part3_1.scale_for), "
                f"got {type(self.knowledge).__name__}"
            )
        for name in ("finetune_epochs", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        try:
            q = Fraction(self.finetune_qa_fraction)
        except (TypeError, ValueError, ZeroDivisionError):
            q = None
        if q is None or not 0 < q < 1:
            raise ValueError(
                f"finetune_qa_fraction must be a fraction in (0, 1), got "
                f"{self.finetune_qa_fraction!r}"
            )
        if not self.finetune_lr > 0:
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr!r}")
        opts = part3_1.variant_options(self.source)
        if opts["fullname"]:
            raise ValueError(f"source must be a variant without fullname, got {self.source!r}")
        if not 0 <= self.reverse <= 6:
            raise ValueError(f"reverse must be in 0..6, got {self.reverse!r}")
        unknown = [t for t in self.tasks if t not in p32_tasks()]
        if not self.tasks or unknown:
            raise ValueError(f"tasks must be names from p32_tasks(), got unknown {unknown!r}")
        if self.test_people is not None and self.test_people < 2:
            raise ValueError(f"test_people must be None or at least 2, got {self.test_people!r}")

    @property
    def seed(self) -> int:
        return self.knowledge.seed


_PRESETS: dict[str, dict] = {
    "smoke": dict(finetune_epochs=1, finetune_qa_fraction="1/2", finetune_lr=1e-3, test_people=6),
    "cpu": dict(finetune_epochs=16, finetune_qa_fraction="3/4", finetune_lr=2e-3, workers=2),
    "gpu": dict(
        finetune_epochs=20,
        finetune_qa_fraction="4/5",
        finetune_lr=3e-4,
        threads=None,
        test_people=5000,
    ),
    "paper": dict(
        finetune_epochs=50,
        finetune_qa_fraction="4/5",
        finetune_lr=3e-4,
        threads=None,
        test_people=50_000,
    ),
}


def scale_for(
    scale: str, seed: int = 0, knowledge: dict | None = None, **overrides
) -> ManipulationScale:
    """The Part 3.2 plan at ``scale`` (smoke, cpu, gpu, paper), with fields overridden.

    ``knowledge`` overrides fields of the Part 3.1 plan it starts from (`part3_1.scale_for`);
    ``seed`` is that plan's seed (people, split, data order).
    """
    if scale not in _PRESETS:
        raise ValueError(f"scale must be one of {tuple(_PRESETS)}, got {scale!r}")
    base = part3_1.scale_for(scale, seed=seed, **(knowledge or {}))
    try:
        return ManipulationScale(scale=scale, knowledge=base, **{**_PRESETS[scale], **overrides})
    except TypeError as e:
        raise ValueError(f"unknown ManipulationScale field in overrides: {e}") from None


# ---------------------------------------------------------------------------------------------
# data


def bios_stream(plan: ManipulationScale, reverse: bool = False) -> BioSStream:
    """The parent's biographies: Part 3.1's multi5+permute stream, or its reverse6 twin.

    The twin has the same people, renderings and exposures; only the name moves to the end, so
    rows are widened by the naming sentence and hold as many biographies as the forward ones.
    """
    forward = part3_1.bios_stream(plan.knowledge, plan.source)
    if not reverse:
        return forward
    c = forward.config
    seq = c.bios_per_row * (bios_world().max_bio_len(False) + NAMING_EXTRA + 1)
    if seq > plan.knowledge.block_size:
        raise ValueError(
            f"reverse rows of {seq} tokens exceed the model's block size "
            f"{plan.knowledge.block_size}"
        )
    return ReverseBioSStream(replace(c, seq_len=seq), reverse=plan.reverse)


def halves(plan: ManipulationScale) -> tuple[np.ndarray, np.ndarray]:
    """P_train, P_test (Part 3.1 Sec. 2): the same split as Part 3.1's."""
    return part3_1.halves(plan.knowledge)


def finetune_items(plan: ManipulationScale, bios: BioSStream) -> list[QAItem]:
    """P_train items of the fine-tune: Part 3.1 QA and every task of the plan.

    Classification and comparison are trained with a hint for half of the people (Part 3.2
    Sec. 4.1, "train with hint"); the other tasks have no hint.
    """
    train, _ = halves(plan)
    items = p31_items(bios, train)
    for task in plan.tasks:
        items += p32_items(
            bios, task, train, hint="half" if task in HINTED else False, seed=plan.seed
        )
    return items


def finetune_data(plan: ManipulationScale, reverse: bool = False) -> QAStream:
    """The fine-tune's stream: the items of P_train, with the parent's biography rows mixed in."""
    bios = bios_stream(plan, reverse)
    return QAStream(
        finetune_items(plan, bios),
        bios=bios,
        batch_size=bios.config.batch_size,
        seq_len=bios.config.seq_len,
        seed=plan.seed + 1,
        qa_fraction=plan.finetune_qa_fraction,
    )


# ---------------------------------------------------------------------------------------------
# runs


def finetune_config(plan: ManipulationScale, data: QAStream) -> TrainConfig:
    """AdamW, no warmup, cosine to 10%: Part 3.1's fine-tuning schedule, every weight trained."""
    steps = data.steps_for(plan.finetune_epochs)
    return TrainConfig(
        steps=steps,
        lr=plan.finetune_lr,
        weight_decay=plan.weight_decay,
        warmup_steps=0,
        min_lr_ratio=0.1,
        seed=plan.seed,
        log_every=max(1, steps // 50),
    )


def parent(plan: ManipulationScale, reverse: bool = False, progress: bool = False) -> Run:
    """The forward parent is Part 3.1's pretrained ``source`` run; the reverse one is trained
    by the same recipe on the reverse biographies (both cached)."""
    k = plan.knowledge
    if not reverse:
        return part3_1.pretrained(k, plan.source, progress)[0]
    data = bios_stream(plan, reverse=True)
    return get_or_train(
        k.model_config(), part3_1.pretrain_config(k, data.steps), data, progress=progress
    )


def finetune(
    plan: ManipulationScale, reverse: bool = False, progress: bool = False
) -> tuple[Run, Run]:
    """(parent, fine-tuned) runs: the Part 3.2 tasks on P_train, from the parent (cached).

    The fine-tune starts from the parent's weights (the trainer's ``build`` hook); its run key
    names the parent's key, so a new parent trains a new fine-tune.
    """
    base = parent(plan, reverse, progress)
    data = finetune_data(plan, reverse)
    run = get_or_train(
        train_cfg=finetune_config(plan, data), data=data, progress=progress, **continue_from(base)
    )
    return base, run


def _parent_only(args: tuple[ManipulationScale, bool]) -> str:
    return parent(*args).key


def _finetune_only(args: tuple[ManipulationScale, bool]) -> str:
    return finetune(*args)[1].key


def prefetch(plan: ManipulationScale, workers: int | None = None) -> None:
    """Train the chapter's four runs (two parents, then two fine-tunes) in worker processes.

    Forward and reverse runs are independent, so each stage trains them side by side, one
    thread each; the runs land in the run cache, where `finetune` finds them.
    """
    workers = plan.workers if workers is None else workers
    jobs = [(plan, False), (plan, True)]
    run_in_workers(_parent_only, jobs, workers)
    run_in_workers(_finetune_only, jobs, workers)


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train every run of the chapter into the run cache (`physlm train ...`)."""
    prefetch(scale_for(scale, seed=seed), workers)
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

    @property
    def acc(self) -> Acc:
        """The accuracy with its sample size for the ledger: one item per scored person."""
        return Acc(int(self.answer_ok.sum()), int(self.answer_ok.size))

    @property
    def hint_acc(self) -> Acc | None:
        """The share of hints written right, with its sample size (None when unhinted)."""
        if self.hint_ok is None:
            return None
        return Acc(int(self.hint_ok.sum()), int(self.hint_ok.size))

    @property
    def answer_given_hint(self) -> Acc | None:
        """Answers right among the items whose hint was written right: how well the model maps
        a correct written fact to the answer (None when unhinted or no hint was right)."""
        if self.hint_ok is None or not self.hint_ok.any():
            return None
        return Acc(int(self.answer_ok[self.hint_ok].sum()), int(self.hint_ok.sum()))


def hint_helps(plain: Scored, hinted: Scored, chance: float) -> bool:
    """Does the hinted version of a task work: with the hint written at test time, is the answer
    above ``chance`` and above the direct answer, both beyond the noise?

    The positive control of a "poor without a hint" claim: where the hint does not work either,
    a task that stays near chance without it says nothing about the hint. Both conditions are
    needed: a direct answer below chance is beaten by a hinted one that is still at chance.
    """
    if plain.task != hinted.task or plain.hint or not hinted.hint:
        raise ValueError(
            f"need the same task unhinted then hinted, got {plain.task!r} "
            f"(hint={plain.hint}) and {hinted.task!r} (hint={hinted.hint})"
        )
    if not 0 <= chance <= 1:
        raise ValueError(f"chance must be in [0, 1], got {chance}")
    return compare(hinted.acc, plain.acc) > 0 and hinted.acc.interval[0] > chance


def complete(
    model: GPT,
    items: list[QAItem],
    extra: int = 4,
    batch_size: int = 128,
    max_new: int | None = None,
) -> list[list[int]]:
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
            chunk = idx[s : s + batch_size]
            x = torch.tensor([items[i].ids[:plen] for i in chunk], dtype=torch.long)
            n = max_new or max(items[i].target_span[1] - plen for i in chunk) + extra
            for i, g in zip(chunk, sample(model, x, n, temperature=0.0), strict=True):
                out[i] = g
    return out


def read_reply(item: QAItem, generated: list[int]) -> tuple[list[int] | None, list[int]]:
    """(hint, answer) tokens of a greedy reply, in the window the answer is scored on.

    Unhinted: the answer is the first ``len(answer)`` tokens. Hinted: the reply is read as
    ``hint . Answer : answer``; the hint is everything up to and including the first
    "Answer :", the answer the ``len(answer)`` tokens after it (hint None and answer empty when
    the reply never says "Answer :"). The closing "." of an item is not trained (it is outside
    the completion), so the window stops before it.
    """
    v = qa_vocab()
    n = item.answer_span[1] - item.answer_span[0]
    if not item.hint:
        return None, list(generated[:n])
    ans, colon = v.id("Answer"), v.id(":")
    g = generated
    cut = next((k for k in range(len(g) - 1) if g[k] == ans and g[k + 1] == colon), None)
    if cut is None:
        return None, []
    return list(g[: cut + 2]), list(g[cut + 2 : cut + 2 + n])


def score(model: GPT, items: list[QAItem]) -> Scored:
    """Exact match of the answer (Part 3.1/3.2: greedy generation, whole answer right).

    The reply is read by `read_reply`; the answer is right when its window equals the item's
    answer, and a hint is right when it equals the item's ``hint . Answer :``.
    """
    if not items:
        raise ValueError("items must not be empty")
    answer_ok, hint_ok = [], []
    for it, g in zip(items, complete(model, items), strict=True):
        hint, answer = read_reply(it, g)
        answer_ok.append(answer == list(it.ids[it.answer_span[0] : it.answer_span[1]]))
        if it.hint:
            hint_ok.append(hint == list(it.ids[it.target_span[0] : it.answer_span[0]]))
    hinted = any(it.hint for it in items)
    return Scored(
        items[0].task, hinted, np.asarray(answer_ok), np.asarray(hint_ok) if hinted else None
    )


def answer_text(model: GPT, item: QAItem) -> str:
    """The model's greedy reply to the item's prompt as text, as `score` reads it (for the
    explorer): the answer, or "hint. Answer: answer" for a hinted prompt."""
    hint, answer = read_reply(item, complete(model, [item])[0])
    v = qa_vocab()
    if item.hint and hint is None:
        return "(no 'Answer:' in the reply)"
    return v.decode((hint or []) + answer)


def scored_people(plan: ManipulationScale) -> np.ndarray:
    """The P_test people scored (all of P_test, or its first ``plan.test_people``)."""
    _, test = halves(plan)
    return test if plan.test_people is None else test[: plan.test_people]


def score_task(
    model: GPT, plan: ManipulationScale, bios: BioSStream, task: str, hint: bool = False
) -> Scored:
    """A Part 3.2 task (or a Part 3.1 attribute, named as in QA_ATTRIBUTES) on P_test."""
    people = scored_people(plan)
    if task in QA_ATTRIBUTES:
        items = p31_items(bios, people, attributes=(task,))
    else:
        items = p32_items(bios, task, people, hint=hint, seed=plan.seed)
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
        hits.append(bool((pred[s:e] == row[0, s + 1 : e + 1]).all()))
    return float(np.mean(hits))
