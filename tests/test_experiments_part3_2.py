"""Part 3.2 helpers: reverse biographies, the attribute index, scoring, and warm-started runs."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from physlm.data.bios import BioSStream
from physlm.data.bios_qa import HINTED, QA_ATTRIBUTES, p31_items, p32_items, qa_vocab
from physlm.data.bios_reverse import ReverseBioSStream
from physlm.experiments import part3_1 as p31
from physlm.experiments import part3_2 as p32
from physlm.measure.index import AttributeIndex, search
from physlm.runs import continue_from, get_or_train

KW = dict(
    n_people=30,
    exposures=2,
    batch_size=4,
    seq_len=256,
    seed=3,
    template_variants=5,
    order_variants=5,
)


@pytest.mark.parametrize("k", [0, 3, 6])
def test_reverse_bio_names_the_person_once_after_k_sentences(k):
    bios = ReverseBioSStream(reverse=k, **KW)
    v = bios.vocab
    for person in range(5):
        tokens, spans = bios.render_person(person)
        facts = bios.facts(person)
        s, e = spans["name"]
        assert v.decode(tokens[s:e]) == facts["name"]
        text = v.decode(tokens)
        assert text.count(facts["name"].split()[0]) == 1  # the name appears once
        assert len(tokens) <= bios.max_bio_len
        # sentences before the naming one: exactly k full stops precede it
        assert tokens[: s - 2].count(v.id(".")) == k
        for key in ("birth_city", "university", "major"):
            a, b = spans[key]
            assert v.decode(tokens[a:b]) == facts[key]
    forward = BioSStream(**KW)
    assert bios.spec() != forward.spec() and bios.spec()["reverse"] == k
    for step in range(bios.steps):  # every row packs whole bios in seq_len
        assert bios.batch(step)["x"].shape == (4, 256)


def test_reverse_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reverse"):
        ReverseBioSStream(reverse=7, **KW)
    with pytest.raises(ValueError, match="fullname"):
        ReverseBioSStream(reverse=6, fullname=True, **KW)
    with pytest.raises(ValueError, match="bios_per_row"):
        ReverseBioSStream(reverse=6, **{**KW, "seq_len": 234, "bios_per_row": 3})


def test_index_candidates_and_search_match_brute_force():
    rng = np.random.default_rng(0)
    recs = [
        (i, {"a": str(rng.integers(4)), "b": str(rng.integers(3)), "c": str(i % 5)})
        for i in range(60)
    ]
    index = AttributeIndex.build(recs, ["a", "b"])
    truth = dict(recs)
    for a in "0123":
        for b in "012":
            want = sorted(i for i, r in recs if r["a"] == a and r["b"] == b)
            assert index.candidates({"a": a, "b": b, "c": "9"}) == want
    calls = []

    def check(people, attr, value):
        calls.append((tuple(people), attr))
        return [truth[p][attr] == value for p in people]

    got = search(index, {"a": "1", "c": "2"}, check)
    assert got == [i for i, r in recs if r["a"] == "1" and r["c"] == "2"]
    assert calls and all(attr == "c" for _, attr in calls)  # indexed attributes are not asked
    with pytest.raises(ValueError, match="indexed"):
        index.candidates({"c": "1"})
    with pytest.raises(ValueError, match="attributes"):
        AttributeIndex.build(recs, [])


def test_score_reads_answers_and_hints(monkeypatch):
    bios = BioSStream(**KW)
    v = qa_vocab()
    plain = p31_items(bios, [0, 1, 2], attributes=("birth_city",))
    hinted = p32_items(bios, "month_mod2", [0, 1, 2, 3], hint=True)

    def truth(model, items, **kw):  # the true completion, then noise
        return [
            list(it.ids[it.target_span[0] : it.target_span[1]]) + [v.id("Yes")] * 2 for it in items
        ]

    monkeypatch.setattr(p32, "complete", truth)
    assert p32.score(None, plain).accuracy == 1.0
    s = p32.score(None, hinted)
    assert s.accuracy == 1.0 and s.hint_accuracy == 1.0

    def wrong_hint(model, items, **kw):  # right answer after a wrong month
        out = []
        for it in items:
            g = list(it.ids[it.target_span[0] :])
            g[0] = v.id("May") if g[0] != v.id("May") else v.id("June")
            out.append(g)
        return out

    monkeypatch.setattr(p32, "complete", wrong_hint)
    s = p32.score(None, hinted)
    assert s.accuracy == 1.0 and s.hint_accuracy == 0.0
    monkeypatch.setattr(p32, "complete", lambda m, items, **kw: [[v.id(".")] * 9 for _ in items])
    assert p32.score(None, plain).accuracy == 0.0 and p32.score(None, hinted).accuracy == 0.0


def test_scale_for_checks_names_and_values():
    assert p32.scale_for("cpu").workers <= 2
    assert p32.scale_for("cpu").knowledge == p31.scale_for("cpu")
    plan = p32.scale_for("smoke", seed=3, knowledge={"people": 16}, test_people=4)
    assert plan.knowledge.people == 16 and plan.seed == 3 and plan.test_people == 4
    with pytest.raises(ValueError, match="scale"):
        p32.scale_for("huge")
    with pytest.raises(ValueError, match="finetune_qa_fraction"):
        p32.scale_for("smoke", finetune_qa_fraction="1")
    with pytest.raises(ValueError, match="tasks"):
        p32.scale_for("smoke", tasks=("month_mod7",))
    with pytest.raises(ValueError, match="source"):
        p32.scale_for("smoke", source="multi5+permute+fullname")
    with pytest.raises(ValueError, match="unknown ManipulationScale field"):
        p32.scale_for("smoke", people=0)
    with pytest.raises(ValueError, match="people"):
        p32.scale_for("smoke", knowledge={"people": 0})


def test_reverse_twin_has_the_forward_people_and_rows():
    plan = p32.scale_for("cpu")
    fwd, rev = p32.bios_stream(plan), p32.bios_stream(plan, reverse=True)
    assert isinstance(rev, ReverseBioSStream) and rev.reverse == plan.reverse
    assert rev.bios_per_row == fwd.bios_per_row and rev.steps == fwd.steps
    assert fwd.config.seq_len < rev.config.seq_len <= plan.knowledge.block_size
    for person in (0, 7, 150):
        assert rev.facts(person) == fwd.facts(person)
        tokens, _ = rev.render_person(person)
        assert len(tokens) <= rev.max_bio_len


def test_forward_parent_is_the_part3_1_run_and_finetune_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    torch.set_num_threads(1)
    plan = p32.scale_for("smoke", knowledge={"people": 16}, test_people=4)
    shared, _ = p31.pretrained(plan.knowledge, plan.source)
    assert not shared.cached
    parent, tuned = p32.finetune(plan)
    assert parent.cached and parent.key == shared.key  # Part 3.1's run, found in the cache
    assert not tuned.cached and tuned.key != parent.key
    config = json.loads((tuned.dir / "config.json").read_text())
    assert config["build"]["init"] == parent.key
    again_parent, again = p32.finetune(plan)
    assert again.cached and again_parent.cached
    for k, w in again.model.state_dict().items():
        assert torch.equal(w, tuned.model.state_dict()[k])
    reverse_parent, _ = p32.finetune(plan, reverse=True)
    assert reverse_parent.key != parent.key
    # the fine-tune starts at the parent: one step at a tiny rate moves it only a little,
    # while a model trained from scratch for the same steps is far away
    data = p32.finetune_data(plan)
    one = replace(p32.finetune_config(plan, data), steps=1, lr=1e-6)
    near = get_or_train(train_cfg=one, data=data, progress=False, **continue_from(parent))
    scratch = get_or_train(parent.model.cfg, one, data, progress=False)
    w0 = parent.model.state_dict()["wte.weight"]
    moved = (near.model.state_dict()["wte.weight"] - w0).abs().max()
    assert moved < 1e-4
    assert (scratch.model.state_dict()["wte.weight"] - w0).abs().max() > 10 * moved
    s = p32.score_task(tuned.model, plan, p32.bios_stream(plan), "month_mod2", hint=True)
    assert s.answer_ok.shape == (4,) and 0.0 <= s.accuracy <= 1.0


def test_finetune_items_cover_every_task_of_p_train():
    plan = p32.scale_for("smoke", knowledge={"people": 16})
    bios = p32.bios_stream(plan)
    p_train, _ = p32.halves(plan)
    items = p32.finetune_items(plan, bios)
    assert {it.person for it in items} == set(p_train.tolist())
    by_task = {}
    for it in items:
        by_task.setdefault(it.task, []).append(it)
    assert set(by_task) == {*QA_ATTRIBUTES, *plan.tasks}
    for task in plan.tasks:
        assert len(by_task[task]) == len(p_train)
        hinted = sum(it.hint for it in by_task[task])
        assert (hinted > 0) == (task in HINTED)


def test_answer_text_shows_the_scored_window(monkeypatch):
    plan = p32.scale_for("smoke", knowledge={"people": 16})
    bios = p32.bios_stream(plan)
    v = qa_vocab()
    people = p32.scored_people(plan)
    plain = p32_items(bios, "month_mod2", people[:1])[0]
    hinted = p32_items(bios, "month_mod2", people[:1], hint=True)[0]
    junk = [v.id("Yes"), v.id("No")] * 3  # untrained tokens after the answer are cut off
    for it in (plain, hinted):
        want = list(it.ids[it.target_span[0] : it.target_span[1]])
        monkeypatch.setattr(p32, "complete", lambda m, items, w=want, **kw: [w + junk])
        assert p32.answer_text(None, it) == v.decode(want)
    monkeypatch.setattr(p32, "complete", lambda m, items, **kw: [[v.id("No")] * 9])
    assert "no 'Answer:'" in p32.answer_text(None, hinted)


class _Shifted(torch.nn.Module):
    """Teacher-forced 'model' whose top prediction at t is row[t + shift]: an oracle at 1."""

    def __init__(self, vocab_size: int, shift: int):
        super().__init__()
        self.vocab_size, self.shift = vocab_size, shift

    def forward(self, row):
        target = torch.roll(row, -self.shift, dims=1)
        return torch.nn.functional.one_hot(target, self.vocab_size).float()


def test_name_recall_reads_the_name_positions():
    bios = ReverseBioSStream(reverse=6, **KW)
    people = np.arange(6)
    n = len(qa_vocab())
    assert p32.name_recall(_Shifted(n, 1), bios, people) == 1.0
    assert p32.name_recall(_Shifted(n, 0), bios, people) == 0.0
    assert p32.name_recall(_Shifted(n, 2), bios, people) == 0.0


def test_scored_accuracies_carry_their_counts_and_hint_helps_needs_the_noise():
    def scored(task, hint, answers, hints=None):
        h = None if hints is None else np.asarray(hints, dtype=bool)
        return p32.Scored(task, hint, np.asarray(answers, dtype=bool), h)

    def of(k, hint, n=100):
        return scored("month_mod2", hint, [1] * k + [0] * (n - k), [0] * n if hint else None)

    plain = of(5, False)
    assert (plain.acc.k, plain.acc.n) == (5, 100)
    assert plain.hint_acc is None and plain.answer_given_hint is None
    hinted = scored("month_mod2", True, [1] * 40 + [0] * 60, [1] * 50 + [0] * 50)
    assert (hinted.hint_acc.k, hinted.hint_acc.n) == (50, 100)
    assert (hinted.answer_given_hint.k, hinted.answer_given_hint.n) == (40, 50)
    assert p32.hint_helps(plain, hinted, chance=0.2)  # 40% of 100: above 5% and above chance
    assert not p32.hint_helps(plain, hinted, chance=0.35)  # 40% [0.31, 0.50] is at 35% chance
    assert not p32.hint_helps(plain, of(8, True), chance=0.0)  # 8% vs 5%: inside the noise
    assert of(8, True).answer_given_hint is None
    assert not p32.hint_helps(of(60, False), of(62, True), chance=0.5)  # above chance, no gain
    with pytest.raises(ValueError, match="unhinted then hinted"):
        p32.hint_helps(hinted, plain, chance=0.5)
    with pytest.raises(ValueError, match="same task"):
        p32.hint_helps(plain, scored("month_mod6", True, [1] * 100, [1] * 100), chance=0.5)
    with pytest.raises(ValueError, match="chance"):
        p32.hint_helps(plain, hinted, chance=1.5)
