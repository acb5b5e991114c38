"""Numbered figures and equations (issue 25): every plot a chapter shows is a named, captioned figure, every labelled
display equation is cited, and every {numref}/{eq} reference resolves, so that renaming a figure fails here and not
only as a build warning.

A figure is a code cell whose stored outputs hold an image/png and that is not a worked solution (tagged
``solution``): myst-nb renders it as a numbered Sphinx figure from the cell metadata
``{"mystnb": {"figure": {"name": "fig-...", "caption": "..."}}}``. An equation is a Markdown display ``$$ ... $$``
labelled ``$$ (eq-...)`` (MyST dollarmath). The chapter's Markdown cites them as {numref}`fig-...` and {eq}`eq-...`.
Runs on the stored notebooks: nothing is executed or built.
"""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from book_toc import toc_pages

ROOT = Path(__file__).resolve().parents[1]

#: Cells with a plot that cannot be a myst-nb figure yet: myst-nb wraps *every* displayed output of a figure cell
#: (tables included) in a figure of the same name, so a cell that displays a table beside its plot must first be
#: split in two. Each entry must still be such a cell: once it is split, the test below asks to drop it from here and
#: to give the plot cell its figure metadata.
NOT_YET_FIGURES: dict[tuple[str, str], str] = {}

NUMREF = re.compile(r"\{numref\}`([^`]+)`")
EQREF = re.compile(r"\{eq\}`([^`]+)`")
EQ_LABEL = re.compile(r"\$\$[ \t]*\(([^()\s]+)\)[ \t]*$", flags=re.MULTILINE)
DECIMAL = re.compile(r"\d\.\d")


def target(reference: str) -> str:
    """The name a role points to: ``name`` or, with an explicit title, the ``<name>`` of ``title <name>``."""
    match = re.search(r"<([^<>]+)>\s*$", reference)
    return (match.group(1) if match else reference).strip()


@cache
def chapters() -> tuple[tuple[str, str, tuple[dict, ...]], ...]:
    """(page, Markdown text, code cells) of every page of book/_toc.yml, in its order (a .md page has no cells)."""
    pages = []
    for page in toc_pages():
        md, ipynb = ROOT / f"{page}.md", ROOT / f"{page}.ipynb"
        if md.is_file():
            pages.append((page, md.read_text(), ()))
            continue
        cells = json.loads(ipynb.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        pages.append((page, text, tuple(c for c in cells if c["cell_type"] == "code")))
    return tuple(pages)


def shown_outputs(cell: dict) -> list[dict]:
    """The outputs myst-nb renders as display data (glue records, which it drops, excluded)."""
    return [o for o in cell.get("outputs", []) if o["output_type"] in ("display_data", "execute_result")
            and not all(k.startswith("application/papermill.record") for k in o.get("data", {}))]


def plot_cells(cells) -> list[dict]:
    return [c for c in cells if "solution" not in c["metadata"].get("tags", [])
            and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]


def figures() -> list[tuple[str, dict, dict]]:
    """(page, cell, figure options) of every figure cell of the book."""
    return [(page, cell, cell["metadata"].get("mystnb", {}).get("figure", {}))
            for page, _, cells in chapters() for cell in plot_cells(cells)
            if (page, cell.get("id")) not in NOT_YET_FIGURES]


def equation_labels(text: str) -> list[str]:
    return EQ_LABEL.findall(text)


def test_every_plot_is_a_named_captioned_figure():
    assert figures(), "no figure cells found: has the notebook format changed?"
    for page, cell, options in figures():
        where = f"{page}, cell {cell.get('id')}"
        assert options.get("name", "").startswith("fig-"), f"{where}: needs mystnb.figure.name 'fig-...'"
        caption = options.get("caption", "").strip()
        assert caption, f"{where}: needs mystnb.figure.caption"
        assert not DECIMAL.search(caption), (f"{where}: the caption quotes a measured value ({caption!r}); numbers "
                                             "are printed by cells, a caption says what is plotted")
        shown = shown_outputs(cell)
        assert len(shown) == 1 and "image/png" in shown[0]["data"], (
            f"{where}: a figure cell must display its plot and nothing else (myst-nb would wrap every output in a "
            "figure of the same name); split the cell")


def test_cells_not_yet_figures_still_need_splitting():
    cells = {(page, c.get("id")): c for page, _, code in chapters() for c in plot_cells(code)}
    for key, why in NOT_YET_FIGURES.items():
        assert key in cells, f"{key} is gone or shows no plot: remove it from NOT_YET_FIGURES"
        assert len(shown_outputs(cells[key])) > 1, (
            f"{key} ({why}) now displays only its plot: remove it from NOT_YET_FIGURES and give it figure metadata")


def test_names_are_unique_across_the_book():
    names = [options.get("name") for _, _, options in figures()]
    labels = [label for _, text, _ in chapters() for label in equation_labels(text)]
    for kind, found in (("figure name", names), ("equation label", labels)):
        repeated = sorted({n for n in found if found.count(n) > 1})
        assert not repeated, f"{kind}s used twice: {repeated}"
    assert all(label.startswith("eq-") for label in labels), labels
    assert not set(names) & set(labels)


def test_every_figure_and_equation_is_cited_in_its_own_chapter():
    by_page = {}
    for page, cell, options in figures():
        by_page.setdefault(page, []).append(options.get("name"))
    for page, text, _ in chapters():
        cited_figures = {target(r) for r in NUMREF.findall(text)}
        cited_equations = {target(r) for r in EQREF.findall(text)}
        for name in by_page.get(page, []):
            assert name in cited_figures, f"{page}: figure {name} is never cited as {{numref}}`{name}`"
        for label in equation_labels(text):
            assert label in cited_equations, f"{page}: equation {label} is never cited as {{eq}}`{label}`"


def test_every_reference_points_to_an_existing_name():
    names = {options.get("name") for _, _, options in figures()}
    labels = {label for _, text, _ in chapters() for label in equation_labels(text)}
    captions = "\n".join(options.get("caption", "") for _, _, options in figures())
    for page, text, _ in [*chapters(), ("figure captions", captions, ())]:
        for reference in NUMREF.findall(text):
            assert target(reference) in names, f"{page}: {{numref}}`{reference}` names no figure"
        for reference in EQREF.findall(text):
            assert target(reference) in labels, f"{page}: {{eq}}`{reference}` names no equation"
