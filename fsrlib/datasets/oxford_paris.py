"""Oxford5k / Paris6k in their original protocol (Philbin et al. 2007, 2008).

Ground truth files ``<query>_{query,good,ok,junk}.txt``: the query file holds
``<image> x1 y1 x2 y2`` (corners, not width/height); positives are good + ok,
junk is junk. Images missing from disk (a partial download, or the shared
Paris subset) are removed from the image list and from every ground-truth
list; queries whose own image is missing are dropped. Both are reported, as
are queries left with no positive (they do not count in mAP). A missing
ground-truth file, one image name in two folders, and a query box that selects
no pixel are errors found when loading, before any feature is extracted.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from PIL import Image

from ..imageio import clip_box
from .base import DatasetNotFoundError, RetrievalDataset

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


def read_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_ground_truth_file(path: Path, name: str) -> list[str]:
    """The image names listed in one ``<query>_{good,ok,junk}.txt`` file (an empty file lists none)."""
    if not path.is_file():
        layout = LAYOUTS[name]
        raise DatasetNotFoundError(
            f"{path} is missing: every '<query>_query.txt' of {name} needs its _good.txt, _ok.txt and _junk.txt "
            f"beside it (an empty file if it lists nothing). The ground truth is incomplete; unpack "
            f"{layout['archives']} again (`python data_scripts/fetch.py {name}`), or restore the file.")
    return read_names(path)


def parse_query_file(path: Path, prefix: str) -> tuple[str, tuple[float, float, float, float]]:
    parts = path.read_text().split()
    if len(parts) != 5:
        raise ValueError(f"{path}: expected '<image> x1 y1 x2 y2', got {parts!r}")
    name = parts[0][len(prefix):] if prefix and parts[0].startswith(prefix) else parts[0]
    try:
        x1, y1, x2, y2 = (float(v) for v in parts[1:])
    except ValueError:
        raise ValueError(f"{path}: the box {parts[1:]} is not four numbers x1 y1 x2 y2") from None
    return name, (x1, y1, x2, y2)


#: Suffixes of the benchmarks' images, compared in lower case (``.JPG`` files count).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg")


def images_on_disk(root: Path, image_dir: Path) -> dict[str, str]:
    """``{stem: path relative to root}`` of the JPEGs under ``image_dir``, without Paris6k's corrupt files.

    The ground truth names images by stem alone, so one stem in two places (two
    landmark folders, or ``a.jpg`` beside ``a.JPG``) is an error, not a silent choice.
    """
    found: dict[str, list[str]] = {}
    for p in sorted(image_dir.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.setdefault(p.stem, []).append(p.relative_to(root).as_posix())
    repeated = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if repeated:
        listing = "; ".join(" and ".join(paths) for paths in list(repeated.values())[:5])
        raise ValueError(
            f"{len(repeated)} image name(s) occur more than once under {image_dir} ({listing}"
            f"{'; ...' if len(repeated) > 5 else ''}). The ground truth names images without their folder, so it "
            "cannot tell which is meant: remove or rename the copies so each name occurs once.")
    on_disk = {stem: paths[0] for stem, paths in found.items()}
    corrupt = sorted(PARIS_CORRUPT & on_disk.keys())
    if corrupt:
        log.info("dropped %d known-corrupt Paris6k images (HTML error pages): %s", len(corrupt), ", ".join(corrupt))
    return {stem: rel for stem, rel in on_disk.items() if stem not in PARIS_CORRUPT}


def check_query_boxes(name: str, root: Path, queries: list[str], gnd: list[dict[str, Any]]) -> None:
    """Refuse query boxes that leave no pixel of their image (NaN, ``x2 <= x1``, outside the image).

    Image sizes are read from the file headers (no decoding), so a bad box is
    reported when the dataset is loaded instead of after its database was extracted.
    """
    problems = []
    for query, g in zip(queries, gnd):
        try:
            with Image.open(root / query) as img:
                size = img.size
            clip_box(g["bbx"], size, source=query)
        except (OSError, ValueError) as err:  # an unreadable image is reported here too, with its path
            problems.append(f"{g['id']}: {err}")
    if problems:
        raise ValueError(f"{name}: {len(problems)} query box(es) select no pixel of their image; fix the "
                         "'<query>_query.txt' files (x1 y1 x2 y2, corners in pixels) or the images:\n  "
                         + "\n  ".join(problems))


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
    no_positive: list[str] = []
    for qfile in query_files:
        stem = qfile.name[: -len("_query.txt")]
        qname, bbx = parse_query_file(qfile, layout["prefix"])
        if qname not in index:
            continue
        good, ok_names, junk = (read_ground_truth_file(gt_dir / f"{stem}_{kind}.txt", name)
                                for kind in ("good", "ok", "junk"))
        positives = good + ok_names
        ok = sorted({index[n] for n in positives if n in index})
        n_pos_total, n_pos_kept = n_pos_total + len(positives), n_pos_kept + len(ok)
        if not ok:
            why = f"none of its {len(positives)} is on disk" if positives else "its ground truth lists none"
            no_positive.append(f"{stem} ({why})")
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
    if no_positive:
        notes.append(f"{len(no_positive)} {name} quer{'y has' if len(no_positive) == 1 else 'ies have'} no positive "
                     f"image and will be left out of mAP: {', '.join(no_positive)}.")
        warnings.warn(notes[-1], stacklevel=4)
    if not queries:
        raise DatasetNotFoundError(f"no query image of {name} is present under {image_dir}")
    check_query_boxes(name, root, queries, gnd)
    train = tuple(p for p in images if p not in train_exclude)
    return RetrievalDataset(name=name, root=root, images=tuple(images), queries=tuple(queries), gnd=tuple(gnd),
                            train=train, notes=tuple(notes))
