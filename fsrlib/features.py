"""Batched feature extraction at every scale, with a verified, resumable on-disk cache.

A cache entry is keyed by everything that changes the numbers: dataset name,
the exact image list (paths and crop boxes), backbone name and weights,
preprocessing version, ratio, degradation method and reference, storage
dtype, and this module's format version. The key's digest names the file and
the full key is stored inside it and compared on load, so a stale entry is
never used. A corrupt entry (unreadable, wrong shape, checksum mismatch) is
reported with a warning, deleted and rebuilt.

Extraction writes chunks of ``chunk_size`` images to a ``.partial`` folder as it
goes; an interrupted run resumes from the chunks it finds. Features are stored
as float16 by default (``benchmarks/bench_float16.py`` measures that it changes
no mAP on our data) and returned as float32.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .backbones import BackboneSpec, get_backbone_spec, load_backbone
from .datasets import ImageItem, RetrievalDataset
from .degrade import Method, Reference, degrade, ratio_label
from .imageio import load_image
from .isr import Upscaler
from .paths import cache_root

FORMAT_VERSION = 2
STORE_DTYPES = ("float16", "float32")


def cache_key(dataset: RetrievalDataset, items: Sequence[ImageItem], spec: BackboneSpec, ratio: float,
              method: str, reference: str, store_dtype: str, upscaler: Upscaler | None = None) -> dict:
    """Everything a cached feature array depends on, as a JSON-able dict.

    The image listing covers each path, crop box and file size (a replaced file
    almost always changes size), plus the dataset's content ``version``.
    """
    listing = [[it.path, it.bbx, _file_size(dataset.path(it.path))] for it in items]
    digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    extra = {"upscaler": upscaler.cache_id} if upscaler is not None and ratio != 1.0 else {}
    return extra | {
        "format": FORMAT_VERSION, "dataset": dataset.name, "dataset_version": dataset.version,
        "images_sha256": digest, "n_images": len(items),
        "backbone": spec.name, "weights": spec.weights_id, "preprocess_version": spec.preprocess_version,
        "input_size": spec.input_size, "ratio": float(ratio), "method": method, "reference": reference,
        "store_dtype": store_dtype,
    }


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1  # a missing file is reported by the loader when it is read


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cache_path(cache_dir: Path, key: dict, split: str) -> Path:
    label = ratio_label(key["ratio"]).replace("/", "_")
    name = f"{split}-r{label}-{key['method']}-{key['reference']}-{key_digest(key)}.npz"
    return cache_dir / "features" / key["dataset"] / key["backbone"] / name


def save_entry(path: Path, features: np.ndarray, key: dict) -> None:
    """Write an entry atomically (temporary name, then rename) with its key and checksum."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(features.tobytes()).hexdigest()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, features=features, key=json.dumps(key, sort_keys=True), sha256=digest)
    os.replace(tmp, path)


def load_entry(path: Path, key: dict, dim: int) -> np.ndarray | None:
    """The cached array if ``path`` holds a valid entry for ``key``; ``None`` if absent.

    A damaged or mismatched file is reported, removed and treated as absent.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            features, stored_key, digest = data["features"], str(data["key"]), str(data["sha256"])
        problem = None
        if json.loads(stored_key) != key:
            problem = "its key does not match (stale entry)"
        elif features.shape != (key["n_images"], dim) or features.dtype != np.dtype(key["store_dtype"]):
            problem = f"it has shape {features.shape} and dtype {features.dtype}"
        elif hashlib.sha256(features.tobytes()).hexdigest() != digest:
            problem = "its checksum does not match (corrupt)"
    except Exception as err:  # zip, pickle and JSON errors all mean "unreadable"
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    if problem:
        warnings.warn(f"feature cache {path} is unusable because {problem}; rebuilding it", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return features


@lru_cache(maxsize=2)
def _backbone(name: str, device: str) -> nn.Module:
    return load_backbone(name, device)


def _prepare(dataset: RetrievalDataset, item: ImageItem, ratios: Sequence[float], method: Method,
             reference: Reference, size: int, upscaler: Upscaler | None) -> list:
    image = load_image(dataset.path(item.path), item.bbx, exif_transpose=dataset.exif_transpose)
    inputs = [degrade(image, r, method=method, reference=reference, size=size).upsampled for r in ratios]
    return inputs if upscaler is None else [upscaler(x, r) for x, r in zip(inputs, ratios)]


def extract_features(
    dataset: RetrievalDataset,
    split: str,
    ratios: Sequence[float] = (1.0,),
    *,
    backbone: str = "efficientnet_lite0",
    method: Method = "uniform",
    reference: Reference = "input",
    device: str = "cpu",
    batch_size: int = 8,
    chunk_size: int = 256,
    store_dtype: str = "float16",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int = 2,
    on_chunk: Callable[[float, int], None] | None = None,
    upscaler: Upscaler | None = None,
) -> dict[float, np.ndarray]:
    """Features of ``dataset``'s ``split`` at every area ratio: ``{ratio: (N, D) float32}``.

    ``ratio=1`` is the high-resolution feature. Each image is read once per
    chunk and degraded at every ratio still missing from the cache.
    ``on_chunk(ratio, start)`` is called after each chunk is saved (tests use it
    to simulate an interruption). ``upscaler`` (an ISR model, :class:`fsrlib.isr.Upscaler`)
    replaces the bicubic input by its super-resolved version ("ISR then features").
    """
    if store_dtype not in STORE_DTYPES:
        raise ValueError(f"store_dtype must be one of {STORE_DTYPES}, got {store_dtype!r}")
    spec = get_backbone_spec(backbone)
    items = dataset.split_items(split)
    if not items:
        raise ValueError(f"{dataset.name} has no images in split {split!r}")
    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    if upscaler is not None:
        unsupported = [r for r in ratios if not upscaler.supports(r)]
        if unsupported:
            raise ValueError(f"upscaler {upscaler.name} was not trained for ratios {unsupported}")
    keys = {r: cache_key(dataset, items, spec, r, method, reference, store_dtype, upscaler) for r in ratios}
    paths = {r: cache_path(cache, keys[r], split) for r in ratios}
    out = {r: f for r in ratios if (f := load_entry(paths[r], keys[r], spec.dim)) is not None}
    missing = [r for r in ratios if r not in out]
    if missing:
        model = _backbone(backbone, str(torch.device(device)))
        partial = {r: _resume_chunks(paths[r], spec.dim, store_dtype) for r in missing}
        bar = tqdm(total=len(items) * len(missing), disable=not progress,
                   desc=f"{dataset.name}/{split} {backbone}", unit="img")
        bar.update(sum(len(c) for chunks in partial.values() for c in chunks.values()))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(items), chunk_size):
                todo = [r for r in missing if start not in partial[r]]
                if not todo:
                    continue
                chunk = items[start:start + chunk_size]
                inputs = list(pool.map(lambda it: _prepare(dataset, it, todo, method, reference, spec.input_size,
                                                           upscaler), chunk))
                for j, r in enumerate(todo):
                    feats = _forward(model, spec, [imgs[j] for imgs in inputs], batch_size, device)
                    partial[r][start] = feats.astype(store_dtype)
                    _save_chunk(paths[r], start, partial[r][start])
                    bar.update(len(chunk))
                    if on_chunk is not None:
                        on_chunk(r, start)
        bar.close()
        for r in missing:
            features = np.concatenate([partial[r][s] for s in sorted(partial[r])])
            save_entry(paths[r], features, keys[r])
            shutil.rmtree(_partial_dir(paths[r]), ignore_errors=True)
            out[r] = features
    return {r: out[r].astype(np.float32) for r in ratios}


def image_features(images: Sequence, backbone: str = "efficientnet_lite0", device: str = "cpu",
                   batch_size: int = 8) -> np.ndarray:
    """Features ``(N, D)`` float32 of PIL images already at the backbone's input size (not cached)."""
    spec = get_backbone_spec(backbone)
    return _forward(_backbone(backbone, str(torch.device(device))), spec, list(images), batch_size, device)


@torch.inference_mode()
def _forward(model: nn.Module, spec: BackboneSpec, images: list, batch_size: int, device: str) -> np.ndarray:
    parts = [model(spec.to_tensor(images[i:i + batch_size]).to(device)).float().cpu().numpy()
             for i in range(0, len(images), batch_size)]
    return np.concatenate(parts)


def _partial_dir(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _save_chunk(path: Path, start: int, feats: np.ndarray) -> None:
    folder = _partial_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"chunk_{start:08d}.tmp.npy"
    np.save(tmp, feats)
    os.replace(tmp, folder / f"chunk_{start:08d}.npy")


def _resume_chunks(path: Path, dim: int, store_dtype: str) -> dict[int, np.ndarray]:
    """Chunks an interrupted run left behind (unreadable ones are dropped and recomputed)."""
    chunks: dict[int, np.ndarray] = {}
    folder = _partial_dir(path)
    for file in sorted(folder.glob("chunk_*.npy")) if folder.is_dir() else []:
        if file.name.endswith(".tmp.npy"):
            continue
        try:
            arr = np.load(file, allow_pickle=False)
            if arr.ndim == 2 and arr.shape[1] == dim and arr.dtype == np.dtype(store_dtype):
                chunks[int(file.stem.split("_")[1])] = arr
                continue
        except (OSError, ValueError):
            pass
        file.unlink(missing_ok=True)
    return chunks
