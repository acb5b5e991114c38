"""The rendered book in a real browser: headless Chromium, no network, every chapter page visited.

Fails on a missing page, a broken image, an error traceback in a cell output, or a JavaScript error; saves a
screenshot of each page under _build/screenshots/. Skips (saying why) where Chromium or Playwright is absent;
scripts/run_tests.sh installs both where it can, as CI does.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'); the browser check cannot run here")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the HTML from the chapters' stored outputs (no execution) into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb), "build", str(ROOT), "--toc", "book/_toc.yml", "--config", "_config.yml",
                    "--path-output", str(out), "-W", "--keep-going"], check=True, capture_output=True, cwd=ROOT)
    return out / "_build" / "html"


def chapter_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


@pytest.mark.slow
def test_every_chapter_renders_cleanly_offline(site):
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (PyPI 'playwright') is not installed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                   else route.abort())  # no network: the page must work from the built files alone
        page.on("pageerror", lambda err: problems.append(f"{page.url}: JavaScript error: {err}"))
        for chapter in chapter_pages():
            html = site / f"{chapter}.html"
            if not html.is_file():
                problems.append(f"missing page: {html.relative_to(site)}")
                continue
            page.goto(html.as_uri(), wait_until="load")
            broken = page.eval_on_selector_all(
                "img", "imgs => imgs.filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)")
            problems += [f"{chapter}: broken image {src}" for src in broken if src.startswith("file://")]
            text = page.inner_text("main") if page.query_selector("main") else page.inner_text("body")
            traceback_shown = page.query_selector(".output.error, .cell_output .traceback") is not None
            if "Traceback (most recent call last)" in text or traceback_shown:
                problems.append(f"{chapter}: an error traceback is shown")
            if not page.title():
                problems.append(f"{chapter}: page has no title")
            page.screenshot(path=str(SCREENSHOTS / f"{chapter.replace('/', '_')}.png"), full_page=True)
        browser.close()
    assert not problems, "\n".join(problems)
