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
# fact with the person's name, and then extraction generalises. Linear probes show where the
# facts sit, and augmenting only some people ("celebrities") already helps the others.
#
# This chapter runs those experiments at the scale below and closes with a ledger of the
# paper's claims next to ours.

# %% tags=["parameters"]
scale = "cpu"
seed = 0

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from physlm.claims import NOT_HERE, Ledger, threshold_verdict
from physlm.data.bios import ATTRIBUTES
from physlm.data.bios_qa import QA_ATTRIBUTES, p31_items, qa_vocab
from physlm.experiments import part3_1 as p31
from physlm.model import GPT, count_params
from physlm.plots import savefig, use_style

if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
plan = p31.scale_for(scale, seed=seed)
torch.set_num_threads(1)
use_style()
chapter_start = time.perf_counter()
print(f"scale {plan.scale}: {plan.people} people per population; variants {list(plan.variants)}")

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

# %%
bios_single = p31.bios_stream(plan, "single")
bios_aug = p31.bios_stream(plan, "multi5+permute")
vocab = bios_single.vocab
print("single, person 0:")
print(" ", vocab.decode(bios_single.render_person(0)[0]))
print("multi5+permute, person 0, two of five biographies:")
for bio in p31.renderings(bios_aug, 0, 2):
    print(" ", vocab.decode(bio))
print("questions:")
for item in p31_items(bios_single, [0])[:3]:
    print(" ", item.text)

# %%
p_train, p_test = p31.halves(plan)
model_cfg = plan.model_config()
n_params = count_params(GPT(model_cfg))
print(
    f"people: {plan.people} per population, {len(p_train)} in P_train and {len(p_test)} in "
    f"P_test; vocabulary {len(qa_vocab())} words"
)
print(
    f"model: {model_cfg.n_layer} layers, {model_cfg.n_head} heads, width {model_cfg.n_embd}, "
    f"rotary on a quarter of each head, {n_params:,} parameters"
)
print(
    f"pretraining: {plan.exposures} passes over every person's biographies, "
    f"{bios_single.steps} steps of {plan.rows} rows x {plan.bios_per_row} biographies"
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
# Jobs run in worker processes through the run cache; a re-execution loads them.

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
results = p31.chapter_results(plan)
print(f"{len(results)} jobs ready in {time.perf_counter() - t0:.0f} s")


# %%
def pct(x: float) -> float:
    return round(100 * x, 1)


variant_res = {v: results[f"variant:{v}"] for v in plan.variants}
memorised = {v: r["bio_accuracy"] for v, r in variant_res.items()}
display(
    pd.DataFrame(
        {"biography value-token accuracy (%)": {v: pct(a) for v, a in memorised.items()}}
    )
)

# %% [markdown]
# Pretraining has to memorise the biographies before extraction can be asked of it (the paper
# reaches over 99% first-token accuracy on attribute values). The table gives the next-token
# accuracy on every value token of every person's biography.
#
# ## Mixed training extracts
#
# Part 3.1 Result 1: with the biographies of everyone and the questions of P_train in one
# training run, the model answers P_test's questions, 86.6% of them on bioS single.

# %%
mixed_rows = []
for v in plan.mixed_variants:
    r = results[f"mixed:{v}"]
    mixed_rows.append(
        {
            "variant": v,
            "biographies (%)": pct(r["bio_accuracy"]),
            "P_train QA (%)": pct(r["train"]["mean"]),
            "P_test QA (%)": pct(r["test"]["mean"]),
            **{f"P_test {a} (%)": pct(r["test"][a]) for a in QA_ATTRIBUTES},
        }
    )
mixed_table = pd.DataFrame(mixed_rows).set_index("variant")
display(mixed_table)
for v in plan.mixed_variants:
    r = results[f"mixed:{v}"]
    if r["train"]["mean"] >= 0.8 and r["test"]["mean"] < 0.5:
        print(
            f"{v}: the P_train questions are answered, P_test's mostly not. With the questions "
            f"of only {len(p_train)} people the model can learn those answers one by one "
            "instead of learning to extract; the paper's P_train holds 50,000 people."
        )

# %% [markdown]
# ## Pretrain, then fine-tune: augmentation decides
#
# Part 3.1 Results 2-3: after pretraining on bioS single, fine-tuning on P_train questions
# reaches P_train but not P_test (9.7% mean, Fig. 3), whatever the fine-tuning; full
# fine-tuning memorises P_train's answers instead. Augmenting the biographies lifts P_test:
# 4.4% (single+permute1, which hurts), 70% (single+permute5), 41% (multi5), 96.6%
# (multi5+permute). Ours, after LoRA fine-tuning. (The model pretrained on multi5+permute here
# is where the next chapter, {doc}`part3_2_knowledge_manipulation`, starts: it finds this very
# run in the run cache.)

# %%
PAPER_FT = {
    "single": 9.7,
    "single+permute1": 4.4,
    "single+permute5": 70.0,
    "multi5": 41.0,
    "multi5+permute": 96.6,
}
ft_rows = []
for v, r in variant_res.items():
    row = {
        "variant": v,
        "LoRA P_train (%)": pct(r["lora"]["train"]["mean"]),
        "LoRA P_test (%)": pct(r["lora"]["test"]["mean"]),
        "paper P_test (%)": PAPER_FT.get(v, float("nan")),
    }
    if "full" in r:
        row["full FT P_train (%)"] = pct(r["full"]["train"]["mean"])
        row["full FT P_test (%)"] = pct(r["full"]["test"]["mean"])
    ft_rows.append(row)
ft_table = pd.DataFrame(ft_rows).set_index("variant")
display(ft_table)
per_attr = pd.DataFrame(
    {v: {a: pct(r["lora"]["test"][a]) for a in QA_ATTRIBUTES} for v, r in variant_res.items()}
).T
print("LoRA P_test accuracy (%) per attribute:")
display(per_attr)
ft_mean = {v: r["lora"]["test"]["mean"] for v, r in variant_res.items()}
lo, hi = min(ft_mean, key=ft_mean.get), max(ft_mean, key=ft_mean.get)
print(f"lowest P_test: {lo} ({pct(ft_mean[lo])}%), highest: {hi} ({pct(ft_mean[hi])}%)")
weak = [v for v in ("single+permute5", "multi5") if v in ft_mean and ft_mean[v] < 0.2]
if weak:
    print(
        f"{' and '.join(weak)} stay near single at this scale, where the paper finds 70% and "
        f"41%: with {plan.people} people and a small model, only the strongest augmentation "
        "changed how the facts are stored (the probes below agree)."
    )

# %% mystnb={"figure": {"caption": "QA accuracy on P_test after pretraining on each bioS variant and LoRA fine-tuning on P_train, next to the paper's numbers (Part 3.1 Fig. 3).", "name": "fig-part3-1-augmentation"}}
fig, ax = plt.subplots(figsize=(7, 3.2))
xs = np.arange(len(plan.variants))
ax.bar(xs - 0.2, [ft_table.loc[v, "LoRA P_test (%)"] for v in plan.variants], 0.4,
       label=f"ours ({plan.scale})")
ax.bar(xs + 0.2, [PAPER_FT.get(v, np.nan) for v in plan.variants], 0.4, label="paper",
       color="0.7")
ax.set_xticks(xs, plan.variants, rotation=20, ha="right")
ax.set_ylabel("P_test QA accuracy (%)")
ax.set_ylim(0, 100)
ax.legend()
_ = savefig(fig, "part3_1_augmentation")

# %% [markdown]
# ## Where the facts are stored: P-probing
#
# Part 3.1 Result 4 (Fig. 5): feed a biography to the pretrained model and read its last layer
# at six positions, the token just before each attribute's value in reading order. Position 1
# is right after the name and its first template words. On bioS single an attribute is
# readable only at its own position, where the model is about to write it; after
# multi5+permute, every attribute is readable already at position 1: the model stored it with
# the name. Each cell is the accuracy of a probe on people it was not fitted on (first-token
# tasks; see the departures for the probe's head).

# %% mystnb={"figure": {"caption": "P-probing accuracy on held-out people: attribute (rows) read at each of the six special positions in reading order (columns), one panel per pretraining variant.", "name": "fig-part3-1-p-probing"}}
fig, axes = plt.subplots(1, len(plan.variants), figsize=(2.3 * len(plan.variants), 2.8),
                         sharey=True)
axes = np.atleast_1d(axes)
for ax, v in zip(axes, plan.variants, strict=True):
    grid = np.asarray(variant_res[v]["p_probe"]) * 100
    ax.imshow(grid, vmin=0, vmax=100, cmap="viridis")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                    color="w" if grid[i, j] < 60 else "k")
    ax.set_title(v, fontsize=8)
    ax.set_xticks(range(6), [str(k + 1) for k in range(6)], fontsize=7)
    ax.set_xlabel("position", fontsize=7)
axes[0].set_yticks(range(6), ATTRIBUTES, fontsize=7)
_ = savefig(fig, "part3_1_p_probing")


# %%
def first_position(v: str) -> float:
    """Mean probe accuracy at position 1 over the attributes that are not written first."""
    grid = np.asarray(variant_res[v]["p_probe"])
    return float(grid[1:, 0].mean())


def own_position(v: str) -> float:
    grid = np.asarray(variant_res[v]["p_probe"])
    return float(np.mean([grid[a, a] for a in range(1, 6)]))


probe_summary = pd.DataFrame(
    {
        v: {
            "position 1, attributes 2-6 (%)": pct(first_position(v)),
            "own position, bioS single order (%)": pct(own_position(v)),
        }
        for v in plan.variants
    }
).T
display(probe_summary)

# %% [markdown]
# ## Q-probing tracks extraction
#
# Part 3.1 Result 5 (Fig. 7): feed the name alone and probe the state at its last token. If
# the attributes can be read from the name, the model stored them with the name, and the paper
# finds this Q-probe accuracy closely following the QA accuracy that fine-tuning reaches.

# %% mystnb={"figure": {"caption": "Q-probe accuracy (name only) against LoRA fine-tuning P_test accuracy, one point per variant and attribute.", "name": "fig-part3-1-q-probing"}}
q_points = [
    (variant_res[v]["q_probe"][a] * 100, variant_res[v]["lora"]["test"][a] * 100, v)
    for v in plan.variants
    for a in ATTRIBUTES
]
q_mean = {v: variant_res[v]["q_probe"]["mean"] for v in plan.variants}
fig, ax = plt.subplots(figsize=(4.2, 3.4))
for v in plan.variants:
    pts = np.asarray([(q, f) for q, f, w in q_points if w == v])
    ax.scatter(pts[:, 0], pts[:, 1], s=14, label=v)
ax.plot([0, 100], [0, 100], color="0.8", lw=0.8)
ax.set_xlabel("Q-probe accuracy (%)")
ax.set_ylabel("LoRA P_test QA accuracy (%)")
ax.legend(fontsize=7)
_ = savefig(fig, "part3_1_q_probing")

# %%
xs_q = np.asarray([q for q, _, _ in q_points])
ys_q = np.asarray([f for _, f, _ in q_points])
q_corr = (
    float(np.corrcoef(xs_q, ys_q)[0, 1]) if xs_q.std() > 0 and ys_q.std() > 0 else float("nan")
)
display(
    pd.DataFrame(
        {"Q-probe mean (%)": {v: pct(q) for v, q in q_mean.items()},
         "LoRA P_test mean (%)": {v: pct(f) for v, f in ft_mean.items()}}
    )
)
print(f"correlation over variant x attribute points: {q_corr:.2f}")

# %% [markdown]
# ## Celebrities help the minority
#
# Part 3.1 Result 6 (Fig. 8): pretrain on augmented celebrities (multi5+permute) together with
# a minority whose biographies are not augmented, fine-tune on the celebrities' questions only,
# and test on the minority. The paper's minority (single+permute1) goes from 4.4% alone to
# 86.8%. Our minority is the very population of the single+permute1 row above, so its P_test
# people are the same in both rows.

# %%
if plan.celebrities:
    celeb = results[f"celebrity:{plan.celebrity_variant}"]
    baseline = variant_res[plan.minority_variant]["lora"]["test"]
    celeb_table = pd.DataFrame(
        {
            f"minority alone ({plan.minority_variant}), FT on its P_train": {
                a: pct(baseline[a]) for a in (*QA_ATTRIBUTES, "mean")
            },
            f"with {plan.celebrities} celebrities, FT on celebrities": {
                a: pct(celeb["minority_test"][a]) for a in (*QA_ATTRIBUTES, "mean")
            },
        }
    )
    display(celeb_table)
    print(
        f"celebrities' own QA after fine-tuning: {pct(celeb['celebrities']['mean'])}%; "
        f"minority biographies memorised: {pct(celeb['bio_accuracy_minority'])}%"
    )
    if celeb["minority_test"]["mean"] < baseline["mean"] + 0.1:
        print(
            "The fine-tuned model answers the celebrities but not the minority: here the "
            "celebrities did not change how the minority's facts are stored. The paper's "
            "celebrities are 100,000 people with hundreds of exposures each; whether a few "
            "hundred suffice at larger models is what the `gpu` preset would test."
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
    for v, (model, bios_v) in explorer_models.items():
        item = p31_items(bios_v, [person], [QA_ATTRIBUTES[ai]])[0]
        rows.append(
            {
                "pretrained on": v,
                "question": item.prompt.removesuffix(" Answer:"),
                "model's answer": p31.generate_answer(model, item, eos),
                "truth": item.answer,
            }
        )
display(pd.DataFrame(rows).set_index(["pretrained on", "question"]))

# %% tags=["remove-output"]
# NBVAL_IGNORE_OUTPUT
try:
    import ipywidgets as widgets

    pick_variant = widgets.Dropdown(options=list(explorer_models), description="variant")
    pick_person = widgets.Dropdown(options=[int(i) for i in p_test[:50]], description="person")
    pick_attr = widgets.Dropdown(options=list(QA_ATTRIBUTES), description="question")
    shown = widgets.Output()

    def show(_change=None) -> None:
        model, bios_v = explorer_models[pick_variant.value]
        item = p31_items(bios_v, [pick_person.value], [pick_attr.value])[0]
        shown.clear_output()
        with shown:
            print(item.prompt)
            print("model:", p31.generate_answer(model, item, eos))
            print("truth:", item.answer)

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
#   states: a rank-16 update let the Q-probe memorise its few training people by their name
#   tokens, and cost minutes per model. The Q-probe reads the last name token (our names have
#   no end marker).
# - **Celebrities** are as many as the minority, not 100K.

# %%
# NBVAL_IGNORE_OUTPUT
print(f"chapter executed in {time.perf_counter() - chapter_start:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
def pc(x: float) -> str:
    """Whole percent: coarse enough for a checked output."""
    return f"{100 * x:.0f}%"


known = min(memorised.values()) >= 0.8  # can extraction be asked of these models at all?
single = variant_res.get("single")
ledger = Ledger("part3_1_knowledge_storage", scale)
ledger.add(
    "pretraining memorises the biographies (attribute tokens)",
    "> 99%",
    "Part 3.1, Sec. 2.1",
    f"{pc(min(memorised.values()))} (worst variant)",
    threshold_verdict(min(memorised.values()), 0.99, 0.9),
    "value-token accuracy",
)
if "single" in plan.mixed_variants:
    mixed_single = results["mixed:single"]["test"]["mean"]
    ledger.add(
        "mixed training extracts on P_test (bioS single)",
        "86.6%",
        "Part 3.1, Result 1",
        f"{pc(mixed_single)}",
        threshold_verdict(mixed_single, 0.7, 0.3),
    )
if "multi5+permute" in plan.mixed_variants:
    mixed_aug = results["mixed:multi5+permute"]["test"]["mean"]
    ledger.add(
        "mixed training extracts on P_test (multi5+permute; our extra row)",
        "not reported",
        "Part 3.1, Sec. 3",
        f"{pc(mixed_aug)}",
        threshold_verdict(mixed_aug, 0.7, 0.3),
    )
if single is not None:
    lora_test = single["lora"]["test"]["mean"]
    train_acc = max(single["lora"]["train"]["mean"], single.get("full", {}).get(
        "train", {"mean": 0.0})["mean"])
    if not known:
        verdict = NOT_HERE
    elif lora_test <= 0.25:
        verdict = "reproduced" if train_acc >= 0.6 else "partly"
    else:
        verdict = "contradicted" if lora_test >= 0.5 else "partly"
    ledger.add(
        "pretrain on bioS single + QA fine-tune: P_train high, P_test near zero",
        "P_test 9.7%",
        "Part 3.1, Result 2",
        f"P_test {pc(lora_test)}, P_train {pc(train_acc)}",
        verdict,
        "LoRA P_test; P_train: best of LoRA and full fine-tuning",
    )
for v in plan.variants:
    if v not in PAPER_FT:
        continue
    ours = variant_res[v]["lora"]["test"]["mean"]
    paper = PAPER_FT[v] / 100
    if not known:
        verdict = NOT_HERE
    elif paper <= 0.1:  # the claim is "fails": at most a few points
        verdict = "reproduced" if ours <= 0.2 else "partly" if ours <= 0.4 else "contradicted"
    else:
        verdict = threshold_verdict(ours, 0.75 * paper, 0.4 * paper)
    ledger.add(f"pretrain on {v} + LoRA QA fine-tune, P_test", f"{PAPER_FT[v]}%",
               "Part 3.1, Result 3 (Fig. 3)", f"{pc(ours)}", verdict)
if len([v for v in plan.variants if v in PAPER_FT]) >= 3:
    vs = [v for v in plan.variants if v in PAPER_FT]
    ours_rank = pd.Series([ft_mean[v] for v in vs]).rank()
    paper_rank = pd.Series([PAPER_FT[v] for v in vs]).rank()
    rho = float(np.corrcoef(ours_rank, paper_rank)[0, 1]) if ours_rank.std() > 0 else float("nan")
    # a rank among near-zero accuracies is noise: count the variants the paper finds working
    # (>= 40%) that stand 10 points clear of every variant it finds failing (<= 10%)
    works = [v for v in vs if PAPER_FT[v] >= 40]
    floor = max([ft_mean[v] for v in vs if PAPER_FT[v] <= 10], default=0.0)
    clear = [v for v in works if ft_mean[v] >= floor + 0.1]
    if not (known and np.isfinite(rho)) or not clear:
        verdict = NOT_HERE
    elif rho >= 0.8 and len(clear) == len(works):
        verdict = "reproduced"
    else:
        verdict = "partly"
    ledger.add(
        "more augmentation, better extraction (variant ranking)",
        "ranking of Fig. 3",
        "Part 3.1, Result 3",
        f"Spearman {rho:.1f}; {len(clear)} of {len(works)} working variants clear"
        if np.isfinite(rho) else "no spread",
        verdict,
        "clear: 10 points above every variant the paper finds failing",
    )
if single is not None and "multi5+permute" in plan.variants:
    s1, a1 = first_position("single"), first_position("multi5+permute")
    own = own_position("single")
    gap = a1 - s1
    if not known:
        verdict = NOT_HERE
    elif a1 >= 0.7 and gap >= 0.4 and own >= 0.7:
        verdict = "reproduced"
    elif gap >= 0.15:
        verdict = "partly"
    else:
        verdict = "contradicted" if gap <= 0 and own >= 0.7 else NOT_HERE
    ledger.add(
        "P-probing: single stores an attribute just before it, multi5+permute right after the name",
        "~0% vs ~100% at position 1",
        "Part 3.1, Result 4 (Fig. 5)",
        f"position 1: {pc(s1)} vs {pc(a1)}; single own position {pc(own)}",
        verdict,
        "attributes 2-6, held-out people",
    )
if len(plan.variants) >= 3:
    ledger.add(
        "Q-probe accuracy tracks QA fine-tune accuracy",
        "close correlation",
        "Part 3.1, Result 5 (Fig. 7)",
        f"r = {q_corr:.2f}" if np.isfinite(q_corr) else "no spread",
        threshold_verdict(q_corr, 0.8, 0.5, known and np.isfinite(q_corr)),
        "Pearson r over variant x attribute",
    )
if plan.celebrities:
    base_acc = variant_res[plan.minority_variant]["lora"]["test"]["mean"]
    with_celeb = celeb["minority_test"]["mean"]
    lift = with_celeb - base_acc
    if not (known and celeb["bio_accuracy_minority"] >= 0.8):
        verdict = NOT_HERE
    elif with_celeb >= 0.5 and lift >= 0.3:
        verdict = "reproduced"
    elif lift >= 0.1:
        verdict = "partly"
    else:
        verdict = NOT_HERE
    ledger.add(
        "celebrities help the minority extract",
        "4.4% -> 86.8%",
        "Part 3.1, Result 6 (Fig. 8)",
        f"{pc(base_acc)} -> {pc(with_celeb)}",
        verdict,
        f"minority {plan.minority_variant}",
    )
ledger
