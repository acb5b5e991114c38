"""Copies of the chapters for students: every worked solution removed, exercises and hints kept.

    .venv/bin/python scripts/student_handout.py --out handout/ [chapter ...]

A solution is a cell tagged ``solution`` (the executed ones: a dropdown of explanation and a hidden code cell) or, in
chapters not converted yet, a ``:::{dropdown} Solution ...`` block inside a markdown cell. The committed chapters are
not touched; the copies keep every other cell and its outputs.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from book_toc import toc_notebooks

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_BLOCK = re.compile(r"^:::\{dropdown\} Solution.*?^:::[ \t]*\n?", re.S | re.M)


def strip_solutions(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """``nb`` without its solutions, and how many were removed (cells and markdown blocks)."""
    kept, removed = [], 0
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            cell.source, n = SOLUTION_BLOCK.subn("", cell.source)
            removed += n
            if not cell.source.strip():
                continue
        kept.append(cell)
    nb.cells = kept
    return nb, removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the handout copies (made if absent)")
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every chapter of book/_toc.yml)")
    args = parser.parse_args(argv)
    chapters = toc_notebooks()
    if args.chapters:
        wanted = {c.removesuffix(".ipynb") for c in args.chapters}
        unknown = wanted - {p.stem for p in chapters}
        if unknown:
            parser.error(f"no chapter named {', '.join(sorted(unknown))}")
        chapters = [p for p in chapters if p.stem in wanted]
    out = args.out.resolve()
    if out in {ROOT / "book", ROOT}:
        parser.error(f"--out {args.out} would overwrite the committed chapters; give a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    for path in chapters:
        nb, removed = strip_solutions(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        print(f"[handout] {path.stem}: {removed} solution(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
