#!/usr/bin/env python
"""Fetch, verify and unpack retrieval benchmarks for fsrlib.

    python data_scripts/fetch.py paris6k oxford5k              # into $FSRLIB_DATA (default ~/fsrlib_data)
    python data_scripts/fetch.py roxford5k --data-dir /data    # Oxford5k images + the revisited ground truth
    python data_scripts/fetch.py flickr100k --mirror http://lab-server/datasets/

Safe to rerun: finished files are verified against the manifest and kept.
"""
from __future__ import annotations

import argparse
import logging
import sys

from fsrlib.download import (
    ChecksumMismatchError,
    DownloadError,
    FolderNotWritableError,
    RarToolMissingError,
    fetch_benchmark,
)
from fsrlib.paths import data_root
from fsrlib.sources import SOURCES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="+", choices=sorted(SOURCES), metavar="BENCHMARK",
                        help=f"one or more of: {', '.join(sorted(SOURCES))}")
    parser.add_argument("--data-dir", default=None, help="root folder (default: $FSRLIB_DATA or ~/fsrlib_data)")
    parser.add_argument("--mirror", default=None, help="base URL tried first for every file")
    parser.add_argument("--retries", type=int, default=2, help="retries per mirror on network errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[fetch] %(message)s")
    root = args.data_dir or data_root()
    for name in args.benchmarks:
        try:
            folder = fetch_benchmark(name, root, mirror=args.mirror, progress=not args.quiet, retries=args.retries)
        except (DownloadError, ChecksumMismatchError, RarToolMissingError, FolderNotWritableError) as exc:
            print(f"[fetch] {name}: {exc}", file=sys.stderr)
            return 1
        print(f"[fetch] {name}: ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
