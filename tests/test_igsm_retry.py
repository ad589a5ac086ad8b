"""Part 2.2's retry and retry_weak data, checked by the text-only checker in retry mode."""

from __future__ import annotations

import re

import pytest

from physlm.data.igsm import check, generate, igsm_preset, name_world, with_retries
from physlm.data.igsm.render import param_phrase
from physlm.data.igsm.tokens import tokenize

MED = igsm_preset("med")
WORLD = name_world(MED.world)
PROBLEMS = [generate(MED, f"r{i}") for i in range(40)]
_FRAGMENT = re.compile(r"Define [^;.]*? as \[BACK\]\. ")


@pytest.mark.parametrize("kind", ["retry", "retry_weak"])
def test_rate_zero_is_the_error_free_solution(kind):
    for i, p in enumerate(PROBLEMS):
        r = with_retries(p, 0.0, i, kind)
        assert r.text == p.solution_text and r.n_retries == 0
        toks, roles = r.tokens()
        assert toks == tokenize(p.solution_text) and set(roles) == {"step"}


@pytest.mark.parametrize("kind", ["retry", "retry_weak"])
def test_back_stripped_solution_is_the_error_free_one(kind):
    total = 0
    for i, p in enumerate(PROBLEMS):
        r = with_retries(p, 0.5, i, kind)
        assert _FRAGMENT.sub("", r.text) == p.solution_text
        assert r.text.count("[BACK]") == r.n_retries
        toks, _ = r.tokens()
        assert " ".join(toks) == " ".join(tokenize(r.text))
        total += r.n_retries
    assert total > len(PROBLEMS)


def test_retry_checker_accepts_retry_data_and_every_retry_was_not_computable():
    for i, p in enumerate(PROBLEMS):
        r = with_retries(p, 0.4, i, "retry")
        rep = check(p.text, r.text, WORLD, p.answer, allow_retry=True)
        assert rep.correct and rep.retries == r.n_retries
        assert rep.justified_retries == rep.retries  # the checker's own computability test
        assert rep.retries_per_sentence == [len(w) for w in r.wrong]
        assert not check(p.text, r.text, WORLD, p.answer).valid or r.n_retries == 0


def test_retry_weak_takes_back_future_steps():
    for i, p in enumerate(PROBLEMS):
        r = with_retries(p, 0.5, i, "retry_weak")
        order = p.solution.params
        for s, ws in enumerate(r.wrong):
            assert all(w in order[s + 1 :] for w in ws) and len(set(ws)) == len(ws)
        rep = check(p.text, r.text, WORLD, p.answer, allow_retry=True)
        assert rep.correct and rep.retries == r.n_retries


def test_wrong_starts_follow_the_geometric_rate():
    """P(at least j wrong starts before a sentence) = rate**j while candidates last."""
    rate, at_least = 0.5, [0, 0, 0]
    n = 0
    for i, p in enumerate(PROBLEMS * 3):
        r = with_retries(p, rate, f"g{i}", "retry")
        for ws in r.wrong:
            n += 1
            for j in range(3):
                at_least[j] += len(ws) > j
    for j in range(3):
        want = rate ** (j + 1)
        assert abs(at_least[j] / n - want) < 4 * (want * (1 - want) / n) ** 0.5 + 0.02


def test_retries_are_deterministic_and_named_in_the_text():
    p = PROBLEMS[3]
    a, b = with_retries(p, 0.3, 9), with_retries(p, 0.3, 9)
    assert a == b and a.text == b.text
    for ws in a.wrong:
        for w in ws:
            assert f"Define {param_phrase(p.structure, w, False)} as [BACK]." in a.text


@pytest.mark.parametrize("kw, match", [({"rate": 1.0}, "rate"), ({"rate": -0.1}, "rate"),
                                      ({"rate": 0.2, "kind": "miss"}, "kind")])
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        with_retries(PROBLEMS[0], seed=0, **kw)
