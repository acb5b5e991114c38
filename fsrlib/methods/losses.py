"""The losses of FSR-GAN (paper Sec. 3.2, Eqs. 6-9) as functions, with thin modules around them.

Notation: ``F_SR = G(F_LR)`` the enhanced features, ``F_HR`` the features of the
high-resolution images, ``D`` the critic, ``m`` the batch size.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _check_pair(f_sr: torch.Tensor, f_hr: torch.Tensor) -> None:
    if f_sr.shape != f_hr.shape or f_sr.ndim != 2:
        raise ValueError(f"expected two (N, D) tensors of the same shape, got {tuple(f_sr.shape)} "
                         f"and {tuple(f_hr.shape)}")


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""Eq. 7, the WGAN critic loss: :math:`L(D) = E_{x\sim P_g}[D(x)] - E_{x\sim P_r}[D(x)]`.

    Its negative is the critic's estimate of the Wasserstein-1 distance (up to
    the Lipschitz constant) between real ``F_HR`` and generated ``F_SR``.
    """
    return d_fake.mean() - d_real.mean()


def adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    r"""Eq. 6, the WGAN generator loss: :math:`L(G) = -E_{x\sim P_g}[D(x)]`."""
    return -d_fake.mean()


def focal_distance(f_sr: torch.Tensor, f_hr: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    r"""The distance term of Eqs. 8-9: :math:`\frac{1}{m}\sum_i \|F^{SR}_i - F^{HR}_i\|_2^{\,r}`.

    ``r = 1`` is Eq. 8 (plain mean distance); ``r > 1`` is the paper's "focal"
    weighting, which makes far-off (heavily down-scaled) examples count more.
    Inputs are ``(N, D)``; the result is a scalar.
    """
    return focal_distances(f_sr, f_hr, r).mean()


def focal_distances(f_sr: torch.Tensor, f_hr: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    r"""The terms :math:`\|F^{SR}_i - F^{HR}_i\|_2^{\,r}` of :func:`focal_distance`, one per row: ``(N,)``."""
    _check_pair(f_sr, f_hr)
    if r <= 0:
        raise ValueError(f"focal exponent r must be positive, got {r}")
    diff = f_sr - f_hr
    if r == 2:  # squared norm without the sqrt: same value, a gradient that is defined at 0
        return diff.pow(2).sum(dim=1)
    return diff.norm(dim=1).pow(r)


def generator_loss(d_fake: torch.Tensor, f_sr: torch.Tensor, f_hr: torch.Tensor, r: float = 2.0,
                   distance_weight: float = 1.0, adversarial_weight: float = 1.0) -> dict[str, torch.Tensor]:
    r"""Eq. 9: :math:`L(G) = -E[D(G(F_{LR}))] + \lambda \frac{1}{m}\sum_i \|F^{SR}_i - F^{HR}_i\|_2^{\,r}`.

    The paper uses :math:`\lambda = 1` (``distance_weight``). Returns the total
    and both terms, so the balance between them can be reported.
    """
    adv = adversarial_loss(d_fake)
    dist = focal_distance(f_sr, f_hr, r)
    return {"total": adversarial_weight * adv + distance_weight * dist, "adversarial": adv, "distance": dist}


def mse_loss(f_sr: torch.Tensor, f_hr: torch.Tensor) -> torch.Tensor:
    r"""The CNN-Baseline's "standard MSE": :math:`\frac{1}{mD}\sum_{i,j} (F^{SR}_{ij} - F^{HR}_{ij})^2`."""
    _check_pair(f_sr, f_hr)
    return (f_sr - f_hr).pow(2).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    r"""WGAN-GP (Gulrajani et al. 2017): :math:`E_{\hat x}[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2]`
    on random interpolates :math:`\hat x = \epsilon x_r + (1-\epsilon) x_g`; an option instead of clipping."""
    _check_pair(real, fake)
    eps = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.norm(dim=1) - 1).pow(2).mean()


class FocalDistance(nn.Module):
    """Module form of :func:`focal_distance`."""

    def __init__(self, r: float = 2.0) -> None:
        super().__init__()
        self.r = r

    def forward(self, f_sr: torch.Tensor, f_hr: torch.Tensor) -> torch.Tensor:
        return focal_distance(f_sr, f_hr, self.r)
