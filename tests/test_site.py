"""The rendered book in a real browser: headless Chromium, no network, every page of the table of contents visited.

Fails on a missing page, a page whose title is not its first heading, a broken image, an internal link to a page or
anchor that does not exist, an error traceback in a cell output, a JavaScript error, or a bibliography that lacks an
entry of book/references.bib; saves a screenshot of each page under _build/screenshots/. Skips (saying why) where
Chromium or Playwright is absent; scripts/run_tests.sh installs both where it can, as CI does.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from book_toc import toc_pages

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
    """Build the HTML from the chapters' stored outputs (no execution) into a temporary folder; warnings fail it."""
    out = tmp_path_factory.mktemp("site")
    jb = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jb), "build", str(ROOT), "--toc", "book/_toc.yml", "--config", "_config.yml",
                            "--path-output", str(out), "-W", "--keep-going"], capture_output=True, text=True, cwd=ROOT)
    assert build.returncode == 0, f"jupyter-book build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return out / "_build" / "html"


def source_text(page: str) -> str:
    """A page's MyST source: the .md file, or the markdown cells of the .ipynb."""
    path, notebook = ROOT / f"{page}.md", ROOT / f"{page}.ipynb"
    if path.is_file():
        return path.read_text()
    assert notebook.is_file(), f"{page} is listed in book/_toc.yml but has neither a .md nor an .ipynb source"
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def source_title(page: str) -> str:
    """The first level-1 heading of a page's source."""
    match = re.search(r"^# (.+)$", source_text(page), flags=re.MULTILINE)
    assert match, f"{page} has no '# title' heading"
    return match.group(1).strip()


def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text(), flags=re.MULTILINE)


@cache
def ids_in(html_file: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\bid="([^"]+)"', html_file.read_text(encoding="utf-8", errors="replace")))


def broken_internal_links(site: Path, hrefs: list[str]) -> list[str]:
    """The hrefs (absolute URLs) into the built site whose file, or whose #anchor in that file, does not exist."""
    broken = []
    for href in hrefs:
        url, fragment = urldefrag(href)
        if not url.startswith("file://"):
            continue
        target = Path(unquote(urlparse(url).path))
        if not target.exists():
            broken.append(href)
        elif fragment and target.suffix == ".html" and unquote(fragment) not in ids_in(target):
            broken.append(href)
    return broken


def test_toc_pages_have_sources_and_titles():
    pages = toc_pages()
    assert len(pages) == len(set(pages)), "a page is listed twice in book/_toc.yml"
    for page in pages:
        assert source_title(page), page


def test_broken_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1>')
    hrefs = [(tmp_path / "a.html").as_uri() + "#top", (tmp_path / "a.html").as_uri() + "#nowhere",
             (tmp_path / "b.html").as_uri(), "https://example.org/#x"]
    assert broken_internal_links(tmp_path, hrefs) == hrefs[1:3]


@pytest.mark.slow
def test_every_page_renders_cleanly_offline(site):
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
        for chapter in toc_pages():
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
            heading = page.query_selector("main h1") or page.query_selector("h1")
            shown = heading.inner_text().strip().rstrip("#¶").strip() if heading else ""
            if shown != source_title(chapter):
                problems.append(f"{chapter}: heading {shown!r}, expected {source_title(chapter)!r}")
            if source_title(chapter) not in page.title():
                problems.append(f"{chapter}: window title {page.title()!r} lacks the page's title")
            hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            problems += [f"{chapter}: broken internal link {h}" for h in broken_internal_links(site, hrefs)]
            page.screenshot(path=str(SCREENSHOTS / f"{chapter.replace('/', '_')}.png"), full_page=True)
        browser.close()
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_bibliography_lists_every_reference_and_citations_resolve(site):
    references = site / "book" / "references.html"
    assert references.is_file(), "book/references.md is not in the built site"
    html = references.read_text(encoding="utf-8")
    entries = re.findall(r'role="doc-biblioentry"', html)
    assert len(entries) == len(bib_keys()), f"{len(entries)} bibliography entries, {len(bib_keys())} in references.bib"
    pages = [p for p in toc_pages() if p != "book/references" and (site / f"{p}.html").is_file()]
    cited = [p for p in pages if "{cite" in source_text(p)]
    assert cited, "no page cites anything"
    for page in cited:
        page_html = (site / f"{page}.html").read_text(encoding="utf-8")
        links = re.findall(r'href="[^"]*references\.html#([^"]+)"', page_html)
        assert links, f"{page}: its citations do not link to the bibliography"
        missing = sorted(set(links) - ids_in(references))
        assert not missing, f"{page}: citations point to missing bibliography anchors {missing}"
