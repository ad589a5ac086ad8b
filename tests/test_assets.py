"""Offline assets: MathJax is staged from the pinned install into the book, whole or not at all."""

import json

import pytest

from physlm import assets


def _fake_install(home, version=assets.MATHJAX_VERSION):
    es5 = home / "node_modules" / "mathjax" / "es5"
    for part in assets._PARTS:
        target = es5 / part
        if part.endswith(".js"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("// mathjax")
        else:
            target.mkdir(parents=True, exist_ok=True)
            (target / "piece.js").write_text("// part")
    (es5 / "sre").mkdir()
    (es5 / "sre" / "big.js").write_text("// not needed offline")
    pkg = home / "node_modules" / "mathjax" / "package.json"
    pkg.write_text(json.dumps({"version": version}))
    return es5


def test_stage_copies_the_needed_parts_once(tmp_path, monkeypatch):
    home, root = tmp_path / "mj", tmp_path / "repo"
    _fake_install(home)
    monkeypatch.setenv(assets.MATHJAX_ENV, str(home))
    dest = assets.stage_mathjax(root)
    assert dest == root / "_static" / "mathjax"
    assert (dest / "tex-chtml.js").read_text() == "// mathjax"
    assert (dest / "output" / "chtml" / "piece.js").is_file()
    assert not (dest / "sre").exists()
    (dest / "tex-chtml.js").write_text("kept")
    assets.stage_mathjax(root)  # same version already staged: nothing copied again
    assert (dest / "tex-chtml.js").read_text() == "kept"
    assert not list(dest.parent.glob(".mathjax.tmp"))


def test_stage_refuses_a_missing_or_other_version(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.MATHJAX_ENV, str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="python -m physlm assets"):
        assets.stage_mathjax(tmp_path / "repo")
    _fake_install(tmp_path / "old", version="2.7.9")
    monkeypatch.setenv(assets.MATHJAX_ENV, str(tmp_path / "old"))
    with pytest.raises(FileNotFoundError, match="found 2.7.9"):
        assets.stage_mathjax(tmp_path / "repo")


def test_install_is_a_no_op_when_the_pin_is_there(tmp_path, monkeypatch):
    home = tmp_path / "mj"
    es5 = _fake_install(home)
    monkeypatch.setattr(assets.shutil, "which", lambda _: None)  # npm would not even be asked
    assert assets.install_mathjax(home) == es5


def test_install_without_npm_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(assets.shutil, "which", lambda _: None)
    with pytest.raises(FileNotFoundError, match="npm is needed once"):
        assets.install_mathjax(tmp_path / "mj")


def test_book_config_points_mathjax_at_the_staged_copy():
    from physlm.book import repo_root

    config = (repo_root() / "_config.yml").read_text()
    assert "mathjax_path: mathjax/tex-chtml.js" in config
    assert "cdn" not in config.lower()
