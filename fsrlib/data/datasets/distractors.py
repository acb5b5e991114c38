"""Distractor sets (Flickr100k, R1M) appended to any benchmark's database.

Appending keeps every ground-truth index valid (distractors come after the
database images), so evaluation needs no change. Distractor paths are stored
absolute, since they live outside the benchmark's folder.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fsrlib.data.datasets.base import DatasetNotFoundError, RetrievalDataset

#: Distractor sets and the image count of each complete set (their folders: ``fsrlib.data.sources.SOURCES``).
DISTRACTORS = {"flickr100k": {"n_images": 100_071}, "revisitop1m": {"n_images": 1_001_001}}


def distractor_images(name: str, root: str | Path) -> tuple[str, ...]:
    """Absolute paths of the JPEGs of distractor set ``name`` under ``root`` (sorted, recursive)."""
    if name not in DISTRACTORS:
        raise KeyError(f"unknown distractor set {name!r}; known: {sorted(DISTRACTORS)}")
    root = Path(root)
    files = sorted(p.resolve().as_posix() for p in root.rglob("*.jpg")) if root.is_dir() else []
    if not files:
        raise DatasetNotFoundError(f"no {name} images under {root}. Run "
                                   f"`fsrlib fetch {name} --data-dir {root.parent}`.")
    return tuple(files)


def with_distractors(ds: RetrievalDataset, name: str, root: str | Path,
                     limit: int | None = None) -> RetrievalDataset:
    """``ds`` with the first ``limit`` (default all) images of distractor set ``name`` appended to its database."""
    files = distractor_images(name, root)[:limit]
    expected = DISTRACTORS[name]["n_images"]
    note = f"{len(files)} {name} distractors appended" + (
        f" ({expected} in the full set)" if len(files) < expected else "")
    return replace(ds, name=f"{ds.name}+{name}", images=ds.images + files, notes=ds.notes + (note,),
                   version=f"{ds.version}+{name}:{len(files)}")


def load_distractors(name: str, root: str | Path, limit: int | None = None) -> RetrievalDataset:
    """Distractor set ``name`` on its own, as a dataset whose ``db`` split is its images (no queries).

    Extracting its features once (``split="db"``) caches them for every benchmark they are added to.
    """
    root = Path(root)
    files = distractor_images(name, root)[:limit]
    return RetrievalDataset(name=name if limit is None else f"{name}[:{limit}]", root=root,
                            images=tuple(Path(f).relative_to(root.resolve()).as_posix() for f in files),
                            queries=(), gnd=())
