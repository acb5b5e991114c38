"""Reading images with errors that say what went wrong and where."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

Box = Sequence[float]


class ImageReadError(OSError):
    """An image file is missing, unreadable or not an image."""


def load_image(path: str | Path, bbx: Box | None = None, *, exif_transpose: bool = False) -> Image.Image:
    """Load ``path`` as an RGB PIL image, optionally cropped to ``bbx``.

    ``bbx`` is ``(x1, y1, x2, y2)`` in pixels, the corner convention of the
    Oxford/Paris ground truth (not ``(x, y, w, h)``); it is clipped to the image
    and rounded outwards. ``exif_transpose`` applies the EXIF orientation tag
    (Holidays photos need it; Oxford/Paris boxes refer to the raw pixel grid).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            if exif_transpose:
                img = ImageOps.exif_transpose(img)
            rgb = img.convert("RGB")
    except UnidentifiedImageError as err:
        raise ImageReadError(f"not an image file (or an unsupported format): {path}") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"corrupt or truncated image file: {path} ({err})") from err
    if bbx is not None:
        rgb = crop_box(rgb, bbx, source=str(path))
    return rgb


def crop_box(image: Image.Image, bbx: Box, *, source: str = "image") -> Image.Image:
    """Crop to an ``(x1, y1, x2, y2)`` box, clipped to the image bounds."""
    if len(bbx) != 4:
        raise ValueError(f"a box is (x1, y1, x2, y2); got {bbx!r} for {source}")
    x1, y1, x2, y2 = (float(v) for v in bbx)
    w, h = image.size
    left, top = max(0, int(x1)), max(0, int(y1))
    right, bottom = min(w, int(-(-x2 // 1))), min(h, int(-(-y2 // 1)))
    if right <= left or bottom <= top:
        raise ValueError(f"empty box {tuple(bbx)} for {source} of size {w}x{h} (is it x, y, w, h?)")
    return image.crop((left, top, right, bottom))
