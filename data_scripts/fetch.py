#!/usr/bin/env python
"""Fetch, verify and unpack retrieval benchmarks for fsrlib: the installed ``fsrlib fetch`` command, for a checkout.

    python data_scripts/fetch.py paris6k oxford5k              # into $FSRLIB_DATA (default ~/fsrlib_data)
    python data_scripts/fetch.py roxford5k --data-dir /data    # Oxford5k images + the revisited ground truth
    python data_scripts/fetch.py flickr100k --mirror http://lab-server/datasets/

Same as ``fsrlib fetch ...`` (or ``python -m fsrlib fetch ...``). Safe to rerun: finished files are verified against
the manifest and kept.
"""
from __future__ import annotations

import sys

from fsrlib.__main__ import main as fsrlib_main


def main(argv: list[str] | None = None) -> int:
    return fsrlib_main(["fetch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
