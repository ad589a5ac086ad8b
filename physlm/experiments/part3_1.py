"""Part 3.1's experiments (arXiv 2309.14316) as functions of a `KnowledgeScale`.

One bioS population per variant is pretrained on biographies (Sec. 2, App. A.1 augmentations),
then QA-fine-tuned on the questions of half the people (P_train) and tested on the other half
(P_test): LoRA on the embedding and the query/value maps (Sec. 4), and full fine-tuning for the
negative result. Mixed training (Sec. 3) trains biographies of everyone together with the QA of
P_train. The celebrity experiment (Sec. 7) pretrains augmented "celebrities" beside an
unaugmented minority, fine-tunes on celebrity questions and tests on the minority. Probes
(Sec. 5) ask where the pretrained model keeps each attribute.

Everything trains through the run cache; `measure_job` turns a job into plain numbers, cached
as JSON next to the runs, so the chapter only loads, tabulates and plots.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from physlm.checkpoint import atomic_write_text
from physlm.data.bios import ATTRIBUTES, BioSStream, _rows_of, bios_world
from physlm.data.bios_qa import QA_ATTRIBUTES, QAItem, QAStream, p31_items, qa_vocab, split_people
from physlm.experiments.workers import run_in_workers
from physlm.measure.generation import exact_match, sample
from physlm.measure.knowledge_probes import (
    first_token_labels,
    fit_token_probe,
    p_probe_inputs,
    q_probe_inputs,
)
from physlm.measure.probes import hidden_states
from physlm.model import ModelConfig
from physlm.runs import Run, continue_from, default_root, get_or_train
from physlm.scales import check_scale
from physlm.train import TrainConfig

CHAPTER = "part3_1_knowledge_storage"
MEASURE_VERSION = "p31-measure-1"
# the paper's Fig. 3 variants in the order of its augmentation table
PAPER_VARIANTS = ("single", "single+permute1", "single+permute5", "multi5", "multi5+permute")


# ---------------------------------------------------------------------------------- variants


def variant_options(variant: str) -> dict:
    """BioSStream keywords of a Part 3.1 bioS variant (App. A.1), e.g. ``multi5+permute``.

    ``single``: one fixed rendering in the fixed sentence order. ``multiM``: M renderings with
    templates re-drawn. ``+permuteP`` (after single): the same six sentences in P orders;
    ``+permute`` (after multiM): each of the M renderings in its own order. ``+fullname``: the
    full name replaces every pronoun. Each person's renderings are cycled epoch by epoch.
    """
    if not isinstance(variant, str) or not variant:
        raise ValueError(f"variant must be a string such as 'multi5+permute', got {variant!r}")
    parts = variant.split("+")
    base, rest = parts[0], parts[1:]
    if base == "single":
        m = 1
    elif base.startswith("multi") and base[5:].isdigit() and int(base[5:]) >= 1:
        m = int(base[5:])
    else:
        raise ValueError(f"variant must start with 'single' or 'multiM', got {variant!r}")
    opts: dict = {"order": "fixed", "template_variants": m, "fullname": False}
    for part in rest:
        if part == "fullname" and not opts["fullname"]:
            opts["fullname"] = True
        elif part.startswith("permute") and opts["order"] == "fixed":
            tail = part[7:]
            if base == "single" and tail.isdigit() and int(tail) >= 1:
                opts.update(order="shuffle", order_variants=int(tail))
            elif base != "single" and tail == "":
                opts.update(order="shuffle", order_variants=m)
            else:
                raise ValueError(
                    f"variant {variant!r}: use 'single+permuteP' (P orders) or "
                    "'multiM+permute' (one order per rendering)"
                )
        else:
            raise ValueError(f"variant {variant!r}: unknown or repeated part {part!r}")
    return opts


# ---------------------------------------------------------------------------------- scales


def _fraction(text: str) -> float:
    try:
        return float(Fraction(text))
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"qa_fraction must be a fraction such as '3/10', got {text!r}") from None


@dataclass(frozen=True)
class KnowledgeScale:
    """Part 3.1 at one scale: people, model, pretraining, fine-tuning, probes, celebrities."""

    scale: str
    people: int  # N per population (half P_train, half P_test)
    layers: int
    heads: int
    width: int
    rows: int  # rows per pretraining step
    bios_per_row: int
    exposures: int  # passes over every person's biographies in pretraining
    lr: float
    weight_decay: float
    warmup_steps: int
    variants: tuple[str, ...]  # the augmentation table
    mixed_variants: tuple[str, ...]  # mixed training (Sec. 3)
    qa_fraction: str  # share of QA rows in mixed training (paper: 0.8)
    lora_rank: int  # on the query/value maps (paper: 8 or 16)
    lora_embedding_rank: int  # on the embedding (paper: 128)
    ft_rows: int
    ft_seq_len: int
    ft_epochs: int  # passes over the P_train questions
    ft_lr: float
    ft_weight_decay: float
    full_ft_variants: tuple[str, ...]  # also fully fine-tuned (negative result)
    full_ft_lr: float
    full_ft_epochs: int
    probe_steps: int
    p_rank: int  # P-probe embedding update (paper: 2; 0 = head on cached states)
    q_rank: int  # Q-probe embedding update (paper: 16)
    celebrities: int  # celebrity population (Sec. 7); 0 skips the experiment
    celebrity_variant: str
    minority_variant: str
    workers: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_scale(self.scale)
        for name in (
            "people",
            "layers",
            "heads",
            "width",
            "rows",
            "bios_per_row",
            "exposures",
            "lora_rank",
            "lora_embedding_rank",
            "ft_rows",
            "ft_seq_len",
            "ft_epochs",
            "full_ft_epochs",
            "probe_steps",
            "workers",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"KnowledgeScale.{name} must be a positive int, got {v!r}")
        if self.people < 8:
            raise ValueError(f"KnowledgeScale.people must be >= 8, got {self.people}")
        if self.width % self.heads:
            raise ValueError("KnowledgeScale.width must be divisible by heads")
        for v in (
            *self.variants,
            *self.mixed_variants,
            *self.full_ft_variants,
            self.celebrity_variant,
            self.minority_variant,
        ):
            variant_options(v)
        if not set(self.full_ft_variants) <= set(self.variants):
            raise ValueError("KnowledgeScale.full_ft_variants must be among variants")
        if self.celebrities and self.minority_variant not in self.variants:
            raise ValueError("KnowledgeScale.minority_variant must be among variants (baseline)")
        if not 0 < _fraction(self.qa_fraction) < 1:
            raise ValueError(
                f"KnowledgeScale.qa_fraction must be in (0, 1), got {self.qa_fraction!r}"
            )
        if self.p_rank < 0 or self.q_rank < 0:
            raise ValueError("KnowledgeScale.p_rank and q_rank must be >= 0")

    @property
    def block_size(self) -> int:
        return self.bios_per_row * (bios_world().max_bio_len(fullname=True) + 1)

    def seq_len(self, variant: str) -> int:
        """Tokens per pretraining row: exactly `bios_per_row` of the variant's longest bios."""
        full = variant_options(variant)["fullname"]
        return self.bios_per_row * (bios_world().max_bio_len(full) + 1)

    def model_config(self) -> ModelConfig:
        """GPT-2 with rotary on a quarter of each head (P31 Sec. 2.1), QA vocabulary."""
        return ModelConfig(
            vocab_size=len(qa_vocab()),
            n_layer=self.layers,
            n_head=self.heads,
            n_embd=self.width,
            block_size=self.block_size,
            pos="rope",
            rope_fraction=0.25,
        )


_PAPER = dict(
    people=100_000,
    layers=12,
    heads=12,
    width=768,
    rows=96,
    bios_per_row=6,
    exposures=540,
    lr=1e-3,
    weight_decay=0.1,
    warmup_steps=1000,
    variants=PAPER_VARIANTS,
    mixed_variants=("single",),
    qa_fraction="4/5",
    lora_rank=16,
    lora_embedding_rank=128,
    ft_rows=48,
    ft_seq_len=512,
    ft_epochs=50,
    ft_lr=3e-4,
    ft_weight_decay=0.01,
    full_ft_variants=("single",),
    full_ft_lr=3e-4,
    full_ft_epochs=50,
    probe_steps=30_000,
    p_rank=2,
    q_rank=16,
    celebrities=100_000,
    celebrity_variant="multi5+permute",
    minority_variant="single+permute1",
)
_PRESETS: dict[str, dict] = {
    "smoke": dict(
        people=24,
        layers=1,
        heads=1,
        width=32,
        rows=4,
        bios_per_row=1,
        exposures=2,
        lr=3e-3,
        weight_decay=0.1,
        warmup_steps=2,
        variants=("single", "multi5+permute"),
        mixed_variants=("single",),
        qa_fraction="3/10",
        lora_rank=2,
        lora_embedding_rank=4,
        ft_rows=4,
        ft_seq_len=64,
        ft_epochs=1,
        ft_lr=1e-3,
        ft_weight_decay=0.01,
        full_ft_variants=("single",),
        full_ft_lr=1e-3,
        full_ft_epochs=1,
        probe_steps=5,
        p_rank=0,
        q_rank=2,
        celebrities=24,
        celebrity_variant="multi5+permute",
        minority_variant="single",
        workers=1,
    ),
    "cpu": dict(
        people=200,
        layers=4,
        heads=2,
        width=64,
        rows=4,
        bios_per_row=2,
        exposures=80,
        lr=3e-3,
        weight_decay=0.1,
        warmup_steps=50,
        variants=PAPER_VARIANTS,
        mixed_variants=("single",),
        qa_fraction="3/10",
        lora_rank=8,
        lora_embedding_rank=32,
        ft_rows=16,
        ft_seq_len=128,
        ft_epochs=20,
        ft_lr=3e-3,
        ft_weight_decay=0.01,
        full_ft_variants=("single",),
        full_ft_lr=1e-3,
        full_ft_epochs=60,
        probe_steps=300,
        p_rank=0,
        q_rank=0,
        celebrities=200,
        celebrity_variant="multi5+permute",
        minority_variant="single+permute1",
        workers=2,
    ),
    "gpu": dict(
        people=10_000,
        layers=8,
        heads=8,
        width=512,
        rows=64,
        bios_per_row=6,
        exposures=200,
        lr=1e-3,
        weight_decay=0.1,
        warmup_steps=500,
        variants=PAPER_VARIANTS,
        mixed_variants=("single", "multi5+permute"),
        qa_fraction="4/5",
        lora_rank=16,
        lora_embedding_rank=128,
        ft_rows=48,
        ft_seq_len=512,
        ft_epochs=20,
        ft_lr=3e-4,
        ft_weight_decay=0.01,
        full_ft_variants=("single",),
        full_ft_lr=3e-4,
        full_ft_epochs=20,
        probe_steps=3000,
        p_rank=2,
        q_rank=16,
        celebrities=10_000,
        celebrity_variant="multi5+permute",
        minority_variant="single+permute1",
        workers=1,
    ),
    "paper": _PAPER,
}


def scale_for(scale: str, **overrides) -> KnowledgeScale:
    """The `KnowledgeScale` of a named scale, with optional field overrides."""
    check_scale(scale)
    fields = {**_PRESETS[scale], **overrides}
    for k in ("variants", "mixed_variants", "full_ft_variants"):
        fields[k] = tuple(fields[k])
    try:
        return KnowledgeScale(scale=scale, **fields)
    except TypeError as e:
        raise ValueError(f"unknown KnowledgeScale field in overrides: {e}") from None


# ---------------------------------------------------------------------------------- data


def bios_stream(
    plan: KnowledgeScale,
    variant: str,
    rows: int | None = None,
    seed_offset: int = 0,
    people: int | None = None,
    avoid: tuple[int, int] | None = None,
) -> BioSStream:
    """The pretraining biographies of one population (`avoid`: see `BioSConfig`)."""
    return BioSStream(
        n_people=plan.people if people is None else people,
        exposures=plan.exposures,
        batch_size=plan.rows if rows is None else rows,
        seq_len=plan.seq_len(variant),
        seed=plan.seed + seed_offset,
        bios_per_row=plan.bios_per_row,
        avoid=avoid,
        **variant_options(variant),
    )


def halves(plan: KnowledgeScale) -> tuple[np.ndarray, np.ndarray]:
    """P_train and P_test (P31 Sec. 2: QA of half the people trains, the rest tests)."""
    return split_people(plan.people, plan.seed)


class TwoPopulations:
    """Celebrities and a minority in one pretraining stream (P31 Sec. 7), as a BatchSource.

    Each step stacks rows of both streams, in proportion to their people, so both see the same
    number of exposures by the end. The two populations have disjoint names.
    """

    def __init__(self, celebrities: BioSStream, minority: BioSStream):
        if celebrities.config.seq_len != minority.config.seq_len:
            raise ValueError("celebrities and minority must share seq_len")
        if np.intersect1d(celebrities.people.name_ids(), minority.people.name_ids()).size:
            raise ValueError("celebrities and minority share a name; pick another seed")
        self.celebrities, self.minority = celebrities, minority
        self.vocab = minority.vocab
        self.vocab_size = minority.vocab_size
        self.steps = max(celebrities.steps, minority.steps)

    def spec(self) -> dict:
        return {
            "kind": "bioS-two",
            "celebrities": self.celebrities.spec(),
            "minority": self.minority.spec(),
        }

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        a, b = self.celebrities.batch(step), self.minority.batch(step)
        return {k: torch.cat([a[k], b[k]]) for k in ("x", "y", "mask")}


def celebrity_streams(plan: KnowledgeScale) -> tuple[BioSStream, BioSStream]:
    """(celebrities, minority): the minority is the baseline variant's population itself; the
    celebrities' names avoid the minority's (at the paper's 100,000 + 100,000 people some would
    collide; where none does, the draw is what it would be alone)."""
    seq = max(plan.seq_len(plan.celebrity_variant), plan.seq_len(plan.minority_variant))
    minority = replace_seq(bios_stream(plan, plan.minority_variant), seq)
    rows = max(1, round(plan.rows * plan.celebrities / plan.people))
    celebs = bios_stream(
        plan,
        plan.celebrity_variant,
        rows,
        seed_offset=1,
        people=plan.celebrities,
        avoid=(minority.config.n_people, minority.config.seed),
    )
    celebs = replace_seq(celebs, seq)
    return celebs, minority


def renderings(bios: BioSStream, person: int, count: int) -> list[list[int]]:
    """The biographies a person is trained on in the first `count` epochs (one per epoch)."""
    g = np.arange(count, dtype=np.int64) * bios.config.n_people
    who = np.full(count, int(person), dtype=np.int64)
    tk, ok = bios._keys(g, who)
    return bios._render_many(_rows_of(bios.people.take(who)), tk, ok)


def replace_seq(stream: BioSStream, seq_len: int) -> BioSStream:
    if stream.config.seq_len == seq_len:
        return stream
    return BioSStream(replace(stream.config, seq_len=seq_len))


# ---------------------------------------------------------------------------------- runs


def pretrain_config(plan: KnowledgeScale, steps: int) -> TrainConfig:
    """P31 App. B's AdamW recipe (wd 0.1, eps 1e-6, warmup, cosine to 10%) at our lr/steps."""
    return TrainConfig(
        steps=steps,
        lr=plan.lr,
        weight_decay=plan.weight_decay,
        warmup_steps=min(plan.warmup_steps, max(1, steps // 10)),
        min_lr_ratio=0.1,
        seed=plan.seed,
        log_every=max(1, steps // 50),
    )


def pretrain_setting(
    plan: KnowledgeScale, variant: str
) -> tuple[BioSStream, ModelConfig, TrainConfig]:
    """Data, model and training config of the bioS pretraining of one variant."""
    data = bios_stream(plan, variant)
    return data, plan.model_config(), pretrain_config(plan, data.steps)


def pretrained(
    plan: KnowledgeScale, variant: str, progress: bool = False
) -> tuple[Run, BioSStream]:
    """The cached bioS-pretrained model of a variant (trained on first use) and its people."""
    data, model_cfg, train_cfg = pretrain_setting(plan, variant)
    return get_or_train(model_cfg, train_cfg, data, progress=progress), data


def pretrained_model(scale: str, variant: str) -> tuple[Run, BioSStream]:
    """`pretrained` at a named scale: what Part 3.2 fine-tunes on."""
    return pretrained(scale_for(scale), variant)


def celebrity_pretrained(
    plan: KnowledgeScale, progress: bool = False
) -> tuple[Run, BioSStream, BioSStream]:
    celebs, minority = celebrity_streams(plan)
    data = TwoPopulations(celebs, minority)
    run = get_or_train(
        plan.model_config(), pretrain_config(plan, data.steps), data, progress=progress
    )
    return run, celebs, minority


def qa_stream(plan: KnowledgeScale, items: list[QAItem]) -> QAStream:
    return QAStream(items, batch_size=plan.ft_rows, seq_len=plan.ft_seq_len, seed=plan.seed)


def finetune(
    plan: KnowledgeScale, base: Run, items: list[QAItem], mode: str = "lora", progress: bool = False
) -> Run:
    """QA fine-tuning of a pretrained run (P31 Sec. 4): LoRA or every weight ('full').

    LoRA: rank `lora_embedding_rank` on the embedding plus `lora_rank` on query and value,
    AdamW wd 0.01, no warmup, cosine to 10%, `ft_epochs` passes over the questions. Full: the
    same schedule at `full_ft_lr` for `full_ft_epochs` passes.
    """
    from physlm.lora import LoraSetup, finetune_args

    data = qa_stream(plan, items)
    steps = data.steps_for(plan.full_ft_epochs if mode == "full" else plan.ft_epochs)
    if mode == "lora":
        args = finetune_args(
            base.model, base.key, LoraSetup(plan.lora_rank, plan.lora_embedding_rank)
        )
        lr = plan.ft_lr
    elif mode == "full":
        args = continue_from(base)
        lr = plan.full_ft_lr
    else:
        raise ValueError(f"mode must be 'lora' or 'full', got {mode!r}")
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=plan.ft_weight_decay,
        warmup_steps=0,
        min_lr_ratio=0.1,
        seed=plan.seed,
        log_every=max(1, steps // 20),
    )
    return get_or_train(train_cfg=cfg, data=data, progress=progress, **args)


def mixed_run(plan: KnowledgeScale, variant: str, progress: bool = False) -> tuple[Run, BioSStream]:
    """Mixed training (P31 Sec. 3): bios of everyone plus the QA of P_train, from scratch.

    A share `qa_fraction` of rows holds QA; the steps give every person `exposures` bio passes.
    """
    p_train, _ = halves(plan)
    bios = bios_stream(plan, variant)
    data = QAStream(
        p31_items(bios, p_train),
        bios=bios,
        batch_size=plan.rows,
        seq_len=bios.config.seq_len,
        seed=plan.seed,
        qa_fraction=plan.qa_fraction,
    )
    steps = int(np.ceil(bios.steps / (1 - _fraction(plan.qa_fraction))))
    run = get_or_train(plan.model_config(), pretrain_config(plan, steps), data, progress=progress)
    return run, bios


# ---------------------------------------------------------------------------------- measures


def qa_accuracy(model: torch.nn.Module, items: list[QAItem], eos_id: int) -> dict[str, float]:
    """Exact-match accuracy per attribute and its mean (P31 Sec. 2: greedy after "Answer:")."""
    out = {}
    for a in QA_ATTRIBUTES:
        sel = [it for it in items if it.task == a]
        prompts = [[eos_id, *it.ids[: it.answer_span[0]]] for it in sel]
        answers = [list(it.ids[it.answer_span[0] : it.answer_span[1]]) for it in sel]
        out[a] = exact_match(model, prompts, answers, batch_size=256)
    out["mean"] = float(np.mean([out[a] for a in QA_ATTRIBUTES]))
    return out


def generate_answer(model: torch.nn.Module, item: QAItem, eos_id: int, max_new: int = 8) -> str:
    """The model's greedy completion after the item's prompt, up to the closing "."."""
    vocab = qa_vocab()
    prompt = torch.tensor([[eos_id, *item.ids[: item.answer_span[0]]]])
    max_new = min(max_new, model.cfg.block_size - prompt.shape[1] + 1)
    out = sample(model, prompt, max_new, temperature=0.0, stop_token=vocab.id("."))[0]
    if out and out[-1] == vocab.id("."):
        out = out[:-1]
    return vocab.decode(out)


def bio_accuracy(model: torch.nn.Module, bios: BioSStream) -> float:
    """Next-token accuracy on the value tokens of every person's biography (memorisation)."""
    hit = tot = 0
    model.eval()
    with torch.no_grad():
        for b in bios.eval_batches(256):
            pred = model(b["x"]).argmax(-1)
            vm = b["value_mask"]
            hit += int(((pred == b["y"]) & vm).sum())
            tot += int(vm.sum())
    return hit / max(tot, 1)


def p_probing(plan: KnowledgeScale, model: torch.nn.Module, bios: BioSStream) -> list[list[float]]:
    """acc[attribute][k]: test accuracy of reading an attribute at the k-th special position.

    Positions are in reading order: position 1 is just before the first attribute of the
    person's biography, right after the opening name (P31 Sec. 5.1, Fig. 5).
    """
    people = np.arange(bios.config.n_people)
    inputs, before, order = p_probe_inputs(bios, people)
    n = len(people)
    states = next(iter(hidden_states(model, inputs, layers=[-1]).values()))
    out = []
    for a in ATTRIBUTES:
        labels, cand = first_token_labels(bios, people, a)
        row = []
        for k in range(len(ATTRIBUTES)):
            pos = before[torch.arange(n), order[:, k]]
            feats = None if plan.p_rank else states[torch.arange(n), pos]
            res = fit_token_probe(
                model,
                inputs,
                pos,
                labels,
                cand,
                rank=plan.p_rank,
                steps=plan.probe_steps,
                seed=plan.seed,
                features=feats,
            )
            row.append(res.test_accuracy)
        out.append(row)
    return out


def q_probing(plan: KnowledgeScale, model: torch.nn.Module, bios: BioSStream) -> dict[str, float]:
    """Test accuracy of reading each attribute from the name alone (P31 Sec. 5.2, Fig. 7).

    The head is the P-probe's (LayerNorm, batch 50); the paper's Q-probe uses BatchNorm and
    batch 200, which a probe fitted on a hundred-odd people cannot fill.
    """
    people = np.arange(bios.config.n_people)
    inputs, pos = q_probe_inputs(bios, people)
    out = {}
    for a in ATTRIBUTES:
        labels, cand = first_token_labels(bios, people, a)
        res = fit_token_probe(
            model,
            inputs,
            pos,
            labels,
            cand,
            rank=plan.q_rank,
            steps=plan.probe_steps,
            seed=plan.seed,
        )
        out[a] = res.test_accuracy
    out["mean"] = float(np.mean([out[a] for a in ATTRIBUTES]))
    return out


# ---------------------------------------------------------------------------------- jobs


def jobs(plan: KnowledgeScale) -> list[tuple[str, str]]:
    """Every (kind, variant) the chapter measures, the longest first."""
    out = []
    if plan.celebrities:
        out.append(("celebrity", plan.celebrity_variant))
    out += [("mixed", v) for v in plan.mixed_variants]
    out += [("variant", v) for v in plan.variants]
    return out


def _source_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve()
    for path in (
        here,
        here.parent.parent / "measure" / "knowledge_probes.py",
        here.parent.parent / "measure" / "generation.py",
    ):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cached(payload: dict, compute) -> dict:
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    path = default_root() / "part3_1" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, sort_keys=True))
    return result


def measure_job(plan: KnowledgeScale, kind: str, variant: str, progress: bool = False) -> dict:
    """Train (or load) the runs of one job and measure them; plain numbers, cached as JSON."""
    torch.manual_seed(plan.seed)
    eos = qa_vocab().eos_id
    p_train, p_test = halves(plan)
    base_payload = {
        "version": MEASURE_VERSION,
        "source": _source_hash(),
        "kind": kind,
        "variant": variant,
        "plan": asdict(replace(plan, workers=1)),
    }
    if kind == "variant":
        base, bios = pretrained(plan, variant, progress)
        train_items, test_items = p31_items(bios, p_train), p31_items(bios, p_test)

        def compute() -> dict:
            out = {
                "pretrain_key": base.key,
                "bio_accuracy": bio_accuracy(base.model, bios),
                "steps": base.metrics[-1]["step"],
            }
            lora = finetune(plan, base, train_items, "lora", progress)
            out["lora"] = {
                "train": qa_accuracy(lora.model, train_items, eos),
                "test": qa_accuracy(lora.model, test_items, eos),
            }
            if variant in plan.full_ft_variants:
                full = finetune(plan, base, train_items, "full", progress)
                out["full"] = {
                    "train": qa_accuracy(full.model, train_items, eos),
                    "test": qa_accuracy(full.model, test_items, eos),
                }
            out["p_probe"] = p_probing(plan, base.model, bios)
            out["q_probe"] = q_probing(plan, base.model, bios)
            return out

        return _cached({**base_payload, "run": base.key}, compute)
    if kind == "mixed":
        run, bios = mixed_run(plan, variant, progress)

        def compute() -> dict:
            return {
                "run_key": run.key,
                "bio_accuracy": bio_accuracy(run.model, bios),
                "train": qa_accuracy(run.model, p31_items(bios, p_train), eos),
                "test": qa_accuracy(run.model, p31_items(bios, p_test), eos),
            }

        return _cached({**base_payload, "run": run.key}, compute)
    if kind == "celebrity":
        run, celebs, minority = celebrity_pretrained(plan, progress)

        def compute() -> dict:
            items = p31_items(celebs)
            ft = finetune(plan, run, items, "lora", progress)
            return {
                "run_key": run.key,
                "bio_accuracy_minority": bio_accuracy(run.model, minority),
                "celebrities": qa_accuracy(ft.model, items, eos),
                "minority_test": qa_accuracy(ft.model, p31_items(minority, p_test), eos),
            }

        return _cached({**base_payload, "run": run.key}, compute)
    raise ValueError(f"kind must be 'variant', 'mixed' or 'celebrity', got {kind!r}")


def _job(args: tuple[KnowledgeScale, str, str]) -> str:
    plan, kind, variant = args
    torch.set_num_threads(1)
    measure_job(plan, kind, variant)
    return f"{kind}:{variant}"


def prefetch(plan: KnowledgeScale, workers: int | None = None) -> None:
    """Run every job in worker processes, one thread each (results land in the caches)."""
    workers = plan.workers if workers is None else workers
    run_in_workers(_job, [(plan, k, v) for k, v in jobs(plan)], workers)


def chapter_results(plan: KnowledgeScale) -> dict[str, dict]:
    """Every job's numbers, keyed 'kind:variant' (trains and measures what is missing)."""
    prefetch(plan)
    return {f"{k}:{v}": measure_job(plan, k, v) for k, v in jobs(plan)}


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train and measure every job of the chapter (`physlm train part3_1_knowledge_storage`)."""
    plan = scale_for(scale, seed=seed)
    prefetch(plan, workers)
    return len(jobs(plan))
