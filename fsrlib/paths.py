"""Where fsrlib keeps what it builds (caches) and looks for benchmarks (data)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def cache_dir_or_default(cache_dir: str | Path | None, *parts: str) -> Path:
    """``cache_dir`` (a caller's choice) or :func:`cache_root`, joined with ``parts``: the one place every cache
    resolves its folder."""
    return (Path(cache_dir) if cache_dir is not None else cache_root()).joinpath(*parts)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed onto ``path`` when the block succeeds, removed when
    it fails, so a reader never sees a half-written file and an interrupted write leaves nothing behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
