"""The published ledgers: every row re-judged from its stored measurements by its declared rule,
every rule able to give another verdict, and every chapter's verdicts made by rules only."""

import re
from pathlib import Path

import nbformat
import pytest

from physlm import book

REPO = Path(__file__).resolve().parents[1]
PARTS = sorted((REPO / "book" / "parts").glob("*.ipynb"))
SOURCES = sorted((REPO / "notebooks").glob("part*.py"))


@pytest.mark.parametrize("path", PARTS, ids=lambda p: p.stem)
def test_every_published_row_can_fail(path):
    nb = nbformat.read(path, as_version=4)
    ledgers = book.ledgers_in(nb)  # loading re-judges every row and rejects edited verdicts
    assert ledgers, f"{path.name} has no claims ledger"
    for led in ledgers:
        assert led.paper_claims, f"{path.name}: a ledger with no paper claim"
        for c in led.claims:
            others = c.reachable() - {c.verdict}
            assert others, f"{path.stem}: the rule of {c.claim!r} can only say {c.verdict!r}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_chapter_verdicts_come_from_rules(path):
    """No chapter types a verdict: the words appear only as prose, never as string values."""
    code = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    )
    typed = re.findall(r"""["'](reproduced|partly|contradicted|not at this scale)["']""", code)
    assert not typed, f"{path.name} types verdicts {typed}; use a rule from physlm.claims"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_chapter_opens_and_closes_with_the_generated_summary(path):
    text = path.read_text(encoding="utf-8")
    assert "## At a glance" in text and "```{glue} at_a_glance" in text
    assert "## What held at this scale" in text and "close_chapter(ledger)" in text
    assert text.index("## At a glance") < text.index("## What held at this scale")
