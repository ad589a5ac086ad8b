"""bioS questions: Part 3.1 QA set and Part 3.2 tasks checked against the people's facts, the
P_train / P_test split, answer masks, and the QA stream (pure, exact epochs, mixed rows)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from physlm.data import BatchSource
from physlm.data.bios import BioSStream
from physlm.data.bios_pools import MONTHS, build_pools
from physlm.data.bios_qa import (
    HINTED,
    QAStream,
    encode_items,
    p31_items,
    p32_items,
    p32_tasks,
    pairs,
    qa_vocab,
    split_people,
)

N = 40


@pytest.fixture(scope="module")
def bios():
    return BioSStream(n_people=N, exposures=2, batch_size=4, seq_len=300, seed=5)


def date(f):
    return f"{f['birth_month']} {f['birth_day']}, {f['birth_year']}"


def value(f, attr):
    return date(f) if attr == "birth_date" else f[attr]


def month_no(f):
    return MONTHS.index(f["birth_month"]) + 1


def luck(f):
    return build_pools().majors.index(f["major"])


def span_text(v, item, span):
    return v.decode(item.ids[span[0] : span[1]])


def check_item(v, item):
    """Token-level consistency: text, completion and answer regions decode as stated."""
    assert v.decode(item.ids) == item.text
    assert span_text(v, item, item.target_span) == item.completion
    assert span_text(v, item, item.answer_span) == item.answer
    assert item.answer_span[1] == item.target_span[1]  # the answer closes the completion
    assert item.target_span[0] <= item.answer_span[0] < item.answer_span[1]
    assert v.decode(item.ids[: item.target_span[0]]) == item.prompt
    assert item.prompt.endswith("Hint:" if item.hint else "Answer:")
    assert item.answer_mask().sum() == item.answer_span[1] - item.answer_span[0]


# ----------------------------------------------------------------------------------------------
# vocabulary and split


def test_qa_vocab_keeps_bios_ids(bios):
    v = qa_vocab(bios)
    assert v.itos[: len(bios.vocab)] == bios.vocab.itos
    assert len(v) > len(bios.vocab) and v.base_size == len(bios.vocab)
    for w in ("?", ":", "Answer", "Yes", "No", "Hint", "minus", "0", "99", "100"):
        assert w in v and w not in bios.vocab
    assert v.pad_id == bios.vocab.pad_id and v.eos_id == bios.vocab.eos_id
    assert qa_vocab(bios) is v and qa_vocab() is v


def test_split_is_disjoint_covering_and_deterministic():
    tr, te = split_people(101, seed=3)
    assert len(tr) == 50 and len(te) == 51
    assert not set(tr) & set(te) and sorted([*tr, *te]) == list(range(101))
    assert np.array_equal(tr, split_people(101, seed=3)[0])
    assert not np.array_equal(tr, split_people(101, seed=4)[0])
    assert list(tr) == sorted(tr) and list(te) == sorted(te)
    assert len(split_people(100, 0, train_fraction=0.8)[0]) == 80


# ----------------------------------------------------------------------------------------------
# Part 3.1 QA


def test_p31_questions_and_answers_match_the_facts(bios):
    v = qa_vocab(bios)
    items = p31_items(bios)
    assert len(items) == 6 * N
    forms = {
        "birth_date": "What is the birth date of {}? Answer:",
        "birth_city": "What is the birth city of {}? Answer:",
        "university": "Which university did {} study? Answer:",
        "major": "What major did {} study? Answer:",
        "employer": "Which company did {} work for? Answer:",
        "work_city": "Where did {} work? Answer:",
    }
    seen = Counter()
    for it in items:
        f = bios.facts(it.person)
        assert it.prompt == forms[it.task].format(f["name"])
        assert it.answer == value(f, it.task) and not it.hint and it.other == -1
        assert it.completion == it.answer
        check_item(v, it)
        seen[it.person, it.task] += 1
    assert set(seen.values()) == {1} and len(seen) == 6 * N
    # a subset of people gives exactly their questions
    tr, _ = split_people(N, seed=1)
    assert {it.person for it in p31_items(bios, tr)} == set(tr.tolist())


# ----------------------------------------------------------------------------------------------
# Part 3.2 tasks


def expected_32(task, f, g):
    """(answer, strings the hint must contain) computed from the facts of X (and Y)."""
    if task == "partial_birth_year":
        return f["birth_year"], None
    if task == "partial_birth_day":
        return f["birth_day"], None
    if task.startswith("dual:"):
        a, b = task[5:].split(",")
        return f"{value(f, a)}; {value(f, b)}", None
    if task.startswith("inverse:"):
        target = task.split("->")[1]
        return (f["name"] if target == "full" else f["name"].split()[0]), None
    m, lk = month_no(f), luck(f)
    signed = lambda d: f"minus {-d}" if d < 0 else str(d)  # noqa: E731
    table = {
        "month_mod2": ("Yes" if m % 2 == 0 else "No", [f["birth_month"]]),
        "month_mod6": (str(m % 6), [f["birth_month"]]),
        "month_mod12": (str(m % 12), [f["birth_month"]]),
        "major_mod5": (str(lk % 5), [f["major"]]),
        "major_mod20": (str(lk % 20), [f["major"]]),
        "major_mod100": (str(lk % 100), [f["major"]]),
    }
    if task in table:
        return table[task]
    dm, dl = m - month_no(g), lk - luck(g)
    months, majors = [f["birth_month"], g["birth_month"]], [f["major"], g["major"]]
    return {
        "month_later": ("Yes" if dm > 0 else "No", months),
        "month_diff": (signed(dm), months),
        "major_luckier": ("Yes" if dl > 0 else "No", majors),
        "major_diff": (signed(dl), majors),
    }[task]


@pytest.mark.parametrize("task", p32_tasks())
def test_p32_answers_match_the_facts(bios, task):
    v = qa_vocab(bios)
    people = split_people(N, seed=2)[1]
    for hint in (False, True) if task in HINTED else (False,):
        items = p32_items(bios, task, people, hint=hint, seed=9)
        assert [it.person for it in items] == people.tolist()
        for it in items:
            f = bios.facts(it.person)
            g = bios.facts(it.other) if it.other >= 0 else None
            assert (it.other >= 0) == task.startswith(
                ("month_later", "month_diff", "major_l", "major_diff")
            )
            answer, needed = expected_32(task, f, g)
            assert it.answer == answer and it.hint == hint and it.task == task
            check_item(v, it)
            assert f["name"] in it.prompt or task.startswith("inverse:")
            if g is not None:
                assert g["name"] in it.prompt and it.other != it.person
            if hint:  # the hint states the needed attribute values, in order, before the answer
                head = it.completion[: it.completion.index("Answer:")]
                assert head == "; ".join(needed) + ". "
            else:
                assert it.completion == it.answer


def test_inverse_questions_state_the_given_attributes(bios):
    for task in p32_tasks():
        if not task.startswith("inverse:"):
            continue
        given = task[8:].split("->")[0].split(",")
        for it in p32_items(bios, task, range(10)):
            f = bios.facts(it.person)
            for a in given:
                assert value(f, a) in it.prompt
            assert f["name"] not in it.prompt and it.answer in f["name"]


def test_half_hints_are_a_seeded_coin_per_person(bios):
    a = p32_items(bios, "month_mod2", hint="half", seed=3)
    flags = [it.hint for it in a]
    assert (
        0 < sum(flags) < N
        and [it.hint for it in p32_items(bios, "month_mod2", hint="half", seed=3)] == flags
    )
    full = p32_items(bios, "month_mod2", hint=True, seed=3)
    plain = p32_items(bios, "month_mod2", seed=3)
    for it, h, p in zip(a, full, plain, strict=True):
        assert it == (h if it.hint else p)
    assert flags != [it.hint for it in p32_items(bios, "month_mod2", hint="half", seed=4)]


def test_comparison_partners_form_a_cycle():
    people = list(range(3, 40, 2))
    pr = pairs(people, seed=4)
    assert [x for x, _ in pr] == people
    assert sorted(y for _, y in pr) == people and all(x != y for x, y in pr)
    assert pr == pairs(people, seed=4) and pr != pairs(people, seed=5)


def test_classification_labels_cover_their_classes():
    s = BioSStream(n_people=600, exposures=1, batch_size=2, seq_len=300, seed=0)
    labels = Counter(it.answer for it in p32_items(s, "month_mod12"))
    assert set(labels) == {str(k) for k in range(12)}
    direct = [
        str(int(s.people.major[i]) % 20) for i in range(600)
    ]  # luckiness is the major's pool index
    assert [it.answer for it in p32_items(s, "major_mod20")] == direct


def test_encode_items_masks(bios):
    v = qa_vocab(bios)
    items = p31_items(bios, range(5)) + p32_items(bios, "month_diff", range(5), hint=True)
    b = encode_items(items, v.pad_id)
    for r, it in enumerate(items):
        y = b["y"][r]
        assert v.decode(y[b["answer_mask"][r]].tolist()) == it.answer
        assert v.decode(y[b["mask"][r]].tolist()) == it.completion
        assert v.decode(b["x"][r, : int(b["prompt_len"][r])].tolist()) == it.prompt


# ----------------------------------------------------------------------------------------------
# the stream


def small_stream(bios, **kw):
    items = kw.pop("items", None) or p31_items(bios, split_people(N, seed=0)[0])
    args = dict(batch_size=4, seq_len=300, seed=1)
    args.update(kw)
    return QAStream(items, bios=bios, **args)


def row_items(stream, row):
    """Item token lists of one QA row (x plus the last target)."""
    v, out, cur = stream.vocab, [], []
    for t in row:
        if t in (v.eos_id, v.pad_id):
            if cur:
                out.append(tuple(cur))
            cur = []
        else:
            cur.append(t)
    return out


def test_qa_stream_rows_and_masks(bios):
    s = small_stream(bios)
    assert isinstance(s, BatchSource) and s.vocab_size == len(qa_vocab(bios))
    v = s.vocab
    for step in range(3):
        b = s.batch(step)
        assert b["x"].shape == b["y"].shape == b["mask"].shape == (4, 300)
        assert torch.equal(b["x"][:, 1:], b["y"][:, :-1])
        useful, who = s.plan(step)
        assert useful.all()
        full = torch.cat([b["x"], b["y"][:, -1:]], 1).tolist()
        for r in range(4):
            its = [s.items[k] for k in who[r]]
            assert row_items(s, full[r]) == [it.ids for it in its]
            # the mask covers exactly the answers, in order
            assert v.decode(b["y"][r][b["mask"][r]].tolist()) == " ".join(i.answer for i in its)


def test_qa_stream_is_pure_and_epochs_are_exact(bios):
    a, b = small_stream(bios), small_stream(bios)
    late = a.batch(7)
    for step in (0, 2, 7):
        x, y = a.batch(step), b.batch(step)
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert torch.equal(late["x"], b.batch(7)["x"])
    assert not torch.equal(a.batch(0)["x"], small_stream(bios, seed=2).batch(0)["x"])
    m = len(a.items)
    seen = np.concatenate([a.plan(step)[1].ravel() for step in range(a.steps_for(3))])
    for e in range(3):
        assert sorted(seen[e * m : (e + 1) * m]) == list(range(m))
    assert len(seen) - 3 * m < 4 * a.items_per_row


def test_mixed_rows_are_all_bio_or_all_qa(bios):
    s = small_stream(bios, qa_fraction="4/5")
    flags = np.concatenate([s.plan(step)[0] for step in range(20)])
    for n in range(1, 81):  # exact share of QA rows on every prefix
        assert flags[:n].sum() == (n * 4) // 5
    j = 0
    for step in range(5):
        useful, _ = s.plan(step)
        b = s.batch(step)
        for r in range(4):
            if useful[r]:
                assert b["mask"][r].sum() < (b["y"][r] != s.vocab.pad_id).sum()  # answers only
                continue
            ref = bios.batch(j // 4)
            assert torch.equal(b["x"][r], ref["x"][j % 4])
            assert torch.equal(b["mask"][r], ref["mask"][j % 4])
            j += 1
    assert j == 20 - (20 * 4) // 5
    # qa_loss="all": every item token is learned, the separators and padding are not
    b = small_stream(bios, qa_loss="all").batch(0)
    v = s.vocab
    assert torch.equal(b["mask"], (b["y"] != v.pad_id) & (b["y"] != v.eos_id))


def test_spec_names_what_changes_the_data(bios):
    a = small_stream(bios).spec()
    json.dumps(a)
    assert a["kind"] == "bioS-QA" and a["bios"] is None
    for kw in (dict(seed=2), dict(qa_fraction=0.8), dict(qa_loss="all")):
        assert small_stream(bios, **kw).spec() != a
    other = small_stream(bios, items=p31_items(bios, range(3)))
    assert other.spec()["items"] != a["items"]
    assert small_stream(bios, qa_fraction=0.8).spec()["qa_fraction"] == "4/5"


# ----------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(batch_size=0), "batch_size"),
        (dict(seq_len=10), "seq_len"),
        (dict(seed=-1), "seed"),
        (dict(qa_fraction=0), "qa_fraction"),
        (dict(qa_fraction=1.5), "qa_fraction"),
        (dict(qa_fraction="abc"), "qa_fraction"),
        (dict(qa_loss="prompt"), "qa_loss"),
    ],
)
def test_bad_stream_parameters(bios, kw, match):
    with pytest.raises(ValueError, match=match):
        small_stream(bios, **kw)


def test_bad_task_parameters(bios):
    items = p31_items(bios, range(2))
    with pytest.raises(ValueError, match="bios"):
        QAStream(items, batch_size=4, seq_len=300, qa_fraction=0.5)
    other = BioSStream(n_people=N, exposures=1, batch_size=2, seq_len=300, seed=5)
    with pytest.raises(ValueError, match="batch_size"):
        QAStream(items, bios=other, batch_size=4, seq_len=300, qa_fraction=0.5)
    with pytest.raises(ValueError, match="items"):
        QAStream([], batch_size=4, seq_len=300)
    with pytest.raises(ValueError, match="task"):
        p32_items(bios, "month_mod7")
    with pytest.raises(ValueError, match="hint"):
        p32_items(bios, "partial_birth_year", hint=True)
    with pytest.raises(ValueError, match="hint"):
        p32_items(bios, "month_mod2", hint="always")
    with pytest.raises(ValueError, match="people"):
        p31_items(bios, [0, N])
    with pytest.raises(ValueError, match="people"):
        p31_items(bios, [1, 1])
    with pytest.raises(ValueError, match="attributes"):
        p31_items(bios, attributes=("height",))
    with pytest.raises(ValueError, match="at least 2"):
        p32_items(bios, "month_later", [3])
    with pytest.raises(ValueError, match="seed"):
        p32_items(bios, "month_later", seed=-1)
    for kw, match in (
        (dict(n_people=1), "n_people"),
        (dict(n_people=10, seed=-2), "seed"),
        (dict(n_people=10, train_fraction=1.0), "train_fraction"),
        (dict(n_people=3, train_fraction=0.1), "train_fraction"),
    ):
        with pytest.raises(ValueError, match=match):
            split_people(**kw)
    with pytest.raises(ValueError, match="step"):
        small_stream(bios).batch(-1)
    with pytest.raises(ValueError, match="epochs"):
        small_stream(bios).steps_for(-1)
