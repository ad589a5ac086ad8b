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
# This chapter runs those experiments at the scale it was executed with, adds a practical
# alternative to inverse search (an external index beside the model), and closes with a ledger
# of the paper's claims next to ours.

# %% [markdown]
# ## At a glance
#
# ```{glue} at_a_glance
# ```

# %% tags=["parameters"]
scale = "cpu"
seed = 0

# %%
import time

import numpy as np
import pandas as pd
import torch
from IPython.display import HTML, Markdown, display

from physlm.claims import (
    Acc,
    AtLeast,
    AtMost,
    EffectOverControl,
    Ledger,
    NoBetterThan,
    Requires,
    close_chapter,
    compare,
)
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
    hint_helps,
    name_recall,
    prefetch,
    records,
    scale_for,
    score_task,
    scored_people,
)
from physlm.experiments.part3_2 import score as score_items
from physlm.measure.index import AttributeIndex, search
from physlm.model import count_params
from physlm.plots import accuracy_bars, savefig, use_style

if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
plan = scale_for(scale, seed=seed)
knowledge = plan.knowledge
torch.set_num_threads(plan.threads or torch.get_num_threads())
use_style()
chapter_start = time.perf_counter()
p_train, p_test = halves(plan)
n_scored = len(scored_people(plan))


def pct(v: float) -> str:
    """An accuracy as a whole percentage, for tables and text."""
    return "n/a" if v != v else f"{v:.0%}"


display(
    Markdown(
        f"Scale `{plan.scale}`: N = {knowledge.people} people ({len(p_train)} in P_train, "
        f"{len(p_test)} in P_test, {n_scored} of them scored per question); the model has "
        f"{knowledge.layers} layers, {knowledge.heads} heads and width {knowledge.width}."
    )
)

# %% [markdown]
# ## Data
#
# The people are those of bioS (the Part 3.1 paper, App. A.1): unique three-part names, a birth
# date (200 years x 12 months x 28 days), a birth city, a university, a major, an employer and
# its city, drawn uniformly. The paper's Part 3.2 starts from the augmentation under which the
# Part 3.1 models extract knowledge best, **multi5+permute**: five renderings per person, each
# with fresh templates and its own sentence order. For inverse search the paper also pretrains
# on **reverse** biographies, in which the name comes after the attributes; ours is `reverse6`:
# the six sentences speak of "he" or "she", and the name closes the biography. The same person
# in both:

# %%
forward_bios = bios_stream(plan, reverse=False)
reverse_bios = bios_stream(plan, reverse=True)
person = int(p_test[0])
shown_bios = []
for label, bios in (("multi5+permute", forward_bios), ("multi5+permute+reverse6", reverse_bios)):
    tokens, _ = bios.render_person(person)
    shown_bios.append(f"> **{label}:** {bios.vocab.decode(tokens)}")
display(Markdown("\n>\n".join(shown_bios)))

# %% [markdown]
# The questions (our wording where the paper leaves it open), one example per task about the
# same person. Classification and comparison are trained "with hint" (the paper's Sec. 4.1): for
# half of the training people the needed facts are written before the answer. At test time the
# prompt ends in `Answer:` (answer directly) or `Hint:` (write the facts first), our stand-in for
# the paper's special tokens; the examples show the hinted form where a task has one.

# %% tags=["show-input"]
tasks = (*RETRIEVAL, *DUAL, *CLASSIFY, *COMPARE, *INVERSE)
pair = [person, int(p_test[1])]  # comparisons ask about two people
examples = {}
for task in tasks:
    hint = task in HINTED  # the hinted form where the task has one
    item = p32_items(forward_bios, task, pair, hint=hint, seed=seed)[0]
    examples[task] = item.text
with pd.option_context("display.max_colwidth", None):
    display(pd.DataFrame({"question and answer": examples}))

# %% [markdown]
# ## Method
#
# Every model is the GPT-2 with rotary embedding of the previous chapter (Part 3.1), trained in
# two stages through the run cache:
#
# 1. **Parent**: the previous chapter's (Part 3.1) model pretrained on the multi5+permute
#    biographies of all N people. It is *the same run*, found by its key in the run cache when
#    the previous chapter has trained it and trained here otherwise. The reverse parent is
#    pretrained by the same recipe on the reverse6 twin of those biographies.
# 2. **Fine-tune**: from the parent's weights, the six attribute questions of the previous
#    chapter and every Part 3.2 task of this chapter on P_train, with biography rows kept in the
#    mix. The attribute questions make this the paper's "QA-fine-tuned" starting point (the
#    paper's Result 5). The same fine-tune runs on the forward and on the reverse parent.
#
# Every question is then asked about the people of P_test, whose facts the model saw only in
# their biographies, and scored by exact match of a greedy answer.

# %%
runs = []
for reverse in (False, True):
    bios = bios_stream(plan, reverse)
    fdata = finetune_data(plan, reverse)
    runs.append(
        {
            "pretraining": "reverse6" if reverse else plan.source,
            "tokens/row": bios.config.seq_len,
            "parent steps": part3_1.pretrain_config(knowledge, bios.steps).steps,
            "fine-tune steps": finetune_config(plan, fdata).steps,
            "fine-tune items": len(fdata.items),
        }
    )
display(pd.DataFrame(runs).set_index("pretraining").rename_axis(None))
display(
    Markdown(
        f"{knowledge.rows} rows per step. Parent: {knowledge.exposures} exposures per person, "
        f"peak learning rate {knowledge.lr}. Fine-tune: {plan.finetune_epochs} passes over its "
        f"items, QA share {plan.finetune_qa_fraction} of the rows, learning rate "
        f"{plan.finetune_lr}, every weight trained."
    )
)

# %% tags=["remove-output", "nbval-ignore-output"]
t0 = time.perf_counter()
prefetch(plan)
(forward_parent, forward_model), (reverse_parent, reverse_model) = (
    finetune(plan, reverse) for reverse in (False, True)
)
fwd, rev = forward_model.model, reverse_model.model
print(f"4 runs ready in {time.perf_counter() - t0:.0f} s with {plan.workers} worker(s)")

# %%
shared = forward_parent.key == part3_1.pretrained(knowledge, plan.source)[0].key
display(
    Markdown(
        f"The model has {count_params(fwd):,} parameters (embeddings included). The forward "
        f"parent (run `{forward_parent.key}`) "
        + (
            f"is the previous chapter's (Part 3.1) {plan.source} run, shared through the run cache."
            if shared
            else f"is **not** the previous chapter's (Part 3.1) {plan.source} run."
        )
    )
)

# %% [markdown]
# ## Does the model retrieve a stored fact, a part of it, or two facts at once?
#
# The six attribute questions the model was fine-tuned on, the two partial-retrieval tasks,
# "What is the birth day of X?" and "What is the birth year of X?" (the paper's Result 2), and
# two dual-retrieval tasks that ask for two attributes at once (the paper's Result 1). The full
# date is stored as "Month Day, Year"; the paper finds that a model that states the full date
# perfectly still struggles to give the year alone, because it would have to skip the tokens
# before it. It finds dual retrieval near perfect on multi5+permute data in either order; only
# fixed-order data makes the order of the two questions matter (asking the company city before
# the company). Beside each dual task, for reference, the product of its two single retrievals:
# what two independent lookups would give.

# %%
scored = {q: score_task(fwd, plan, forward_bios, q) for q in (*QA_ATTRIBUTES, *RETRIEVAL, *DUAL)}
acc = {q: s.accuracy for q, s in scored.items()}


def lookups(q: str) -> float:
    """What two independent single retrievals would give for a dual task: their product."""
    first, second = q.removeprefix("dual:").split(",")
    return acc[first] * acc[second]


full_retrieval = float(np.mean([acc[a] for a in QA_ATTRIBUTES]))
date, year, day = (scored[q] for q in ("birth_date", "partial_birth_year", "partial_birth_day"))
worst_dual = min(DUAL, key=lambda q: acc[q])
display(
    Markdown(
        f"Each question is asked about {n_scored} P_test people. The six attribute questions: "
        f"{pct(full_retrieval)} on average (the paper's starting model: about 100% for the birth "
        f"date, 98% for the major). The full date {pct(date.accuracy)}, the day alone "
        f"{pct(day.accuracy)}, the year alone {pct(year.accuracy)}. Dual retrieval: "
        + "; ".join(
            f"{q.removeprefix('dual:')} {pct(acc[q])} (two independent lookups: {pct(lookups(q))})"
            for q in DUAL
        )
        + "."
    )
)

# %% mystnb={"figure": {"caption": "Exact-match accuracy on P_test people (95% Wilson intervals): the six biography attributes, the partial retrieval of the birth day and year, and two dual retrievals; the black tick on a dual row is the product of its two single retrievals.", "name": "fig-part3-2-retrieval"}}
retrieval_rows = (*QA_ATTRIBUTES, *RETRIEVAL, *DUAL)
ax = accuracy_bars(
    retrieval_rows,
    {"forward model": [(scored[q].acc.k, scored[q].acc.n) for q in retrieval_rows]},
    horizontal=True,
    marks=[lookups(q) if q in DUAL else None for q in retrieval_rows],
    mark_label="two independent lookups",
    breaks=(len(QA_ATTRIBUTES), len(QA_ATTRIBUTES) + len(RETRIEVAL)),
    axis_label=f"accuracy on P_test (n = {n_scored} people per row)",
    title="Retrieval: whole attributes, parts of the birth date, two attributes at once",
)
_ = savefig(ax.figure, "part3_2_retrieval")

# %% [markdown]
# ## Do classification and comparison need the hint at this scale?
#
# Each task is asked twice about P_test: answer directly, and write the hint first. The chance
# level is the accuracy of always giving the most common answer. The tasks: is the birth month
# even, the month modulo 6 and 12, the "luckiness" of the major (a fixed number 0-99 per major)
# modulo 5; was X born in a later month than Y, their month difference (-11..11), and is X's
# major luckier than Y's. The paper trains on up to millions of people; with 10K training
# people, its even-month question reaches 75.9% without a hint (80.3% if trained with hints)
# and 94.2% with the hint at test time, which the paper reads as hint accuracy (91.0%) plus a
# coin flip on the rest. With a hint the task splits in two: retrieving the month (the hint
# itself) and mapping the written month to the answer (answers right among the items whose hint
# was right). The second step needs no fact about the person, only the rule.
#
# "Poor without a hint" is a negative claim: it says something only where the hinted version,
# the positive control, works at this scale (its answer above chance and above the direct
# answer, beyond the noise).

# %%
manip_scored = {
    task: (
        score_task(fwd, plan, forward_bios, task, hint=False),
        score_task(fwd, plan, forward_bios, task, hint=True),
    )
    for task in (*CLASSIFY, *COMPARE)
}
chances = {
    task: chance(task, forward_bios, scored_people(plan), plan.seed) for task in manip_scored
}

# %% mystnb={"figure": {"caption": "Classification and comparison on P_test people, answered directly or after writing the hint (95% Wilson intervals); the black tick is the chance level (always the most common answer), so a bar that stops short of it is below chance.", "name": "fig-part3-2-hint"}}
ax = accuracy_bars(
    list(manip_scored),
    {
        "no hint": [(p.acc.k, p.acc.n) for p, _ in manip_scored.values()],
        "hint written at test": [(h.acc.k, h.acc.n) for _, h in manip_scored.values()],
    },
    horizontal=True,
    marks=[chances[t] for t in manip_scored],
    mark_label="chance (most common answer)",
    breaks=(len(CLASSIFY),),
    axis_label=f"accuracy on P_test (n = {n_scored} people per bar)",
    title="Classification (top) and comparison (bottom), with and without the hint",
)
_ = savefig(ax.figure, "part3_2_hint")

# %%
manip = pd.DataFrame(
    {
        task: {
            "chance": chances[task],
            "no hint": plain.accuracy,
            "hint at test": hinted.accuracy,
            "hint right": hinted.hint_accuracy,
            "answer | hint right": hinted.answer_given_hint.value
            if hinted.answer_given_hint is not None
            else float("nan"),
        }
        for task, (plain, hinted) in manip_scored.items()
    }
).T
display(manip.map(pct))
helped = [t for t, (p, h) in manip_scored.items() if hint_helps(p, h, chances[t])]
below = [t for t in manip.index if manip.loc[t, "no hint"] < manip.loc[t, "chance"]]
far_below = [t for t, (p, _) in manip_scored.items() if p.acc.interval[1] < chances[t]]
mapped = manip_scored["month_mod2"][1].answer_given_hint
display(
    Markdown(
        "The hinted version works (above chance and above the direct answer, beyond the noise) "
        f"for: {', '.join(helped) or 'no task'}. Without a hint, below the most-common-answer "
        f"baseline: {', '.join(below) or 'no task'}"
        + (f" (beyond the noise: {', '.join(far_below)})" if far_below else "")
        + "."
        + (
            f" Given a correctly written month, the model answers the even-month question right "
            f"in {pct(mapped.value)} of cases ({mapped.k} of {mapped.n})."
            if mapped is not None
            else ""
        )
    )
)

# %% [markdown]
# ## Does inverse search work, after forward or after reverse pretraining?
#
# The inverse questions name attributes and ask for the person's first or full name. The
# forward model was fine-tuned on them for P_train exactly as on the other tasks; the reverse
# model went through the same fine-tune from a parent pretrained on reverse6 biographies. The
# paper finds about 0% after forward pretraining and non-trivial accuracy only after reverse
# pretraining (the paper's Result 7). As a diagnostic we also ask whether each parent has
# stored "attributes -> name" at all: does it predict the name where its biography states it?
# In a forward biography the name comes first, with nothing before it to predict it from; in a
# reverse biography it comes after the facts.

# %%
inverse_scored = {
    task: (
        score_task(fwd, plan, forward_bios, task),
        score_task(rev, plan, reverse_bios, task),
    )
    for task in INVERSE
}
inverse = pd.DataFrame(
    [
        {"task": task, "forward pretraining": f.accuracy, "reverse6 pretraining": r.accuracy}
        for task, (f, r) in inverse_scored.items()
    ]
).set_index("task")
recall = {
    label: name_recall(parent.model, bios, scored_people(plan))
    for label, parent, bios in (
        ("forward", forward_parent, forward_bios),
        ("reverse6", reverse_parent, reverse_bios),
    )
}
best_fwd = max((f.acc for f, _ in inverse_scored.values()), key=lambda a: a.value)
best_rev = max((r.acc for _, r in inverse_scored.values()), key=lambda a: a.value)
reverse_works = all(compare(r.acc, f.acc) > 0 for f, r in inverse_scored.values())
display(
    Markdown(
        f"Asked by question ({n_scored} P_test people per task), the best inverse task reaches "
        f"{pct(best_fwd.value)} after forward and {pct(best_rev.value)} after reverse6 "
        "pretraining; reverse6 "
        + ("beats" if reverse_works else "does not beat")
        + " forward beyond the noise on every task. Inside the biographies (teacher-forced: "
        "all three name tokens the parent's top prediction), the reverse6 parent predicts "
        f"{pct(recall['reverse6'])} of the names and the forward parent {pct(recall['forward'])}."
    )
)

# %% mystnb={"figure": {"caption": "Inverse search on P_test people after forward or reverse6 pretraining (95% Wilson intervals). Bottom row: the parent's teacher-forced prediction of the full name inside each person's own biography.", "name": "fig-part3-2-inverse"}}
inverse_rows = [t.removeprefix("inverse:") for t in INVERSE] + ["parent: name in biography"]
ax = accuracy_bars(
    inverse_rows,
    {
        "forward pretraining": [(f.acc.k, f.acc.n) for f, _ in inverse_scored.values()]
        + [(Acc.of(recall["forward"], n_scored).k, n_scored)],
        "reverse6 pretraining": [(r.acc.k, r.acc.n) for _, r in inverse_scored.values()]
        + [(Acc.of(recall["reverse6"], n_scored).k, n_scored)],
    },
    horizontal=True,
    breaks=(len(INVERSE),),
    axis_label=f"accuracy on P_test (n = {n_scored} people per bar)",
    title="Inverse search by question, and the name inside the biography",
)
_ = savefig(ax.figure, "part3_2_inverse")

# %% [markdown]
# ## Can an external index stand in for inverse search?
#
# What a deployed system does instead (the paper lists retrieval augmentation among the
# remedies, its Result 9): keep the reversal out of the model. An inverted index over the
# biographies maps a birth date to the people whose biography states it (a "registry"); the
# forward model then checks every other attribute the question gives ("What is the birth city
# of X?"), and candidates whose answer differs are dropped. The index holds only the birth date,
# so the birth-city check is the model's work. Same test people, same questions. This is our
# demonstration, not one of the paper's experiments.

# %%
index = AttributeIndex.build(records(forward_bios), ["birth_date"])
check = forward_checker(fwd, forward_bios)
facts = dict(records(forward_bios))
rag, rag_hits = [], {}
for task in INVERSE:
    target = task.split("->")[1]
    items = p32_items(forward_bios, task, scored_people(plan), seed=plan.seed)
    hits, unique, index_alone = 0, 0, 0
    for it in items:
        given = given_values(task, facts[it.person])
        found = search(index, given, check)
        unique += len(found) == 1
        index_alone += len(index.candidates(given)) == 1
        if found:
            f = forward_bios.facts(found[0])
            hits += (f["name"] if target == "full" else f["name"].split()[0]) == it.answer
    rag_hits[task] = (hits, len(items))
    rag.append(
        {
            "task": task,
            "model alone": inverse.loc[task, "forward pretraining"],
            "index + forward model": hits / len(items),
            "single candidate left": unique / len(items),
            "index alone leaves one": index_alone / len(items),
        }
    )
rag = pd.DataFrame(rag).set_index("task")
# the model's work is the task that names more than the indexed attribute
model_task = INVERSE[-1]
display(
    rag.rename_axis(None)
    .rename(
        index=lambda t: t.removeprefix("inverse:"),
        columns={
            "index + forward model": "index + model",
            "index alone leaves one": "index: one left",
        },
    )
    .map(pct)
)

# %% mystnb={"figure": {"caption": "Inverse search on P_test people (95% Wilson intervals): the forward model alone, the model pretrained on reverse biographies, and the forward model behind a birth-date index (hatched: our demonstration, not the paper's setup).", "name": "fig-part3-2-index"}}
ax = accuracy_bars(
    [t.removeprefix("inverse:") for t in INVERSE],
    {
        "forward model alone": [(f.acc.k, f.acc.n) for f, _ in inverse_scored.values()],
        "reverse6 model": [(r.acc.k, r.acc.n) for _, r in inverse_scored.values()],
        "index + forward model (our demonstration)": [rag_hits[t] for t in INVERSE],
    },
    horizontal=True,
    hatched=["index + forward model (our demonstration)"],
    axis_label=f"accuracy on P_test (n = {n_scored} people per bar)",
    title="Inverse search: in the model, or through an index",
)
_ = savefig(ax.figure, "part3_2_index")

# %% [markdown]
# ## Explorer
#
# Pick a P_test person and a question: the forward model answers directly and, where the task
# has one, after writing the hint, beside the truth (✓ or ✗: the answer scored right or wrong,
# as in the sections above; the hint is not scored here). The interactive version needs a live
# kernel; the rendered book shows the fixed sample of questions below.


# %%
def explorer_rows(person: int, task: str) -> list[dict]:
    """The model's replies to one question about one P_test person, with and without a hint."""
    rows = []
    for hint in (False, True) if task in HINTED else (False,):
        items = p32_items(forward_bios, task, scored_people(plan), hint=hint, seed=plan.seed)
        item = next(it for it in items if it.person == person)
        right = bool(score_items(fwd, [item]).answer_ok[0])  # scored as in the sections above
        rows.append(
            {
                "question": item.prompt.rsplit(" ", 1)[0],
                "hint first": "yes" if hint else "no",
                "model": ("✓ " if right else "✗ ") + answer_text(fwd, item),
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
with pd.option_context("display.max_colwidth", None):
    display(HTML(pd.DataFrame(sample).to_html(index=False)))

# %% tags=["remove-output", "nbval-ignore-output"]
# The replies go into an HTML widget, not an Output widget: a headless executor (papermill's
# nbclient) mimics an Output widget's front end and answers each output it captures with a
# message on the kernel's shell channel, which it is reading at the same time; under load that
# can leave the execution waiting forever. An HTML widget's value needs no front end reply.
try:
    import ipywidgets as widgets

    pick_person = widgets.Dropdown(
        options=[int(i) for i in scored_people(plan)[:50]], description="person"
    )
    pick_task = widgets.Dropdown(options=list(plan.tasks), description="question")
    shown = widgets.HTML()

    def show(_change=None) -> None:
        rows = explorer_rows(pick_person.value, pick_task.value)
        shown.value = pd.DataFrame(rows).to_html(index=False)

    for w in (pick_person, pick_task):
        w.observe(show, names="value")
    show()
    display(widgets.VBox([pick_person, pick_task, shown]))
except ImportError:
    display(HTML("<p>ipywidgets is not installed; the table above is the static explorer.</p>"))

# %% [markdown]
# ## Where this edition departs from the paper
#
# - **Sizes.** The paper uses N = 100K people, a 12-layer GPT-2 (124M parameters) and tests on
#   50K people with 2.5K-2.5M training samples per task. At `cpu` scale a model of a few hundred
#   thousand parameters learns a few hundred people, so every task has about a hundred training
#   people: far below the sample sizes at which the paper's classification without a hint leaves
#   chance. The `gpu` and `paper` presets describe larger runs.
# - **What the small scale limits.** Everything with a hint rests on retrieval: the hint *is* a
#   retrieval, so a binary task's hinted accuracy is capped near "hint right + half of the
#   rest", and a comparison needs two retrievals in a row. How reliably our fine-tuned model
#   extracts the facts of P_test people is shown in the retrieval section, beside the paper's
#   about 100% for the birth date; a bigger model, more people and more exposures are what close
#   that gap. Inverse search after reverse pretraining needs the same kind of extraction in the
#   other direction, and the diagnostic above separates the two steps: stored "attributes ->
#   name" inside the biography, and extracting it from a question about a person never asked
#   about in training.
# - **Fine-tuning.** The parent is the paper's: the Part 3.1 paper's model pretrained on
#   multi5+permute (the same run as in the previous chapter, Part 3.1). The paper then teaches each
#   task by LoRA (rank 8/16 on query/value, rank 128 on the embedding) on task data only, one task
#   at a time. We fine-tune every weight on the six attribute questions and all the chapter's tasks
#   at once, with biographies kept in the mix so that a small model does not overwrite what it
#   stored; with the attribute questions in the mix this is the "QA-fine-tuned" starting point of
#   the paper's Result 5, which the paper finds within about a point of the BIO-pretrained one. Why
#   not LoRA here: the answer words "Yes", "No" and "minus" never occur in the biographies, and
#   with tied input and output embeddings peft's embedding adapter changes the input lookup only,
#   so the output layer that would have to produce those words would stay frozen. This chapter runs
#   no LoRA fine-tune, so it does not test whether the paper's wider models reach such words
#   through their hidden states alone; the `gpu` preset keeps full fine-tuning.
# - **Tasks.** 13 of the paper's 28: birth day and year, two of the six dual retrievals, month
#   mod 2, 6 and 12, major luckiness mod 5, later month, month difference, luckier major, and two
#   of the ten inverse tasks. Words of the questions and the hint markers are ours; tokens are
#   words, not GPT-2 BPE. A closing "." is not trained, so exact match compares the answer's
#   tokens only.
# - **Reverse data.** Our `reverse6` keeps the six template sentences with the pronoun as subject
#   and adds "He/She is Name." at the end; the paper's exact reverse wording is not in our notes.
# - **The index** is our addition, an instance of the retrieval augmentation the paper names;
#   the ledger lists it among our demonstrations, not among the paper's claims.
#
# ## Claims
#
# The paper's numbers are quoted from Part 3.2 (results as numbered there; values marked
# "P32-card" come from a third-party summary card of the paper, not from its text). Ours come
# from the runs above: each accuracy is over the P_test people scored (n), with its 95% Wilson
# interval. A claim that a task is poor without a hint is judged only where the hinted version,
# its positive control, works (above chance and above the direct answer, beyond the noise).

# %% tags=["hide-output", "nbval-ignore-output"]
print(f"chapter wall time at scale {scale}: {time.perf_counter() - chapter_start:.0f} s")

# %% tags=["nbval-check-output"]
ledger = Ledger("part3_2_knowledge_manipulation", scale)
# "about 100%" extraction: >= 0.9 reproduced, >= 0.75 partly; n = every attribute question
# asked (six per P_test person, each about a separately drawn fact)
ledger.score(
    "retrieval of stored attributes works out of distribution (multi5+permute)",
    "~100% birth date, 98% major",
    "Part 3.2, Sec. 2 (the Part 3.1 starting model)",
    AtLeast(0.9, 0.75),
    Acc(sum(scored[a].acc.k for a in QA_ATTRIBUTES), sum(scored[a].acc.n for a in QA_ATTRIBUTES)),
    note=f"the six attribute questions on P_test; birth date {date.accuracy:.0%}, "
    f"major {acc['major']:.0%}",
)
# "poor while the full date is ~100%" is a large gap: at least 0.3, beyond the noise
ledger.score(
    "the birth year alone is retrieved worse than the full date",
    "poor, while the full date is ~100%",
    "Part 3.2, Result 2",
    EffectOverControl(0.3, pairs=(("full date", "year alone"),)),
    {"full date": date.acc, "year alone": year.acc},
    note=f"day alone {day.accuracy:.0%}",
)
# "near perfect": >= 0.9 reproduced, >= 0.75 partly, on the worse of the two question orders
ledger.score(
    "dual retrieval is near perfect in either order on multi5+permute",
    "near perfect",
    "Part 3.2, Result 1",
    AtLeast(0.9, 0.75),
    scored[worst_dual].acc,
    note="worse of " + ", ".join(f"{q.removeprefix('dual:')} {acc[q]:.0%}" for q in DUAL),
)
# Without a hint, "poor" = no more than 0.1 above chance (the even-month excess the paper reports
# at 2.5K samples; we train on about a hundred), 0.05 for major ranking ("barely above chance").
# Chance is the most common answer on these people. A negative claim needs its positive control:
# the hinted version must work (above chance and above the direct answer, beyond the noise).
no_hint_claims = {
    "month_mod2": (
        "even-month classification without a hint is poor with few training samples",
        "60.4% at 2.5K samples, 75.9% at 10K (chance 50%)",
        "Part 3.2, Result 3 (values: P32-card)",
        0.1,
    ),
    "month_mod6": (
        "month mod 6 without a hint is poor with few training samples",
        "poor without CoT (per-task value not in our notes)",
        "Part 3.2, Result 3",
        0.1,
    ),
    "month_mod12": (
        "month mod 12 without a hint is poor with few training samples",
        "poor without CoT (per-task value not in our notes)",
        "Part 3.2, Result 3",
        0.1,
    ),
    "major_mod5": (
        "major luckiness mod 5 without a hint is poor with few training samples",
        "poor without CoT (per-task value not in our notes)",
        "Part 3.2, Result 3",
        0.1,
    ),
    "month_later": (
        "month comparison without a hint is poor with few training samples",
        "85.6% only at 50K samples",
        "Part 3.2, Result 3 (value: P32-card)",
        0.1,
    ),
    "month_diff": (
        "month difference without a hint is poor with few training samples",
        "poor without CoT (per-task value not in our notes)",
        "Part 3.2, Result 3",
        0.1,
    ),
    "major_luckier": (
        "ranking majors by luckiness stays near chance without a hint",
        "52.2% at 25K samples (chance ~50.5%)",
        "Part 3.2, Result 3 (value: P32-card)",
        0.05,
    ),
}
for task, (claim, paper, source, margin) in no_hint_claims.items():
    plain, hinted = manip_scored[task]
    lo, hi = plain.acc.interval
    side = (
        "; below chance beyond the noise"
        if hi < chances[task]
        else "; below chance"
        if plain.accuracy < chances[task]
        else ""
    )
    ledger.score(
        claim,
        paper,
        source,
        NoBetterThan(round(chances[task], 2), margin),
        plain.acc,
        requires=[
            Requires(
                "the hinted version to work: above chance and the direct answer, beyond the noise",
                hint_helps(plain, hinted, chances[task]),
            )
        ],
        note=f"chance {chances[task]:.0%}{side}; with the hint at test {hinted.accuracy:.0%}",
    )
# With the hint at test: the paper's 94.2% is near perfect, >= 0.9 reproduced, >= 0.75 (the
# paper's unhinted level at 10K) partly
mod2_hint = manip_scored["month_mod2"][1]
ledger.score(
    "with the hint written at test time, even-month classification is high",
    "94.2% (10K samples)",
    "Part 3.2, Result 4 (value: P32-card)",
    AtLeast(0.9, 0.75),
    mod2_hint.acc,
    note=f"the month itself right {mod2_hint.hint_accuracy:.0%}",
)
# Month difference with the hint: the paper's 61.5%; >= 0.5 reproduced, >= 0.3 partly
diff_hint = manip_scored["month_diff"][1]
ledger.score(
    "with the hint at test time, month difference is answered",
    "61.5% (both months right 78.1%)",
    "Part 3.2, Result 4 (value: P32-card)",
    AtLeast(0.5, 0.3),
    diff_hint.acc,
    note=f"both months right {diff_hint.hint_accuracy:.0%}",
)
# "~0%": the upper 95% bound <= 0.05 reproduced, point <= 0.1 partly, on the better task; a
# negative claim, so it needs the paper's own positive control (reverse pretraining works)
ledger.score(
    "inverse search is about 0% after forward pretraining",
    "~0%",
    "Part 3.2, Result 7",
    AtMost(0.05, 0.1),
    best_fwd,
    requires=[
        Requires(
            "the reverse6 model to beat the forward one beyond the noise on every inverse task",
            reverse_works,
        )
    ],
    note="better of the two inverse tasks",
)
# "non-trivial" over a forward model at ~0%: a gain of at least 0.1, beyond the noise, on every task
short = {task: task.removeprefix("inverse:") for task in INVERSE}
ledger.score(
    "reverse pretraining makes inverse search possible",
    "non-trivial, forward ~0%",
    "Part 3.2, Result 7",
    EffectOverControl(0.1, pairs=tuple((f"reverse6 {s}", f"forward {s}") for s in short.values())),
    {
        f"{label} {short[task]}": pair[i].acc
        for task, pair in inverse_scored.items()
        for i, label in ((1, "reverse6"), (0, "forward"))
    },
    note=f"the reverse parent recalls {recall['reverse6']:.0%} of names inside its biographies",
)
# our demonstration: >= 0.8 reproduced, >= 0.4 partly, on the task the model takes part in
k, n = rag_hits[model_task]
ledger.score(
    "a birth-date index plus forward retrieval answers inverse search",
    "retrieval augmentation is a remedy",
    "Part 3.2, Result 9",
    AtLeast(0.8, 0.4),
    Acc(k, n),
    note=f"{short[model_task]}; the index alone leaves one candidate for "
    f"{rag.loc[model_task, 'index alone leaves one']:.0%} of these questions, so the model's "
    "birth-city check keeps or drops the right person",
    demo=True,
)
ledger

# %% [markdown]
# ## What held at this scale

# %%
close_chapter(ledger)
