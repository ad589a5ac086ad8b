"""Depo: the cycle, the words, the queries, the batch layout and the held-out test sets."""

import math

import numpy as np
import pytest
import torch

from physlm.data.depo import QUERIES, DepoConfig, DepoStream, words_available


def follow(edges_tokens, start, hops, word_end):
    """k-th successor by walking the written edges (an independent reading of the context)."""
    words, i = [], 0
    while i < len(edges_tokens):  # split the context into words at their end tokens
        j = i
        while not word_end(edges_tokens[j]):
            j += 1
        words.append(tuple(edges_tokens[i : j + 1]))
        i = j + 1
    succ = dict(zip(words[0::2], words[1::2], strict=True))
    node = tuple(start)
    for _ in range(hops):
        node = succ[node]
    return list(node)


@pytest.mark.parametrize("kw", [dict(), dict(min_word=5, max_word=7, symbols=3, max_nodes=12)])
def test_context_is_a_cycle_and_answers_follow_it(kw):
    s = DepoStream(**kw, max_hops=4, batch_size=2)
    end0 = s.vocab.id("e0")
    is_end = lambda t: end0 <= t < end0 + s.config.symbols  # noqa: E731
    for step in range(30):
        inst = s.instance(step, 0)
        assert len(set(inst.words)) == inst.n
        assert all(kw.get("min_word", 1) <= len(w) <= kw.get("max_word", 2) for w in inst.words)
        ctx = s.context(inst)
        assert ctx[0] == s.vocab.bos_id and len(ctx) == 1 + sum(
            len(inst.words[i]) + len(inst.words[(i + 1) % inst.n]) for i in range(inst.n)
        )
        assert sorted(inst.edges) == list(range(inst.n))
        assert len(inst.queries) == min(inst.n, QUERIES)
        assert len({a for a, _ in inst.queries}) == len(inst.queries)
        for node, hops in inst.queries:
            assert 1 <= hops <= 4
            got = follow(ctx[1:], s.word(inst, node), hops, is_end)
            assert got == s.answer(inst, node, hops)


def test_sizes_follow_the_easy_first_law_and_tests_are_held_out():
    s = DepoStream(max_nodes=12, batch_size=1)
    counts = np.bincount([s.instance(step, 0).n for step in range(3000)], minlength=13)[3:]
    w = np.array([1 / (n + math.sqrt(12)) for n in range(3, 13)])
    assert np.abs(counts / 3000 - w / w.sum()).max() < 0.03
    test = s.test_set(12, 100)
    assert all(i.n == 12 for i in test)
    train = {tuple(s.context(s.instance(step, 0))) for step in range(2000)}
    assert not train & {tuple(s.context(i)) for i in test}


def test_batches_are_pure_and_the_loss_is_on_answers_only():
    s = DepoStream(max_nodes=8, max_hops=3, batch_size=3, seed=2)
    a, b = (
        s.batch(5),
        DepoStream(DepoConfig(max_nodes=8, max_hops=3, batch_size=3, seed=2)).batch(5),
    )
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "mask"))
    ans = s.vocab.id("<ans>")
    for r in range(3):
        inst = s.instance(5, r)
        want = []
        for node, hops in inst.queries:
            want += [ans] + s.answer(inst, node, hops)
        assert a["y"][r][a["mask"][r]].tolist() == want
        prompt = s.prompt(inst, *inst.queries[0])
        assert a["x"][r][: len(prompt)].tolist() == prompt
    assert a["x"].shape[1] <= s.block_size


@pytest.mark.parametrize(
    "kw", [dict(max_nodes=2), dict(max_hops=0), dict(min_word=3, max_word=2),
           dict(max_nodes=20, min_word=1, max_word=1, symbols=4)])  # fmt: skip
def test_bad_settings_name_the_parameter(kw):
    with pytest.raises(ValueError, match="max_nodes|max_hops|max_word"):
        DepoConfig(**kw)
    assert words_available(1, 2, 3) == 12


def test_a_query_outside_the_hops_is_refused():
    s = DepoStream(max_hops=2)
    with pytest.raises(ValueError, match="hops must be"):
        s.prompt(s.instance(0, 0), 0, 3)
