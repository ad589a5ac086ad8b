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
# # Part 3.2: Knowledge manipulation
#
# **Question.** A model that has stored a fact and can say it back ("What is the birth date of
# X?") has the knowledge. Can it also *use* it? Part 3.2 of the series {cite}`allenzhu2023part32`
# asks four kinds of questions about the people of Part 3.1 {cite}`allenzhu2023part31`:
# retrieval (also of a part of an attribute, or two at once), classification ("was X born in an
# even month?"), comparison ("was X born in a later month than Y?") and inverse search ("who was
# born on October 2, 1996?"). Its answers: retrieval works, but the birth *year* alone is hard;
# classification and comparison stay near chance unless the model first writes the fact down (a
# chain-of-thought hint, needed at test time, not only in training); inverse search is about 0%
# for every augmentation and training protocol, and only data written in the other direction
# helps.
#
# This chapter runs those experiments at the scale it was executed with, adds the practical fix
# for inverse search (an external index beside the model), and closes with a ledger of the
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
from physlm.data.bios_qa import QA_ATTRIBUTES, p32_items
from physlm.experiments.part3_2 import (
    CLASSIFY,
    COMPARE,
    INVERSE,
    RETRIEVAL,
    bios_stream,
    chance,
    finetune,
    finetune_config,
    finetune_data,
    forward_checker,
    given_values,
    halves,
    name_recall,
    prefetch,
    pretrain_config,
    pretrain_data,
    records,
    scale_for,
    score_task,
    scored_people,
)
from physlm.measure.index import AttributeIndex, search
from physlm.model import count_params
from physlm.plots import savefig, use_style

if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
plan = scale_for(scale)
torch.set_num_threads(plan.threads or torch.get_num_threads())
use_style()
chapter_start = time.perf_counter()
p_train, p_test = halves(plan, seed)
print(
    f"scale {plan.scale}: N = {plan.people} people ({len(p_train)} P_train, {len(p_test)} "
    f"P_test, {len(scored_people(plan, seed))} scored), model {plan.shape.label()}"
)

# %% [markdown]
# ## Data
#
# The people are those of bioS (Part 3.1 App. A.1): unique three-part names, a birth date
# (200 years x 12 months x 28 days), a birth city, a university, a major, an employer and its
# city, drawn uniformly. Part 3.2 starts from the augmentation under which Part 3.1's models
# extract knowledge best, **multi5+permute**: five renderings per person, each with fresh
# templates and its own sentence order. For inverse search Part 3.2 also pretrains on
# **reverse** biographies, in which the name comes after the attributes; ours is `reverse6`: the
# six sentences speak of "he" or "she", and the name closes the biography. The same person in
# both:

# %%
forward_bios = bios_stream(plan, reverse=False, seed=seed)
reverse_bios = bios_stream(plan, reverse=True, seed=seed)
person = int(p_test[0])
for label, bios in (("multi5+permute", forward_bios), ("multi5+permute+reverse6", reverse_bios)):
    tokens, _ = bios.render_person(person)
    print(f"{label}:\n  {bios.vocab.decode(tokens)}\n")

# %% [markdown]
# The questions (our wording where the paper leaves it open). Classification and comparison are
# trained "with hint" (Part 3.2 Sec. 4.1): for half of the training people the needed facts are
# written before the answer. At test time the prompt ends in `Answer:` (answer directly) or
# `Hint:` (write the facts first), our stand-in for the paper's special tokens.

# %%
examples = []
for task in (*RETRIEVAL, *CLASSIFY, *COMPARE, *INVERSE):
    hints = (False, True) if task in (*CLASSIFY, *COMPARE) else (False,)
    for hint in hints:
        it = p32_items(forward_bios, task, [person, int(p_test[1])], hint=hint, seed=seed)[0]
        examples.append({"task": task, "hint": hint, "text": it.text})
with pd.option_context("display.max_colwidth", 200):
    display(pd.DataFrame(examples))

# %% [markdown]
# ## Method
#
# Every model is the series' GPT-2 with rotary embedding, trained in two stages through the run
# cache:
#
# 1. **Parent** (the Part 3.1 model): the biographies of all N people mixed with the Part 3.1
#    questions of P_train, in rows that are all biography or all QA (Part 3.1 mixed training).
#    It learns to extract the facts of people whose questions it never saw (P_test).
# 2. **Manipulation fine-tune**: from the parent's weights, every Part 3.2 task of the chapter
#    on P_train, with biography and Part 3.1 rows kept in the mix. The same fine-tune runs on
#    the forward and on the reverse parent.
#
# Every question is then asked about the people of P_test, whose facts the model saw only in
# their biographies, and scored by exact match of a greedy answer.

# %%
rows = []
for reverse in (False, True):
    pdata = pretrain_data(plan, reverse, seed)
    fdata = finetune_data(plan, reverse, seed)
    rows.append(
        {
            "pretraining": "reverse6" if reverse else "forward",
            "parent steps": pretrain_config(plan, pdata, seed).steps,
            "parent QA items": len(pdata.items),
            "fine-tune steps": finetune_config(plan, fdata, seed).steps,
            "fine-tune items": len(fdata.items),
        }
    )
print(pd.DataFrame(rows).to_string(index=False))
print(
    f"rows per step {plan.rows} x {plan.seq_len} tokens; parent: {plan.pretrain_exposures} "
    f"exposures per person, QA share {plan.qa_fraction}, peak lr {plan.lr}; fine-tune: "
    f"{plan.finetune_epochs} passes, QA share {plan.finetune_qa_fraction}, lr {plan.finetune_lr}"
)

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
prefetch(plan, seed)
(forward_parent, forward_model), (reverse_parent, reverse_model) = (
    finetune(plan, reverse, seed, progress=False) for reverse in (False, True)
)
fwd, rev = forward_model.model, reverse_model.model
print(f"4 runs ready in {time.perf_counter() - t0:.0f} s with {plan.workers} worker(s)")

# %%
print(f"parameters: {count_params(fwd):,} (embeddings included)")

# %% [markdown]
# ## Result 1: retrieval works; the birth year alone does not come for free
#
# The six Part 3.1 questions and the two partial-retrieval tasks of Part 3.2 (Result 2): "What
# is the birth day of X?" and "What is the birth year of X?". The full date is stored as
# "Month Day, Year"; the paper finds that a model that states the full date perfectly still
# struggles to give the year alone, because it would have to skip the tokens before it.

# %%
retrieval = []
for a in QA_ATTRIBUTES:
    retrieval.append({"question": a, "P_test accuracy": score_task(fwd, plan, forward_bios, a,
                                                                   seed=seed).accuracy})
for task in RETRIEVAL:
    retrieval.append({"question": task, "P_test accuracy": score_task(fwd, plan, forward_bios,
                                                                      task, seed=seed).accuracy})
retrieval = pd.DataFrame(retrieval)
print(retrieval.round(3).to_string(index=False))
acc = dict(zip(retrieval["question"], retrieval["P_test accuracy"], strict=True))
full_retrieval = float(np.mean([acc[a] for a in QA_ATTRIBUTES]))
date_acc, year_acc, day_acc = acc["birth_date"], acc["partial_birth_year"], acc["partial_birth_day"]

# %% mystnb={"figure": {"caption": "Out-of-distribution (P_test) exact-match accuracy of retrieval: the six Part 3.1 attributes and the partial retrieval of the birth day and year.", "name": "fig-part3-2-retrieval"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.barh(retrieval["question"], retrieval["P_test accuracy"], color="C0")
ax.set_xlim(0, 1)
ax.set_xlabel("P_test accuracy")
ax.invert_yaxis()
ax.set_title("Retrieval (forward pretraining)")
_ = savefig(fig, "part3_2_retrieval")

# %% [markdown]
# ## Result 2: classification and comparison need the hint at test time
#
# Each task is asked twice about P_test: answer directly, and write the hint first. The chance
# column is the accuracy of always giving the most common answer. The paper trains on up to
# millions of people; with 10K training people, the even-month question reaches 75.9% without a
# hint (80.3% if trained with hints) and 94.2% with the hint at test time, which the paper reads
# as hint accuracy (91.0%) plus a coin flip on the rest. With a hint the task splits in two:
# retrieving the month (the "hint itself right" column) and mapping a written month to the
# answer (the last column), which needs no knowledge of the person at all.

# %%
manip = []
for task in (*CLASSIFY, *COMPARE):
    plain = score_task(fwd, plan, forward_bios, task, hint=False, seed=seed)
    hinted = score_task(fwd, plan, forward_bios, task, hint=True, seed=seed)
    manip.append(
        {
            "task": task,
            "chance": chance(task, forward_bios, scored_people(plan, seed), seed),
            "no hint": plain.accuracy,
            "hint at test": hinted.accuracy,
            "hint itself right": hinted.hint_accuracy,
            "answer right given right hint": float(hinted.answer_ok[hinted.hint_ok].mean())
            if hinted.hint_ok.any()
            else float("nan"),
        }
    )
manip = pd.DataFrame(manip).set_index("task")
print(manip.round(3).to_string())

# %% mystnb={"figure": {"caption": "Classification and comparison on P_test, answered directly or after writing the hint, against the most-common-answer baseline.", "name": "fig-part3-2-hint"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
manip[["chance", "no hint", "hint at test"]].plot.bar(ax=ax, rot=0)
ax.set_ylim(0, 1)
ax.set_ylabel("P_test accuracy")
ax.set_title("Manipulation with and without a hint")
_ = savefig(fig, "part3_2_hint")

# %% [markdown]
# ## Result 3: inverse search fails, unless the data is written the other way
#
# The inverse questions name attributes and ask for the person's first or full name. The
# forward model was fine-tuned on them for P_train exactly as on the other tasks; the reverse
# model went through the same fine-tune from a parent pretrained on reverse6 biographies. As a
# diagnostic we also ask whether each parent has stored "attributes -> name" at all: does it
# predict the name where its biography states it? In a forward biography the name comes first,
# with nothing before it to predict it from; in a reverse biography it comes after the facts.

# %%
inverse = []
for task in INVERSE:
    inverse.append(
        {
            "task": task,
            "forward pretraining": score_task(fwd, plan, forward_bios, task, seed=seed).accuracy,
            "reverse6 pretraining": score_task(rev, plan, reverse_bios, task, seed=seed).accuracy,
        }
    )
inverse = pd.DataFrame(inverse).set_index("task")
print(inverse.round(3).to_string())
recall = {
    label: name_recall(parent.model, bios, scored_people(plan, seed))
    for label, parent, bios in (
        ("forward", forward_parent, forward_bios),
        ("reverse6", reverse_parent, reverse_bios),
    )
}
print(
    "parent predicts the full name inside the person's own biography (teacher-forced): "
    + ", ".join(f"{k} {v:.0%}" for k, v in recall.items())
)
inverse_fwd = float(inverse["forward pretraining"].max())
inverse_rev = float(inverse["reverse6 pretraining"].max())

# %% [markdown]
# ## The practical fix: an external index beside the model
#
# What a deployed system does instead (Part 3.2 lists retrieval augmentation among the remedies,
# Result 9): keep the reversal out of the model. An inverted index over the biographies maps a
# birth date to the people whose biography states it (a "registry"); the forward model then
# checks every other attribute the question gives ("What is the birth city of X?"), and
# candidates whose answer differs are dropped. The index holds only the birth date, so the
# birth-city check is the model's work. Same test people, same questions:

# %%
index = AttributeIndex.build(records(forward_bios), ["birth_date"])
check = forward_checker(fwd, forward_bios)
facts = dict(records(forward_bios))
rag = []
for task in INVERSE:
    target = task.split("->")[1]
    items = p32_items(forward_bios, task, scored_people(plan, seed), seed=seed)
    hits, unique = 0, 0
    for it in items:
        found = search(index, given_values(task, facts[it.person]), check)
        unique += len(found) == 1
        if found:
            f = forward_bios.facts(found[0])
            hits += (f["name"] if target == "full" else f["name"].split()[0]) == it.answer
    rag.append(
        {
            "task": task,
            "model alone": inverse.loc[task, "forward pretraining"],
            "index + forward model": hits / len(items),
            "single candidate left": unique / len(items),
        }
    )
rag = pd.DataFrame(rag).set_index("task")
print(rag.round(3).to_string())
index_acc = float(rag["index + forward model"].min())

# %% mystnb={"figure": {"caption": "Inverse search on P_test: the forward model alone, a model pretrained on reverse biographies, and the forward model behind a birth-date index.", "name": "fig-part3-2-inverse"}}
both = inverse.join(rag[["index + forward model"]])
fig, ax = plt.subplots(figsize=(7, 3.6))
both.plot.bar(ax=ax, rot=0)
ax.set_ylim(0, 1)
ax.set_ylabel("P_test accuracy")
ax.set_xticklabels([t.removeprefix("inverse:") for t in both.index], fontsize="small")
ax.set_title("Inverse search")
_ = savefig(fig, "part3_2_inverse")

# %% [markdown]
# ## Where this edition departs from the paper
#
# - **Sizes.** The paper uses N = 100K people, a 12-layer GPT-2 (124M parameters) and tests on
#   50K people with 2.5K-2.5M training samples per task. At `cpu` scale a model of a few hundred
#   thousand parameters learns a few hundred people, so every task has about a hundred training
#   people: far below the sample sizes at which the paper's classification without a hint leaves
#   chance. The `gpu` and `paper` presets describe larger runs.
# - **What the small scale limits.** Everything with a hint rests on retrieval: the hint *is* a
#   retrieval, so hinted accuracy is capped near "hint right + half of the rest", and a
#   comparison needs two retrievals in a row. Our parents extract the facts of P_test people far
#   less reliably than the paper's (it reports about 100% for the birth date), which is what a
#   bigger model, more people and more exposures buy. Inverse search after reverse pretraining
#   needs the same kind of extraction in the other direction, and the diagnostic above separates
#   the two steps: stored "attributes -> name" inside the biography, and extracting it from a
#   question about a person never asked about in training.
# - **Fine-tuning.** The paper teaches each task by LoRA (rank 8/16 on query/value, rank 128 on
#   the embedding) on task data only, one task at a time. We fine-tune every weight on all the
#   chapter's tasks at once, with biographies and Part 3.1 questions kept in the mix so that a
#   small model does not overwrite what it stored. The parent is the Part 3.1 mixed-training
#   model, i.e. the "QA-fine-tuned" starting point of Part 3.2 Result 5.
# - **Tasks.** A subset of the 28: day and year retrieval, even month, month mod 12, later
#   month, and two of the ten inverse tasks. Words of the questions and the hint markers are
#   ours; tokens are words, not GPT-2 BPE. A closing "." is not trained, so exact match compares
#   the answer's tokens only.
# - **Reverse data.** Our `reverse6` keeps the six template sentences with the pronoun as subject
#   and adds "He/She is Name." at the end; the paper's exact reverse wording is not in our notes.
# - **The index** is our addition, an instance of the retrieval augmentation the paper names.
#
# ## Claims
#
# The paper's numbers are quoted from Part 3.2 (results as numbered there); ours come from the
# runs above, on P_test.

# %%
# NBVAL_IGNORE_OUTPUT
print(f"chapter wall time at scale {scale}: {time.perf_counter() - chapter_start:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
ledger = Ledger("part3_2_knowledge_manipulation", scale)
stores = full_retrieval >= 0.5  # the manipulation claims presuppose stored, extractable facts
ledger.add(
    "retrieval of stored attributes works out of distribution (multi5+permute)",
    "~100% birth date, 98% major",
    "Part 3.2, Sec. 2",
    full_retrieval,
    threshold_verdict(full_retrieval, 0.9, 0.5),
    "mean of the six Part 3.1 questions on P_test",
)
year_gap = date_acc - year_acc
ledger.add(
    "the birth year alone is retrieved worse than the full date (R2)",
    "poor, while the full date is ~100%",
    "Part 3.2, R2",
    year_acc,
    NOT_HERE if not stores else "reproduced" if year_gap >= 0.1 else
    "partly" if year_gap > 0 else "contradicted",
    f"full date {date_acc:.0%}, day {day_acc:.0%}",
)
even = manip.loc["month_mod2"]
ledger.add(
    "even-month classification without a hint is poor with few training samples (R3)",
    "60.4% at 2.5K samples (chance 50%)",
    "Part 3.2, R3",
    even["no hint"],
    NOT_HERE if not stores else "reproduced" if even["no hint"] <= even["chance"] + 0.15 else
    "partly" if even["no hint"] < even["hint at test"] - 0.1 else "contradicted",
    f"{len(p_train)} training people; chance {even['chance']:.0%}",
)
hint_lift = even["hint at test"] - even["no hint"]
ledger.add(
    "with the hint written at test time, even-month classification is high (R4)",
    "94.2% (10K samples)",
    "Part 3.2, R4",
    even["hint at test"],
    NOT_HERE if not stores else "reproduced" if even["hint at test"] >= 0.85 else
    "partly" if hint_lift >= 0.1 else NOT_HERE,
    f"no hint {even['no hint']:.0%}; the month itself right {even['hint itself right']:.0%}",
)
later = manip.loc["month_later"]
ledger.add(
    "month comparison: near chance without a hint, far better with it (R3-R4)",
    "85.6% without at 50K samples; CoT needed with few",
    "Part 3.2, R3-R4",
    f"{later['no hint']:.2f} / {later['hint at test']:.2f}",
    NOT_HERE if not stores or later["hint itself right"] < 0.5 else "reproduced"
    if later["no hint"] <= later["chance"] + 0.15 and later["hint at test"] >= 0.8 else
    "partly" if later["hint at test"] > later["no hint"] + 0.1 else "contradicted",
    f"no hint / hint at test; both months right in {later['hint itself right']:.0%} of hints",
)
ledger.add(
    "inverse search is about 0% after forward pretraining (R7)",
    "~0%",
    "Part 3.2, R7",
    inverse_fwd,
    NOT_HERE if not stores else "reproduced" if inverse_fwd <= 0.05 else "contradicted",
    "best of the inverse tasks",
)
ledger.add(
    "reverse pretraining makes inverse search possible (R7)",
    "non-trivial",
    "Part 3.2, R7",
    inverse_rev,
    "reproduced" if inverse_rev >= max(0.2, inverse_fwd + 0.15) else
    "partly" if inverse_rev > inverse_fwd + 0.03 else NOT_HERE,
    f"best of the inverse tasks; the reverse parent recalls {recall['reverse6']:.0%} of names "
    "inside its biographies",
)
ledger.add(
    "an external index plus forward retrieval answers inverse search (R9, our demonstration)",
    "retrieval augmentation is a remedy",
    "Part 3.2, R9",
    index_acc,
    NOT_HERE if not stores else threshold_verdict(index_acc, 0.8, 0.4),
    "worst of the inverse tasks",
)
ledger
