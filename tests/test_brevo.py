"""Brevo: the DAG construction rules, the answer, the batch layout and the checker."""

import itertools
import math

import numpy as np
import pytest
import torch

from physlm.data.brevo import (
    MAX_DEGREE,
    BrevoConfig,
    BrevoStream,
    check_answer,
    draw_instance,
    max_sample_len,
    size_weights,
)


def ancestors_by_matrix(n: int, edges) -> np.ndarray:
    """reach[i, j]: j is i or an ancestor of i, by transitive closure of the adjacency matrix."""
    reach = np.eye(n, dtype=bool)
    for p, c in edges:
        reach[c, p] = True
    for k in range(n):
        reach |= reach[:, [k]] & reach[[k], :]
    return reach


@pytest.mark.parametrize("seed", range(40))
def test_instances_follow_the_construction_rules(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    inst = draw_instance(rng, n, max_nodes=30)
    assert len(set(inst.names)) == n and all(0 <= x < 30 for x in inst.names)
    children = [0] * n
    for c, ps in enumerate(inst.parents):
        assert len(ps) <= MAX_DEGREE and all(p < c for p in ps)  # a DAG in generation order
        for p in ps:
            children[p] += 1
    assert max(children) <= MAX_DEGREE
    assert inst.parents[0] == () and any(inst.parents[i] for i in range(1, n))
    leaves = sum(1 for ps in inst.parents if not ps)
    assert 1 <= leaves <= (n - 1) // 4 + 1
    assert sorted(inst.edges) == sorted((p, c) for c, ps in enumerate(inst.parents) for p in ps)
    # the answer: exactly the query's ancestors and itself, parents first, the query last
    reach = ancestors_by_matrix(n, inst.edges)
    assert set(inst.answer) == set(np.flatnonzero(reach[inst.query]).tolist())
    assert inst.answer[-1] == inst.query == n - 1
    pos = {v: i for i, v in enumerate(inst.answer)}
    assert all(pos[p] < pos[v] for v in inst.answer for p in inst.parents[v])


def test_training_sizes_follow_the_easy_first_law():
    w = size_weights(10)
    expected = np.array([1 / (n + math.sqrt(10)) for n in range(3, 11)])
    assert np.allclose(w, expected / expected.sum())
    s = BrevoStream(max_nodes=10, batch_size=1)
    counts = np.bincount([s.instance(step, 0).n for step in range(4000)], minlength=11)[3:]
    assert np.abs(counts / 4000 - w).max() < 0.03
    assert counts[0] > counts[-1]  # small graphs are the common ones


def test_batches_are_pure_functions_of_the_step_and_mask_the_answer_only():
    s = BrevoStream(max_nodes=8, batch_size=5, seed=3)
    a, b = s.batch(7), BrevoStream(BrevoConfig(max_nodes=8, batch_size=5, seed=3)).batch(7)
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "mask"))
    assert not torch.equal(a["x"], s.batch(8)["x"])
    for r in range(5):
        inst = s.instance(7, r)
        p, ans = s.prompt(inst), s.answer(inst)
        row = a["x"][r].tolist()
        assert row[: len(p)] == p
        assert a["y"][r][a["mask"][r]].tolist() == ans  # loss on the answer and <eos> only
        assert a["x"][r][a["mask"][r]][0].item() == s.vocab.id("<answer>")
    assert a["x"].shape[1] == max(len(s.prompt(i)) + len(s.answer(i)) for i in
                                  (s.instance(7, r) for r in range(5))) - 1  # fmt: skip


def test_samples_fit_the_declared_longest_length():
    s = BrevoStream(max_nodes=6, batch_size=1)
    longest = max(len(s.prompt(i)) + len(s.answer(i)) for i in s.test_set(6, 300))
    assert longest <= max_sample_len(6) == s.block_size


def test_test_sets_are_held_out_and_of_the_asked_size():
    s = BrevoStream(max_nodes=8, batch_size=16)
    test = s.test_set(8, 200)
    assert all(i.n == 8 for i in test)
    train = {tuple(s.prompt(s.instance(step, r))) for step in range(300) for r in range(16)}
    assert not train & {tuple(s.prompt(i)) for i in test}
    assert s.test_set(8, 5) == test[:5] and s.test_set(8, 5, seed=1) != test[:5]


def test_the_checker_accepts_exactly_the_valid_orders():
    """Every permutation of the needed nodes against a brute-force validity test."""
    s = BrevoStream(max_nodes=7, batch_size=1)
    tested = 0
    for i in range(30):
        inst = s.test_set(7, 30)[i]
        if not 3 <= len(inst.answer) <= 6:
            continue
        prompt, eos = s.prompt(inst), s.vocab.eos_id
        name = dict(enumerate(s.answer(inst)[:-1]))
        name = {v: name[k] for k, v in enumerate(inst.answer)}
        for perm in itertools.permutations(inst.answer):
            pos = {v: k for k, v in enumerate(perm)}
            valid = all(pos[p] < pos[v] for v in perm for p in inst.parents[v])
            reply = [name[v] for v in perm] + [eos]
            assert check_answer(prompt, reply, s.vocab) == valid
            tested += 1
    assert tested > 100


def test_the_checker_rejects_wrong_sets_and_unfinished_replies():
    s = BrevoStream(max_nodes=9, batch_size=1)
    inst = next(i for i in s.test_set(9, 50) if len(i.answer) >= 3)
    prompt, good = s.prompt(inst), s.answer(inst)
    assert check_answer(prompt, good, s.vocab)
    assert not check_answer(prompt, good[:-1], s.vocab)  # no <eos>
    assert not check_answer(prompt, good[1:], s.vocab)  # a needed node missing
    assert not check_answer(prompt, good[:1] + good, s.vocab)  # a node twice
    outsider = next(s._node0 + x for x in range(9) if s._node0 + x not in good)
    assert not check_answer(prompt, [outsider] + good, s.vocab)  # an unneeded node
    assert check_answer(prompt, good + [good[0]], s.vocab)  # what follows <eos> is not read


@pytest.mark.parametrize(
    "kwargs", [dict(max_nodes=2), dict(batch_size=0), dict(seed=-1), dict(max_nodes=True)]
)
def test_bad_settings_name_the_parameter(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BrevoConfig(**kwargs)


def test_a_size_outside_the_range_is_refused():
    with pytest.raises(ValueError, match="n must be"):
        draw_instance(np.random.default_rng(0), 12, max_nodes=10)
