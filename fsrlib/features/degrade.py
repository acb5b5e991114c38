"""The one degradation used everywhere: high-resolution image -> small image -> network input.

Paper Sec. 1 and 5.2: query images are "reduced to different low-resolutions by
using uniform down-sample method", then "upsampled to 224x224 using bicubic
interpolation". A *down-scaling ratio* here is an **area** ratio, as in the
paper's figures (1/4 ... 1/64 with S_h = S_w = 1/2 ... 1/8); the linear factor
is its square root. Any ratio in (0, 1] is accepted that leaves at least one
pixel per side (:func:`small_size` names the smallest one for a size).

Two choices the paper leaves open are explicit keyword arguments:

* ``degradation``: ``"uniform"`` is strided sub-sampling (every k-th pixel, taken
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
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

Degradation = Literal["uniform", "antialias"]
Reference = Literal["input", "original"]

#: The paper's area down-scaling ratios (S_h = S_w = 1/2 ... 1/8).
PAPER_RATIOS: tuple[float, ...] = tuple(1.0 / k**2 for k in range(2, 9))
DEGRADATIONS: tuple[str, ...] = ("uniform", "antialias")
REFERENCES: tuple[str, ...] = ("input", "original")


@dataclass(frozen=True)
class Degraded:
    """Result of :func:`degrade`: the small image and the network input made from it."""

    small: Image.Image
    upsampled: Image.Image
    ratio: float


#: Largest network input side :func:`degrade` makes (a 4096 x 4096 RGB image is 48 MiB); the paper's is 224.
MAX_INPUT_SIZE: int = 4096


def ratio_label(ratio: float) -> str:
    """``0.0625 -> '1/16'`` for the paper's ratios, else the decimal value."""
    ratio = float(ratio)
    if not (0.0 < ratio <= 1.0 and math.isfinite(1.0 / ratio)):
        return f"{ratio:g}"
    inv = 1.0 / ratio
    return "1" if ratio == 1 else (f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-6 else f"{ratio:g}")


def check_ratio(ratio: float) -> float:
    """``ratio`` as a float once it is a valid area ratio in (0, 1]; else a ``ValueError`` saying why.

    Any real number type is accepted (``int``, ``float``, ``fractions.Fraction``,
    numpy scalars); strings and booleans are not. Whether a ratio leaves at
    least one pixel per side depends on the image: see :func:`small_size`.
    """
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, numbers.Real):
        raise ValueError(f"a down-scaling ratio must be a real number (e.g. 1/16, 0.0625, Fraction(1, 16)), "
                         f"not a {type(ratio).__name__}: {ratio!r}")
    value = float(ratio)
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"down-scaling ratio must be an area ratio in (0, 1], e.g. 1/16; got {ratio!r}"
                         + (" (a ratio above 1 would enlarge the image)" if value > 1 and math.isfinite(value) else ""))
    return value


def check_ratios(ratios: Iterable[float]) -> tuple[float, ...]:
    """``ratios`` as a tuple of floats once it lists at least one valid area ratio (:func:`check_ratio`), each
    once; else a ``ValueError`` naming the offending value.

    An empty list would run an experiment that measures nothing, and a ratio
    listed twice would score every method twice at it, so both are refused.
    """
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Iterable):
        raise ValueError(f"ratios must be a list of area ratios such as (1/4, 1/16), not {ratios!r}")
    values = tuple(ratios)
    if not values:
        raise ValueError("no down-scaling ratio given: list at least one area ratio in (0, 1], e.g. (1/4, 1/16)")
    checked = tuple(check_ratio(r) for r in values)
    repeated = [r for r in dict.fromkeys(checked) if checked.count(r) > 1]
    if repeated:
        named = ", ".join(f"{ratio_label(r)} ({checked.count(r)} times)" for r in repeated)
        raise ValueError(f"ratio listed more than once: {named} in {[ratio_label(r) for r in checked]}; "
                         "list each ratio once")
    return checked


def smallest_ratio(width: int, height: int) -> float:
    """The smallest area ratio that leaves a ``width x height`` image one pixel on its shorter side."""
    return 1.0 / min(width, height) ** 2


def small_size(width: int, height: int, ratio: float) -> tuple[int, int]:
    """Size of the small image for an area ``ratio`` (each side scaled by ``sqrt(ratio)``, rounded).

    A ratio that leaves less than one pixel on a side is refused, naming the
    smallest ratio for that size (:func:`smallest_ratio`).
    """
    ratio = check_ratio(ratio)
    scale = math.sqrt(ratio)
    if min(width, height) * scale < 1.0 - 1e-9:
        least = smallest_ratio(width, height)
        raise ValueError(f"ratio {ratio:g} leaves less than one pixel per side of a {width}x{height} image "
                         f"({width * scale:.3g} x {height * scale:.3g} px); the smallest ratio for this size is "
                         f"1/{min(width, height) ** 2} = {least:.3g}")
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_size(size: int) -> int:
    """``size`` (the network input side, in pixels) once it is an int in [1, :data:`MAX_INPUT_SIZE`]."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
        raise ValueError(f"size is the side of the square network input in pixels (224 in the paper); got {size!r}")
    if not 1 <= size <= MAX_INPUT_SIZE:
        raise ValueError(f"size is the side of the square network input in pixels (224 in the paper); got {size}, "
                         f"outside [1, {MAX_INPUT_SIZE}] (a {size}x{size} RGB image would take "
                         f"{3 * size * size / 2**20:.3g} MiB)")
    return int(size)


def uniform_indices(in_size: int, out_size: int) -> np.ndarray:
    """The ``out_size`` indices along one axis that :func:`uniform_downsample` keeps: ``floor((i + 1/2) in / out)``."""
    return np.minimum(((np.arange(out_size) + 0.5) * in_size / out_size).astype(np.int64), in_size - 1)


def uniform_kept_positions(in_size: int, out_size: int) -> np.ndarray:
    """Where bicubic up-sampling back to ``in_size`` puts each kept pixel, against where it was taken from.

    Returns ``(out_size, 2)`` rows ``(taken, shown)`` in full-size pixel coordinates: :func:`uniform_indices`, and
    the centre PIL's resize gives small pixel ``j``, ``(j + 1/2) in / out - 1/2``. For an even integer factor ``k``
    every kept pixel is shown half a pixel up and left of where it was taken (``k//2`` against ``(k-1)/2``); for an
    odd one, where it was taken; for a factor that does not divide the side, the offset wanders along the axis.
    """
    taken = uniform_indices(in_size, out_size).astype(np.float64)
    shown = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    return np.stack([taken, shown], axis=1)


def uniform_downsample(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Strided sub-sampling to ``size = (w, h)``: pixel ``floor((i + 1/2) W / w)``.

    For an integer factor ``k`` this keeps pixels ``k*i + k//2``: no filtering,
    hence aliasing, as the paper's "uniform down-sampling".
    """
    arr = np.asarray(image)
    h_in, w_in = arr.shape[:2]
    w, h = size
    rows, cols = uniform_indices(h_in, h), uniform_indices(w_in, w)
    return Image.fromarray(np.ascontiguousarray(arr[rows][:, cols]))


def downscale(image: Image.Image, size: tuple[int, int], degradation: Degradation) -> Image.Image:
    """Shrink ``image`` to ``size = (w, h)`` with the named degradation."""
    if degradation == "uniform":
        return uniform_downsample(image, size)
    if degradation == "antialias":
        return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    raise ValueError(f"unknown degradation {degradation!r}; choose one of {DEGRADATIONS}")


def degrade(
    image: Image.Image,
    ratio: float,
    *,
    degradation: Degradation = "uniform",
    reference: Reference = "input",
    size: int = 224,
) -> Degraded:
    """Make the low-resolution version of an RGB ``image`` at area ``ratio``.

    Returns the small image (what a phone would upload; its PNG size is the
    query's bit cost in Fig. 8) and its bicubic up-sampling to ``size x size``,
    the backbone's input. ``ratio=1`` gives the high-resolution input.
    """
    ratio = check_ratio(ratio)
    size = check_size(size)
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {degradation!r}; choose one of {DEGRADATIONS}")
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of {REFERENCES}")
    if image.mode != "RGB":
        raise ValueError(f"degrade expects an RGB image, got mode {image.mode!r}; use fsrlib.data.imageio.load_image")
    if reference == "input":
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    if ratio == 1.0:
        small = image
    else:
        small = downscale(image, small_size(*image.size, ratio), degradation)
    upsampled = small if small.size == (size, size) else small.resize((size, size), Image.Resampling.BICUBIC)
    return Degraded(small=small, upsampled=upsampled, ratio=ratio)


def png_bits(image: Image.Image) -> int:
    """Size in bits of ``image`` losslessly encoded as PNG (Fig. 8's query bits)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return 8 * buffer.tell()
