"""The book's pages as book/_toc.yml lists them: one reader for scripts/execute_book.py and the tests."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "book" / "_toc.yml"


def toc_pages(toc: Path = TOC) -> list[str]:
    """Every page of the table of contents, relative to the repository root and without suffix: the root, then
    each part's chapters (or a flat ``chapters`` list)."""
    data = yaml.safe_load(toc.read_text())
    parts = data.get("parts", [{"chapters": data.get("chapters", [])}])
    return [data["root"]] + [entry["file"] for part in parts for entry in part["chapters"]]


def toc_notebooks(toc: Path = TOC) -> list[Path]:
    """The pages that are notebooks (the others are Markdown), as paths."""
    return [ROOT / f"{page}.ipynb" for page in toc_pages(toc) if (ROOT / f"{page}.ipynb").is_file()]
