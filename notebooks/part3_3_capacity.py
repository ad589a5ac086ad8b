# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Part 3.3: Knowledge capacity scaling laws
#
# **Question.** How many bits of knowledge can a language model store per parameter? Part 3.3
# of the series {cite}`allenzhu2024part33` answers with synthetic biographies whose information
# content is known exactly: a model trained to memorise them is scored by how many of those bits
# its next-token losses prove it holds. The paper finds a law that holds across sizes, depths
# and widths: with about 1000 exposures per fact, a GPT-2 stores **2 bits per parameter**; with
# 100 exposures, about 1. It then measures what moves that number: the gated MLP of LLaMA,
# quantization, and "junk" data mixed into pretraining.
#
# This chapter runs those experiments at the scale it was executed with (see the parameters
# below) and closes with a ledger of the paper's claims next to ours.

# %% [markdown]
# ## At a glance
#
# ```{glue} at_a_glance
# ```

# %% tags=["parameters"]
scale = "cpu"
seed = 0
people = None  # override N: one N for every size of the sweep (it must still overfill each)
shapes = None  # override the sweep: a list of [layers, heads] (GPT2-l-h) or [layers, heads, width]

# %%
import math
import textwrap
import time

import pandas as pd
import torch
from IPython.display import Markdown, display

from physlm.claims import (
    AtLeast,
    AtMost,
    Ledger,
    Num,
    Requires,
    WithinFactor,
    close_chapter,
    ratio,
)
from physlm.data.bios import BioSStream
from physlm.experiments.part3_3 import (
    OVERFILL,
    chapter_settings,
    frequency_bits,
    make_data,
    prefetch,
    quantized_bits,
    renderings,
    run_setting,
    sweep_setting,
)
from physlm.measure.capacity import BIOS_N0
from physlm.plots import bits_vs_params, savefig, use_style, value_bars
from physlm.scales import part3_3


def times(a: float, b: float) -> float:
    """a / b, or NaN when either stores no bits (a ratio of nothing says nothing)."""
    return a / b if a > 0 and b > 0 else float("nan")


def fx(r: float) -> str:
    """A ratio as '1.23x', or 'n/a' where it says nothing."""
    if not math.isfinite(r):
        return "n/a"
    return f"{r:.2f}x" if abs(r) < 10 else f"{r:.0f}x"


def wrapped(text: str, width: int = 70) -> str:
    return textwrap.fill(text, width=width, break_long_words=False)


if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
plan = part3_3(scale, people=people, shapes=shapes)
torch.set_num_threads(plan.threads or torch.get_num_threads())
use_style()
chapter_start = time.perf_counter()

# %% [markdown]
# ## Data
#
# **bioS(N)** (Part 3.3 Sec. 2; the pools of Part 3.1 App. A.1). Each of N people has a unique
# full name from 400 first x 400 middle x 1000 last names, a birth date (200 years x 12 months
# x 28 days), a birth city (200), a university (300), a major (100), an employer (263, whose
# headquarters is the work city) and a pronoun. A biography states the six facts in six
# sentences; every exposure draws a fresh template for each sentence (about 50 per attribute)
# and a fresh sentence order. Our pools and templates are generated and written here. One person,
# and the first two biographies of that person in the training stream:

# %%
bios = BioSStream(n_people=1000, exposures=2, batch_size=1, seq_len=512, seed=seed)
display(pd.DataFrame([bios.facts(0)]).T.rename(columns={0: "person 0"}))
for i, bio in enumerate(renderings(bios, person=0, count=2)):
    print(wrapped(f"exposure {i + 1}: {bios.vocab.decode(bio)}"), end="\n\n")

# %% [markdown]
# The information in the data is exact. With N0 = 400 x 400 x 1000 possible names and S0 the
# number of possible attribute tuples (Part 3.3 Sec. 4), one person carries log2 S0 bits of
# attributes, and the names add log2(N0/N) bits each:

# %%
k = bios.knowledge()
display(
    Markdown(
        f"log2 N0 = {math.log2(BIOS_N0):.2f} bits per name and log2 S0 = {k['log2_s0']:.2f} bits "
        f"of attributes per person (the paper: 47.6)."
    )
)

# %% [markdown]
# **bioD(N, K, C, D, L, T)** (Part 3.3 Def. 2.2) is the paper's parameterised version: K
# attributes, each value C chunks drawn from D per attribute, each chunk L tokens over T. Its
# vocabulary is tiny, so the embedding does not swamp a small model's parameter count, and we use
# it wherever the scale's models are small. The capacity ratio of a trained model F is
#
# $$R(F) = \frac{N \log_2\frac{N_0}{e^{p_1}} + N K \log_2\frac{D^C}{e^{p_2}}
#   + K D \log_2\frac{T^L}{D e^{p_3}}}{P},$$
#
# with $p_1$, $p_2$ the per-person summed cross-entropies (nats) on name and value tokens, $p_3$
# the loss on chunk tokens past their identifying prefix, and $P$ the parameters without unused
# embedding rows (Part 3.3 Thm. 3.2, Def. 4.3). A perfect model scores the data's own bits; a
# model that guesses uniformly scores zero; a model that knows no individual but has learned how
# often each name part and value occurs scores a little above zero (the *frequency floor*,
# computed below for each run where it matters).

# %%
sweep_data = make_data(plan, sweep_setting(plan, plan.sweeps[0], plan.shapes[0]), seed)
if plan.data == "biod":
    b = plan.biod
    display(
        pd.DataFrame(
            {
                "K (attributes)": b["n_attributes"],
                "C (chunks per value)": b["chunks"],
                "D (values per attribute)": b["diversity"],
                "L (tokens per chunk)": b["chunk_len"],
                "T (chunk vocabulary)": b["chunk_vocab"],
                "name pools": " x ".join(str(n) for n in b["name_pools"]),
                "tokens per biography": sweep_data.tokens_per_person,
                "vocabulary": sweep_data.vocab_size,
            },
            index=[f"this edition's {plan.data}"],
        ).T
    )
else:
    display(Markdown(f"This edition trains on bioS (vocabulary: {sweep_data.vocab_size} tokens)."))
row, eos = sweep_data.batch(0)["x"][0].tolist(), sweep_data.vocab.eos_id
first_bios, cur = [], []
for t in row[1:]:  # rows open with a separator
    if t == eos:
        first_bios.append(cur)
        cur = []
    elif t != sweep_data.vocab.pad_id:
        cur.append(t)
display(Markdown("The first biographies of the first training row:"))
for bio in first_bios[:4]:
    print(wrapped(sweep_data.vocab.decode(bio)))

# %% [markdown]
# ## Method
#
# Every model is the series' "GPT2" (GPT-2 with rotary embedding on a quarter of each head, no
# dropout, tied embeddings), trained from scratch with AdamW, warmup and cosine decay to a tenth
# of the peak rate (Part 3.3 App. A). Larger models need a smaller rate (the paper's rule); we
# scale the peak rate as 1/sqrt(width). An exposure is one appearance of a person's biography; a
# run lasts exactly as many steps as give every person the stated number of exposures. All runs
# go through the run cache, so re-executing this chapter loads them.
#
# A capacity can only be read off a model that its data **overfills**: we call a model
# overfilled when its data holds more than 2.3 bits per parameter (the paper's ceiling). A
# model whose data holds less stores at most its data, so its bits/param measure the data, not
# the model, and cannot reach or exceed the paper's numbers. So every size of the sweep gets
# its own N: the fewest people whose data holds more than a stated fill (in bits per parameter,
# above 2.3) of that model, and the code refuses a sweep point that would under-fill its model.
# Its batch grows with N so that every run lasts about the same number of optimizer steps, as
# in the paper's own tables (App. A: batch 24 at N = 10K to 192 at N = 100K, about 140K-175K
# steps). The learning rate was calibrated on three sizes at 1000 exposures (0.03, 0.05, 0.08 at
# width 16): 0.05 stored the most, 0.08 diverged for the width-16 model.

# %%
display(
    pd.DataFrame(
        [
            {
                "model": s.label(),
                "layers": s.layers,
                "heads": s.heads,
                "width": s.width,
                "peak lr": f"{plan.lr_for(s):.4f}",
            }
            for s in plan.shapes
        ]
    )
    .set_index("model")
    .rename_axis(None)
)
display(
    Markdown(
        f"Scale `{plan.scale}`, data {plan.data}. The sweep: "
        + "; ".join(
            f"{w.exposures} exposures, "
            + (f"N = {w.people}" if w.people else f"N filling each model {w.fill} bits/param")
            + f", about {w.steps:,} steps"
            for w in plan.sweeps
        )
        + f". Rows hold {plan.seq_len} tokens (the junk runs take {plan.rows} rows per step); "
        f"weight decay {plan.weight_decay}, warmup {plan.warmup_steps} steps, cosine decay to "
        "0.1 x peak."
    )
)

# %% [markdown]
# All the chapter's runs are listed here and trained first, side by side when the scale allows
# several worker processes (each run is deterministic, so this changes no number); the sections
# below load them from the run cache.

# %% tags=["remove-output"]
low_e = min(plan.exposures)
hi_e = max(plan.exposures)
mlp_shape = plan.shapes[plan.mlp_shape]
je = plan.junk_exposures
runs = chapter_settings(plan)
all_settings = list(dict.fromkeys(s for group in runs.values() for s in group))  # distinct
t0 = time.perf_counter()
prefetch(plan, all_settings, seed, workers=plan.workers)
print(
    f"{len(all_settings)} runs ready in {time.perf_counter() - t0:.0f} s "
    f"with {plan.workers} worker(s)"
)

# %% [markdown]
# ## Does every size store about 2 bits per parameter?
#
# We train each model of the sweep on its own N people at each exposure count and measure the
# bits it stores. The paper's law: at 1000 exposures every size reaches about 2 bits/param and
# none exceeds 2.3; at 100 exposures about 1. Only the overfilled models can test it.

# %%
sweep = {(s.shape, s.exposures): run_setting(plan, s, seed) for s in runs["sweep"]}
sweep_rows = pd.DataFrame([o.row(series=f"{e} exposures") for (_, e), o in sweep.items()])


def at(e: int) -> list:
    return [o for (_, x), o in sweep.items() if x == e]


def sweep_table(e: int) -> pd.DataFrame:
    """One exposure count of the sweep, one row per model."""
    return pd.DataFrame(
        {
            "N": [o.setting.people for o in at(e)],
            "rows": [o.data.config.batch_size for o in at(e)],
            "steps": [o.run.metrics[-1]["step"] for o in at(e)],
            "P": [o.params for o in at(e)],
            "bits": [round(o.bits) for o in at(e)],
            "bits/P": [f"{o.ratio:.2f}" for o in at(e)],
            "data bits/P": [f"{o.max_ratio:.2f}" + ("" if o.overfilled else " (not over)")
                            for o in at(e)],  # fmt: skip
        },
        index=[o.setting.shape.label() for o in at(e)],
    )


def sweep_line(e: int) -> str:
    over = [o for o in at(e) if o.overfilled]
    steps = sorted({o.run.metrics[-1]["step"] for o in at(e)})
    people = sorted({o.setting.people for o in at(e)})
    text = (
        f"**{e} exposures** (N = {people[0]:,}-{people[-1]:,} people, "
        f"{steps[0]:,}-{steps[-1]:,} steps): {len(over)} of {len(at(e))} sizes "
        f"overfilled (data > {OVERFILL} bits/param)"
    )
    if over:
        text += "; they store " + ", ".join(
            f"{o.ratio:.2f} ({o.setting.shape.label()})" for o in over
        )
        text += " bits/param"
    return text + "."


for e in plan.exposures:
    display(Markdown(sweep_line(e)))
    display(sweep_table(e))

# %% mystnb={"figure": {"caption": "Bits stored (filled) against parameters for the size sweep, one series per exposure count; the hollow marker above each model is the bits its data holds. Dashed lines: 2, 1 and 0.5 bits per parameter.", "name": "fig-part3-3-bits"}}
fig = bits_vs_params(
    sweep_rows,
    params="params",
    bits="bits",
    series="series",
    max_bits="max bits",
    title="Stored bits vs parameters",
).figure
_ = savefig(fig, "part3_3_bits_vs_params")

# %% [markdown]
# ## Does the gated MLP store less?
#
# LLaMA and Mistral differ from GPT-2 mainly by the gated (SwiGLU) MLP; the paper finds them
# about 1.3x worse at 100 exposures and traces it to that MLP. We swap only the MLP, keeping
# parameters nearly equal (hidden width 8d/3 instead of 4d), and repeat the pair on independent
# draws of people and initialisation, since at this size single runs at 100 exposures vary a lot.
# The ratio is judged with its spread over the replica pairs: a spread that holds 1 is no effect.

# %%
mlp_runs = [run_setting(plan, s, seed) for s in runs["mlp"]]
gelu_runs = [o for o in mlp_runs if o.setting.mlp == "gelu"]
gated_runs = [o for o in mlp_runs if o.setting.mlp == "gated"]
pair_ratios = [times(a.bits, b.bits) for a, b in zip(gelu_runs, gated_runs, strict=True)]
mlp_ratio = times(sum(o.bits for o in gelu_runs), sum(o.bits for o in gated_runs))
gelu_share = sum(o.share for o in gelu_runs) / len(gelu_runs)
display(
    pd.DataFrame(
        {
            "GELU bits": [round(a.bits) for a in gelu_runs],
            "gated bits": [round(b.bits) for b in gated_runs],
            "GELU / gated": [fx(r) for r in pair_ratios],
        },
        index=[f"replica {a.setting.replica}" for a in gelu_runs],
    )
)
mlp_params = sorted({o.params for o in mlp_runs})
display(
    Markdown(
        f"Model {mlp_shape.label()} at {low_e} exposures, "
        f"P = {' / '.join(str(p) for p in mlp_params)} parameters "
        f"({'equal for both MLPs' if len(mlp_params) == 1 else 'GELU / gated'}); its data holds "
        f"{gelu_runs[0].max_ratio:.2f} bits/param. Pooled over the {len(pair_ratios)} pairs the "
        f"GELU MLP stores **{fx(mlp_ratio)}** the bits of the gated one (per pair: "
        f"{', '.join(fx(r) for r in pair_ratios)}); the GELU models store "
        f"{gelu_share:.1%} of their data on average."
    )
)

# %% mystnb={"figure": {"caption": "Bits stored by the GELU and the gated MLP on the same people and seed, one pair per replica; the last pair is the mean over replicas, whose ratio is the pooled one.", "name": "fig-part3-3-mlp"}}
mean = [sum(o.bits for o in g) / len(g) for g in (gelu_runs, gated_runs)]
ax = value_bars(
    [f"replica {o.setting.replica}" for o in gelu_runs] + ["mean (pooled)"],
    {
        "GELU MLP": [o.bits for o in gelu_runs] + [mean[0]],
        "gated MLP": [o.bits for o in gated_runs] + [mean[1]],
    },
    annotate="ratio",
    axis_label="bits stored",
    summary_last=True,
    title=f"GELU vs gated MLP: {mlp_shape.label()}, {low_e} exposures",
)
_ = savefig(ax.figure, "part3_3_mlp_pairs")

# %% [markdown]
# ## Does int8 keep the stored bits, and int4 lose them?
#
# The paper quantizes trained models with GPTQ: int8 loses nothing even at 2 bits/param, int4
# falls to about 0.7 bits/param. We quantize the linear layers of the sweep model that stores the
# most bits per parameter (GPTQ, per-channel, calibrated on its training batches; embeddings
# stay in float as in auto_gptq) and measure again. The parameter count P is unchanged: the
# question is how many bits the same weights still hold.

# %%
PAPER_QUANT = {"float32": 2.0, "int8 (GPTQ)": 2.0, "int4 (GPTQ)": 0.7}  # the paper's bits/param
best = max(sweep.values(), key=lambda o: o.ratio)
quant_rows = [{"weights": "float32", "bits": best.bits, "bits/param": best.ratio}]
for qbits in (8, 4):
    stored = quantized_bits(best, qbits)
    quant_rows.append(
        {"weights": f"int{qbits} (GPTQ)", "bits": stored, "bits/param": stored / best.params}
    )
quant = pd.DataFrame(quant_rows)
display(
    quant.assign(
        bits=quant["bits"].round(0).astype(int),
        **{
            "bits/param": quant["bits/param"].map("{:.3f}".format),
            "paper's bits/param": quant["weights"].map(PAPER_QUANT),
        },
    )
    .set_index("weights")
    .rename_axis(None)
)
int8_bits, int4_bits = quant_rows[1]["bits"], quant_rows[2]["bits"]
int8_lost = 1 - int8_bits / best.bits if best.bits > 0 else float("nan")
int4_loss = times(best.bits, int4_bits)
display(
    Markdown(
        f"Model {best.setting.shape.label()} at {best.setting.exposures} exposures "
        f"(P = {best.params}; its data holds {best.max_ratio:.2f} bits/param): int8 loses "
        f"{int8_lost:.1%} of the bits; int4 stores {fx(int4_loss)} fewer."
    )
)

# %% mystnb={"figure": {"caption": "Bits per parameter of the same model with float, int8 and int4 weights; black ticks: the paper's values for a GPT-2 that stores 2 bits/param; dashed line: the bits per parameter its data holds.", "name": "fig-part3-3-quant"}}
ax = value_bars(
    list(quant["weights"]),
    list(quant["bits/param"]),
    marks=[PAPER_QUANT[w] for w in quant["weights"]],
    mark_label="the paper's Result 8",
    lines={"bits/param its data holds": best.max_ratio},
    axis_label="bits per parameter",
    fmt="{:.2f}",
    title=f"Quantizing {best.setting.shape.label()} ({best.setting.exposures} exposures)",
)
_ = savefig(ax.figure, "part3_3_quantization")

# %% [markdown]
# ## Does junk data cost capacity, and does a domain token win it back?
#
# When 7/8 of the training tokens are junk (biographies of ever-new random people, each seen
# once) the paper finds the useful 1/8 learned far worse: about 20x less capacity at 100
# exposures. Prefixing every useful biography with a special domain token (like a website name)
# cuts the loss to about 2x. We keep the exposures of the useful people and add the junk on top.
# The domain token makes each useful biography one token longer, so all three runs pack as many
# biographies per row as the domain-token run fits: the junk and domain-token runs then train the
# same number of optimizer steps. A stored amount at or below the frequency floor of the useful
# people is no evidence of memorisation, and a ratio over it says nothing.

# %%
clean, junk, domain = (run_setting(plan, s, seed) for s in runs["junk"])
floor = frequency_bits(clean.data)
junk_loss = times(clean.bits, junk.bits)
domain_loss = times(clean.bits, domain.bits)
junk_loss_bound = times(clean.bits, max(junk.bits, floor))  # at least this, when junk <= floor
junk_names = ["clean", f"{junk.setting.junk_fraction} junk", "junk + domain token"]
display(
    pd.DataFrame(
        {
            "run": junk_names,
            "steps": [o.data.steps for o in (clean, junk, domain)],
            "bios per row": [o.data.bios_per_row for o in (clean, junk, domain)],
            "bits": [round(o.bits) for o in (clean, junk, domain)],
            "bits/param": [f"{o.ratio:.3f}" for o in (clean, junk, domain)],
            "clean / run": ["", fx(junk_loss), fx(domain_loss)],
        }
    )
    .set_index("run")
    .rename_axis(None)
)
display(
    Markdown(
        f"Model {clean.setting.shape.label()}, N = {clean.setting.people} useful people at "
        f"{je} exposures. The clean model stores {clean.share:.1%} of its data's "
        f"{clean.max_bits:.0f} bits; the frequency floor of the useful people is {floor:.0f} bits. "
        f"Capacity lost to junk: {fx(junk_loss)}"
        + (" (the junk run stores no more than the floor)" if junk.bits <= floor else "")
        + f"; with the domain token: {fx(domain_loss)}."
    )
)

# %% mystnb={"figure": {"caption": "Bits stored about the same useful people without junk, with 7/8 junk, and with junk plus a domain token; the two junk runs train the same number of steps. Black ticks: the clean run's bits divided by the paper's losses (20x and 2x); dashed line: the frequency floor.", "name": "fig-part3-3-junk"}}
ax = value_bars(
    [
        f"{name}\n{o.data.steps} steps"
        for name, o in zip(junk_names, (clean, junk, domain), strict=True)
    ],
    [clean.bits, junk.bits, domain.bits],
    marks=[None, clean.bits / 20, clean.bits / 2],
    mark_label="clean / the paper's loss (20x, 2x)",
    lines={"frequency floor": floor},
    axis_label="bits stored about the useful people",
    fmt="{:.0f}",
    title=f"Junk data: {clean.setting.shape.label()}, {je} exposures",
)
_ = savefig(ax.figure, "part3_3_junk")

# %% [markdown]
# ## Where this edition departs from the paper
#
# - **Sizes.** At `smoke` and `cpu` scale the data is bioD with small pools (three name parts of
#   20 tokens, K = 4 attributes of one token out of D = 32) and the models have thousands of
#   parameters instead of millions, so that a sweep trains on two CPU cores in minutes. The
#   paper's runs last at least 50K optimizer steps; ours last about 4,000 (the junk runs more).
#   The sweep's models are one layer deep; the paper's law spans depths too. The `gpu` and
#   `paper` presets use bioS and GPT2-l-h shapes from the paper's appendix, with N chosen per
#   size by the same overfilling rule.
# - **Packing.** Rows hold a fixed number of whole biographies (padded), not a random
#   concatenation cut into 512-token windows; this keeps every step's data a pure function of
#   the step (exact resume) and every exposure count exact. The three runs of the junk
#   experiment share one packing (that of the domain-token run).
# - **Quantization.** Our own GPTQ on the linear layers (per output channel, asymmetric), not
#   auto_gptq; embeddings and the tied output layer stay in float, as auto_gptq leaves them.
# - **Junk.** Junk biographies are drawn fresh every time (the paper's bioS(N') with N' = 100M
#   is, at its run lengths, the same thing: almost no junk person repeats).
#
# ## Claims
#
# The paper's numbers are quoted from Part 3.3 (results as numbered there; all but the abstract's
# 2 bits/param and int8 claim via a secondary summary of the paper); ours come from the runs
# above. Each row names its rule and its preconditions: a claim that needs overfilled models, or
# a measurable amount of stored bits, that this scale does not give is marked `not at this
# scale`; the `gpu` and `paper` presets follow the paper's appendix.

# %% tags=["remove-cell"]
elapsed = time.perf_counter() - chapter_start
print(f"chapter wall time at scale {scale}: {elapsed:.0f} s")

# %% tags=["nbval-check-output"]
SHARE = 0.1  # a "meaningful share": the model stores at least a tenth of its data's bits
SECONDARY = " (via a secondary summary of the paper)"


def worst_overfilled(e: int) -> tuple:
    """The worst overfilled size at `e` exposures (the worst of all sizes when none is)."""
    over = [o for o in at(e) if o.overfilled]
    return min(over or at(e), key=lambda o: o.ratio), len(over), len(at(e))


def overfill_note(n_over: int, n_all: int) -> str:
    if n_over:
        return f"worst of {n_over} overfilled sizes (of {n_all})"
    return f"no size of {n_all} overfilled: worst of all shown"


ledger = Ledger("part3_3_capacity", scale)
w_hi, n_over_hi, n_hi = worst_overfilled(hi_e)
# "about 2 for every size": 90% of the paper's value reproduced, half of it partly, on the
# worst overfilled size; a law across sizes needs at least two sizes that the data overfills
ledger.score(
    f"{hi_e} exposures: about 2 bits/param for every size",
    "2",
    "Part 3.3, abstract and Results 1-3",
    AtLeast(1.8, 1.0),
    Num(w_hi.ratio),
    requires=[
        Requires(
            f"at least two sizes overfilled at {hi_e} exposures (data > {OVERFILL} bits/param)",
            n_over_hi >= 2,
        )
    ],
    note=overfill_note(n_over_hi, n_hi),
)
top_hi = max(at(hi_e), key=lambda o: o.ratio)
# the ceiling: at most 2.3 reproduced, up to 10% above it partly; only a model whose data holds
# more than 2.3 bits/param could exceed it, so one must be overfilled at the saturating 1000
# exposures (at 100 exposures the paper's models store about 1, far from any ceiling)
ledger.score(
    f"{hi_e} exposures: no model exceeds 2.3 bits/param",
    "2.3",
    "Part 3.3, Result 1" + SECONDARY,
    AtMost(2.3, 2.5),
    Num(top_hi.ratio),
    requires=[
        Requires(
            f"a model overfilled at {hi_e} exposures, so that it could exceed 2.3",
            n_over_hi >= 1,
        )
    ],
    note=f"highest of the {hi_e}-exposure sweep, {top_hi.setting.shape.label()}",
)
w_lo, n_over_lo, n_lo = worst_overfilled(low_e)
# "about 1": 90% of the paper's value reproduced, half of it partly, as for 2 bits/param
ledger.score(
    f"{low_e} exposures: about 1 bit/param for every size",
    "1",
    "Part 3.3, Result 4" + SECONDARY,
    AtLeast(0.9, 0.5),
    Num(w_lo.ratio),
    requires=[
        Requires(
            f"at least two sizes overfilled at {low_e} exposures (data > {OVERFILL} bits/param)",
            n_over_lo >= 2,
        )
    ],
    note=overfill_note(n_over_lo, n_lo),
)
finite = all(math.isfinite(r) for r in pair_ratios)
mlp_num = (
    Num(
        mlp_ratio,
        min(pair_ratios),
        max(pair_ratios),
        spread=f"min-max over {len(pair_ratios)} replica pairs",
    )
    if finite and len(pair_ratios) > 1
    else Num(mlp_ratio if finite else float("nan"))
)
# the paper's 1.3x within a factor of 1.2 either way; the spread over replica pairs must clear 1;
# a capacity comparison needs overfilled models that store a meaningful share of their data
ledger.score(
    f"GELU MLP stores about 1.3x the bits of a gated MLP at {low_e} exposures",
    "1.3",
    "Part 3.3, Results 6-7" + SECONDARY,
    WithinFactor(1.1, 1.6),
    mlp_num,
    requires=[
        Requires(
            f"the compared models are overfilled (data > {OVERFILL} bits/param)",
            all(o.overfilled for o in mlp_runs),
        ),
        Requires(
            f"the GELU models store at least {SHARE:.0%} of their data ({gelu_share:.1%})",
            gelu_share >= SHARE,
        ),
    ],
    note=f"pooled over {len(pair_ratios)} pairs: {[round(r, 2) for r in pair_ratios]}",
)
loaded = Requires(
    f"the quantized model stores at least 1 bit/param, half the paper's 2 ({best.ratio:.2f})",
    best.ratio >= 1.0,
)
# "no loss": at most 5% of the bits lost reproduced, at most 20% partly, more contradicted
ledger.score(
    "int8 quantization keeps the stored bits",
    "0 lost",
    "Part 3.3, abstract and Result 8",
    AtMost(0.05, 0.2),
    Num(int8_lost),
    requires=[loaded],
    note="fraction of the float model's bits lost",
)
# the paper's loss is 2 / 0.7 = 2.9x: its "more than 2x" up to twice 2.9x reproduced; int4's
# loss counts only where int8 (the positive control of the quantizer) keeps the bits
ledger.score(
    "int4 quantization loses more than half the bits",
    "2.9x (2 -> 0.7 bits/param)",
    "Part 3.3, Result 8" + SECONDARY,
    WithinFactor(2.0, 5.7),
    Num(int4_loss),
    requires=[loaded, Requires("int8 loses at most 5% (the quantizer works)", int8_lost <= 0.05)],
    note="float bits / int4 bits",
)
clean_ok = Requires(
    f"the clean model stores at least {SHARE:.0%} of its data ({clean.share:.1%})",
    clean.share >= SHARE,
)
# the paper's 20x within a factor of 2 either way (its own junk losses fall from 20x to 3x
# between 100 and 300 exposures, so the factor is steep and a factor-2 tolerance is the finest a
# single small run can claim); a ratio over a junk run at the frequency floor says nothing
ledger.score(
    f"7/8 junk data: about 20x fewer bits at {je} exposures",
    "20",
    "Part 3.3, Result 10" + SECONDARY,
    WithinFactor(10, 40),
    ratio(Num(clean.bits), Num(junk.bits)),
    requires=[
        clean_ok,
        Requires(
            f"the junk run stores more than the frequency floor ({junk.bits:.0f} vs "
            f"{floor:.0f} bits)",
            junk.bits > floor,
        ),
    ],
    note="clean bits / junk bits",
)
# the paper's 2x within a factor of 2 either way; a cut needs a junk loss to cut (more than the
# band's 4x, bounded below by the floor when the junk run stores nothing measurable) and a
# domain-token run above the floor
ledger.score(
    "a domain token cuts the junk loss to about 2x",
    "2",
    "Part 3.3, Result 12" + SECONDARY,
    WithinFactor(1.0, 4.0),
    ratio(Num(clean.bits), Num(domain.bits)),
    requires=[
        clean_ok,
        Requires(
            f"junk costs more than 4x (at least {junk_loss_bound:.0f}x)",
            junk_loss_bound > 4.0,
        ),
        Requires(
            f"the domain-token run stores more than the frequency floor ({domain.bits:.0f} vs "
            f"{floor:.0f} bits)",
            domain.bits > floor,
        ),
    ],
    note="clean bits / domain-token bits; equal steps for junk and domain-token runs",
)
ledger

# %% [markdown]
# ## What held at this scale

# %%
close_chapter(ledger)
