"""Oxford5k / Paris6k in their original protocol (Philbin et al. 2007, 2008).

Ground truth files ``<query>_{query,good,ok,junk}.txt``: the query file holds
``<image> x1 y1 x2 y2`` (corners, not width/height); positives are good + ok,
junk is junk. Images missing from disk (a partial download, or the shared
Paris subset) are removed from the image list and from every ground-truth
list; queries whose own image is missing are dropped. Both are reported.
"""
from __future__ import annotations

import logging
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


#: The 20 Paris6k files that are HTML error pages, not JPEGs (the dataset page's ``corrupt.txt``); every
#: published Paris6k result drops them, so 6,412 files give 6,392 images.
PARIS_CORRUPT: frozenset[str] = frozenset(
    f"paris_{n}" for n in (
        "louvre_000136", "louvre_000146", "moulinrouge_000422", "museedorsay_001059", "notredame_000188",
        "pantheon_000284", "pantheon_000960", "pantheon_000974", "pompidou_000195", "pompidou_000196",
        "pompidou_000201", "pompidou_000467", "pompidou_000640", "sacrecoeur_000299", "sacrecoeur_000330",
        "sacrecoeur_000353", "triomphe_000662", "triomphe_000833", "triomphe_000863", "triomphe_000867"))

log = logging.getLogger(__name__)


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


def images_on_disk(root: Path, image_dir: Path) -> dict[str, str]:
    """``{stem: path relative to root}`` of the JPEGs under ``image_dir``, without Paris6k's corrupt files."""
    on_disk = {p.stem: p.relative_to(root).as_posix() for p in sorted(image_dir.rglob("*.jpg"))}
    corrupt = sorted(PARIS_CORRUPT & on_disk.keys())
    if corrupt:
        log.info("dropped %d known-corrupt Paris6k images (HTML error pages): %s", len(corrupt), ", ".join(corrupt))
    return {stem: rel for stem, rel in on_disk.items() if stem not in PARIS_CORRUPT}


def load_oxford_paris(name: str, root: str | Path) -> RetrievalDataset:
    """Load ``"paris6k"`` or ``"oxford5k"`` from ``root`` (the folder holding the extracted archives)."""
    layout = LAYOUTS[name]
    root = Path(root)
    image_dir, gt_dir = root / layout["images"], root / layout["gt"]
    if not image_dir.is_dir() or not gt_dir.is_dir():
        raise DatasetNotFoundError(
            f"{name} not found under {root}: need {layout['images']}/ and {layout['gt']}/. Run "
            f"`python data_scripts/fetch.py {name} --data-dir {root.parent}` (it downloads {layout['archives']}), "
            "or pass data_dir= the folder where they are."
        )
    on_disk = images_on_disk(root, image_dir)
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
        warnings.warn(notes[-1], stacklevel=4)  # point at the caller of load_dataset
    if not queries:
        raise DatasetNotFoundError(f"no query image of {name} is present under {image_dir}")
    train = tuple(p for p in images if p not in train_exclude)
    return RetrievalDataset(name=name, root=root, images=tuple(images), queries=tuple(queries), gnd=tuple(gnd),
                            train=train, notes=tuple(notes))
