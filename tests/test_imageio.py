import numpy as np
import pytest
from PIL import Image

from fsrlib.data.imageio import ImageReadError, crop_box, load_image


@pytest.fixture
def jpeg(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=95)
    return path


def test_loads_rgb(jpeg):
    img = load_image(jpeg)
    assert img.mode == "RGB" and img.size == (160, 120)


def test_grayscale_becomes_rgb(tmp_path):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").mode == "RGB"


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_non_image_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    with pytest.raises(ImageReadError, match="not an image"):
        load_image(tmp_path / "notes.jpg")


def test_truncated_jpeg(jpeg):
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        load_image(jpeg)


def test_box_is_corners_not_width_height(jpeg):
    # Oxford/Paris boxes are (x1, y1, x2, y2): (100, 50, 150, 110) is 50 wide and 60 high.
    img = load_image(jpeg, (100, 50, 150, 110))
    assert img.size == (50, 60)  # read as (x, y, w, h) the same numbers would give 60 x 70 (clipped): the known bug


def test_box_clipped_and_empty_box_rejected(jpeg):
    assert load_image(jpeg, (-10, -5, 500, 500)).size == (160, 120)
    with pytest.raises(ValueError, match="empty box"):
        crop_box(load_image(jpeg), (100, 50, 40, 60))
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        crop_box(load_image(jpeg), (1, 2, 3))


def grey16_png(path, values: np.ndarray) -> None:
    """A 16-bit greyscale PNG written by hand (PNG spec: colour type 0, bit depth 16, big-endian samples)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = values.shape
    raw = b"".join(b"\x00" + values[i].astype(">u2").tobytes() for i in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 12 * 10).round().astype(np.uint16).reshape(10, 12)
    grey16_png(tmp_path / "g16.png", values)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # what PIL would clip to 0/255
    out = np.asarray(load_image(tmp_path / "g16.png"))
    assert out.shape == (10, 12, 3) and (out[..., 0] == out[..., 2]).all()
    np.testing.assert_array_equal(out[..., 0], np.rint(values / 257.0).astype(np.uint8))
    assert len(np.unique(out)) > 100  # a full grey ramp, not 0 and 255


def test_float_tiff_in_unit_range_is_scaled(tmp_path):
    values = np.linspace(0, 1, 12 * 10, dtype=np.float32).reshape(10, 12)
    Image.fromarray(values).save(tmp_path / "f.tif")
    out = np.asarray(load_image(tmp_path / "f.tif"))
    np.testing.assert_array_equal(out[..., 1], np.rint(values.astype(np.float64) * 255).astype(np.uint8))
    assert out.max() == 255 and out.mean() > 100  # not black


@pytest.mark.parametrize("values", [np.full((4, 4), 2.5, np.float32), np.full((4, 4), np.nan, np.float32),
                                    np.full((4, 4), -1.0, np.float32)])
def test_float_image_outside_unit_range_is_refused(tmp_path, values):
    Image.fromarray(values).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"f.tif is a 'F' image with (values in|NaN).*convert it to an 8-bit"):
        load_image(tmp_path / "f.tif")


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1200 px > 2 x 500: PIL's error, not its warning
    with pytest.raises(ImageReadError, match=r"big.png is refused by PIL as a possible decompression bomb.*"
                                             r"MAX_IMAGE_PIXELS"):
        load_image(tmp_path / "big.png")


def test_box_with_nan_is_refused(jpeg):
    with pytest.raises(ValueError, match="non-finite"):
        load_image(jpeg, (float("nan"), 0, 10, 10))


def test_32_bit_integer_image_is_read_as_16_bit_or_refused(tmp_path):
    Image.fromarray(np.array([[0, 257, 65535]], np.int32)).save(tmp_path / "i.tif")  # mode "I"
    assert np.asarray(load_image(tmp_path / "i.tif"))[0, :, 0].tolist() == [0, 1, 255]
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(ImageReadError, match=r"'I' image with values in \[0, 70000\]"):
        load_image(tmp_path / "big.tif")
