"""Baselines any reviewer asks for, trained on the same pairs as FSR-GAN.

* ridge: closed-form ridge regression of the *residual* ``F_HR - F_LR`` on
  ``F_LR`` (one map for all ratios). As the penalty grows the map tends to the
  identity, i.e. the raw feature, never to zero; the penalty is picked on
  held-out training images, never on test queries.
* mlp: a one-hidden-layer perceptron ``D -> hidden -> D`` fitted with MSE.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fsrlib.devices import concrete_device
from fsrlib.methods.pairs import make_pairs, split_by_image
from fsrlib.methods.train import check_finite_features
from fsrlib.seed import set_seed


@dataclass
class RidgeConfig:
    penalties: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class RidgeModel:
    """``F_SR = F_LR + (F_LR - mean) W + b``."""

    weight: np.ndarray
    bias: np.ndarray
    penalty: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return features + features @ self.weight + self.bias


def fit_ridge_residual(x: np.ndarray, y: np.ndarray, penalty: float) -> RidgeModel:
    r"""Minimise :math:`\|X_c W - (Y - X)_c\|_F^2 + \lambda \|W\|_F^2` (centred), closed form."""
    x = x.astype(np.float64)
    target = y.astype(np.float64) - x
    x_mean, t_mean = x.mean(0), target.mean(0)
    xc, tc = x - x_mean, target - t_mean
    gram = xc.T @ xc + penalty * np.eye(x.shape[1])
    weight = np.linalg.solve(gram, xc.T @ tc)
    return RidgeModel(weight=weight.astype(np.float32), bias=(t_mean - x_mean @ weight).astype(np.float32),
                      penalty=penalty)


def train_ridge(features: Mapping[float, np.ndarray], config: RidgeConfig | None = None) -> RidgeModel:
    """Pick the penalty by mean distance on held-out training images, then refit on all pairs."""
    config = config or RidgeConfig()
    check_finite_features(features)
    pairs = make_pairs(features)
    train, val = split_by_image(pairs, config.val_fraction, config.seed)
    best, best_dist = config.penalties[0], np.inf
    for penalty in config.penalties:
        model = fit_ridge_residual(train.lr.numpy(), train.hr.numpy(), penalty)
        dist = float(np.linalg.norm(model(val.lr.numpy()) - val.hr.numpy(), axis=1).mean())
        if dist < best_dist:
            best, best_dist = penalty, dist
    return fit_ridge_residual(pairs.lr.numpy(), pairs.hr.numpy(), best)


@dataclass
class MLPConfig:
    hidden: int = 1024
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.device = concrete_device(self.device)  # "auto": CUDA, else MPS, else CPU


class FeatureMLP(nn.Module):
    """``(N, D) -> (N, D)``: linear, ReLU, linear on features scaled to unit RMS per entry."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.scale = float(np.sqrt(dim))
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features * self.scale) / self.scale


def train_mlp(features: Mapping[float, np.ndarray], config: MLPConfig | None = None) -> FeatureMLP:
    """Fit :class:`FeatureMLP` with MSE on all pairs (every ratio mixed)."""
    config = config or MLPConfig()
    check_finite_features(features)
    rng = set_seed(config.seed)
    pairs = make_pairs(features).to(config.device)
    model = FeatureMLP(pairs.lr.shape[1], config.hidden).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    for _ in range(config.epochs):
        order = torch.randperm(len(pairs), generator=rng).to(config.device)
        for start in range(0, len(pairs), config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = (model(pairs.lr[idx]) - pairs.hr[idx]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()
