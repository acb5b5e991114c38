"""The student's training pairs: crops of each photo degraded at the training ratios, the frozen network's
activations before ``cache_block`` and the full-size crop's feature, cached per photo (see :mod:`fsrlib.methods.student`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.features.backbones import get_backbone_spec, shared_backbone
from fsrlib.features.degrade import degrade
from fsrlib.features.inputs import load_item
from fsrlib.methods.pairs import FeaturePairs
from fsrlib.methods.student import (
    FORMAT_VERSION,
    LITE0_BLOCKS,
    PAIR_FIELDS,
    ResolutionStudent,
    StudentConfig,
    check_config,
    student_digest,
)
from fsrlib.paths import cache_dir_or_default, file_sha256, load_arrays, save_arrays


def augmented_crop(image: Image.Image, scale: float, rng: np.random.Generator, cfg: StudentConfig) -> Image.Image:
    """A random crop of ``scale`` of the photo's area (aspect ratio in [3/4, 4/3], clipped to the photo; the whole
    photo at 1),
    flipped with probability 1/2 and colour-jittered, as ``cfg`` says."""
    width, height = image.size
    if scale < 1:
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = min(width, max(1, round(math.sqrt(scale * width * height * aspect))))
        h = min(height, max(1, round(math.sqrt(scale * width * height / aspect))))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        image = image.crop((x, y, x + w, y + h))
    if cfg.flip and rng.random() < 0.5:
        image = ImageOps.mirror(image)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color) if cfg.colour_jitter else ():
        image = enhancer(image).enhance(rng.uniform(1 - cfg.colour_jitter, 1 + cfg.colour_jitter))
    return image


def crop_inputs(image: Image.Image, crop: int, rng: np.random.Generator,
                cfg: StudentConfig) -> tuple[list[Image.Image], np.ndarray]:
    """Network inputs of one crop's pairs and their ``(M, 2)`` table ``(ratio, degradation index)``.

    The crop's full-size input comes first (ratio 1, degradation -1: the target's source), then one input per
    drawn training ratio, each with a drawn degradation. Crop 0 is the whole photo; crop ``c > 0`` covers a share
    of its area drawn uniformly from ``cfg.crop_area``.
    """
    view = augmented_crop(image, 1.0 if crop == 0 else float(rng.uniform(*cfg.crop_area)), rng, cfg)
    inputs, rows = [degrade(view, 1.0, reference=cfg.reference).upsampled], [(1.0, -1)]
    for k in rng.choice(len(cfg.ratios), size=min(cfg.ratios_per_crop, len(cfg.ratios)), replace=False):
        d = int(rng.integers(len(cfg.degradations)))
        inputs.append(degrade(view, cfg.ratios[k], degradation=cfg.degradations[d], reference=cfg.reference).upsampled)
        rows.append((cfg.ratios[k], d))
    return inputs, np.asarray(rows, dtype=np.float64)


@dataclass
class StudentPairs(FeaturePairs):
    """``P`` pairs: ``lr`` the frozen activations at the tail's input ``(P, C, H, W)``, ``hr`` the targets
    ``(P, D)`` (frozen features of the full-size crops, not normalised), ``ratio`` ``(P,)``
    (1.0 for a full-size crop), ``image`` ``(P,)`` index of the training photo, and ``degradation`` ``(P,)``
    index into the config's degradations (-1 at ratio 1)."""

    degradation: torch.Tensor



def file_digest(path: Path) -> str:
    """The photo's content digest (:func:`fsrlib.paths.file_sha256`, remembered while the file is unchanged), cut
    to 24 hex digits: the form the pair cache's keys and the crops' seeds use."""
    return file_sha256(path)[:24]


def pair_key(digest: str, bbx, exif_transpose: bool, crop: int, cfg: StudentConfig) -> dict:
    """Everything one crop's cached pairs depend on: the photo's content, crop box and EXIF handling, the crop's
    index, backbone and weights, and the pair settings (:data:`PAIR_FIELDS`). ``crops_per_image`` is not in it,
    so a larger budget reuses the crops of a smaller one."""
    spec = get_backbone_spec(cfg.backbone)
    settings = {f: getattr(cfg, f) for f in PAIR_FIELDS}
    return {"format": FORMAT_VERSION, "kind": "student-pairs", "content": digest, "bbx": bbx, "crop": crop,
            "exif_transpose": exif_transpose, "weights": spec.weights_id, "preprocess_version": spec.preprocess_version,
            **json.loads(json.dumps(settings))}


@torch.inference_mode()
def crop_arrays(frozen: ResolutionStudent, inputs: list[Image.Image], rows: np.ndarray, cfg: StudentConfig,
                batch: int = 16) -> dict[str, np.ndarray]:
    """Cached form of one crop: prefix activations ``lr`` ``(M, C, H, W)`` of its inputs, ``rows`` ``(M, 2)``
    and the frozen feature ``target`` ``(D,)`` of its full-size input (the first row)."""
    spec = get_backbone_spec(cfg.backbone)
    x = torch.cat([frozen.prefix(spec.to_tensor(inputs[i:i + batch]).to(cfg.device))
                   for i in range(0, len(inputs), batch)])
    target = frozen.from_cached(x[:1])[0].float().cpu().numpy()
    return {"lr": x.cpu().numpy().astype(cfg.store_dtype), "rows": rows, "target": target.astype(np.float32)}


def build_pairs(train: RetrievalDataset, cfg: StudentConfig, *, cache_dir: str | Path | None = None,
                progress: Callable[[int, int], None] | None = None) -> StudentPairs:
    """Pairs of every image of ``train``'s training split, computed once per crop and cached.

    ``lr`` holds the activations at the tail's input (block ``16 - trainable_blocks``): the frozen blocks after
    ``cache_block`` are applied once and cached too, so training runs only the tail. Crop ``c`` of a photo is
    drawn from its own generator, seeded by ``pair_seed``, the photo's content and ``c``, so it depends neither on
    the other photos in the list nor on ``crops_per_image``. ``progress(done, total)`` is called after each photo.
    """
    check_config(cfg)
    items = train.split_items("train")
    if not items:
        raise ValueError(f"{train.name} has no training images to make student pairs from")
    folder = cache_dir_or_default(cache_dir)
    frozen: list[ResolutionStudent] = []  # built on first need
    parts = []
    for i, item in enumerate(items):
        path, image = train.path(item.path), None
        digest = file_digest(path)
        for c in range(cfg.crops_per_image):
            key = pair_key(digest, item.bbx, train.exif_transpose, c, cfg)
            entry = folder / "student" / "pairs" / cfg.backbone / digest[:2] / f"{student_digest(key)}.npz"
            arrays = load_arrays(entry, key, ("lr", "rows", "target"), what="student cache")
            if arrays is None:
                frozen = frozen or [ResolutionStudent(shared_backbone(cfg.backbone, cfg.device), cfg.cache_block,
                                                      cfg.trainable_blocks)]
                if image is None:
                    image = load_item(train, item)
                rng = np.random.default_rng([cfg.pair_seed, int(digest[:15], 16), c])
                arrays = crop_arrays(frozen[0], *crop_inputs(image, c, rng, cfg), cfg)
                save_arrays(entry, arrays, key)
            cut = LITE0_BLOCKS - cfg.trainable_blocks
            if cut > cfg.cache_block:
                key_cut = key | {"cut": cut}
                entry_cut = entry.with_name(f"{student_digest(key_cut)}.npz")
                at_cut = load_arrays(entry_cut, key_cut, ("lr",), what="student cache")
                if at_cut is None:
                    frozen = frozen or [ResolutionStudent(shared_backbone(cfg.backbone, cfg.device), cfg.cache_block,
                                                          cfg.trainable_blocks)]
                    with torch.inference_mode():
                        lr = frozen[0].middle(torch.from_numpy(arrays["lr"]).to(cfg.device).float())
                    at_cut = {"lr": lr.cpu().numpy().astype(cfg.store_dtype)}
                    save_arrays(entry_cut, at_cut, key_cut)
                arrays = {**arrays, "lr": at_cut["lr"]}
            parts.append(_as_pairs(arrays, i))
        if progress is not None:
            progress(i + 1, len(items))
    return StudentPairs.concat(parts)


def _as_pairs(arrays: dict[str, np.ndarray], image: int) -> StudentPairs:
    rows, n = arrays["rows"], len(arrays["rows"])
    return StudentPairs(lr=torch.from_numpy(arrays["lr"]), hr=torch.from_numpy(arrays["target"]).expand(n, -1),
                        ratio=torch.from_numpy(rows[:, 0].copy()),
                        degradation=torch.from_numpy(rows[:, 1].astype(np.int64)), image=torch.full((n,), image))


