"""The one degradation used everywhere: high-resolution image -> small image -> network input.

Paper Sec. 1 and 5.2: query images are "reduced to different low-resolutions by
using uniform down-sample method", then "upsampled to 224x224 using bicubic
interpolation". A *down-scaling ratio* here is an **area** ratio, as in the
paper's figures (1/4 ... 1/64 with S_h = S_w = 1/2 ... 1/8); the linear factor
is its square root. Any ratio in (0, 1] is accepted.

Two choices the paper leaves open are explicit keyword arguments:

* ``method``: ``"uniform"`` is strided sub-sampling (every k-th pixel, taken
  at the centre of its k x k cell, with no low-pass filter; the paper's term),
  ``"antialias"`` is bicubic resizing with an anti-aliasing kernel (PIL's
  scaled bicubic, the MATLAB ``imresize`` convention used by SRCNN and VDSR).
* ``reference``: ``"input"`` (default) shrinks the 224x224 network input, so
  ratio 1/64 always means a 28x28 image whatever the photo's size;
  ``"original"`` shrinks the photo itself, so the small image keeps the photo's
  aspect ratio and a 1024x768 photo at 1/64 becomes 128x96. We default to
  ``"input"`` because it makes the information left at a ratio the same for
  every benchmark (Oxford's 1024px photos and Holidays' 2.5 Mpx photos alike),
  which is what Table 1's "the change depends on the amount of information
  lost" is about.

At ratio 1 the small image is the reference image itself, so the
high-resolution feature goes through exactly the same code path.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

Method = Literal["uniform", "antialias"]
Reference = Literal["input", "original"]

#: The paper's area down-scaling ratios (S_h = S_w = 1/2 ... 1/8).
PAPER_RATIOS: tuple[float, ...] = tuple(1.0 / k**2 for k in range(2, 9))
METHODS: tuple[str, ...] = ("uniform", "antialias")
REFERENCES: tuple[str, ...] = ("input", "original")


@dataclass(frozen=True)
class Degraded:
    """Result of :func:`degrade`: the small image and the network input made from it."""

    small: Image.Image
    upsampled: Image.Image
    ratio: float


def ratio_label(ratio: float) -> str:
    """``0.0625 -> '1/16'`` for the paper's ratios, else the decimal value."""
    inv = 1.0 / ratio
    return "1" if ratio == 1 else (f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-6 else f"{ratio:g}")


def small_size(width: int, height: int, ratio: float) -> tuple[int, int]:
    """Size of the small image for an area ``ratio``; each side is at least 1 px."""
    check_ratio(ratio)
    scale = math.sqrt(ratio)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_ratio(ratio: float) -> None:
    if not (isinstance(ratio, (int, float)) and 0.0 < ratio <= 1.0 and math.isfinite(ratio)):
        raise ValueError(f"down-scaling ratio must be an area ratio in (0, 1], e.g. 1/16; got {ratio!r}")


def uniform_downsample(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Strided sub-sampling to ``size = (w, h)``: pixel ``floor((i + 1/2) W / w)``.

    For an integer factor ``k`` this keeps pixels ``k*i + k//2``: no filtering,
    hence aliasing, as the paper's "uniform down-sampling".
    """
    arr = np.asarray(image)
    h_in, w_in = arr.shape[:2]
    w, h = size
    rows = np.minimum(((np.arange(h) + 0.5) * h_in / h).astype(np.int64), h_in - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * w_in / w).astype(np.int64), w_in - 1)
    return Image.fromarray(np.ascontiguousarray(arr[rows][:, cols]))


def downscale(image: Image.Image, size: tuple[int, int], method: Method) -> Image.Image:
    """Shrink ``image`` to ``size = (w, h)`` with the named method."""
    if method == "uniform":
        return uniform_downsample(image, size)
    if method == "antialias":
        return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    raise ValueError(f"unknown down-sampling method {method!r}; choose one of {METHODS}")


def degrade(
    image: Image.Image,
    ratio: float,
    *,
    method: Method = "uniform",
    reference: Reference = "input",
    size: int = 224,
) -> Degraded:
    """Make the low-resolution version of an RGB ``image`` at area ``ratio``.

    Returns the small image (what a phone would upload; its PNG size is the
    query's bit cost in Fig. 8) and its bicubic up-sampling to ``size x size``,
    the backbone's input. ``ratio=1`` gives the high-resolution input.
    """
    check_ratio(ratio)
    if method not in METHODS:
        raise ValueError(f"unknown down-sampling method {method!r}; choose one of {METHODS}")
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of {REFERENCES}")
    if image.mode != "RGB":
        raise ValueError(f"degrade expects an RGB image, got mode {image.mode!r}; use fsrlib.imageio.load_image")
    if reference == "input":
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    if ratio == 1.0:
        small = image
    else:
        small = downscale(image, small_size(*image.size, ratio), method)
    upsampled = small if small.size == (size, size) else small.resize((size, size), Image.Resampling.BICUBIC)
    return Degraded(small=small, upsampled=upsampled, ratio=float(ratio))


def png_bits(image: Image.Image) -> int:
    """Size in bits of ``image`` losslessly encoded as PNG (Fig. 8's query bits)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return 8 * buffer.tell()
