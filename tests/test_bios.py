"""bioS(N): pools, templates, rendering rules, spans, schedule purity, junk and domain options."""

import json
import math
import time
from collections import Counter

import numpy as np
import pytest
import torch
from streamrows import full_rows, split_bios

from physlm.data import BatchSource
from physlm.data.bios import (
    ATTRIBUTES,
    COUNTED,
    BioSStream,
    _rows_of,
    bios_world,
    render,
)
from physlm.data.bios_pools import build_pools
from physlm.data.bios_templates import TEMPLATES
from physlm.data.vocab import split_words

GENDERED = {"he", "she", "his", "her", "hers", "him", "himself", "herself", "they", "them",
            "their", "theirs", "man", "woman"}


def small(**kw):
    args = dict(n_people=40, exposures=3, batch_size=4, seq_len=400, seed=7)
    args.update(kw)
    return BioSStream(**args)


def prefix_free(seqs):
    seqs = sorted(set(map(tuple, seqs)))
    return all(b[:len(a)] != a for a, b in zip(seqs, seqs[1:], strict=False))


# ----------------------------------------------------------------------------------------------
# pools and templates


def test_pool_sizes_and_distinct_values():
    p = build_pools()
    sizes = [len(p.first), len(p.middle), len(p.last), len(p.cities), len(p.universities),
             len(p.majors), len(p.employers), len(p.employer_hq)]
    assert sizes == [400, 400, 1000, 200, 300, 100, 263, 263]
    for pool in (p.first, p.middle, p.last, p.cities, p.universities, p.majors, p.employers):
        assert len(set(pool)) == len(pool)
    names = p.first + p.middle + p.last
    assert len(set(names)) == 1800 and all(len(split_words(n)) == 1 for n in names)
    assert all(0 <= h < 200 for h in p.employer_hq)
    assert p.n_names == 160_000_000
    assert build_pools() is build_pools()  # deterministic and cached


def test_pools_are_prefix_free_token_sequences():
    w = bios_world()
    for pool in (w.city, w.university, w.major, w.employer):
        assert prefix_free(pool)
    assert all(w.vocab.decode(c).count(",") == 1 for c in w.city)


def test_log2_s0_matches_the_paper():
    expected = math.log2(2 * (12 * 28 * 200) * 200 * 300 * 100 * 263)
    assert bios_world().log2_s0 == pytest.approx(expected, abs=1e-9)
    assert round(expected, 2) == 47.59


def test_template_counts_and_rules():
    counts = {a: len(t) for a, t in TEMPLATES.items()}
    assert counts == {"birth_date": 46, "birth_city": 49, "university": 49, "major": 52,
                      "employer": 47, "work_city": 48}
    mids = []
    for ts in TEMPLATES.values():
        assert len(set(ts)) == len(ts)
        for t in ts:
            assert t.startswith("{S} ") and t.count("{V}") == 1 and t.count("{S}") == 1
            assert t.endswith(".")
            words = {w.lower() for w in split_words(t.replace("{S}", "").replace("{V}", ""))}
            assert not words & GENDERED, t
            mids.append(tuple(split_words(t[4:t.index("{V}")])))
    # no middle part is a prefix of another: the value's first token never competes with
    # template words, and the middle tells which attribute comes
    assert len(set(mids)) == len(mids) and all(mids)
    assert prefix_free(mids)


# ----------------------------------------------------------------------------------------------
# people and rendering


def test_unique_names_and_work_city_is_employer_hq():
    s = BioSStream(n_people=20_000, exposures=1, batch_size=2, seq_len=200, seed=3)
    ids = s.people.name_ids()
    assert np.unique(ids).size == 20_000 and ids.min() >= 0 and ids.max() < 160_000_000
    hq = np.asarray(build_pools().employer_hq)
    assert np.array_equal(s.people.work_city, hq[s.people.employer])
    # attributes look uniform: all 12 months and 263 employers occur
    assert np.unique(s.people.month).size == 12 and np.unique(s.people.employer).size == 263
    assert abs(s.people.pronoun.mean() - 0.5) < 0.02


def test_spans_decode_to_the_facts():
    s = small(n_people=60)
    v = s.vocab
    for i in range(60):
        bio, spans = s.render_person(i)
        facts = s.facts(i)
        assert set(spans) == set(facts)
        for key, (a, b) in spans.items():
            assert v.decode(bio[a:b]) == facts[key], key
        assert spans["name"][0] == 0  # the name opens the biography
        # the pronoun span is its first occurrence: the subject of the second sentence
        assert spans["pronoun"] == (bio.index(v.id(".")) + 1, bio.index(v.id(".")) + 2)
    pools = build_pools()
    for i in range(60):
        f = s.facts(i)
        emp = pools.employers.index(f["employer"])
        assert f["work_city"] == pools.cities[pools.employer_hq[emp]]


def test_pronoun_and_fullname_rules():
    w = bios_world()
    for fullname in (False, True):
        s = small(fullname=fullname)
        for i in range(20):
            bio, spans = s.render_person(i)
            text = w.vocab.decode(bio)
            sentences = [x.strip() for x in text.split(".") if x.strip()]
            assert len(sentences) == 6
            name, pron = s.facts(i)["name"], s.facts(i)["pronoun"]
            assert text.count(name) == (6 if fullname else 1)
            assert sentences[0].startswith(name)
            for sent in sentences[1:]:
                assert sent.startswith(name if fullname else pron + " ")
            others = {"He", "She"} - {pron}
            assert not set(split_words(text)) & others
            if fullname:
                assert "He" not in split_words(text) and "She" not in split_words(text)
                assert "pronoun" not in spans


def _sentence_templates(stream, bio):
    """(attribute, template index) of each sentence, read off the template middle."""
    w = stream.world
    mids = {t.mid: (a, i) for a, ts in enumerate(w.templates) for i, t in enumerate(ts)}
    out, i = [], 0
    while i < len(bio):
        j = bio.index(w.vocab.id("."), i)
        sent = bio[i:j + 1]
        sub = 3 if not out or stream.config.fullname else 1
        found = [at for m, at in mids.items() if tuple(sent[sub:sub + len(m)]) == m]
        assert len(found) == 1
        out.append(found[0])
        i = j + 1
    return out


def _sentence_attrs(stream, bio):
    return [a for a, _ in _sentence_templates(stream, bio)]


def _exposures_of(stream, person, steps):
    """Token lists of every rendering of ``person`` in the first ``steps`` steps."""
    out = []
    for step in range(steps):
        useful, who = stream.plan(step)
        rows = full_rows(stream.batch(step))
        for r in range(stream.config.batch_size):
            if not useful[r]:
                continue
            bios = split_bios(stream, rows[r])
            assert len(bios) == stream.bios_per_row
            for j, p in enumerate(who[r]):
                if p == person:
                    out.append(bios[j])
    return out


def test_resampling_changes_the_text_not_the_facts():
    s = small(n_people=12, exposures=8)
    renders = _exposures_of(s, 5, s.steps)
    assert len(renders) >= 8
    assert len({tuple(r) for r in renders}) == len(renders)  # every exposure is new text
    facts = s.facts(5)
    for r in renders:
        text = s.vocab.decode(r)
        for key in ("name", "birth_city", "university", "major", "employer", "work_city"):
            assert facts[key] in text
        assert f"{facts['birth_month']} {facts['birth_day']}, {facts['birth_year']}" in text
    orders = {tuple(_sentence_attrs(s, r)) for r in renders}
    assert len(orders) >= 4  # sentence order is shuffled per exposure
    assert all(sorted(o) == list(range(6)) for o in orders)
    for attr in range(6):  # and every attribute's template is re-drawn
        used = {t for r in renders for a, t in _sentence_templates(s, r) if a == attr}
        assert len(used) >= 4


def test_single_and_multi_variants():
    single = small(n_people=10, exposures=6, template_variants=1, order="fixed")
    renders = _exposures_of(single, 3, single.steps)
    assert len(renders) >= 6 and len({tuple(r) for r in renders}) == 1
    assert _sentence_attrs(single, renders[0]) == list(range(6))  # Part 3.1 fixed order
    multi = small(n_people=10, exposures=12, template_variants=3, order_variants=3)
    renders = _exposures_of(multi, 3, multi.steps)
    assert len({tuple(r) for r in renders}) == 3
    permute = small(n_people=10, exposures=6, template_variants=1, order_variants=2)
    renders = _exposures_of(permute, 3, permute.steps)
    assert len({tuple(_sentence_attrs(permute, r)) for r in renders}) == 2
    # the evaluation rendering of a fixed-variant stream is one the model trained on
    assert single.render_person(3)[0] == _exposures_of(single, 3, single.steps)[0]


# ----------------------------------------------------------------------------------------------
# the stream


def test_is_a_batch_source_with_valid_batches():
    s = small()
    assert isinstance(s, BatchSource)
    b = s.batch(0)
    assert b["x"].shape == b["y"].shape == b["mask"].shape == (4, 400)
    assert torch.equal(b["x"][:, 1:], b["y"][:, :-1])
    assert int(b["x"].max()) < s.vocab_size
    assert torch.equal(b["mask"], b["y"] != s.vocab.pad_id)
    assert (b["x"][:, 0] == s.vocab.eos_id).all()
    json.dumps(s.spec())


def test_batch_is_a_pure_function_of_seed_and_step():
    s1, s2 = small(), small()
    late = s1.batch(9)  # touching other epochs first must not matter
    for step in (0, 3, 9):
        a, b = s1.batch(step), s2.batch(step)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(late["x"], s2.batch(9)["x"])
    assert not torch.equal(s1.batch(3)["x"], s1.batch(4)["x"])
    assert not torch.equal(s1.batch(3)["x"], small(seed=8).batch(3)["x"])


def test_exposure_counts_are_exact():
    s = small(n_people=37, batch_size=3, exposures=4, seq_len=300)
    k = s.bios_per_row
    seen = []
    for step in range(s.steps):
        _, who = s.plan(step)
        seen.extend(who.ravel().tolist())
    for e in range(4):  # every epoch of N biographies holds every person exactly once
        assert sorted(seen[e * 37:(e + 1) * 37]) == list(range(37))
    counts = Counter(seen)
    assert min(counts.values()) >= 4
    assert len(seen) - 4 * 37 < 3 * k  # steps_for is the fewest steps
    assert s.steps == s.steps_for(4) == math.ceil(math.ceil(4 * 37 / k) / 3)
    # the plan is what the rows contain
    step = 2
    _, who = s.plan(step)
    rows = full_rows(s.batch(step))
    for r in range(3):
        for j, bio in enumerate(split_bios(s, rows[r])):
            assert s.vocab.decode(bio).startswith(s.facts(who[r, j])["name"])


def test_junk_rows_fraction_and_people():
    s = small(n_people=30, batch_size=8, junk_fraction="7/8", exposures=2)
    names = {s.facts(i)["name"] for i in range(30)}
    junk_names = []
    useful_rows = junk_bios = 0
    junk_tokens = useful_tokens = 0
    for step in range(12):
        useful, _ = s.plan(step)
        assert useful.sum() == 1  # 1/8 of 8 rows
        rows = full_rows(s.batch(step))
        for r in range(8):
            bios = split_bios(s, rows[r])
            for bio in bios:
                name = " ".join(s.vocab.tokens(bio[:3]))
                assert (name in names) == bool(useful[r])
                if not useful[r]:
                    junk_names.append(name)
            n_tok = sum(len(b) + 1 for b in bios)
            if useful[r]:
                useful_rows += 1
                useful_tokens += n_tok
            else:
                junk_bios += len(bios)
                junk_tokens += n_tok
    assert useful_rows == 12
    assert abs(junk_tokens / (junk_tokens + useful_tokens) - 7 / 8) < 0.03
    assert len(set(junk_names)) == len(junk_names) == junk_bios  # fresh people, no repeats
    assert s.steps == s.steps_for(2) == math.ceil(math.ceil(60 / s.bios_per_row) * 8 / 8)


def test_junk_fraction_is_exact_for_uneven_shares():
    s = small(batch_size=5, junk_fraction=0.75)
    useful = np.concatenate([s.plan(step)[0] for step in range(40)])
    for n in range(1, 201):
        assert useful[:n].sum() == n // 4  # floor of the useful share on every prefix


def test_repetitive_junk_uses_a_fixed_disjoint_population():
    s = small(n_people=20, batch_size=4, junk_fraction="1/2", junk_people=6)
    useful_names = {s.facts(i)["name"] for i in range(20)}
    junk_names = set()
    for step in range(10):
        useful, _ = s.plan(step)
        rows = full_rows(s.batch(step))
        for r in np.nonzero(~useful)[0]:
            for bio in split_bios(s, rows[r]):
                junk_names.add(" ".join(s.vocab.tokens(bio[:3])))
    assert len(junk_names) == 6 and not junk_names & useful_names


def test_domain_token_placement():
    s = small(n_people=20, batch_size=4, junk_fraction="1/2", domain_token=True)
    v = s.vocab
    for step in range(4):
        useful, _ = s.plan(step)
        rows = full_rows(s.batch(step))
        for r in range(4):
            row = rows[r]
            starts = [i + 1 for i, t in enumerate(row[:-1]) if t == v.eos_id
                      and row[i + 1] not in (v.pad_id, v.eos_id)]
            assert len(starts) == s.bios_per_row
            for i in starts:
                assert (row[i] == v.dom_id) == bool(useful[r])
            assert row.count(v.dom_id) == (s.bios_per_row if useful[r] else 0)
    e = next(s.eval_batches(3))
    assert (e["x"][:, :2] == torch.tensor([v.eos_id, v.dom_id])).all()
    assert s.used_token_ids().tolist().count(v.dom_id) == 1
    assert v.dom_id not in small().used_token_ids().tolist()


def test_eval_batches_cover_everyone_with_correct_masks():
    s = small(n_people=25)
    v = s.vocab
    people = []
    for b in s.eval_batches(batch_size=10):
        people.extend(b["person"].tolist())
        assert b["x"].shape[1] <= s.config.seq_len
        for r, p in enumerate(b["person"].tolist()):
            f = s.facts(p)
            y = b["y"][r]
            assert (b["x"][r, 0] == v.eos_id) and b["name_mask"][r].sum() == 3
            assert v.decode(y[b["name_mask"][r]].tolist()) == f["name"]
            for a, key in enumerate(COUNTED):
                assert v.decode(y[b["attr"][r] == a].tolist()) == f[key], key
            assert torch.equal(b["value_mask"][r], b["attr"][r] >= 0)
            assert not (b["name_mask"][r] & b["value_mask"][r]).any()
    assert people == list(range(25))


def test_work_city_is_not_counted_and_fixed_facts_span_all_attributes():
    assert "work_city" not in COUNTED and len(COUNTED) == 8
    assert ATTRIBUTES == ("birth_date", "birth_city", "university", "major", "employer",
                          "work_city")


def test_render_is_deterministic_given_choices():
    s = small()
    w = s.world
    person = _rows_of(s.people.take(np.array([0])))[0]
    a = render(w, person, [0] * 6, list(range(6)), False)
    b = render(w, person, [0] * 6, list(range(6)), False)
    c = render(w, person, [1] * 6, list(range(6)), False)
    assert a == b and a != c
    assert w.vocab.decode(a).startswith(s.facts(0)["name"] + " was born on")


def test_length_statistics():
    s = small(n_people=300)
    lens = [len(s.render_person(i)[0]) for i in range(300)]
    assert max(lens) <= s.max_bio_len
    assert 50 < np.mean(lens) < 70  # about 58 word-level tokens per biography


def test_batch_speed():
    s = BioSStream(n_people=5000, exposures=10, batch_size=16, seq_len=300, seed=0)
    assert s.bios_per_row == 3
    s.batch(0)
    t = time.perf_counter()
    for step in range(1, 11):
        s.batch(step)
    per_batch = (time.perf_counter() - t) / 10
    assert per_batch < 0.05  # 48 biographies; typically ~1 ms


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_people=-1), "n_people"),
        (dict(n_people=0), "n_people"),
        (dict(n_people=160_000_001), "n_people"),
        (dict(batch_size=0), "batch_size"),
        (dict(seq_len=50), "seq_len"),
        (dict(bios_per_row=9), "bios_per_row"),
        (dict(order="random"), "order"),
        (dict(junk_fraction=1), "junk_fraction"),
        (dict(junk_fraction="abc"), "junk_fraction"),
        (dict(junk_people=10), "junk_people"),
        (dict(exposures=-1), "exposures"),
        (dict(order="fixed", order_variants=2), "order_variants"),
        (dict(template_variants=0), "template_variants"),
        (dict(seed=-3), "seed"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)


def test_bad_steps_raise():
    s = small()
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="step"):
            s.batch(bad)
    with pytest.raises(ValueError, match="exposures"):
        s.steps_for(-2)


def test_spec_names_everything_that_changes_the_data():
    a = small().spec()
    assert a["kind"] == "bioS" and a["world"] == bios_world().digest
    for change in (dict(seed=8), dict(junk_fraction="1/2"), dict(domain_token=True),
                   dict(fullname=True), dict(order="fixed"), dict(bios_per_row=2)):
        assert small(**change).spec() != a
    assert small(junk_fraction=0.875).spec()["junk_fraction"] == "7/8"


def test_a_population_can_avoid_the_names_of_another():
    """Names that would collide are redrawn; a population that meets none draws what it would
    alone (same names, same attributes, same batches)."""
    from physlm.data.bios import bios_world, sample_people

    world = bios_world()
    other = sample_people(3000, 5, world).name_ids()
    free = BioSStream(n_people=500, exposures=2, batch_size=2, seq_len=512, seed=9)
    assert not np.intersect1d(free.people.name_ids(), other).size  # no collision to begin with
    kept = BioSStream(n_people=500, exposures=2, batch_size=2, seq_len=512, seed=9,
                      avoid=(3000, 5))  # fmt: skip
    assert np.array_equal(kept.people.name_ids(), free.people.name_ids())
    assert np.array_equal(kept.people.birth_city, free.people.birth_city)
    assert torch.equal(kept.batch(3)["x"], free.batch(3)["x"])
    # a forced collision: this population's own names are the ones to avoid
    clash = BioSStream(n_people=500, exposures=2, batch_size=2, seq_len=512, seed=9,
                       avoid=(500, 9))  # fmt: skip
    assert not np.intersect1d(clash.people.name_ids(), free.people.name_ids()).size
    assert len(np.unique(clash.people.name_ids())) == 500
    assert kept.spec() != free.spec()  # the run cache tells them apart
    with pytest.raises(ValueError, match="avoid must be"):
        BioSStream(n_people=5, exposures=1, batch_size=1, seq_len=512, avoid=(0, 1))
