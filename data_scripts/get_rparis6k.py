#!/usr/bin/env python
"""Fetch rparis6k: `python data_scripts/get_rparis6k.py [--data-dir DIR] [--mirror URL]` (see fetch.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch import main

if __name__ == "__main__":
    sys.exit(main(["rparis6k", *sys.argv[1:]]))
