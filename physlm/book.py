"""The book pipeline: execute chapters with papermill, build the scorecard, render the HTML.

``notebooks/X.py`` (jupytext py:percent) is executed by papermill with ``-p scale S`` and the
kernel's working directory at the repository root, then written atomically to
``book/parts/X.ipynb`` with a stamp in its metadata (source sha256, scale, wall time) so that a
test can prove each published chapter came from the current source. The scorecard page is
regenerated from the claims ledgers stored in those notebooks; Jupyter Book only renders.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat

from physlm.claims import VERDICTS, Ledger
from physlm.scales import SCALES

STAMP_KEY = "physlm"
"""Notebook metadata key of the provenance stamp."""

KERNEL = "python3"
_TITLE = re.compile(r"^#\s+\S")
_SCALE_PARAM = re.compile(r"^scale\s*=", re.MULTILINE)


# -- locations ---------------------------------------------------------------------------------


def _is_root(path: Path) -> bool:
    return (path / "_toc.yml").is_file() and (path / "notebooks").is_dir()


def repo_root() -> Path:
    """The repository root: the package's parent in a checkout, else the nearest ancestor of
    the working directory that holds ``_toc.yml`` and ``notebooks/``."""
    here = Path(__file__).resolve().parent.parent
    if _is_root(here):
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if _is_root(candidate):
            return candidate
    raise FileNotFoundError(
        "cannot find the repository root (a folder with _toc.yml and notebooks/); "
        "run from inside the physlm checkout"
    )


def check_scale(scale: str) -> str:
    """Return ``scale`` if it names a known scale, else raise a ValueError listing them."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    return scale


def chapter_names(root: Path) -> list[str]:
    """Chapter sources present in ``notebooks/``, sorted (``partN_<slug>``)."""
    return sorted(p.stem for p in (root / "notebooks").glob("*.py") if not p.name.startswith("_"))


def source_path(root: Path, name: str) -> Path:
    return root / "notebooks" / f"{name}.py"


def published_path(root: Path, name: str) -> Path:
    return root / "book" / "parts" / f"{name}.ipynb"


def check_chapter(root: Path, name: str) -> str:
    """Return ``name`` if ``notebooks/<name>.py`` exists, else raise listing the chapters."""
    if not source_path(root, name).is_file():
        have = ", ".join(chapter_names(root)) or "none yet"
        raise ValueError(f"chapter must be one of the sources in notebooks/ ({have}); got {name!r}")
    return name


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- notebooks ---------------------------------------------------------------------------------


def load_source(root: Path, name: str) -> nbformat.NotebookNode:
    """Read ``notebooks/<name>.py`` with jupytext and check the shape the book relies on:
    a first markdown cell with a ``# Title`` (the page title) and a ``parameters`` cell that
    sets ``scale`` (papermill injects the override right after it). The sha256 of the bytes
    read is left in ``metadata.physlm.source_sha256``."""
    import jupytext

    path = source_path(root, check_chapter(root, name))
    text = path.read_bytes()
    nb = jupytext.reads(text.decode("utf-8"), fmt="py:percent")
    nb.metadata[STAMP_KEY] = {"source_sha256": hashlib.sha256(text).hexdigest()}
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not _TITLE.match(cells[0].source.lstrip()):
        raise ValueError(f"{path.name}: the first cell must be markdown starting with '# Title'")
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1 or params[0].cell_type != "code":
        raise ValueError(f"{path.name}: need exactly one code cell tagged 'parameters'")
    if not _SCALE_PARAM.search(params[0].source):
        raise ValueError(f"{path.name}: the parameters cell must assign 'scale = ...'")
    nb.metadata.setdefault(
        "kernelspec", {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    )
    return nb


def write_atomic(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook so that readers only ever see the old or the new complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ipynb.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_stamp(path: Path) -> dict[str, Any]:
    """The provenance stamp of an executed chapter (empty if it has none)."""
    nb = nbformat.read(path, as_version=4)
    return dict(nb.metadata.get(STAMP_KEY, {}))


READER_TAGS = ("show-input", "hide-input", "remove-input", "hide-cell", "remove-cell")
"""Jupyter Book's display tags; a cell that carries one keeps it."""


def _reader_tags(nb: nbformat.NotebookNode) -> None:
    """Code is hidden by default on the rendered page (a toggle shows it): every code cell gets
    ``hide-input`` unless its source asks otherwise (``show-input`` for a cell that teaches);
    papermill's injected-parameters cell is removed from the page."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags:
            tags.append("remove-cell")
        elif not any(t in tags for t in READER_TAGS):
            tags.append("hide-input")


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _strip_widgets(nb: nbformat.NotebookNode) -> None:
    """Drop live widget state: the published edition is static (each explorer has a static
    stand-in), and widget state would make the rendered page load scripts from a CDN."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                data.setdefault("text/plain", "(interactive widget: run the notebook to use it)")


def _scrub_paths(nb: nbformat.NotebookNode, replacements: dict[str, str]) -> None:
    """Replace machine-specific absolute paths in text outputs and papermill metadata."""

    def fix(text: str) -> str:
        for old, new in replacements.items():
            text = text.replace(old, new)
        return text

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = fix(out["text"])
            elif out.get("output_type") == "error":
                out["evalue"] = fix(out["evalue"])
                out["traceback"] = [fix(t) for t in out["traceback"]]
            elif "text/plain" in out.get("data", {}):
                out["data"]["text/plain"] = fix(out["data"]["text/plain"])


@contextlib.contextmanager
def _run_log() -> Iterator[Path]:
    """A fresh file the run cache notes every run it serves in, for the kernel and its workers."""
    from physlm.runs import RUN_LOG_ENV

    old = os.environ.get(RUN_LOG_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.log"
        path.touch()
        os.environ[RUN_LOG_ENV] = str(path)
        try:
            yield path
        finally:
            if old is None:
                os.environ.pop(RUN_LOG_ENV, None)
            else:
                os.environ[RUN_LOG_ENV] = old


def _cache_use(log: Path, since: float | None = None) -> dict[str, int]:
    """Distinct runs trained and loaded during one execution; with ``since`` (the start of a
    whole-book build), runs that an earlier chapter of the same build trained are counted apart
    (``runs_from_build``), since a build from an empty cache trains them once for both."""
    seen: dict[str, set[str]] = {"trained": set(), "loaded": set(), "from_build": set()}
    for line in log.read_text(encoding="utf-8").splitlines():
        how, _, rest = line.partition(" ")
        key, _, finished = rest.partition(" ")
        if how == "loaded" and since is not None and finished and float(finished) >= since:
            how = "from_build"
        if how in seen:
            seen[how].add(key)
    seen["loaded"] -= seen["trained"]
    seen["from_build"] -= seen["trained"] | seen["loaded"]
    return {f"runs_{how}": len(keys) for how, keys in seen.items()}


@contextlib.contextmanager
def _pythonpath(root: Path) -> Iterator[None]:
    """Let the kernel import the checkout's ``physlm`` even when it is not installed."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


class ChapterFailed(RuntimeError):
    """A chapter raised during execution; the published notebook was left untouched."""


class BuildFailed(RuntimeError):
    """``jupyter-book build`` reported warnings or errors."""


def execute_chapter(
    name: str,
    scale: str,
    *,
    root: Path | None = None,
    progress: bool = True,
    log_output: bool = False,
    build_start: float | None = None,
) -> Path:
    """Execute ``notebooks/<name>.py`` at ``scale`` and publish ``book/parts/<name>.ipynb``.

    papermill writes its working copy to ``_build/chapters/`` (kept there for inspection when
    a cell fails); only a complete run replaces the published chapter. ``build_start`` (a
    ``time.time()``) marks a whole-book build: runs trained since then count as cold.
    """
    import papermill as pm

    check_scale(scale)
    root = root or repo_root()
    nb = load_source(root, name)
    source_sha = nb.metadata.pop(STAMP_KEY)["source_sha256"]  # of the bytes that ran
    work = root / "_build" / "chapters" / f"{name}.ipynb"
    work.parent.mkdir(parents=True, exist_ok=True)
    dest = published_path(root, name)
    try:
        previous = read_stamp(dest) if dest.is_file() else {}
    except (OSError, ValueError):  # an unreadable edition has no cold time to keep
        previous = {}
    start = time.perf_counter()
    try:
        with _pythonpath(root), _run_log() as log:
            pm.execute_notebook(
                nb,
                str(work),
                parameters={"scale": scale},
                kernel_name=KERNEL,
                language="python",
                cwd=str(root),
                progress_bar=progress,
                log_output=log_output,
            )
            use = _cache_use(log, build_start)
    except pm.PapermillExecutionError as exc:
        rel = work.relative_to(root)
        raise ChapterFailed(
            f"chapter {name} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
            f"the executed notebook is kept at {rel}"
        ) from exc
    wall = time.perf_counter() - start

    out = nbformat.read(work, as_version=4)
    _scrub_paths(out, {str(root): ".", sys.prefix: "<python>"})
    _strip_widgets(out)
    _reader_tags(out)
    papermill_meta = out.metadata.get("papermill", {})
    papermill_meta["input_path"] = f"notebooks/{name}.py"
    papermill_meta["output_path"] = f"book/parts/{name}.ipynb"
    out.metadata[STAMP_KEY] = {
        "source": f"notebooks/{name}.py",
        "source_sha256": source_sha,
        "scale": scale,
        "wall_time_s": round(wall, 1),
        **use,
    }
    # A cold execution trains every run it uses (or finds it trained earlier in the same build
    # from an empty cache); its time is the one the book reports. A warm rebuild keeps the last
    # cold time of the same source and scale.
    if (use["runs_trained"] or use["runs_from_build"]) and not use["runs_loaded"]:
        out.metadata[STAMP_KEY]["cold_wall_time_s"] = round(wall, 1)
    elif (
        "cold_wall_time_s" in previous
        and previous.get("scale") == scale
        and previous.get("source_sha256") == source_sha
    ):
        out.metadata[STAMP_KEY]["cold_wall_time_s"] = previous["cold_wall_time_s"]
    write_atomic(out, dest)
    return dest


# -- scorecard ---------------------------------------------------------------------------------


def ledgers_in(nb: nbformat.NotebookNode) -> list[Ledger]:
    """Every claims ledger displayed in an executed notebook, in cell order."""
    found: list[Ledger] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            found.extend(Ledger.from_outputs(cell.get("outputs", [])))
    return found


def notebook_title(nb: nbformat.NotebookNode, default: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if _TITLE.match(line):
                    return line.lstrip("#").strip()
    return default


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _provenance(root: Path, name: str, stamp: dict[str, Any], scale: str) -> str:
    """Where a chapter's numbers come from, with its last cold-cache execution time."""
    text = [f"Chapter {{doc}}`parts/{name}`, executed at scale `{scale}`"]
    if "cold_wall_time_s" in stamp:
        text.append(f"from an empty run cache in {_minutes(float(stamp['cold_wall_time_s']))}")
        if stamp.get("runs_loaded"):
            text.append(
                f"(last executed with {stamp['runs_loaded']} cached runs, "
                f"in {_minutes(float(stamp['wall_time_s']))})"
            )
        elif stamp.get("runs_from_build"):
            text.append(
                f"(in a whole-book build, reusing {stamp['runs_from_build']} runs that an "
                "earlier chapter trained)"
            )
    elif "wall_time_s" in stamp:
        warm = stamp.get("runs_loaded")
        text.append(
            f"in {_minutes(float(stamp['wall_time_s']))}"
            + (f", with {warm} runs from the cache (no cold-cache time recorded)" if warm else "")
        )
    src = source_path(root, name)
    if stamp.get("source_sha256") and src.is_file() and stamp["source_sha256"] != sha256_file(src):
        text.append("(**its source has changed since; re-run the chapter**)")
    return " ".join(text) + "."


def scorecard_markdown(root: Path) -> str:
    """The scorecard page: a summary table of the papers' claims, then each chapter's ledger
    (rules, intervals, verdict badges; the book's own demonstrations apart and not tallied)."""
    parts = sorted((root / "book" / "parts").glob("*.ipynb"))
    head = [
        "# Scorecard",
        "",
        "Every chapter ends with a claims ledger: the paper's number, ours, the declared rule "
        "that turns our measurement into a verdict, and the verdict. This page collects those "
        "ledgers from the executed chapters. It is generated by `python -m physlm render`; "
        "edit the chapters, not this page.",
        "",
        "Verdicts: **reproduced** (the rule's target is met, beyond the sampling noise where "
        "the claim is a comparison), **partly** (the direction holds but the size falls short "
        "of the target), **not at this scale** (the effect did not show, the difference is "
        "inside the noise, or a precondition failed: the positive control did not work or the "
        "run's design cannot test the claim), **contradicted** (the measurement went the other "
        "way beyond the noise). Accuracies are printed as value [95% Wilson interval], n.",
        "",
    ]
    if not parts:
        return "\n".join([*head, "No chapter has been executed yet.", ""])

    summary = [
        "| Chapter | Scale | " + " | ".join(VERDICTS) + " | paper claims | our demonstrations |",
        "|---|---|" + "---|" * (len(VERDICTS) + 2),
    ]
    totals = dict.fromkeys(VERDICTS, 0)
    total_demos = 0
    sections: list[str] = []
    for path in parts:
        name = path.stem
        nb = nbformat.read(path, as_version=4)
        stamp = dict(nb.metadata.get(STAMP_KEY, {}))
        title = notebook_title(nb, name)
        ledgers = ledgers_in(nb)
        scale = stamp.get("scale") or (ledgers[0].scale if ledgers else "?")
        counts = dict.fromkeys(VERDICTS, 0)
        demos = 0
        for led in ledgers:
            demos += len(led.demos)
            for verdict, n in led.counts().items():
                counts[verdict] += n
        for v in VERDICTS:
            totals[v] += counts[v]
        total_demos += demos
        summary.append(
            f"| {{doc}}`parts/{name}` | `{scale}` | "
            + " | ".join(str(counts[v]) for v in VERDICTS)
            + f" | {sum(counts.values())} | {demos} |"
        )
        sections += [f"## {title}", "", _provenance(root, name, stamp, scale), ""]
        if not ledgers:
            sections += ["This chapter has no claims ledger yet.", ""]
        for led in ledgers:
            sections += [led.to_markdown(badges=True)]
    summary.append(
        "| **total** | | "
        + " | ".join(f"**{totals[v]}**" for v in VERDICTS)
        + f" | **{sum(totals.values())}** | {total_demos} |"
    )
    return "\n".join([*head, *summary, "", *sections]).rstrip() + "\n"


def write_scorecard(root: Path | None = None) -> Path:
    root = root or repo_root()
    path = root / "book" / "scorecard.md"
    text = scorecard_markdown(root)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        fd, tmp = tempfile.mkstemp(prefix=".scorecard.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    return path


# -- HTML ----------------------------------------------------------------------------------------


def toc_files(root: Path) -> list[str]:
    """Every ``file:``/``root:`` entry of ``_toc.yml``, in order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def missing_toc_files(root: Path) -> list[str]:
    suffixes = ("", ".md", ".ipynb", ".rst")
    return [f for f in toc_files(root) if not any((root / f"{f}{s}").is_file() for s in suffixes)]


def unlisted_chapters(root: Path) -> list[str]:
    """Executed chapters in ``book/parts/`` that ``_toc.yml`` does not list (the build would
    skip them and the scorecard's links to them would break)."""
    listed = set(toc_files(root))
    parts = sorted((root / "book" / "parts").glob("*.ipynb"))
    return [f"book/parts/{p.stem}" for p in parts if f"book/parts/{p.stem}" not in listed]


def jupyter_book_command() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise FileNotFoundError(
        "jupyter-book is not installed; install the 'book' extras (jupyter-book>=1.0.4.post1,<2)"
    )


def build_html(
    root: Path | None = None, *, path_output: Path | None = None, extra: Sequence[str] = ()
) -> Path:
    """Render the book from the stored notebooks with warnings as errors; return index.html."""
    root = root or repo_root()
    missing = missing_toc_files(root)
    if missing:
        hints = "; ".join(
            f"{m} (python -m physlm chapter {Path(m).name} --scale cpu)"
            if m.startswith("book/parts/")
            else m
            for m in missing
        )
        raise FileNotFoundError(f"_toc.yml lists pages that do not exist: {hints}")
    unlisted = unlisted_chapters(root)
    if unlisted:
        raise ValueError(f"add these executed chapters to _toc.yml: {', '.join(unlisted)}")
    from physlm.assets import stage_mathjax

    stage_mathjax(root)
    cmd = [*jupyter_book_command(), "build", str(root), "-W", "-n", "--keep-going"]
    if path_output is not None:
        cmd += ["--path-output", str(path_output)]
    cmd += list(extra)
    proc = subprocess.run(cmd, cwd=root, check=False)
    if proc.returncode != 0:
        raise BuildFailed(
            f"jupyter-book build failed (exit {proc.returncode}); see the warnings above"
        )
    return (path_output or root) / "_build" / "html" / "index.html"
