"""A folder of unlabeled photos: training data for methods that learn from (small, full-size) pairs of one photo.

No queries, no ground truth, no database: every image file below the folder (any depth; ``.jpg``, ``.jpeg``,
``.png``, any case; hidden files and folders skipped) is in the ``train`` split, in sorted order. Nothing can be
scored on it. The shared development copy is ``photos-unlabeled`` (2,223 photos of no Holidays, Paris or Oxford
scene: ImageNet classes, everyday camera photos, Urban100/BSD68), so a model trained on it alone is tested on
unseen scenes whatever it is scored on. EXIF orientation is applied where a photo carries one.
"""
from __future__ import annotations

from pathlib import Path

from fsrlib.data.datasets.base import DatasetNotFoundError, RetrievalDataset

PHOTO_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def load_photos(root: str | Path) -> RetrievalDataset:
    """Every photo below ``root`` as the training split of a dataset named ``photos``."""
    root = Path(root)
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)) if root.is_dir() else []
    if not found:
        raise DatasetNotFoundError(
            f"no photos (.jpg, .jpeg or .png files) under {root}: pass data_dir= a folder of photos (any depth), "
            "e.g. the shared development copy ../shared/data/photos-unlabeled")
    return RetrievalDataset(name="photos", root=root, images=(), queries=(), gnd=(), train=tuple(found),
                            exif_transpose=True,
                            notes=(f"{len(found)} unlabeled photos: training data only (no queries, no ground truth)",))
