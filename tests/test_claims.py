"""The claims ledger: every rule kind gives each of its verdicts, intervals and tests against
independent computations, preconditions, demonstrations apart, and the JSON round trip."""

import json
import math
import random

import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter

from physlm.claims import (
    LEDGER_KEY,
    NOT_HERE,
    VERDICTS,
    Acc,
    AtLeast,
    AtMost,
    Claim,
    EffectOverControl,
    Ledger,
    NoBetterThan,
    Num,
    Ordering,
    Requires,
    WithinFactor,
    coarse,
    compare,
    difference,
    evaluate,
    percent,
    points,
    ratio,
    reachable,
    rule_from_dict,
    wilson,
)


def _ledger() -> Ledger:
    led = Ledger("part3_3_capacity", "cpu")
    led.score("2 bits/param | at 1000 exposures", 2.0, "Result 1", AtLeast(1.8, 1.0), Num(1.934))
    led.score("int8 keeps the bits", "1", "Result 8", AtLeast(0.95, 0.8), Num(0.5))
    led.score("probe beats chance", "~100%", "Sec. 4", AtLeast(0.9, 0.6), Acc(66, 100))
    led.score("index remedy", "a remedy", "R9", AtLeast(0.8, 0.4), Acc(73, 100), demo=True)
    return led


# -- intervals and tests against independent computations -----------------------------------------


def test_wilson_matches_the_closed_form_and_brute_force_coverage():
    # Textbook value: 66/100 -> [0.5627, 0.7454].
    lo, hi = wilson(66, 100)
    assert lo == pytest.approx(0.5627, abs=1e-4) and hi == pytest.approx(0.7454, abs=1e-4)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    for n in (1, 7, 100, 600):  # the ends are exact, so error bars never come out negative
        assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0
    # Coverage by exact binomial sums: about 95% for a moderate p.
    n, p = 60, 0.3
    cover = sum(
        math.comb(n, k) * p**k * (1 - p) ** (n - k)
        for k in range(n + 1)
        if wilson(k, n)[0] <= p <= wilson(k, n)[1]
    )
    assert 0.92 < cover < 0.98


def test_acc_validation_and_text():
    assert Acc.of(0.66, 100) == Acc(66, 100)
    assert Acc(66, 100).text() == "66% [56%, 75%], n=100"
    for bad in [(5, 0), (-1, 10), (11, 10), (1.5, 10)]:
        with pytest.raises(ValueError, match="k|n"):
            Acc(*bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mean"):
        Acc.of(1.2, 10)


def test_num_needs_both_bounds_and_says_what_they_are():
    assert Num(1.934).text() == "1.9"
    assert Num(1.3, 1.1, 1.6, "min-max over 3 replicas").text() == (
        "1.3 [1.1, 1.6] (min-max over 3 replicas)"
    )
    with pytest.raises(ValueError, match="both"):
        Num(1.0, 0.5)
    with pytest.raises(ValueError, match="spread"):
        Num(1.0, 0.5, 1.5)
    with pytest.raises(ValueError, match="lo <= value <= hi"):
        Num(2.0, 0.5, 1.5, "x")


def test_compare_is_a_two_proportion_test():
    # Independent computation: pooled z = (p1 - p2) / sqrt(p(1-p)(2/n)).
    def z(k1, k2, n):
        p = (k1 + k2) / (2 * n)
        return (k1 - k2) / n / math.sqrt(p * (1 - p) * 2 / n)

    rng = random.Random(0)
    for _ in range(200):
        n = rng.choice([50, 100, 200])
        k1, k2 = rng.randint(0, n), rng.randint(0, n)
        if k1 + k2 in (0, 2 * n):
            continue
        expected = 1 if z(k1, k2, n) > 1.96 else -1 if z(k1, k2, n) < -1.96 else 0
        assert compare(Acc(k1, n), Acc(k2, n)) == expected
    # +4.5 points on 200 prompts is inside the noise.
    assert compare(Acc(80, 200), Acc(71, 200)) == 0


def test_compare_numbers_by_intervals_and_difference():
    assert compare(Num(2.0), Num(1.0)) == 1
    assert compare(Num(1.5, 1.0, 2.0, "r"), Num(1.2, 0.9, 1.4, "r")) == 0
    assert compare(Num(float("nan")), Num(1.0)) == 0
    d, lo, hi = difference(Acc(60, 100), Acc(50, 100))
    se = math.sqrt(0.6 * 0.4 / 100 + 0.5 * 0.5 / 100)
    assert d == pytest.approx(0.1) and lo == pytest.approx(0.1 - 1.96 * se, abs=1e-3)
    assert hi == pytest.approx(0.1 + 1.96 * se, abs=1e-3)


def test_ratio_of_nothing_is_undefined():
    assert ratio(Num(4.0), Num(2.0)).value == 2.0
    assert math.isnan(ratio(Num(4.0), Num(0.0)).value)


# -- every rule kind gives each of its verdicts ---------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "measures", "verdict"),
    [
        (AtLeast(0.9, 0.6), {"ours": Acc(95, 100)}, "reproduced"),
        (AtLeast(0.9, 0.6), {"ours": Acc(70, 100)}, "partly"),
        (AtLeast(0.9, 0.6), {"ours": Acc(30, 100)}, NOT_HERE),
        (AtLeast(1.8, 1.0), {"ours": Num(float("nan"))}, NOT_HERE),
        (AtMost(0.05, 0.2), {"ours": Acc(0, 100)}, "reproduced"),  # upper bound 0.037
        (AtMost(0.05, 0.2), {"ours": Acc(0, 20)}, "partly"),  # upper bound 0.16: too few
        (AtMost(0.05, 0.2), {"ours": Acc(50, 100)}, "contradicted"),
        (AtMost(0.05, 0.2), {"ours": Num(float("nan"))}, NOT_HERE),
        (WithinFactor(10, 40), {"ratio": Num(20.0)}, "reproduced"),
        (WithinFactor(10, 40), {"ratio": Num(72.0)}, "partly"),
        (WithinFactor(10, 40), {"ratio": Num(0.8)}, "contradicted"),
        (WithinFactor(1.1, 1.6), {"ratio": Num(1.3, 0.9, 1.7, "replicas")}, NOT_HERE),
        (WithinFactor(1.1, 1.6), {"ratio": Num(0.7, 0.6, 0.9, "replicas")}, "contradicted"),
        (WithinFactor(1.1, 1.6), {"ratio": Num(float("nan"))}, NOT_HERE),
        (NoBetterThan(0.5, 0.1), {"ours": Acc(104, 200)}, "reproduced"),
        (NoBetterThan(0.5, 0.1), {"ours": Acc(90, 100)}, "contradicted"),
        (NoBetterThan(0.5, 0.1), {"ours": Acc(6, 10)}, NOT_HERE),  # too few to tell
        (EffectOverControl(0.1), {"ours": Acc(90, 100), "control": Acc(50, 100)}, "reproduced"),
        (EffectOverControl(0.1), {"ours": Acc(950, 1000), "control": Acc(900, 1000)}, "partly"),
        (EffectOverControl(0.1), {"ours": Acc(55, 100), "control": Acc(50, 100)}, NOT_HERE),
        (EffectOverControl(0.1), {"ours": Acc(20, 100), "control": Acc(50, 100)}, "contradicted"),
    ],
)
def test_rule_verdicts(rule, measures, verdict):
    assert evaluate(rule, measures) == verdict


def test_effect_over_control_takes_the_worst_level():
    rule = EffectOverControl(0.1, (("L1", "u1"), ("L2", "u2")))
    m = {"L1": Acc(98, 100), "u1": Acc(77, 100), "L2": Acc(100, 100), "u2": Acc(93, 100)}
    # Level 2 gains 0.07 only: below the minimum effect at that level.
    assert evaluate(rule, m) == "partly"
    m["u2"] = Acc(60, 100)
    assert evaluate(rule, m) == "reproduced"


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ((40, 140, 170), "reproduced"),
        ((40, 46, 170), "partly"),  # GPT < rel inside the noise, GPT < rot beyond it
        ((40, 42, 44), NOT_HERE),
        ((170, 140, 160), "contradicted"),
    ],
)
def test_ordering(values, verdict):
    rule = Ordering((("GPT",), ("rel", "rot")))
    m = {k: Acc(v, 200) for k, v in zip(("GPT", "rel", "rot"), values, strict=True)}
    assert evaluate(rule, m) == verdict


def test_rules_reject_bad_parameters():
    with pytest.raises(ValueError, match="partly <= target"):
        AtLeast(0.5, 0.9)
    with pytest.raises(ValueError, match="target <= partly"):
        AtMost(0.5, 0.1)
    with pytest.raises(ValueError, match="1 <= lo <= hi"):
        WithinFactor(0.5, 2)
    with pytest.raises(ValueError, match="two non-empty tiers"):
        Ordering((("a",),))
    with pytest.raises(ValueError, match="margin"):
        NoBetterThan(0.5, -0.1)
    with pytest.raises(ValueError, match="min_effect"):
        EffectOverControl(0.0)
    with pytest.raises(ValueError, match="needs measurements"):
        evaluate(AtLeast(0.9, 0.5), {"other": Acc(1, 2)})


def test_passes_states_a_control_as_a_rule():
    from physlm.claims import passes

    rule = EffectOverControl(0.05)
    assert passes(rule, {"ours": Acc(90, 100), "control": Acc(50, 100)})
    assert not passes(rule, {"ours": Acc(52, 100), "control": Acc(50, 100)})


def test_a_failed_precondition_is_not_at_this_scale():
    rule = NoBetterThan(0.52, 0.15)
    m = {"ours": Acc(55, 100)}
    assert evaluate(rule, m, [Requires("the hinted task is learned", True)]) == "reproduced"
    assert evaluate(rule, m, [Requires("the hinted task is learned", False)]) == NOT_HERE
    with pytest.raises(ValueError, match="holds"):
        Requires("x", 1)  # type: ignore[arg-type]


def test_rule_texts_state_the_tolerance():
    assert AtLeast(0.9, 0.6).text() == ">= 0.9 reproduced, >= 0.6 partly"
    assert "[10, 40]" in WithinFactor(10, 40).text()
    assert "GPT < {rel, rot}" in Ordering((("GPT",), ("rel", "rot"))).text()
    assert "0.5 + 0.1" in NoBetterThan(0.5, 0.1).text()
    assert ">= 0.1" in EffectOverControl(0.1).text()


def test_percent_keeps_near_perfect_scores_apart_from_perfect():
    assert [percent(x) for x in (0.0, 1.0, 0.5, 0.994, 0.9999, 0.003, 0.0001)] == [
        "0%", "100%", "50%", "99.4%", ">99.9%", "0.3%", "<0.1%"
    ]
    assert Acc(1199, 1200).text().startswith("99.9% [99.5%, >99.9%]")
    assert points(0.05) == "5 points"


def test_printed_values_never_round_across_the_rule_that_judges_them():
    # 448/600 = 74.67%: "75%" beside ">= 75% partly" and a "not at this scale" would contradict
    assert percent(448 / 600) == "75%"
    assert percent(448 / 600, cuts=(0.9, 0.75)) == "74.7%"
    assert percent(0.7499, cuts=(0.75,)) == "74.99%"
    assert percent(0.75, cuts=(0.75,)) == "75%"  # exactly at the threshold: no digit needed
    assert percent(0.62, cuts=(0.75,)) == "62%"  # far from it: the usual whole percent
    assert coarse(0.0496, cuts=(0.05,)) == "0.0496" and coarse(0.0496) == "0.05"
    assert coarse(1.96, cuts=(2.0,)) == "1.96" and coarse(1.96, cuts=(1.0,)) == "2"
    claim = Claim("c", "90%", "Result 1", AtLeast(0.9, 0.75), {"ours": Acc(448, 600)})
    assert claim.verdict == NOT_HERE
    assert claim.our_value.startswith("74.7% [")
    for k in range(0, 601, 7):  # every printed value sits on its true side of both thresholds
        row = Claim("c", "9", "R", AtLeast(0.9, 0.75), {"ours": Acc(k, 600)})
        shown = float(row.our_value.split("%")[0].lstrip("<>")) / 100
        for cut in (0.9, 0.75):
            assert (shown >= cut) == (k / 600 >= cut) or not 0.001 < k / 600 < 0.999
    # the interval bound a no-better-than rule reads is kept apart from chance + margin
    near = Claim("c", "chance", "R", NoBetterThan(0.3, 0.1), {"ours": Acc(30, 100)})
    lo, hi = near.measures["ours"].interval
    assert abs(hi - 0.4) < 0.006 and f"{100 * hi:.0f}%" == "40%"
    assert f"{percent(hi, (0.4,))}]" in near.our_value and percent(hi, (0.4,)) != "40%"


def test_rules_on_accuracies_print_percent_and_points():
    assert AtLeast(0.9, 0.6).text(percent=True) == ">= 90% reproduced, >= 60% partly"
    assert "52% + 10 points" in NoBetterThan(0.52, 0.1).text(percent=True)
    assert ">= 5 points" in EffectOverControl(0.05).text(percent=True)
    # The claim picks the unit from what the rule judges: accuracies in percent, numbers as is.
    acc = Claim("c", "90%", "Result 1", AtLeast(0.9, 0.6), {"ours": Acc(95, 100)})
    assert acc.rule_text.startswith(">= 90% reproduced") and acc.our_value.startswith("95%")
    num = Claim("c", "2", "Result 1", AtLeast(1.8, 1.0), {"ours": Num(1.9)})
    assert num.rule_text.startswith(">= 1.8 reproduced") and num.our_value == "1.9"


@pytest.mark.parametrize(
    "rule",
    [
        AtLeast(0.9, 0.6),
        AtMost(0.05, 0.2),
        WithinFactor(10, 40),
        Ordering((("a",), ("b", "c"))),
        NoBetterThan(0.5, 0.1),
        EffectOverControl(0.1, (("a", "b"), ("c", "d"))),
    ],
)
def test_rules_round_trip_as_json(rule):
    assert rule_from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


def test_reachable_finds_other_verdicts():
    # A fixed, unfailable claim would reach only its own verdict; every real rule reaches more.
    assert reachable(AtLeast(0.9, 0.6), {"ours": Acc(95, 100)}) == {
        "reproduced",
        "partly",
        NOT_HERE,
    }
    assert "contradicted" in reachable(NoBetterThan(0.5, 0.1), {"ours": Acc(50, 100)})
    many = {k: Acc(50, 100) for k in "abcd"}
    assert len(reachable(EffectOverControl(0.1, (("a", "b"), ("c", "d"))), many)) >= 3


# -- the ledger -----------------------------------------------------------------------------------


def test_verdict_comes_from_the_rule_only():
    c = Claim("c", "1", "Result 1", AtLeast(0.9, 0.5), {"ours": Acc(95, 100)})
    assert c.verdict == "reproduced"
    with pytest.raises(TypeError):
        Claim("c", "1", "Result 1", AtLeast(0.9, 0.5), {"ours": Acc(95, 100)}, verdict="partly")
    with pytest.raises(ValueError, match="declared Rule"):
        Claim("c", "1", "Result 1", "at least", {"ours": Acc(95, 100)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Acc or a Num"):
        Claim("c", "1", "Result 1", AtLeast(0.9, 0.5), {"ours": 0.95})  # type: ignore[dict-item]


def test_claim_needs_text_and_source():
    with pytest.raises(ValueError, match="claim"):
        Claim("  ", "1", "Result 1", AtLeast(0.9, 0.5), {"ours": Num(1.0)})
    with pytest.raises(ValueError, match="paper_source"):
        Claim("c", "1", "", AtLeast(0.9, 0.5), {"ours": Num(1.0)})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.934, "1.9"),
        (2.0, "2"),
        (123456, "1.2e5"),
        (0.000123, "0.00012"),
        (-0.0456, "-0.046"),
        (0, "0"),
        ("about 2", "about 2"),
        (float("nan"), "nan"),
    ],
)
def test_coarse(value, text):
    assert coarse(value) == text


def test_coarse_is_stable_under_tiny_noise_and_rejects_other_types():
    assert coarse(1.93412) == coarse(1.93398)
    with pytest.raises(ValueError, match="value must be"):
        coarse([1.0])
    with pytest.raises(ValueError, match="value must be"):
        coarse(True)


def test_counts_leave_out_demonstrations():
    led = _ledger()
    assert led.counts() == {"reproduced": 1, "partly": 1, NOT_HERE: 1, "contradicted": 0}
    assert len(led.demos) == 1 and len(led.paper_claims) == 3
    assert set(led.counts()) == set(VERDICTS)


def test_tables_show_rule_interval_and_demos_apart():
    led = _ledger()
    md = led.to_markdown()
    assert "| Rule |" in md.splitlines()[0]
    assert "66% [56%, 75%], n=100" in md
    assert ">= 90% reproduced, >= 60% partly" in md
    assert "2 bits/param \\| at 1000 exposures" in md
    head, demos = md.split("Our demonstrations")
    assert "index remedy" in demos and "index remedy" not in head
    text = led.to_text()
    assert "rule: >= 90% reproduced" in text and "Our demonstrations" in text
    html = led.to_html()
    assert html.count("<table") == 2 and "physlm-badge" in html


def test_html_and_markdown_escape_tokens():
    led = Ledger("x", "smoke")
    led.score("generates from <bos> & more", "1", "Result 1", AtLeast(0.5, 0.1), Num(1.0))
    assert "generates from &lt;bos&gt; &amp; more" in led.to_html()
    assert "&lt;bos> &amp; more" in led.to_markdown()  # no raw tag for the HTML to swallow


def test_summary_is_generated_from_the_ledger():
    s = _ledger().summary()
    text = s.to_text()
    assert text.startswith("3 paper claims scored at scale `cpu`: 1 reproduced, 1 partly")
    assert "index remedy" not in text
    assert "2 bits/param" in text  # the clearest held result
    bundle = s._repr_mimebundle_()
    assert "physlm-badge" in bundle["text/html"] and "`" not in bundle["text/html"]


def test_json_round_trip_through_a_notebook_file(tmp_path):
    led = _ledger()
    data, metadata = DisplayFormatter().format(led)
    assert {"text/html", "text/markdown", "text/plain"} <= set(data)
    out = nbformat.v4.new_output("execute_result", data=data, metadata=metadata, execution_count=1)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("ledger", outputs=[out])])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    back = nbformat.read(path, as_version=4)
    (found,) = Ledger.from_outputs(back.cells[0].outputs)
    assert found.to_dict() == led.to_dict()
    assert found.claims == led.claims
    assert json.loads(json.dumps(metadata[LEDGER_KEY])) == led.to_dict()


def test_from_dict_rejects_unknown_format_fields_and_edited_verdicts():
    d = _ledger().to_dict()
    with pytest.raises(ValueError, match="format"):
        Ledger.from_dict({**d, "format": 99})
    edited = json.loads(json.dumps(d))
    edited["claims"][1]["verdict"] = "reproduced"  # its rule gives 'not at this scale'
    with pytest.raises(ValueError, match="is not what its rule gives"):
        Ledger.from_dict(edited)
    d["claims"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown claim fields"):
        Ledger.from_dict(d)


def test_undefined_numbers_survive_strict_json():
    led = Ledger("x", "smoke")
    led.score("junk ratio", "20", "R10", WithinFactor(10, 40), ratio(Num(1.0), Num(0.0)))
    text = json.dumps(led.to_dict(), allow_nan=False)  # what Jupyter's messages require
    (row,) = Ledger.from_dict(json.loads(text)).claims
    assert math.isnan(row.measures["ratio"].value) and row.verdict == NOT_HERE
