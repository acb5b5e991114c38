"""Image super-resolution baselines (paper Sec. 5: SRCNN and VDSR) and their quality measures.

Both networks refine the bicubic up-sampling of the small image on the
luminance channel Y (BT.601, as their authors' MATLAB code), the chroma
channels stay bicubic:

- **SRCNN** (Dong et al. 2014, the 9-1-5 network): conv 9x9 -> 64, ReLU,
  conv 1x1 -> 32, ReLU, conv 5x5 -> 1. Replicate padding keeps the image
  size (the original trains on valid convolutions and crops 6 px of border;
  zero padding would darken the border). Input and output are
  centred on mid-grey (``body(y - 0.5) + 0.5``): the same functions, faster
  training.
- **VDSR** (Kim et al. 2016): 20 conv 3x3 layers of 64 channels with ReLU
  between them, predicting the *residual* added to the bicubic input; trained
  on several scales at once with gradient clipping.

The pixel pipeline is the project's one degradation (:func:`fsrlib.features.degrade.degrade`):
an :class:`Upscaler` replaces nothing but the bicubic step's output, so
"ISR then features" differs from "raw" only by the network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity
from torch import nn

from fsrlib.devices import resolve_device

# ---------------------------------------------------------------- colour and quality (pure functions)

#: ITU-R BT.601 as MATLAB's rgb2ycbcr: RGB in [0, 1] -> Y in [16, 235], Cb/Cr in [16, 240].
_YCBCR = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> float64 YCbCr in MATLAB's ranges (Y in [16, 235])."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    return rgb.astype(np.float64) / 255.0 @ _YCBCR.T + _OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`, rounded and clipped to uint8."""
    rgb = (np.asarray(ycbcr, np.float64) - _OFFSET) @ np.linalg.inv(_YCBCR).T * 255.0
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border:-border, border:-border] if border > 0 else image


def psnr(reference: np.ndarray, estimate: np.ndarray, data_range: float = 255.0, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``, after shaving ``border`` pixels."""
    a, b = shave(np.asarray(reference, np.float64), border), shave(np.asarray(estimate, np.float64), border)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(reference: np.ndarray, estimate: np.ndarray, data_range: float = 255.0, border: int = 0) -> float:
    """SSIM of two single-channel images with Wang et al.'s settings (11x11 Gaussian, sigma 1.5)."""
    a, b = shave(np.asarray(reference, np.float64), border), shave(np.asarray(estimate, np.float64), border)
    return float(structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


# ---------------------------------------------------------------- networks

@dataclass
class SRCNNConfig:
    """SRCNN 9-1-5 (Dong et al. 2014): filter sizes and widths."""

    kernel_sizes: tuple[int, int, int] = (9, 1, 5)
    channels: tuple[int, int] = (64, 32)


@dataclass
class VDSRConfig:
    """VDSR (Kim et al. 2016): depth, width, residual learning."""

    depth: int = 20
    channels: int = 64
    residual: bool = True


class SRCNN(nn.Module):
    """``(B, 1, H, W)`` bicubic Y in [0, 1] -> refined Y, same size."""

    def __init__(self, config: SRCNNConfig | None = None):
        super().__init__()
        self.config = config = config or SRCNNConfig()
        (k1, k2, k3), (n1, n2) = config.kernel_sizes, config.channels
        self.body = nn.Sequential(nn.Conv2d(1, n1, k1, padding=k1 // 2, padding_mode="replicate"), nn.ReLU(inplace=True),
                                  nn.Conv2d(n1, n2, k2, padding=k2 // 2, padding_mode="replicate"), nn.ReLU(inplace=True),
                                  nn.Conv2d(n2, 1, k3, padding=k3 // 2, padding_mode="replicate"))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        _check_luma(y)
        return self.body(y - 0.5) + 0.5  # centred on mid-grey: same function class, faster training


class VDSR(nn.Module):
    """``(B, 1, H, W)`` bicubic Y in [0, 1] -> ``y + residual(y)`` (``depth`` conv layers)."""

    def __init__(self, config: VDSRConfig | None = None):
        super().__init__()
        self.config = config = config or VDSRConfig()
        if config.depth < 2:
            raise ValueError(f"VDSR needs at least 2 layers, got depth={config.depth}")
        layers: list[nn.Module] = [nn.Conv2d(1, config.channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(config.depth - 2):
            layers += [nn.Conv2d(config.channels, config.channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(config.channels, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        _check_luma(y)
        out = self.body(y)
        return y + out if self.config.residual else out


def _check_luma(y: torch.Tensor) -> None:
    if y.ndim != 4 or y.shape[1] != 1:
        raise ValueError(f"expected a (B, 1, H, W) luminance batch, got shape {tuple(y.shape)}")


ISR_MODELS = {"srcnn": (SRCNN, SRCNNConfig), "vdsr": (VDSR, VDSRConfig)}


def realign_uniform(upsampled: np.ndarray, ratio: float) -> np.ndarray:
    """The bicubic up-sampling of a uniformly sub-sampled image with every kept pixel moved back to where it was
    taken (:func:`fsrlib.features.degrade.uniform_kept_positions`): no learning, only re-alignment.

    ``upsampled``: ``(H, W)`` or ``(N, H, W)`` luminance, the bicubic input at ``ratio``. Each output pixel reads
    the bicubic image (cubic spline) at the position where the small image's sampling grid shows it, so for an
    even factor the image moves half a pixel down and right, for an odd one it is unchanged. The PSNR this gains
    over bicubic is the part of a learned network's gain that a re-alignment alone explains.
    """
    from scipy.ndimage import map_coordinates

    from fsrlib.features.degrade import small_size, uniform_kept_positions

    stack = np.asarray(upsampled, dtype=np.float64)
    if stack.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (N, H, W) luminance, got shape {stack.shape}")
    h, w = stack.shape[-2:]
    small_w, small_h = small_size(w, h, ratio)
    axes = []
    for size, small in ((h, small_h), (w, small_w)):
        taken, shown = uniform_kept_positions(size, small).T
        full = np.arange(size)  # where the bicubic image shows full-size pixel p: p plus the nearest kept offsets
        axes.append(full + np.interp(full, taken, shown - taken))
    rows, cols = np.meshgrid(*axes, indexing="ij")
    out = [map_coordinates(image, [rows, cols], order=3, mode="reflect") for image in stack.reshape(-1, h, w)]
    return np.stack(out).reshape(stack.shape).astype(np.asarray(upsampled).dtype)


def build_isr_model(name: str, config: SRCNNConfig | VDSRConfig | None = None) -> nn.Module:
    try:
        cls, _ = ISR_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown ISR model {name!r}; known: {sorted(ISR_MODELS)}") from None
    return cls(config)


# ---------------------------------------------------------------- applying a model to an image

@torch.inference_mode()
def super_resolve(model: nn.Module, upsampled: Image.Image, device: str = "cpu") -> Image.Image:
    """Refine a bicubic-upsampled RGB image: the model on Y, Cb/Cr unchanged."""
    ycc = rgb_to_ycbcr(np.asarray(upsampled.convert("RGB")))
    y = torch.from_numpy(((ycc[..., 0] - 16.0) / 219.0).astype(np.float32))[None, None].to(device)
    refined = model(y)[0, 0].clamp(0, 1).cpu().numpy().astype(np.float64)
    ycc[..., 0] = refined * 219.0 + 16.0
    return Image.fromarray(ycbcr_to_rgb(ycc))


@dataclass
class Upscaler:
    """What feature extraction calls on each degraded query: ``(bicubic input, ratio) -> image``.

    ``models`` maps each area ratio the upscaler was trained for to its network
    (SRCNN: one per ratio, VDSR: one for all). ``cache_id`` names the models and
    their weights, so features of two differently trained upscalers never share a
    cache entry. A ratio it was not trained for is an error, never a silent
    bicubic fallback; ratio 1 (the HR image) passes through unchanged.
    """

    name: str
    models: dict[float, nn.Module]
    cache_id: str
    device: str = "cpu"
    histories: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # "auto" (the chapters' default) becomes this machine's best device; the networks run where the inputs go
        self.device = resolve_device(self.device)
        self.models = {r: m.to(self.device) for r, m in self.models.items()}

    def supports(self, ratio: float) -> bool:
        return ratio == 1.0 or self._model(ratio) is not None

    def _model(self, ratio: float) -> nn.Module | None:
        return next((m for r, m in self.models.items() if abs(r - ratio) < 1e-9), None)

    def _require(self, ratio: float) -> nn.Module:
        model = self._model(ratio)
        if model is None:
            trained = ", ".join(sorted({f"{r:.4g}" for r in self.models}))
            raise ValueError(f"{self.name} was trained for area ratios {trained}, not {ratio:.4g}")
        return model

    def __call__(self, upsampled: Image.Image, ratio: float) -> Image.Image:
        if ratio == 1.0:
            return upsampled
        return super_resolve(self._require(ratio), upsampled, self.device)

    @torch.inference_mode()
    def refine_luma(self, luma: np.ndarray, ratio: float, batch_size: int = 8) -> np.ndarray:
        """Refine ``(N, H, W)`` bicubic luminance in [0, 1]; returns the same shape, clipped to [0, 1]."""
        model = self._require(ratio)
        out = [model(torch.from_numpy(np.ascontiguousarray(luma[i:i + batch_size], np.float32))[:, None]
                     .to(self.device))[:, 0].clamp(0, 1).cpu().numpy() for i in range(0, len(luma), batch_size)]
        return np.concatenate(out)
