#!/usr/bin/env python
"""Fetch oxford5k: `python data_scripts/get_oxford5k.py [--data-dir DIR] [--mirror URL]` (see fetch.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch import main

if __name__ == "__main__":
    sys.exit(main(["oxford5k", *sys.argv[1:]]))
