"""One description for every retrieval benchmark (cirtorch/revisitop ``configdataset`` form).

A dataset is data: the database image list, the query list, and per query a
ground-truth dict ``{"ok": [...], "junk": [...], "bbx": (x1, y1, x2, y2) | None}``
whose indices point into the database list. ``train`` lists the images a
within-dataset model may learn from (never a test query's image).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsrlib.data.imageio import Box
from fsrlib.paths import files_sha256, json_digest


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark's files are not where the loader looked (the message says where to fetch them)."""


@dataclass(frozen=True)
class ImageItem:
    """One image to extract a feature from: a path relative to the root and an optional crop box."""

    path: str
    bbx: Box | None = None


@dataclass(frozen=True)
class RetrievalDataset:
    """A retrieval benchmark described as data (see module docstring)."""

    name: str
    root: Path
    images: tuple[str, ...]
    queries: tuple[str, ...]
    gnd: tuple[dict[str, Any], ...]
    train: tuple[str, ...] = ()
    exif_transpose: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    version: str = ""
    #: how the benchmark is scored: "oxford" (ok/junk, Oxford's compute_ap), "revisited" (Easy/Medium/Hard
    #: from easy/hard/junk; "ok"/"junk" hold Medium) or "holidays" (the query itself is junk).
    scoring: str = "oxford"

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.gnd):
            raise ValueError(f"{self.name}: {len(self.queries)} queries but {len(self.gnd)} ground-truth entries")
        n = len(self.images)
        for q, g in zip(self.queries, self.gnd):
            bad = [i for key in ("ok", "junk") for i in g.get(key, []) if not 0 <= i < n]
            if bad:
                raise ValueError(f"{self.name}: query {q} has ground-truth indices outside the database: {bad[:5]}")

    def split_items(self, split: str) -> tuple[ImageItem, ...]:
        """The images of ``split``: ``"db"``, ``"query"`` (cropped to their boxes) or ``"train"``."""
        if split == "db":
            return tuple(ImageItem(p) for p in self.images)
        if split == "query":
            return tuple(ImageItem(p, _as_box(g.get("bbx"))) for p, g in zip(self.queries, self.gnd))
        if split == "train":
            return tuple(ImageItem(p) for p in self.train)
        raise ValueError(f"unknown split {split!r}; choose 'db', 'query' or 'train'")

    def path(self, relative: str) -> Path:
        return self.root / relative

    def listing_sha256(self, items: Sequence[ImageItem]) -> str:
        """SHA-256 of what identifies ``items``: each path, crop box and the digest of the file's bytes
        (:func:`fsrlib.paths.files_sha256`, remembered while the file is unchanged on disk), so a photo replaced
        by another, or rotated in place by an EXIF edit, changes every key built on it. A missing file counts as
        absent and is reported when it is read. The one fingerprint of an image list that every cache keys on
        (features, bit-rate queries, ISR and student training sets)."""
        paths = [self.path(it.path) for it in items]
        present = [p for p in paths if p.is_file()]
        digests = dict(zip(present, files_sha256(present)))
        listing = [[it.path, it.bbx, digests.get(p, "absent")] for it, p in zip(items, paths)]
        return json_digest(listing, None)

    @property
    def n_queries_with_positives(self) -> int:
        return sum(1 for g in self.gnd if g.get("ok"))

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.images)} database images, {len(self.queries)} queries "
            f"({self.n_queries_with_positives} with positives), {len(self.train)} training images"
        )


def _as_box(bbx: Sequence[float] | None) -> Box | None:
    if bbx is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in bbx)
    return (x1, y1, x2, y2)
