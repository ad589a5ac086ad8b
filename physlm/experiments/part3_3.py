"""Part 3.3's experiments as functions of a `CapacityScale`: data, a cached run, its bits.

Every experiment is one call: build the data stream, train through the run cache, measure the
capacity ratio R(F) on the training people (Part 3.3 Def. 4.3). The chapter only picks which
calls to make and how to show them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from physlm.data.biod import BioDStream
from physlm.data.bios import BioSStream
from physlm.data.bios_pools import (
    DAYS,
    MONTHS,
    N_CITIES,
    N_EMPLOYERS,
    N_FIRST,
    N_LAST,
    N_MAJORS,
    N_MIDDLE,
    N_UNIVERSITIES,
    PRONOUNS,
    YEARS,
)
from physlm.experiments.workers import run_in_workers
from physlm.measure.capacity import OVERFILL, biod_max_bits, bios_max_bits, measure_capacity
from physlm.measure.quantize import quantize_model
from physlm.model import GPT, count_params
from physlm.runs import Run, get_or_train
from physlm.scales import CapacityScale, Shape, Sweep
from physlm.train import TrainConfig


@dataclass(frozen=True)
class Setting:
    """One point of an experiment: who is learned, how often, by which model."""

    shape: Shape
    people: int
    exposures: int
    mlp: str = "gelu"
    junk_fraction: str = "0"
    domain_token: bool = False
    replica: int = 0  # an independent repeat: other people, other initialisation
    bios_per_row: int | None = None  # None: as many biographies as fit a row
    rows: int | None = None  # rows per optimizer step; None: the scale's `rows`

    def seed(self, base: int) -> int:
        return base + 1000 * self.replica


def make_data(plan: CapacityScale, s: Setting, seed: int = 0) -> BioDStream | BioSStream:
    """The training stream of a setting: exposures count useful biographies only."""
    common = dict(
        n_people=s.people,
        exposures=s.exposures,
        batch_size=plan.rows if s.rows is None else s.rows,
        seq_len=plan.seq_len,
        seed=s.seed(seed),
        junk_fraction=s.junk_fraction,
        domain_token=s.domain_token,
        bios_per_row=s.bios_per_row,
    )
    if plan.data == "biod":
        return BioDStream(**plan.biod, **common)
    return BioSStream(**common)


def train_config(plan: CapacityScale, s: Setting, data, seed: int = 0) -> TrainConfig:
    steps = data.steps_for(data.config.exposures)
    return TrainConfig(
        steps=steps,
        lr=plan.lr_for(s.shape),
        weight_decay=plan.weight_decay,
        warmup_steps=min(plan.warmup_steps, max(1, steps // 10)),
        min_lr_ratio=0.1,
        seed=s.seed(seed),
        log_every=max(1, steps // 50),
    )


def data_bits(knowledge: dict, people: int) -> float:
    """Bits that the data of `people` people holds (numerator of R_max), for the constants of
    `knowledge` (everything in it but N)."""
    if knowledge["kind"] == "bioS":
        return bios_max_bits(people, knowledge["log2_n0"], knowledge["log2_s0"])
    shape = tuple(knowledge[k] for k in ("K", "C", "D", "L", "T"))
    return biod_max_bits(people, *shape, knowledge["log2_n0"])


def planned_params(plan: CapacityScale, shape: Shape, vocab_size: int, mlp: str = "gelu") -> int:
    """P of a model before it exists (built on the meta device, no memory). Every embedding
    row is counted: an upper bound on Def. 4.3's P, so an N that overfills this count overfills
    the model under the paper's count too."""
    with torch.device("meta"):
        model = GPT(shape.config(vocab_size, plan.seq_len, mlp=mlp))
    return count_params(model)


def sweep_setting(plan: CapacityScale, sweep: Sweep, shape: Shape, **kw) -> Setting:
    """The run of `shape` in `sweep`: the fewest people that overfill it by `sweep.fill` bits
    per parameter (or the sweep's fixed N), and as many rows per step as make the run last about
    `sweep.steps` steps. A sweep point whose data does not overfill its model is refused."""
    probe = make_data(plan, Setting(shape, 1, sweep.exposures))  # N-free constants
    knowledge = probe.knowledge()
    params = planned_params(plan, shape, probe.vocab_size, kw.get("mlp", "gelu"))
    n0 = int(round(2.0 ** knowledge["log2_n0"]))
    if sweep.people is not None:
        people = sweep.people
    elif data_bits(knowledge, n0) <= sweep.fill * params:
        raise ValueError(
            f"model {shape.label()} ({params:,} parameters) cannot be overfilled by "
            f"{sweep.fill} bits/param: all N0 = {n0:,} possible people hold "
            f"{data_bits(knowledge, n0) / params:.2f}; use a smaller model or larger name pools"
        )
    else:  # the data's bits grow with N: bisect for the fewest people that reach the fill
        lo, hi = 0, n0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if data_bits(knowledge, mid) <= sweep.fill * params else (lo, mid)
        people = hi
    held = data_bits(knowledge, people) / params
    if held <= OVERFILL:
        raise ValueError(
            f"N = {people:,} people under-fill model {shape.label()} ({params:,} parameters): "
            f"their data holds {held:.2f} bits/param, not more than {OVERFILL}; "
            "use more people or a smaller model"
        )
    rows = max(1, math.ceil(people * sweep.exposures / (sweep.steps * probe.bios_per_row)))
    return Setting(shape, people, sweep.exposures, rows=rows, **kw)


@dataclass
class Outcome:
    setting: Setting
    run: Run
    data: BioDStream | BioSStream
    params: int
    bits: float
    max_bits: float
    seconds: float

    @property
    def ratio(self) -> float:
        return self.bits / self.params

    @property
    def max_ratio(self) -> float:
        """Bits per parameter that the data holds (R_max)."""
        return self.max_bits / self.params

    @property
    def overfilled(self) -> bool:
        """The data holds more than `OVERFILL` bits per parameter of this model."""
        return self.max_ratio > OVERFILL

    @property
    def share(self) -> float:
        """Share of the data's bits that the model stores."""
        return self.bits / self.max_bits

    def row(self, **extra) -> dict:
        """A flat record for tables and plots."""
        s = self.setting
        return {
            "model": s.shape.label(),
            "mlp": s.mlp,
            "N": s.people,
            "exposures": s.exposures,
            "junk": s.junk_fraction,
            "domain token": s.domain_token,
            "params": self.params,
            "bits": self.bits,
            "max bits": self.max_bits,
            "bits/param": self.ratio,
            "max bits/param": self.max_ratio,
            "overfilled": self.overfilled,
            "steps": self.run.metrics[-1]["step"],
            "cached": self.run.cached,
            **extra,
        }


def train_setting(
    plan: CapacityScale, s: Setting, seed: int = 0, progress: bool = True
) -> tuple[Run, BioDStream | BioSStream]:
    """Train (or load) the run of a setting; also return its data stream."""
    data = make_data(plan, s, seed)
    model_cfg = s.shape.config(data.vocab_size, plan.seq_len, mlp=s.mlp)
    run = get_or_train(model_cfg, train_config(plan, s, data, seed), data, progress=progress)
    return run, data


def run_setting(plan: CapacityScale, s: Setting, seed: int = 0, progress: bool = True) -> Outcome:
    """Train (or load) the model of a setting and measure the bits it stores."""
    t0 = time.perf_counter()
    run, data = train_setting(plan, s, seed, progress)
    params = count_params(run.model, data.used_token_ids())
    cap = measure_capacity(run.model, data, params)
    return Outcome(s, run, data, params, cap.bits, cap.max_bits, time.perf_counter() - t0)


def _train_only(args: tuple[CapacityScale, Setting, int]) -> str:
    plan, s, seed = args
    torch.set_num_threads(1)
    return train_setting(plan, s, seed, progress=False)[0].key


def planned_work(plan: CapacityScale, s: Setting) -> float:
    """A run's training work in token-parameter units (steps x tokens per step x width^2), to
    start the longest runs first so that no core idles at the end."""
    data = make_data(plan, s)
    return data.steps_for(s.exposures) * data.config.batch_size * s.shape.layers * s.shape.width**2


def prefetch(plan: CapacityScale, settings: list[Setting], seed: int = 0, workers: int = 1) -> None:
    """Train the runs of several settings side by side in worker processes (`run_in_workers`),
    the largest first.

    Results land in the run cache; `run_setting` then loads them.
    """
    if workers > 1:
        order = sorted(settings, key=lambda s: -planned_work(plan, s))
        run_in_workers(_train_only, [(plan, s, seed) for s in order], workers)


def chapter_settings(plan: CapacityScale) -> dict[str, list[Setting]]:
    """Every run of the chapter: the size sweep, GELU/gated pairs, clean/junk/domain runs.

    The MLP comparison runs at the low-exposure sweep point of its shape (same N, same batch),
    repeated `plan.mlp_replicas` times: at 100 exposures small models sit near the onset of
    memorisation, where single runs differ by several times.

    The three junk-experiment runs pack as many biographies per row as the domain-token run
    fits (its <dom> token makes each biography one token longer), so that the junk and the
    domain-token runs train the same number of optimizer steps on the same layout of rows.
    """
    low = min(plan.sweeps, key=lambda w: w.exposures)
    shape = plan.shapes[plan.mlp_shape]
    mlp_point = sweep_setting(plan, low, shape)
    jn, je, jf = plan.junk_useful_people, plan.junk_exposures, plan.junk_fraction
    domain = Setting(shape, jn, je, junk_fraction=jf, domain_token=True)
    per_row = make_data(plan, domain).bios_per_row
    return {
        "sweep": [sweep_setting(plan, w, sh) for w in plan.sweeps for sh in plan.shapes],
        "mlp": [
            replace(mlp_point, mlp=mlp, replica=r)
            for r in range(plan.mlp_replicas)
            for mlp in ("gelu", "gated")
        ],
        "junk": [
            Setting(shape, jn, je, bios_per_row=per_row),
            Setting(shape, jn, je, junk_fraction=jf, bios_per_row=per_row),
            domain,
        ],
    }


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train every run of the chapter into the run cache (`physlm train part3_3_capacity`).

    Under `accelerate launch` each run is trained by all processes together, one after the
    other; on a CPU the scale's worker processes train runs side by side.
    """
    from physlm.scales import part3_3

    plan = part3_3(scale)
    settings = [s for group in chapter_settings(plan).values() for s in group]
    prefetch(plan, settings, seed, workers=plan.workers if workers is None else workers)
    for s in settings:
        run_setting(plan, s, seed)
    return len(settings)


CHAPTER = "part3_3_capacity"


def quantized_bits(
    outcome: Outcome, bits: int, method: str = "gptq", calib_steps: int = 8
) -> float:
    """Bits the model still stores after post-training quantization of its linear layers.

    GPTQ calibrates on training batches, as the paper's auto_gptq run does on training text.
    """
    calib = [outcome.data.batch(step)["x"] for step in range(calib_steps)]
    with torch.no_grad():
        q = quantize_model(outcome.run.model, bits, calib, method=method)
    return measure_capacity(q, outcome.data, outcome.params).bits


def frequency_bits(data: BioDStream | BioSStream) -> float:
    """Bits scored by a model that knows no individual: it predicts every name part and every
    value from how often each occurs among the N people, and nothing else.

    With N people over a pool of m values, the empirical frequencies differ from uniform by about
    (m - 1) / (2 ln 2) bits in total, so such a model scores a few percent of a small dataset's
    bits. A stored amount at or below this is no evidence that anyone was memorised.
    """

    def column(values: np.ndarray, size: int) -> float:
        counts = np.bincount(np.asarray(values, dtype=np.int64).ravel(), minlength=size)
        p = counts[counts > 0] / counts.sum()
        return float(counts.sum() * (math.log2(size) + (p * np.log2(p)).sum()))

    if isinstance(data, BioDStream):
        c = data.config
        total = sum(column(data.names[:, i], s) for i, s in enumerate(c.name_pools))
        for k in range(c.n_attributes):
            for j in range(c.chunks):
                total += column(data.values[:, k, j], c.diversity)
        return total
    sizes = dict(
        first=N_FIRST, middle=N_MIDDLE, last=N_LAST, pronoun=len(PRONOUNS), month=len(MONTHS),
        day=len(DAYS), year=len(YEARS), birth_city=N_CITIES, university=N_UNIVERSITIES,
        major=N_MAJORS, employer=N_EMPLOYERS,
    )  # fmt: skip
    return sum(column(getattr(data.people, f), s) for f, s in sizes.items())


def renderings(
    data: BioDStream | BioSStream, person: int, count: int = 2, max_steps: int = 1_000_000
) -> list[list[int]]:
    """Token ids of the first `count` training biographies of `person` (without separators),
    read from the stream's own batches: every exposure is a fresh rendering."""
    out: list[list[int]] = []
    eos = data.vocab.eos_id
    for step in range(max_steps):
        useful, who = data.plan(step)
        hits = [(r, j) for r, j in zip(*np.nonzero(who == person), strict=True) if useful[r]]
        if not hits:
            continue
        b = data.batch(step)
        for r, j in hits:
            row = torch.cat([b["x"][r], b["y"][r][-1:]]).tolist()
            bios, cur = [], []
            for t in row[1:]:  # rows open with a separator
                if t == eos:
                    bios.append(cur)
                    cur = []
                else:
                    cur.append(t)
            out.append(bios[j])
            if len(out) == count:
                return out
    raise ValueError(f"person {person} has fewer than {count} biographies in {max_steps} steps")
