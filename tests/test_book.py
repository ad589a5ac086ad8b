"""The book pipeline: provenance stamps, atomic writes, the scorecard, and the real HTML build."""

import hashlib
import os
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter

from physlm import book
from physlm.claims import Acc, AtLeast, AtMost, Ledger, Num, WithinFactor

REPO = Path(__file__).resolve().parents[1]

CHAPTER = textwrap.dedent("""\
    # %% [markdown]
    # # A tiny chapter
    #
    # Checks the pipeline.

    # %% tags=["parameters"]
    scale = "smoke"

    # %%
    import os
    print("cwd", os.getcwd())
    print("scale", scale)

    # %%
    from physlm.claims import AtLeast, Ledger, Num
    ledger = Ledger("tiny", scale)
    ledger.score("one plus one", 2, "Result 0", AtLeast(2, 1), Num(1 + 1))
    ledger
    """)


def _root(tmp_path: Path, source: str = CHAPTER, name: str = "tiny") -> Path:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "book" / "parts").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (root / "notebooks" / f"{name}.py").write_text(source)
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_executed(root: Path, name: str, ledger: Ledger, stamp: dict | None) -> Path:
    data, metadata = DisplayFormatter().format(ledger)
    out = nbformat.v4.new_output("execute_result", data=data, metadata=metadata, execution_count=3)
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(f"# Title of {name}\n\nText."),
            nbformat.v4.new_code_cell("ledger", outputs=[out]),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    if stamp is not None:
        nb.metadata[book.STAMP_KEY] = stamp
    path = book.published_path(root, name)
    nbformat.write(nb, path)
    return path


# -- the published edition ------------------------------------------------------------------------


def test_published_chapters_are_current():
    """Every book/parts/X.ipynb was executed by `physlm chapter` from the current notebooks/X.py."""
    parts = sorted((REPO / "book" / "parts").glob("*.ipynb"))
    if not parts:
        pytest.skip("no chapter has been published yet")
    stale = []
    for path in parts:
        src = REPO / "notebooks" / f"{path.stem}.py"
        stamp = book.read_stamp(path)
        assert src.is_file(), f"{path.name} has no source notebooks/{src.name}"
        assert stamp.get("scale") in book.SCALES, f"{path.name} has no provenance stamp"
        if stamp.get("source_sha256") != _sha(src):
            stale.append(path.stem)
    assert not stale, f"re-run: python -m physlm chapter NAME --scale S for {stale}"


def test_committed_scorecard_is_current():
    expected = book.scorecard_markdown(REPO)
    assert (REPO / "book" / "scorecard.md").read_text(encoding="utf-8") == expected, (
        "book/scorecard.md is stale: run python -m physlm render"
    )


def test_repo_root_is_the_checkout():
    assert book.repo_root() == REPO


# -- execution and the stamp ----------------------------------------------------------------------


def test_execute_chapter_stamps_source_hash_scale_and_time(tmp_path, monkeypatch):
    root = _root(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports physlm from this checkout
    out = book.execute_chapter("tiny", "cpu", root=root, progress=False)
    assert out == root / "book" / "parts" / "tiny.ipynb"
    stamp = book.read_stamp(out)
    assert stamp["source_sha256"] == _sha(root / "notebooks" / "tiny.py")
    assert stamp["scale"] == "cpu"
    assert stamp["source"] == "notebooks/tiny.py"
    assert 0 < stamp["wall_time_s"] < 120

    nb = nbformat.read(out, as_version=4)
    streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "scale cpu" in streams  # papermill injected the parameter
    assert "cwd .\n" in streams  # the kernel ran at the root, printed without the machine path
    assert str(root) not in out.read_text()
    assert nb.metadata.papermill["input_path"] == "notebooks/tiny.py"
    (led,) = book.ledgers_in(nb)
    assert led.scale == "cpu" and led.claims[0].our_value == "2"
    assert not list(out.parent.glob(".*tmp"))


def test_cold_time_is_kept_across_warm_rebuilds(tmp_path, monkeypatch):
    # The chapter tells the run cache's log what it did, as get_or_train would.
    source = CHAPTER + textwrap.dedent("""\

        # %%
        import pathlib
        verb, _, when = pathlib.Path("how.txt").read_text().partition(" ")
        when = f" {when}" if when else ""
        with open(os.environ["PHYSLM_RUN_LOG"], "a") as f:
            f.write(f"{verb} run-a{when}\\n{verb} run-b{when}\\n")
        """)
    root = _root(tmp_path, source)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (root / "how.txt").write_text("trained")
    out = book.execute_chapter("tiny", "cpu", root=root, progress=False)
    cold = book.read_stamp(out)
    assert cold["runs_trained"] == 2 and cold["runs_loaded"] == 0
    assert cold["cold_wall_time_s"] == cold["wall_time_s"]
    (root / "how.txt").write_text("loaded")
    warm = book.read_stamp(book.execute_chapter("tiny", "cpu", root=root, progress=False))
    assert warm["runs_trained"] == 0 and warm["runs_loaded"] == 2
    assert warm["cold_wall_time_s"] == cold["cold_wall_time_s"]  # the cold time is reported
    # At another scale the old cold time says nothing.
    other = book.read_stamp(book.execute_chapter("tiny", "smoke", root=root, progress=False))
    assert "cold_wall_time_s" not in other
    # In a whole-book build, runs an earlier chapter trained since the build began count as cold.
    import time

    (root / "how.txt").write_text(f"loaded {time.time() + 1:.3f}")
    built = book.read_stamp(
        book.execute_chapter("tiny", "smoke", root=root, progress=False, build_start=time.time())
    )
    assert built["runs_from_build"] == 2 and built["runs_loaded"] == 0
    assert built["cold_wall_time_s"] == built["wall_time_s"]


def test_failed_chapter_keeps_the_published_one(tmp_path, monkeypatch):
    root = _root(tmp_path, CHAPTER + "\n# %%\nraise RuntimeError('boom')\n")
    published = book.published_path(root, "tiny")
    published.write_text("old edition")
    with pytest.raises(book.ChapterFailed, match="boom"):
        book.execute_chapter("tiny", "smoke", root=root, progress=False)
    assert published.read_text() == "old edition"
    assert (root / "_build" / "chapters" / "tiny.ipynb").is_file()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('# %%\nscale = "smoke"\n', "first cell must be markdown"),
        ("# %% [markdown]\n# # Title\n\n# %%\nx = 1\n", "tagged 'parameters'"),
        ('# %% [markdown]\n# # Title\n\n# %% tags=["parameters"]\nsteps = 1\n', "scale = "),
    ],
)
def test_load_source_checks_the_chapter_shape(tmp_path, source, message):
    root = _root(tmp_path, source)
    with pytest.raises(ValueError, match=message):
        book.load_source(root, "tiny")


def test_bad_scale_and_unknown_chapter_fail_before_running(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(ValueError, match="smoke, cpu, gpu, paper"):
        book.execute_chapter("tiny", "huge", root=root)
    with pytest.raises(ValueError, match=r"\(tiny\)"):
        book.execute_chapter("nope", "smoke", root=root)


def test_write_atomic_replaces_or_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.ipynb"
    first = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# One")])
    book.write_atomic(first, path)
    assert nbformat.read(path, as_version=4).cells[0].source == "# One"

    def broken_write(nb, fh, **kw):
        fh.write('{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(book.nbformat, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        book.write_atomic(nbformat.v4.new_notebook(), path)
    assert nbformat.read(path, as_version=4).cells[0].source == "# One"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ipynb"]


# -- scorecard ------------------------------------------------------------------------------------


def test_scorecard_from_fake_executed_notebooks(tmp_path):
    root = _root(tmp_path)
    (root / "notebooks" / "other.py").write_text("# changed since")
    led = Ledger("tiny", "cpu")
    led.score("claim A", 2.0, "Result 1", AtLeast(1.8, 1.0), Num(1.96))
    led.score("claim B <bos>", 1.3, "Result 5", WithinFactor(1.1, 1.6), Num(0.8), note="needs 100")
    led.score("our remedy", "works", "R9", AtLeast(0.8, 0.4), Acc(73, 100), demo=True)
    _fake_executed(
        root,
        "tiny",
        led,
        {
            "scale": "cpu",
            "wall_time_s": 20.0,
            "cold_wall_time_s": 600.0,
            "runs_loaded": 6,
            "source_sha256": _sha(root / "notebooks" / "tiny.py"),
        },
    )
    other = Ledger("other", "smoke")
    other.score("claim C", "yes", "Result 2", AtMost(0.05, 0.2), Acc(50, 100))
    _fake_executed(root, "other", other, {"scale": "smoke", "source_sha256": "0" * 64})

    md = book.scorecard_markdown(root)
    lines = md.splitlines()
    assert lines[0] == "# Scorecard"
    assert "| {doc}`parts/other` | `smoke` | 0 | 0 | 0 | 1 | 1 | 0 |" in lines
    assert "| {doc}`parts/tiny` | `cpu` | 1 | 0 | 0 | 1 | 2 | 1 |" in lines  # the demo apart
    assert "| **total** | | **1** | **0** | **0** | **2** | **3** | 1 |" in lines
    assert "## Title of tiny" in lines
    row = next(ln for ln in lines if ln.startswith("| claim B"))
    assert "claim B &lt;bos>" in row and "ratio in [1.1, 1.6]" in row  # escaped, rule shown
    assert "physlm-badge" in row and "contradicted" in row
    assert "from an empty run cache in 10 min" in md and "6 cached runs, in 20 s" in md
    # Only the chapter whose source changed is flagged.
    flagged = [ln for ln in lines if "source has changed" in ln]
    assert len(flagged) == 1 and "parts/other" in flagged[0]

    path = book.write_scorecard(root)
    assert path.read_text() == md


def test_scorecard_without_chapters(tmp_path):
    assert "No chapter has been executed yet." in book.scorecard_markdown(_root(tmp_path))


def test_toc_files_and_missing_pages(tmp_path):
    root = _root(tmp_path)
    (root / "_toc.yml").write_text(
        textwrap.dedent("""\
        format: jb-book
        root: book/intro
        parts:
          - caption: Chapters
            chapters:
              - file: book/parts/tiny
          - caption: More
            chapters:
              - file: book/reproduce
        """)
    )
    (root / "book" / "intro.md").write_text("# Intro\n")
    assert book.toc_files(root) == ["book/intro", "book/parts/tiny", "book/reproduce"]
    assert book.missing_toc_files(root) == ["book/parts/tiny", "book/reproduce"]
    with pytest.raises(FileNotFoundError, match="physlm chapter tiny"):
        book.build_html(root)
    (root / "book" / "reproduce.md").write_text("# Reproduce\n")
    nbformat.write(nbformat.v4.new_notebook(), root / "book" / "parts" / "tiny.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), root / "book" / "parts" / "extra.ipynb")
    assert book.missing_toc_files(root) == []
    assert book.unlisted_chapters(root) == ["book/parts/extra"]
    with pytest.raises(ValueError, match="add these executed chapters to _toc.yml"):
        book.build_html(root)


# -- the real build -------------------------------------------------------------------------------


def test_real_book_builds_without_warnings(tmp_path):
    """jupyter-book build -W -n on a copy of the book; chapters not yet published get stand-ins."""
    try:
        book.jupyter_book_command()
    except FileNotFoundError:
        pytest.skip("jupyter-book is not installed")
    root = tmp_path / "book_copy"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book")
    shutil.copytree(REPO / "_static", root / "_static", ignore=shutil.ignore_patterns("mathjax"))
    (root / "notebooks").mkdir()
    for missing in book.missing_toc_files(root):
        led = Ledger(Path(missing).name, "smoke")
        led.score("stand-in claim", 1, "Result 1", AtLeast(1, 0.5), Num(1))
        (root / missing).parent.mkdir(parents=True, exist_ok=True)
        _fake_executed(root, Path(missing).name, led, {"scale": "smoke"})
    book.write_scorecard(root)
    env_backup = dict(os.environ)
    index = book.build_html(root)
    assert dict(os.environ) == env_backup
    assert index.is_file()
    html = (root / "_build" / "html" / "book" / "scorecard.html").read_text()
    assert "stand-in claim" in html or not book.missing_toc_files(REPO)
    intro = (root / "_build" / "html" / "book" / "intro.html").read_text()
    assert "arXiv:2404.05405" in intro  # the bibliography rendered
    # Math and styles are served by the book itself, not a CDN.
    assert (root / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "_static/mathjax/tex-chtml.js" in intro and "cdn.jsdelivr" not in intro
    assert "physlm.css" in intro


def test_widget_state_is_stripped_from_the_published_edition():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    view = {book.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()"}
    bare = {book.WIDGET_VIEW: {"model_id": "y"}}
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "w",
            outputs=[
                nbformat.v4.new_output("display_data", data=view),
                nbformat.v4.new_output("display_data", data=bare),
            ],
        )
    )
    book._strip_widgets(nb)
    assert "widgets" not in nb.metadata
    first, second = (o["data"] for o in nb.cells[0].outputs)
    assert book.WIDGET_VIEW not in first and first["text/plain"] == "VBox()"
    assert book.WIDGET_VIEW not in second and "run the notebook" in second["text/plain"]


def test_code_is_hidden_and_the_injected_cell_removed():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("text"),
            nbformat.v4.new_code_cell("scale = 'smoke'", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("scale = 'cpu'", metadata={"tags": ["injected-parameters"]}),
            nbformat.v4.new_code_cell("train()"),
            nbformat.v4.new_code_cell("make_data()", metadata={"tags": ["show-input"]}),
        ]
    )
    book._reader_tags(nb)
    tags = [c.metadata.get("tags") for c in nb.cells]
    assert tags == [
        None,
        ["parameters", "hide-input"],
        ["injected-parameters", "remove-cell"],
        ["hide-input"],
        ["show-input"],
    ]
