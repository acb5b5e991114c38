"""Reading images with errors that say what went wrong and where."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: A crop box ``(x1, y1, x2, y2)`` in pixels of the full image (what a dataset item stores); the functions below
#: take any four numbers and check them.
Box = tuple[float, float, float, float]


class ImageReadError(OSError):
    """An image file is missing, unreadable or not an image."""


#: Single-channel modes deeper than 8 bits: integer ones are read as 16-bit (0..65535; older Pillow opens a
#: 16-bit PNG as "I"), "F" as intensities in [0, 1]. Pillow's own ``convert("RGB")`` clips them at 255.
HIGH_DEPTH_MODES: tuple[str, ...] = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def load_image(path: str | Path, bbx: Sequence[float] | None = None, *, exif_transpose: bool = False,
               draft_size: int | None = None) -> Image.Image:
    """Load ``path`` as an RGB PIL image (8 bits per channel), optionally cropped to ``bbx``.

    ``bbx`` is ``(x1, y1, x2, y2)`` in pixels, the corner convention of the
    Oxford/Paris ground truth (not ``(x, y, w, h)``); it is clipped to the image
    and rounded outwards. ``exif_transpose`` applies the EXIF orientation tag
    (Holidays photos need it; Oxford/Paris boxes refer to the raw pixel grid).
    A grey image deeper than 8 bits is scaled, not clipped: see :func:`to_rgb8`.
    ``draft_size`` decodes a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain (PIL ``Image.draft``,
    several times faster), keeping the image, or its box, at least that many pixels on each side; the
    box is scaled to match. It changes the pixels, so a cache must key on it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            scale = _draft(img, bbx, draft_size) if draft_size else 1
            img.load()
            if exif_transpose:
                img = ImageOps.exif_transpose(img)
            rgb = to_rgb8(img, source=str(path))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"{path} is refused by PIL as a possible decompression bomb ({err}). If you trust the file, raise the "
            "limit before loading (`PIL.Image.MAX_IMAGE_PIXELS = None`, or a larger pixel count), or shrink the "
            "image.") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(f"not an image file (or an unsupported format): {path}") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"corrupt or truncated image file: {path} ({err})") from err
    if bbx is not None:
        rgb = crop_box(rgb, bbx if scale == 1 else [float(v) / scale for v in bbx], source=str(path))
    return rgb



def _draft(img: Image.Image, bbx: Sequence[float] | None, draft_size: int) -> int:
    """Ask a JPEG decoder for the largest 1/s scale (s = 2, 4, 8) that keeps ``bbx`` (or the image) at least
    ``draft_size`` px on each side; returns s (1: full size, or not a JPEG)."""
    w, h = img.size
    if bbx is not None and len(bbx) == 4:
        w_box, h_box = abs(float(bbx[2]) - float(bbx[0])), abs(float(bbx[3]) - float(bbx[1]))
    else:
        w_box, h_box = w, h
    s = next((s for s in (8, 4, 2) if s * draft_size <= min(w_box, h_box)), 1)
    drafted = img.draft("RGB", (w // s, h // s)) if s > 1 else None
    return 1 if drafted is None else round(w / drafted[1][2])


def to_rgb8(image: Image.Image, *, source: str = "image") -> Image.Image:
    """``image`` as 8-bit RGB, with grey images deeper than 8 bits scaled to 0..255 instead of clipped.

    Integer modes (a 16-bit PNG or TIFF) map 0..65535 to 0..255 (``round(v / 257)``);
    float ``"F"`` (a float TIFF) must hold intensities in [0, 1] and maps them to
    ``round(255 v)``. Values outside those ranges (a 32-bit integer image, a
    float image in other units, NaN) raise :class:`ImageReadError` naming ``source``
    rather than being guessed at. Every other mode goes through PIL's ``convert("RGB")``.
    """
    if image.mode not in HIGH_DEPTH_MODES:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    top, scale = (1.0, 255.0) if image.mode == "F" else (65535.0, 255.0 / 65535.0)
    if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= top):
        found = "NaN or inf values" if not np.isfinite(values).all() else \
            f"values in [{values.min():g}, {values.max():g}]"
        raise ImageReadError(f"{source} is a {image.mode!r} image with {found}, outside the [0, {top:g}] that "
                             "fsrlib reads it as; convert it to an 8-bit image first.")
    return Image.fromarray(np.rint(values * scale).astype(np.uint8)).convert("RGB")


def crop_box(image: Image.Image, bbx: Sequence[float], *, source: str = "image") -> Image.Image:
    """Crop to an ``(x1, y1, x2, y2)`` box, clipped to the image bounds."""
    return image.crop(clip_box(bbx, image.size, source=source))


def clip_box(bbx: Sequence[float], size: tuple[int, int], *, source: str = "image") -> tuple[int, int, int, int]:
    """The pixel box ``(left, top, right, bottom)`` that :func:`crop_box` cuts from an image of ``size = (w, h)``.

    ``bbx`` is clipped to the image and rounded outwards; a box that is not
    four finite numbers, or that leaves no pixel once clipped (``x2 <= x1``,
    or wholly outside the image), is a ``ValueError`` naming ``source``.
    Dataset loaders call it with ``Image.open(path).size`` (no decoding) to
    refuse a bad query box before any feature is extracted.
    """
    if len(bbx) != 4:
        raise ValueError(f"a box is (x1, y1, x2, y2); got {bbx!r} for {source}")
    x1, y1, x2, y2 = (float(v) for v in bbx)
    w, h = size
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"box {tuple(bbx)} for {source} holds a non-finite number")
    left, top = max(0, int(x1)), max(0, int(y1))
    right, bottom = min(w, int(-(-x2 // 1))), min(h, int(-(-y2 // 1)))
    if right <= left or bottom <= top:
        raise ValueError(f"empty box {tuple(bbx)} for {source} of size {w}x{h} (is it x, y, w, h? is it outside "
                         "the image?)")
    return left, top, right, bottom
