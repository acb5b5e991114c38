"""The degradations of :mod:`fsrlib.features.degrade` as tensor operations on batches, on any device.

:func:`degrade_batch` takes a batch of network inputs (``reference="input"``: the
photo already resized to ``size x size``) and returns what :func:`fsrlib.features.degrade.degrade`
returns as ``upsampled``, pixel for pixel: uniform sub-sampling is an index gather
with the indices of :func:`fsrlib.features.degrade.uniform_indices`, and PIL's bicubic
resize (``ImagingResample`` in Pillow's ``libImaging/Resample.c``) is emulated
exactly: the same kernel windows and coefficients (``precompute_coeffs``), rounded
to 22-bit fixed point (``normalize_coeffs_8bpc``), applied as one pass per axis, each
rounded and clipped to 0..255 (``ImagingResample{Horizontal,Vertical}_8bpc``), in the
order the installed Pillow uses, a pass skipped where its axis keeps its size. Sums run
in float64, where every partial sum of these integer products is exact, so CPU and GPU agree.
"""
from __future__ import annotations

import functools

import PIL
import torch

from fsrlib.features.degrade import DEGRADATIONS, Degradation, check_ratio, small_size, uniform_indices

#: Fixed-point precision of PIL's 8-bit resampling: ``PRECISION_BITS = 32 - 8 - 2``.
PRECISION_BITS: int = 32 - 8 - 2
#: Whether the installed Pillow runs the vertical pass first when the height loses more than twice as many pixels
#: as the width (Pillow 13, python-pillow/Pillow#9549); earlier versions always start with the horizontal pass.
PILLOW_VERTICAL_FIRST: bool = int(PIL.__version__.split(".")[0]) >= 13
#: Half-width of PIL's bicubic kernel at scale 1 (``struct filter BICUBIC = {bicubic_filter, 2.0}``).
BICUBIC_SUPPORT: float = 2.0


def _bicubic_kernel(x: float) -> float:
    """PIL's ``bicubic_filter``: Keys' cubic convolution kernel with ``a = -0.5``, in its operation order."""
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def pil_resize_weights(in_size: int, out_size: int) -> torch.Tensor:
    """The ``(out_size, in_size)`` float64 matrix of PIL's bicubic resampling along one axis.

    Row ``i`` holds ``k((x - c + 1/2) / s)`` for ``x`` in ``[xmin, xmax)``, normalised to sum 1, where
    ``k`` is :func:`_bicubic_kernel`, ``c = (i + 1/2) in/out`` the centre, ``s = max(in/out, 1)`` stretches
    the kernel when down-scaling (the anti-aliasing), and ``xmin = max(int(c - 2s + 1/2), 0)``,
    ``xmax = min(int(c + 2s + 1/2), in_size)`` (Pillow's ``precompute_coeffs``, same operation order).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    inverse_filterscale = 1.0 / filterscale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        row = [_bicubic_kernel((x - center + 0.5) * inverse_filterscale) for x in range(xmin, xmax)]
        total = 0.0
        for w in row:  # sequential, as PIL sums
            total += w
        weights[i, xmin:xmax] = torch.tensor([w / total for w in row] if total != 0.0 else row, dtype=torch.float64)
    return weights


@functools.lru_cache(maxsize=64)
def _fixed_point_weights(in_size: int, out_size: int) -> torch.Tensor:
    """:func:`pil_resize_weights` times ``2**PRECISION_BITS``, rounded half away from zero (float64, CPU).

    Cached and private: callers only read it.
    """
    scaled = pil_resize_weights(in_size, out_size) * (1 << PRECISION_BITS)
    return torch.where(scaled < 0, torch.trunc(scaled - 0.5), torch.trunc(scaled + 0.5))


def _fixed_point_pass(sums: torch.Tensor) -> torch.Tensor:
    """PIL's ``clip8``: ``(sum + 2**(P-1)) >> P`` clipped to 0..255, on exact integer-valued float64 sums."""
    return torch.floor((sums + (1 << (PRECISION_BITS - 1))) / (1 << PRECISION_BITS)).clamp_(0, 255)


def _check_uint8_batch(batch: torch.Tensor) -> None:
    if not isinstance(batch, torch.Tensor) or batch.dim() != 4 or batch.dtype != torch.uint8:
        raise ValueError("expected a uint8 tensor of shape (B, C, H, W), got "
                         + (f"{batch.dtype} of shape {tuple(batch.shape)}" if isinstance(batch, torch.Tensor)
                            else type(batch).__name__))


def resize_bicubic_like_pil(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 ``(B, C, H, W)`` batch to ``size = (height, width)`` as PIL's ``Image.BICUBIC`` does.

    ``size`` is ``(height, width)`` like :func:`torch.nn.functional.interpolate` (PIL's ``resize`` takes
    ``(width, height)``). Returns uint8 ``(B, C, height, width)`` on ``batch``'s device, equal to
    ``Image.resize((width, height), Image.BICUBIC)`` of each image (``reducing_gap=None``), pass order
    included (:data:`PILLOW_VERTICAL_FIRST`). Devices without float64 (MPS) compute on the CPU.
    """
    _check_uint8_batch(batch)
    height, width = (int(side) for side in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be (height, width) with positive sides, got {size!r}")
    in_height, in_width = batch.shape[-2:]
    compute_device = torch.device("cpu") if batch.device.type == "mps" else batch.device
    pixels = batch.to(compute_device, torch.float64)
    horizontal = width != in_width
    vertical = height != in_height
    vertical_first = PILLOW_VERTICAL_FIRST and height < in_height and in_height - height > 2 * (in_width - width)
    if vertical and vertical_first:  # each pass rounds to an intermediate 8-bit image, so the order matters
        pixels = _fixed_point_pass(_fixed_point_weights(in_height, height).to(compute_device) @ pixels)
    if horizontal:
        pixels = _fixed_point_pass(pixels @ _fixed_point_weights(in_width, width).to(compute_device).T)
    if vertical and not vertical_first:
        pixels = _fixed_point_pass(_fixed_point_weights(in_height, height).to(compute_device) @ pixels)
    return pixels.to(batch.device, torch.uint8)


def uniform_downsample_tensor(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Strided sub-sampling of a ``(B, C, H, W)`` batch to ``size = (height, width)``.

    Keeps the rows and columns :func:`fsrlib.features.degrade.uniform_downsample` keeps (:func:`uniform_indices`).
    """
    if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got {getattr(batch, 'shape', type(batch).__name__)}")
    height, width = (int(side) for side in size)
    if not (1 <= height <= batch.shape[-2] and 1 <= width <= batch.shape[-1]):
        raise ValueError(f"size (height, width) = {size!r} must be positive and at most the batch's "
                         f"{tuple(batch.shape[-2:])}")
    rows = torch.from_numpy(uniform_indices(batch.shape[-2], height)).to(batch.device)
    cols = torch.from_numpy(uniform_indices(batch.shape[-1], width)).to(batch.device)
    return batch.index_select(-2, rows).index_select(-1, cols)


def degrade_batch(batch: torch.Tensor, ratio: float, degradation: Degradation = "uniform") -> torch.Tensor:
    """:func:`fsrlib.features.degrade.degrade`'s ``upsampled`` for a uint8 batch ``(B, 3, N, N)`` of network inputs.

    The batch is the photos already resized to ``N x N`` (``reference="input"``; the paper's ``N = 224``).
    Each image is shrunk to :func:`fsrlib.features.degrade.small_size` at area ``ratio`` by ``degradation`` (strided
    sub-sampling or PIL's anti-aliased bicubic), then up-sampled back to ``N x N`` with PIL's bicubic.
    Returns uint8 ``(B, 3, N, N)`` on the batch's device; ``ratio=1`` returns ``batch`` itself.
    """
    ratio = check_ratio(ratio)
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {degradation!r}; choose one of {DEGRADATIONS}")
    _check_uint8_batch(batch)
    side = batch.shape[-1]
    if batch.shape[1] != 3 or batch.shape[-2] != side:
        raise ValueError(f"expected square RGB network inputs (B, 3, N, N), got shape {tuple(batch.shape)}")
    if ratio == 1.0:
        return batch
    width, height = small_size(side, side, ratio)
    if degradation == "uniform":
        small = uniform_downsample_tensor(batch, (height, width))
    else:
        small = resize_bicubic_like_pil(batch, (height, width))
    return resize_bicubic_like_pil(small, (side, side))
