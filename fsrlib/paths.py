"""Where fsrlib keeps what it builds (caches) and looks for benchmarks (data)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Feature and dataset cache: ``$FSRLIB_CACHE``, else ``~/.cache/fsrlib``."""
    return Path(os.environ.get("FSRLIB_CACHE", Path.home() / ".cache" / "fsrlib")).expanduser()


def data_root() -> Path:
    """Where benchmarks are downloaded: ``$FSRLIB_DATA``, else ``~/fsrlib_data``."""
    return Path(os.environ.get("FSRLIB_DATA", Path.home() / "fsrlib_data")).expanduser()


def dev_data_root() -> Path | None:
    """Folder of development subsets (``holidays-subset/``, ``paris6k-subset/``): ``$FSRLIB_DEV_DATA``, if set.

    ``make`` sets it to ``../shared/data`` beside the checkout; a reader's laptop usually has none.
    """
    value = os.environ.get("FSRLIB_DEV_DATA")
    return Path(value).expanduser() if value else None
