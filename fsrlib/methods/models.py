"""FSR-GAN's feature generator G (paper Table 2) and feature critic D (Table 3).

A feature vector is viewed as a one-channel square grid: 4096 -> 64x64. A
dimension that is not a square is zero-padded to the next square (1280 -> 36x36)
so one architecture serves every backbone.

Padding reproduces TensorFlow's ``"SAME"`` exactly: output side ``ceil(n / s)``
and a total padding ``max((out - 1) s + k - n, 0)`` split with the extra pixel
at the bottom/right. (Symmetric PyTorch padding of an 8x8 kernel gives 63x63,
not Table 2's 64x64.)

Table 2's "dropout(70%)" is ambiguous; the paper's TensorFlow 1.x code would
have called ``tf.nn.dropout(x, keep_prob)``, so we read it as *keep* 70%:
``GeneratorConfig.dropout = 0.3`` is the probability of dropping (PyTorch's
convention). Set it to 0.7 for the other reading.

Scale: fsrlib's features are L2-normalised, so each of their D entries is about
``1/sqrt(D)``. Both networks multiply their input by ``input_scale`` (default
``sqrt(D)``, unit RMS per entry) and G divides its output by it again. Without
this, a default-initialised G sees inputs ~30x smaller than its weights expect
and collapses to predicting the mean HR feature (measured on ``mini``: the same
validation distance, 0.88, at every ratio).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding ``(before, after)`` along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``"SAME"`` padding (asymmetric when the total is odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def grid_side(dim: int) -> int:
    """Side of the square grid a ``dim``-d feature is laid out on (next square, zero-padded)."""
    if dim < 1:
        raise ValueError(f"feature dimension must be positive, got {dim}")
    return math.isqrt(dim - 1) + 1


def to_grid(features: torch.Tensor) -> torch.Tensor:
    """``(N, D) -> (N, 1, S, S)`` with ``S = grid_side(D)``, zero-padded at the end."""
    if features.ndim != 2:
        raise ValueError(f"expected (N, D) features, got shape {tuple(features.shape)}")
    side = grid_side(features.shape[1])
    padded = F.pad(features, (0, side * side - features.shape[1]))
    return padded.view(-1, 1, side, side)


def resolve_scale(scale: float | None, dim: int) -> float:
    return math.sqrt(dim) if scale is None else float(scale)


def conv_stack(kernels, strides, channels, slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 1
    for k, s, c in zip(kernels, strides, channels):
        layers += [Conv2dSame(in_ch, c, k, stride=s), nn.LeakyReLU(slope)]
        in_ch = c
    return nn.Sequential(*layers)


def stack_output_side(side: int, strides) -> int:
    for s in strides:
        side = math.ceil(side / s)
    return side


@dataclass
class GeneratorConfig:
    """Table 2 as defaults. ``residual=True`` is our named variant (not in the paper):
    ``G(f) = f + Δ(f)`` with Δ's last layer zero-initialised, so G starts as the identity."""

    feature_dim: int = 4096
    kernels: tuple[int, ...] = (8, 5, 5, 5, 5, 5)
    strides: tuple[int, ...] = (1, 2, 1, 2, 1, 2)
    channels: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    leaky_slope: float = 0.2
    dropout: float = 0.3
    residual: bool = False
    input_scale: float | None = None


@dataclass
class CriticConfig:
    """Table 3 as defaults."""

    feature_dim: int = 4096
    kernels: tuple[int, ...] = (5, 5, 3, 3)
    strides: tuple[int, ...] = (2, 2, 2, 1)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    leaky_slope: float = 0.2
    input_scale: float | None = None


class FeatureGenerator(nn.Module):
    """G: ``(N, D) -> (N, D)``; six SAME convolutions with Leaky ReLU, dropout, linear (Table 2)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = resolve_scale(config.input_scale, config.feature_dim)
        self.convs = conv_stack(config.kernels, config.strides, config.channels, config.leaky_slope)
        side = stack_output_side(grid_side(config.feature_dim), config.strides)
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(side * side * config.channels[-1], config.feature_dim)
        if config.residual:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise ValueError(f"G expects (N, {self.config.feature_dim}) features, got {tuple(features.shape)}")
        out = self.linear(self.dropout(self.convs(to_grid(features * self.scale)).flatten(1))) / self.scale
        return features + out if self.config.residual else out


class FeatureCritic(nn.Module):
    """D: ``(N, D) -> (N,)`` unbounded score; four SAME convolutions with Leaky ReLU, linear (Table 3)."""

    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = resolve_scale(config.input_scale, config.feature_dim)
        self.convs = conv_stack(config.kernels, config.strides, config.channels, config.leaky_slope)
        side = stack_output_side(grid_side(config.feature_dim), config.strides)
        self.linear = nn.Linear(side * side * config.channels[-1], 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise ValueError(f"D expects (N, {self.config.feature_dim}) features, got {tuple(features.shape)}")
        return self.linear(self.convs(to_grid(features * self.scale)).flatten(1)).squeeze(1)


def layer_table(model: nn.Module, feature_dim: int) -> list[tuple[str, tuple[int, ...], int]]:
    """``(layer, output shape HxWxC or (D,), parameters)`` for each conv and the linear, as Tables 2-3 print them."""
    rows = []
    x = to_grid(torch.zeros(1, feature_dim))
    for layer in model.convs:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            rows.append((f"conv {layer.kernel_size[0]}x{layer.kernel_size[1]}/{layer.stride[0]}",
                         (x.shape[2], x.shape[3], x.shape[1]), sum(p.numel() for p in layer.parameters())))
    rows.append(("linear", (model.linear.out_features,), sum(p.numel() for p in model.linear.parameters())))
    return rows


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


#: Output sizes printed in the paper (Table 2: G, Table 3: D) for a 4096-d feature.
PAPER_TABLE2: list[tuple[str, str]] = [("conv 8x8/1", "64x64x4"), ("conv 5x5/2", "32x32x8"), ("conv 5x5/1", "32x32x16"),
                                       ("conv 5x5/2", "16x16x32"), ("conv 5x5/1", "16x16x64"),
                                       ("conv 5x5/2", "8x8x128"), ("linear", "4096")]
PAPER_TABLE3: list[tuple[str, str]] = [("conv 5x5/2", "32x32x8"), ("conv 5x5/2", "16x16x16"), ("conv 3x3/2", "8x8x32"),
                                       ("conv 3x3/1", "8x8x64"), ("linear", "1")]


def architecture_table(model: nn.Module, feature_dim: int, paper: list[tuple[str, str]] | None = None):
    """Layer, output size and parameters of ``model`` as a DataFrame, with the paper's output size beside."""
    import pandas as pd

    rows = [{"layer": name, "output": "x".join(str(s) for s in shape), "parameters": params}
            for name, shape, params in layer_table(model, feature_dim)]
    table = pd.DataFrame(rows)
    if paper is not None:
        table["paper output"] = [size for _, size in paper][: len(table)]
    return table
