"""The claims ledger that closes every chapter, and the rules that give its verdicts.

A verdict is never typed into a chapter: each row names a declared :class:`Rule` (at-least,
at-most, within-factor, ordering, no-better-than, effect-over-control) and the measurements it
judges. Accuracies carry their sample size, so every verdict sees the sampling error: a 95%
Wilson interval for one accuracy, a two-proportion test for a difference between two. A
difference inside the noise is no effect. A row may also name preconditions (a positive
control that must work, a design that leaves the claim testable); when one fails the verdict is
``not at this scale``, whatever the measurement says.

The ledger is shown as a table (HTML, markdown and plain text) and, in the metadata of the same
display output, carried as JSON under :data:`LEDGER_KEY`, rule and measurements included, so
that the scorecard and the tests can read it back from an executed notebook, re-judge every row
and check that its rule could have given another verdict. Output metadata is ignored by the book
renderer and by nbval.

Numbers are printed coarsely (two significant digits) so that a re-execution on another CPU
prints the same table and ``nbval`` comparisons hold.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

LEDGER_KEY = "physlm_ledger"
"""Key of the machine-readable ledger in the display output's metadata."""

LEDGER_FORMAT = 2
"""Version of the JSON layout, bumped when fields change."""

VERDICTS = ("reproduced", "partly", "not at this scale", "contradicted")
"""Allowed verdicts, from best to worst agreement with the paper."""

NOT_HERE = "not at this scale"

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


def _crosses(shown: float, x: float, cuts: Sequence[float]) -> bool:
    """Whether rounding moved ``x`` to the other side of (or onto) a rule's threshold."""
    return any((shown >= c) != (x >= c) or (shown <= c) != (x <= c) for c in cuts)


def coarse(value: Any, digits: int = 2, cuts: Sequence[float] = ()) -> str:
    """Format a number with ``digits`` significant digits; strings pass through unchanged.

    Rounding keeps published numbers stable across machines; the ledger is a summary,
    full-precision numbers belong in the run metrics. Digits are added (up to five) where
    the rounded number would sit on the other side of one of ``cuts``, the thresholds of the
    rule that judges it, so that a printed value never contradicts its printed verdict.
    """
    if cuts and isinstance(value, int | float) and not isinstance(value, bool):
        while digits < 5 and math.isfinite(value) and value != 0:
            if not _crosses(float(f"{float(value):.{digits}g}"), float(value), cuts):
                break
            digits += 1
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


def percent(x: float, cuts: Sequence[float] = ()) -> str:
    """A share as the papers print it: whole percent, one decimal near 0% and 100% so that 99.6%
    does not read as a perfect score. Decimals are added (up to three) where rounding would put
    the share on the other side of one of ``cuts`` (shares, like ``x``): 74.7% against a 75%
    threshold prints as 74.7%, not 75%."""
    if not math.isfinite(x):
        return str(x)
    v = 100 * x
    if v in (0.0, 100.0) or 1 <= v <= 99:
        decimals = 0
    elif v < 0.05:
        return "<0.1%"
    elif v >= 99.95:
        return ">99.9%"
    else:
        decimals = 1
    hundreds = [100 * c for c in cuts]
    while decimals < 3 and _crosses(round(v, decimals), v, hundreds):
        decimals += 1
    return f"{v:.{decimals}f}%"


def points(x: float) -> str:
    """A difference of two shares, in percentage points."""
    return f"{coarse(100 * x)} points"


# -- measurements ------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (95% by default)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends, not a rounding hair off them
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True)
class Acc:
    """An accuracy: ``k`` successes out of ``n`` independent items, with its Wilson interval."""

    k: int
    n: int

    kind: ClassVar[str] = "acc"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or isinstance(self.n, bool):
            raise ValueError("k and n must be integers")
        if not (isinstance(self.n, int) and self.n > 0):
            raise ValueError(f"n must be a positive int (the items scored), got {self.n!r}")
        if not (isinstance(self.k, int) and 0 <= self.k <= self.n):
            raise ValueError(f"k must be an int in [0, n={self.n}], got {self.k!r}")

    @classmethod
    def of(cls, mean: float, n: int) -> Acc:
        """From a mean over ``n`` items (the count is recovered by rounding)."""
        if not 0 <= mean <= 1:
            raise ValueError(f"mean must be in [0, 1], got {mean}")
        return cls(int(round(mean * n)), int(n))

    @property
    def value(self) -> float:
        return self.k / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def text(self, cuts: Sequence[float] = ()) -> str:
        """In percent, the papers' unit: ``66% [56%, 75%], n=100`` (``cuts``: see `percent`)."""
        lo, hi = self.interval
        shown = (percent(v, cuts) for v in (self.value, lo, hi))
        return "{} [{}, {}], n={}".format(*shown, self.n)

    def with_value(self, value: float) -> Acc:
        return Acc.of(min(1.0, max(0.0, value)), self.n)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "n": self.n}


@dataclass(frozen=True)
class Num:
    """A measured number; ``lo``/``hi`` bound it where the chapter measured a spread
    (``spread`` says what: "min-max over 3 replicas", ...). Without them it has no error
    estimate and comparisons use the point alone."""

    value: float
    lo: float | None = None
    hi: float | None = None
    spread: str = ""

    kind: ClassVar[str] = "num"

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValueError(f"value must be a number, got {self.value!r}")
        if (self.lo is None) != (self.hi is None):
            raise ValueError("give both lo and hi, or neither")
        if self.lo is not None and not self.lo <= self.value <= self.hi:  # type: ignore[operator]
            raise ValueError(f"need lo <= value <= hi, got {self.lo}, {self.value}, {self.hi}")
        if self.lo is not None and not self.spread:
            raise ValueError("spread must say what the interval is (e.g. 'over 3 replicas')")

    @property
    def interval(self) -> tuple[float, float]:
        if self.lo is None:
            return (float(self.value), float(self.value))
        return (float(self.lo), float(self.hi))  # type: ignore[arg-type]

    def text(self, cuts: Sequence[float] = ()) -> str:
        """Two significant digits, more where a threshold in ``cuts`` needs them (`coarse`)."""
        if self.lo is None:
            return coarse(self.value, cuts=cuts)
        lo, value, hi = (coarse(v, cuts=cuts) for v in (self.lo, self.value, self.hi))
        return f"{value} [{lo}, {hi}] ({self.spread})"

    def with_value(self, value: float) -> Num:
        if self.lo is None or not math.isfinite(value):
            return Num(value)
        shift = value - self.value
        return Num(value, self.lo + shift, self.hi + shift, self.spread)  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": _json_float(self.value),
            "lo": None if self.lo is None else _json_float(self.lo),
            "hi": None if self.hi is None else _json_float(self.hi),
            "spread": self.spread,
        }


def _json_float(x: float) -> float | str:
    """JSON has no NaN or infinity: those are stored as their names."""
    x = float(x)
    return x if math.isfinite(x) else str(x)


Measure = Acc | Num


def measure_from_dict(d: Mapping[str, Any]) -> Measure:
    kind = d.get("kind")
    if kind == "acc":
        return Acc(int(d["k"]), int(d["n"]))
    if kind == "num":
        lo, hi = d.get("lo"), d.get("hi")
        return Num(
            float(d["value"]),
            None if lo is None else float(lo),
            None if hi is None else float(hi),
            d.get("spread", ""),
        )
    raise ValueError(f"measure kind must be 'acc' or 'num', got {kind!r}")


def ratio(a: Measure, b: Measure) -> Num:
    """a / b, NaN when either is not positive (a ratio over nothing says nothing)."""
    x, y = a.value, b.value
    return Num(x / y if x > 0 and y > 0 else float("nan"))


def compare(a: Measure, b: Measure) -> int:
    """+1 when ``a`` is above ``b`` beyond the noise, -1 below, 0 inside it.

    Two accuracies: a pooled two-proportion z-test at 95%. Otherwise the intervals must not
    overlap (a number without an interval counts as exact).
    """
    if not (math.isfinite(a.value) and math.isfinite(b.value)):
        return 0
    if isinstance(a, Acc) and isinstance(b, Acc):
        pooled = (a.k + b.k) / (a.n + b.n)
        se = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
        diff = a.value - b.value
        if se == 0:
            return 0 if diff == 0 else (1 if diff > 0 else -1)
        z = diff / se
        return 1 if z > Z95 else -1 if z < -Z95 else 0
    (alo, ahi), (blo, bhi) = a.interval, b.interval
    return 1 if alo > bhi else -1 if ahi < blo else 0


def difference(a: Measure, b: Measure) -> tuple[float, float, float]:
    """a - b with a 95% interval (normal approximation for two accuracies)."""
    d = a.value - b.value
    if isinstance(a, Acc) and isinstance(b, Acc):
        se = math.sqrt(a.value * (1 - a.value) / a.n + b.value * (1 - b.value) / b.n)
        return d, d - Z95 * se, d + Z95 * se
    (alo, ahi), (blo, bhi) = a.interval, b.interval
    return d, alo - bhi, ahi - blo


# -- preconditions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requires:
    """A precondition of a claim (a positive control, a testable design) and whether it held."""

    text: str
    holds: bool

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("Requires.text must say what is needed")
        if not isinstance(self.holds, bool):
            raise ValueError(f"Requires.holds must be a bool, got {type(self.holds).__name__}")


# -- rules -------------------------------------------------------------------------------------


def _f(x: float, pct: bool = False) -> str:
    """A threshold as printed in a rule: a share in percent where the rule judges accuracies."""
    return percent(x) if pct else coarse(x)


def _gap(x: float, pct: bool = False) -> str:
    """A margin or a minimum effect: percentage points where the rule judges accuracies."""
    return points(x) if pct else coarse(x)


@dataclass(frozen=True)
class Rule:
    """Base of the declared rules: a verdict from named measurements."""

    kind: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ("ours",)

    def names(self) -> tuple[str, ...]:
        """The measurement names this rule reads."""
        return self.roles

    def judge(self, m: Mapping[str, Measure]) -> str:
        raise NotImplementedError

    def text(self, percent: bool = False) -> str:
        """The rule in words; ``percent`` prints thresholds in the accuracies' unit (%)."""
        raise NotImplementedError

    def probes(self) -> list[float]:
        """Values near the rule's thresholds, for :func:`reachable`."""
        return []

    def cuts(self) -> tuple[float, ...]:
        """The thresholds a printed measurement is compared with: it must not round across."""
        return ()

    def params(self) -> dict[str, Any]:
        """The rule's parameters as plain JSON values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params()}


@dataclass(frozen=True)
class AtLeast(Rule):
    """At least about X: ``reproduced`` from ``target`` on, ``partly`` from ``partly`` on
    (point estimates; the interval is printed beside them)."""

    target: float
    partly: float

    kind: ClassVar[str] = "at-least"

    def __post_init__(self) -> None:
        if not self.partly <= self.target:
            raise ValueError(
                f"need partly <= target, got partly={self.partly}, target={self.target}"
            )

    def judge(self, m: Mapping[str, Measure]) -> str:
        x = m["ours"].value
        if not math.isfinite(x):
            return NOT_HERE
        return "reproduced" if x >= self.target else "partly" if x >= self.partly else NOT_HERE

    def text(self, percent: bool = False) -> str:
        return f">= {_f(self.target, percent)} reproduced, >= {_f(self.partly, percent)} partly"

    def probes(self) -> list[float]:
        return [self.target, self.partly, self.partly - 1e-3 * max(1, abs(self.partly))]

    def cuts(self) -> tuple[float, ...]:
        return (self.target, self.partly)


@dataclass(frozen=True)
class AtMost(Rule):
    """At most about X (a loss, a failure rate): ``reproduced`` up to ``target``,
    ``partly`` up to ``partly``, judged on the upper end of the interval for accuracies."""

    target: float
    partly: float

    kind: ClassVar[str] = "at-most"

    def __post_init__(self) -> None:
        if not self.target <= self.partly:
            raise ValueError(
                f"need target <= partly, got target={self.target}, partly={self.partly}"
            )

    def judge(self, m: Mapping[str, Measure]) -> str:
        x = m["ours"].value
        if not math.isfinite(x):
            return NOT_HERE
        hi = m["ours"].interval[1]
        if hi <= self.target:
            return "reproduced"
        return "partly" if x <= self.partly else "contradicted"

    def text(self, percent: bool = False) -> str:
        return (
            f"upper 95% bound <= {_f(self.target, percent)} reproduced, "
            f"<= {_f(self.partly, percent)} partly, above contradicted"
        )

    def probes(self) -> list[float]:
        return [0.0, self.target, self.partly, self.partly * 1.01 + 1e-3]

    def cuts(self) -> tuple[float, ...]:
        return (self.target, self.partly)


@dataclass(frozen=True)
class WithinFactor(Rule):
    """A is about k times B, k in [``lo``, ``hi``], on ``ratio`` = A/B (with its interval
    where it has one). A ratio whose interval holds 1 is no effect."""

    lo: float
    hi: float

    kind: ClassVar[str] = "within-factor"
    roles: ClassVar[tuple[str, ...]] = ("ratio",)

    def __post_init__(self) -> None:
        if not 1.0 <= self.lo <= self.hi:
            raise ValueError(f"need 1 <= lo <= hi, got lo={self.lo}, hi={self.hi}")

    def judge(self, m: Mapping[str, Measure]) -> str:
        r = m["ratio"]
        if not math.isfinite(r.value):
            return NOT_HERE
        rlo, rhi = r.interval
        if rhi < 1.0 or (rhi == rlo and r.value < 1.0):
            return "contradicted"
        if rlo <= 1.0 <= rhi:
            return NOT_HERE
        return "reproduced" if self.lo <= r.value <= self.hi else "partly"

    def text(self, percent: bool = False) -> str:
        return (
            f"ratio in [{_f(self.lo)}, {_f(self.hi)}] reproduced, > 1 partly, "
            "< 1 contradicted, 1 inside its interval: no effect"
        )

    def probes(self) -> list[float]:
        return [0.5, 1.0, self.lo, self.hi, 2 * self.hi]


@dataclass(frozen=True)
class Ordering(Rule):
    """Claims of the form a < b < c: ``chain`` lists tiers of names from lowest to highest;
    every member of a tier must be below every member of the next beyond the noise."""

    chain: tuple[tuple[str, ...], ...]

    kind: ClassVar[str] = "ordering"

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", tuple(tuple(t) for t in self.chain))
        if len(self.chain) < 2 or any(not t for t in self.chain):
            raise ValueError("chain needs at least two non-empty tiers of names")

    def names(self) -> tuple[str, ...]:
        return tuple(n for t in self.chain for n in t)

    def _pairs(self) -> list[tuple[str, str]]:
        return [(a, b) for lo, hi in itertools.pairwise(self.chain) for a in lo for b in hi]

    def judge(self, m: Mapping[str, Measure]) -> str:
        signs = [compare(m[b], m[a]) for a, b in self._pairs()]
        if any(s < 0 for s in signs):
            return "contradicted"
        if all(s > 0 for s in signs):
            return "reproduced"
        in_order = all(m[b].value > m[a].value for a, b in self._pairs())
        return "partly" if any(s > 0 for s in signs) and in_order else NOT_HERE

    def text(self, percent: bool = False) -> str:
        tiers = " < ".join(
            ", ".join(t) if len(t) == 1 else "{" + ", ".join(t) + "}" for t in self.chain
        )
        return (
            f"{tiers}: every step beyond the noise reproduced, some partly, "
            "none not at this scale, a step reversed beyond the noise contradicted"
        )

    def probes(self) -> list[float]:
        return [0.0, 0.3, 0.7, 1.0]


@dataclass(frozen=True)
class NoBetterThan(Rule):
    """Near chance, or about zero: ``reproduced`` when the interval's upper end stays within
    ``margin`` of ``chance``, ``contradicted`` when its lower end is above that, otherwise too few
    samples to tell (``not at this scale``)."""

    chance: float
    margin: float

    kind: ClassVar[str] = "no-better-than"

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    def judge(self, m: Mapping[str, Measure]) -> str:
        if not math.isfinite(m["ours"].value):
            return NOT_HERE
        lo, hi = m["ours"].interval
        bound = self.chance + self.margin
        if hi <= bound:
            return "reproduced"
        return "contradicted" if lo > bound else NOT_HERE

    def text(self, percent: bool = False) -> str:
        return (
            f"upper 95% bound <= {_f(self.chance, percent)} + {_gap(self.margin, percent)} "
            "reproduced, "
            "lower bound above it contradicted"
        )

    def probes(self) -> list[float]:
        return [0.0, self.chance, self.chance + self.margin, 1.0]

    def cuts(self) -> tuple[float, ...]:
        return (self.chance + self.margin,)


@dataclass(frozen=True)
class EffectOverControl(Rule):
    """X is above its control: for every (ours, control) pair in ``pairs`` the gain must be
    beyond the noise and at least ``min_effect``; the row takes the worst pair's verdict."""

    min_effect: float
    pairs: tuple[tuple[str, str], ...] = (("ours", "control"),)

    kind: ClassVar[str] = "effect-over-control"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", tuple(tuple(p) for p in self.pairs))
        if self.min_effect <= 0:
            raise ValueError(f"min_effect must be > 0, got {self.min_effect}")
        if not self.pairs or any(len(p) != 2 for p in self.pairs):
            raise ValueError("pairs must be a non-empty list of (ours, control) names")

    def names(self) -> tuple[str, ...]:
        return tuple(n for p in self.pairs for n in p)

    def _one(self, ours: Measure, control: Measure) -> str:
        if not (math.isfinite(ours.value) and math.isfinite(control.value)):
            return NOT_HERE
        sign = compare(ours, control)
        if sign < 0:
            return "contradicted"
        if sign == 0:
            return NOT_HERE
        return "reproduced" if ours.value - control.value >= self.min_effect else "partly"

    def judge(self, m: Mapping[str, Measure]) -> str:
        verdicts = [self._one(m[a], m[b]) for a, b in self.pairs]
        return max(verdicts, key=VERDICTS.index)

    def text(self, percent: bool = False) -> str:
        return (
            f"gain over control >= {_gap(self.min_effect, percent)} and beyond the noise "
            "reproduced, "
            "smaller partly, inside the noise not at this scale, below contradicted"
        )

    def probes(self) -> list[float]:
        return [0.0, 0.5, 1.0]


RULES: dict[str, type[Rule]] = {
    r.kind: r for r in (AtLeast, AtMost, WithinFactor, Ordering, NoBetterThan, EffectOverControl)
}


def rule_from_dict(d: Mapping[str, Any]) -> Rule:
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in RULES:
        raise ValueError(f"rule kind must be one of {sorted(RULES)}, got {kind!r}")
    cls = RULES[kind]
    for key in ("chain", "pairs"):
        if key in d:
            d[key] = tuple(tuple(x) for x in d[key])
    return cls(**d)


def evaluate(rule: Rule, measures: Mapping[str, Measure], requires: Sequence[Requires] = ()) -> str:
    """The verdict: ``not at this scale`` when a precondition failed, else the rule's."""
    missing = set(rule.names()) - set(measures)
    if missing:
        raise ValueError(
            f"rule {rule.kind} needs measurements {sorted(missing)}; got {sorted(measures)}"
        )
    if not all(r.holds for r in requires):
        return NOT_HERE
    return rule.judge(measures)


def passes(rule: Rule, measures: Mapping[str, Measure]) -> bool:
    """Whether a rule would call these measurements reproduced: a control or precondition
    stated as a rule of its own (e.g. "beats the untrained model at every level")."""
    return evaluate(rule, measures) == "reproduced"


def _alternatives(m: Measure, probes: Iterable[float]) -> list[Measure]:
    base = m.value if math.isfinite(m.value) else 1.0
    grid = {0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0}
    grid |= {base * f for f in (0.0, 0.1, 0.5, 0.9, 1.1, 2.0, 10.0, 100.0)}
    grid |= {base + d for d in (-1.0, -0.5, -0.1, 0.1, 0.5, 1.0)}
    grid |= {p + e for p in probes for e in (-1e-3, 0.0, 1e-3)}
    out: list[Measure] = [m]
    if isinstance(m, Acc):
        grid |= {k / m.n for k in range(0, m.n + 1, max(1, m.n // 20))}
        out += [m.with_value(v) for v in sorted(grid) if 0 <= v <= 1]
        return out
    out += [m.with_value(v) for v in sorted(grid)]
    if m.lo is not None:  # the same value without its spread, and with a wide one
        out += [
            Num(m.value),
            Num(
                m.value, m.value - 10 * abs(m.value) - 1, m.value + 10 * abs(m.value) + 1, m.spread
            ),
        ]
    return out


def reachable(
    rule: Rule, measures: Mapping[str, Measure], requires: Sequence[Requires] = ()
) -> set[str]:
    """Every verdict the rule gives when its measurements take other values (and its
    preconditions hold): a row whose rule reaches only its own verdict cannot fail."""
    names = list(dict.fromkeys(rule.names()))
    alts = [_alternatives(measures[n], rule.probes()) for n in names]
    seen = {evaluate(rule, measures, requires)}
    combos: Iterable[tuple[Measure, ...]]
    if len(names) <= 3:
        combos = itertools.product(*alts)
    else:  # one at a time, then every measurement moved together along the grid
        one = (
            [*(measures[n] for n in names[:i]), a, *(measures[n] for n in names[i + 1 :])]
            for i, col in enumerate(alts)
            for a in col
        )
        rows = (
            tuple(col[min(j, len(col) - 1)] for col in alts) for j in range(max(map(len, alts)))
        )
        spread = (
            tuple(col[(j * (i + 1)) % len(col)] for i, col in enumerate(alts)) for j in range(200)
        )
        combos = itertools.chain(one, rows, spread)
    for combo in combos:
        seen.add(rule.judge(dict(zip(names, combo, strict=True))))
    return seen


# -- the ledger --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One row of the ledger: a paper claim, what this edition measured, and the rule that
    turned the measurement into the verdict.

    ``measures`` and ``requires`` are kept so that the row can be re-judged from the stored
    notebook; ``demo`` rows are the book's own demonstrations, not the paper's claims, and are
    not tallied.
    """

    claim: str
    paper_value: str
    paper_source: str
    rule: Rule
    measures: Mapping[str, Measure]
    requires: tuple[Requires, ...] = ()
    note: str = ""
    demo: bool = False
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.claim, str) or not self.claim.strip():
            raise ValueError("claim must be a non-empty string")
        if not isinstance(self.paper_source, str) or not self.paper_source.strip():
            raise ValueError("paper_source must name where the paper states it (e.g. 'Result 1')")
        if not isinstance(self.note, str):
            raise ValueError(f"note must be a str, got {type(self.note).__name__}")
        if not isinstance(self.rule, Rule):
            raise ValueError(f"rule must be a declared Rule, got {type(self.rule).__name__}")
        for name, m in self.measures.items():
            if not isinstance(m, Acc | Num):
                raise ValueError(
                    f"measure {name!r} must be an Acc or a Num, got {type(m).__name__}"
                )
        object.__setattr__(self, "paper_value", coarse(self.paper_value, 3))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "measures", dict(self.measures))
        object.__setattr__(self, "verdict", evaluate(self.rule, self.measures, self.requires))

    @property
    def our_value(self) -> str:
        """The measurements as printed: ``0.66 [0.56, 0.75], n=100``, named when several."""
        judged = set(self.rule.names())
        cuts = self.rule.cuts()
        texts = {k: m.text(cuts if k in judged else ()) for k, m in self.measures.items()}
        if len(texts) == 1:
            return next(iter(texts.values()))
        return "; ".join(f"{k} {t}" for k, t in texts.items())

    @property
    def rule_text(self) -> str:
        """The rule in the unit of what it judges (percent when every measure is an accuracy)."""
        judged = [self.measures[n] for n in self.rule.names() if n in self.measures]
        text = self.rule.text(percent=bool(judged) and all(isinstance(m, Acc) for m in judged))
        for r in self.requires:
            text += f"; needs {r.text} ({'held' if r.holds else 'failed'})"
        return text

    def reachable(self) -> set[str]:
        return reachable(self.rule, self.measures, [Requires(r.text, True) for r in self.requires])

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "paper_value": self.paper_value,
            "paper_source": self.paper_source,
            "our_value": self.our_value,
            "rule_text": self.rule_text,
            "verdict": self.verdict,
            "note": self.note,
            "demo": self.demo,
            "rule": self.rule.to_dict(),
            "measures": {k: m.to_dict() for k, m in self.measures.items()},
            "requires": [{"text": r.text, "holds": r.holds} for r in self.requires],
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Claim:
        """Rebuild a stored row and re-judge it; a stored verdict that its rule does not give
        again is an error (the stored ledger was edited or the rule changed)."""
        known = {
            "claim",
            "paper_value",
            "paper_source",
            "our_value",
            "rule_text",
            "verdict",
            "note",
            "demo",
            "rule",
            "measures",
            "requires",
        }
        extra = set(row) - known
        if extra:
            raise ValueError(f"unknown claim fields {sorted(extra)}; allowed: {sorted(known)}")
        c = cls(
            claim=row["claim"],
            paper_value=row["paper_value"],
            paper_source=row["paper_source"],
            rule=rule_from_dict(row["rule"]),
            measures={k: measure_from_dict(v) for k, v in row["measures"].items()},
            requires=tuple(Requires(r["text"], bool(r["holds"])) for r in row.get("requires", [])),
            note=row.get("note", ""),
            demo=bool(row.get("demo", False)),
        )
        if "verdict" in row and row["verdict"] != c.verdict:
            raise ValueError(
                f"stored verdict {row['verdict']!r} of {c.claim!r} is not what its "
                f"rule gives ({c.verdict!r})"
            )
        return c


COLUMNS = ("Claim", "Paper", "Ours", "Rule", "Verdict")
"""Table columns; the paper's source sits under its value, our note under our value."""

BADGE_COLOURS = {
    "reproduced": "#1a7f37",
    "partly": "#9a6700",
    "not at this scale": "#57606a",
    "contradicted": "#cf222e",
}


def badge(verdict: str) -> str:
    """A verdict as an inline-styled HTML badge (renders in Jupyter and in the book alike)."""
    colour = BADGE_COLOURS[verdict]
    return (
        f'<span class="physlm-badge" style="background:{colour};color:#fff;'
        f'border-radius:0.6em;padding:0.05em 0.5em;font-size:0.85em;white-space:nowrap">'
        f"{html.escape(verdict)}</span>"
    )


def _md_cell(text: str) -> str:
    safe = text.replace("&", "&amp;").replace("<", "&lt;")  # tokens like <bos> stay visible
    return safe.replace("|", "\\|").replace("\n", " ")


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

    def score(
        self,
        claim: str,
        paper_value: str | float,
        paper_source: str,
        rule: Rule,
        measures: Mapping[str, Measure] | Measure,
        *,
        requires: Sequence[Requires] = (),
        note: str = "",
        demo: bool = False,
    ) -> Claim:
        """Judge a claim by ``rule`` on ``measures`` (one measure stands for ``{"ours": m}``,
        or the rule's single role) and append the row."""
        if isinstance(measures, Acc | Num):
            measures = {rule.names()[0]: measures}
        row = Claim(claim, paper_value, paper_source, rule, measures, tuple(requires), note, demo)
        self._claims.append(row)
        return row

    @property
    def claims(self) -> tuple[Claim, ...]:
        return tuple(self._claims)

    @property
    def paper_claims(self) -> tuple[Claim, ...]:
        return tuple(c for c in self._claims if not c.demo)

    @property
    def demos(self) -> tuple[Claim, ...]:
        return tuple(c for c in self._claims if c.demo)

    def __len__(self) -> int:
        return len(self._claims)

    def counts(self) -> dict[str, int]:
        """Number of paper-claim rows per verdict (demonstrations are not tallied)."""
        out = dict.fromkeys(VERDICTS, 0)
        for c in self.paper_claims:
            out[c.verdict] += 1
        return out

    # -- machine-readable form -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LEDGER_FORMAT,
            "chapter": self.chapter,
            "scale": self.scale,
            "claims": [c.to_dict() for c in self._claims],
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

    @staticmethod
    def _cells(c: Claim, esc: Callable[[str], str], verdict: str) -> list[str]:
        def under(text: str) -> str:
            return f"<br><small>{esc(text)}</small>" if text else ""

        return [
            esc(c.claim),
            esc(c.paper_value) + under(c.paper_source),
            esc(c.our_value) + under(c.note),
            esc(c.rule_text),
            verdict,
        ]

    def to_markdown(self, badges: bool = False) -> str:
        """Markdown tables; ``badges`` shows verdicts as coloured HTML badges (for the book)."""

        def table(rows: Sequence[Claim]) -> list[str]:
            lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            for c in rows:
                verdict = badge(c.verdict) if badges else f"**{c.verdict}**"
                lines.append("| " + " | ".join(self._cells(c, _md_cell, verdict)) + " |")
            return lines

        out = table(self.paper_claims)
        if self.demos:
            out += [
                "",
                "Our demonstrations (not the paper's claims; not tallied):",
                "",
                *table(self.demos),
            ]
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in COLUMNS)

        def body(rows: Sequence[Claim]) -> str:
            trs = []
            for c in rows:
                tds = "".join(
                    f"<td>{x}</td>" for x in self._cells(c, html.escape, badge(c.verdict))
                )
                trs.append(f'<tr class="verdict-{c.verdict.replace(" ", "-")}">{tds}</tr>')
            return "".join(trs)

        caption = html.escape(f"Claims ledger: {self.chapter} at scale '{self.scale}'")
        out = (
            '<table class="table physlm-ledger">'
            f"<caption>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body(self.paper_claims)}</tbody></table>"
        )
        if self.demos:
            out += (
                '<table class="table physlm-ledger physlm-demos">'
                "<caption>Our demonstrations (not the paper's claims; not tallied)</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{body(self.demos)}</tbody></table>"
            )
        return out

    def to_text(self) -> str:
        rows = [f"Claims ledger: {self.chapter} at scale '{self.scale}'"]
        for title, group in (
            ("", self.paper_claims),
            ("Our demonstrations (not tallied):", self.demos),
        ):
            if title and group:
                rows.append(title)
            for c in group:
                rows.append(
                    f"- {c.claim}: paper {c.paper_value} ({c.paper_source}), ours {c.our_value}"
                    f" | rule: {c.rule_text} -> {c.verdict}" + (f" ({c.note})" if c.note else "")
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

    # -- summaries for the page ------------------------------------------------------------

    def tally(self) -> str:
        counts = self.counts()
        total = sum(counts.values())
        parts = [f"{counts[v]} {v}" for v in VERDICTS if counts[v]]
        return f"{total} paper claims scored at scale `{self.scale}`: " + ", ".join(parts)

    def summary(self, clearest: int = 2) -> Summary:
        """ "At a glance" / "What held at this scale": counts, then the clearest results."""
        return Summary(self, clearest)

    def __repr__(self) -> str:
        return f"Ledger(chapter={self.chapter!r}, scale={self.scale!r}, rows={len(self)})"


class Summary:
    """A chapter's summary generated from its ledger, one implementation for the opening box
    and the closing paragraph: the tally, then each claim with its badge and our value."""

    def __init__(self, ledger: Ledger, clearest: int = 2) -> None:
        self.ledger = ledger
        self.clearest = clearest

    def held(self) -> list[Claim]:
        return [c for c in self.ledger.paper_claims if c.verdict == "reproduced"][: self.clearest]

    def missed(self) -> list[Claim]:
        order = ("contradicted", NOT_HERE)
        rows = [c for v in order for c in self.ledger.paper_claims if c.verdict == v]
        return rows[: self.clearest]

    def sentence(self) -> str:
        out = self.ledger.tally() + "."
        held = self.held()
        if held:
            out += " Clearest held: " + "; ".join(f"{c.claim} ({c.our_value})" for c in held) + "."
        missed = self.missed()
        if missed:
            out += (
                " Not shown here: "
                + "; ".join(f"{c.claim} ({c.our_value}, {c.verdict})" for c in missed)
                + "."
            )
        return out

    def to_text(self) -> str:
        lines = [self.sentence()]
        lines += [f"- [{c.verdict}] {c.claim}: {c.our_value}" for c in self.ledger.paper_claims]
        return "\n".join(lines)

    def to_html(self) -> str:
        items = "".join(
            f"<li>{badge(c.verdict)} {html.escape(c.claim)}: "
            f"<small>{html.escape(c.our_value)}</small></li>"
            for c in self.ledger.paper_claims
        )
        return (
            '<div class="admonition note physlm-summary">'
            f"<p>{html.escape(self.sentence()).replace('`', '')}</p>"
            f"<ul>{items}</ul></div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}


GLANCE_KEY = "at_a_glance"
"""Glue key of the chapter summary; the chapter's opening box pastes it with a glue directive."""


def close_chapter(ledger: Ledger) -> Summary:
    """The chapter's "What held at this scale" summary, also glued under :data:`GLANCE_KEY` so
    that the "At a glance" box at the top of the page shows the same generated content."""
    from myst_nb import glue

    summary = ledger.summary()
    glue(GLANCE_KEY, summary, display=False)
    return summary
