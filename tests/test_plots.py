"""House style, figure files and the bits-vs-params plot."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

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


def test_paired_bars_heights_ratios_and_summary():
    ax = plots.paired_bars(
        ["r0", "r1", "mean"], [2.0, 3.0, 2.5], [1.0, 0.0, 0.5], names=("A", "B"), summary_last=True
    )
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2.0, 3.0, 2.5, 1.0, 0.0, 0.5]  # the first series' bars, then the second's
    assert [t.get_text() for t in ax.texts] == ["2.00x", "n/a", "5.00x"]
    assert [bool(p.get_hatch()) for p in ax.patches] == [False, False, True] * 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["r0", "r1", "mean"]
    legend = ax.figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B"]
    assert "A / B" in legend.get_title().get_text()
    with pytest.raises(ValueError, match="equally long"):
        plots.paired_bars(["a"], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="two groups"):
        plots.paired_bars(["a"], [1.0], [1.0], summary_last=True)


def test_bars_with_marks_values_marks_and_lines():
    ax = plots.bars_with_marks(
        ["float", "int8", "int4"],
        [1.1, 1.09, 0.01],
        marks=[2.0, None, 0.7],
        mark_label="paper",
        lines={"data holds": 2.1},
        fmt="{:.2f}",
    )
    assert [p.get_height() for p in ax.patches] == [1.1, 1.09, 0.01]
    assert [t.get_text() for t in ax.texts] == ["1.10", "1.09", "0.01"]
    (marks,) = [c for c in ax.collections if c.get_label() == "paper"]
    centres = [(float(s[:, 0].mean()), float(s[0, 1])) for s in marks.get_segments()]
    assert centres == [(0.0, 2.0), (2.0, 0.7)]
    (floor,) = [line for line in ax.get_lines() if line.get_label() == "data holds"]
    assert list(floor.get_ydata()) == [2.1, 2.1]
    assert ax.get_ylim()[1] > 2.1
    legend = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert legend == ["paper", "data holds"]
    # A label whose bar ends just under a mark is lifted onto the mark, not hidden behind it.
    ax2 = plots.bars_with_marks(["a", "b"], [1.0, 0.05], marks=[None, 0.1])
    assert ax2.texts[1].xy[1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="equally long"):
        plots.bars_with_marks(["a"], [1.0, 2.0])
    with pytest.raises(ValueError, match="one entry per bar"):
        plots.bars_with_marks(["a"], [1.0], marks=[1.0, 2.0])


def test_wilson_bars_draw_each_accuracy_with_its_interval():
    from physlm.claims import wilson

    ax = plots.wilson_bars(
        ["cut 0", "cut 8"],
        {"ours": [(8, 10), (5, 10)], "other": [(2, 10), None]},
        lines={"threshold": 0.9},
    )
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.8, 0.5, 0.2]  # the gap leaves no bar
    caps = ax.containers[1]  # the error bars of the first series
    segs = caps.lines[2][0].get_segments()
    lo, hi = wilson(8, 10)
    np.testing.assert_allclose([segs[0][0][1], segs[0][1][1]], [lo, hi])
    assert ax.get_ylim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["threshold", "ours", "other"]
    with pytest.raises(ValueError, match="entries"):
        plots.wilson_bars(["a", "b"], {"x": [(1, 2)]})


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


def test_accuracy_bars_intervals_gaps_marks_and_a_legend_below():
    from physlm.claims import wilson

    fig, ax = plt.subplots(layout="constrained")
    plots.accuracy_bars(
        ["a", "b", "c"],
        {"ours": [(0, 10), (10, 10), (5, 10)], "other": [(2, 10), None, (1, 10)]},
        marks=[0.5, None, 0.9],
        mark_series="ours",
        lines={"chance": 0.1},
        ax=ax,
    )
    bars = [p.get_height() for p in ax.patches]
    assert bars == [0.0, 1.0, 0.5, 0.2, 0.1]  # the gap leaves no bar
    segs = ax.containers[1].lines[2][0].get_segments()  # the first series' error bars
    assert segs[0][0][1] == 0.0  # k = 0: no negative error length, the bar starts at 0
    np.testing.assert_allclose([segs[2][0][1], segs[2][1][1]], wilson(5, 10))
    ticks = [c for c in ax.collections if c.get_label() == "paper"]
    assert len(ticks) == 1 and len(ax.collections) >= 2  # two marks, one legend entry
    assert ax.get_ylim() == (0.0, 1.0) and ax.get_legend() is None
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == ["ours", "other", "paper", "chance"]
    _, ax1 = plt.subplots()
    plots.accuracy_bars(
        ["x", "y"], {"s": [(1, 2), (2, 2)]}, bar_colours=["red", "blue"], ax=ax1, legend=None
    )
    assert ax1.patches[0].get_facecolor()[:3] == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="entries"):
        plots.accuracy_bars(["a", "b"], {"x": [(1, 2)]}, ax=ax1)
    with pytest.raises(ValueError, match="mark_series"):
        plots.accuracy_bars(["a"], {"x": [(1, 2)]}, marks=[0.5], mark_series="y", ax=ax1)


def test_hbar_accuracies_rows_intervals_refs_hatching_and_breaks():
    from physlm.claims import wilson

    ax = plots.hbar_accuracies(
        ["a", "b", "c"],
        {"ours": [(0, 10), (10, 10), (5, 10)], "demo": [(2, 10), None, (1, 10)]},
        refs=[0.5, None, 0.9],
        hatched=["demo"],
        breaks=[2],
        xlabel="accuracy on P_test",
    )
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.0, 1.0, 0.5, 0.2, 0.1]  # the gap leaves no bar
    assert [p.get_hatch() for p in ax.patches] == [None, None, None, "//", "//"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_ylim() == (2.5, -0.5)  # first label on top
    segs = ax.containers[1].lines[2][0].get_segments()  # the first series' error bars
    assert segs[0][0][0] == 0.0  # k = 0: the interval starts at 0, no negative length
    np.testing.assert_allclose([segs[2][0][0], segs[2][1][0]], wilson(5, 10))
    ticks = [c for c in ax.collections if c.get_label() == "chance"]
    assert len(ticks) == 1 and ticks[0].get_segments()[0][0][0] == 0.5  # one legend entry
    assert any(line.get_ydata()[0] == 1.5 for line in ax.get_lines())  # the break above "c"
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_legend() is None  # own figure: legend below
    names = {t.get_text() for t in ax.figure.legends[0].get_texts()}
    assert names == {"ours", "demo", "chance"}
    _, ax1 = plt.subplots()
    plots.hbar_accuracies(["x"], {"s": [(1, 2)]}, ax=ax1)
    assert ax1.get_legend() is not None  # caller's axes: legend inside
    with pytest.raises(ValueError, match="entries"):
        plots.hbar_accuracies(["a", "b"], {"x": [(1, 2)]})
    with pytest.raises(ValueError, match="hatched"):
        plots.hbar_accuracies(["a"], {"x": [(1, 2)]}, hatched=["y"])
    with pytest.raises(ValueError, match="breaks"):
        plots.hbar_accuracies(["a"], {"x": [(1, 2)]}, breaks=[1])
