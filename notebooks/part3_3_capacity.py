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

# %% tags=["parameters"]
scale = "cpu"
seed = 0
people = None  # override N, the people of the size sweep
shapes = None  # override the sweep: a list of [layers, heads] (GPT2-l-h) or [layers, heads, width]

# %%
import math
import time

import pandas as pd
import torch
from IPython.display import display

from physlm.claims import NOT_HERE, Ledger, factor_verdict, threshold_verdict
from physlm.data.bios import BioSStream
from physlm.experiments.part3_3 import (
    Setting,
    chapter_settings,
    make_data,
    prefetch,
    quantized_bits,
    run_setting,
)
from physlm.measure.capacity import BIOS_N0
from physlm.plots import bits_vs_params, savefig, use_style
from physlm.scales import part3_3


def times(a: float, b: float) -> float:
    """a / b, or NaN when either stores no bits (a ratio of nothing says nothing)."""
    return a / b if a > 0 and b > 0 else float("nan")


if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
plan = part3_3(scale, people=people, shapes=shapes)
torch.set_num_threads(plan.threads or torch.get_num_threads())
use_style()
chapter_start = time.perf_counter()
print(
    f"scale {plan.scale}: data {plan.data}, (exposures, N) {list(plan.sweeps)}, "
    f"models {[s.label() for s in plan.shapes]}"
)

# %% [markdown]
# ## Data
#
# **bioS(N)** (Part 3.3 Sec. 2; the pools of Part 3.1 App. A.1). Each of N people has a unique
# full name from 400 first x 400 middle x 1000 last names, a birth date (200 years x 12 months
# x 28 days), a birth city (200), a university (300), a major (100), an employer (263, whose
# headquarters is the work city) and a pronoun. A biography states the six facts in six
# sentences; every exposure draws a fresh template for each sentence (about 50 per attribute)
# and a fresh sentence order. Our pools and templates are generated and written here. One person,
# rendered twice:

# %%
bios = BioSStream(n_people=1000, exposures=1, batch_size=1, seq_len=512, seed=seed)
facts = bios.facts(0)
display(pd.DataFrame([facts]).T.rename(columns={0: "person 0"}))
for step in range(2):
    row = bios.batch(step)["x"][0]
    text = bios.vocab.decode([t for t in row.tolist() if t != bios.vocab.pad_id])
    print(text[:400], "...\n" if len(text) > 400 else "\n")

# %% [markdown]
# The information in the data is exact. With N0 = 400 x 400 x 1000 possible names and S0 the
# number of possible attribute tuples (Part 3.3 Sec. 4), one person carries log2 S0 bits of
# attributes, and the names add log2(N0/N) bits each:

# %%
k = bios.knowledge()
print(
    f"log2 N0 = {math.log2(BIOS_N0):.2f} bits, log2 S0 = {k['log2_s0']:.2f} bits per person "
    f"(the paper: 47.6)"
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
# model that guesses scores about zero.

# %%
sweep_data = make_data(plan, Setting(plan.shapes[0], plan.sweeps[0][1], plan.sweeps[0][0]), seed)
kd = sweep_data.knowledge()
print(f"{plan.data} with {plan.biod if plan.data == 'biod' else 'bioS pools'}")
print(
    f"tokens per biography: {getattr(sweep_data, 'tokens_per_person', 'varies')}, "
    f"vocabulary: {sweep_data.vocab_size} tokens"
)
example = sweep_data.batch(0)["x"][0]
print(sweep_data.vocab.decode([t for t in example.tolist() if t != sweep_data.vocab.pad_id])[:300])

# %% [markdown]
# ## Method
#
# Every model is the series' "GPT2" (GPT-2 with rotary embedding on a quarter of each head, no
# dropout, tied embeddings), trained from scratch with AdamW, warmup and cosine decay to a tenth
# of the peak rate (Part 3.3 App. A). Larger models need a smaller rate (the paper's rule); we
# scale the peak rate as 1/sqrt(width). An exposure is one appearance of a person's biography; a
# run lasts exactly as many steps as give every person the stated number of exposures. All runs
# go through the run cache, so re-executing this chapter loads them.

# %%
print(
    pd.DataFrame(
        [
            {
                "model": s.label(),
                "layers": s.layers,
                "heads": s.heads,
                "width": s.width,
                "peak lr": round(plan.lr_for(s), 5),
            }
            for s in plan.shapes
        ]
    ).to_string(index=False)
)
print(
    f"rows per step {plan.rows} x {plan.seq_len} tokens, weight decay {plan.weight_decay}, "
    f"warmup {plan.warmup_steps} steps, cosine decay to 0.1 x peak"
)

# %% [markdown]
# All the chapter's runs are listed here and trained first, side by side when the scale allows
# several worker processes (each run is deterministic, so this changes no number); the sections
# below load them from the run cache.

# %%
low_e = min(plan.exposures)
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
# ## Result 1: bits per parameter across model sizes
#
# We train each model of the sweep on the same N people at each exposure count and measure the
# bits it stores. The paper's law: at 1000 exposures every size reaches about 2 bits/param and
# none exceeds 2.3; at 100 exposures about 1.

# %%
sweep = {(s.shape, s.exposures): run_setting(plan, s, seed) for s in runs["sweep"]}
sweep_rows = pd.DataFrame([o.row(series=f"{e} exposures") for (_, e), o in sweep.items()])
print(
    sweep_rows[
        [
            "model",
            "exposures",
            "N",
            "params",
            "bits",
            "max bits",
            "bits/param",
            "max bits/param",
            "steps",
        ]
    ]
    .round(3)
    .to_string(index=False)
)

# %% mystnb={"figure": {"caption": "Bits stored against parameters for the size sweep, with the 2, 1 and 0.5 bits/param reference lines.", "name": "fig-part3-3-bits"}}
fig = bits_vs_params(
    sweep_rows,
    params="params",
    bits="bits",
    series="series",
    logy=False,
    title="Stored bits vs parameters",
).figure
_ = savefig(fig, "part3_3_bits_vs_params")

# %% [markdown]
# ## Result 2: the gated MLP stores less at 100 exposures
#
# LLaMA and Mistral differ from GPT-2 mainly by the gated (SwiGLU) MLP; the paper finds them
# about 1.3x worse at 100 exposures and traces it to that MLP. We swap only the MLP, keeping
# parameters nearly equal (hidden width 8d/3 instead of 4d), and repeat the pair on independent
# draws of people and initialisation, since at this size single runs at 100 exposures vary a lot.

# %%
mlp_runs = [run_setting(plan, s, seed) for s in runs["mlp"]]
mlp_rows = pd.DataFrame([o.row(replica=o.setting.replica) for o in mlp_runs])
print(
    mlp_rows[["model", "mlp", "replica", "params", "bits", "bits/param"]]
    .round(3)
    .to_string(index=False)
)
gelu_bits = [o.bits for o in mlp_runs if o.setting.mlp == "gelu"]
gated_bits = [o.bits for o in mlp_runs if o.setting.mlp == "gated"]
pair_ratios = [times(a, b) for a, b in zip(gelu_bits, gated_bits, strict=True)]
mlp_ratio = times(sum(gelu_bits), sum(gated_bits))
mlp_level = max(o.ratio for o in mlp_runs)
print(
    f"GELU / gated stored bits, per replica: {[round(r, 2) for r in pair_ratios]}; "
    f"pooled: {mlp_ratio:.2f}"
)

# %% [markdown]
# ## Result 3: quantization
#
# The paper quantizes trained models with GPTQ: int8 loses nothing even at 2 bits/param, int4
# falls to about 0.7 bits/param. We quantize the linear layers of the sweep model that stores the
# most bits (GPTQ, per-channel, calibrated on its training batches; embeddings stay in float as
# in auto_gptq) and measure again. The parameter count P is unchanged: the question is how many
# bits the same weights still hold.

# %%
best = max(sweep.values(), key=lambda o: o.ratio)
quant_rows = [{"weights": "float32", "bits": best.bits, "bits/param": best.ratio}]
for qbits in (8, 4):
    stored = quantized_bits(best, qbits)
    quant_rows.append(
        {"weights": f"int{qbits} (GPTQ)", "bits": stored, "bits/param": stored / best.params}
    )
quant = pd.DataFrame(quant_rows)
print(f"model {best.setting.shape.label()} at {best.setting.exposures} exposures")
print(quant.round(3).to_string(index=False))
int8_kept = times(quant_rows[1]["bits"], best.bits)
int4_kept = times(quant_rows[2]["bits"], best.bits)

# %% [markdown]
# ## Result 4: junk data, and a domain token
#
# When 7/8 of the training tokens are junk (biographies of ever-new random people, each seen
# once) the useful 1/8 is learned far worse: about 20x less capacity at 100 exposures in the
# paper. Prefixing every useful biography with a special domain token (like a website name)
# cuts the loss to about 2x. We keep 100 exposures of the useful people and add the junk on top
# (so the junk runs take 8x the steps).

# %%
clean, junk, domain = (run_setting(plan, s, seed) for s in runs["junk"])
junk_rows = pd.DataFrame([clean.row(), junk.row(), domain.row()])
print(
    junk_rows[["model", "N", "junk", "domain token", "steps", "bits", "bits/param"]]
    .round(3)
    .to_string(index=False)
)
junk_loss = times(clean.bits, junk.bits)
domain_loss = times(clean.bits, domain.bits)
print(f"capacity lost to junk: {junk_loss:.1f}x; with the domain token: {domain_loss:.1f}x")

# %% [markdown]
# ## Where this edition departs from the paper
#
# - **Sizes.** At `smoke` and `cpu` scale the data is bioD with small pools (three name parts of
#   20 tokens, K = 4 attributes of one token out of D = 32) and the models have thousands of
#   parameters instead of millions, so that a sweep trains on two CPU cores in minutes. The
#   paper's runs last at least 50K optimizer steps; ours last a few thousand to a few tens of
#   thousands. The `gpu` and `paper` presets use bioS and GPT2-l-h shapes from the paper's
#   appendix.
# - **Packing.** Rows hold a fixed number of whole biographies (padded), not a random
#   concatenation cut into 512-token windows; this keeps every step's data a pure function of
#   the step (exact resume) and every exposure count exact.
# - **Quantization.** Our own GPTQ on the linear layers (per output channel, asymmetric), not
#   auto_gptq; embeddings and the tied output layer stay in float, as auto_gptq leaves them.
# - **Junk.** Junk biographies are drawn fresh every time (the paper's bioS(N') with N' = 100M
#   is, at its run lengths, the same thing: almost no junk person repeats).
#
# ## Claims
#
# The paper's numbers are quoted from Part 3.3 (results as numbered there); ours come from the
# runs above. A claim that needs more exposures, steps or overfilling than this scale affords is
# marked `not at this scale`; the `gpu` and `paper` presets follow the paper's appendix.

# %%
elapsed = time.perf_counter() - chapter_start
print(f"chapter wall time at scale {scale}: {elapsed:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
hi_e = max(plan.exposures)
peak_hi = max(o.ratio for (_, e), o in sweep.items() if e == hi_e)
peak_lo = max(o.ratio for (_, e), o in sweep.items() if e == low_e)
overall_peak = max(o.ratio for o in sweep.values())
# A factor between two runs is only evidence when the runs store a real share of what the
# paper's models store at that exposure; below that, run-to-run variance decides it.
stores = {"mlp": mlp_level >= 0.4, "quant": best.ratio >= 0.2, "junk": clean.ratio >= 0.1}
ledger = Ledger("part3_3_capacity", scale)
ledger.add(
    f"{hi_e} exposures: about 2 bits/param for every size (R1-R3)",
    "2",
    "Part 3.3, R1",
    peak_hi,
    threshold_verdict(peak_hi, 1.8, 1.0),
    "best model of the sweep"
    + ("" if scale in ("gpu", "paper") else "; `gpu` scale runs the paper's sizes"),
)
ledger.add(
    "no model exceeds 2.3 bits/param (R1)",
    "2.3",
    "Part 3.3, R1",
    overall_peak,
    "reproduced" if overall_peak <= 2.3 else "contradicted",
)
ledger.add(
    f"{low_e} exposures: about 1 bit/param (R4)",
    "1",
    "Part 3.3, R4",
    peak_lo,
    threshold_verdict(peak_lo, 0.85, 0.4),
    "best model of the sweep"
    + ("" if scale in ("gpu", "paper") else "; `gpu` scale runs the paper's sizes"),
)
ledger.add(
    f"GELU MLP stores about 1.3x the bits of a gated MLP at {low_e} exposures (R7)",
    "1.3",
    "Part 3.3, R7",
    mlp_ratio,
    factor_verdict(mlp_ratio, 1.1, 1.6, stores["mlp"]),
    f"pooled over {len(pair_ratios)} pairs"
    + ("" if stores["mlp"] else f"; models at {mlp_level:.1f} bits/param, too early to compare"),
)
ledger.add(
    "int8 quantization keeps the stored bits (R8)",
    "1 (no loss)",
    "Part 3.3, R8",
    int8_kept,
    threshold_verdict(int8_kept, 0.95, 0.8, stores["quant"]),
    "fraction of bits kept",
)
ledger.add(
    "int4 quantization loses more than half the bits (R8)",
    "0.35 (0.7 of 2 bits/param)",
    "Part 3.3, R8",
    int4_kept,
    factor_verdict(times(best.bits, quant_rows[2]["bits"]), 2.0, 10.0, stores["quant"]),
    "fraction of bits kept",
)
ledger.add(
    f"7/8 junk data: about 20x fewer bits at {je} exposures (R10)",
    "20",
    "Part 3.3, R10",
    junk_loss,
    factor_verdict(junk_loss, 5, 80, stores["junk"]),
)
ledger.add(
    "a domain token cuts the junk loss to about 2x (R12)",
    "2",
    "Part 3.3, R12",
    domain_loss,
    NOT_HERE
    if not stores["junk"] or math.isnan(domain_loss)
    else "reproduced"
    if domain_loss <= min(4.0, junk_loss / 2)
    else "partly"
    if domain_loss < junk_loss
    else "contradicted",
)
ledger
