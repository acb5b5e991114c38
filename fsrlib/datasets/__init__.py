"""Benchmarks as data: every loader returns a :class:`RetrievalDataset`."""
from __future__ import annotations

from pathlib import Path

from ..paths import data_root
from .base import ImageItem, RetrievalDataset
from .mini import load_mini
from .oxford_paris import LAYOUTS, DatasetNotFoundError, load_oxford_paris

DATASETS = ("mini", "paris6k", "oxford5k")


def load_dataset(name: str, data_dir: str | Path | None = None) -> RetrievalDataset:
    """Load benchmark ``name``. ``data_dir`` is the folder holding its files
    (default ``$FSRLIB_DATA/<name>``); ``mini`` is built in the cache if needed."""
    if name == "mini":
        return load_mini(data_dir)
    if name in LAYOUTS:
        return load_oxford_paris(name, Path(data_dir) if data_dir is not None else data_root() / name)
    raise KeyError(f"unknown dataset {name!r}; known datasets: {list(DATASETS)}")


__all__ = ["DATASETS", "DatasetNotFoundError", "ImageItem", "RetrievalDataset", "load_dataset"]
