"""Training pairs (F_LR at a ratio, F_HR of the same image), all ratios mixed as in the paper."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Self

import numpy as np
import torch


@dataclass
class FeaturePairs:
    """``P`` pairs: ``lr`` and ``hr`` are ``(P, D)``; ``ratio`` and ``image`` (source image index) are ``(P,)``."""

    lr: torch.Tensor
    hr: torch.Tensor
    ratio: torch.Tensor
    image: torch.Tensor

    def __len__(self) -> int:
        return self.lr.shape[0]

    def subset(self, mask: torch.Tensor) -> Self:
        """The pairs selected by ``mask`` (a boolean or index tensor over pairs), every field alike."""
        return type(self)(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @classmethod
    def concat(cls, parts: Sequence[Self]) -> Self:
        """One set of pairs from several, in order."""
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def to(self, device: str | torch.device) -> FeaturePairs:
        return FeaturePairs(self.lr.to(device), self.hr.to(device), self.ratio.to(device), self.image.to(device))


def make_pairs(features: Mapping[float, np.ndarray], ratios: tuple[float, ...] | None = None) -> FeaturePairs:
    """Pairs from ``{ratio: (N, D)}`` features of the same N images; ``features[1.0]`` is the HR target."""
    if 1.0 not in features:
        raise ValueError("features must include the high-resolution ones under ratio 1.0")
    hr = torch.as_tensor(np.asarray(features[1.0], dtype=np.float32))
    ratios = tuple(r for r in (ratios or features) if r != 1.0)
    if not ratios:
        raise ValueError("need at least one ratio below 1 to make pairs")
    for r in ratios:
        if features[r].shape != hr.shape:
            raise ValueError(f"features at ratio {r} have shape {features[r].shape}, HR has {tuple(hr.shape)}")
    n = hr.shape[0]
    return FeaturePairs(
        lr=torch.cat([torch.as_tensor(np.asarray(features[r], dtype=np.float32)) for r in ratios]),
        hr=hr.repeat(len(ratios), 1),
        ratio=torch.tensor([r for r in ratios for _ in range(n)], dtype=torch.float64),
        image=torch.arange(n).repeat(len(ratios)),
    )


def split_by_image(pairs: FeaturePairs, val_fraction: float, seed: int) -> tuple[FeaturePairs, FeaturePairs]:
    """Hold out ``val_fraction`` of the *images* (all their ratios), so validation never sees a training image."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    images = torch.unique(pairs.image)
    n_val = int(round(val_fraction * len(images)))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    val_images = images[order[:n_val]]
    is_val = torch.isin(pairs.image, val_images)
    return pairs.subset(~is_val), pairs.subset(is_val)
