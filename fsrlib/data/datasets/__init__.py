"""Benchmarks as data: every loader returns a :class:`RetrievalDataset`.

Names: ``mini`` (embedded), ``oxford5k``, ``paris6k`` (original scoring),
``roxford5k``, ``rparis6k`` (revisited scoring of the same images),
``holidays``, ``holidays_rotated``, and ``photos`` (a folder of unlabeled photos: a training split only); append ``+flickr100k`` or ``+revisitop1m`` to
add distractors to the database (``"oxford5k+flickr100k"``).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from fsrlib.data.datasets.base import DatasetNotFoundError, ImageItem, RetrievalDataset
from fsrlib.data.datasets.distractors import DISTRACTORS, load_distractors, with_distractors
from fsrlib.data.datasets.holidays import load_holidays
from fsrlib.data.datasets.mini import default_root as mini_root
from fsrlib.data.datasets.mini import load_mini
from fsrlib.data.datasets.oxford_paris import load_oxford_paris
from fsrlib.data.datasets.photos import load_photos
from fsrlib.data.datasets.revisited import load_revisited
from fsrlib.data.sources import SOURCES
from fsrlib.paths import data_root, dev_data_root

#: The one dataset table: name -> loader of its folder. Without a folder, every benchmark is read from
#: :func:`default_dir` (``mini`` is built there, in the cache).
LOADERS: dict[str, Callable[[Path], RetrievalDataset]] = {
    "mini": load_mini,
    "paris6k": lambda root: load_oxford_paris("paris6k", root),
    "oxford5k": lambda root: load_oxford_paris("oxford5k", root),
    "rparis6k": lambda root: load_revisited("rparis6k", root),
    "roxford5k": lambda root: load_revisited("roxford5k", root),
    "holidays": lambda root: load_holidays(root, "original"),
    "holidays_rotated": lambda root: load_holidays(root, "rotated"),
    "photos": load_photos,
}
DATASETS = tuple(LOADERS)


def default_dir(name: str) -> Path:
    """Where a benchmark's files live unless told otherwise: the folder the fetch script fills,
    ``$FSRLIB_DATA/<folder>`` (revisited benchmarks share the original's folder); ``mini``'s folder in the
    cache, where it is built."""
    if name == "mini":
        return mini_root()
    return data_root() / (SOURCES[name][0] if name in SOURCES else name)


#: Where the shared development subsets keep each benchmark (under ``$FSRLIB_DEV_DATA``).
DEV_SUBSETS = {"holidays": "holidays-subset", "paris6k": "paris6k-subset", "photos": "photos-unlabeled"}


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The folder to load benchmark ``name`` from, or ``None`` if it is nowhere on this machine.

    Looks, in order, at ``data_dir``, the fetch script's folder (``$FSRLIB_DATA/<name>``) and the development
    subset under ``$FSRLIB_DEV_DATA``. Chapters use it to fall back (and say so) when a benchmark is absent.
    """
    candidates = [Path(data_dir)] if data_dir is not None else []
    candidates.append(default_dir(name))
    dev = dev_data_root()
    if dev is not None and name in DEV_SUBSETS:
        candidates.append(dev / DEV_SUBSETS[name])
    for folder in candidates:
        try:
            load_dataset(name, folder)
        except (DatasetNotFoundError, FileNotFoundError, KeyError):
            continue
        return folder
    return None


#: The notes about the data already shown in this process, as (dataset, text): a chapter that loads the same partial
#: subset in twenty cells is told once. (``warnings``' own once-per-location registry cannot do this: every
#: ``catch_warnings`` in any library resets it.)
SHOWN_NOTES: set[tuple[str, str]] = set()


def load_dataset(name: str, data_dir: str | Path | None = None,
                 distractor_dir: str | Path | None = None) -> RetrievalDataset:
    """Load benchmark ``name`` (see module docstring). ``data_dir`` is the folder holding its files
    (default ``$FSRLIB_DATA/<name>``), ``distractor_dir`` that of the distractors; ``mini`` is built in the
    cache if needed."""
    base, _, distractors = name.partition("+")
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        ds = _load_base(base, Path(data_dir) if data_dir is not None else None)
    for note in notes:  # a note about the data, not about a line of code: shown without a machine path, once
        if (base, str(note.message)) not in SHOWN_NOTES:
            SHOWN_NOTES.add((base, str(note.message)))
            warnings.warn_explicit(note.message, note.category, filename=f"fsrlib.data.datasets({base})", lineno=0)
    if distractors:
        ds = with_distractors(ds, distractors, distractor_dir if distractor_dir is not None
                              else default_dir(distractors))
    return ds


def _load_base(name: str, data_dir: Path | None) -> RetrievalDataset:
    if name not in LOADERS:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {list(DATASETS)} "
                       f"(optionally + one of {sorted(DISTRACTORS)})")
    return LOADERS[name](data_dir if data_dir is not None else default_dir(name))


__all__ = ["DATASETS", "DEV_SUBSETS", "LOADERS", "SHOWN_NOTES", "DISTRACTORS", "DatasetNotFoundError", "ImageItem", "RetrievalDataset", "default_dir",
           "load_dataset", "load_distractors", "locate", "with_distractors"]
