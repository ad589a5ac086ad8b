"""SIGKILL a chapter's execution halfway; executing it again resumes and prints the same ledger."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from physlm.book import repo_root

ROOT = repo_root()
SCRIPT = """
import sys
from pathlib import Path
import papermill as pm
from physlm.book import KERNEL, load_source
nb = load_source(Path(sys.argv[1]), "part3_3_capacity")
pm.execute_notebook(nb, sys.argv[2], parameters={"scale": "smoke"}, kernel_name=KERNEL,
                    language="python", cwd=sys.argv[1], progress_bar=False)
"""


def _start(out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(ROOT), str(out)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _ledger(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return nb.cells[-1].outputs[-1]["data"]["text/plain"]


def test_killed_chapter_resumes_to_the_same_ledger(tmp_path):
    base = dict(
        os.environ,
        PHYSLM_FIGURES=str(tmp_path / "figures"),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    ref_env = dict(base, PHYSLM_RUNS=str(tmp_path / "ref"))
    assert _start(tmp_path / "ref.ipynb", ref_env).wait(timeout=600) == 0

    runs = tmp_path / "cut"
    env = dict(base, PHYSLM_RUNS=str(runs))
    victim = _start(tmp_path / "cut.ipynb", env)
    interrupted = False
    deadline = time.time() + 300
    while time.time() < deadline and victim.poll() is None:
        in_progress = [
            d for d in runs.glob("*") if (d / "checkpoints").exists() and not (d / "DONE").exists()
        ]
        if in_progress:
            os.killpg(victim.pid, signal.SIGKILL)  # the kernel and its workers too
            interrupted = True
            break
        time.sleep(0.01)
    victim.wait(timeout=60)
    assert interrupted, "no run was caught in progress"

    assert _start(tmp_path / "cut.ipynb", env).wait(timeout=600) == 0
    assert _ledger(tmp_path / "cut.ipynb") == _ledger(tmp_path / "ref.ipynb")
