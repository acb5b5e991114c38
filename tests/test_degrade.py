import numpy as np
import pytest
from PIL import Image

from fsrlib.degrade import PAPER_RATIOS, degrade, png_bits, ratio_label, small_size, uniform_downsample


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))


@pytest.mark.parametrize("ratio", PAPER_RATIOS)
@pytest.mark.parametrize("method", ["uniform", "antialias"])
def test_input_reference_sizes(photo, ratio, method):
    out = degrade(photo, ratio, method=method, reference="input")
    k = round(1 / np.sqrt(ratio))  # linear factor 2..8
    assert out.small.size == (round(224 / k), round(224 / k))
    assert out.upsampled.size == (224, 224) and out.upsampled.mode == "RGB"


@pytest.mark.parametrize("ratio", PAPER_RATIOS)
def test_original_reference_keeps_aspect(photo, ratio):
    out = degrade(photo, ratio, reference="original")
    k = 1 / np.sqrt(ratio)
    assert out.small.size == (round(400 / k), round(300 / k))
    assert out.upsampled.size == (224, 224)


def test_ratio_one_is_the_resized_input(photo):
    out = degrade(photo, 1.0)
    assert out.small.size == (224, 224)
    np.testing.assert_array_equal(np.asarray(out.upsampled), np.asarray(photo.resize((224, 224), Image.BICUBIC)))


def test_uniform_is_strided_subsampling():
    # 8x8 image with value = 10*row + col; factor 2 keeps pixels (2i+1, 2j+1), the centres of the 2x2 cells
    arr = (10 * np.arange(8)[:, None] + np.arange(8)[None, :]).astype(np.uint8)
    out = np.asarray(uniform_downsample(Image.fromarray(arr), (4, 4)))
    np.testing.assert_array_equal(out, arr[1::2, 1::2])


def test_antialias_differs_from_uniform_on_fine_texture():
    stripes = np.zeros((224, 224, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes alias completely under sub-sampling
    img = Image.fromarray(stripes)
    uni = np.asarray(degrade(img, 1 / 4, method="uniform").small, dtype=float)
    aa = np.asarray(degrade(img, 1 / 4, method="antialias").small, dtype=float)
    assert uni.std() < 1 and uni.mean() in (0.0, 255.0)  # aliasing: a flat image
    assert abs(aa.mean() - 127.5) < 10  # the filter averages the stripes


def test_any_ratio_accepted_and_tiny_sides_clamped():
    assert small_size(224, 224, 0.3) == (123, 123)
    assert small_size(10, 10, 1e-6) == (1, 1)


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), "1/4"])
def test_bad_ratio_is_rejected(photo, bad):
    with pytest.raises(ValueError, match="ratio"):
        degrade(photo, bad)


def test_bad_method_reference_and_mode(photo):
    with pytest.raises(ValueError, match="method"):
        degrade(photo, 0.25, method="nearest")
    with pytest.raises(ValueError, match="reference"):
        degrade(photo, 0.25, reference="output")
    with pytest.raises(ValueError, match="RGB"):
        degrade(photo.convert("L"), 0.25)


def test_png_bits_shrink_with_ratio(photo):
    bits = [png_bits(degrade(photo, r).small) for r in (1.0, 1 / 4, 1 / 16, 1 / 64)]
    assert all(a > b for a, b in zip(bits, bits[1:]))
    assert bits[0] % 8 == 0


def test_ratio_labels():
    assert [ratio_label(r) for r in PAPER_RATIOS] == ["1/4", "1/9", "1/16", "1/25", "1/36", "1/49", "1/64"]
    assert ratio_label(1.0) == "1" and ratio_label(0.3) == "0.3"
