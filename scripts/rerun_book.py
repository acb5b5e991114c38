"""Rerun the book's chapters with other parameters into a folder of their own; the committed notebooks are not touched.

    .venv/bin/python scripts/rerun_book.py --out runs/gpu -p device cuda -p backbone vgg16_fc7
    .venv/bin/python scripts/rerun_book.py --out runs/seed1 -p seed 1 --chapters evaluation why_features
    make rerun PARAMS="-p device cuda -p backbone vgg16_fc7" OUT=runs/gpu

Each chapter (book/_toc.yml's order, or those named by ``--chapters``) is executed by papermill, which writes the
parameters into a cell after the chapter's ``parameters`` cell, and saved as ``<out>/<chapter>.ipynb`` with its
outputs (a chapter that fails is saved too, up to the failing cell, and named at the end). A chapter gets only the
parameters its ``parameters`` cell declares, and the script says which it left out; a name no chapter declares is
refused before anything runs (a typo would otherwise change nothing). Values are read as YAML: ``-p seed 1`` is an
integer, ``-p ratios "[0.25, 0.0625]"`` a list, ``-p device cuda`` a string, ``-p data_dir null`` is None.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import papermill
import yaml

from book_toc import toc_notebooks

ROOT = Path(__file__).resolve().parents[1]


def declared(chapter: Path) -> set[str]:
    """The names a chapter's ``parameters`` cell assigns."""
    return set(papermill.inspect_notebook(str(chapter)))


def chosen_chapters(names: list[str] | None) -> list[Path]:
    chapters = toc_notebooks()
    if not names:
        return chapters
    by_name = {path.stem: path for path in chapters}
    unknown = [n for n in names if n.removesuffix(".ipynb") not in by_name]
    if unknown:
        raise SystemExit(f"rerun_book: no chapter named {', '.join(unknown)}; the chapters are {', '.join(by_name)}")
    return [by_name[n.removesuffix(".ipynb")] for n in names]


def parse_parameters(pairs: list[list[str]]) -> dict:
    return {name: yaml.safe_load(value) for name, value in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the executed copies (made if absent)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter for every chapter that declares it (value read as YAML); repeatable")
    parser.add_argument("--chapters", nargs="+", default=None, help="only these chapters (default: all, in order)")
    args = parser.parse_args(argv)
    chapters = chosen_chapters(args.chapters)
    params = parse_parameters(args.parameter)
    names = {path.stem: declared(path) for path in chapters}
    nowhere = sorted(set(params) - set().union(*names.values()))
    if nowhere:
        parser.error(f"no chosen chapter declares {', '.join(nowhere)} in its parameters cell (nothing was run)")
    out = args.out.resolve()
    if out in {ROOT / "book", ROOT}:
        parser.error(f"--out {args.out} would overwrite the committed chapters; give a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    shared = ROOT.parent / "shared" / "data"  # as make book: the development subsets where they are
    if "FSRLIB_DEV_DATA" not in os.environ and shared.is_dir():
        os.environ["FSRLIB_DEV_DATA"] = str(shared)
    failed = []
    for chapter in chapters:
        mine = {k: v for k, v in params.items() if k in names[chapter.stem]}
        left_out = sorted(set(params) - set(mine))
        note = f" (not declared here, left out: {', '.join(left_out)})" if left_out else ""
        print(f"[rerun] {chapter.stem} with {mine or 'its defaults'}{note}", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(chapter), str(out / chapter.name), parameters=mine, cwd=str(chapter.parent),
                                       kernel_name="python3", progress_bar=False)
        except papermill.PapermillExecutionError as err:
            failed.append(chapter.stem)
            print(f"[rerun] {chapter.stem} FAILED at cell {err.exec_count}: {err.ename}: {err.evalue}", file=sys.stderr)
            continue
        print(f"[rerun] {chapter.stem}: {out / chapter.name} in {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"[rerun] failed: {', '.join(failed)} (their copies in {out} stop at the failing cell)", file=sys.stderr)
        return 1
    print(f"[rerun] {len(chapters)} chapter(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
