"""Command line: clear errors for bad scales, unknown chapters and unknown benches."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

from physlm import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["chapter", "anything"], ["book"]])
def test_bad_scale_is_refused_with_the_allowed_list(capsys, command):
    with pytest.raises(SystemExit) as exc:
        cli.main([*command, "--scale", "huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "scale must be one of smoke, cpu, gpu, paper; got 'huge'" in err


def test_unknown_chapter_lists_the_sources(capsys):
    assert cli.main(["chapter", "no_such_chapter", "--scale", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "chapter must be one of the sources in notebooks/" in err
    assert "'no_such_chapter'" in err


@pytest.fixture
def fake_benches(tmp_path, monkeypatch):
    """A stand-in physlm.bench package holding one bench, `echo`."""
    pkg_dir = tmp_path / "bench"
    pkg_dir.mkdir()
    (pkg_dir / "echo.py").write_text("def main(argv):\n    print('echo', *argv)\n    return 3\n")
    (pkg_dir / "_private.py").write_text("")
    pkg = types.ModuleType("physlm.bench")
    pkg.__path__ = [str(pkg_dir)]
    monkeypatch.setitem(sys.modules, "physlm.bench", pkg)
    yield
    sys.modules.pop("physlm.bench.echo", None)


def test_unknown_bench_lists_the_available_ones(capsys, fake_benches):
    assert cli.available_benches() == ["echo"]
    assert cli.main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "bench must be one of the modules in physlm/bench (echo); got 'nope'" in err


def test_bench_dispatches_to_main_with_its_arguments(capsys, fake_benches):
    assert cli.main(["bench", "echo", "--steps", "5"]) == 3
    assert capsys.readouterr().out == "echo --steps 5\n"


def test_python_dash_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "physlm", "chapter", "x", "--scale", "big"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "smoke, cpu, gpu, paper" in proc.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "physlm", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for sub in ("chapter", "book", "render", "bench"):
        assert sub in help_text
