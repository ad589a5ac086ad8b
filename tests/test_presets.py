"""Every `gpu` and `paper` preset runs, and fits a GPU.

Each chapter's plan at those scales is built as the chapter builds it, and each kind of its
runs (every position encoding, bioS variant, MLP, junk and domain-token stream, mixed and
celebrity pretraining, LoRA and full fine-tuning, reverse parents) goes through the chapter's
own functions: its data generators at the preset's sizes, its configs and the trainer. Only
the trainer's input is shrunk at the one place every run passes, `get_or_train`: one layer of
width 16 with the preset's switches (positions, MLP, norm, rotary share, Canon ...), two
optimizer steps, the first two rows of each real batch. The full-size configs seen there are
what the memory check judges (`physlm.memory`). One size is capped before that: the bioS
populations of the paper presets (100,000 people, whose 1.9 million Part 3.2 QA items take
minutes to write) train here with `PEOPLE_CAP`; the celebrity check keeps the preset's own.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

import physlm.experiments.part1 as e1
import physlm.experiments.part3_1 as e31
import physlm.experiments.part3_2 as e32
import physlm.experiments.part3_3 as e33
import physlm.experiments.part4_1 as e41
import physlm.runs as runs
from physlm.memory import (
    GPU_BYTES,
    activation_elements,
    check_fits,
    param_count,
    training_memory,
)
from physlm.model import GPT, ModelConfig, lm_loss
from physlm.scales import part1, part3_3, part4_1

PEOPLE_CAP = 10_000  # the gpu presets' population
PAPER_GPUS = 8  # the paper scale trains data-parallel on one 8-GPU node: rows per GPU / 8


class FirstRows:
    """The first `rows` rows of every batch of a real data source (same generator, same steps)."""

    def __init__(self, data, rows: int = 2):
        self.data, self.rows = data, rows
        self.vocab_size = data.vocab_size
        self.full_shape: tuple[int, int] | None = None

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        b = self.data.batch(step)
        self.full_shape = tuple(b["x"].shape)
        return {k: v[: self.rows] for k, v in b.items()}

    def spec(self) -> dict:
        return {"first_rows": self.rows, "of": self.data.spec()}


def shrink(cfg: ModelConfig) -> ModelConfig:
    """One layer, width 16 (two heads of 8, so a quarter-rotary head still rotates 2 dims)."""
    heads = min(cfg.n_head, 2)
    return replace(cfg, n_layer=1, n_head=heads, n_embd=8 * heads, mlp_hidden=None)


class Shrinker:
    """Stands in for `get_or_train` in the chapter modules; records each full-size run."""

    def __init__(self, root):
        self.root = root
        self.seen: list[dict] = []
        self.full_of: dict[ModelConfig, ModelConfig] = {}

    def full_config(self, cfg: ModelConfig) -> ModelConfig:
        if cfg in self.full_of:
            return self.full_of[cfg]
        return replace(self.full_of[replace(cfg, split_qkv=False)], split_qkv=cfg.split_qkv)

    def __call__(self, model_cfg, train_cfg, data, progress=False, build=None, build_spec=None,
                 **kw):  # fmt: skip
        if build is None:
            small = shrink(model_cfg)
            self.full_of[small] = model_cfg
        else:  # built from a (shrunk) parent: LoRA or full fine-tuning
            small, model_cfg = model_cfg, self.full_config(model_cfg)
        short = replace(train_cfg, steps=2, warmup_steps=min(train_cfg.warmup_steps, 1),
                        log_every=1, checkpoint_every=0)  # fmt: skip
        rows = FirstRows(data)
        run = runs.get_or_train(small, short, rows, root=self.root, progress=False,
                                build=build, build_spec=build_spec)  # fmt: skip
        assert run.metrics[-1]["step"] == 2 and math.isfinite(run.metrics[-1]["loss"])
        rows_full, seq = rows.full_shape
        self.seen.append({"model": model_cfg, "rows": rows_full, "seq_len": seq,
                          "data": type(data).__name__, "lora": build_spec is not None and
                          "lora" in build_spec})  # fmt: skip
        return run


@pytest.fixture
def shrinker(tmp_path, monkeypatch):
    s = Shrinker(tmp_path)
    for module in (e1, e31, e32, e33, e41):
        monkeypatch.setattr(module, "get_or_train", s)
    items = e31.p31_items
    made: dict = {}

    def p31_items_once(bios, people=None):
        """Part 3.1's QA items, made once per population (the paper preset has 300,000)."""
        key = (json.dumps(bios.spec(), sort_keys=True), None if people is None else
               people.tobytes())  # fmt: skip
        if key not in made:
            made[key] = items(bios, people) if people is not None else items(bios)
        return made[key]

    monkeypatch.setattr(e31, "p31_items", p31_items_once)
    return s


def fits(shrinker: Shrinker, chapter: str, scale: str) -> None:
    assert shrinker.seen, "no run went through the trainer"
    gpus = PAPER_GPUS if scale == "paper" else 1
    for run in shrinker.seen:
        what = f"a {chapter} {scale} run ({run['data']}, {run['model'].n_layer} layers)"
        check_fits(run["model"], math.ceil(run["rows"] / gpus), run["seq_len"], what)


def run_part1(scale: str) -> None:
    plan = part1(scale)
    for s in e1.chapter_settings(plan):  # every position encoding, and rotary on noisy data
        e1.train_setting(plan, s, progress=False)


def run_part3_3(scale: str) -> None:
    plan = part3_3(scale)
    groups = e33.chapter_settings(plan)
    kinds = [groups["sweep"][-1], *groups["mlp"][:2], *groups["junk"]]  # largest model, gelu,
    for s in kinds:  # gated, clean / junk / domain-token streams
        e33.train_setting(plan, s, progress=False)


def run_part3_1(scale: str) -> None:
    plan = e31.scale_for(scale)
    plan = e31.scale_for(scale, people=min(plan.people, PEOPLE_CAP))
    p_train, _ = e31.halves(plan)
    for variant in plan.variants:
        base, bios = e31.pretrained(plan, variant)
        if variant == plan.variants[0]:
            items = e31.p31_items(bios, p_train)
            e31.finetune(plan, base, items, "lora")
            e31.finetune(plan, base, items, "full")
    for variant in plan.mixed_variants:
        e31.mixed_run(plan, variant)


def run_part3_2(scale: str) -> None:
    people = e32.scale_for(scale).knowledge.people
    plan = e32.scale_for(scale, knowledge={"people": min(people, PEOPLE_CAP)})
    for reverse in (False, True):
        e32.finetune(plan, reverse)  # its parent (Part 3.1's, or the reverse one), then it


def run_part4_1(scale: str) -> None:
    plan = part4_1(scale)
    for v in plan.variants:  # every position encoding and Canon switch, on Brevo of N nodes
        e41.train_variant(plan, v, progress=False)


CHAPTERS = {"part1": run_part1, "part3_1": run_part3_1, "part3_2": run_part3_2,
            "part3_3": run_part3_3, "part4_1": run_part4_1}  # fmt: skip


@pytest.mark.parametrize("scale", ["gpu", "paper"])
@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_kind_of_run_of_the_preset_trains_and_fits_a_gpu(chapter, scale, shrinker):
    torch.manual_seed(0)
    CHAPTERS[chapter](scale)
    fits(shrinker, chapter, scale)


@pytest.mark.parametrize("scale", ["gpu", "paper"])
def test_part3_1_celebrity_pretraining_preset(scale, shrinker):
    plan = e31.scale_for(scale)
    assert plan.celebrities
    e31.celebrity_pretrained(plan)
    fits(shrinker, "part3_1", scale)


def test_the_chapters_are_all_covered():
    """A new chapter module with runs must get a driver here."""
    import pkgutil

    import physlm.experiments as pkg

    with_runs = {
        m.name for m in pkgutil.iter_modules(pkg.__path__)
        if hasattr(__import__(f"physlm.experiments.{m.name}", fromlist=["x"]), "train_all")
    }  # fmt: skip
    assert with_runs == set(CHAPTERS)


# ------------------------------------------------------------------- the memory estimate


def closed_form_params(cfg: ModelConfig) -> int:
    """Rotary GELU model, tied embeddings, no biases: V d + L (4 d^2 + 2 d h + 2 d) + d, the
    norms having a weight only."""
    d = cfg.n_embd
    return cfg.vocab_size * d + cfg.n_layer * (4 * d * d + 2 * d * cfg.hidden + 2 * d) + d


def test_param_count_matches_a_closed_form_and_the_built_model():
    cfg = ModelConfig(vocab_size=100, n_layer=3, n_head=4, n_embd=64, block_size=32)
    assert param_count(cfg) == sum(p.numel() for p in GPT(cfg).parameters())
    assert param_count(cfg) == closed_form_params(cfg)


@pytest.mark.parametrize("kw", [dict(), dict(mlp="gated"), dict(canon="ABCD"),
                                dict(pos="learned")])  # fmt: skip
def test_activation_count_bounds_what_autograd_saves(kw):
    """The estimate is an upper count of the tensors autograd keeps for backward (measured
    with saved-tensor hooks, distinct storages, parameters excluded) and not far above it."""
    cfg = ModelConfig(vocab_size=64, n_layer=3, n_head=4, n_embd=64, block_size=128, **kw)
    model = GPT(cfg)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    rows, seq = 4, 128
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randint(0, 64, (rows, seq)))
    measured = sum(saved.values())  # float32 on the CPU: 4 bytes an element
    estimate = 4 * rows * seq * (cfg.n_layer * activation_elements(cfg) + 2 * cfg.n_embd)
    assert 0.7 * estimate <= measured <= estimate


def test_logits_and_state_are_counted():
    cfg = ModelConfig(vocab_size=1000, n_layer=2, n_head=2, n_embd=32, block_size=16)
    est = training_memory(cfg, rows=3, seq_len=16)
    assert est.state_bytes == 16 * param_count(cfg)
    assert est.logit_bytes == 10 * 3 * 16 * 1000
    assert est.total == est.state_bytes + est.activation_bytes + est.logit_bytes
    logits = GPT(cfg)(torch.randint(0, 1000, (3, 16)))
    assert lm_loss(logits, torch.zeros(3, 16, dtype=torch.long)).isfinite()


def test_over_the_limit_names_the_parameter():
    cfg = ModelConfig(vocab_size=50_000, n_layer=12, n_head=12, n_embd=768, block_size=1024)
    assert check_fits(cfg, rows=8, seq_len=1024, what="x").total < GPU_BYTES
    with pytest.raises(ValueError, match=r"preset X needs ~.* GB.*lower rows"):
        check_fits(cfg, rows=4096, seq_len=1024, what="preset X")
    big = ModelConfig(vocab_size=1000, n_layer=48, n_head=32, n_embd=8192, block_size=128)
    with pytest.raises(ValueError, match=r"lower the model size \(n_layer, n_embd\)"):
        check_fits(big, rows=1, seq_len=128, what="preset Y")
    with pytest.raises(ValueError, match="rows must be a positive int"):
        training_memory(cfg, rows=0, seq_len=8)
