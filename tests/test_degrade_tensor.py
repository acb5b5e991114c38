"""The tensor degradations against the PIL path they reproduce (fsrlib.features.degrade)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fsrlib.data.imageio import load_image
from fsrlib.features.degrade import DEGRADATIONS, PAPER_RATIOS, degrade, uniform_downsample
from fsrlib.features.degrade_tensor import (
    degrade_batch,
    pil_resize_weights,
    resize_bicubic_like_pil,
    uniform_downsample_tensor,
)
from fsrlib.paths import dev_data_root

#: Tolerance against PIL: at most one grey level on any value, and on at most this share of them (a few values in a
#: batch). Measured with Pillow 13.0: no value differs.
MAX_SHARE_DIFFERING = 1e-5


def _to_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _from_batch(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).cpu().numpy()


def _assert_close_to_pil(ours: np.ndarray, pil: np.ndarray) -> None:
    assert ours.shape == pil.shape and ours.dtype == np.uint8
    difference = np.abs(ours.astype(np.int64) - pil.astype(np.int64))
    share = float(np.mean(difference > 0))
    assert difference.max() <= 1 and share <= MAX_SHARE_DIFFERING, (
        f"max difference {difference.max()} grey levels, {share:.2%} of values differ")


def _holidays_photos() -> list[Image.Image]:
    folder = (dev_data_root() or Path(__file__).resolve().parents[2] / "shared" / "data") / "holidays-subset" / "jpg"
    paths = sorted(folder.glob("*.jpg"))[:3]
    if not paths:
        pytest.skip(f"no Holidays photos at {folder} (shared data is not beside this checkout)")
    return [load_image(path, exif_transpose=True) for path in paths]


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Two real photos and random noise (the worst case for rounding), none of them 224 x 224."""
    import skimage.data

    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    return [Image.fromarray(skimage.data.astronaut()), Image.fromarray(skimage.data.chelsea()), Image.fromarray(noise)]


def _check_degrade_batch(photos: list[Image.Image], ratio: float, degradation: str) -> None:
    inputs = _to_batch([np.asarray(degrade(photo, 1.0).upsampled) for photo in photos])  # the 224 x 224 inputs
    expected = np.stack([np.asarray(degrade(photo, ratio, degradation=degradation).upsampled) for photo in photos])
    _assert_close_to_pil(_from_batch(degrade_batch(inputs, ratio, degradation)), expected)


@pytest.mark.parametrize("degradation", DEGRADATIONS)
@pytest.mark.parametrize("ratio", PAPER_RATIOS)
def test_degrade_batch_equals_pil_path(photos, ratio, degradation):
    _check_degrade_batch(photos, ratio, degradation)


@pytest.mark.parametrize("degradation", DEGRADATIONS)
@pytest.mark.parametrize("ratio", PAPER_RATIOS)
def test_degrade_batch_equals_pil_path_on_holidays(ratio, degradation):
    _check_degrade_batch(_holidays_photos(), ratio, degradation)


def test_degrade_batch_ratio_one_returns_the_input(photos):
    inputs = _to_batch([np.asarray(degrade(photo, 1.0).upsampled) for photo in photos])
    assert degrade_batch(inputs, 1.0, "antialias") is inputs


def test_degrade_batch_output_shape_and_type():
    inputs = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    out = degrade_batch(inputs, 1 / 16, "antialias")
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.uint8


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 3, 32, 32), "uint8"),
    (torch.zeros(3, 32, 32, dtype=torch.uint8), r"\(B, C, H, W\)"),
    (torch.zeros(1, 3, 32, 48, dtype=torch.uint8), "square RGB"),
    (torch.zeros(1, 1, 32, 32, dtype=torch.uint8), "square RGB"),
])
def test_degrade_batch_refuses_bad_batches(bad, match):
    with pytest.raises(ValueError, match=match):
        degrade_batch(bad, 1 / 4, "uniform")


def test_degrade_batch_refuses_bad_ratio_and_degradation():
    inputs = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="area ratio in"):
        degrade_batch(inputs, 4, "uniform")
    with pytest.raises(ValueError, match="unknown degradation 'bilinear'"):
        degrade_batch(inputs, 1 / 4, "bilinear")


def test_pil_resize_weights_known_value():
    # By hand from Pillow's precompute_coeffs: 4 -> 2 stretches the kernel by 2, centre 1.0, window [0, 4),
    # k((x - 1 + 0.5) / 2) = k(-0.25), k(0.25), k(0.75), k(1.25) = 0.8671875, 0.8671875, 0.2265625, -0.0703125.
    raw = torch.tensor([0.8671875, 0.8671875, 0.2265625, -0.0703125], dtype=torch.float64)
    weights = pil_resize_weights(4, 2)
    assert weights.shape == (2, 4) and weights.dtype == torch.float64
    torch.testing.assert_close(weights[0], raw / raw.sum(), rtol=0, atol=1e-15)
    torch.testing.assert_close(weights[1], (raw / raw.sum()).flip(0), rtol=0, atol=1e-15)


def test_pil_resize_weights_same_size_is_identity():
    torch.testing.assert_close(pil_resize_weights(7, 7), torch.eye(7, dtype=torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize("in_size, out_size", [(224, 112), (224, 75), (224, 28), (28, 224), (37, 224), (5, 3), (1, 9)])
def test_pil_resize_weights_rows_sum_to_one(in_size, out_size):
    weights = pil_resize_weights(in_size, out_size)
    assert weights.shape == (out_size, in_size)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(out_size, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("in_size, out_size", [(224, 75), (224, 28), (28, 224), (45, 224), (10, 7)])
@pytest.mark.parametrize("axis", ["columns", "rows"])
def test_pil_resize_weights_are_pil_impulse_response(in_size, out_size, axis):
    # An image black but for one line of 255 resized along one axis gives 255 * that weight column (clipped, rounded)
    weights = pil_resize_weights(in_size, out_size)
    for line in (0, in_size // 3, in_size - 1):
        image = np.zeros((4, in_size), np.uint8)
        image[:, line] = 255
        if axis == "columns":
            out = np.asarray(Image.fromarray(image).resize((out_size, 4), Image.BICUBIC))[0]
        else:
            out = np.asarray(Image.fromarray(np.ascontiguousarray(image.T)).resize((4, out_size), Image.BICUBIC))[:, 0]
        expected = np.clip(255 * weights[:, line].numpy(), 0, 255)
        assert np.abs(out - expected).max() <= 0.5 + 1e-3  # PIL rounds its 22-bit fixed-point sums
        assert not out[weights[:, line].numpy() == 0].any()  # PIL's windows end where the weights do


# (height, width): shrinking, enlarging, mixed, and a height shrunk by more than twice the width's pixels, which
# Pillow 13 resizes vertically first
RESIZE_SIZES = [(37, 53), (150, 40), (20, 120), (200, 300), (96, 50), (30, 128), (1, 1), (96, 128)]


@pytest.mark.parametrize("size", RESIZE_SIZES)
def test_resize_matches_pil_on_non_square_images(photos, size):
    height, width = size
    crops = [np.asarray(photo)[:96, :128] for photo in photos]  # 96 x 128
    ours = _from_batch(resize_bicubic_like_pil(_to_batch(crops), size))
    pil = np.stack([np.asarray(Image.fromarray(crop).resize((width, height), Image.BICUBIC)) for crop in crops])
    _assert_close_to_pil(ours, pil)


def test_resize_refuses_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        resize_bicubic_like_pil(torch.zeros(1, 3, 8, 8), (4, 4))
    with pytest.raises(ValueError, match="positive sides"):
        resize_bicubic_like_pil(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (0, 4))


@pytest.mark.parametrize("size", [(112, 112), (75, 75), (28, 28), (40, 90), (300, 400)])
def test_uniform_downsample_tensor_keeps_the_pil_path_pixels(size):
    image = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    ours = _from_batch(uniform_downsample_tensor(_to_batch([image]), size))[0]
    np.testing.assert_array_equal(ours, np.asarray(uniform_downsample(Image.fromarray(image), size[::-1])))


def test_uniform_downsample_tensor_refuses_enlarging():
    with pytest.raises(ValueError, match="at most the batch's"):
        uniform_downsample_tensor(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (16, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("degradation", DEGRADATIONS)
def test_cuda_equals_cpu(photos, degradation):
    inputs = _to_batch([np.asarray(degrade(photo, 1.0).upsampled) for photo in photos])
    for ratio in PAPER_RATIOS:
        on_gpu = degrade_batch(inputs.cuda(), ratio, degradation)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), degrade_batch(inputs, ratio, degradation), rtol=0, atol=0)
