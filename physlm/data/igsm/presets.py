"""The generator's one knob, `IGSMConfig`, and its named presets.

Part 2.1 (Sec. 2.2 and App. A; official iGSM README) trains on two difficulty levels:

* ``med``:  solutions of at most 15 operations on structure graphs of at most 20 edges,
* ``hard``: at most 21 operations and 28 edges,

with the training op drawn as op = min(t0, t1), t0 and t1 uniform in 1..max_op (the official
``gen_sol_op('light')``, skewed toward short solutions). Test sets fix op, in distribution
(op <= max_op) or out of it (med: op 20-23, hard: op 28-32), here at the same max_edge (our
reading: the sources consulted do not say whether the official test sets raise it).

`cpu` and `smoke` are small worlds for the book's own scales: fewer and shorter nouns, shallow
and narrow structure graphs, few operations. They are starting points for a chapter's
calibration (which may `replace` any field); every departure from med/hard is a field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from physlm.data.igsm.names import WorldConfig

OP_DISTS = ("light", "uniform")
SPLITS = ("train", "test", "all")
P_FORMATS = ("pq", "qp")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz" + "abcdefghijklmnopqrstuvwxyz".upper())
# Part 2.1: the template hash mod 23 decides the split; official const/params.py bins
TRAIN_BINS = tuple(range(0, 16))
TEST_BINS = tuple(range(16, 23))
HASH_MOD = 23


def _int(name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        allowed = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be an int {allowed}, got {v!r}")
    return v


def _range(name: str, v, lo: int, hi: int) -> tuple[int, int]:
    if not (isinstance(v, tuple) and len(v) == 2):
        raise ValueError(f"{name} must be a (low, high) tuple, got {v!r}")
    a, b = (_int(f"{name}[0]", v[0], lo, hi), _int(f"{name}[1]", v[1], lo, hi))
    if a > b:
        raise ValueError(f"{name} must have low <= high, got {v!r}")
    return a, b


@dataclass(frozen=True)
class IGSMConfig:
    """Everything that changes which problems are drawn (see the module docstring).

    max_op / max_edge: the difficulty (Part 2.1 Sec. 2.2). op: every problem has exactly this
    many operations (a test set, also above max_op: out of distribution); None draws op from
    `op_dist`. mod: the arithmetic modulus (the paper: 23). max_operands: most quantities one
    sentence combines, the random constant included (official max_param = 4). depth / width:
    layers per structure graph and items per layer (the paper: 2..4 each). perm_level: the
    official shuffle of the problem sentences (0-4 mild, 5 fully random, 6 none; None draws one
    per problem). p_format: problem then question ("pq") or question first ("qp"). split:
    "train" keeps solution templates whose hash falls in bins 0..15, "test" in 16..22.
    abstract: False leaves out abstract parameters (never quoted, never asked): a departure a
    small world may need (the calibration notes found them hard at `cpu` size).
    """

    max_op: int = 15
    max_edge: int = 20
    op: int | None = None
    op_dist: str = "light"
    mod: int = 23
    max_operands: int = 4
    depth: tuple[int, int] = (2, 4)
    width: tuple[int, int] = (2, 4)
    perm_level: int | None = None
    p_format: str = "pq"
    split: str = "train"
    abstract: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        _int("max_op", self.max_op, 1, len(LETTERS))
        _int("max_edge", self.max_edge, 2)
        if self.op is not None:
            _int("op", self.op, 1, len(LETTERS))
        if self.op_dist not in OP_DISTS:
            raise ValueError(f"op_dist must be one of {OP_DISTS}, got {self.op_dist!r}")
        _int("mod", self.mod, 2, 100)
        _int("max_operands", self.max_operands, 2, 8)
        if not isinstance(self.world, WorldConfig):
            raise ValueError(f"world must be a WorldConfig, got {type(self.world).__name__}")
        _range("depth", self.depth, 2, self.world.layers)
        _range("width", self.width, 1, self.world.items)
        if self.perm_level is not None:
            _int("perm_level", self.perm_level, 0, 6)
        if not isinstance(self.abstract, bool):
            raise ValueError(f"abstract must be True or False, got {self.abstract!r}")
        if self.p_format not in P_FORMATS:
            raise ValueError(f"p_format must be one of {P_FORMATS}, got {self.p_format!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        lo_edges = (self.depth[1] - 1) * self.width[1]
        if self.max_edge < lo_edges:
            raise ValueError(
                f"max_edge must be >= (depth[1] - 1) * width[1] = {lo_edges}, the fewest edges "
                f"of the deepest, widest structure graph drawn, got {self.max_edge}"
            )

    @property
    def bins(self) -> tuple[int, ...]:
        """The template-hash bins this config keeps."""
        return {"train": TRAIN_BINS, "test": TEST_BINS, "all": TRAIN_BINS + TEST_BINS}[
            self.split
        ]

    def test_set(self, op: int) -> IGSMConfig:
        """The test-split twin of this config at a fixed op (in or out of distribution)."""
        return replace(self, op=op, split="test")


_PRESETS: dict[str, IGSMConfig] = {
    # Part 2.1 Sec. 2.2 / official README: iGSM-med and iGSM-hard
    "med": IGSMConfig(max_op=15, max_edge=20),
    "hard": IGSMConfig(max_op=21, max_edge=28),
    # the book's small worlds (see the module docstring)
    "cpu": IGSMConfig(
        max_op=3, max_edge=6, depth=(2, 3), width=(2, 3), max_operands=3,
        world=WorldConfig(hierarchies=2, layers=3, items=8),
    ),
    "smoke": IGSMConfig(
        max_op=2, max_edge=4, depth=(2, 2), width=(2, 2), max_operands=3,
        world=WorldConfig(hierarchies=1, layers=2, items=4),
    ),
}
PRESETS = tuple(_PRESETS)
# Part 2.1 Sec. 3 / Part 2.2: out-of-distribution test ops of each paper preset
OOD_OPS: dict[str, tuple[int, ...]] = {"med": (20, 21, 22, 23), "hard": (28, 29, 30, 31, 32)}


def igsm_preset(name: str, **changes) -> IGSMConfig:
    """The named preset (med, hard, cpu, smoke), with any fields replaced."""
    if name not in _PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
    return replace(_PRESETS[name], **changes) if changes else _PRESETS[name]
