"""INRIA Holidays (Jégou et al. 2008): 1,491 photos in 500 groups, one query per group.

Images are named ``NNNNNN.jpg``; ``NNNN00`` is the query of group ``NNNN`` and the
group's other images are its positives. The database holds every image, queries
included, and each query is junk in its own ranking (INRIA's ``holidays_map.py``
skips it), so the one ``compute_map`` gives Holidays' official mAP.

Two releases: the original (``jpg1.tar.gz`` + ``jpg2.tar.gz``, extracted to
``jpg/``; about 5% of photos are stored sideways and carry no usable EXIF tag, the
loader applies EXIF orientation where there is one) and the upright release that
fixes them (extracted to ``jpg_rotated/``).
"""
from __future__ import annotations

import re
import warnings
from collections import defaultdict
from pathlib import Path

from .base import RetrievalDataset
from .base import DatasetNotFoundError

HOLIDAYS_IMAGES = 1491
HOLIDAYS_QUERIES = 500
RELEASES = {"original": "jpg", "rotated": "jpg_rotated"}
_NAME = re.compile(r"^(\d{4})(\d{2})$")


def load_holidays(root: str | Path, release: str = "original") -> RetrievalDataset:
    """Load Holidays from ``root`` (holding ``jpg/`` or ``jpg_rotated/``)."""
    if release not in RELEASES:
        raise KeyError(f"unknown Holidays release {release!r}; choose one of {list(RELEASES)}")
    root = Path(root)
    image_dir = root / RELEASES[release]
    files = sorted(p for p in image_dir.rglob("*.jpg") if _NAME.match(p.stem)) if image_dir.is_dir() else []
    if not files:
        raise DatasetNotFoundError(
            f"Holidays ({release} release) not found: no NNNNNN.jpg under {image_dir}. Run "
            f"`python data_scripts/fetch.py holidays{'_rotated' if release == 'rotated' else ''} "
            f"--data-dir {root.parent}`, or pass data_dir= the folder holding {RELEASES[release]}/.")
    images = tuple(p.relative_to(root).as_posix() for p in files)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(files):
        groups[_NAME.match(p.stem).group(1)].append(i)
    queries, gnd = [], []
    for i, p in enumerate(files):
        group, number = _NAME.match(p.stem).groups()
        if number == "00":
            queries.append(images[i])
            gnd.append({"ok": [j for j in groups[group] if j != i], "junk": [i], "bbx": None, "id": p.stem})
    notes = []
    if len(images) < HOLIDAYS_IMAGES:
        notes.append(f"holidays is partly present: {len(images)} of {HOLIDAYS_IMAGES} images, "
                     f"{len(queries)} of {HOLIDAYS_QUERIES} queries.")
        warnings.warn(notes[-1], stacklevel=4)  # the caller of load_dataset
    notes.append("Holidays has no training split; train on another dataset (train_dataset=...).")
    return RetrievalDataset(name="holidays" if release == "original" else "holidays_rotated", root=root,
                            images=images, queries=tuple(queries), gnd=tuple(gnd), train=(),
                            exif_transpose=True, notes=tuple(notes), protocol="holidays")
