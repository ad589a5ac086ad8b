"""bioD(N, K, C, D, L, T): chunk sets, layout, masks, schedule purity, junk and domain options."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from streamrows import full_rows, split_bios

from physlm.data import BatchSource
from physlm.data.biod import BioDStream, identifying_prefix, sample_chunks


def small(**kw):
    args = dict(n_people=30, n_attributes=3, chunks=2, diversity=8, chunk_len=3, chunk_vocab=5,
                exposures=4, batch_size=4, seq_len=120, seed=2, name_pools=(20, 30))
    args.update(kw)
    return BioDStream(**args)


def parse(stream, bio):
    """(name pool indices, {attribute: value token strings}, attribute order) of one biography."""
    toks = stream.vocab.tokens(bio)
    c = stream.config
    names = [int(t.split("_")[1]) for t in toks[:stream.n_name]]
    body = toks[stream.n_name:]
    step = 1 + c.chunks * c.chunk_len
    values, order = {}, []
    for s in range(c.n_attributes):
        seg = body[s * step:(s + 1) * step]
        assert seg[0].startswith("attr")
        a = int(seg[0][4:])
        order.append(a)
        values[a] = seg[1:]
    return names, values, order


def expected_value(stream, person, a):
    return [f"v{t}" for d in stream.values[person, a] for t in stream.chunk_strings[a, d]]


def test_chunk_sets_are_distinct_strings_over_the_alphabet():
    s = small(diversity=20, chunk_len=2, chunk_vocab=5)
    assert s.chunk_strings.shape == (3, 20, 2)
    assert s.chunk_strings.min() >= 0 and s.chunk_strings.max() < 5
    for k in range(3):
        assert len({tuple(x) for x in s.chunk_strings[k]}) == 20
    full = sample_chunks(np.random.default_rng(0), 25, 2, 5)  # D = T^L: every string once
    assert len({tuple(x) for x in full}) == 25
    with pytest.raises(ValueError, match="diversity"):
        sample_chunks(np.random.default_rng(0), 26, 2, 5)


def test_identifying_prefix_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(20):
        length = int(rng.integers(1, 5))
        chunks = sample_chunks(rng, int(rng.integers(1, min(30, 3 ** length) + 1)), length, 3)
        u = identifying_prefix(chunks)
        for i, c in enumerate(chunks):
            others = [tuple(o) for j, o in enumerate(chunks) if j != i]
            want = next(j for j in range(1, len(c) + 1)
                        if all(o[:j] != tuple(c[:j]) for o in others))
            assert u[i] == want


def test_layout_and_facts():
    s = small()
    assert s.tokens_per_person == 2 + 3 * (1 + 2 * 3)
    assert s.vocab_size == 4 + 3 + 20 + 30 + 5
    for step in range(3):
        useful, who = s.plan(step)
        for r, row in enumerate(full_rows(s.batch(step))):
            bios = split_bios(s, row)
            assert len(bios) == s.bios_per_row
            for j, bio in enumerate(bios):
                assert len(bio) == s.tokens_per_person
                names, values, order = parse(s, bio)
                p = who[r, j]
                assert names == s.names[p].tolist()
                assert sorted(order) == [0, 1, 2]
                for a in range(3):
                    assert values[a] == expected_value(s, p, a)


def test_attribute_order_is_shuffled_per_exposure_unless_fixed():
    for order, want in (("shuffle", True), ("fixed", False)):
        s = small(n_people=6, exposures=20, order=order)
        orders = set()
        for step in range(s.steps):
            _, who = s.plan(step)
            for r, row in enumerate(full_rows(s.batch(step))):
                for j, bio in enumerate(split_bios(s, row)):
                    if who[r, j] == 0:
                        orders.add(tuple(parse(s, bio)[2]))
        assert (len(orders) > 2) == want
        if not want:
            assert orders == {(0, 1, 2)}


def test_unique_names_and_uniform_values():
    s = small(n_people=500, name_pools=(20, 30), diversity=8)
    ids = s.names[:, 0] * 30 + s.names[:, 1]
    assert np.unique(ids).size == 500
    counts = np.bincount(s.values.ravel(), minlength=8)
    assert counts.min() > 0.8 * counts.mean()


def test_purity_and_exposures():
    s1, s2 = small(), small()
    s1.batch(11)
    for step in (0, 5, 11):
        assert all(torch.equal(s1.batch(step)[k], s2.batch(step)[k]) for k in ("x", "y", "mask"))
    assert not torch.equal(s1.batch(1)["x"], s1.batch(2)["x"])
    assert not torch.equal(s1.batch(1)["x"], small(seed=3).batch(1)["x"])
    seen = []
    for step in range(s1.steps):
        seen.extend(s1.plan(step)[1].ravel().tolist())
    for e in range(4):
        assert sorted(seen[e * 30:(e + 1) * 30]) == list(range(30))
    assert min(Counter(seen).values()) >= 4
    assert isinstance(s1, BatchSource)
    json.dumps(s1.spec())
    assert s1.spec()["kind"] == "bioD" and s1.spec() != small(diversity=9).spec()


def test_junk_and_domain_token():
    s = small(junk_fraction="3/4", domain_token=True, batch_size=4)
    v = s.vocab
    known = {tuple(n) for n in s.names.tolist()}
    n_junk = 0
    for step in range(6):
        useful, _ = s.plan(step)
        assert useful.sum() == 1
        for r, row in enumerate(full_rows(s.batch(step))):
            assert row.count(v.dom_id) == (s.bios_per_row if useful[r] else 0)
            for i, t in enumerate(row):
                if t == v.dom_id:
                    assert row[i - 1] == v.eos_id and row[i + 1] != v.pad_id
            for bio in split_bios(s, row):
                names = tuple(parse(s, bio)[0])
                if useful[r]:
                    assert names in known
                else:
                    n_junk += names not in known
    assert n_junk > 0.9 * 18 * s.bios_per_row
    rep = small(junk_fraction="1/2", junk_people=5)
    junk = set()
    for step in range(8):
        useful, _ = rep.plan(step)
        for r, row in enumerate(full_rows(rep.batch(step))):
            if not useful[r]:
                junk |= {tuple(parse(rep, b)[0]) for b in split_bios(rep, row)}
    assert len(junk) == 5 and not junk & {tuple(n) for n in rep.names.tolist()}


def test_eval_masks():
    s = small(domain_token=True)
    v, c = s.vocab, s.config
    seen = []
    for b in s.eval_batches(7):
        seen.extend(b["person"].tolist())
        for r, p in enumerate(b["person"].tolist()):
            y = b["y"][r]
            assert b["x"][r, :2].tolist() == [v.eos_id, v.dom_id]
            assert v.tokens(y[b["name_mask"][r]].tolist()) == [f"name0_{s.names[p, 0]}",
                                                                f"name1_{s.names[p, 1]}"]
            for a in range(3):
                assert v.tokens(y[b["attr"][r] == a].tolist()) == expected_value(s, p, a)
            starts = b["chunk_start"][r]
            assert int((starts >= 0).sum()) == 3 * c.chunks
            for pos in torch.nonzero(starts >= 0).ravel().tolist():
                cid = int(starts[pos])
                a, d = divmod(cid, c.diversity)
                got = y[pos:pos + c.chunk_len].tolist()
                assert got == s.chunk_tok[a, d].tolist()
                content = b["chunk"][r, pos:pos + c.chunk_len]
                u = int(s.prefix_len[a, d])
                assert content.tolist() == [-1] * u + [cid] * (c.chunk_len - u)
            assert int((b["chunk"][r] >= 0).sum()) == sum(
                c.chunk_len - int(s.prefix_len[a, d]) for a in range(3) for d in s.values[p, a])
    assert seen == list(range(30))


def test_used_tokens_and_speed():
    s = small(chunk_vocab=50, diversity=3, chunk_len=1)
    used = set(s.used_token_ids().tolist())
    value_ids = {s.vocab.id(f"v{t}") for t in range(50)}
    assert used & value_ids == set(s.chunk_tok.ravel().tolist())
    assert s.vocab.pad_id not in used and s.vocab.dom_id not in used
    import time

    big = BioDStream(n_people=20_000, n_attributes=6, chunks=1, diversity=50, chunk_len=1,
                     chunk_vocab=100, exposures=10, batch_size=32, seq_len=256, seed=0,
                     name_pools=(200, 200))
    big.batch(0)
    t = time.perf_counter()
    for step in range(1, 11):
        big.batch(step)
    assert (time.perf_counter() - t) / 10 < 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_people=0), "n_people"),
        (dict(n_people=601), "n_people"),
        (dict(diversity=126), "diversity"),
        (dict(chunk_len=0), "chunk_len"),
        (dict(chunks=-1), "chunks"),
        (dict(name_pools=()), "name_pools"),
        (dict(name_pools=(3, 0)), "name_pools"),
        (dict(seq_len=10), "seq_len"),
        (dict(bios_per_row=20), "bios_per_row"),
        (dict(order="sorted"), "order"),
        (dict(junk_fraction=-0.1), "junk_fraction"),
        (dict(junk_people=3), "junk_people"),
        (dict(junk_fraction="1/2", junk_people=571), "name space"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)
