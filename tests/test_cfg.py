"""The cfg3 grammars and sampler, checked against the published definitions and by re-derivation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physlm.data.cfg import (
    NAMED_GRAMMARS,
    Grammar,
    named_grammar,
    random_grammar,
    sample,
)

# Rule counts and mean lengths measured from the official Lano-cfg JSON configs (reference notes,
# 3,000 samples each); Part 4.1 App. A.5 prints cfg3f's root line.
OFFICIAL = {"cfg3b": (32, 274), "cfg3i": (32, 310), "cfg3h": (39, 238), "cfg3g": (48, 254),
            "cfg3f": (54, 250)}
DEGREES = {"cfg3b": (2, 2), "cfg3i": (2, 2), "cfg3h": (2, 3), "cfg3g": (3, 3), "cfg3f": (3, 4)}


def family_violations(g: Grammar, deg: tuple[int, int], lens: tuple[int, int],
                      distinct: bool) -> list[str]:
    bad = []
    for level, level_rules in enumerate(g.rules):
        seen = set()
        for sym, rhs_list in enumerate(level_rules):
            if not deg[0] <= len(rhs_list) <= deg[1]:
                bad.append(f"level {level} symbol {sym}: {len(rhs_list)} rules")
            for rhs in rhs_list:
                if not lens[0] <= len(rhs) <= lens[1]:
                    bad.append(f"rule {rhs} has length {len(rhs)}")
                if rhs in seen:
                    bad.append(f"rule {rhs} repeats at level {level}")
                if distinct and len(set(rhs)) != len(rhs):
                    bad.append(f"rule {rhs} repeats a symbol")
                seen.add(rhs)
    return bad


@pytest.mark.parametrize("name", NAMED_GRAMMARS)
def test_named_grammars_match_the_published_family(name: str) -> None:
    g = named_grammar(name)
    rules, mean = OFFICIAL[name]
    assert g.sizes == (1, 3, 3, 3, 3, 3, 3)
    assert g.num_rules() == rules
    assert family_violations(g, DEGREES[name], (2, 3), distinct=name == "cfg3b") == []
    assert abs(g.mean_length - mean) / mean < 0.02  # exact expectation vs the official sample


def test_cfg3f_root_and_ids_follow_the_official_numbering() -> None:
    g = named_grammar("cfg3f")
    assert g.describe().splitlines()[0] == "22 -> 20 21 | 20 19 21 | 21 19 19 | 20 20"
    assert [g.symbol_id(1, i) for i in range(3)] == [19, 20, 21]
    assert [g.symbol_id(5, i) for i in range(3)] == [7, 8, 9]
    assert [g.symbol_id(6, i) for i in range(3)] == [1, 2, 3]
    assert g.eos_token == 4
    with pytest.raises(ValueError, match="must be one of"):
        named_grammar("cfg3z")


def test_cfg3f_sentence_statistics() -> None:
    g = named_grammar("cfg3f")
    lengths = sample(g, 4000, seed=1).lengths
    # Part 4.1: "lengths 100-500"; official configs: mean 250 +- 70, 5-95% 148-370.
    assert abs(lengths.mean() - g.mean_length) < 4 * 70 / math.sqrt(len(lengths))
    assert 240 < lengths.mean() < 260
    lo, hi = np.quantile(lengths, [0.05, 0.95])
    assert 135 < lo < 160 and 355 < hi < 385
    assert lengths.min() >= 90 and lengths.max() <= 520


@pytest.mark.parametrize("name", ["cfg3b", "cfg3h"])
def test_sample_mean_matches_exact_expectation(name: str) -> None:
    g = named_grammar(name)
    lengths = sample(g, 2000, seed=2).lengths
    assert abs(lengths.mean() - g.mean_length) < 4 * lengths.std() / math.sqrt(len(lengths))


def test_root_rules_are_chosen_uniformly() -> None:
    g = named_grammar("cfg3f")
    s = sample(g, 4000, seed=3)
    counts = np.zeros(4)
    for i in range(len(s.lengths)):
        n = s.lengths[i]
        kids = s.nodes[i, 1, :n]
        first = np.concatenate([[True], kids[1:] != kids[:-1]])
        rhs = tuple(int(x) for x in s.ancestors[i, 1, :n][first])
        counts[g.rules[0][0].index(rhs)] += 1
    expected = len(s.lengths) / 4
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 16.3  # 3 degrees of freedom, p = 0.001


def rederive(g: Grammar, tokens: np.ndarray, ancestors: np.ndarray, nodes: np.ndarray,
             boundaries: np.ndarray) -> None:
    """Rebuild the tree from the labels and check every node against the grammar's rules."""
    n = len(tokens)
    for level in range(g.depth):
        ids = nodes[level]
        assert ids[0] == 0 and np.all(np.diff(ids) >= 0) and np.all(np.diff(ids) <= 1)
        ends = np.append(ids[1:] != ids[:-1], True)
        assert np.array_equal(boundaries[level], ends)
        for node in range(ids[-1] + 1):
            where = np.flatnonzero(ids == node)
            sym = ancestors[level, where]
            assert np.all(sym == sym[0])
            if level + 1 < g.depth:
                below = nodes[level + 1, where]
                first = np.append(True, below[1:] != below[:-1])
                kids = tuple(int(x) for x in ancestors[level + 1, where][first])
            else:
                kids = tuple(int(t) - 1 for t in tokens[where])
            assert kids in g.rules[level][sym[0]], (level, node, kids)
    assert np.all(ancestors[0] == 0) and n == len(ancestors[0])


@pytest.mark.parametrize(
    "grammar",
    [named_grammar("cfg3f"), named_grammar("cfg3b"),
     random_grammar(5, sizes=(1, 2, 4, 3, 2), num_rules=(1, 3), rule_len=(1, 3))],
    ids=["cfg3f", "cfg3b", "family-with-unary-rules"],
)
def test_parse_labels_rederive_the_sentence(grammar: Grammar) -> None:
    s = sample(grammar, 40, seed=4)
    for i in range(40):
        n = s.lengths[i]
        rederive(grammar, s.tokens[i, :n], s.ancestors[i, :, :n], s.nodes[i, :, :n],
                 s.boundaries[i, :, :n])
        assert np.all(s.tokens[i, n:] == 0) and np.all(s.ancestors[i, :, n:] == -1)
    assert s.sentences()[0] == s.tokens[0, : s.lengths[0]].tolist()


def test_sampling_is_deterministic_in_the_seed() -> None:
    g = named_grammar("cfg3g")
    a, b, c = sample(g, 50, 9), sample(g, 50, 9), sample(g, 50, 10)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.nodes, b.nodes)
    assert not np.array_equal(a.lengths, c.lengths)


@pytest.mark.parametrize(
    ("kwargs", "distinct"),
    [
        ({}, False),
        ({"num_rules": (2, 2), "distinct_symbols": True}, True),
        ({"sizes": (1, 3, 9, 27, 27, 9, 4), "num_rules": (3, 3)}, False),
        ({"sizes": (1, 2, 2, 2), "num_rules": (1, 4), "rule_len": (1, 3)}, False),
    ],
)
def test_family_constructor_obeys_its_rules(kwargs: dict, distinct: bool) -> None:
    deg = kwargs.get("num_rules", (3, 4))
    lens = kwargs.get("rule_len", (2, 3))
    for seed in range(6):
        g = random_grammar(seed, **kwargs)
        assert g.sizes == kwargs.get("sizes", (1, 3, 3, 3, 3, 3, 3))
        assert family_violations(g, deg, lens, distinct) == []
    assert random_grammar(3, **kwargs) == random_grammar(3, **kwargs)
    assert random_grammar(3, **kwargs).rules != random_grammar(4, **kwargs).rules


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sizes": (2, 3, 3)}, "sizes"),
        ({"sizes": (1,)}, "sizes"),
        ({"sizes": (1, 0, 3)}, "sizes"),
        ({"num_rules": (0, 2)}, "num_rules"),
        ({"num_rules": (3, 2)}, "num_rules"),
        ({"rule_len": (0, 2)}, "rule_len"),
        ({"rule_len": 2}, "rule_len"),
        ({"sizes": (1, 2, 2), "num_rules": (3, 3), "rule_len": (1, 1)}, "num_rules"),
        ({"rule_len": (2, 4), "distinct_symbols": True}, "distinct_symbols"),
        ({"seed": -1}, "seed"),
    ],
)
def test_family_constructor_rejects_bad_parameters(kwargs: dict, message: str) -> None:
    kwargs = {"seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        random_grammar(**kwargs)


def test_bad_grammars_and_sample_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="sizes"):
        Grammar("x", (2, 2), ((((0,),), ((0,),)),))
    with pytest.raises(ValueError, match="rules must have one entry"):
        Grammar("x", (1, 2), ())
    with pytest.raises(ValueError, match="no rules"):
        Grammar("x", (1, 2), (((),),))
    with pytest.raises(ValueError, match="rule"):
        Grammar("x", (1, 2), ((((0, 2),),),))
    with pytest.raises(ValueError, match="n must"):
        sample(named_grammar("cfg3f"), 0, 1)
    with pytest.raises(ValueError, match="seed"):
        sample(named_grammar("cfg3f"), 3, -1)
