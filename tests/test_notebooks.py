"""Every chapter runs end to end at `smoke` scale, and bad parameters fail with a clear message."""

import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from physlm.book import KERNEL, chapter_names, load_source, repo_root

ROOT = repo_root()
CHAPTERS = chapter_names(ROOT)


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    """Runs and figures of the test go to a temporary folder, never the repository's."""
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PHYSLM_FIGURES", str(tmp_path / "figures"))
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    return tmp_path


def execute(name: str, out: Path, **parameters) -> nbformat.NotebookNode:
    nb = load_source(ROOT, name)
    pm.execute_notebook(
        nb,
        str(out),
        parameters=parameters,
        kernel_name=KERNEL,
        language="python",
        cwd=str(ROOT),
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_runs_at_smoke_scale(name, sandbox):
    nb = execute(name, sandbox / f"{name}.ipynb", scale="smoke")
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    stderr = [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not stderr, [o.get("text", "")[:200] for o in stderr]
    ledgers = [o for c in nb.cells for o in c.get("outputs", []) if "Claims ledger" in str(o)]
    assert len(ledgers) == 1
    # The chapter closes with the summary generated from that ledger.
    assert "paper claims scored at scale" in str(nb.cells[-1].outputs)


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"scale": "huge"}, "scale must be one of"),
        ({"scale": "smoke", "people": -5}, "people (N) must be a positive int"),
        ({"scale": "smoke", "shapes": [[64, 64]]}, "too large for scale 'smoke'"),
    ],
)
def test_bad_parameters_fail_clearly(parameters, message, sandbox):
    with pytest.raises(pm.PapermillExecutionError) as err:
        execute("part3_3_capacity", sandbox / "bad.ipynb", **parameters)
    assert err.value.ename == "ValueError"
    assert message in err.value.evalue
