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
from physlm.data.bios_qa import HINTED, QA_ATTRIBUTES, p32_items
from physlm.experiments import part3_1
from physlm.experiments.part3_2 import (
    CLASSIFY,
    COMPARE,
    DUAL,
    INVERSE,
    RETRIEVAL,
    answer_text,
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
plan = scale_for(scale, seed=seed)
knowledge = plan.knowledge
torch.set_num_threads(plan.threads or torch.get_num_threads())
use_style()
chapter_start = time.perf_counter()
p_train, p_test = halves(plan)
print(
    f"scale {plan.scale}: N = {knowledge.people} people ({len(p_train)} P_train, "
    f"{len(p_test)} P_test, {len(scored_people(plan))} scored), model "
    f"{knowledge.layers} layers x {knowledge.heads} heads x {knowledge.width} wide"
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
forward_bios = bios_stream(plan, reverse=False)
reverse_bios = bios_stream(plan, reverse=True)
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
for task in (*RETRIEVAL, *DUAL, *CLASSIFY, *COMPARE, *INVERSE):
    hints = (False, True) if task in HINTED else (False,)
    for hint in hints:
        it = p32_items(forward_bios, task, [person, int(p_test[1])], hint=hint, seed=seed)[0]
        examples.append({"task": task, "hint": hint, "text": it.text})
with pd.option_context("display.max_colwidth", 200):
    display(pd.DataFrame(examples))

# %% [markdown]
# ## Method
#
# Every model is Part 3.1's GPT-2 with rotary embedding, trained in two stages through the run
# cache:
#
# 1. **Parent**: the Part 3.1 chapter's model pretrained on the multi5+permute biographies of
#    all N people. It is *the same run*, found by its key in the run cache when the Part 3.1
#    chapter has trained it and trained here otherwise. The reverse parent is pretrained by the
#    same recipe on the reverse6 twin of those biographies.
# 2. **Fine-tune**: from the parent's weights, the six Part 3.1 questions and every Part 3.2 task
#    of the chapter on P_train, with biography rows kept in the mix. The Part 3.1 questions make
#    this the paper's "QA-fine-tuned" starting point (Result 5). The same fine-tune runs on the
#    forward and on the reverse parent.
#
# Every question is then asked about the people of P_test, whose facts the model saw only in
# their biographies, and scored by exact match of a greedy answer.

# %%
rows = []
for reverse in (False, True):
    bios = bios_stream(plan, reverse)
    fdata = finetune_data(plan, reverse)
    rows.append(
        {
            "pretraining": "reverse6" if reverse else plan.source,
            "tokens per row": bios.config.seq_len,
            "parent steps": part3_1.pretrain_config(knowledge, bios.steps).steps,
            "fine-tune steps": finetune_config(plan, fdata).steps,
            "fine-tune items": len(fdata.items),
        }
    )
print(pd.DataFrame(rows).to_string(index=False))
print(
    f"{knowledge.rows} rows per step; parent: {knowledge.exposures} exposures per person, peak "
    f"lr {knowledge.lr}; fine-tune: {plan.finetune_epochs} passes, QA share "
    f"{plan.finetune_qa_fraction}, lr {plan.finetune_lr}, every weight trained"
)

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
prefetch(plan)
(forward_parent, forward_model), (reverse_parent, reverse_model) = (
    finetune(plan, reverse) for reverse in (False, True)
)
fwd, rev = forward_model.model, reverse_model.model
print(f"4 runs ready in {time.perf_counter() - t0:.0f} s with {plan.workers} worker(s)")

# %%
shared = forward_parent.key == part3_1.pretrained(knowledge, plan.source)[0].key
print(f"parameters: {count_params(fwd):,} (embeddings included)")
print(f"forward parent {forward_parent.key}: the Part 3.1 chapter's {plan.source} run: {shared}")

# %% [markdown]
# ## Result 1: retrieval works; the birth year alone does not come for free
#
# The six Part 3.1 questions, the two partial-retrieval tasks of Part 3.2 (Result 2), "What
# is the birth day of X?" and "What is the birth year of X?", and two dual-retrieval tasks
# (Result 1), which ask for two attributes at once. The full date is stored as "Month Day,
# Year"; the paper finds that a model that states the full date perfectly still struggles to
# give the year alone, because it would have to skip the tokens before it. Dual retrieval is
# near perfect on multi5+permute data in either order; only fixed-order data makes the order of
# the two questions matter (asking the company city before the company). The expected column of
# a dual task is the product of its two single retrievals: what two independent lookups give.

# %%
retrieval = pd.DataFrame(
    [
        {"question": q, "P_test accuracy": score_task(fwd, plan, forward_bios, q).accuracy}
        for q in (*QA_ATTRIBUTES, *RETRIEVAL, *DUAL)
    ]
)
acc = dict(zip(retrieval["question"], retrieval["P_test accuracy"], strict=True))
retrieval["expected"] = [
    acc[q.split(",")[0].removeprefix("dual:")] * acc[q.split(",")[1]] if q in DUAL else np.nan
    for q in retrieval["question"]
]
print(retrieval.round(3).to_string(index=False))
full_retrieval = float(np.mean([acc[a] for a in QA_ATTRIBUTES]))
date_acc, year_acc, day_acc = acc["birth_date"], acc["partial_birth_year"], acc["partial_birth_day"]
dual_acc = {q: acc[q] for q in DUAL}
dual_expected = dict(zip(retrieval["question"], retrieval["expected"], strict=True))

# %% mystnb={"figure": {"caption": "Out-of-distribution (P_test) exact-match accuracy of retrieval: the six Part 3.1 attributes, the partial retrieval of the birth day and year, and two dual retrievals.", "name": "fig-part3-2-retrieval"}}
fig, ax = plt.subplots(figsize=(7, 4.2))
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
# column is the accuracy of always giving the most common answer. The tasks: is the birth
# month even, the month modulo 6 and 12, the "luckiness" of the major (a fixed number 0-99 per
# major) modulo 5; was X born in a later month than Y, their month difference (-11..11), and
# is X's major luckier than Y's. The paper trains on up to
# millions of people; with 10K training people, the even-month question reaches 75.9% without a
# hint (80.3% if trained with hints) and 94.2% with the hint at test time, which the paper reads
# as hint accuracy (91.0%) plus a coin flip on the rest. With a hint the task splits in two:
# retrieving the month (the "hint itself right" column) and mapping a written month to the
# answer (the last column), which needs no knowledge of the person at all.

# %%
manip = []
for task in (*CLASSIFY, *COMPARE):
    plain = score_task(fwd, plan, forward_bios, task, hint=False)
    hinted = score_task(fwd, plan, forward_bios, task, hint=True)
    manip.append(
        {
            "task": task,
            "chance": chance(task, forward_bios, scored_people(plan), plan.seed),
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
fig, ax = plt.subplots(figsize=(8, 3.8))
manip[["chance", "no hint", "hint at test"]].plot.bar(ax=ax, rot=20)
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
            "forward pretraining": score_task(fwd, plan, forward_bios, task).accuracy,
            "reverse6 pretraining": score_task(rev, plan, reverse_bios, task).accuracy,
        }
    )
inverse = pd.DataFrame(inverse).set_index("task")
print(inverse.round(3).to_string())
recall = {
    label: name_recall(parent.model, bios, scored_people(plan))
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
    items = p32_items(forward_bios, task, scored_people(plan), seed=plan.seed)
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
# ## Explorer
#
# Pick a P_test person and a question: the forward model answers directly and, where the task
# has one, after writing the hint, beside the truth. The interactive version needs a live
# kernel; the rendered book shows the fixed sample of questions below it.

# %%
def explorer_rows(person: int, task: str) -> list[dict]:
    """The model's replies to one question about one P_test person, with and without a hint."""
    rows = []
    for hint in (False, True) if task in HINTED else (False,):
        items = p32_items(forward_bios, task, scored_people(plan), hint=hint, seed=plan.seed)
        item = next(it for it in items if it.person == person)
        rows.append(
            {
                "question": item.prompt.rsplit(" ", 1)[0],
                "hint": hint,
                "model": answer_text(fwd, item),
                "truth": item.completion,
            }
        )
    return rows


rng = np.random.default_rng(plan.seed)
sample_people = rng.choice(scored_people(plan), size=6, replace=False)
sample_tasks = rng.choice(len(plan.tasks), size=6, replace=False)
sample = [
    row
    for person, k in zip(sample_people.tolist(), sample_tasks.tolist(), strict=True)
    for row in explorer_rows(person, plan.tasks[k])
]
with pd.option_context("display.max_colwidth", 120):
    display(pd.DataFrame(sample).set_index(["question", "hint"]))

# %% tags=["remove-output"]
# NBVAL_IGNORE_OUTPUT
try:
    import ipywidgets as widgets

    pick_person = widgets.Dropdown(
        options=[int(i) for i in scored_people(plan)[:50]], description="person"
    )
    pick_task = widgets.Dropdown(options=list(plan.tasks), description="question")
    shown = widgets.Output()

    def show(_change=None) -> None:
        shown.clear_output()
        with shown:
            for row in explorer_rows(pick_person.value, pick_task.value):
                print(row["question"] + ("  [hint first]" if row["hint"] else ""))
                print("  model:", row["model"])
                print("  truth:", row["truth"])

    for w in (pick_person, pick_task):
        w.observe(show, names="value")
    show()
    display(widgets.VBox([pick_person, pick_task, shown]))
except ImportError:
    print("ipywidgets is not installed; the table above is the static explorer")

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
#   comparison needs two retrievals in a row. Our fine-tuned model extracts the facts of P_test
#   people far less reliably than the paper's (it reports about 100% for the birth date), which
#   is what a bigger model, more people and more exposures buy. Inverse search after reverse pretraining
#   needs the same kind of extraction in the other direction, and the diagnostic above separates
#   the two steps: stored "attributes -> name" inside the biography, and extracting it from a
#   question about a person never asked about in training.
# - **Fine-tuning.** The parent is the paper's: the Part 3.1 model pretrained on multi5+permute
#   (the same run as in the Part 3.1 chapter). The paper then teaches each task by LoRA (rank
#   8/16 on query/value, rank 128 on the embedding) on task data only, one task at a time. We
#   fine-tune every weight on the Part 3.1 questions and all the chapter's tasks at once, with
#   biographies kept in the mix so that a small model does not overwrite what it stored; with the
#   Part 3.1 questions in the mix this is the "QA-fine-tuned" starting point of Result 5, which
#   the paper finds within about a point of the BIO-pretrained one. Why not LoRA here: in our
#   trials a LoRA adapter of the paper's targets did not learn to say "Yes", "No" or "minus" at
#   all. Those words never occur in the biographies, and with tied input and output embeddings
#   peft's embedding adapter changes the input lookup only, so the output layer that would have
#   to produce them stays frozen. Whether the paper's wider models reach such words through
#   their hidden states alone we have not tested; the `gpu` preset keeps full fine-tuning.
# - **Tasks.** 13 of the paper's 28: birth day and year, two of the six dual retrievals, month
#   mod 2, 6 and 12, major luckiness mod 5, later month, month difference, luckier major, and two
#   of the ten inverse tasks. Words of the questions and the hint markers are ours; tokens are
#   words, not GPT-2 BPE. A closing "." is not trained, so exact match compares the answer's
#   tokens only.
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
worst_dual = min(dual_acc, key=dual_acc.get)
ledger.add(
    "dual retrieval works in either order on multi5+permute (R1)",
    "near perfect",
    "Part 3.2, R1",
    dual_acc[worst_dual],
    NOT_HERE if not stores else "reproduced"
    if dual_acc[worst_dual] >= 0.8 * dual_expected[worst_dual] else
    "partly" if dual_acc[worst_dual] >= 0.5 * dual_expected[worst_dual] else "contradicted",
    ", ".join(f"{q.removeprefix('dual:')} {dual_acc[q]:.0%} (two lookups {dual_expected[q]:.0%})"
              for q in DUAL),
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
luckier = manip.loc["major_luckier"]
ledger.add(
    "ranking majors by luckiness stays near chance without a hint (R3)",
    "52.2% at 25K samples (chance ~50.5%)",
    "Part 3.2, R3",
    luckier["no hint"],
    NOT_HERE if not stores else "reproduced" if luckier["no hint"] <= luckier["chance"] + 0.1
    else "contradicted",
    f"chance {luckier['chance']:.0%}; with the hint at test {luckier['hint at test']:.0%}",
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
