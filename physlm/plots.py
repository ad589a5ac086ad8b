"""One house style for every figure in the book, and the plot helpers chapters share.

Figures are shown inline in the notebook (that is what the book renders) and also written as
PNG files under :func:`figures_dir`, so that they can be reused outside the book.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

FIGURES_ENV = "PHYSLM_FIGURES"
REFERENCE_BITS_PER_PARAM = (2.0, 1.0, 0.5)
"""Capacity ratios drawn as guides: 2 bits/param at 1000 exposures and 1 bit/param at 100
exposures (Part 3.3, Results 1-4); 0.5 marks the int4 / junk-data regimes."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def use_style() -> None:
    """Apply the house style: seaborn whitegrid, colour-blind palette, readable sizes."""
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        palette="colorblind",
        rc={
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.titlesize": "medium",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        },
    )
    if _in_notebook():  # inline figures at twice the pixels, sharp on high-density screens
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")


def figures_dir() -> Path:
    """Where PNG copies go: ``$PHYSLM_FIGURES`` if set, else ``figures/`` at the repository root."""
    env = os.environ.get(FIGURES_ENV)
    if env:
        return Path(env)
    from physlm.book import repo_root

    return repo_root() / "figures"


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book extras
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def savefig(fig: Figure, name: str, *, show: bool = True) -> Path:
    """Write ``fig`` to ``figures_dir()/name.png``, show it inline once, and close it.

    Closing after an explicit display keeps the inline backend from showing it a second time.
    """
    if not _NAME.match(name):
        raise ValueError(
            f"name must be a plain file name (letters, digits, '_', '-', '.'), got {name!r}"
        )
    stem = name[:-4] if name.lower().endswith(".png") else name
    out_dir = figures_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.png"
    fig.savefig(path, bbox_inches="tight", metadata={"Software": None})
    if show and _in_notebook():
        from IPython.display import display

        display(fig)
    plt.close(fig)
    return path


def _column(rows: Any, key: str) -> list[Any]:
    """A column from a DataFrame or a list of dict records."""
    if hasattr(rows, "columns"):
        if key not in rows.columns:
            raise ValueError(f"missing column {key!r}; have {list(rows.columns)}")
        return list(rows[key])
    out = []
    for r in rows:
        if key not in r:
            raise ValueError(f"missing key {key!r} in record {dict(r)}")
        out.append(r[key])
    return out


_MARKERS = ("o", "s", "D", "^", "v", "P")
_LABEL_BOX = {"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none"}
"""Behind a number written on a plot, so that no guide line runs through it."""


def _short_number(v: float, _pos: object = None) -> str:
    """Tick labels such as 500, 2k, 1.5M: a count read at a glance."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _percent(v: float, _pos: object = None) -> str:
    """A fraction as a percent tick label with no more decimals than it needs: 5%, 12.5%."""
    return f"{round(100 * v, 2) + 0.0:.2f}".rstrip("0").rstrip(".") + "%"  # + 0.0: no "-0%"


def _log_ticks(axis: Any) -> None:
    """Major ticks at 1, 2 and 5 times each power of ten, labelled as short numbers."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(_short_number))
    axis.set_minor_locator(LogLocator(base=10, subs="auto"))
    axis.set_minor_formatter(NullFormatter())


def _own_axes(ax: Axes | None) -> tuple[Axes, bool]:
    """``ax``, or new axes on a constrained-layout figure (room for a legend below)."""
    if ax is not None:
        return ax, False
    _, new = plt.subplots(layout="constrained")
    return new, True


def _place_legend(
    ax: Axes,
    handles: list[Any],
    labels: list[str],
    where: str | None,
    *,
    title: str | None = None,
    ncol: int | None = None,
    fontsize: str | None = None,
) -> None:
    """``where``: "below" the figure (constrained layout), a place inside the axes, or None."""
    if where is None or not handles:
        return
    style = {"title": title, "fontsize": fontsize, "title_fontsize": fontsize}
    if where == "below":
        auto = min(len(handles), 2 if len(handles) > 3 or title else 3)
        ax.figure.legend(handles, labels, loc="outside lower center", ncol=ncol or auto, **style)
    else:
        ax.legend(handles, labels, loc=where, ncol=ncol or 1, **style)


def bits_vs_params(
    rows: Any,
    *,
    params: str = "params",
    bits: str = "bits",
    series: str | None = "series",
    max_bits: str | None = None,
    ref_bits_per_param: Sequence[float] = REFERENCE_BITS_PER_PARAM,
    logy: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    legend_title: str | None = None,
) -> Axes:
    """Knowledge bits against parameter count, as in Part 3.3, Figure 1 (log-log by default).

    ``rows`` is a DataFrame or an iterable of records holding ``params`` (the parameter count
    used in the capacity ratio) and ``bits`` (stored bits); each ``series`` gets its own colour
    and marker. With ``max_bits``, each point's data ceiling (the bits its data holds) is drawn
    as a larger hollow marker of the same style, joined to it by a dotted line (a model that
    stores all its data shows its filled marker inside the hollow one). Dashed guides show
    ``bits = r * params`` for each ``r`` in ``ref_bits_per_param`` across the whole x range.
    On a log y axis, a point that stores no bits (``bits <= 0``) is drawn at the bottom edge
    as a downward triangle.
    """
    if not hasattr(rows, "columns"):
        rows = list(rows)
    xs = np.array([float(v) for v in _column(rows, params)])
    ys = np.array([float(v) for v in _column(rows, bits)])
    tops = np.array([float(v) for v in _column(rows, max_bits)]) if max_bits else None
    if not len(xs):
        raise ValueError("rows must hold at least one point")
    if (xs <= 0).any():
        raise ValueError(f"{params} must be positive for a log axis")
    if tops is not None and (tops <= 0).any():
        raise ValueError(f"{max_bits} must be positive")
    refs = sorted((float(r) for r in ref_bits_per_param), reverse=True)
    if any(r <= 0 for r in refs):
        raise ValueError(f"ref_bits_per_param must be positive, got {list(ref_bits_per_param)}")
    labels = [str(v) for v in _column(rows, series)] if series else ["runs"] * len(xs)

    lo, hi = xs.min() / 1.5, xs.max() * 1.5
    shown = [ys[ys > 0]] + ([tops] if tops is not None else [])
    shown += [np.array([r * lo, r * hi]) for r in refs]
    shown = np.concatenate(shown)
    if logy:
        positive = shown[shown > 0]
        if not len(positive):
            raise ValueError(f"no positive {bits} to draw on a log axis")
        ylo, yhi = positive.min() / 1.6, positive.max() * 1.6
    else:
        span = max(shown.max(), 0.0) - min(shown.min(), 0.0) or 1.0
        ylo, yhi = min(shown.min(), 0.0) - 0.05 * span, shown.max() + 0.08 * span

    ax, own = _own_axes(ax)
    order = list(dict.fromkeys(labels))
    palette = sns.color_palette("colorblind", n_colors=max(len(order), 1))
    for i, label in enumerate(order):
        colour, marker = palette[i], _MARKERS[i % len(_MARKERS)]
        sel = np.array([lab == label for lab in labels])
        px, py = xs[sel], ys[sel]
        ok = py > 0 if logy else np.ones_like(py, dtype=bool)
        ax.scatter(
            px[ok],
            py[ok],
            color=colour,
            marker=marker,
            s=60,
            edgecolor="white",
            linewidth=0.8,
            label=label,
            zorder=5,
        )
        if (~ok).any():
            ax.scatter(
                px[~ok],
                np.full((~ok).sum(), ylo),
                color=colour,
                marker="v",
                s=60,
                clip_on=False,
                zorder=5,
            )
        if tops is not None:
            pt = tops[sel]
            ax.vlines(
                px,
                np.where(ok, py, ylo),
                pt,
                colors=[colour],
                linestyles=":",
                linewidth=1.2,
                zorder=3,
            )
            ax.scatter(
                px,
                pt,
                facecolor="white",
                edgecolor=colour,
                marker=marker,
                s=130,
                linewidth=1.6,
                zorder=4,
            )

    grid = np.geomspace(lo, hi, 64)
    for i, r in enumerate(refs):
        ax.plot(grid, r * grid, linestyle=(0, (5, 2 + 2 * i)), color="0.4", linewidth=1.1, zorder=2)
        ax.annotate(
            f"{r:g} bit{'' if r == 1 else 's'}/param",
            xy=(hi, r * hi),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize="small",
            color="0.3",
            annotation_clip=True,
        )
    ax.set_xscale("log")
    _log_ticks(ax.xaxis)
    if logy:
        ax.set_yscale("log")
        _log_ticks(ax.yaxis)
    ax.set_xlim(lo, hi)
    ax.set_ylim(ylo, yhi)
    ax.set_xlabel("parameters P (excluding unused embedding rows)")
    ax.set_ylabel("bits of knowledge")
    if title:
        ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    if tops is not None:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="white",
                markeredgecolor="0.3",
                markersize=11,
            )
        )
        names.append("bits its data holds (max bits)")
    if (ys <= 0).any() and logy:
        handles.append(Line2D([], [], marker="v", linestyle="", color="0.3", markersize=8))
        names.append("stores no bits (drawn at the edge)")
    if series or tops is not None:
        # below a figure of our own, where it covers no data; else the best place inside
        _place_legend(ax, handles, names, "below" if own else "best", title=legend_title)
    return ax


# -- grouped bars: accuracies with Wilson intervals, and plain values -----------------------------

_GUIDE_STYLES = ("--", "-.", ":")


def _check_length(name: str, entries: Sequence[Any] | None, groups: Sequence[str]) -> None:
    if entries is not None and len(entries) != len(groups):
        raise ValueError(f"{name} has {len(entries)} entries for {len(groups)} groups")


def _bar_axes(
    ax: Axes | None, legend: str | None, horizontal: bool, groups: int, per_group: int
) -> Axes:
    """The caller's axes, or new ones sized for the bars; checks that ``legend`` can go there."""
    if legend is not None and legend != "below" and legend not in Legend.codes:
        raise ValueError(
            f"legend must be 'below', None or a place inside the axes {list(Legend.codes)}, "
            f"got {legend!r}"
        )
    if ax is None:
        size = (7.0, 1.2 + groups * (0.22 + 0.2 * per_group)) if horizontal else None
        _, ax = plt.subplots(figsize=size, layout="constrained")
    elif legend == "below" and not isinstance(
        ax.figure.get_layout_engine(), ConstrainedLayoutEngine
    ):
        raise ValueError(
            "legend='below' needs a figure made with layout='constrained'; pass legend=None or "
            "a place inside the axes such as 'best'"
        )
    return ax


def _grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    value_lim: tuple[float, float],
    axis_label: str,
    *,
    intervals: dict[str, Sequence[tuple[float, float] | None]] | None = None,
    horizontal: bool = False,
    bar_colours: Sequence[Any] | None = None,
    hatched: Sequence[str] = (),
    hatched_groups: Sequence[int] = (),
    breaks: Sequence[int] = (),
    break_gap: float = 0.0,
    marks: Sequence[float | None] | None = None,
    mark_series: str | None = None,
    mark_label: str = "paper",
    lines: dict[str, float] | None = None,
) -> np.ndarray:
    """Draw one bar per (series, group), side by side within a group, on ``ax``, whose value
    axis spans ``value_lim``.

    Along the group axis, group g sits at g plus ``break_gap`` for each break at or before it;
    a thin rule separates the groups on either side of a break. A series whose name starts with
    "_" stays out of the legend. ``intervals`` (absolute ends per bar) become black error bars
    and a dot at each bar's end, so that a bar of height 0 still shows (whole, where it fits in
    ``value_lim``; what runs past the axis is cut at its edge). ``marks`` are black
    ticks across the bar of ``mark_series``, or across the whole group when it is None; the
    ``lines`` are grey guides across the plot. Returns the bar centres, (series, groups), NaN
    where a value is None.
    """
    per = len(series)
    gaps = np.array([sum(b <= g for b in breaks) for g in range(len(groups))], dtype=float)
    centre = np.arange(len(groups), dtype=float) + break_gap * gaps
    slot = 0.8 / per
    palette = sns.color_palette("colorblind", n_colors=max(per, 1))
    spots = np.full((per, len(groups)), np.nan)
    bar = ax.barh if horizontal else ax.bar
    along = "height" if horizontal else "width"
    for s, (name, values) in enumerate(series.items()):
        idx = [g for g, v in enumerate(values) if v is not None]
        if not idx:
            continue
        pos = centre[idx] + (s - (per - 1) / 2) * slot
        spots[s, idx] = pos
        vals = np.array([float(values[g]) for g in idx])
        faces = [palette[s] if bar_colours is None else bar_colours[g] for g in idx]
        bars = bar(
            pos, vals, color=faces, edgecolor="none", label=name, zorder=3, **{along: slot * 0.95}
        )
        for g, patch in zip(idx, bars, strict=True):
            if name in hatched or g in hatched_groups:
                patch.set_hatch("//")
                patch.set_edgecolor("white")  # the hatch's colour
        if intervals is not None:
            lo, hi = np.array([intervals[name][g] for g in idx], dtype=float).T
            err = np.array([np.maximum(vals - lo, 0.0), np.maximum(hi - vals, 0.0)])
            xy = (vals, pos) if horizontal else (pos, vals)
            drawn = ax.errorbar(
                *xy,
                **{"xerr" if horizontal else "yerr": err},
                fmt="none",
                ecolor="black",
                elinewidth=1.2,
                capsize=3,
                zorder=4,
            )
            dots = ax.scatter(*xy, color=faces, s=18, edgecolors="black", linewidths=0.8, zorder=4)
            inside = [(lo, hi, drawn.get_children()), (vals, vals, [dots])]
            for low, high, artists in inside:  # a dot at 0% or 100% shows whole
                if value_lim[0] <= low.min() and high.max() <= value_lim[1]:
                    for artist in artists:
                        artist.set_clip_on(False)
    on = centre if mark_series is None else spots[list(series).index(mark_series)]
    half = 0.45 if mark_series is None else 0.6 * slot
    ticks = [(on[g], float(m)) for g, m in enumerate(marks or []) if m is not None]
    ticks = [(at, m) for at, m in ticks if not np.isnan(at)]  # no bar, no mark
    if ticks:
        at, m = np.array(ticks).T
        rule = ax.vlines if horizontal else ax.hlines
        rule(m, at - half, at + half, colors="black", linewidth=3, zorder=5, label=mark_label)
    guide = ax.axvline if horizontal else ax.axhline
    for i, (name, v) in enumerate((lines or {}).items()):
        guide(v, color="0.3", linestyle=_GUIDE_STYLES[i % 3], linewidth=1.3, label=name, zorder=2)
    between = ax.axhline if horizontal else ax.axvline
    for b in breaks:
        between((centre[b - 1] + centre[b]) / 2, color="0.6", linewidth=1, zorder=1, label="_break")
    span = (centre[0] - 0.6, centre[-1] + 0.6)
    if horizontal:
        ax.set_yticks(centre, list(groups))
        ax.set_ylim(span[1], span[0])  # the first group on top
        ax.grid(axis="y", visible=False)
        ax.set_xlim(*value_lim)
        ax.set_xlabel(axis_label)
    else:
        ax.set_xticks(centre, list(groups))
        ax.set_xlim(*span)
        ax.grid(axis="x", visible=False)
        ax.set_ylim(*value_lim)
        ax.set_ylabel(axis_label)
    return spots


def _bar_legend(
    ax: Axes,
    series: dict[str, Any],
    mark_label: str,
    lines: dict[str, float] | None,
    legend: str | None,
    ncol: int | None,
    title: str | None = None,
) -> None:
    """Bars first, then marks, then guides, each name once."""
    found = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    names = [n for n in dict.fromkeys([*series, mark_label, *(lines or {})]) if n in found]
    _place_legend(
        ax, [found[n] for n in names], names, legend, title=title, ncol=ncol, fontsize="small"
    )


def _check_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[Any]],
    marks: Sequence[Any] | None,
    mark_series: str | None,
    hatched: Sequence[str],
    breaks: Sequence[int],
) -> None:
    if not len(groups) or not series:
        raise ValueError("groups and series must not be empty")
    for name, entries in series.items():
        if len(entries) != len(groups):
            raise ValueError(f"series {name!r} has {len(entries)} entries for {len(groups)} groups")
    _check_length("marks", marks, groups)
    if mark_series is not None and mark_series not in series:
        raise ValueError(f"mark_series {mark_series!r} is not a series: {list(series)}")
    unknown = [h for h in hatched if h not in series]
    if unknown:
        raise ValueError(f"hatched names {unknown} that are not series: {list(series)}")
    if any(not 0 < b < len(groups) for b in breaks):
        raise ValueError(f"breaks must be group indices in 1..{len(groups) - 1}, got {breaks}")


def accuracy_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[tuple[int, int] | None]],
    *,
    horizontal: bool = False,
    marks: Sequence[float | None] | None = None,
    mark_series: str | None = None,
    mark_label: str = "paper",
    lines: dict[str, float] | None = None,
    hatched: Sequence[str] = (),
    breaks: Sequence[int] = (),
    bar_colours: Sequence[Any] | None = None,
    axis_label: str = "accuracy",
    axis_max: float = 1.0,
    legend: str | None = "below",
    ncol: int | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Grouped bars of accuracies on a percent axis, each with its 95% Wilson interval.

    ``series`` maps a legend name to one ``(k, n)`` per group (k right of n independent items;
    None leaves a gap); the interval is :func:`physlm.claims.wilson`, the one the ledger prints.
    ``horizontal`` draws one row per group, the first on top. ``marks`` (a value or None per
    group) are black ticks across the bar of ``mark_series``, or across the whole group when
    that is None (e.g. the paper's value, a row's chance level); ``lines`` are labelled guides
    across the plot. Series named in ``hatched`` are hatched (e.g. the book's own
    demonstration); a thin rule goes before each group index in ``breaks`` (sections).
    ``bar_colours`` gives one colour per group (a single series coloured by group). ``legend``:
    "below" the figure (constrained layout), a place inside the axes ("best", "upper left",
    ...), or None. The value axis spans [0, ``axis_max``]. Without ``ax`` the figure is new.
    """
    from physlm.claims import wilson

    _check_bars(groups, series, marks, mark_series, hatched, breaks)
    _check_length("bar_colours", bar_colours, groups)
    if not 0 < axis_max <= 1:
        raise ValueError(f"axis_max must be in (0, 1], got {axis_max}")
    heights: dict[str, list[float | None]] = {}
    ends: dict[str, list[tuple[float, float] | None]] = {}
    for name, pairs in series.items():
        heights[name], ends[name] = [], []
        for g, pair in enumerate(pairs):
            if pair is None:
                heights[name].append(None)
                ends[name].append(None)
                continue
            k, n = int(pair[0]), int(pair[1])
            if n <= 0 or not 0 <= k <= n:
                raise ValueError(
                    f"series {name!r}, group {groups[g]!r}: (k, n) needs 0 <= k <= n and n > 0, "
                    f"got {tuple(pair)}"
                )
            heights[name].append(k / n)
            ends[name].append(wilson(k, n))
    ax = _bar_axes(ax, legend, horizontal, len(groups), len(series))
    _grouped_bars(
        ax,
        groups,
        heights,
        (0.0, axis_max),
        axis_label,
        intervals=ends,
        horizontal=horizontal,
        bar_colours=bar_colours,
        hatched=hatched,
        breaks=breaks,
        marks=marks,
        mark_series=mark_series,
        mark_label=mark_label,
        lines=lines,
    )
    (ax.xaxis if horizontal else ax.yaxis).set_major_formatter(FuncFormatter(_percent))
    _bar_legend(ax, series, mark_label, lines, legend, ncol)
    if title:
        ax.set_title(title)
    return ax


def _ratio_text(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b is not None and a > 0 and b > 0 else "n/a"


def value_bars(
    groups: Sequence[str],
    values: Sequence[float | None] | dict[str, Sequence[float | None]],
    *,
    annotate: str | None = "value",
    fmt: str = "{:.2f}",
    horizontal: bool = False,
    marks: Sequence[float | None] | None = None,
    mark_series: str | None = None,
    mark_label: str = "paper",
    lines: dict[str, float] | None = None,
    summary_last: bool = False,
    axis_label: str = "",
    legend: str | None = "below",
    ncol: int | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Grouped bars of plain numbers (no intervals), each bar or group labelled.

    ``values`` is one value per group (a single series, not in the legend) or a dict mapping a
    legend name to one value per group (None leaves a gap). ``annotate``: "value" writes each
    bar's value (``fmt``) at its end, lifted onto a mark just beyond it; "ratio" writes
    first/second above each group of exactly two series ("n/a" unless both are positive); None
    writes nothing. ``marks``, ``mark_series``, ``lines``, ``horizontal`` and ``legend`` are as
    in :func:`accuracy_bars`. With ``summary_last`` the last group summarises the others (a
    mean, a pooled value): it is set apart by a gap and a rule, and its bars are hatched.
    """
    series = dict(values) if isinstance(values, dict) else {"_values": list(values)}
    _check_bars(groups, series, marks, mark_series, (), ())
    if annotate not in ("value", "ratio", None):
        raise ValueError(f"annotate must be 'value', 'ratio' or None, got {annotate!r}")
    if annotate == "ratio" and len(series) != 2:
        raise ValueError(f"annotate='ratio' needs exactly two series, got {len(series)}")
    if summary_last and len(groups) < 2:
        raise ValueError("summary_last needs at least two groups")
    nums = {name: [None if v is None else float(v) for v in vs] for name, vs in series.items()}
    shown = [v for vs in nums.values() for v in vs if v is not None]
    shown += [float(m) for m in marks or [] if m is not None] + list((lines or {}).values())
    if not all(np.isfinite(shown)):
        raise ValueError(f"values, marks and lines must be finite numbers, got {shown}")
    lo, hi = min([0.0, *shown]), max([0.0, *shown])
    span = (hi - lo) or 1.0  # room beyond the longest bar for its label, on either side of 0
    ax = _bar_axes(ax, legend, horizontal, len(groups), len(series))
    last = [len(groups) - 1] if summary_last else []
    spots = _grouped_bars(
        ax,
        groups,
        nums,
        (lo - 0.1 * span * (lo < 0), hi + 0.18 * span),
        axis_label,
        horizontal=horizontal,
        hatched_groups=last,
        breaks=last,
        break_gap=0.5,
        marks=marks,
        mark_series=mark_series,
        mark_label=mark_label,
        lines=lines,
    )
    near = 0.07 * span  # a mark this close beyond a bar takes its label along
    labels: list[tuple[float, float, str]] = []
    if annotate == "ratio":
        (a, b) = nums.values()
        for g in range(len(groups)):
            if np.isnan(spots[:, g]).all():
                continue  # neither bar drawn
            top = max([0.0, *(v for v in (a[g], b[g]) if v is not None)])
            labels.append((float(np.nanmean(spots[:, g])), top, _ratio_text(a[g], b[g])))
    elif annotate == "value":
        for s, (name, vs) in enumerate(nums.items()):
            for g, v in enumerate(vs):
                if v is None:
                    continue
                end = max(v, 0.0)
                m = marks[g] if marks is not None else None
                on_bar = mark_series is None or mark_series == name
                if m is not None and on_bar and 0.0 <= float(m) - end < near:
                    end = float(m)
                labels.append((float(spots[s, g]), end, fmt.format(v)))
    for at, end, text in labels:
        ax.annotate(
            text,
            xy=(end, at) if horizontal else (at, end),
            xytext=(4, 0) if horizontal else (0, 4),
            textcoords="offset points",
            ha="left" if horizontal else "center",
            va="center" if horizontal else "bottom",
            bbox=_LABEL_BOX,
            zorder=6,
        )
    names = list(series)
    ratio_title = f"above each pair: {names[0]} / {names[1]}" if annotate == "ratio" else None
    _bar_legend(ax, series, mark_label, lines, legend, ncol, title=ratio_title)
    if title:
        ax.set_title(title)
    return ax


# -- parse trees, attention (Part 1) ----------------------------------------------------------


def parse_tree(
    tokens: Sequence[Any],
    levels: Sequence[tuple[str, Sequence[Any], Sequence[bool]]],
    *,
    ax: Axes | None = None,
) -> Axes:
    """One sentence and its parse: a row of boxes per level, one box per subtree.

    ``levels`` runs from the top of the tree down; each entry is ``(row name, symbol of the
    subtree above each token, does the token end that subtree)``. A subtree is the run of tokens
    up to and including an end; its box is labelled with its symbol. The tokens are the last row.
    """
    n = len(tokens)
    if n == 0:
        raise ValueError("tokens must not be empty")
    for name, symbols, ends in levels:
        if len(symbols) != n or len(ends) != n:
            raise ValueError(f"level {name!r} must give one symbol and one end flag per token")
        if not ends[-1]:
            raise ValueError(f"level {name!r}: the last token must end a subtree")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.38 * n), 0.55 * (len(levels) + 1)))
    colours = sns.color_palette("pastel", n_colors=8)
    rows = [*levels, ("tokens", list(tokens), [True] * n)]
    palette: dict[str, Any] = {}  # one colour per symbol, in order of first appearance
    for _, symbols, _ in levels:
        for sym in symbols:
            palette.setdefault(str(sym), colours[len(palette) % len(colours)])
    for r, (_name, symbols, ends) in enumerate(rows):
        y = len(rows) - 1 - r
        start = 0
        for t in range(n):
            if not ends[t]:
                continue
            leaf = r == len(rows) - 1
            face = "white" if leaf else palette[str(symbols[t])]
            ax.add_patch(
                plt.Rectangle(
                    (start + 0.06, y + 0.1),
                    t - start + 1 - 0.12,
                    0.8,
                    facecolor=face,
                    edgecolor="0.35",
                    linewidth=1,
                )
            )
            ax.text((start + t + 1) / 2, y + 0.5, str(symbols[t]), ha="center", va="center")
            start = t + 1
    ax.set_xlim(0, n)
    ax.set_ylim(0, len(rows))
    ax.set_yticks(np.arange(len(rows)) + 0.5, [name for name, _, _ in rows][::-1])
    ax.set_xticks(np.arange(n) + 0.5, [str(t + 1) for t in range(n)], fontsize="small")
    ax.set_xlabel("token position")
    ax.grid(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    return ax


def attention_map(
    weights: Any,
    ends: Sequence[bool],
    *,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    outline: str = "#D55E00",
    gamma: float = 0.5,
    fontsize: str | float = "small",
    title: str | None = None,
) -> Any:
    """One head's causal attention map (rows: queries, columns: keys) with NT ends marked.

    ``weights`` is (n, n); cells above the diagonal (future keys) are left blank. The cells
    from an NT-end query to an earlier NT-end key (``ends``) are outlined in ``outline``, and the
    NT-end positions' tick labels are drawn bold in the same colour. Colours follow a power
    scale (``gamma`` < 1 makes small weights visible). Returns the image, for a colour bar.
    """
    from matplotlib.colors import PowerNorm

    w = np.asarray(weights, dtype=float)
    n = len(ends)
    if w.shape != (n, n):
        raise ValueError(f"weights must be ({n}, {n}) to match ends, got {w.shape}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have {n} entries, got {len(labels)}")
    if ax is None:
        _, ax = plt.subplots()
    shown = np.where(np.tril(np.ones((n, n), dtype=bool)), w, np.nan)
    cmap = plt.get_cmap("Greys").with_extremes(bad="white")
    image = ax.imshow(shown, cmap=cmap, norm=PowerNorm(gamma, vmin=0.0, vmax=1.0))
    marked = np.flatnonzero(np.asarray(ends, dtype=bool))
    for i in marked:
        for j in marked[marked < i]:
            ax.add_patch(
                plt.Rectangle(
                    (j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=outline, linewidth=1.6
                )
            )
    names = list(labels) if labels is not None else [str(t + 1) for t in range(n)]
    ax.set_xticks(np.arange(n), names, fontsize=fontsize)
    ax.set_yticks(np.arange(n), names, fontsize=fontsize)
    for axis_labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        for t in marked:
            axis_labels[t].set_color(outline)
            axis_labels[t].set_fontweight("bold")
    ax.tick_params(length=0)
    ax.grid(False)
    ax.set_xlabel("key (earlier token)")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    return image


def layer_head_heatmap(
    values: Any,
    *,
    vmax: float | None = None,
    mark_best: bool = True,
    fmt: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Any:
    """A (layers, heads) grid of signed values on a diverging scale centred at 0.

    Layers are rows (numbered from 1), heads columns (from 0). With ``mark_best`` the largest
    value of each layer is outlined in black. ``vmax`` fixes the scale (default: the largest
    absolute value), so that several grids can share one colour bar. ``fmt`` (e.g.
    ``"{:+.3f}"``) writes each value in its cell, white on dark cells. Returns the image.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or not v.size:
        raise ValueError(f"values must be a non-empty (layers, heads) array, got {v.shape}")
    top = float(np.abs(v).max()) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0
    if ax is None:
        _, ax = plt.subplots()
    image = ax.imshow(v, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
    if fmt is not None:
        for (layer, head), value in np.ndenumerate(v):
            ax.text(
                head,
                layer,
                fmt.format(value),
                ha="center",
                va="center",
                fontsize="small",
                color="white" if abs(value) > 0.6 * top else "black",
            )
    if mark_best:
        for layer, head in enumerate(v.argmax(axis=1)):
            ax.add_patch(
                plt.Rectangle(
                    (head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2
                )
            )
    ax.set_xticks(np.arange(v.shape[1]))
    ax.set_yticks(np.arange(v.shape[0]), [str(i + 1) for i in range(v.shape[0])])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return image


# -- probe grids (Part 3.1) ----------------------------------------------------------------------


def probe_heatmaps(
    grids: dict[str, Any],
    *,
    rows: Sequence[str],
    cols: Sequence[str],
    xlabel: str = "",
    ylabel: str = "",
    cbar_label: str = "",
    vmax: float = 100.0,
    ncols: int = 3,
    fmt: str = "{:.0f}",
    panel: tuple[float, float] = (2.2, 2.1),
) -> Figure:
    """One heatmap per entry of ``grids`` (title: its key), all on one colour scale [0, ``vmax``]
    with a single colour bar; each cell's value is written in it (``fmt``) in black or white,
    whichever reads on that cell's colour.

    Every grid is (len(rows), len(cols)); panels fill ``ncols`` columns, ``panel`` inches each.
    Row labels are shown on the first column only, column labels on every panel; empty slots of
    the last row are left blank. Returns the figure (constrained layout).
    """
    if not grids:
        raise ValueError("grids must hold at least one grid")
    shape = (len(rows), len(cols))
    arrays = {}
    for name, g in grids.items():
        a = np.asarray(g, dtype=float)
        if a.shape != shape:
            raise ValueError(f"grid {name!r} is {a.shape}; rows x cols is {shape}")
        arrays[name] = a
    if ncols < 1 or vmax <= 0:
        raise ValueError(f"ncols must be >= 1 and vmax > 0, got {ncols}, {vmax}")
    width = min(ncols, len(arrays))
    height = -(-len(arrays) // width)
    fig, axes = plt.subplots(
        height,
        width,
        figsize=(panel[0] * width + 1.6, panel[1] * height + 0.3),
        layout="constrained",
        squeeze=False,
    )
    cmap = plt.get_cmap("viridis")
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= len(arrays):
            ax.set_axis_off()
            continue
        name, a = list(arrays.items())[k]
        image = ax.imshow(a, cmap=cmap, vmin=0.0, vmax=vmax)
        for i in range(shape[0]):
            for j in range(shape[1]):
                r, g, b, _ = cmap(min(max(a[i, j] / vmax, 0.0), 1.0))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(
                    j,
                    i,
                    fmt.format(a[i, j]),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if dark else "black",
                )
        ax.set_title(name)
        ax.set_xticks(np.arange(shape[1]), list(cols))
        ax.set_yticks(np.arange(shape[0]), list(rows) if k % width == 0 else [])
        ax.tick_params(length=0)
        ax.grid(False)
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel and k % width == 0:
            ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.85, label=cbar_label)
    return fig


def loss_curves(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    axis_label: str = "training loss",
    log_loss: bool = False,
    styles: dict[str, dict[str, Any]] | None = None,
    legend: str | None = "below",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """One line per run of its logged loss against the optimizer step: ``curves`` maps a legend
    name to (steps, losses). Runs compared at equal steps share the x axis. ``styles`` gives a
    run's line keywords (e.g. one colour per family, dashed for a variant)."""
    for name, (steps, losses) in curves.items():
        if len(steps) != len(losses) or not len(steps):
            raise ValueError(f"curve {name!r} needs as many steps as losses (and at least one)")
    ax, _ = _own_axes(ax)
    for name, (steps, losses) in curves.items():
        ax.plot(steps, losses, label=name, **{"linewidth": 1.4, **(styles or {}).get(name, {})})
    if log_loss:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(axis_label)
    ax.xaxis.set_major_formatter(FuncFormatter(_short_number))
    handles, labels = ax.get_legend_handles_labels()
    _place_legend(ax, handles, labels, legend)
    if title:
        ax.set_title(title)
    return ax
