"""INRIA Holidays (Jégou et al. 2008): 1,491 photos in 500 groups, one query per group.

Images are named ``NNNNNN.jpg``; ``NNNN00`` is the query of group ``NNNN`` and the
group's other images are its positives. The database holds every image, queries
included, and each query is junk in its own ranking (INRIA's ``holidays_map.py``
skips it), so the one ``compute_map`` gives Holidays' official mAP.

Two releases: the original (``jpg1.tar.gz`` + ``jpg2.tar.gz``, extracted to
``jpg/``; about 5% of photos are stored sideways and carry no usable EXIF tag, the
loader applies EXIF orientation where there is one) and the upright release that
fixes them (extracted to ``jpg_rotated/``).

Files are found at any depth below the release's folder, with any case of the
``.jpg`` / ``.jpeg`` suffix (the group comes from the name alone). Because the
name is all that says which image is a query and which group it belongs to, one
name in two places (``jpg/100000.jpg`` and ``jpg/extra/100000.jpg``) is an error
naming both, never an extra query. Image files whose names are not six digits are
ignored with a warning naming them. A partial copy can hold a query whose group
has no other photo: it is kept, with no positive, and like every such query in
fsrlib (``compute_map``, revisitop's convention) left out of mAP, with a warning
naming it; the full benchmark has none (INRIA's script would divide by zero).
"""
from __future__ import annotations

import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from fsrlib.data.datasets.base import DatasetNotFoundError, RetrievalDataset
from fsrlib.data.datasets.oxford_paris import examples, find_images

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
    found = find_images(root, image_dir, _NAME.match) if image_dir.is_dir() else {}
    named = {stem: rel for stem, rel in found.items() if _NAME.match(stem)}
    if not named:
        raise DatasetNotFoundError(
            f"Holidays ({release} release) not found: no NNNNNN.jpg under {image_dir}"
            f"{f' (its {len(found)} image files, e.g. {examples(found.values())}, are not so named)' if found else ''}"
            ". Run "
            f"`fsrlib fetch holidays{'_rotated' if release == 'rotated' else ''} "
            f"--data-dir {root.parent}`, or pass data_dir= the folder holding {RELEASES[release]}/.")
    images = tuple(named[stem] for stem in sorted(named))
    queries, gnd = holidays_ground_truth(sorted(named), images)
    notes = holidays_notes(images, queries, gnd, sorted(set(found.values()) - set(images)))
    for note in notes:
        warnings.warn(note, stacklevel=4)  # the caller of load_dataset
    notes.append("Holidays has no training split; train on another dataset (train_dataset=...).")
    return RetrievalDataset(name="holidays" if release == "original" else "holidays_rotated", root=root,
                            images=images, queries=tuple(queries), gnd=tuple(gnd), train=(),
                            exif_transpose=True, notes=tuple(notes), scoring="holidays")


def holidays_ground_truth(stems: list[str], images: tuple[str, ...]) -> tuple[list[str], list[dict[str, Any]]]:
    """Queries (the ``NNNN00`` images) and their ground truth: the group's other images are ``ok``, the query
    itself ``junk``. ``stems`` and ``images`` are in the same (database) order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, stem in enumerate(stems):
        groups[stem[:4]].append(i)
    queries, gnd = [], []
    for i, stem in enumerate(stems):
        if stem.endswith("00"):
            queries.append(images[i])
            gnd.append({"ok": [j for j in groups[stem[:4]] if j != i], "junk": [i], "bbx": None, "id": stem})
    return queries, gnd


def holidays_notes(images: tuple[str, ...], queries: list[str], gnd: list[dict[str, Any]],
                   ignored: list[str]) -> list[str]:
    """Warnings for a partial copy, for groups without a query or without a positive, and for ignored files."""
    notes = []
    groups = {Path(p).stem[:4] for p in images}
    without_query = groups - {g["id"][:4] for g in gnd}
    if len(images) < HOLIDAYS_IMAGES or without_query:
        note = (f"holidays is partly present: {len(images)} of {HOLIDAYS_IMAGES} images, "
                f"{len(queries)} of {HOLIDAYS_QUERIES} queries.")
        if without_query:
            note += (f" {len(without_query)} group(s) have photos but not their query NNNN00 (e.g. "
                     f"{examples(without_query)}); their photos stay in the database, as negatives for every other query.")
        notes.append(note)
    lone = [q for q, g in zip(queries, gnd) if not g["ok"]]
    if lone:
        notes.append(f"{len(lone)} Holidays quer{'y has' if len(lone) == 1 else 'ies have'} no other photo of "
                     f"its group on disk, so no positive; kept, but left out of mAP (a query without positives "
                     f"has no AP): {examples(lone, 10)}.")
    if ignored:
        notes.append(f"{len(ignored)} image file(s) not named NNNNNN (six digits, the Holidays naming) are ignored: "
                     f"{examples(ignored, 5)}.")
    return notes
