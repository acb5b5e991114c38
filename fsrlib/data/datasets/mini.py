"""``mini``: the embedded default dataset, built offline from photographs in installed wheels.

**A smoke-scale stand-in, not a benchmark.** It exists so that every chapter and
test runs on a laptop with no internet; its numbers say whether the pipeline
works and whether a method harms retrieval, not how the paper's benchmarks
would rank methods.

Construction (deterministic, a few seconds):

* 14 real photographs that ship inside scikit-image, scikit-learn and
  matplotlib (astronaut, cat, coffee, Hubble field, microscopy, motorcycle,
  retina, rocket, camera man, coins, moon, Chinese temple, flower, Grace Hopper).
* Each photograph is cut into four non-overlapping regions (2 x 2 grid, with a
  margin): the *instances*. Two diagonal regions per photograph go to the
  test split and the other two to the training split, so no training view
  shows pixels of a test instance.
* Each instance gets 6 views: a random crop and zoom inside its region, a small
  rotation (up to 10 degrees), brightness/contrast/saturation jitter, a random
  output size and JPEG compression (quality 40-95).
* Test split: view 0 of each instance is the query, views 1-5 go to the
  database; ground truth ``ok`` = the instance's database views (the other
  regions of the same photograph are hard negatives). Training split: all six
  views of the training instances.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from fsrlib.data.datasets.base import RetrievalDataset
from fsrlib.paths import cache_root, locked

MINI_VERSION = 1
VIEWS_PER_INSTANCE = 6
SEED = 20180618  # CVPR 2018


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


PICTURES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"), "chelsea": _skimage("chelsea"), "coffee": _skimage("coffee"),
    "hubble": _skimage("hubble_deep_field"), "ihc": _skimage("immunohistochemistry"),
    "motorcycle": _motorcycle, "retina": _skimage("retina"), "rocket": _skimage("rocket"),
    "camera": _skimage("camera"), "coins": _skimage("coins"), "moon": _skimage("moon"),
    "china": _sklearn("china.jpg"), "flower": _sklearn("flower.jpg"), "grace_hopper": _grace_hopper,
}


def source_photo(name: str) -> Image.Image:
    """One source photograph as RGB."""
    arr = PICTURES[name]()
    return Image.fromarray(arr).convert("RGB")


def region_boxes(width: int, height: int, margin: float = 0.04) -> list[tuple[int, int, int, int]]:
    """Four non-overlapping ``(x1, y1, x2, y2)`` quadrants, each shrunk by ``margin`` of the photo side."""
    mx, my = round(margin * width), round(margin * height)
    xs, ys = (0, width // 2, width), (0, height // 2, height)
    return [(xs[c] + mx, ys[r] + my, xs[c + 1] - mx, ys[r + 1] - my) for r in range(2) for c in range(2)]


def make_view(photo: Image.Image, box: tuple[int, int, int, int], rng: np.random.Generator) -> tuple[Image.Image, int]:
    """One random view of the region ``box``; returns the image and its JPEG quality."""
    x1, y1, x2, y2 = box
    rw, rh = x2 - x1, y2 - y1
    scale = rng.uniform(0.6, 0.95)
    cw, ch = scale * rw * rng.uniform(0.9, 1.1), scale * rh * rng.uniform(0.9, 1.1)
    cw, ch = min(cw, rw), min(ch, rh)
    cx = x1 + cw / 2 + rng.uniform(0, rw - cw)
    cy = y1 + ch / 2 + rng.uniform(0, rh - ch)
    angle = rng.uniform(-10, 10)
    # rotate only a patch around the crop (its half-diagonal plus a margin), not the whole photo
    radius = int(np.ceil(np.hypot(cw, ch) / 2)) + 2
    patch = photo.crop((round(cx) - radius, round(cy) - radius, round(cx) + radius, round(cy) + radius))
    fill = tuple(int(v) for v in np.asarray(patch).reshape(-1, 3).mean(0))
    rotated = patch.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    left, top = round(radius - cw / 2), round(radius - ch / 2)
    view = rotated.crop((left, top, round(radius + cw / 2), round(radius + ch / 2)))
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        view = enhancer(view).enhance(rng.uniform(0.7, 1.3))
    long_side = int(rng.integers(256, 401))
    factor = long_side / max(view.size)
    view = view.resize((max(1, round(view.width * factor)), max(1, round(view.height * factor))),
                       Image.Resampling.BICUBIC)
    return view, int(rng.integers(40, 96))


def build_mini(root: Path) -> dict:
    """Write the mini dataset's images under ``root`` and return its manifest."""
    rng = np.random.default_rng(SEED)
    images, queries, gnd, train = [], [], [], []
    for p_idx, name in enumerate(sorted(PICTURES)):
        photo = source_photo(name)
        test_regions = {0, 3} if p_idx % 2 == 0 else {1, 2}
        for r_idx, box in enumerate(region_boxes(*photo.size)):
            split = "test" if r_idx in test_regions else "train"
            paths = []
            for v in range(VIEWS_PER_INSTANCE):
                view, quality = make_view(photo, box, rng)
                rel = f"{split}/{name}_r{r_idx}_v{v}.jpg"
                (root / split).mkdir(parents=True, exist_ok=True)
                view.save(root / rel, format="JPEG", quality=quality)
                paths.append(rel)
            if split == "train":
                train.extend(paths)
                continue
            first = len(images)
            images.extend(paths[1:])
            queries.append(paths[0])
            gnd.append({"ok": list(range(first, first + len(paths) - 1)), "junk": [], "bbx": None,
                        "id": f"{name}_r{r_idx}"})
    return {"version": MINI_VERSION, "images": images, "queries": queries, "gnd": gnd, "train": train}


def files_digest(root: Path, relpaths: list[str]) -> str:
    h = hashlib.sha256()
    for rel in relpaths:
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()


def default_root() -> Path:
    """Where ``mini`` is built when no folder is given: in the cache, one folder per version."""
    return cache_root() / "datasets" / f"mini-v{MINI_VERSION}"


class NotAMiniFolderError(ValueError):
    """A folder given for ``mini`` holds files fsrlib did not put there; fsrlib refuses to build over them."""


#: Written into every manifest fsrlib builds, so a folder of ours can be told from a folder of the user's.
BUILT_BY = "fsrlib.data.datasets.mini"


def load_mini(root: str | Path | None = None) -> RetrievalDataset:
    """Load the mini dataset, building it first if absent, stale or damaged.

    It is built in a temporary folder beside ``root`` and renamed into place, so an interrupted build leaves
    nothing half-written. It never deletes what fsrlib did not create: ``root`` is built into only if it does
    not exist, is empty, or holds a mini build of fsrlib's and nothing else; any other folder (a folder of
    photos, a home folder given by mistake) raises :class:`NotAMiniFolderError` and is left untouched.
    """
    root = Path(root) if root is not None else default_root()
    manifest = _read_valid_manifest(root, root / "manifest.json")
    if manifest is None:
        _refuse_unless_ours(root)
        # one builder at a time (the lock file lives in the cache, never beside a folder of the user's)
        with locked([root], "mini dataset", lock_dir=cache_root() / "locks"):
            manifest = _read_valid_manifest(root, root / "manifest.json")  # built while we waited?
            if manifest is None:
                _refuse_unless_ours(root)
                manifest = _build_into(root)
    return RetrievalDataset(
        name="mini", root=root, images=tuple(manifest["images"]), queries=tuple(manifest["queries"]),
        gnd=tuple({**g, "bbx": None} for g in manifest["gnd"]), train=tuple(manifest["train"]),
        notes=("smoke-scale stand-in built from sample photographs in installed wheels; not a benchmark",),
        version=manifest["sha256"],
    )


def _refuse_unless_ours(root: Path) -> None:
    refusal = _why_not_ours(root)
    if refusal:
        raise NotAMiniFolderError(
            f"{root} {refusal}, so fsrlib will not build the mini dataset there (it never deletes or "
            f"overwrites files it did not create). Pass a new or empty folder as data_dir, or none at all to "
            f"use the cache ({default_root()}); to load a benchmark from that folder, name the benchmark "
            f"(e.g. dataset='holidays').")


def _why_not_ours(root: Path) -> str | None:
    """``None`` if fsrlib may (re)build mini at ``root``: it is absent, an empty folder, or a mini build of
    fsrlib's holding nothing but the files its manifest names; otherwise why not, in words."""
    if not root.exists() and not root.is_symlink():
        return None
    if not root.is_dir():
        return "is not a folder"
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return None
    try:
        manifest = json.loads((root / "manifest.json").read_text())
        listed = {*manifest["images"], *manifest["queries"], *manifest["train"], "manifest.json"}
        is_ours = manifest.get("built_by", BUILT_BY) == BUILT_BY and "sha256" in manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        is_ours, listed = False, set()
    foreign = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))
               if not p.is_dir() or p.is_symlink()] if is_ours else entries
    foreign = [f for f in foreign if f not in listed]
    if not foreign:
        return None
    shown = ", ".join(repr(f) for f in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    return (f"holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} that fsrlib's mini build did not "
            f"make ({shown})")


def _build_into(root: Path) -> dict:
    """Build mini in a fresh temporary folder beside ``root`` and move it into place; a previous build of ours
    at ``root`` (checked by the caller) is moved aside first and removed only once the new one is in place."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mini-building-", dir=root.parent))
    old = None
    try:
        manifest = build_mini(tmp)
        manifest["built_by"] = BUILT_BY
        manifest["sha256"] = files_digest(tmp, manifest["images"] + manifest["queries"] + manifest["train"])
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        if root.is_dir():
            os.chmod(tmp, root.stat().st_mode & 0o7777)  # the folder keeps its permissions
        if root.is_dir() and any(root.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=".mini-old-", dir=root.parent))
            os.replace(root, old)  # onto the empty folder mkdtemp made
            if _why_not_ours(old):  # something of the user's arrived since the check: put it all back
                os.replace(old, root)
                old = None
                _refuse_unless_ours(root)
        os.replace(tmp, root)  # onto nothing, or an empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return manifest


def _read_valid_manifest(root: Path, manifest_path: Path) -> dict | None:
    """The manifest if the folder is complete and its files hash as recorded, else ``None``."""
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") != MINI_VERSION:
            return None
        files = manifest["images"] + manifest["queries"] + manifest["train"]
        if files_digest(root, files) != manifest["sha256"]:
            return None
    except (OSError, ValueError, KeyError):
        return None
    return manifest
