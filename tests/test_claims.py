"""The claims ledger: validation, coarse formatting, and the JSON round trip through a notebook."""

import json

import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter

from physlm.claims import LEDGER_KEY, VERDICTS, Claim, Ledger, coarse, ratio_verdict


def _ledger() -> Ledger:
    led = Ledger("part3_3_capacity", "cpu")
    led.add("2 bits/param at 1000 exposures", 2.0, "Result 1", 1.934, "reproduced", "N=10K")
    led.add("int4 | halves capacity", "0.7", "Result 8", 0.31, "partly")
    led.add("gated MLP 1.3x worse at 100 exposures", 1.3, "Result 5", 0.97, "not at this scale")
    return led


def test_verdict_must_be_known():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("c", "1", "Result 1", "1", "confirmed")
    for v in VERDICTS:
        assert Claim("c", "1", "Result 1", "1", v).verdict == v


def test_claim_needs_text_and_source():
    with pytest.raises(ValueError, match="claim"):
        Claim("  ", "1", "Result 1", "1", "reproduced")
    with pytest.raises(ValueError, match="paper_source"):
        Claim("c", "1", "", "1", "reproduced")


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


def test_coarse_is_stable_under_tiny_noise():
    # Two machines that differ in the 6th digit must print the same ledger.
    assert coarse(1.93412) == coarse(1.93398)


def test_coarse_rejects_other_types():
    with pytest.raises(ValueError, match="value must be"):
        coarse([1.0])
    with pytest.raises(ValueError, match="value must be"):
        coarse(True)


def test_numbers_are_stored_coarsely():
    c = Claim("c", 2.0, "Result 1", 1.934, "reproduced")
    assert (c.paper_value, c.our_value) == ("2", "1.9")


def test_ratio_verdict():
    assert ratio_verdict(1.9, 2.0) == "reproduced"  # 5% off
    assert ratio_verdict(1.6, 2.0, tol=0.15) == "partly"  # 20% off
    assert ratio_verdict(2.9, 2.0, tol=0.15, partly_tol=0.5) == "partly"  # 45% off
    assert ratio_verdict(0.5, 2.0) == "not at this scale"  # 75% off
    assert ratio_verdict(float("nan"), 2.0) == "not at this scale"
    assert ratio_verdict(1.7, 2.0, tol=0.15) == "reproduced"  # exactly at the boundary
    with pytest.raises(ValueError, match="paper"):
        ratio_verdict(1.0, 0.0)
    with pytest.raises(ValueError, match="tol"):
        ratio_verdict(1.0, 1.0, tol=0.6, partly_tol=0.5)


def test_counts_cover_every_verdict():
    assert _ledger().counts() == {
        "reproduced": 1,
        "partly": 1,
        "not at this scale": 1,
        "contradicted": 0,
    }


def test_markdown_table_shape_and_escaping():
    md = _ledger().to_markdown().splitlines()
    assert len(md) == 2 + 3
    for row in md:
        # Six columns: seven unescaped pipes per row, the escaped one inside a cell excluded.
        assert row.replace("\\|", "").count("|") == 7
    assert "int4 \\| halves capacity" in md[3]


def test_html_escapes_text():
    led = Ledger("x", "smoke")
    led.add("a <b> & c", "1", "Result 1", "1", "reproduced")
    assert "a &lt;b&gt; &amp; c" in led.to_html()


def test_json_round_trip_through_a_notebook_file(tmp_path):
    led = _ledger()
    # What IPython produces when the ledger is a cell's last expression.
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
    # The stored form is plain JSON.
    assert json.loads(json.dumps(metadata[LEDGER_KEY])) == led.to_dict()


def test_from_dict_rejects_unknown_format_and_fields():
    d = _ledger().to_dict()
    with pytest.raises(ValueError, match="format"):
        Ledger.from_dict({**d, "format": 99})
    d["claims"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown claim fields"):
        Ledger.from_dict(d)


def test_threshold_verdict():
    from physlm.claims import threshold_verdict

    assert threshold_verdict(2.0, 1.8, 1.0) == "reproduced"
    assert threshold_verdict(1.2, 1.8, 1.0) == "partly"
    assert threshold_verdict(0.3, 1.8, 1.0) == "not at this scale"
    assert threshold_verdict(2.0, 1.8, 1.0, testable=False) == "not at this scale"
    assert threshold_verdict(float("nan"), 1.8, 1.0) == "not at this scale"
    with pytest.raises(ValueError, match="partly <= target"):
        threshold_verdict(1.0, 1.0, 2.0)


def test_factor_verdict():
    from physlm.claims import factor_verdict

    assert factor_verdict(1.3, 1.1, 1.6) == "reproduced"
    assert factor_verdict(3.0, 1.1, 1.6) == "partly"
    assert factor_verdict(0.8, 1.1, 1.6) == "contradicted"
    assert factor_verdict(0.8, 1.1, 1.6, testable=False) == "not at this scale"
    assert factor_verdict(float("nan"), 1.1, 1.6) == "not at this scale"
    with pytest.raises(ValueError, match="1 <= lo <= hi"):
        factor_verdict(1.0, 0.5, 2.0)
