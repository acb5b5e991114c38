"""Low bit-rate mobile search (paper Sec. 5.4, Fig. 8): what a query costs to send, and what it retrieves.

The client shrinks the query to an area ratio and sends it; the server
up-samples it to the network input, extracts a feature (and may enhance it)
and searches. The paper stores the small images as PNG "to eliminate the
influence of image coding"; a phone would send JPEG. A :class:`Codec` names
one way to send the small image; :func:`sent_queries` returns each query's
bits and the feature of what arrived.

Bits are the encoded file's size in bits (PIL, ``optimize=True``; JPEG with
4:2:0 chroma sub-sampling, PIL's default). The full-size reference is the
query's original file as stored by the benchmark.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.features.backbones import get_backbone_spec
from fsrlib.features.degrade import Degradation, Reference
from fsrlib.features.extract import image_features
from fsrlib.features.inputs import item_input
from fsrlib.paths import cache_dir_or_default, json_digest, load_arrays, save_arrays


@dataclass(frozen=True)
class Codec:
    """How the small query image travels: ``"png"`` (lossless) or ``"jpeg"`` at a ``quality`` in 1..95."""

    format: str = "png"
    quality: int = 95

    def __post_init__(self) -> None:
        if self.format not in ("png", "jpeg"):
            raise ValueError(f"codec format must be 'png' or 'jpeg', got {self.format!r}")
        if self.format == "jpeg" and not 1 <= self.quality <= 95:
            raise ValueError(f"JPEG quality must be in 1..95 (PIL's useful range), got {self.quality}")

    @property
    def name(self) -> str:
        return "PNG" if self.format == "png" else f"JPEG q{self.quality}"


def parse_codec(text: str) -> Codec:
    """``"png"`` or ``"jpeg75"`` -> :class:`Codec`."""
    text = text.lower().strip()
    if text == "png":
        return Codec("png")
    if text.startswith("jpeg") and text[4:].isdigit():
        return Codec("jpeg", int(text[4:]))
    raise ValueError(f"unknown codec {text!r}; use 'png' or 'jpeg<quality>', e.g. 'jpeg75'")


def encode(image: Image.Image, codec: Codec) -> tuple[int, Image.Image]:
    """Encode ``image`` with ``codec``; returns (bits sent, the RGB image the server decodes)."""
    buffer = io.BytesIO()
    if codec.format == "png":
        image.save(buffer, format="PNG", optimize=True)
    else:
        image.save(buffer, format="JPEG", quality=codec.quality, optimize=True)
    bits = 8 * buffer.tell()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return bits, decoded.convert("RGB")


def original_bits(dataset: RetrievalDataset) -> np.ndarray:
    """Bits of each query's full-size file as stored (the "send the photo" reference line of Fig. 8)."""
    return np.array([8 * dataset.path(q).stat().st_size for q in dataset.queries], dtype=np.int64)


@dataclass(frozen=True)
class SentQueries:
    """Bits per query ``(Q,)`` and the features ``(Q, D)`` of the decoded, up-sampled queries."""

    bits: np.ndarray
    features: np.ndarray


def sent_queries(dataset: RetrievalDataset, ratio: float, codec: Codec, *, backbone: str = "efficientnet_lite0",
                 degradation: Degradation = "uniform", reference: Reference = "input", device: str = "cpu",
                 batch_size: int = 16, cache_dir: str | Path | None = None) -> SentQueries:
    """Every query shrunk to ``ratio``, sent with ``codec``, decoded, bicubic up-sampled and extracted.

    Cached under ``<cache>/bitrate/`` by the query list (paths, boxes, file contents), backbone, ratio, codec and
    degradation: features and bit counts in one checksummed entry, checked on load (a damaged one is rebuilt).
    """
    spec = get_backbone_spec(backbone)
    items = dataset.split_items("query")
    key = {"kind": "bitrate", "version": 2, "dataset": dataset.name,
           "queries_sha256": dataset.listing_sha256(items), "n_images": len(items),
           "backbone": spec.name, "weights": spec.weights_id, "ratio": float(ratio), "codec": codec.name,
           "degradation": degradation, "reference": reference, "store_dtype": "float32"}
    digest = json_digest(key)
    path = cache_dir_or_default(cache_dir, "bitrate", f"{dataset.name}-{digest}.npz")
    cached = load_arrays(path, key, ("features", "bits"), what="bit-rate cache",
                         check=lambda arrays: _check_sent(arrays, len(items), spec.dim))
    if cached is not None:
        return SentQueries(bits=cached["bits"], features=cached["features"])
    bits, inputs = [], []
    for item in items:
        small = item_input(dataset, item, ratio, degradation=degradation, reference=reference,
                           size=spec.input_size).small
        n_bits, decoded = encode(small, codec)
        bits.append(n_bits)
        inputs.append(decoded.resize((spec.input_size, spec.input_size), Image.Resampling.BICUBIC))
    features = image_features(inputs, backbone, device, batch_size).astype(np.float32)
    save_arrays(path, {"features": features, "bits": np.asarray(bits, dtype=np.int64)}, key)
    return SentQueries(bits=np.asarray(bits, dtype=np.int64), features=features)


def _check_sent(arrays: dict[str, np.ndarray], n: int, dim: int) -> str | None:
    """What is wrong with a cached :class:`SentQueries` (shapes, dtypes, bit counts), or ``None``."""
    features, bits = arrays["features"], arrays["bits"]
    if features.shape != (n, dim) or features.dtype != np.float32:
        return f"its features have shape {features.shape} and dtype {features.dtype}, not ({n}, {dim}) float32"
    if bits.shape != (n,) or bits.dtype != np.int64 or (bits <= 0).any():
        return f"its bit counts have shape {bits.shape} and dtype {bits.dtype} or are not all positive"
    return None


def bitrate_curve(dataset: RetrievalDataset, ratios: Sequence[float], codecs: Sequence[Codec],
                  **kwargs) -> dict[tuple[str, float], SentQueries]:
    """:func:`sent_queries` for every (codec, ratio): ``{(codec name, ratio): SentQueries}``."""
    return {(codec.name, float(r)): sent_queries(dataset, r, codec, **kwargs) for codec in codecs for r in ratios}
