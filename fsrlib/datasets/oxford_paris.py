"""Oxford5k / Paris6k in their original protocol (Philbin et al. 2007, 2008).

Ground truth files ``<query>_{query,good,ok,junk}.txt``: the query file holds
``<image> x1 y1 x2 y2`` (corners, not width/height); positives are good + ok,
junk is junk. Images missing from disk (a partial download, or the shared
Paris subset) are removed from the image list and from every ground-truth
list; queries whose own image is missing are dropped. Both are reported.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .base import RetrievalDataset

#: Layout of each benchmark once its archives are extracted under a root.
LAYOUTS: dict[str, dict[str, Any]] = {
    "paris6k": {"images": "paris", "gt": "paris_120310", "prefix": "", "n_images": 6392, "n_queries": 55,
                "archives": "paris_1-v1.tgz, paris_2-v1.tgz and paris_120310.tgz"},
    "oxford5k": {"images": "oxbuild_images", "gt": "gt_files_170407", "prefix": "oxc1_", "n_images": 5062,
                 "n_queries": 55, "archives": "oxbuild_images-v1.tgz and gt_files_170407.tgz"},
}


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark's files are not where the loader looked."""


def read_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def parse_query_file(path: Path, prefix: str) -> tuple[str, tuple[float, float, float, float]]:
    parts = path.read_text().split()
    if len(parts) != 5:
        raise ValueError(f"{path}: expected '<image> x1 y1 x2 y2', got {parts!r}")
    name = parts[0][len(prefix):] if prefix and parts[0].startswith(prefix) else parts[0]
    x1, y1, x2, y2 = (float(v) for v in parts[1:])
    return name, (x1, y1, x2, y2)


def load_oxford_paris(name: str, root: str | Path) -> RetrievalDataset:
    """Load ``"paris6k"`` or ``"oxford5k"`` from ``root`` (the folder holding the extracted archives)."""
    layout = LAYOUTS[name]
    root = Path(root)
    image_dir, gt_dir = root / layout["images"], root / layout["gt"]
    if not image_dir.is_dir() or not gt_dir.is_dir():
        raise DatasetNotFoundError(
            f"{name} not found under {root}: need {layout['images']}/ and {layout['gt']}/. Download "
            f"{layout['archives']} from the Oxford VGG site and extract them into {root} "
            "(or pass data_dir= the folder where they are)."
        )
    on_disk = {p.stem: p.relative_to(root).as_posix() for p in sorted(image_dir.rglob("*.jpg"))}
    images = sorted(on_disk.values())
    index = {Path(rel).stem: i for i, rel in enumerate(images)}
    queries, gnd, train_exclude = [], [], set()
    query_files = sorted(gt_dir.glob("*_query.txt"))
    if not query_files:
        raise DatasetNotFoundError(f"{gt_dir} holds no '*_query.txt' ground-truth files")
    n_pos_total = n_pos_kept = 0
    for qfile in query_files:
        stem = qfile.name[: -len("_query.txt")]
        qname, bbx = parse_query_file(qfile, layout["prefix"])
        if qname not in index:
            continue
        positives = read_names(gt_dir / f"{stem}_good.txt") + read_names(gt_dir / f"{stem}_ok.txt")
        junk = read_names(gt_dir / f"{stem}_junk.txt")
        ok = sorted({index[n] for n in positives if n in index})
        n_pos_total, n_pos_kept = n_pos_total + len(positives), n_pos_kept + len(ok)
        queries.append(on_disk[qname])
        gnd.append({"ok": ok, "junk": sorted({index[n] for n in junk if n in index}), "bbx": bbx, "id": stem})
        train_exclude.add(on_disk[qname])
    notes = []
    if len(images) < layout["n_images"] or len(queries) < len(query_files):
        notes.append(
            f"{name} is partly present: {len(images)} of {layout['n_images']} images, "
            f"{len(queries)} of {len(query_files)} queries kept (their image is on disk), "
            f"{n_pos_kept} of {n_pos_total} positives; ground truth restricted to the images found."
        )
        warnings.warn(notes[-1], stacklevel=3)  # point at the caller of load_dataset
    if not queries:
        raise DatasetNotFoundError(f"no query image of {name} is present under {image_dir}")
    train = tuple(p for p in images if p not in train_exclude)
    return RetrievalDataset(name=name, root=root, images=tuple(images), queries=tuple(queries), gnd=tuple(gnd),
                            train=train, notes=tuple(notes))
