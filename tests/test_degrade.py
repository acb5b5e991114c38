from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from fsrlib.features.degrade import (
    MAX_INPUT_SIZE,
    PAPER_RATIOS,
    check_ratio,
    degrade,
    png_bits,
    ratio_label,
    small_size,
    smallest_ratio,
    uniform_downsample,
)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))


@pytest.mark.parametrize("ratio", PAPER_RATIOS)
@pytest.mark.parametrize("degradation", ["uniform", "antialias"])
def test_input_reference_sizes(photo, ratio, degradation):
    out = degrade(photo, ratio, degradation=degradation, reference="input")
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
    uni = np.asarray(degrade(img, 1 / 4, degradation="uniform").small, dtype=float)
    aa = np.asarray(degrade(img, 1 / 4, degradation="antialias").small, dtype=float)
    assert uni.std() < 1 and uni.mean() in (0.0, 255.0)  # aliasing: a flat image
    assert abs(aa.mean() - 127.5) < 10  # the filter averages the stripes


def test_any_ratio_accepted_down_to_one_pixel_per_side():
    assert small_size(224, 224, 0.3) == (123, 123)
    assert small_size(10, 10, 1 / 100) == (1, 1)  # exactly one pixel per side: the smallest ratio for 10 x 10
    assert small_size(40, 10, 1 / 100) == (4, 1)
    assert smallest_ratio(40, 10) == 1 / 100


@pytest.mark.parametrize("tiny", [1e-6, 5e-324])
def test_ratio_below_one_pixel_per_side_is_refused(photo, tiny):
    # before: 1e-6 was silently clamped to a 1 x 1 image; 5e-324 overflowed in ratio_label
    with pytest.raises(ValueError, match=r"less than one pixel per side of a 10x10 image.*smallest ratio for this "
                                         r"size is 1/100 = 0.01"):
        small_size(10, 10, tiny)
    with pytest.raises(ValueError, match=r"smallest ratio for this size is 1/50176 = 1.99e-05"):
        degrade(photo, tiny)  # reference "input": the 224 x 224 network input
    assert ratio_label(tiny) in ("1/1000000", "4.94066e-324")  # a label, not an OverflowError


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), float("inf"), "1/4", True, None])
def test_bad_ratio_is_rejected(photo, bad):
    with pytest.raises(ValueError, match="ratio"):
        degrade(photo, bad)


@pytest.mark.parametrize("ratio", [Fraction(1, 16), np.float32(1 / 16), np.float64(1 / 16), Fraction(1, 1), 1])
def test_any_real_number_type_is_a_ratio(photo, ratio):
    # before: Fraction and numpy.float32 were refused with "must be an area ratio in (0, 1]"
    assert check_ratio(ratio) == float(ratio)
    out = degrade(photo, ratio)
    assert out.ratio == float(ratio) and type(out.ratio) is float
    assert out.small.size == ((56, 56) if ratio != 1 else (224, 224))


def test_ratio_label_of_any_positive_number():
    assert ratio_label(Fraction(1, 16)) == "1/16" and ratio_label(np.float32(0.25)) == "1/4"
    assert ratio_label(0) == "0" and ratio_label(2) == "2"  # labels never crash; check_ratio refuses these


@pytest.mark.parametrize("size", [0, -1, 100_000, MAX_INPUT_SIZE + 1, 224.0, True])
def test_network_input_size_is_bounded(photo, size):
    # before: size=100000 asked PIL for a 100000 x 100000 RGB image (28 GiB)
    with pytest.raises(ValueError, match="side of the square network input"):
        degrade(photo, 1 / 4, size=size)
    assert degrade(photo, 1 / 4, size=MAX_INPUT_SIZE // 32).upsampled.size == (128, 128)


def test_bad_degradation_reference_and_mode(photo):
    with pytest.raises(ValueError, match="degradation"):
        degrade(photo, 0.25, degradation="nearest")
    with pytest.raises(ValueError, match="reference"):
        degrade(photo, 0.25, reference="output")
    with pytest.raises(ValueError, match="RGB"):
        degrade(photo.convert("L"), 0.25)


def test_png_bits_shrink_with_ratio(photo):
    smalls = [degrade(photo, r).small for r in (1.0, 1 / 4, 1 / 16, 1 / 64)]
    bits = [png_bits(s) for s in smalls]
    assert all(a > b for a, b in zip(bits, bits[1:]))
    # noise barely compresses: close to the raw 24 bits per pixel (bytes instead of bits would give 3)
    for small, b in zip(smalls, bits):
        assert 0.8 < b / (24 * small.width * small.height) < 1.1
    # a flat image compresses to under 1 % of its raw size: the count is of the encoded PNG, not of the pixels
    assert png_bits(Image.new("RGB", (224, 224), (10, 20, 30))) < 0.01 * 24 * 224 * 224


def test_ratio_labels():
    assert [ratio_label(r) for r in PAPER_RATIOS] == ["1/4", "1/9", "1/16", "1/25", "1/36", "1/49", "1/64"]
    assert ratio_label(1.0) == "1" and ratio_label(0.3) == "0.3"
