"""The claims ledger that closes every chapter.

A chapter ends by listing the paper's claims next to what our runs measured. The ledger is
shown to the reader as a table (HTML, markdown and plain text) and, in the metadata of the same
display output, carried as JSON under :data:`LEDGER_KEY` so that the scorecard builder can read
it back from the executed notebook without re-running anything. Output metadata, unlike an extra
mimetype, is ignored by the book renderer (which warns on unknown mimetypes) and by nbval.

Our values are stored as coarse strings (two significant digits by default) so that a
re-execution on another CPU prints the same table and ``nbval`` comparisons hold.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

LEDGER_KEY = "physlm_ledger"
"""Key of the machine-readable ledger in the display output's metadata."""

LEDGER_FORMAT = 1
"""Version of the JSON layout, bumped when fields change."""

VERDICTS = ("reproduced", "partly", "not at this scale", "contradicted")
"""Allowed verdicts, from best to worst agreement with the paper."""


def coarse(value: Any, digits: int = 2) -> str:
    """Format a number with ``digits`` significant digits; strings pass through unchanged.

    Rounding keeps published numbers stable across machines; the ledger is a summary,
    full-precision numbers belong in the run metrics.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"value must be a str, int or float, got {type(value).__name__}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa}e{int(exp)}"
    return text


def ratio_verdict(ours: float, paper: float, *, tol: float = 0.15, partly_tol: float = 0.5) -> str:
    """Verdict from the ratio ``ours / paper``.

    ``reproduced`` when the ratio is within ``1 +- tol``, ``partly`` within ``1 +- partly_tol``,
    otherwise ``not at this scale``. A ratio alone never says ``contradicted``: that needs the
    chapter's judgement that the scale was adequate and the effect went the other way.
    """
    if not 0 <= tol <= partly_tol:
        raise ValueError(f"need 0 <= tol <= partly_tol, got tol={tol}, partly_tol={partly_tol}")
    if paper == 0 or not math.isfinite(paper):
        raise ValueError(f"paper must be a finite non-zero number, got {paper}")
    if not math.isfinite(ours):
        return "not at this scale"
    deviation = abs(ours / paper - 1.0) - 1e-12  # a ratio exactly at the boundary counts inside
    if deviation <= tol:
        return "reproduced"
    if deviation <= partly_tol:
        return "partly"
    return "not at this scale"


NOT_HERE = "not at this scale"


def threshold_verdict(ours: float, target: float, partly: float, testable: bool = True) -> str:
    """For "at least about X" claims: ``reproduced`` from ``target`` on, ``partly`` from
    ``partly`` on, else ``not at this scale`` (also when the runs cannot test the claim)."""
    if not partly <= target:
        raise ValueError(f"need partly <= target, got partly={partly}, target={target}")
    if not testable or not math.isfinite(ours):
        return NOT_HERE
    return "reproduced" if ours >= target else "partly" if ours >= partly else NOT_HERE


def factor_verdict(ours: float, lo: float, hi: float, testable: bool = True) -> str:
    """For "A is about k times B" claims with k in ``[lo, hi]``.

    Inside the band: ``reproduced``; above 1 but outside it: ``partly`` (the direction holds);
    at or below 1 from runs that could test it: ``contradicted``. Untestable or undefined
    factors (a run that stored nothing) are ``not at this scale``.
    """
    if not 1.0 <= lo <= hi:
        raise ValueError(f"need 1 <= lo <= hi, got lo={lo}, hi={hi}")
    if not testable or not math.isfinite(ours):
        return NOT_HERE
    if lo <= ours <= hi:
        return "reproduced"
    return "partly" if ours > 1.05 else "contradicted"


@dataclass(frozen=True)
class Claim:
    """One row of the ledger: a paper claim and what this edition measured.

    ``paper_value`` and ``our_value`` may be numbers; they are stored as coarse strings.
    """

    claim: str
    paper_value: str
    paper_source: str
    our_value: str
    verdict: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            allowed = ", ".join(repr(v) for v in VERDICTS)
            raise ValueError(f"verdict must be one of {allowed}; got {self.verdict!r}")
        if not isinstance(self.claim, str) or not self.claim.strip():
            raise ValueError("claim must be a non-empty string")
        if not isinstance(self.paper_source, str) or not self.paper_source.strip():
            raise ValueError("paper_source must name where the paper states it (e.g. 'Result 1')")
        if not isinstance(self.note, str):
            raise ValueError(f"note must be a str, got {type(self.note).__name__}")
        object.__setattr__(self, "paper_value", coarse(self.paper_value, 3))
        object.__setattr__(self, "our_value", coarse(self.our_value))

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Claim:
        """Inverse of :func:`dataclasses.asdict`; unknown keys are an error."""
        fields = set(cls.__dataclass_fields__)
        extra = set(row) - fields
        if extra:
            raise ValueError(f"unknown claim fields {sorted(extra)}; allowed: {sorted(fields)}")
        return cls(**row)


COLUMNS = ("Claim", "Paper", "Source", "Ours", "Verdict", "Note")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class Ledger:
    """The claims of one chapter, built row by row and displayed as the chapter's last cell."""

    def __init__(self, chapter: str, scale: str, claims: Iterable[Claim] = ()) -> None:
        if not chapter:
            raise ValueError("chapter must be a non-empty name, e.g. 'part3_3_capacity'")
        if not scale:
            raise ValueError("scale must be a non-empty scale name")
        self.chapter = chapter
        self.scale = scale
        self._claims: list[Claim] = list(claims)

    def add(
        self,
        claim: str,
        paper_value: str | float,
        paper_source: str,
        our_value: str | float,
        verdict: str,
        note: str = "",
    ) -> Claim:
        """Append a row and return it."""
        row = Claim(claim, paper_value, paper_source, our_value, verdict, note)  # type: ignore[arg-type]
        self._claims.append(row)
        return row

    @property
    def claims(self) -> tuple[Claim, ...]:
        return tuple(self._claims)

    def __len__(self) -> int:
        return len(self._claims)

    def counts(self) -> dict[str, int]:
        """Number of rows per verdict, every verdict present."""
        out = dict.fromkeys(VERDICTS, 0)
        for c in self._claims:
            out[c.verdict] += 1
        return out

    # -- machine-readable form -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LEDGER_FORMAT,
            "chapter": self.chapter,
            "scale": self.scale,
            "claims": [asdict(c) for c in self._claims],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        if data.get("format") != LEDGER_FORMAT:
            raise ValueError(f"ledger format must be {LEDGER_FORMAT}, got {data.get('format')!r}")
        return cls(
            str(data["chapter"]),
            str(data["scale"]),
            [Claim.from_dict(r) for r in data["claims"]],
        )

    @classmethod
    def from_outputs(cls, outputs: Iterable[Mapping[str, Any]]) -> list[Ledger]:
        """Every ledger found in a list of notebook cell outputs (nbformat dicts)."""
        found = []
        for out in outputs:
            meta = out.get("metadata") or {}
            if LEDGER_KEY in meta:
                found.append(cls.from_dict(meta[LEDGER_KEY]))
        return found

    # -- human-readable forms --------------------------------------------------------------

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for c in self._claims:
            cells = (
                c.claim,
                c.paper_value,
                c.paper_source,
                c.our_value,
                f"**{c.verdict}**",
                c.note,
            )
            lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in COLUMNS)
        body = []
        for c in self._claims:
            cells = (c.claim, c.paper_value, c.paper_source, c.our_value, c.verdict, c.note)
            tds = "".join(f"<td>{html.escape(x)}</td>" for x in cells)
            body.append(f'<tr class="verdict-{c.verdict.replace(" ", "-")}">{tds}</tr>')
        caption = html.escape(f"Claims ledger: {self.chapter} at scale '{self.scale}'")
        return (
            '<table class="table physlm-ledger">'
            f"<caption>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )

    def to_text(self) -> str:
        rows = [f"Claims ledger: {self.chapter} at scale '{self.scale}'"]
        for c in self._claims:
            rows.append(
                f"- {c.claim}: paper {c.paper_value} ({c.paper_source}), ours {c.our_value}"
                f" -> {c.verdict}" + (f" ({c.note})" if c.note else "")
            )
        return "\n".join(rows)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """IPython display hook: (data, metadata), tables for readers, JSON for the scorecard."""
        data = {
            "text/plain": self.to_text(),
            "text/markdown": self.to_markdown(),
            "text/html": self.to_html(),
        }
        return data, {LEDGER_KEY: self.to_dict()}

    def display(self) -> None:
        """Show the ledger in a notebook (same as making it the cell's last expression)."""
        from IPython.display import display

        display(self)

    def __repr__(self) -> str:
        return f"Ledger(chapter={self.chapter!r}, scale={self.scale!r}, rows={len(self)})"
