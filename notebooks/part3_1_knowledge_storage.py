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
# # Part 3.1: Knowledge storage and extraction
#
# **Question.** A model that has memorised a biography can recite it. Can it also *answer a
# question* about that person when it has only been taught other people's questions? Part 3.1
# of the series {cite}`allenzhu2023part31` finds that this depends on how the knowledge was
# stored, and that the pretraining data decides the storage. If every biography is written once,
# in one way, the model keeps each fact tied to the words just before it, and fine-tuning on
# questions cannot teach it to extract the facts of people whose questions it never saw.
# Writing the biographies several ways (*knowledge augmentation*) makes the model store each
# fact with the person's name, and then extraction generalises. In the paper, linear probes
# show where the facts sit, and augmenting only some people ("celebrities") already helps the
# others.
#
# This chapter runs those experiments at the scale below and closes with a ledger of the
# paper's claims next to ours.

# %% [markdown]
# ## At a glance
#
# ```{glue} at_a_glance
# ```

# %% tags=["parameters"]
scale = "cpu"
seed = 0

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from matplotlib.colors import to_rgba
from matplotlib.ticker import PercentFormatter

from physlm.claims import (
    Z95,
    Acc,
    AtLeast,
    AtMost,
    EffectOverControl,
    Ledger,
    Num,
    Ordering,
    Requires,
    close_chapter,
    compare,
    percent,
    wilson,
)
from physlm.data.bios import ATTRIBUTES
from physlm.data.bios_qa import QA_ATTRIBUTES, p31_items, qa_vocab
from physlm.experiments import part3_1 as p31
from physlm.measure.knowledge_probes import first_token_labels, fit_token_probe
from physlm.measure.probes import train_test_split
from physlm.model import GPT, count_params
from physlm.plots import accuracy_bars, probe_heatmaps, savefig, use_style

if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
plan = p31.scale_for(scale, seed=seed)
torch.set_num_threads(1)
use_style()
chapter_start = time.perf_counter()

# %% [markdown]
# ## Data
#
# **bioS** (Part 3.1 Sec. 2, App. A.1). Each person has a unique three-part name and six
# independent attributes: birth date, birth city, university, major, employer and the
# employer's city. A biography states them in six sentences, each from about fifty templates;
# only the first sentence names the person, the others use a pronoun. The variants differ in
# how many ways one person's biography is written:
#
# - `single`: one biography per person, attributes in a fixed order;
# - `multi5`: five biographies with the templates drawn afresh;
# - `single+permuteP`: the one biography's six sentences in P orders;
# - `multi5+permute`: five biographies, each in its own sentence order.
#
# The QA set asks six questions per person ("What is the birth city of X? Answer: ..."). Half
# of the people, P_train, have their questions trained; the other half, P_test, are the test:
# the model has read their biographies but never a question about them. Answers are generated
# greedily and count only if every token is right.

# %% tags=["show-input"]
bios_single = p31.bios_stream(plan, "single")
bios_aug = p31.bios_stream(plan, "multi5+permute")
vocab = bios_single.vocab


def show(text: str) -> None:
    print(textwrap.indent(textwrap.fill(text, 70), "  "))


print("single, person 0:")
show(vocab.decode(bios_single.render_person(0)[0]))
print("multi5+permute, person 0, two of its five biographies:")
for bio in p31.renderings(bios_aug, 0, 2):
    show(vocab.decode(bio))
print("three of person 0's six questions:")
for item in p31_items(bios_single, [0])[:3]:
    show(item.text)

# %%
p_train, p_test = p31.halves(plan)
model_cfg = plan.model_config()
n_params = count_params(GPT(model_cfg))
display(
    Markdown(
        f"At scale `{plan.scale}`:\n\n"
        f"- **people:** {plan.people} per population, {len(p_train)} in P_train and "
        f"{len(p_test)} in P_test; a vocabulary of {len(qa_vocab()):,} words;\n"
        f"- **model:** {model_cfg.n_layer} layer{'s' * (model_cfg.n_layer != 1)}, "
        f"{model_cfg.n_head} head{'s' * (model_cfg.n_head != 1)}, width "
        f"{model_cfg.n_embd}, rotary on a quarter of each head, {n_params:,} parameters;\n"
        f"- **pretraining:** {plan.exposures} passes over every person's biographies, "
        f"{bios_single.steps:,} steps of {plan.rows} rows x {plan.bios_per_row} biographies."
    )
)

# %% [markdown]
# ## Runs
#
# Every model is the series' GPT-2 with rotary embedding (Part 3.1 Sec. 2.1), trained from
# scratch with AdamW, warmup and cosine decay to a tenth of the peak rate. The jobs:
#
# - **pretrain + fine-tune**, per variant: pretrain on the biographies of all N people, then
#   fine-tune on the P_train questions with LoRA on the embedding and on the attention's query
#   and value maps (Sec. 4; everything else frozen), and, for `single`, also fine-tune every
#   weight. The pretrained model is also probed (below).
# - **mixed training** (Sec. 3): biographies of everyone and the P_train questions in one run
#   from scratch, each row all biography or all questions.
# - **celebrities** (Sec. 7): augmented celebrities pretrained beside an unaugmented minority.
#
# Jobs run in worker processes through the run cache; a re-execution loads them. Every QA
# accuracy below is over the P_test people's questions, six per person, and a difference
# between two of them counts only outside the noise of that many questions.

# %% tags=["remove-output", "nbval-ignore-output"]
t0 = time.perf_counter()
results = p31.chapter_results(plan)
print(f"{len(results)} jobs ready in {time.perf_counter() - t0:.0f} s")


# %%
def pct(x: float) -> float:
    return round(100 * x, 1)


def label(attribute: str) -> str:
    return attribute.replace("_", " ")


def tick(variant: str) -> str:
    """A variant's name as a two-line tick label (single\n+permute5)."""
    return variant.replace("+", "\n+", 1)


def qa_pair(scores: dict[str, float], attribute: str, people: int) -> tuple[int, int]:
    """(right answers, questions) behind one QA accuracy: one question per person and
    attribute, six per person in the mean."""
    n = people * (len(QA_ATTRIBUTES) if attribute == "mean" else 1)
    return round(scores[attribute] * n), n


def interval_text(acc: Acc) -> str:
    lo, hi = acc.interval
    return f"{pct(acc.value)}% (95% interval {pct(lo)}-{pct(hi)}%, n = {acc.n})"


qa_n = len(QA_ATTRIBUTES) * len(p_test)  # questions scored per P_test accuracy
variant_res = {v: results[f"variant:{v}"] for v in plan.variants}
memorised = {v: r["bio_accuracy"] for v, r in variant_res.items()}
display(pd.DataFrame({"value tokens right (%)": {v: pct(a) for v, a in memorised.items()}}))

# %% [markdown]
# Pretraining has to memorise the biographies before extraction can be asked of it (the paper
# reaches over 99% first-token accuracy on attribute values). The table gives, per pretraining
# variant, the next-token accuracy on every value token of every person's biography.
#
# ## Does mixed training extract?
#
# The paper's Result 1: with the biographies of everyone and the questions of P_train in one
# training run, the model answers P_test's questions, 86.6% of them on bioS single.

# %% mystnb={"figure": {"caption": "Mixed training: exact-match QA accuracy per attribute on the people whose questions were trained (P_train) and on the others (P_test), with 95% Wilson intervals (one question per person and attribute; six per person in the mean). The dashed line is the paper's P_test mean on bioS single.", "name": "fig-part3-1-mixed"}}
groups = [*QA_ATTRIBUTES, "mean"]
fig, axes = plt.subplots(
    len(plan.mixed_variants), 1, figsize=(7.2, 3.3 * len(plan.mixed_variants)),
    layout="constrained", squeeze=False,
)
for ax, v in zip(axes[:, 0], plan.mixed_variants, strict=True):
    r = results[f"mixed:{v}"]
    accuracy_bars(
        [label(a) for a in groups],
        {
            "P_train (questions trained)": [qa_pair(r["train"], a, len(p_train)) for a in groups],
            "P_test (never asked)": [qa_pair(r["test"], a, len(p_test)) for a in groups],
        },
        axis_label="QA accuracy",
        lines={"paper, P_test mean (bioS single)": 0.866} if v == "single" else None,
        ax=ax,
        legend="below" if ax is axes[0, 0] else None,
        ncol=2,
        title=f"mixed training on {v}",
    )
_ = savefig(fig, "part3_1_mixed")

# %%
for v in plan.mixed_variants:
    r = results[f"mixed:{v}"]
    text = (
        f"Mixed training on `{v}` gets {pct(r['bio_accuracy'])}% of the biographies' value "
        f"tokens right and answers {pct(r['train']['mean'])}% of P_train's questions; on "
        f"P_test it answers {interval_text(Acc.of(r['test']['mean'], qa_n))}."
    )
    if r["train"]["mean"] >= 0.8 and r["test"]["mean"] < 0.5:
        text += (
            " The trained questions are answered, the others mostly not. A possible reason, "
            f"not tested here: with the questions of only {len(p_train)} people the model can "
            "learn those answers one by one instead of learning to extract; the paper's P_train "
            "holds 50,000 people."
        )
    display(Markdown(text))

# %% [markdown]
# ## Pretrain, then fine-tune: does augmentation decide extraction?
#
# The paper's Results 2-3: after pretraining on bioS single, fine-tuning on P_train questions
# reaches P_train but not P_test (9.7% mean, Fig. 3), whatever the fine-tuning; full
# fine-tuning memorises P_train's answers instead. Augmenting the biographies lifts P_test to
# 70% (single+permute5), 41% (multi5) and 96.6% (multi5+permute); one biography in a shuffled
# order (single+permute1) gives 4.4%, below single. Ours, after LoRA fine-tuning, and for
# `single` also after full fine-tuning. (The model pretrained on multi5+permute here is where
# the next chapter, {doc}`part3_2_knowledge_manipulation`, starts: it finds this very run in
# the run cache.)

# %% mystnb={"figure": {"caption": "Mean QA accuracy after pretraining on each bioS variant and fine-tuning on P_train's questions, with 95% Wilson intervals over the questions scored; black ticks: the paper's P_test accuracy (Part 3.1 Fig. 3).", "name": "fig-part3-1-augmentation"}}
PAPER_FT = {
    "single": 9.7,
    "single+permute1": 4.4,
    "single+permute5": 70.0,
    "multi5": 41.0,
    "multi5+permute": 96.6,
}
full_variants = [v for v in plan.variants if "full" in variant_res[v]]
series = {
    "LoRA, P_train": [
        qa_pair(variant_res[v]["lora"]["train"], "mean", len(p_train)) for v in plan.variants
    ],
    "LoRA, P_test": [
        qa_pair(variant_res[v]["lora"]["test"], "mean", len(p_test)) for v in plan.variants
    ],
}
if full_variants:
    series["full fine-tune, P_test"] = [
        qa_pair(variant_res[v]["full"]["test"], "mean", len(p_test)) if v in full_variants else None
        for v in plan.variants
    ]
fig, ax = plt.subplots(figsize=(7.2, 3.9), layout="constrained")
accuracy_bars(
    [tick(v) for v in plan.variants],
    series,
    marks=[PAPER_FT[v] / 100 if v in PAPER_FT else None for v in plan.variants],
    mark_series="LoRA, P_test",  # the paper's P_test as a black tick across our LoRA P_test bar
    mark_label="paper, P_test",
    axis_label="QA accuracy (six questions a person)",
    ncol=4,
    ax=ax,
)
_ = savefig(fig, "part3_1_augmentation")

# %%
ft_table = pd.DataFrame(
    {
        v: {
            "LoRA train (%)": pct(r["lora"]["train"]["mean"]),
            "LoRA test (%)": pct(r["lora"]["test"]["mean"]),
            "full train (%)": pct(r["full"]["train"]["mean"]) if "full" in r else None,
            "full test (%)": pct(r["full"]["test"]["mean"]) if "full" in r else None,
            "paper test (%)": PAPER_FT.get(v),
        }
        for v, r in variant_res.items()
    }
).T.rename_axis("pretrained on")
display(ft_table.map(lambda x: "–" if pd.isna(x) else f"{x:.1f}"))
ft_mean = {v: r["lora"]["test"]["mean"] for v, r in variant_res.items()}
ft_acc = {v: Acc.of(m, qa_n) for v, m in ft_mean.items()}
lo, hi = min(ft_mean, key=ft_mean.get), max(ft_mean, key=ft_mean.get)
text = (
    f"After LoRA fine-tuning the lowest P_test accuracy is `{lo}`'s, "
    f"{interval_text(ft_acc[lo])}; the highest `{hi}`'s, {interval_text(ft_acc[hi])}."
)
if "single" in ft_acc:
    above = [v for v in ft_acc if v != "single" and compare(ft_acc[v], ft_acc["single"]) > 0]
    below = [v for v in ft_acc if v != "single" and compare(ft_acc[v], ft_acc["single"]) < 0]
    text += (
        f" Beyond the noise of {qa_n} questions, above `single`: "
        f"{', '.join(f'`{v}`' for v in above) or 'none'}; "
        f"below it: {', '.join(f'`{v}`' for v in below) or 'none'}."
    )
for v in full_variants:
    full = variant_res[v]["full"]
    text += (
        f" Full fine-tuning after `{v}` answers {pct(full['train']['mean'])}% of P_train's "
        f"questions and {interval_text(Acc.of(full['test']['mean'], qa_n))} of P_test's."
    )
display(Markdown(text))

# %% [markdown]
# Which attributes carry the extraction? The same LoRA runs, per attribute: the trained people
# above, the test people below.

# %% mystnb={"figure": {"caption": "LoRA fine-tuning, per attribute: QA accuracy on P_train (top) and P_test (bottom) after pretraining on each variant, with 95% Wilson intervals over the people scored (one question per person and attribute).", "name": "fig-part3-1-per-attribute"}}
fig, axes = plt.subplots(2, 1, figsize=(7.2, 6.2), layout="constrained", sharex=True)
for ax, (half, people) in zip(axes, (("train", len(p_train)), ("test", len(p_test))), strict=True):
    accuracy_bars(
        [label(a) for a in QA_ATTRIBUTES],
        {
            v: [qa_pair(variant_res[v]["lora"][half], a, people) for a in QA_ATTRIBUTES]
            for v in plan.variants
        },
        axis_label=f"P_{half} QA accuracy",
        legend="below" if half == "train" else None,
        ncol=len(plan.variants),
        ax=ax,
    )
_ = savefig(fig, "part3_1_per_attribute")

# %% [markdown]
# ## Where are the facts stored? P-probing
#
# The paper's Result 4 (Fig. 5): feed a biography to the pretrained model and read its last
# layer at six positions, the token just before each attribute's value in reading order.
# Position 1 is right after the name and its first template words. The paper finds that on
# bioS single an attribute is readable only at its own position, where the model is about to
# write it, and that after multi5+permute every attribute is readable already at position 1:
# the model stored it with the name. Each cell is the accuracy of a probe on people it was not
# fitted on (first-token tasks; see the departures for the probe's head). The control is
# chance: the best constant guess (the most common first token among the probe's training
# people), scored on the same held-out people.

# %% mystnb={"figure": {"caption": "P-probing: accuracy (%) of a linear probe on held-out people, reading each attribute (rows) from the last layer at each of the six special positions in reading order (columns; position 1 is right after the name), one panel per pretraining variant. On bioS single, attribute k is written at position k, so the diagonal is each attribute's own position.", "name": "fig-part3-1-p-probing"}}
fig = probe_heatmaps(
    {v: np.asarray(variant_res[v]["p_probe"]) * 100 for v in plan.variants},
    rows=[label(a) for a in ATTRIBUTES],
    cols=[str(k + 1) for k in range(len(ATTRIBUTES))],
    xlabel="position in reading order",
    cbar_label="probe accuracy, held-out people (%)",
    ncols=2,
    panel=(2.9, 2.6),
)
_ = savefig(fig, "part3_1_p_probing")


# %%
def first_position(v: str) -> float:
    """Mean probe accuracy at position 1 over the attributes that are not written first."""
    grid = np.asarray(variant_res[v]["p_probe"])
    return float(grid[1:, 0].mean())


def own_position(v: str) -> float:
    grid = np.asarray(variant_res[v]["p_probe"])
    return float(np.mean([grid[a, a] for a in range(1, 6)]))


# the probes' held-out people: the same split as `fit_token_probe` draws
probe_people = np.arange(plan.people)
probe_train, probe_test = train_test_split(
    plan.people, fit_token_probe.__kwdefaults__["test_fraction"], plan.seed
)


# every variant draws the same people (same seed), so one chance level serves all of them
assert np.array_equal(bios_aug.people.name_ids(), bios_single.people.name_ids())


def chance(attributes) -> Acc:
    """The best constant guess: the most common first token among the probe's training people,
    scored on its held-out people (what a probe that ignores the model's state gets)."""
    hits = 0
    for a in attributes:
        labels, cand = first_token_labels(bios_single, probe_people, a)
        guess = torch.bincount(labels[probe_train], minlength=len(cand)).argmax()
        hits += int((labels[probe_test] == guess).sum())
    return Acc(hits, len(probe_test) * len(attributes))


p_n = len(probe_test) * 5  # attributes 2-6, held-out people
p_chance = chance(ATTRIBUTES[1:])

# %% mystnb={"figure": {"caption": "P-probing summarised over attributes 2-6 (those not written first on bioS single): probe accuracy at position 1, right after the name, and at position k for attribute k (its own position in bioS single's fixed order), with 95% Wilson intervals over the held-out answers; the dashed line is chance, the best constant guess.", "name": "fig-part3-1-p-probing-summary"}}
fig, ax = plt.subplots(figsize=(7.2, 3.6), layout="constrained")
accuracy_bars(
    [tick(v) for v in plan.variants],
    {
        "position 1, right after the name": [
            (Acc.of(first_position(v), p_n).k, p_n) for v in plan.variants
        ],
        "own position in single's order": [
            (Acc.of(own_position(v), p_n).k, p_n) for v in plan.variants
        ],
    },
    axis_label="P-probe accuracy",
    lines={"chance (best constant guess)": p_chance.value},
    ncol=2,
    ax=ax,
)
_ = savefig(fig, "part3_1_p_probing_summary")

# %%
display(
    Markdown(
        f"Chance for attributes 2-6 is {interval_text(p_chance)}, over the held-out "
        f"answers of {len(probe_test)} people x 5 attributes. At position 1, `single`'s probe reads "
        f"{pct(first_position('single'))}% and `multi5+permute`'s "
        f"{pct(first_position('multi5+permute'))}%; at the own position, `single`'s reads "
        f"{pct(own_position('single'))}%."
        if {"single", "multi5+permute"} <= set(plan.variants)
        else f"Chance for attributes 2-6 is {interval_text(p_chance)}."
    )
)

# %% [markdown]
# ## Does Q-probing track extraction?
#
# The paper's Result 5 (Fig. 7): feed the name alone and probe the state at its last token. If
# the attributes can be read from the name, the model stored them with the name, and the paper
# finds this Q-probe accuracy closely following the QA accuracy that fine-tuning reaches. A
# correlation says something only if the Q-probe reads something, so we first ask whether its
# accuracy beats chance (the same constant guess as above, over all six attributes).

# %%
q_points = [
    (variant_res[v]["q_probe"][a] * 100, variant_res[v]["lora"]["test"][a] * 100, v)
    for v in plan.variants
    for a in ATTRIBUTES
]
q_mean = {v: variant_res[v]["q_probe"]["mean"] for v in plan.variants}
xs_q = np.asarray([q for q, _, _ in q_points])
ys_q = np.asarray([f for _, f, _ in q_points])
q_corr = (
    float(np.corrcoef(xs_q, ys_q)[0, 1]) if xs_q.std() > 0 and ys_q.std() > 0 else float("nan")
)
q_n = len(probe_test) * len(ATTRIBUTES)  # held-out answers per Q-probe mean
q_chance = chance(ATTRIBUTES)
q_acc = {v: Acc.of(q, q_n) for v, q in q_mean.items()}
q_best = max(q_acc, key=lambda v: q_acc[v].value)


def fisher_interval(r: float, points: int) -> tuple[float, float]:
    """95% interval of a Pearson r over `points` points (Fisher z, the points taken as
    independent, which points of one model are not quite)."""
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1 / np.sqrt(points - 3)
    return float(np.tanh(z - Z95 * se)), float(np.tanh(z + Z95 * se))


# %% mystnb={"figure": {"caption": "Q-probing. Left: accuracy of the probe reading each attribute from the name alone, mean over six attributes, with its 95% Wilson interval over held-out answers, against chance (dashed). Right: Q-probe accuracy against LoRA fine-tuning P_test accuracy, one point per variant and attribute, with 95% Wilson intervals on both axes.", "name": "fig-part3-1-q-probing"}}
colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
markers = ("o", "s", "D", "^", "v", "P")
fig, (ax_q, ax_s) = plt.subplots(
    1, 2, figsize=(7.4, 3.9), layout="constrained", gridspec_kw={"width_ratios": [1, 1.2]}
)
q_top = max([q_chance.interval[1], *(a.interval[1] for a in q_acc.values())])
accuracy_bars(
    list(plan.variants),
    {"Q-probe": [(q_acc[v].k, q_n) for v in plan.variants]},
    axis_label="Q-probe accuracy, mean of six",
    lines={"chance (best constant guess)": q_chance.value},
    axis_max=min(1.0, max(0.2, 1.25 * q_top)),
    bar_colours=[colours[i % len(colours)] for i in range(len(plan.variants))],
    legend=None,
    ax=ax_q,
)
ax_q.set_xticks(ax_q.get_xticks(), list(plan.variants), rotation=35, ha="right", fontsize="small")
for i, v in enumerate(plan.variants):
    qx = [variant_res[v]["q_probe"][a] for a in ATTRIBUTES]
    qy = [variant_res[v]["lora"]["test"][a] for a in ATTRIBUTES]
    bx = np.array([wilson(round(x * len(probe_test)), len(probe_test)) for x in qx]).T
    by = np.array([wilson(round(y * len(p_test)), len(p_test)) for y in qy]).T
    ax_s.errorbar(
        qx, qy, xerr=np.abs(bx - qx), yerr=np.abs(by - qy), fmt=markers[i % len(markers)],
        color=colours[i % len(colours)], ecolor=to_rgba(colours[i % len(colours)], 0.35),
        elinewidth=1, markersize=7, markeredgecolor="white", label=v, zorder=3,
    )
ax_s.set_xlim(0, None)
ax_s.set_ylim(0, 1)
ax_s.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax_s.set_xlabel("Q-probe accuracy (name only)")
ax_s.set_ylabel("LoRA P_test QA accuracy")
ax_s.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax_s.set_title(f"Pearson r = {q_corr:.2f} over {len(q_points)} points")
handles, names = ax_s.get_legend_handles_labels()
chance_line = [h for h, n in zip(*ax_q.get_legend_handles_labels(), strict=True) if "chance" in n]
fig.legend(
    handles + chance_line,
    names + ["chance (left)"] * len(chance_line),
    loc="outside lower center",
    ncol=3,
    fontsize="small",
)
_ = savefig(fig, "part3_1_q_probing")

# %%
text = (
    f"Chance, the best constant guess, is {interval_text(q_chance)}. The best Q-probe, "
    f"`{q_best}`'s, reads {interval_text(q_acc[q_best])}: "
    + ("beyond" if compare(q_acc[q_best], q_chance) > 0 else "not beyond")
    + " the noise above chance."
)
if np.isfinite(q_corr) and len(q_points) > 3:
    q_lo, q_hi = fisher_interval(q_corr, len(q_points))
    text += (
        f" Over the {len(q_points)} variant x attribute points, Q-probe and QA accuracy "
        f"correlate with r = {q_corr:.2f} (95% interval {q_lo:.2f} to {q_hi:.2f})."
    )
display(Markdown(text))

# %% [markdown]
# ## Do celebrities help the minority?
#
# The paper's Result 6 (Fig. 8): pretrain on augmented celebrities (multi5+permute) together
# with a minority whose biographies are not augmented, fine-tune on the celebrities' questions
# only, and test on the minority. The paper's minority (single+permute1) goes from 4.4% alone
# to 86.8%. Our minority is the very population of the single+permute1 row above, so its
# P_test people are the same in both bars of each pair.

# %% mystnb={"figure": {"caption": "The minority's P_test questions, per attribute: LoRA fine-tuned on its own P_train after pretraining alone, and fine-tuned on the celebrities' questions only after pretraining beside them; 95% Wilson intervals over the people scored (six questions a person in the mean). The dashed line is the paper's minority with celebrities.", "name": "fig-part3-1-celebrities"}}
if plan.celebrities:
    celeb = results[f"celebrity:{plan.celebrity_variant}"]
    baseline = variant_res[plan.minority_variant]["lora"]["test"]
    fig, ax = plt.subplots(figsize=(7.2, 3.6), layout="constrained")
    accuracy_bars(
        [label(a) for a in groups],
        {
            f"minority alone ({plan.minority_variant})": [
                qa_pair(baseline, a, len(p_test)) for a in groups
            ],
            f"beside {plan.celebrities} celebrities ({plan.celebrity_variant})": [
                qa_pair(celeb["minority_test"], a, len(p_test)) for a in groups
            ],
        },
        axis_label="minority P_test QA accuracy",
        lines={"paper, minority with celebrities": 0.868},
        ncol=2,
        ax=ax,
    )
    _ = savefig(fig, "part3_1_celebrities")

# %%
if plan.celebrities:
    celeb_lift = compare(
        Acc.of(celeb["minority_test"]["mean"], qa_n), Acc.of(baseline["mean"], qa_n)
    )
    gpu_plan = p31.scale_for("gpu")
    display(
        Markdown(
            f"The celebrities answer {pct(celeb['celebrities']['mean'])}% of their own (trained) "
            f"questions, and the minority's biographies are memorised "
            f"({pct(celeb['bio_accuracy_minority'])}% of value tokens). The minority's P_test "
            f"mean with celebrities, {interval_text(Acc.of(celeb['minority_test']['mean'], qa_n))}"
            ", is "
            + {1: "above", 0: "inside the noise of", -1: "below"}[celeb_lift]
            + f" its mean alone, {interval_text(Acc.of(baseline['mean'], qa_n))}. The paper's "
            f"celebrities are 100,000 people; the `gpu` preset, not run here, has "
            f"{gpu_plan.celebrities:,} celebrities beside {gpu_plan.people:,} minority people "
            f"and a model of {gpu_plan.layers} layers, width {gpu_plan.width}."
        )
    )

# %% [markdown]
# ## Explorer
#
# Pick a P_test person and a question: the model pretrained on the chosen variant and
# LoRA-fine-tuned on P_train answers beside the truth. The interactive version needs a live
# kernel; the rendered book shows the fixed sample of questions below it.

# %%
eos = qa_vocab().eos_id
explorer_models = {}
for v in dict.fromkeys(("single", "multi5+permute")):
    if v in plan.variants:
        base, bios_v = p31.pretrained(plan, v)
        tuned = p31.finetune(plan, base, p31_items(bios_v, p_train), "lora")
        explorer_models[v] = (tuned.model, bios_v)
rng = np.random.default_rng(seed)
sample_people = rng.choice(p_test, size=min(6, len(p_test)), replace=False)
sample_attrs = rng.choice(len(QA_ATTRIBUTES), size=len(sample_people))
rows = []
for person, ai in zip(sample_people.tolist(), sample_attrs.tolist(), strict=True):
    row = {}
    for v, (model, bios_v) in explorer_models.items():
        item = p31_items(bios_v, [person], [QA_ATTRIBUTES[ai]])[0]
        answer = p31.generate_answer(model, item, eos)
        mark = "✓" if answer == item.answer else "✗"
        row["question"] = item.prompt.removesuffix(" Answer:")
        row["truth"] = item.answer
        row[v] = f"{mark} {textwrap.shorten(answer, 30, placeholder=' ...')}"
    rows.append(row)
display(pd.DataFrame(rows).set_index("question"))

# %% tags=["remove-output", "nbval-ignore-output"]
try:
    import html

    import ipywidgets as widgets

    pick_variant = widgets.Dropdown(options=list(explorer_models), description="variant")
    pick_person = widgets.Dropdown(options=[int(i) for i in p_test[:50]], description="person")
    pick_attr = widgets.Dropdown(options=list(QA_ATTRIBUTES), description="question")
    # An HTML widget, not an Output widget: a headless executor (papermill's nbclient) answers
    # each output an Output widget captures on the kernel's shell channel while it reads that
    # channel, which can leave the execution waiting under load; an HTML value needs no reply.
    shown = widgets.HTML()

    def show(_change=None) -> None:
        model, bios_v = explorer_models[pick_variant.value]
        item = p31_items(bios_v, [pick_person.value], [pick_attr.value])[0]
        answer = p31.generate_answer(model, item, eos)
        shown.value = (
            f"<p>{html.escape(item.prompt)}<br>model: <b>{html.escape(answer)}</b><br>"
            f"truth: {html.escape(item.answer)}</p>"
        )

    for w in (pick_variant, pick_person, pick_attr):
        w.observe(show, names="value")
    show()
    display(widgets.VBox([pick_variant, pick_person, pick_attr, shown]))
except ImportError:
    print("ipywidgets is not installed; the table above is the static explorer")

# %% [markdown]
# ## Departures from the paper
#
# - **Size.** The paper pretrains a 124M-parameter GPT-2 on N = 100,000 people for 80k steps
#   of 96 x 512 tokens; this edition uses the scale's N, model and steps (printed above), so
#   both the model and the number of people the fine-tuning can generalise from are far
#   smaller. The `gpu` and `paper` presets of `physlm.experiments.part3_1` describe larger
#   runs; `paper` is the paper's own configuration.
# - **Tokens.** Word-level tokens over a closed vocabulary instead of GPT-2's BPE; our pools
#   and templates are our own, with the paper's pool sizes and template counts.
# - **Renderings.** A person's M biographies are cycled epoch by epoch rather than drawn at
#   random, and every row holds whole biographies (no cut 512-token windows).
# - **Mixed training** puts the scale's `qa_fraction` of rows on questions (the paper: 80% of
#   tokens) and gives every person the same number of biography passes as pretraining.
# - **LoRA** at small scale uses a smaller embedding rank than the paper's 128 (the embedding is
#   only 64 wide at `cpu` scale); fine-tuning runs for a fixed number of passes over the
#   P_train questions rather than 50k steps.
# - **Answers** are generated greedily; the paper uses beam search with 4 beams.
# - **Probes.** First-token tasks only (birth month for the birth date). The paper's probe has a
#   free linear head with one vector per value, fitted on 100K people; with a few hundred
#   people most values are never seen during probe fitting, so our head scores each candidate
#   token by the model's own frozen embedding of it, after a trained linear map (still linear
#   in the hidden state). Both probes use LayerNorm and batches of 50 (the paper's Q-probe:
#   BatchNorm, batches of 200). The scale's `p_rank` and `q_rank` set the embedding updates
#   (the paper: 2 and 16); the `cpu` preset sets both to 0 and fits the heads on cached
#   states, so the model's embedding is not updated at all. The Q-probe reads the last name
#   token (our names have no end marker). Each probe is scored on the 30% of people it was not
#   fitted on, and its control is the best constant guess on those people, not a probe of an
#   untrained model.
# - **Statistics.** Accuracies carry a 95% Wilson interval over the items scored (P_test
#   questions, or held-out probe answers); two accuracies differ only beyond a two-proportion
#   test at 95%. The six questions of one person are counted as separate items.
# - **Celebrities** are as many as the minority, not 100K.

# %% tags=["remove-output", "nbval-ignore-output"]
print(f"chapter executed in {time.perf_counter() - chapter_start:.0f} s")

# %%
# requirements and measures of the ledger, computed from the numbers above
def pc(x: float) -> str:
    """Whole percent: coarse enough for a checked output."""
    return f"{100 * x:.0f}%"


def fact_acc(mean: float) -> Acc:
    """Value-token accuracy, counted over one item per (person, attribute)."""
    return Acc.of(mean, plan.people * len(ATTRIBUTES))


MEMO_BAR = 0.9  # the memorisation row's `partly` bar: below it, extraction cannot be asked
worst_memo = min(memorised.values())
memorised_req = Requires(
    f"biographies memorised (worst variant {percent(worst_memo)} >= {MEMO_BAR:.0%})",
    worst_memo >= MEMO_BAR,
)
# the positive control of every "fails" claim: some variant extracts with this very pipeline
AUG_PAPER = PAPER_FT["multi5+permute"] / 100
AUG_PARTLY = 0.4 * AUG_PAPER  # the multi5+permute row's own `partly` bar
if "multi5+permute" in ft_acc:
    aug = ft_acc["multi5+permute"]
    extracts_req = Requires(
        f"a variant extracts here: multi5+permute P_test {aug.value:.0%} >= "
        f"{AUG_PARTLY:.0%} (0.4 x the paper's {PAPER_FT['multi5+permute']}%)",
        aug.value >= AUG_PARTLY,
    )
else:
    extracts_req = Requires("a variant extracts here: multi5+permute was not run", False)
single = variant_res.get("single")

# %% tags=["nbval-check-output"]
ledger = Ledger("part3_1_knowledge_storage", scale)
# the paper reports > 99% first-token accuracy: at least 0.99 as stated, 0.9 partly
ledger.score(
    "pretraining memorises the biographies (attribute tokens)",
    "> 99%",
    "Part 3.1, Sec. 2.1",
    AtLeast(0.99, MEMO_BAR),
    fact_acc(worst_memo),
    note="worst variant; all value tokens, n = people x 6 attributes",
)
if "single" in plan.mixed_variants:
    mixed = results["mixed:single"]
    # 86.6% in the paper: about 80% of it (0.7) reproduced, about a third (0.3) partly
    ledger.score(
        "mixed training extracts on P_test (bioS single)",
        "86.6%",
        "Part 3.1, Result 1",
        AtLeast(0.7, 0.3),
        Acc.of(mixed["test"]["mean"], qa_n),
        requires=[
            Requires(
                f"mixed run memorises the biographies ({percent(mixed['bio_accuracy'])} >= "
                f"{MEMO_BAR:.0%})",
                mixed["bio_accuracy"] >= MEMO_BAR,
            )
        ],
        note=f"P_train QA {pc(mixed['train']['mean'])}",
    )
if "multi5+permute" in plan.mixed_variants:
    # not a paper number: the same bar as the paper's bioS single row, shown apart
    ledger.score(
        "mixed training extracts on P_test (multi5+permute)",
        "not reported",
        "Part 3.1, Sec. 3 (variant not in the paper)",
        AtLeast(0.7, 0.3),
        Acc.of(results["mixed:multi5+permute"]["test"]["mean"], qa_n),
        requires=[memorised_req],
        demo=True,
    )
if single is not None and "full" in single:
    full = single["full"]
    # "near zero": the paper's bioS single mean is 9.7% (birth date 33%, the rest near 0), so
    # an upper bound <= 0.15 is near zero; a point estimate <= 0.3 partly
    ledger.score(
        "full fine-tuning after bioS single: P_train fitted, P_test near zero",
        "P_test near 0",
        "Part 3.1, Result 2",
        AtMost(0.15, 0.3),
        Acc.of(full["test"]["mean"], qa_n),
        requires=[
            Requires(
                f"full fine-tuning fits P_train ({full['train']['mean']:.0%} >= 90%)",
                full["train"]["mean"] >= 0.9,
            ),
            memorised_req,
            extracts_req,
        ],
    )
if "single" in ft_acc:
    # a "fails" claim (9.7%): the same near-zero bar as full fine-tuning
    ledger.score(
        "LoRA fine-tuning after bioS single: P_test near zero",
        "9.7%",
        "Part 3.1, Result 3 (Fig. 3)",
        AtMost(0.15, 0.3),
        ft_acc["single"],
        requires=[memorised_req, extracts_req],
        note=f"LoRA P_train {pc(single['lora']['train']['mean'])}",
    )
if {"single", "single+permute1"} <= set(ft_acc):
    # the paper's point: one shuffled biography does not help, 4.4% vs single's 9.7%; a drop
    # is testable only if single sits above the floor by more than the noise
    floor = Acc(0, qa_n)
    ledger.score(
        "single+permute1 extracts worse than single",
        "4.4% vs 9.7%",
        "Part 3.1, Result 3 (Fig. 3); 'hurts' is our reading of the two values",
        Ordering(chain=(("single+permute1",), ("single",))),
        {"single+permute1": ft_acc["single+permute1"], "single": ft_acc["single"]},
        requires=[
            Requires(
                "single is above 0 beyond the noise, so a drop can show",
                compare(ft_acc["single"], floor) > 0,
            ),
            memorised_req,
        ],
    )
for v in ("single+permute5", "multi5", "multi5+permute"):
    if v not in ft_acc:
        continue
    paper = PAPER_FT[v] / 100
    # positive claims: within a quarter of the paper's value reproduced, 40% of it partly
    ledger.score(
        f"LoRA fine-tuning after {v}: P_test extracts",
        f"{100 * paper:.3g}%",
        "Part 3.1, Result 3 (Fig. 3)",
        AtLeast(0.75 * paper, 0.4 * paper),
        ft_acc[v],
        requires=[memorised_req],
    )
tiers = (("single", "single+permute1"), ("multi5", "single+permute5"), ("multi5+permute",))
if all(v in ft_acc for t in tiers for v in t):
    # "more augmentation is better": no augmentation < five renderings of one kind < both kinds
    ledger.score(
        "more augmentation, better extraction",
        "9.7, 4.4 < 41, 70 < 96.6%",
        "Part 3.1, Result 3 (Fig. 3)",
        Ordering(chain=tiers),
        {v: ft_acc[v] for t in tiers for v in t},
        requires=[memorised_req],
    )
if single is not None and "multi5+permute" in plan.variants:
    # the paper: ~2% before an attribute's own position vs ~100% after multi5+permute, and
    # ~100% at the own position on single; half that gap (0.5) over each control reproduces
    ledger.score(
        "P-probe: single stores an attribute just before it, multi5+permute right after the name",
        "~2% vs ~100% at position 1",
        "Part 3.1, Result 4 (Fig. 5)",
        EffectOverControl(
            0.5,
            pairs=(
                ("multi5+permute pos. 1", "single pos. 1"),
                ("multi5+permute pos. 1", "chance"),
                ("single own pos.", "chance"),
            ),
        ),
        {
            "multi5+permute pos. 1": Acc.of(first_position("multi5+permute"), p_n),
            "single pos. 1": Acc.of(first_position("single"), p_n),
            "single own pos.": Acc.of(own_position("single"), p_n),
            "chance": p_chance,
        },
        requires=[memorised_req],
        note="attributes 2-6, held-out people",
    )
if single is not None and "multi5+permute" in plan.variants:
    # the paper's Q-probe reads multi5+permute's attributes from the name (~93% whole-value)
    # and not single's; half that gap over chance and over single reproduces
    ledger.score(
        "Q-probe reads multi5+permute's attributes from the name alone",
        "~93% (whole value)",
        "Part 3.1, Result 5 (Fig. 7); value as quoted by a third-party summary",
        EffectOverControl(
            0.5, pairs=(("multi5+permute", "chance"), ("multi5+permute", "single"))
        ),
        {"multi5+permute": q_acc["multi5+permute"], "single": q_acc["single"], "chance": q_chance},
        requires=[memorised_req],
        note="first-token tasks, held-out people",
    )
if len(plan.variants) >= 3:
    # "closely correlates": r >= 0.8 reproduced, r above 0 beyond its interval partly; it
    # needs a Q-probe that reads something: the best one 0.1 above chance and beyond the noise
    q_reads = compare(q_acc[q_best], q_chance) > 0 and q_acc[q_best].value - q_chance.value >= 0.1
    r_lo, r_hi = fisher_interval(q_corr, len(q_points)) if np.isfinite(q_corr) else (0.0, 0.0)
    ledger.score(
        "Q-probe accuracy tracks QA fine-tune accuracy",
        "close correlation",
        "Part 3.1, Result 5 (Fig. 7)",
        EffectOverControl(0.8, pairs=(("r", "no correlation"),)),
        {
            "r": Num(q_corr, r_lo, r_hi, spread=f"95% Fisher interval, {len(q_points)} points")
            if np.isfinite(q_corr)
            else Num(q_corr),
            "no correlation": Num(0.0),
        },
        requires=[
            Requires(
                f"a Q-probe reads something: best ({q_best}) {q_acc[q_best].value:.0%} vs "
                f"chance {q_chance.value:.0%}, >= 10 points above and beyond the noise",
                bool(q_reads),
            ),
            memorised_req,
        ],
        note="Pearson r over variant x attribute points",
    )
if plan.celebrities:
    minority_bio = celeb["bio_accuracy_minority"]
    # the paper lifts the minority from 4.4% to 86.8%; half that lift (0.4) reproduces
    ledger.score(
        "celebrities help the minority extract",
        "4.4% -> 86.8%",
        "Part 3.1, Result 6 (Fig. 8)",
        EffectOverControl(0.4, pairs=(("with celebrities", "minority alone"),)),
        {
            "with celebrities": Acc.of(celeb["minority_test"]["mean"], qa_n),
            "minority alone": ft_acc[plan.minority_variant],
        },
        requires=[
            Requires(
                f"minority biographies memorised ({percent(minority_bio)} >= {MEMO_BAR:.0%})",
                minority_bio >= MEMO_BAR,
            ),
            extracts_req,
        ],
        note=f"minority {plan.minority_variant}; its baseline is that variant's LoRA row",
    )
ledger

# %% [markdown]
# ## What held at this scale

# %%
close_chapter(ledger)
