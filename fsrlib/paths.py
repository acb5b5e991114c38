"""Where fsrlib keeps what it builds (caches) and looks for benchmarks (data)."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


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


def read_checkpoint(path: str | Path, device: str = "cpu", required: tuple[str, ...] = (), *,
                    weights_only: bool = False) -> dict | None:
    """The dict a trainer saved at ``path`` with ``torch.save`` (every fsrlib model: G and D, the ISR networks,
    the student); ``None`` if there is none or it is unusable.

    An unusable file (truncated, not a checkpoint, or lacking one of the
    ``required`` keys) is reported with a warning that names it and deleted,
    so the caller builds it again: the way the feature cache treats a corrupt entry. ``weights_only=True``
    refuses pickled objects (tensors and plain types only), for checkpoints that hold nothing else.
    """
    import torch  # here, so that finding folders does not import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=weights_only)
        missing = [k for k in required if k not in state] if isinstance(state, dict) else ["(not a dict)"]
        problem = f"it lacks {', '.join(missing)}" if missing else None
    except Exception as err:  # noqa: BLE001 - zip, pickle and EOF errors all mean "unreadable"
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    if problem:
        warnings.warn(f"model checkpoint {path} is unusable because {problem}; deleting it and training again",
                      stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return state


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Checksum of named arrays (their bytes, in name order)."""
    return hashlib.sha256(b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in sorted(arrays))).hexdigest()


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], key: dict) -> None:
    """Write named arrays with their key and checksum as one ``.npz``, atomically: the one format of every cached
    array (features, bit-rate queries, the student's pairs)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, key=json.dumps(key, sort_keys=True), sha256=arrays_sha256(arrays))


def load_arrays(path: str | Path, key: dict, names: Sequence[str], *, what: str = "cache entry",
                check: Callable[[dict[str, np.ndarray]], str | None] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays :func:`save_arrays` wrote at ``path`` for ``key``; ``None`` if there is none. A file that cannot be
    read, holds another key, fails its checksum or ``check`` (which returns what is wrong, or ``None``) is reported
    with a warning naming it (``what``), removed, and ``None`` returned, so the caller rebuilds it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {n: data[n] for n in names}
            stored, digest = json.loads(str(data["key"])), str(data["sha256"])
        problem = None
        if stored != json.loads(json.dumps(key, sort_keys=True)):
            problem = "its key does not match (stale entry)"
        elif check is not None and (wrong := check(arrays)) is not None:
            problem = wrong
        elif arrays_sha256(arrays) != digest:
            problem = "its checksum does not match (corrupt)"
    except Exception as err:  # zip, JSON and missing-array errors all mean "unreadable"
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    if problem:
        warnings.warn(f"{what} {path} is unusable because {problem}; rebuilding it", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return arrays
