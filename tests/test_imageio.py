import numpy as np
import pytest
from PIL import Image

from fsrlib.imageio import ImageReadError, crop_box, load_image


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
