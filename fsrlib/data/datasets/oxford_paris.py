"""Oxford5k / Paris6k scored as originally published (Philbin et al. 2007, 2008).

Ground truth files ``<query>_{query,good,ok,junk}.txt``: the query file holds
``<image> x1 y1 x2 y2`` (corners, not width/height); positives are good + ok,
junk is junk. Names are compared without their folder, a known image suffix
(``.jpg``, ``.jpeg``, any case) or Oxford's ``oxc1_`` prefix, so ``x.jpg``,
``x.JPG`` and ``x`` name the same image. Images the ground truth names that are
not on disk (a partial download, or the shared Paris subset) are removed from
every ground-truth list; queries whose own image is missing are dropped. Both
are reported with counts and examples, as are queries left with no positive
(they do not count in mAP). A missing ground-truth file, one image name in two
places, and a query box that selects no pixel are errors found when loading,
before any feature is extracted.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fsrlib.data.datasets.base import DatasetNotFoundError, RetrievalDataset
from fsrlib.data.imageio import clip_box

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


#: Suffixes of the benchmarks' images, compared in lower case (``.JPG`` files count).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg")


def image_name(name: str, prefix: str = "") -> str:
    """The name by which ground truth and image files are matched: ``name`` without a known image suffix (any
    case) and without ``prefix`` (Oxford's ``oxc1_``), so ``"x.jpg"``, ``"x.JPG"`` and ``"x"`` are one image."""
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        name = name[: -len(Path(name).suffix)]
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def read_names(path: Path, prefix: str = "") -> list[str]:
    """The image names listed one per line in ``path``, as :func:`image_name` (blank lines skipped)."""
    return [image_name(line.strip(), prefix) for line in read_text(path).splitlines() if line.strip()]


def read_text(path: Path) -> str:
    """The text of a ground-truth file; one that is not text is an error naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file ({err}): the ground truth is damaged; unpack its archive "
                         "again (`fsrlib fetch <dataset>` downloads and unpacks it) or restore the file") from None


def read_ground_truth_file(path: Path, name: str) -> list[str]:
    """The image names listed in one ``<query>_{good,ok,junk}.txt`` file (an empty file lists none)."""
    if not path.is_file():
        layout = LAYOUTS[name]
        raise DatasetNotFoundError(
            f"{path} is missing: every '<query>_query.txt' of {name} needs its _good.txt, _ok.txt and _junk.txt "
            f"beside it (an empty file if it lists nothing). The ground truth is incomplete; unpack "
            f"{layout['archives']} again (`fsrlib fetch {name}`), or restore the file.")
    return read_names(path, LAYOUTS[name]["prefix"])


def parse_query_file(path: Path, prefix: str) -> tuple[str, tuple[float, float, float, float]]:
    """The query image's name (as :func:`image_name`) and box ``(x1, y1, x2, y2)`` of a ``<query>_query.txt``."""
    parts = read_text(path).split()
    if len(parts) != 5:
        raise ValueError(f"{path}: expected '<image> x1 y1 x2 y2', got {parts!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in parts[1:])
    except ValueError:
        raise ValueError(f"{path}: the box {parts[1:]} is not four numbers x1 y1 x2 y2") from None
    return image_name(parts[0], prefix), (x1, y1, x2, y2)


def find_images(root: Path, image_dir: Path, used: Callable[[str], object] | None = None) -> dict[str, str]:
    """``{name: path relative to root}`` of every image file under ``image_dir`` (any folder depth; suffixes in
    :data:`IMAGE_SUFFIXES`, any case), keyed by :func:`image_name`.

    Ground truth names images without their folder or suffix, so one name in two
    places (two folders, or ``a.jpg`` beside ``a.JPG``) is an error naming both
    paths, not a silent choice that would change the benchmark. With ``used``, only
    names it accepts are checked (the others are files the loader ignores anyway).
    """
    found: dict[str, list[str]] = {}
    for p in sorted(image_dir.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.setdefault(image_name(p.name), []).append(p.relative_to(root).as_posix())
    repeated = [paths for name, paths in found.items() if len(paths) > 1 and (used is None or used(name))]
    if repeated:
        listing = "; ".join(" and ".join(paths) for paths in repeated[:5])
        raise ValueError(
            f"{len(repeated)} image name(s) occur more than once under {image_dir} ({listing}"
            f"{'; ...' if len(repeated) > 5 else ''}). Images are known by their name alone (the ground truth "
            "names none by folder or suffix), so each would count twice or one would silently replace the other: "
            "remove or rename the copies so each name occurs once.")
    return {stem: paths[0] for stem, paths in found.items()}


def images_on_disk(root: Path, image_dir: Path) -> dict[str, str]:
    """:func:`find_images` without Paris6k's known-corrupt files (logged when present)."""
    on_disk = find_images(root, image_dir)
    corrupt = sorted(PARIS_CORRUPT & on_disk.keys())
    if corrupt:
        log.info("dropped %d known-corrupt Paris6k images (HTML error pages): %s", len(corrupt), ", ".join(corrupt))
    return {stem: rel for stem, rel in on_disk.items() if stem not in PARIS_CORRUPT}


def examples(names: Collection[str], limit: int = 3) -> str:
    """Up to ``limit`` of ``names``, sorted, for a message: ``"a, b, c, ..."``."""
    shown = sorted(names)[:limit]
    return ", ".join(shown) + (", ..." if len(names) > limit else "")


def check_query_boxes(name: str, root: Path, queries: list[str], gnd: list[dict[str, Any]]) -> None:
    """Refuse query boxes that leave no pixel of their image (NaN, ``x2 <= x1``, outside the image).

    Image sizes are read from the file headers (no decoding), so a bad box is
    reported when the dataset is loaded instead of after its database was
    extracted. A query without a box (``bbx`` None) is the whole image.
    """
    problems = []
    for query, g in zip(queries, gnd):
        if g["bbx"] is None:
            continue
        try:
            with Image.open(root / query) as img:
                size = img.size
            clip_box(g["bbx"], size, source=query)
        except (OSError, ValueError) as err:  # an unreadable image is reported here too, with its path
            problems.append(f"{g['id']}: {err}")
    if problems:
        raise ValueError(f"{name}: {len(problems)} query box(es) select no pixel of their image; fix the "
                         "query boxes in the ground truth (x1 y1 x2 y2, corners in pixels) or the images:\n  "
                         + "\n  ".join(problems))


@dataclass
class GroundTruthTally:
    """What the ground truth of the kept queries lists, against what was found on disk."""

    positives: int = 0
    positives_found: int = 0
    junk: int = 0
    junk_found: int = 0
    not_found: set[str] = field(default_factory=set)
    no_positive: list[str] = field(default_factory=list)

    def add(self, query_id: str, positives: list[str], junk: list[str], index: dict[str, int]) -> None:
        """Count one query's lists; ``index`` maps the names found on disk to database indices."""
        self.positives += len(set(positives))
        self.positives_found += len({n for n in positives if n in index})
        self.junk += len(set(junk))
        self.junk_found += len({n for n in junk if n in index})
        self.not_found |= {n for n in positives + junk if n not in index}
        if not any(n in index for n in positives):
            why = (f"none of the {len(set(positives))} it lists is among the images found, e.g. "
                   f"{examples(set(positives), 1)}" if positives else "its ground truth lists none")
            self.no_positive.append(f"{query_id} ({why})")


def ground_truth_entry(stem: str, bbx: tuple[float, float, float, float], positives: list[str], junk: list[str],
                       index: dict[str, int]) -> dict[str, Any]:
    """One query's ``{"ok", "junk", "bbx", "id"}`` over the database indices of the names found on disk."""
    return {"ok": sorted({index[n] for n in positives if n in index}),
            "junk": sorted({index[n] for n in junk if n in index}), "bbx": bbx, "id": stem}


def missing_note(name: str, layout: dict[str, Any], n_images: int, kept: list[str], dropped: list[str],
                 tally: GroundTruthTally) -> str | None:
    """The warning for a partial copy or a ground truth naming images not on disk; ``None`` if neither."""
    partial = n_images < layout["n_images"] or bool(dropped)
    unknown, corrupt = tally.not_found - PARIS_CORRUPT, tally.not_found & PARIS_CORRUPT
    if not partial and not unknown:
        return None
    if partial:
        note = (f"{name} is partly present: {n_images} of {layout['n_images']} images found under "
                f"{layout['images']}/, {len(kept)} of {len(kept) + len(dropped)} queries kept")
        note += f" (the query image of {examples(dropped)} is not among them)" if dropped else ""
    else:
        note = f"all {n_images} images of {name} are present under {layout['images']}/, with every query's"
    note += (f"; the kept queries' ground truth lists {tally.positives} positives ({tally.positives_found} found) "
             f"and {tally.junk} junk images ({tally.junk_found} found)")
    if unknown:
        note += f"; the {len(unknown)} name(s) it lists with no image found ({examples(unknown)}) are left out of it"
    if corrupt:
        note += f"; so are the {len(corrupt)} known-corrupt Paris6k file(s) it names, as in every published result"
    return note + "."


def load_oxford_paris(name: str, root: str | Path) -> RetrievalDataset:
    """Load ``"paris6k"`` or ``"oxford5k"`` from ``root`` (the folder holding the extracted archives)."""
    layout = LAYOUTS[name]
    root = Path(root)
    image_dir, gt_dir = root / layout["images"], root / layout["gt"]
    if not image_dir.is_dir() or not gt_dir.is_dir():
        raise DatasetNotFoundError(
            f"{name} not found under {root}: need {layout['images']}/ and {layout['gt']}/. Run "
            f"`fsrlib fetch {name} --data-dir {root.parent}` (it downloads {layout['archives']}), "
            "or pass data_dir= the folder where they are."
        )
    on_disk = images_on_disk(root, image_dir)
    images = sorted(on_disk.values())
    index = {image_name(Path(rel).name): i for i, rel in enumerate(images)}
    query_files = sorted(gt_dir.glob("*_query.txt"))
    if not query_files:
        raise DatasetNotFoundError(f"{gt_dir} holds no '*_query.txt' ground-truth files")
    queries, gnd, dropped, tally = [], [], [], GroundTruthTally()
    for qfile in query_files:
        stem = qfile.name[: -len("_query.txt")]
        qname, bbx = parse_query_file(qfile, layout["prefix"])
        if qname not in index:
            dropped.append(stem)
            continue
        good, ok_names, junk = (read_ground_truth_file(gt_dir / f"{stem}_{kind}.txt", name)
                                for kind in ("good", "ok", "junk"))
        tally.add(stem, good + ok_names, junk, index)
        queries.append(on_disk[qname])
        gnd.append(ground_truth_entry(stem, bbx, good + ok_names, junk, index))
    if not queries:
        raise DatasetNotFoundError(f"no query image of {name} is present under {image_dir}")
    notes = [n for n in (missing_note(name, layout, len(images), queries, dropped, tally),) if n]
    if tally.no_positive:
        notes.append(f"{len(tally.no_positive)} {name} quer{'y has' if len(tally.no_positive) == 1 else 'ies have'} "
                     f"no positive image and will be left out of mAP: {', '.join(tally.no_positive)}.")
    for note in notes:
        warnings.warn(note, stacklevel=4)  # point at the caller of load_dataset
    check_query_boxes(name, root, queries, gnd)
    query_set = set(queries)
    train = tuple(p for p in images if p not in query_set)
    return RetrievalDataset(name=name, root=root, images=tuple(images), queries=tuple(queries), gnd=tuple(gnd),
                            train=train, notes=tuple(notes))
