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
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

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


def bits_vs_params(
    rows: Any,
    *,
    params: str = "params",
    bits: str = "bits",
    series: str | None = "series",
    ref_bits_per_param: Sequence[float] = REFERENCE_BITS_PER_PARAM,
    logy: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Knowledge bits against parameter count, as in Part 3.3, Figure 1.

    ``rows`` is a DataFrame or an iterable of records holding ``params`` (the parameter count
    used in the capacity ratio) and ``bits`` (stored bits); points are coloured by ``series``.
    Dashed guides show ``bits = r * params`` for each ``r`` in ``ref_bits_per_param``.
    """
    if not hasattr(rows, "columns"):
        rows = list(rows)
    xs = [float(v) for v in _column(rows, params)]
    ys = [float(v) for v in _column(rows, bits)]
    if not xs:
        raise ValueError("rows must hold at least one point")
    if any(x <= 0 for x in xs):
        raise ValueError(f"{params} must be positive for a log axis")
    if logy and any(y <= 0 for y in ys):
        raise ValueError(f"{bits} must be positive when logy=True")
    labels = [str(v) for v in _column(rows, series)] if series else ["runs"] * len(xs)

    if ax is None:
        _, ax = plt.subplots()
    order = list(dict.fromkeys(labels))
    palette = sns.color_palette("colorblind", n_colors=max(len(order), 1))
    for colour, label in zip(palette, order, strict=False):
        px = [x for x, lab in zip(xs, labels, strict=True) if lab == label]
        py = [y for y, lab in zip(ys, labels, strict=True) if lab == label]
        ax.scatter(px, py, color=colour, label=label, zorder=3)

    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    for i, r in enumerate(sorted(ref_bits_per_param, reverse=True)):
        if r <= 0:
            raise ValueError(f"ref_bits_per_param must be positive, got {r}")
        ax.plot(
            [lo, hi],
            [r * lo, r * hi],
            linestyle=(0, (4, 2 + 2 * i)),
            color="0.45",
            linewidth=1,
            zorder=2,
        )
        ax.annotate(
            f"{r:g} bit/param",
            xy=(hi, r * hi),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color="0.35",
        )
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("parameters (excluding unused embedding rows)")
    ax.set_ylabel("bits of knowledge")
    if title:
        ax.set_title(title)
    if series:
        ax.legend(title=series)
    return ax
