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


def _legend_below(ax: Axes, own: bool, handles=None, labels=None, title=None) -> None:
    """A legend under the plot on a figure of our own, where it covers no data; the best
    place inside the axes when the caller owns the figure."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if own:
        ncol = min(len(handles), 2 if len(handles) > 3 or title else 3)
        ax.figure.legend(handles, labels, title=title, loc="outside lower center", ncol=ncol)
    else:
        ax.legend(handles, labels, title=title, loc="best")


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
        _legend_below(ax, own, handles, names, legend_title)
    return ax


def _ratio_text(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a > 0 and b > 0 else "n/a"


def paired_bars(
    groups: Sequence[str],
    first: Sequence[float],
    second: Sequence[float],
    *,
    names: tuple[str, str] = ("first", "second"),
    ylabel: str = "",
    summary_last: bool = False,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Two bars per group (``first`` and ``second``), with the ratio first/second above each pair.

    With ``summary_last`` the last group is a summary of the others (a mean, a pooled value):
    it is set apart by a vertical rule and its bars are hatched. A ratio is shown only where
    both values are positive.
    """
    a = [float(v) for v in first]
    b = [float(v) for v in second]
    if not len(groups) or not (len(groups) == len(a) == len(b)):
        raise ValueError(
            f"groups, first and second must be equally long and not empty, got "
            f"{len(groups)}, {len(a)}, {len(b)}"
        )
    if summary_last and len(groups) < 2:
        raise ValueError("summary_last needs at least two groups")
    ax, own = _own_axes(ax)
    colours = sns.color_palette("colorblind", n_colors=2)
    x = np.arange(len(groups), dtype=float)
    if summary_last:
        x[-1] += 0.5
    w = 0.38
    hatch = ["" for _ in groups]
    if summary_last:
        hatch[-1] = "//"
    for k, (vals, name) in enumerate(((a, names[0]), (b, names[1]))):
        bars = ax.bar(
            x + (k - 0.5) * w,
            vals,
            width=w,
            color=colours[k],
            label=name,
            zorder=3,
            edgecolor="white",
        )
        for bar, h in zip(bars, hatch, strict=True):
            bar.set_hatch(h)
    top = max([0.0, *a, *b])
    for xi, ai, bi in zip(x, a, b, strict=True):
        ax.annotate(
            _ratio_text(ai, bi),
            xy=(xi, max(ai, bi, 0.0)),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="medium",
            bbox=_LABEL_BOX,
            zorder=6,
        )
    if summary_last:
        ax.axvline((x[-2] + x[-1]) / 2, color="0.6", linewidth=1, zorder=1)
    ax.set_xticks(x, list(groups))
    ax.set_ylim(min([0.0, *a, *b]) * 1.1, top * 1.18 if top > 0 else 1.0)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)
    _legend_below(ax, own, title=f"above each pair: {names[0]} / {names[1]}")
    if title:
        ax.set_title(title)
    return ax


def bars_with_marks(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    marks: Sequence[float | None] | None = None,
    mark_label: str = "paper",
    lines: dict[str, float] | None = None,
    ylabel: str = "",
    fmt: str = "{:.2f}",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """One bar per label, its value written above it; ``marks`` (one per bar, None for none)
    are short black ticks across a bar (e.g. the paper's value), ``lines`` labelled horizontal
    dashed lines across the plot (e.g. a floor or a ceiling)."""
    vals = [float(v) for v in values]
    if not len(labels) or len(labels) != len(vals):
        raise ValueError(f"labels and values must be equally long, got {len(labels)}, {len(vals)}")
    if marks is not None and len(marks) != len(vals):
        raise ValueError(f"marks must have one entry per bar, got {len(marks)} for {len(vals)}")
    ax, own = _own_axes(ax)
    x = np.arange(len(vals), dtype=float)
    ax.bar(x, vals, width=0.6, color=sns.color_palette("colorblind")[0], zorder=3)
    per_bar = [None if m is None else float(m) for m in marks] if marks is not None else []
    pts = [(xi, m) for xi, m in zip(x, per_bar, strict=True) if m is not None]
    if pts:
        mx, my = (np.array(v) for v in zip(*pts, strict=True))
        ax.hlines(my, mx - 0.4, mx + 0.4, colors="black", linewidth=2.5, label=mark_label, zorder=4)
    styles = ["--", "-.", ":"]
    for i, (name, y) in enumerate((lines or {}).items()):
        colour = sns.color_palette("colorblind")[3 + i % 4]
        ax.axhline(y, color=colour, linestyle=styles[i % 3], linewidth=1.6, label=name, zorder=2)
    drawn = [0.0, *vals, *(m for _, m in pts), *(lines or {}).values()]
    lo, hi = min(drawn), max(drawn)
    ax.set_ylim(lo * 1.1 if lo < 0 else 0.0, hi * 1.15 if hi > 0 else 1.0)
    near = 0.07 * (hi - min(lo, 0.0) or 1.0)  # a mark this close above a bar takes its label up
    for k, (xi, v) in enumerate(zip(x, vals, strict=True)):
        y = max(v, 0.0)
        m = per_bar[k] if per_bar else None
        if m is not None and 0.0 <= m - y < near:
            y = m
        ax.annotate(
            fmt.format(v),
            xy=(xi, y),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            bbox=_LABEL_BOX,
            zorder=6,
        )
    ax.set_xticks(x, list(labels))
    ax.grid(axis="x", visible=False)
    ax.set_ylabel(ylabel)
    _legend_below(ax, own)
    if title:
        ax.set_title(title)
    return ax


# -- accuracies with intervals, parse trees, attention (Part 1) ---------------------------------


def wilson_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[tuple[int, int]]],
    *,
    ylabel: str = "accuracy",
    lines: dict[str, float] | None = None,
    ymax: float = 1.0,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Grouped bars of accuracies with their 95% Wilson intervals as error bars.

    ``series`` maps a legend name to one ``(k, n)`` per group (k successes of n independent
    items; an entry of None leaves a gap). The interval is :func:`physlm.claims.wilson`, the one
    the claims ledger prints. ``lines`` are labelled horizontal guides (e.g. a threshold).
    The y axis spans [0, ``ymax``].
    """
    from physlm.claims import wilson

    if not len(groups) or not series:
        raise ValueError("need at least one group and one series")
    for name, pairs in series.items():
        if len(pairs) != len(groups):
            raise ValueError(f"series {name!r} has {len(pairs)} entries for {len(groups)} groups")
    if ax is None:
        _, ax = plt.subplots()
    colours = sns.color_palette("colorblind", n_colors=max(len(series), 1))
    x = np.arange(len(groups), dtype=float)
    w = 0.8 / len(series)
    for s, (name, pairs) in enumerate(series.items()):
        xs, ys, lo, hi = [], [], [], []
        for xi, pair in zip(x, pairs, strict=True):
            if pair is None:
                continue
            k, n = int(pair[0]), int(pair[1])
            a, b = wilson(k, n)
            xs.append(xi + (s - (len(series) - 1) / 2) * w)
            ys.append(k / n)
            lo.append(k / n - a)
            hi.append(b - k / n)
        ax.bar(xs, ys, width=w * 0.95, color=colours[s], label=name, zorder=3)
        ax.errorbar(
            xs, ys, yerr=[lo, hi], fmt="none", ecolor="black", elinewidth=1.2, capsize=3, zorder=4
        )
    styles = ["--", "-.", ":"]
    for i, (name, y) in enumerate((lines or {}).items()):
        ax.axhline(y, color="0.3", linestyle=styles[i % 3], linewidth=1.2, label=name, zorder=2)
    ax.set_xticks(x, list(groups))
    ax.set_ylim(0, ymax)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


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


def accuracy_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[tuple[int, int] | None]],
    *,
    ax: Axes,
    marks: Sequence[float | None] | None = None,
    mark_series: str | None = None,
    mark_label: str = "paper",
    lines: dict[str, float] | None = None,
    ylabel: str = "accuracy",
    ymax: float = 1.0,
    bar_colours: Sequence[Any] | None = None,
    legend: str | None = "below",
    ncol: int = 3,
    title: str | None = None,
) -> Axes:
    """Grouped bars of accuracies, each with its 95% Wilson interval, on a percent axis.

    ``series`` maps a legend name to one ``(k, n)`` per group (k right of n independent items;
    None leaves a gap); the interval is :func:`physlm.claims.wilson`, the ledger's. ``marks``
    (one value or None per group) are black ticks across the bars of ``mark_series`` (default:
    the last series), e.g. the paper's value; ``lines`` are labelled dashed guides across the
    plot. ``bar_colours`` gives one colour per group (with a single series: bars coloured by
    group). ``legend``: "below" the figure (which must use the constrained layout), "inside"
    the axes, or None. The y axis spans [0, ``ymax``].
    """
    from matplotlib.ticker import PercentFormatter

    from physlm.claims import wilson

    if not len(groups) or not series:
        raise ValueError("need at least one group and one series")
    for name, pairs in series.items():
        if len(pairs) != len(groups):
            raise ValueError(f"series {name!r} has {len(pairs)} entries for {len(groups)} groups")
    if marks is not None:
        if len(marks) != len(groups):
            raise ValueError(f"marks has {len(marks)} entries for {len(groups)} groups")
        mark_series = list(series)[-1] if mark_series is None else mark_series
        if mark_series not in series:
            raise ValueError(f"mark_series {mark_series!r} is not a series: {list(series)}")
    if bar_colours is not None and len(bar_colours) != len(groups):
        raise ValueError(f"bar_colours has {len(bar_colours)} entries for {len(groups)} groups")
    if legend not in ("below", "inside", None):
        raise ValueError(f"legend must be 'below', 'inside' or None, got {legend!r}")
    colours = sns.color_palette("colorblind", n_colors=max(len(series), 1))
    x = np.arange(len(groups), dtype=float)
    w = 0.8 / len(series)
    marked = False
    for s, (name, pairs) in enumerate(series.items()):
        xs, ys, err, faces, idx = [], [], [], [], []
        for g, pair in enumerate(pairs):
            if pair is None:
                continue
            k, n = int(pair[0]), int(pair[1])
            lo, hi = wilson(k, n)
            p = k / n
            xs.append(x[g] + (s - (len(series) - 1) / 2) * w)
            ys.append(p)
            err.append((max(p - lo, 0.0), max(hi - p, 0.0)))  # rounding can cross the point
            faces.append(colours[s] if bar_colours is None else bar_colours[g])
            idx.append(g)
        if not xs:
            continue
        ax.bar(xs, ys, width=w * 0.95, color=faces, label=name, zorder=3)
        ax.errorbar(
            xs,
            ys,
            yerr=np.array(err).T,
            fmt="none",
            ecolor="black",
            elinewidth=1.2,
            capsize=3,
            zorder=4,
        )
        if marks is not None and name == mark_series:
            for xi, g in zip(xs, idx, strict=True):
                if marks[g] is None:
                    continue
                ax.hlines(
                    float(marks[g]),
                    xi - 0.6 * w,
                    xi + 0.6 * w,
                    colors="black",
                    linewidth=3,
                    zorder=5,
                    label="_nolegend_" if marked else mark_label,
                )
                marked = True
    styles = ["--", "-.", ":"]
    for i, (name, y) in enumerate((lines or {}).items()):
        ax.axhline(y, color="0.3", linestyle=styles[i % 3], linewidth=1.3, label=name, zorder=2)
    ax.set_xticks(x, list(groups))
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0, ymax)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)
    found = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    order = [*series, mark_label, *(lines or {})]  # bars, then marks, then guides
    names = [n for n in dict.fromkeys(order) if n in found]
    handles = [found[n] for n in names]
    if legend == "below" and handles:
        ax.figure.legend(handles, names, loc="outside lower center", ncol=ncol, fontsize="small")
    elif legend == "inside" and handles:
        ax.legend(handles, names, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def hbar_accuracies(
    labels: Sequence[str],
    series: dict[str, Sequence[tuple[int, int] | None]],
    *,
    refs: Sequence[float | None] | None = None,
    ref_label: str = "chance",
    hatched: Sequence[str] = (),
    breaks: Sequence[int] = (),
    xlabel: str = "accuracy",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Accuracies as horizontal bars, one row per label (top to bottom) and one bar per series
    in a row, each with its 95% Wilson interval (:func:`physlm.claims.wilson`) as error bar.

    ``series`` maps a legend name to one ``(k, n)`` per label (None leaves a gap). ``refs`` (one
    value or None per row) are black vertical ticks across the whole row, e.g. the row's chance
    level, so a bar that stops short of its tick is below it. Series named in ``hatched`` are
    drawn hatched (e.g. the book's own demonstration beside the paper's setups); a thin rule is
    drawn above each row index in ``breaks`` (sections). Each bar ends in a dot, so an accuracy
    of 0 still shows. On a figure of its own (``ax`` None) the legend goes below the plot.
    """
    from matplotlib.ticker import PercentFormatter

    from physlm.claims import wilson

    if not len(labels) or not series:
        raise ValueError("need at least one label and one series")
    for name, pairs in series.items():
        if len(pairs) != len(labels):
            raise ValueError(f"series {name!r} has {len(pairs)} entries for {len(labels)} labels")
    if refs is not None and len(refs) != len(labels):
        raise ValueError(f"refs has {len(refs)} entries for {len(labels)} labels")
    unknown = [h for h in hatched if h not in series]
    if unknown:
        raise ValueError(f"hatched names {unknown} are not series: {list(series)}")
    if any(not 0 < b < len(labels) for b in breaks):
        raise ValueError(f"breaks must be row indices in 1..{len(labels) - 1}, got {list(breaks)}")
    rows, per = len(labels), len(series)
    own = ax is None
    if own:
        _, ax = plt.subplots(figsize=(7.0, 1.2 + rows * (0.22 + 0.2 * per)), layout="constrained")
    colours = sns.color_palette("colorblind", n_colors=max(per, 1))
    y = np.arange(rows, dtype=float)
    h = 0.8 / per
    for s, (name, pairs) in enumerate(series.items()):
        ys, xs, err = [], [], []
        for r, pair in enumerate(pairs):
            if pair is None:
                continue
            k, n = int(pair[0]), int(pair[1])
            lo, hi = wilson(k, n)
            p = k / n
            ys.append(y[r] + (s - (per - 1) / 2) * h)
            xs.append(p)
            err.append((max(p - lo, 0.0), max(hi - p, 0.0)))
        if not ys:
            continue
        face = colours[s]
        ax.barh(
            ys,
            xs,
            height=h * 0.9,
            color=face,
            hatch="//" if name in hatched else None,
            edgecolor="white" if name in hatched else None,
            label=name,
            zorder=3,
        )
        bars = ax.errorbar(
            xs,
            ys,
            xerr=np.array(err).T,
            fmt="o",
            color=face,
            markersize=4,
            markeredgecolor="black",
            ecolor="black",
            elinewidth=1.2,
            capsize=3,
            zorder=4,
        )
        for artist in bars.get_children():  # a dot at 0% or 100% shows whole
            artist.set_clip_on(False)
    if refs is not None:
        marked = False
        for r, v in enumerate(refs):
            if v is None:
                continue
            ax.vlines(
                float(v),
                y[r] - 0.45,
                y[r] + 0.45,
                colors="black",
                linewidth=2.5,
                zorder=5,
                label="_nolegend_" if marked else ref_label,
            )
            marked = True
    for b in breaks:
        ax.axhline(b - 0.5, color="0.6", linewidth=1, zorder=1)
    ax.set_yticks(y, list(labels))
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    handles, names = ax.get_legend_handles_labels()
    if handles:
        if own:
            ncol = 2 if len(handles) > 3 else len(handles)
            ax.figure.legend(handles, names, loc="outside lower center", ncol=ncol)
        else:
            ax.legend(handles, names, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return ax
