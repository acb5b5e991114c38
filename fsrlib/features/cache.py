"""The verified, resumable on-disk feature cache: final entries and the chunks of an unfinished run.

A cache entry is keyed by everything that changes the numbers: dataset name,
the exact image list (paths and crop boxes), backbone name and weights,
preprocessing version, ratio, degradation and reference, storage
dtype, decoding and compute precision when they are not the defaults, and the
format version (:class:`FeatureRecipe` holds the fields that say what the features are). The key's digest names
the file and the full key is stored
inside it and compared on load, so a stale entry is never used. A corrupt
entry (unreadable, wrong shape, checksum mismatch) is reported with a warning,
deleted and rebuilt.

While features are computed, each *chunk* (rows ``[start, stop)`` of the split)
goes to the entry's ``.partial`` folder with its own checksum and the batch
*unit* it was computed with. Batches lie on one global grid (rows
``[k * unit, (k + 1) * unit)``), so chunks from an interrupted run, from
another ``chunk_size`` or from other ranks of a distributed run fit together
into exactly the array an uninterrupted run gives. A chunk that is damaged,
misplaced or computed with another unit is reported, deleted and recomputed.
"""
from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsrlib.data.datasets import ImageItem, RetrievalDataset
from fsrlib.features.backbones import BackboneSpec, get_backbone_spec
from fsrlib.features.degrade import DEGRADATIONS, REFERENCES, Degradation, Reference, ratio_label
from fsrlib.paths import arrays_sha256, atomic_path, discard, json_digest, load_arrays, save_arrays

#: 3: the degradation is stored under "degradation" (formats 1-2 wrote "method"); older entries are not read.
FORMAT_VERSION = 3
STORE_DTYPES = ("float16", "float32")
DECODINGS = ("full", "draft")
PRECISIONS = ("float32", "float16", "bfloat16")
Interval = tuple[int, int]


@dataclass(frozen=True)
class FeatureRecipe:
    """What the features are; every field enters the cache key (the defaults add nothing to it)."""

    backbone: str = "efficientnet_lite0"
    degradation: Degradation = "uniform"
    reference: Reference = "input"
    store_dtype: str = "float16"
    #: "draft": JPEGs decoded at reduced size (PIL ``Image.draft``), at least the input size; changes pixels.
    decode: str = "full"
    #: "float16" / "bfloat16": the forward runs under autocast in that dtype (GPU tensor cores); changes the
    #: numerics: float16 by ~1e-5 in cosine, bfloat16 by ~1e-3 (it moved mini's mAP at ratio 1 by 0.007).
    precision: str = "float32"

    def __post_init__(self) -> None:
        for name, allowed in (("degradation", DEGRADATIONS), ("reference", REFERENCES), ("store_dtype", STORE_DTYPES),
                              ("decode", DECODINGS), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.decode == "draft" and self.reference != "input":
            raise ValueError("decode='draft' shrinks the photo while decoding, so it only works with "
                             "reference='input' (reference='original' degrades the photo's own pixels)")
        get_backbone_spec(self.backbone)  # unknown names fail here, listing the known ones


def cache_key(dataset: RetrievalDataset, items: Sequence[ImageItem], spec: BackboneSpec, ratio: float,
              degradation: str, reference: str, store_dtype: str, transform_id: str | None = None,
              network_id: str | None = None, *,
              decode: str = "full", precision: str = "float32") -> dict:
    """Everything a cached feature array depends on, as a JSON-able dict.

    The image listing covers each path, crop box and the digest of the file's bytes
    (:meth:`~fsrlib.data.datasets.RetrievalDataset.listing_sha256`), plus the dataset's content ``version``.
    ``decode="draft"`` (reduced-size JPEG decoding) and an autocast ``precision``
    change the numbers, so they enter the key only when they are not the defaults.
    ``transform_id``: the ``cache_id`` of the pixel transform applied to the degraded query before extraction (an
    ISR network, :class:`fsrlib.features.extract.PixelTransform`), stored under ``"upscaler"`` at every ratio below 1.
    ``network_id``: the ``cache_id`` of a network that replaces the backbone's (:class:`fsrlib.features.extract.NetworkVariant`,
    e.g. a student), stored under ``"network"`` at every ratio.
    """
    digest = dataset.listing_sha256(items)
    extra: dict = {"upscaler": transform_id} if transform_id is not None and ratio != 1.0 else {}
    if network_id is not None:
        extra["network"] = network_id
    if decode != "full":
        extra["decode"] = decode
    if precision != "float32":
        extra["precision"] = precision
    return extra | {
        "format": FORMAT_VERSION, "dataset": dataset.name, "dataset_version": dataset.version,
        "images_sha256": digest, "n_images": len(items),
        "backbone": spec.name, "weights": spec.weights_id, "preprocess_version": spec.preprocess_version,
        "input_size": spec.input_size, "ratio": float(ratio), "degradation": degradation, "reference": reference,
        "store_dtype": store_dtype,
    }


def key_digest(key: dict) -> str:
    return json_digest(key)


def cache_path(cache_dir: Path, key: dict, split: str) -> Path:
    label = ratio_label(key["ratio"]).replace("/", "_")
    name = f"{split}-r{label}-{key['degradation']}-{key['reference']}-{key_digest(key)}.npz"
    return cache_dir / "features" / key["dataset"] / key["backbone"] / name


def _sha256(features: np.ndarray) -> str:
    return arrays_sha256({"features": features})  # a chunk's checksum is its entry's, for the rows it holds


def save_entry(path: Path, features: np.ndarray, key: dict) -> None:
    """Write an entry atomically (temporary name, then rename) with its key and checksum."""
    save_arrays(path, {"features": features}, key)


def load_entry(path: Path, key: dict, dim: int) -> np.ndarray | None:
    """The cached array if ``path`` holds a valid entry for ``key``; ``None`` if absent.

    A damaged or mismatched file is reported, removed and treated as absent.
    """
    def check(arrays: dict[str, np.ndarray]) -> str | None:
        features = arrays["features"]
        if features.shape != (key["n_images"], dim) or features.dtype != np.dtype(key["store_dtype"]):
            return f"it has shape {features.shape} and dtype {features.dtype}"
        return None

    arrays = load_arrays(path, key, ("features",), what="feature cache", check=check)
    return None if arrays is None else arrays["features"]


# ---------------------------------------------------------------- chunks of an unfinished run
def partial_dir(entry: Path) -> Path:
    return entry.with_name(entry.name + ".partial")


def save_chunk(entry: Path, start: int, features: np.ndarray, unit: int) -> None:
    """Write rows ``[start, start + len(features))`` of ``entry`` atomically, with checksum and batch unit."""
    final = partial_dir(entry) / f"chunk_{start:09d}_{start + len(features):09d}.npz"
    with atomic_path(final) as tmp, open(tmp, "wb") as f:
        np.savez(f, features=features, sha256=_sha256(features), unit=unit)


def _read_chunk(file: Path, n_images: int, dim: int, store_dtype: str, unit: int) -> tuple[Interval, np.ndarray]:
    """One chunk's rows and array; raises ``ValueError`` saying what is wrong with it."""
    try:
        start, stop = (int(v) for v in file.stem.split("_")[1:3])
        with np.load(file, allow_pickle=False) as data:
            features, digest, stored_unit = data["features"], str(data["sha256"]), int(data["unit"])
    except Exception as err:  # empty, truncated, not a zip, missing field, odd name
        raise ValueError(f"it cannot be read ({type(err).__name__}: {err})") from None
    if features.shape != (stop - start, dim) or features.dtype != np.dtype(store_dtype):
        raise ValueError(f"it has shape {features.shape} and dtype {features.dtype}")
    if _sha256(features) != digest:
        raise ValueError("its checksum does not match (corrupt)")
    if stored_unit != unit:
        raise ValueError(f"it was computed in batches of {stored_unit}, this run uses {unit}")
    if not (0 <= start < stop <= n_images and start % unit == 0 and (stop % unit == 0 or stop == n_images)):
        raise ValueError(f"rows [{start}, {stop}) do not lie on the batch grid of {n_images} images")
    return (start, stop), features


def scan_chunks(entry: Path, n_images: int, dim: int, store_dtype: str, unit: int,
                keep_arrays: bool = False) -> dict[Interval, np.ndarray | None]:
    """The valid, non-overlapping chunks in ``entry``'s ``.partial`` folder, by ``(start, stop)``.

    Any other chunk file is deleted, with one warning per folder that says why,
    so that it is recomputed. Arrays are kept only with ``keep_arrays``.
    """
    folder = partial_dir(entry)
    found: dict[Interval, np.ndarray | None] = {}
    dropped: list[str] = []
    for file in sorted(folder.glob("chunk_*.npz")) if folder.is_dir() else []:
        try:
            rows, features = _read_chunk(file, n_images, dim, store_dtype, unit)
            if any(rows[0] < b and a < rows[1] for a, b in found):
                raise ValueError(f"rows {rows} overlap another chunk")
        except ValueError as err:
            dropped.append(f"{file.name}: {err}")
            discard(file, "feature cache chunk")
            continue
        found[rows] = features if keep_arrays else None
    if dropped:
        warnings.warn(f"{len(dropped)} unusable chunk(s) of an earlier run in {folder} were deleted and will be "
                      f"recomputed ({'; '.join(dropped[:3])}{'; ...' if len(dropped) > 3 else ''})", stacklevel=3)
    return found


def missing_intervals(done: Sequence[Interval], n_images: int, chunk_rows: int) -> list[Interval]:
    """Rows of ``[0, n_images)`` not in ``done``, cut at multiples of ``chunk_rows`` (the uninterrupted run's chunks)."""
    gaps, position = [], 0
    for start, stop in sorted(done):
        if start > position:
            gaps.append((position, start))
        position = max(position, stop)
    if position < n_images:
        gaps.append((position, n_images))
    return _split_at_grid(gaps, chunk_rows)


def _split_at_grid(intervals: list[Interval], chunk_rows: int) -> list[Interval]:
    out = []
    for start, stop in intervals:
        while start < stop:
            end = min(stop, (start // chunk_rows + 1) * chunk_rows)
            out.append((start, end))
            start = end
    return out


def assemble_entry(entry: Path, key: dict, dim: int, unit: int) -> np.ndarray:
    """Join ``entry``'s chunks into the final entry (checksummed), save it and remove the ``.partial`` folder."""
    n = key["n_images"]
    chunks = scan_chunks(entry, n, dim, key["store_dtype"], unit, keep_arrays=True)
    rows = sorted(chunks)
    if not rows or [a for a, _ in rows] != [0, *(b for _, b in rows[:-1])] or rows[-1][1] != n:
        raise RuntimeError(f"the chunks in {partial_dir(entry)} cover rows {rows}, not [0, {n}); "
                           "rerun the extraction to compute the missing ones")
    features = np.concatenate([chunks[r] for r in rows])
    save_entry(entry, features, key)
    shutil.rmtree(partial_dir(entry), ignore_errors=True)
    return features
