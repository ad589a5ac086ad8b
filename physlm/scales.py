"""Named scales: each resolves to plain config values for one chapter.

`smoke` exercises every code path in seconds, `cpu` is the published edition (2 cores, minutes),
`gpu` is one H100-class GPU (hours), `paper` is the paper's own configuration (many GPUs, days).
Unknown names and out-of-range values fail at once, naming the parameter and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from physlm.measure.capacity import OVERFILL
from physlm.model import ModelConfig

SCALES = ("smoke", "cpu", "gpu", "paper")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


@dataclass(frozen=True)
class Shape:
    """A model shape: layers, heads, width. Part 3.3 writes GPT2-l-h for width 64h."""

    layers: int
    heads: int
    width: int

    @classmethod
    def gpt2(cls, layers: int, heads: int) -> Shape:
        return cls(layers, heads, 64 * heads)

    def label(self) -> str:
        if self.width == 64 * self.heads:
            return f"GPT2-{self.layers}-{self.heads}"
        return f"L{self.layers}-H{self.heads}-D{self.width}"

    def config(self, vocab_size: int, block_size: int, **kw) -> ModelConfig:
        """GPT-2 with rotary on a quarter of each head (the series' "GPT2"), tied embeddings."""
        return ModelConfig(
            vocab_size=vocab_size,
            n_layer=self.layers,
            n_head=self.heads,
            n_embd=self.width,
            block_size=block_size,
            pos="rope",
            rope_fraction=0.25,
            **kw,
        )

    def approx_params(self) -> int:
        """Non-embedding parameters, 12 d^2 per layer: for the size limit of a scale."""
        return 12 * self.layers * self.width**2


@dataclass(frozen=True)
class Sweep:
    """One exposure count of the Part 3.3 size sweep.

    Every size gets its own N, the fewest people whose data holds more than `fill` bits per
    parameter of that model, so that each model is overfilled and its bits measure the model,
    not its data. Its batch grows with N so that each run lasts about `steps` optimizer steps:
    the paper's own tables scale the batch with N at a roughly fixed step count (App. A).
    `people` fixes one N for every size instead (an override; it must still overfill).
    """

    exposures: int
    fill: float
    steps: int
    people: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.exposures, bool) or not isinstance(self.exposures, int) or (
            self.exposures <= 0
        ):
            raise ValueError(f"exposures must be a positive int, got {self.exposures!r}")
        if not self.fill > OVERFILL:
            raise ValueError(
                f"fill must exceed {OVERFILL} bits/param (else a model is not overfilled), "
                f"got {self.fill!r}"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        if self.people is not None:
            _check_people(self.people)


@dataclass(frozen=True)
class CapacityScale:
    """Part 3.3 at one scale: the data, the model sweep and the four experiments."""

    scale: str
    data: str  # "biod" or "bios"
    biod: dict  # bioD(N, K, C, D, L, T) parameters other than N
    sweeps: tuple[Sweep, ...]  # the size sweep runs at each exposure count
    shapes: tuple[Shape, ...]
    rows: int  # rows per optimizer step of the junk-experiment runs
    seq_len: int  # tokens per row (whole biographies are packed into it)
    lr: float  # peak learning rate of a width-`lr_width` model (see `lr_for`)
    weight_decay: float
    warmup_steps: int
    mlp_shape: int  # index into shapes for the GELU-vs-gated comparison
    mlp_replicas: int  # independent repeats of that comparison
    junk_useful_people: int  # N of the useful data in the junk experiment
    junk_exposures: int
    junk_fraction: str  # a fraction such as "7/8" (kept exact: it keys the run cache)
    max_params: int  # the largest non-embedding size this scale accepts
    lr_width: int = 16
    threads: int | None = None  # CPU threads per run; tiny models run fastest on one
    workers: int = 1  # runs trained side by side (processes), e.g. one per core

    def __post_init__(self) -> None:
        check_scale(self.scale)
        if self.data not in ("biod", "bios"):
            raise ValueError(f"data must be 'biod' or 'bios', got {self.data!r}")
        if not self.sweeps or not all(isinstance(w, Sweep) for w in self.sweeps):
            raise ValueError("sweeps must be a non-empty tuple of Sweep")
        if len(set(self.exposures)) != len(self.sweeps):
            raise ValueError(f"sweeps must have distinct exposures, got {self.exposures}")
        if not self.shapes:
            raise ValueError("shapes must name at least one model")
        for s in self.shapes:
            if min(s.layers, s.heads, s.width) <= 0 or s.width % s.heads:
                raise ValueError(f"bad model shape {s}: positive sizes, width divisible by heads")
            if s.approx_params() > self.max_params:
                raise ValueError(
                    f"model {s.label()} has ~{s.approx_params():,} non-embedding parameters, "
                    f"too large for scale {self.scale!r} (at most {self.max_params:,}); "
                    "use a larger scale"
                )
        if not isinstance(self.mlp_replicas, int) or self.mlp_replicas < 1:
            raise ValueError(f"mlp_replicas must be a positive int, got {self.mlp_replicas!r}")
        if not 0 <= self.mlp_shape < len(self.shapes):
            raise ValueError(f"mlp_shape must index shapes (0..{len(self.shapes) - 1})")
        if not 0.0 <= float(Fraction(self.junk_fraction)) < 1.0:
            raise ValueError(f"junk_fraction must be in [0, 1), got {self.junk_fraction}")
        if self.junk_useful_people <= 0 or self.junk_exposures <= 0:
            raise ValueError("junk_useful_people and junk_exposures must be positive")

    def lr_for(self, shape: Shape) -> float:
        """Peak learning rate scaled by 1/sqrt(width): larger models need a smaller rate
        (Part 3.3 App. A), and a single rate either stalls the small or destabilises the large."""
        return self.lr * (self.lr_width / shape.width) ** 0.5

    @property
    def exposures(self) -> tuple[int, ...]:
        return tuple(w.exposures for w in self.sweeps)


def _check_people(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"people (N) must be a positive int, got {n!r}")
    return n


_PART3_3: dict[str, CapacityScale] = {}


def _register_part3_3(**kw) -> None:
    plan = CapacityScale(**kw)
    _PART3_3[plan.scale] = plan


def part3_3(scale: str, people: int | None = None, shapes: list | None = None) -> CapacityScale:
    """The Part 3.3 plan at `scale`, optionally with N (every sweep) or the models overridden.

    `people` fixes N for every size of every sweep (it must still overfill each model) and
    for the junk experiment. `shapes` takes (layers, heads) pairs (GPT2-l-h) or
    (layers, heads, width) triples.
    """
    plan = _PART3_3[check_scale(scale)]
    changes: dict = {}
    if people is not None:
        _check_people(people)
        changes["sweeps"] = tuple(replace(w, people=people) for w in plan.sweeps)
        changes["junk_useful_people"] = people
    if shapes is not None:
        parsed = []
        for s in shapes:
            if len(s) == 2:
                parsed.append(Shape.gpt2(*s))
            elif len(s) == 3:
                parsed.append(Shape(*s))
            else:
                raise ValueError(f"shapes entries are (layers, heads[, width]), got {s!r}")
        changes["shapes"] = tuple(parsed)
        changes["mlp_shape"] = min(plan.mlp_shape, len(parsed) - 1)
    return replace(plan, **changes) if changes else plan


# bioD at small scales: K attributes of one single-token chunk out of D, names from three small
# pools. Tokens per person: 3 name + K * (key + value).
_SMALL_BIOD = dict(
    n_attributes=4, chunks=1, diversity=32, chunk_len=1, chunk_vocab=32, name_pools=(20, 20, 20)
)

_register_part3_3(
    scale="smoke",
    data="biod",
    biod=_SMALL_BIOD,
    sweeps=(Sweep(5, 2.5, 40), Sweep(20, 2.5, 40)),
    shapes=(Shape(1, 1, 8), Shape(1, 1, 16)),
    rows=4,
    seq_len=64,
    lr=3e-2,
    weight_decay=0.01,
    warmup_steps=5,
    mlp_shape=0,
    mlp_replicas=2,
    junk_useful_people=40,
    junk_exposures=5,
    junk_fraction="7/8",
    max_params=50_000,
    threads=1,
    workers=2,
)
_register_part3_3(
    scale="cpu",
    data="biod",
    biod=_SMALL_BIOD,
    sweeps=(Sweep(100, 2.5, 4000), Sweep(1000, 2.5, 4000)),
    shapes=(
        Shape(1, 1, 8),
        Shape(1, 1, 12),
        Shape(1, 1, 16),
        Shape(1, 2, 24),
        Shape(1, 2, 32),
        Shape(1, 2, 36),
    ),
    rows=4,
    seq_len=64,
    lr=5e-2,
    weight_decay=0.01,
    warmup_steps=100,
    mlp_shape=2,
    mlp_replicas=3,
    junk_useful_people=250,
    junk_exposures=100,
    junk_fraction="7/8",
    max_params=200_000,
    threads=1,
    workers=2,
)
# One GPU: bioS as in the paper, GPT2-l-h models of 1M-10M parameters (Part 3.3 App. A,
# Parameter 2 for 100 exposures: wd 0.01, lr 1e-3, batch 12-24 windows of 512 at N = 50K-100K).
_register_part3_3(
    scale="gpu",
    data="bios",
    biod={},
    sweeps=(Sweep(100, 2.5, 50_000), Sweep(1000, 2.5, 100_000)),
    shapes=(Shape.gpt2(2, 2), Shape.gpt2(4, 2), Shape.gpt2(4, 4), Shape.gpt2(8, 4)),
    rows=24,
    seq_len=512,
    lr=1e-3,
    lr_width=128,
    weight_decay=0.01,
    warmup_steps=1000,
    mlp_shape=2,
    mlp_replicas=1,
    junk_useful_people=20_000,
    junk_exposures=100,
    junk_fraction="7/8",
    max_params=20_000_000,
)
# The paper's own sweep (App. A, Parameter 1: N = 10K-10M, GPT2 from 1M to 0.5B parameters),
# without its largest models: overfilling GPT2-20-16 needs 12M people, and at 500K steps a
# batch of 518 windows per GPU (about 230 GB).
_register_part3_3(
    scale="paper",
    data="bios",
    biod={},
    sweeps=(Sweep(100, 2.5, 200_000), Sweep(1000, 2.5, 500_000)),
    shapes=(
        Shape.gpt2(4, 4),
        Shape.gpt2(8, 8),
        Shape.gpt2(12, 12),
        Shape.gpt2(16, 8),
    ),
    rows=192,
    seq_len=512,
    lr=1e-3,
    lr_width=256,
    weight_decay=0.02,
    warmup_steps=1000,
    mlp_shape=2,
    mlp_replicas=1,
    junk_useful_people=100_000,
    junk_exposures=100,
    junk_fraction="7/8",
    max_params=10**9,
)


# ---------------------------------------------------------------------------------- Part 1


PART1_POSITIONS = ("learned", "relative", "rope", "position_only", "uniform")


@dataclass(frozen=True)
class GrammarSpec:
    """A grammar of Part 1's family: one of the paper's named ones, or a seeded member.

    A seeded member (`physlm.data.cfg.random_grammar`) keeps the family's construction rules and
    lets small scales use fewer levels and rules than cfg3f.
    """

    named: str | None = None
    sizes: tuple[int, ...] = (1, 3, 3, 3)
    num_rules: tuple[int, int] = (2, 3)
    rule_len: tuple[int, int] = (2, 3)
    seed: int = 0

    def build(self):
        from physlm.data.cfg import named_grammar, random_grammar

        if self.named is not None:
            return named_grammar(self.named)
        levels = len(self.sizes) - 2
        return random_grammar(
            self.seed,
            sizes=self.sizes,
            num_rules=self.num_rules,
            rule_len=self.rule_len,
            name=f"cfg{self.sizes[1]}-{levels}nt-seed{self.seed}",
        )


@dataclass(frozen=True)
class CFGScale:
    """Part 1 at one scale: the grammar, one model shape for every position encoding, budgets."""

    scale: str
    grammar: GrammarSpec
    shape: Shape
    batch_size: int
    seq_len: int  # the context (sentences are packed and cut into windows, as in the paper)
    steps: int
    lr: float
    warmup_steps: int
    cut: int  # the prefix length of the "cut" generation test (the paper's cut 50)
    gen_samples: int
    eval_sentences: int  # sentences for the KL, the probes and the attention statistics
    max_params: int
    threads: int | None = None
    workers: int = 1
    weight_decay: float = 0.1  # Part 4.1 App. A.5's recipe for the same task
    positions: tuple[str, ...] = PART1_POSITIONS
    noise: float = 0.1  # share of corrupted pretraining sentences in the robustness run
    noise_fraction: float = 0.15  # share of a corrupted sentence's tokens replaced
    encoder: bool = True  # also train GPT_rot's shape as an encoder on masked tokens
    mask_rate: float = 0.15  # the encoder's masked-LM rate (BERT's 15%, 80/10/10 recipe)

    def __post_init__(self) -> None:
        bad = [p for p in self.positions if p not in PART1_POSITIONS]
        if bad or "rope" not in self.positions:
            raise ValueError(
                f"positions must be drawn from {PART1_POSITIONS} and include 'rope', "
                f"got {self.positions}"
            )
        for name in ("batch_size", "seq_len", "steps", "gen_samples", "eval_sentences", "cut"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not 0.0 < self.noise <= 1.0:
            raise ValueError(f"noise must be in (0, 1], got {self.noise!r}")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {self.mask_rate!r}")
        if self.shape.approx_params() > self.max_params:
            raise ValueError(
                f"shape {self.shape.label()} (~{self.shape.approx_params():,} parameters) is too "
                f"large for scale {self.scale!r} (at most {self.max_params:,})"
            )

    def model_config(self, vocab_size: int, pos: str) -> ModelConfig:
        """GPT / GPT_rel / GPT_rot / GPT_pos / GPT_uni of Part 1: same shape, `pos` switched.

        Rotary on every head dimension (the paper's GPT_rot), untied embeddings as in GPT-2.
        """
        return ModelConfig(
            vocab_size=vocab_size,
            n_layer=self.shape.layers,
            n_head=self.shape.heads,
            n_embd=self.shape.width,
            block_size=self.seq_len,
            pos=pos,
            rope_fraction=1.0,
        )


_PART1: dict[str, CFGScale] = {}


def part1(scale: str, steps: int | None = None) -> CFGScale:
    """The Part 1 plan at `scale`, optionally with another number of training steps."""
    plan = _PART1[check_scale(scale)]
    if steps is not None:
        return replace(plan, steps=steps)
    return plan


def _register_part1(**kw) -> None:
    _PART1[kw["scale"]] = CFGScale(**kw)


_SHALLOW = GrammarSpec(sizes=(1, 3, 3, 3), num_rules=(2, 3), rule_len=(2, 3), seed=0)
_register_part1(
    scale="smoke",
    grammar=_SHALLOW,
    shape=Shape(2, 4, 32),
    batch_size=8,
    seq_len=64,
    steps=30,
    lr=3e-3,
    warmup_steps=5,
    cut=8,
    gen_samples=16,
    eval_sentences=24,
    max_params=100_000,
    threads=1,
    workers=1,
)
_register_part1(
    scale="cpu",
    grammar=_SHALLOW,
    shape=Shape(4, 4, 64),
    batch_size=32,
    seq_len=64,
    steps=1200,
    lr=3e-3,
    warmup_steps=100,
    cut=8,
    gen_samples=200,
    eval_sentences=300,
    max_params=1_000_000,
    threads=1,
    workers=2,
)
# One GPU: cfg3b (the family's smallest rule set at full depth) with an 8-layer model, a fifth of
# the paper's token budget; the recipe of Part 4.1 App. A.5 (AdamW 0.9/0.98, wd 0.1).
_register_part1(
    scale="gpu",
    grammar=GrammarSpec(named="cfg3b"),
    shape=Shape.gpt2(8, 8),
    batch_size=96,
    seq_len=512,
    steps=20_000,
    lr=1e-3,
    warmup_steps=1000,
    cut=50,
    gen_samples=1000,
    eval_sentences=500,
    max_params=50_000_000,
)
# The paper: cfg3f, GPT-2 small (12 layers, 12 heads, 768), 100k steps x 96 x 512 fresh tokens.
_register_part1(
    scale="paper",
    grammar=GrammarSpec(named="cfg3f"),
    shape=Shape.gpt2(12, 12),
    batch_size=96,
    seq_len=512,
    steps=100_000,
    lr=3e-4,
    warmup_steps=1000,
    cut=50,
    gen_samples=2000,
    eval_sentences=1000,
    max_params=10**9,
)


def _bench_train() -> dict:
    """The largest `cpu` model of the Part 3.3 sweep at the scale's junk-run batch (`rows`):
    what `bench train` times."""
    plan = part3_3("cpu")
    shape = max(plan.shapes, key=Shape.approx_params)
    vocab = 4 + plan.biod["n_attributes"] + sum(plan.biod["name_pools"]) + plan.biod["chunk_vocab"]
    return {
        "model": shape.config(vocab, plan.seq_len),
        "batch_size": plan.rows,
        "seq_len": plan.seq_len,
    }


BENCH_TRAIN = _bench_train()


# -------------------------------------------------------------------------------- Part 4.1


@dataclass(frozen=True)
class CanonScale:
    """Part 4.1 at one scale: Brevo's graph size, one model shape for every variant, budgets.

    `variants` name entries of `physlm.experiments.part4_1.VARIANTS` (position encoding and
    Canon switches); every variant trains on identical data for one seed.
    """

    scale: str
    max_nodes: int  # Brevo's N: graphs of 3..N nodes in training, n = N and N/2 at test
    shape: Shape
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    weight_decay: float
    test_instances: int  # held-out graphs per test size
    variants: tuple[str, ...]
    max_params: int
    threads: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("max_nodes", "batch_size", "steps", "test_instances"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.max_nodes < 6:
            raise ValueError(
                f"max_nodes must be at least 6 (tests at N and N/2), got {self.max_nodes}"
            )
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError("lr must be > 0, weight_decay and warmup_steps >= 0")
        if self.shape.approx_params() > self.max_params:
            raise ValueError(
                f"shape {self.shape.label()} (~{self.shape.approx_params():,} parameters) is too "
                f"large for scale {self.scale!r} (at most {self.max_params:,})"
            )

    @property
    def test_sizes(self) -> tuple[int, int]:
        """The paper's test size n = N, and half of it."""
        return self.max_nodes, self.max_nodes // 2


_PART4_1: dict[str, CanonScale] = {}


def part4_1(scale: str, steps: int | None = None) -> CanonScale:
    """The Part 4.1 plan at `scale`, optionally with another number of training steps."""
    plan = _PART4_1[check_scale(scale)]
    return replace(plan, steps=steps) if steps is not None else plan


def _register_part4_1(**kw) -> None:
    _PART4_1[kw["scale"]] = CanonScale(**kw)


CANON_MAIN = ("RoPE", "RoPE + Canon", "NoPE", "NoPE + Canon")
CANON_ABLATIONS = ("NoPE + Canon-A", "NoPE + Canon-AC", "NoPE + Canon (no residual)",
                   "NoPE + Canon (frozen)")  # fmt: skip
_register_part4_1(
    scale="smoke",
    max_nodes=6,
    shape=Shape(1, 2, 32),
    batch_size=8,
    steps=20,
    lr=2e-3,
    warmup_steps=5,
    weight_decay=0.03,
    test_instances=16,
    variants=CANON_MAIN + CANON_ABLATIONS,
    max_params=100_000,
    threads=1,
    workers=1,
)
_register_part4_1(
    scale="cpu",
    max_nodes=8,
    shape=Shape(3, 4, 96),
    batch_size=32,
    steps=1000,
    lr=2e-3,
    warmup_steps=100,
    weight_decay=0.03,
    test_instances=400,
    # the frozen-weights ablation (another ~90 s on 2 cores) would pass the chapter's 10 minutes
    variants=CANON_MAIN + CANON_ABLATIONS[:3],
    max_params=1_000_000,
    threads=1,
    workers=2,
)
# One GPU: Brevo1 at the paper's smallest N with its smallest model (8L512D), a tenth of its steps.
_register_part4_1(
    scale="gpu",
    max_nodes=70,
    shape=Shape(8, 8, 512),
    batch_size=256,
    steps=15_000,
    lr=1e-3,
    warmup_steps=1000,
    weight_decay=0.03,
    test_instances=1000,
    variants=CANON_MAIN + CANON_ABLATIONS,
    max_params=50_000_000,
)
# The paper (Sec. 3, App. A): Brevo1 N = 110 with 12L768D, batch 256, 100K steps.
_register_part4_1(
    scale="paper",
    max_nodes=110,
    shape=Shape.gpt2(12, 12),
    batch_size=256,
    steps=100_000,
    lr=1e-3,
    warmup_steps=1000,
    weight_decay=0.03,
    test_instances=2000,
    variants=CANON_MAIN + CANON_ABLATIONS,
    max_params=10**9,
)
