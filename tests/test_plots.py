"""House style, figure files, bits vs params, grouped bars and the Part 1 / 3.1 drawings."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

from physlm import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_style():
    yield
    matplotlib.rcdefaults()
    plt.close("all")


def test_use_style_applies_house_rc():
    matplotlib.rcdefaults()
    assert plt.rcParams["axes.spines.top"] is True
    plots.use_style()
    assert plt.rcParams["axes.spines.top"] is False
    assert plt.rcParams["axes.grid"] is True  # seaborn whitegrid
    assert plt.rcParams["savefig.dpi"] == 150


def test_figures_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv(plots.FIGURES_ENV, str(tmp_path / "figs"))
    assert plots.figures_dir() == tmp_path / "figs"
    monkeypatch.delenv(plots.FIGURES_ENV)
    assert plots.figures_dir().name == "figures"
    assert (plots.figures_dir().parent / "_toc.yml").is_file()


def test_savefig_writes_png_and_closes(tmp_path, monkeypatch):
    monkeypatch.setenv(plots.FIGURES_ENV, str(tmp_path / "figs"))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = plots.savefig(fig, "line")
    assert path == tmp_path / "figs" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    # A name with the suffix already does not get a second one.
    fig2, _ = plt.subplots()
    assert plots.savefig(fig2, "line2.png").name == "line2.png"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_savefig_rejects_paths(tmp_path, monkeypatch, name):
    monkeypatch.setenv(plots.FIGURES_ENV, str(tmp_path))
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="name"):
        plots.savefig(fig, name)


ROWS = [
    {"params": 2e5, "bits": 3.9e5, "max": 8e5, "series": "gpt2"},
    {"params": 1e6, "bits": 2.1e6, "max": 2.2e6, "series": "gpt2"},
    {"params": 1e6, "bits": 1.4e6, "max": 2.2e6, "series": "llama"},
]


def _points(ax, label):
    """Offsets of the scatter labelled ``label`` (the stored bits of one series)."""
    (hit,) = [c for c in ax.collections if c.get_label() == label]
    return hit.get_offsets()


def test_bits_vs_params_axes_points_and_guides():
    ax = plots.bits_vs_params(ROWS)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # One scatter per series, in first-seen order, holding exactly its points.
    legend = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert legend == ["gpt2", "llama"]
    np.testing.assert_allclose(_points(ax, "gpt2"), [[2e5, 3.9e5], [1e6, 2.1e6]])
    np.testing.assert_allclose(_points(ax, "llama"), [[1e6, 1.4e6]])
    # Guides are the lines bits = r * params for r = 2, 1, 0.5, over the whole x range, and
    # the y range shows each of them over that whole range.
    lo, hi = ax.get_xlim()
    ylo, yhi = ax.get_ylim()
    ratios = []
    for line in ax.get_lines():
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        np.testing.assert_allclose([x.min(), x.max()], [lo, hi])
        r = y / x
        np.testing.assert_allclose(r, r[0])  # a line bits = r * P at every point
        assert ylo <= r[0] * lo and r[0] * hi <= yhi
        ratios.append(round(float(r[0]), 6))
    assert sorted(ratios) == [0.5, 1.0, 2.0]
    assert {t.get_text() for t in ax.texts} == {"2 bits/param", "1 bit/param", "0.5 bits/param"}


def test_bits_vs_params_marks_each_points_data_ceiling():
    ax = plots.bits_vs_params(ROWS, max_bits="max", legend_title="family")
    hollow = [
        c
        for c in ax.collections
        if c.get_label().startswith("_") and c.get_offsets().size and c.get_facecolor().size
    ]
    tops = np.concatenate([c.get_offsets() for c in hollow])
    np.testing.assert_allclose(
        sorted(map(tuple, tops)), sorted([(2e5, 8e5), (1e6, 2.2e6), (1e6, 2.2e6)])
    )
    for c in hollow:
        np.testing.assert_allclose(c.get_facecolor()[:, :3], 1.0)  # hollow: white inside
    # A dotted connector from each stored amount up to its ceiling.
    segments = [seg for c in ax.collections for seg in getattr(c, "get_segments", list)()]
    assert sorted((float(s[0][1]), float(s[1][1])) for s in segments) == sorted(
        [(3.9e5, 8e5), (2.1e6, 2.2e6), (1.4e6, 2.2e6)]
    )
    legend = ax.figure.legends[0]
    assert legend.get_title().get_text() == "family"
    assert "bits its data holds (max bits)" in [t.get_text() for t in legend.get_texts()]
    assert ax.get_ylim()[1] >= 2.2e6


def test_bits_vs_params_draws_a_model_without_bits_at_the_edge():
    rows = [*ROWS, {"params": 5e5, "bits": -10.0, "max": 1e6, "series": "gpt2"}]
    ax = plots.bits_vs_params(rows, max_bits="max")
    edge = [c for c in ax.collections if c.get_offsets().size and c.get_paths()]
    floor = ax.get_ylim()[0]
    assert any(np.allclose(c.get_offsets(), [[5e5, floor]]) for c in edge)
    legend = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert "stores no bits (drawn at the edge)" in legend


def test_bits_vs_params_accepts_a_dataframe_and_linear_y():
    pd = pytest.importorskip("pandas")
    ax = plots.bits_vs_params(pd.DataFrame(ROWS), logy=False, series=None, ref_bits_per_param=(2,))
    assert ax.get_yscale() == "linear"
    assert len(ax.get_lines()) == 1 and len(ax.collections) == 1
    line = ax.get_lines()[0]
    # On a linear y axis the guide is still bits = 2 P at every point (a curve on log x).
    np.testing.assert_allclose(np.asarray(line.get_ydata()) / line.get_xdata(), 2.0)
    assert len(line.get_xdata()) > 2


def test_bits_vs_params_rejects_bad_input():
    with pytest.raises(ValueError, match="missing"):
        plots.bits_vs_params([{"params": 1.0}])
    with pytest.raises(ValueError, match="positive"):
        plots.bits_vs_params([{"params": 0.0, "bits": 1.0, "series": "a"}])
    with pytest.raises(ValueError, match="at least one"):
        plots.bits_vs_params([])
    with pytest.raises(ValueError, match="max"):
        plots.bits_vs_params([{"params": 1.0, "bits": 1.0, "max": 0.0}], max_bits="max")
    with pytest.raises(ValueError, match="no positive"):
        plots.bits_vs_params([{"params": 1.0, "bits": 0.0}], ref_bits_per_param=(), series=None)


def test_parse_tree_draws_one_box_per_subtree_and_checks_the_ends():
    tokens = [1, 2, 3, 1]
    levels = [("level 1", ["A", "A", "B", "B"], [False, True, False, True])]
    ax = plots.parse_tree(tokens, levels)
    assert len(ax.patches) == 2 + len(tokens)  # two subtrees, then one box per token
    assert {t.get_text() for t in ax.texts} >= {"A", "B", "1", "2", "3"}
    with pytest.raises(ValueError, match="last token"):
        plots.parse_tree(tokens, [("x", ["A"] * 4, [True, False, False, False])])


def test_attention_map_outlines_nt_end_pairs_and_blanks_the_future():
    w = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    ends = [True, False, True, True]
    ax = plt.figure().add_subplot()
    image = plots.attention_map(w, ends, ax=ax)
    assert np.isnan(image.get_array().filled(np.nan)[0, 1])  # a future key is not drawn
    # earlier-end pairs: (2, 0), (3, 0), (3, 2)
    corners = sorted((p.get_y() + 0.5, p.get_x() + 0.5) for p in ax.patches)
    assert corners == [(2, 0), (3, 0), (3, 2)]
    bold = [t.get_fontweight() for t in ax.get_xticklabels()]
    assert bold == ["bold", "normal", "bold", "bold"]
    with pytest.raises(ValueError, match="match ends"):
        plots.attention_map(np.ones((3, 3)), ends)


def test_layer_head_heatmap_is_centred_and_marks_each_layers_best_head():
    v = np.array([[0.1, -0.3, 0.2], [0.0, 0.05, -0.01]])
    ax = plt.figure().add_subplot()
    image = plots.layer_head_heatmap(v, ax=ax)
    assert image.get_clim() == (-0.3, 0.3)
    assert sorted((p.get_y() + 0.5, p.get_x() + 0.5) for p in ax.patches) == [(0, 2), (1, 1)]
    assert plots.layer_head_heatmap(v, vmax=1.0, mark_best=False).get_clim() == (-1.0, 1.0)
    ax = plt.figure().add_subplot()
    plots.layer_head_heatmap(v, fmt="{:+.2f}", ax=ax)
    texts = {t.get_text(): t.get_color() for t in ax.texts}
    assert len(ax.texts) == v.size and texts["-0.30"] == "white" and texts["+0.10"] == "black"


def test_probe_heatmaps_share_one_scale_write_every_cell_and_blank_empty_slots():
    grids = {"a": np.zeros((2, 3)), "b": np.full((2, 3), 100.0), "c": np.eye(2, 3) * 50}
    fig = plots.probe_heatmaps(grids, rows=["r1", "r2"], cols=["1", "2", "3"], ncols=2)
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["a", "b", "c"]
    assert all(ax.images[0].get_clim() == (0.0, 100.0) for ax in panels)
    assert len(panels[0].texts) == 6 and panels[1].texts[0].get_text() == "100"
    # dark cells get white text, light ones black
    assert panels[0].texts[0].get_color() == "white"
    assert panels[1].texts[0].get_color() == "black"
    # row labels on the first column only; the fourth slot is blank; one colour bar
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["r1", "r2"]
    assert panels[1].get_yticklabels() == [] or not any(
        t.get_text() for t in panels[1].get_yticklabels()
    )
    assert sum(not ax.axison for ax in fig.axes) == 1
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1
    with pytest.raises(ValueError, match="rows x cols"):
        plots.probe_heatmaps({"x": np.zeros((3, 3))}, rows=["r1", "r2"], cols=["1", "2", "3"])
    with pytest.raises(ValueError, match="at least one"):
        plots.probe_heatmaps({}, rows=["r"], cols=["c"])


# -- grouped bars -----------------------------------------------------------------------------

GROUPS = ["a", "b", "c"]
ACC = {"ours": [(0, 10), (10, 10), (5, 10)], "other": [(2, 10), None, (7, 20)]}


def _error_ends(ax, horizontal=False):
    """(centre along the group axis, low end, high end) of every error bar, in drawing order."""
    from matplotlib.container import ErrorbarContainer

    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            for seg in c.lines[2][0].get_segments():
                (x0, y0), (x1, y1) = seg
                out.append((y0, x0, x1) if horizontal else (x0, y0, y1))
    return out


def _ticks(ax, label, horizontal=False):
    """(centre along the group axis, value, half length) of each mark labelled ``label``."""
    (marks,) = [c for c in ax.collections if c.get_label() == label]
    out = []
    for (x0, y0), (x1, y1) in marks.get_segments():
        if horizontal:
            out.append(((y0 + y1) / 2, x0, abs(y1 - y0) / 2))
        else:
            out.append(((x0 + x1) / 2, y0, abs(x1 - x0) / 2))
    return out


def _legend_names(legend):
    return [t.get_text() for t in legend.get_texts()]


def test_accuracy_bars_heights_are_k_over_n_with_wilson_error_bars():
    from physlm.claims import wilson

    ax = plots.accuracy_bars(GROUPS, ACC, lines={"chance": 0.1})
    pairs = [p for s in ACC.values() for p in s if p is not None]  # the gap draws no bar
    assert [p.get_height() for p in ax.patches] == [k / n for k, n in pairs]
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    ends = _error_ends(ax)
    assert len(ends) == len(pairs)
    for (x, lo, hi), centre, (k, n) in zip(ends, centres, pairs, strict=True):
        assert x == pytest.approx(centre)
        np.testing.assert_allclose([lo, hi], wilson(k, n))
    # A dot at each bar's end, so that 0 of 10 still shows.
    dots = np.concatenate(
        [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    )
    heights = [k / n for k, n in pairs]
    np.testing.assert_allclose(dots, list(zip(centres, heights, strict=True)))
    # Groups on the x axis, series side by side in each, a percent value axis over [0, 1].
    assert [t.get_text() for t in ax.get_xticklabels()] == GROUPS
    assert centres[0] < centres[1] < centres[2] and centres[0] < centres[3] < centres[1]
    assert ax.get_ylim() == (0.0, 1.0)
    assert ax.yaxis.get_major_formatter()(0.5, 0) == "50%"
    assert ax.get_ylabel() == "accuracy"
    (guide,) = [line for line in ax.get_lines() if line.get_label() == "chance"]
    assert list(guide.get_ydata()) == [0.1, 0.1]
    # Own figure: the legend goes below it, bars first, then guides.
    assert ax.get_legend() is None
    assert _legend_names(ax.figure.legends[0]) == ["ours", "other", "chance"]


def test_accuracy_bars_marks_across_one_series_or_the_whole_group():
    ax = plots.accuracy_bars(GROUPS, ACC, marks=[0.5, None, 0.9], mark_series="other")
    other = [p for p in ax.patches if p.get_height() in (0.2, 0.35)]
    assert [round(p.get_height(), 6) for p in other] == [0.2, 0.35]
    ticks = _ticks(ax, "paper")
    assert [v for _, v, _ in ticks] == [0.5, 0.9]
    for (at, _, _), bar in zip(ticks, other, strict=True):
        assert at == pytest.approx(bar.get_x() + bar.get_width() / 2)  # on that series' bar
    # With no mark_series, a mark spans its whole group; the legend names it once.
    ax2 = plots.accuracy_bars(GROUPS, ACC, marks=[None, 0.3, None], mark_label="chance")
    ((at, value, half),) = _ticks(ax2, "chance")
    assert (at, value) == (pytest.approx(1.0), 0.3) and half > 0.4
    assert _legend_names(ax2.figure.legends[0]) == ["ours", "other", "chance"]


def test_accuracy_bars_horizontal_rows_hatching_and_breaks():
    from physlm.claims import wilson

    ax = plots.accuracy_bars(
        GROUPS,
        ACC,
        horizontal=True,
        marks=[0.5, None, 0.9],
        mark_label="chance",
        hatched=["other"],
        breaks=[2],
        axis_label="accuracy on P_test",
    )
    pairs = [p for s in ACC.values() for p in s if p is not None]
    assert [p.get_width() for p in ax.patches] == [k / n for k, n in pairs]
    assert [bool(p.get_hatch()) for p in ax.patches] == [False] * 3 + [True] * 2
    assert [t.get_text() for t in ax.get_yticklabels()] == GROUPS
    lo, hi = ax.get_ylim()
    assert lo > hi  # the first group on top
    rows = [p.get_y() + p.get_height() / 2 for p in ax.patches]
    for (y, x0, x1), row, (k, n) in zip(_error_ends(ax, True), rows, pairs, strict=True):
        assert y == pytest.approx(row)
        np.testing.assert_allclose([x0, x1], wilson(k, n))
    assert [(round(at, 6), v) for at, v, _ in _ticks(ax, "chance", True)] == [(0, 0.5), (2, 0.9)]
    (rule,) = [line for line in ax.get_lines() if line.get_label() == "_break"]
    assert list(rule.get_ydata()) == [1.5, 1.5]  # the break sits between rows b and c
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_xlabel() == "accuracy on P_test"
    assert ax.xaxis.get_major_formatter()(1.0, 0) == "100%"
    assert _legend_names(ax.figure.legends[0]) == ["ours", "other", "chance"]


def test_accuracy_bars_legend_places_colours_and_axis_max():
    fig, ax = plt.subplots()
    plots.accuracy_bars(["x", "y"], {"s": [(1, 2), (2, 2)]}, legend="upper left", ax=ax)
    assert _legend_names(ax.get_legend()) == ["s"] and not fig.legends
    _, ax = plt.subplots()
    plots.accuracy_bars(
        ["x", "y"],
        {"s": [(1, 4), (2, 4)]},
        bar_colours=["red", "blue"],
        legend=None,
        axis_max=0.6,
        ax=ax,
    )
    assert ax.get_legend() is None and not ax.figure.legends
    assert [p.get_facecolor()[:3] for p in ax.patches] == [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    assert ax.get_ylim() == (0.0, 0.6)
    fig, ax = plt.subplots(layout="constrained")
    plots.accuracy_bars(["x"], {"s": [(1, 2)]}, ax=ax)
    assert _legend_names(fig.legends[0]) == ["s"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": []}, "groups"),
        ({"series": {"x": [(1, 2)]}}, "series 'x' has 1 entries"),
        ({"marks": [0.5]}, "marks"),
        ({"marks": [0.5, 0.5], "mark_series": "y"}, "mark_series"),
        ({"hatched": ["y"]}, "hatched"),
        ({"breaks": [2]}, "breaks"),
        ({"breaks": [0]}, "breaks"),
        ({"bar_colours": ["red"]}, "bar_colours"),
        ({"series": {"x": [(3, 2), (1, 2)]}}, "series 'x', group 'a'"),
        ({"series": {"x": [(0, 0), (1, 2)]}}, "0 <= k <= n"),
        ({"axis_max": 0.0}, "axis_max"),
        ({"legend": "under"}, "legend"),
    ],
)
def test_accuracy_bars_rejects_bad_input_naming_the_parameter(kwargs, message):
    args = {"groups": ["a", "b"], "series": {"x": [(1, 2), (2, 2)]}, **kwargs}
    with pytest.raises(ValueError, match=message):
        plots.accuracy_bars(args.pop("groups"), args.pop("series"), **args)


def test_legend_below_needs_a_constrained_figure():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="legend='below'"):
        plots.accuracy_bars(["x"], {"s": [(1, 2)]}, ax=ax)
    with pytest.raises(ValueError, match="legend='below'"):
        plots.value_bars(["x"], [1.0], ax=ax)


def test_value_bars_write_each_value_and_lift_it_onto_a_close_mark():
    values = [1.1, 1.09, 0.01]
    ax = plots.value_bars(
        ["float", "int8", "int4"],
        values,
        marks=[2.0, None, 0.7],
        mark_label="paper",
        lines={"data holds": 2.1},
        fmt="{:.2f}",
        axis_label="bits per parameter",
    )
    assert [p.get_height() for p in ax.patches] == values
    assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in values]
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert [t.xy for t in ax.texts] == [(c, v) for c, v in zip(centres, values, strict=True)]
    assert [(at, v) for at, v, _ in _ticks(ax, "paper")] == [(0.0, 2.0), (2.0, 0.7)]
    (floor,) = [line for line in ax.get_lines() if line.get_label() == "data holds"]
    assert list(floor.get_ydata()) == [2.1, 2.1]
    assert (
        ax.get_ylim()[0] == 0.0
        and ax.get_ylim()[1] > 2.1
        and ax.get_ylabel() == "bits per parameter"
    )
    # A single series stays out of the legend: marks, then guides.
    assert _legend_names(ax.figure.legends[0]) == ["paper", "data holds"]
    # A label whose bar ends just under a mark is lifted onto the mark, not hidden behind it.
    ax2 = plots.value_bars(["a", "b"], [1.0, 0.05], marks=[None, 0.1], fmt="{:.0f}")
    assert [t.get_text() for t in ax2.texts] == ["1", "0"]
    assert ax2.texts[1].xy[1] == pytest.approx(0.1)
    assert _error_ends(ax2) == []  # plain values carry no intervals


def test_value_bars_ratio_labels_and_a_summary_group():
    first, second = [2.0, 3.0, 2.5], [1.0, 0.0, 0.5]
    ax = plots.value_bars(
        ["r0", "r1", "mean"], {"A": first, "B": second}, annotate="ratio", summary_last=True
    )
    assert [p.get_height() for p in ax.patches] == first + second
    expected = [f"{a / b:.2f}x" if b > 0 else "n/a" for a, b in zip(first, second, strict=True)]
    assert [t.get_text() for t in ax.texts] == expected
    assert [t.xy[1] for t in ax.texts] == [max(a, b) for a, b in zip(first, second, strict=True)]
    assert [bool(p.get_hatch()) for p in ax.patches] == [False, False, True] * 2
    ticks = ax.get_xticks()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["r0", "r1", "mean"]
    assert ticks[2] - ticks[1] > ticks[1] - ticks[0]  # the summary is set apart
    (rule,) = [line for line in ax.get_lines() if line.get_label() == "_break"]
    assert ticks[1] < rule.get_xdata()[0] < ticks[2]
    legend = ax.figure.legends[0]
    assert _legend_names(legend) == ["A", "B"]
    assert legend.get_title().get_text() == "above each pair: A / B"


def test_value_bars_horizontal_labels_sit_past_the_bar_end():
    ax = plots.value_bars(["x", "y"], {"s": [3.0, 5.0]}, horizontal=True, fmt="{:.1f}", legend=None)
    assert [p.get_width() for p in ax.patches] == [3.0, 5.0]
    rows = [p.get_y() + p.get_height() / 2 for p in ax.patches]
    assert [t.xy for t in ax.texts] == [(3.0, rows[0]), (5.0, rows[1])]
    assert [t.get_text() for t in ax.texts] == ["3.0", "5.0"]
    assert ax.get_xlim()[1] > 5.0 and not ax.figure.legends


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": [1.0]}, "series '_values' has 1 entries"),
        ({"annotate": "both"}, "annotate"),
        ({"values": {"a": [1.0, 2.0]}, "annotate": "ratio"}, "exactly two series"),
        ({"groups": ["a"], "values": [1.0], "summary_last": True}, "summary_last"),
        ({"values": [1.0, float("nan")]}, "finite"),
        ({"marks": [1.0]}, "marks"),
        ({"legend": "outside"}, "legend"),
    ],
)
def test_value_bars_rejects_bad_input_naming_the_parameter(kwargs, message):
    args = {"groups": ["a", "b"], "values": [1.0, 2.0], **kwargs}
    with pytest.raises(ValueError, match=message):
        plots.value_bars(args.pop("groups"), args.pop("values"), **args)


def test_old_bar_helpers_are_gone():
    for name in ("wilson_bars", "hbar_accuracies", "paired_bars", "bars_with_marks"):
        assert not hasattr(plots, name)


def test_value_bars_leave_room_for_labels_when_every_value_is_negative():
    ax = plots.value_bars(["a", "b"], {"A": [-100.0, -40.0], "B": [-50.0, -80.0]}, annotate="ratio")
    lo, hi = ax.get_ylim()
    assert lo < -100.0 and hi >= 0.18 * 100.0  # the labels above 0 stay clear of the title
    assert [t.get_text() for t in ax.texts] == ["n/a", "n/a"]
    assert [t.xy[1] for t in ax.texts] == [0.0, 0.0]


def test_accuracy_bars_clip_an_interval_that_runs_past_axis_max():
    from matplotlib.container import ErrorbarContainer

    fig, ax = plt.subplots(layout="constrained")
    # 0 of 10 reaches about 28% at its upper end: past an axis that stops at 20%
    plots.accuracy_bars(["a", "b"], {"s": [(0, 10), (1, 10)]}, axis_max=0.2, legend=None, ax=ax)
    (errors,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert all(artist.get_clip_on() for artist in errors.get_children())
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert not dots.get_clip_on()  # the dots themselves are inside the axis
    fig.canvas.draw()  # percent ticks on a short axis: each label distinct and exact
    labels = [t.get_text() for t in ax.get_yticklabels()]
    expected = [f"{100 * v:g}%" for v in ax.get_yticks()]
    assert labels == expected and len(set(labels)) == len(labels)
    assert plots._percent(-1e-12) == "0%" and plots._percent(0.125) == "12.5%"
    # inside the axis, the ends and dots are drawn whole (a dot at 0% is not cut in half)
    _, ax2 = plt.subplots(layout="constrained")
    plots.accuracy_bars(["a"], {"s": [(0, 10)]}, legend=None, ax=ax2)
    (errors,) = [c for c in ax2.containers if isinstance(c, ErrorbarContainer)]
    assert not any(artist.get_clip_on() for artist in errors.get_children())
    (dots,) = [c for c in ax2.collections if isinstance(c, PathCollection)]
    assert not dots.get_clip_on()


def test_loss_curves_draw_each_run_at_its_steps():
    from physlm.plots import loss_curves

    ax = loss_curves({"a": ([10, 20, 30], [3.0, 2.0, 1.5]), "b": ([10, 20], [2.5, 0.5])},
                     log_loss=True, styles={"b": {"linestyle": "--"}})  # fmt: skip
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines) == ["a", "b"]
    assert list(lines["b"].get_xdata()) == [10, 20] and list(lines["b"].get_ydata()) == [2.5, 0.5]
    assert lines["b"].get_linestyle() == "--" and lines["a"].get_linestyle() == "-"
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "optimizer step"
    assert ax.figure.legends  # below the axes
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="curve 'c'"):
        loss_curves({"c": ([1, 2], [1.0])})
