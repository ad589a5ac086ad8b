"""The rendered book in a real browser (headless Chromium, network cut off).

Builds the book from the committed chapters, opens every page and fails on what a reader would
see as broken: raw TeX (math not typeset), an image that does not load or is not sharp at 2x,
a text output wider than its box, a broken internal link, an error or stderr output, a widget
placeholder. Screenshots of every page (tiles of 1280 x 1600 from the top) and a report (page
height, share of it taken by visible code) go to ``_build/screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from physlm import book

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = REPO / "_build" / "screenshots"
TILE = 1600  # px per screenshot: the window height

# Runs in the page once MathJax is done; returns what the test judges.
PAGE_PROBE = r"""
const visible = (el) => el.offsetParent !== null && el.getClientRects().length > 0;
const texLeft = [];
const walker = document.createTreeWalker(document.querySelector("main") || document.body,
                                         NodeFilter.SHOW_TEXT);
const tex = /(\$\$|\\\(|\\\[|\\(frac|log|sum|mathrm|text|cdot|left|right)\b)/;
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const p = n.parentElement;
  if (!p || p.closest("pre, code, script, style, mjx-container, .cell_input") || !visible(p)) {
    continue;
  }
  if (tex.test(n.textContent)) texLeft.push(n.textContent.trim().slice(0, 80));
}
const brokenImages = [...document.images].filter((i) => !(i.complete && i.naturalWidth > 0))
  .map((i) => i.getAttribute("src"));
const lowRes = [...document.querySelectorAll(".cell_output img")]
  .filter((i) => visible(i) && i.naturalWidth > 0 && i.naturalWidth < 1.5 * i.clientWidth)
  .map((i) => `${i.getAttribute("src")} ${i.naturalWidth}px shown at ${i.clientWidth}px`);
const clipped = [...document.querySelectorAll(".cell_output, .cell_output *")]
  .filter((e) => visible(e) && ["auto", "scroll", "hidden"].includes(getComputedStyle(e).overflowX)
          && e.scrollWidth > e.clientWidth + 1)
  .map((e) => e.textContent.trim().slice(0, 80));
const errors = [...document.querySelectorAll(".output.stderr, .output.error, .output.traceback")]
  .filter(visible).map((e) => e.textContent.trim().slice(0, 120));
const widgets = [...document.querySelectorAll(".cell_output")].filter(visible)
  .map((e) => e.textContent)
  .filter((t) => /(VBox|HBox|interactive)\(|Loading widget|jupyter-widgets/.test(t))
  .map((t) => t.trim().slice(0, 80));
const links = [...document.querySelectorAll("a[href]")].map((a) => a.href);
const anchors = [...document.querySelectorAll("[id]")].map((e) => e.id);
const height = document.documentElement.scrollHeight;
const code = [...document.querySelectorAll(".cell_input")]
  .filter((e) => visible(e) && !e.closest("details:not([open])"))
  .reduce((s, e) => s + e.getBoundingClientRect().height, 0);
const figures = document.querySelectorAll(".cell_output img, figure img").length;
return {texLeft, brokenImages, lowRes, clipped, errors, widgets, links, anchors, height, code,
        figures, mathjax: !!(window.MathJax && window.MathJax.startup)};
"""


def _pages(html_root: Path) -> list[Path]:
    skip = {"genindex.html", "search.html", "index.html"}  # index.html only redirects
    return sorted(
        p for p in html_root.rglob("*.html") if p.name not in skip and "_static" not in p.parts
    )


@pytest.fixture(scope="module")
def built() -> Path:
    if not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()):
        if os.environ.get("PHYSLM_SKIP_BROWSER") == "1":
            pytest.skip("PHYSLM_SKIP_BROWSER=1 and no chromium/chromedriver here")
        pytest.fail("headless Chromium is missing: `make browser` installs chromium-driver")
    if book.missing_toc_files(REPO):
        pytest.skip("some chapters are not published yet")
    index = book.build_html(REPO)
    return index.parent


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1600",
        "--force-device-scale-factor=1",
        "--allow-file-access-from-files",
    ):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    # The network is cut off: anything not served by the book itself fails to load.
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*"]})
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _open(drv, page: Path) -> dict:
    drv.get(page.as_uri())
    # Wait for MathJax to finish typesetting (when the page loads it).
    drv.set_script_timeout(60)
    drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const mj = window.MathJax;"
        "if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(() => done(1)); }"
        "else { setTimeout(() => done(0), 500); }"
    )
    return drv.execute_script(PAGE_PROBE)


def _broken_links(page: Path, html_root: Path, links: list[str], anchors: list[str]) -> list[str]:
    bad = []
    for href in links:
        url = urlparse(href)
        if url.scheme != "file":
            continue  # external links are not the book's to serve
        target = Path(unquote(url.path))
        if html_root not in target.parents and target != html_root:
            continue
        if not target.exists():
            bad.append(href)
        elif url.fragment and target == page and url.fragment not in anchors:
            bad.append(href)
    return bad


def test_every_page_reads_cleanly_offline(built, driver):
    SHOTS.mkdir(parents=True, exist_ok=True)
    report, problems = {}, []
    for page in _pages(built):
        name = page.relative_to(built).as_posix()
        found = _open(driver, page)
        height = int(found["height"])
        stem = name.replace("/", "__").removesuffix(".html")
        for old in SHOTS.glob(f"{stem}*.png"):
            old.unlink()
        for i, top in enumerate(range(0, height, TILE)):  # tiles: a browser caps one capture
            driver.execute_script(f"window.scrollTo(0, {top})")
            driver.save_screenshot(str(SHOTS / f"{stem}-{i + 1:02d}.png"))
        driver.execute_script("window.scrollTo(0, 0)")
        report[name] = {
            "height_px": height,
            "code_share": round(found["code"] / max(height, 1), 3),
            "figures": found["figures"],
        }
        checks = {
            "raw TeX": found["texLeft"],
            "images that do not load": found["brokenImages"],
            "figures not sharp on a high-density screen": found["lowRes"],
            "clipped text outputs": found["clipped"],
            "error or stderr outputs": found["errors"],
            "widget placeholders": found["widgets"],
            "broken internal links": _broken_links(page, built, found["links"], found["anchors"]),
        }
        if 'class="math' in page.read_text(encoding="utf-8") and not found["mathjax"]:
            checks["MathJax did not load"] = ["(the page has display math)"]
        problems += [f"{name}: {what}: {items[:3]}" for what, items in checks.items() if items]
    (SHOTS / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    assert report, "no page was rendered"
    assert not problems, "\n".join(problems)
