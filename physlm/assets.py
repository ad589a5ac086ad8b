"""Scripts the rendered book serves itself, so that its pages work with no network.

MathJax comes from the npm registry at a pinned version into the Python environment
(``<sys.prefix>/mathjax``, or ``$PHYSLM_MATHJAX``) and is copied into the book's ``_static/``
at build time; ``_config.yml`` points Sphinx's ``mathjax_path`` there instead of a CDN.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MATHJAX_VERSION = "3.2.2"
"""The MathJax release the book is built with (Sphinx 7's default major version)."""

MATHJAX_ENV = "PHYSLM_MATHJAX"
STATIC_MATHJAX = Path("_static") / "mathjax"
"""Where the built book looks for it (relative to the repository root; ignored by git)."""

# The parts of MathJax's es5 build a TeX page loads: the combined script, the TeX extensions it
# may autoload, the CommonHTML fonts, the menu and the accessibility add-ons.
_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml", "ui", "a11y")


def mathjax_home() -> Path:
    """The npm prefix that holds (or will hold) ``node_modules/mathjax``."""
    return Path(os.environ.get(MATHJAX_ENV, Path(sys.prefix) / "mathjax"))


def mathjax_es5(home: Path | None = None) -> Path:
    return (home or mathjax_home()) / "node_modules" / "mathjax" / "es5"


def installed_version(home: Path | None = None) -> str | None:
    import json

    pkg = (home or mathjax_home()) / "node_modules" / "mathjax" / "package.json"
    if not pkg.is_file():
        return None
    return str(json.loads(pkg.read_text(encoding="utf-8")).get("version"))


def install_mathjax(home: Path | None = None) -> Path:
    """Install the pinned MathJax with npm (once); return its es5 folder."""
    home = home or mathjax_home()
    if installed_version(home) == MATHJAX_VERSION:
        return mathjax_es5(home)
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError(
            "npm is needed once to install MathJax for offline math (apt-get install npm), "
            f"or set {MATHJAX_ENV} to a folder with node_modules/mathjax {MATHJAX_VERSION}"
        )
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(home),
            f"mathjax@{MATHJAX_VERSION}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if installed_version(home) != MATHJAX_VERSION:
        raise RuntimeError(f"npm did not install mathjax {MATHJAX_VERSION} under {home}")
    return mathjax_es5(home)


def stage_mathjax(root: Path) -> Path:
    """Copy the installed MathJax into ``<root>/_static/mathjax`` for the book build."""
    version = installed_version()
    if version != MATHJAX_VERSION:
        raise FileNotFoundError(
            f"MathJax {MATHJAX_VERSION} is not installed under {mathjax_home()} (found "
            f"{version}); run `python -m physlm assets` (make does it) so math renders offline"
        )
    src, dest = mathjax_es5(), root / STATIC_MATHJAX
    stamp = dest / ".version"
    if stamp.is_file() and stamp.read_text() == version:
        return dest
    tmp = dest.with_name(".mathjax.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for part in _PARTS:
        s, d = src / part, tmp / part
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir():
            shutil.copytree(s, d)
        else:
            shutil.copy2(s, d)
    (tmp / ".version").write_text(version)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)  # a half-copied MathJax is never served
    return dest
