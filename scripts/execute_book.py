"""Execute every chapter of the book in place, so the committed notebooks carry the outputs the build shows.

    .venv/bin/python scripts/execute_book.py [chapter.ipynb ...]

Chapters are taken from book/_toc.yml. A chapter whose execution fails is left untouched on disk and the script
exits non-zero, naming the cell. Timing per chapter is printed (the README's time budget comes from here).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from book_toc import toc_notebooks

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, timeout: int | None = None) -> float:
    """Run every cell of ``path`` and store the outputs. No per-cell time limit by default: a slow machine makes a
    slow book, not no book (issue 25: a VDSR cell once ran past a 1,800 s limit on a busy 2-core machine)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   record_timing=False).execute()
    elapsed = time.perf_counter() - start
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path,
                        help="chapter notebooks to execute (default: every chapter of book/_toc.yml)")
    args = parser.parse_args(argv)
    missing = [str(c) for c in args.chapters if not c.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    chapters = [c.resolve() for c in args.chapters] or toc_notebooks()
    # The chapters run on the shared development subsets when they find them, as under `make book` (which sets
    # this): without it, a direct call would quietly execute the Holidays chapters on `mini` and store those outputs.
    shared = ROOT.parent / "shared" / "data"
    if "FSRLIB_DEV_DATA" not in os.environ and shared.is_dir():
        os.environ["FSRLIB_DEV_DATA"] = str(shared)
    where = os.environ.get("FSRLIB_DEV_DATA") or "none: chapters that need them run on mini and say so"
    print(f"[book] development subsets: {where}", flush=True)
    total = 0.0
    for path in chapters:
        try:
            seconds = execute(path)
        except CellExecutionError as err:
            print(f"[book] {path.relative_to(ROOT)} FAILED; the notebook on disk is unchanged\n{err}", file=sys.stderr)
            return 1
        total += seconds
        print(f"[book] executed {path.relative_to(ROOT)} in {seconds:.0f} s")
    print(f"[book] all chapters executed in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
