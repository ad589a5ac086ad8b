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
    {"params": 2e5, "bits": 3.9e5, "series": "gpt2"},
    {"params": 1e6, "bits": 2.1e6, "series": "gpt2"},
    {"params": 1e6, "bits": 1.4e6, "series": "llama"},
]


def test_bits_vs_params_axes_points_and_guides():
    ax = plots.bits_vs_params(ROWS)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # One scatter per series, in first-seen order, holding exactly its points.
    offsets = [c.get_offsets() for c in ax.collections]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gpt2", "llama"]
    np.testing.assert_allclose(offsets[0], [[2e5, 3.9e5], [1e6, 2.1e6]])
    np.testing.assert_allclose(offsets[1], [[1e6, 1.4e6]])
    # Guides are the lines bits = r * params for r = 2, 1, 0.5.
    ratios = sorted(
        {round(float(np.mean(line.get_ydata() / line.get_xdata())), 6) for line in ax.get_lines()}
    )
    assert ratios == [0.5, 1.0, 2.0]


def test_bits_vs_params_accepts_a_dataframe_and_linear_y():
    pd = pytest.importorskip("pandas")
    ax = plots.bits_vs_params(pd.DataFrame(ROWS), logy=False, series=None, ref_bits_per_param=(2,))
    assert ax.get_yscale() == "linear"
    assert len(ax.get_lines()) == 1 and len(ax.collections) == 1


def test_bits_vs_params_rejects_bad_input():
    with pytest.raises(ValueError, match="missing"):
        plots.bits_vs_params([{"params": 1.0}])
    with pytest.raises(ValueError, match="positive"):
        plots.bits_vs_params([{"params": 0.0, "bits": 1.0, "series": "a"}])
    with pytest.raises(ValueError, match="at least one"):
        plots.bits_vs_params([])
