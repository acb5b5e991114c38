"""A resolution-robust student (beyond the paper, issue 13): fine-tune the backbone's last blocks on pixels.

The paper's G maps features to features and, trained on a few hundred photos, pulls
queries toward them. The student instead fine-tunes EfficientNet-Lite0's last
``trainable_blocks`` MBConv blocks and its head so that a degraded image gives the
*frozen* backbone's feature of the full-size image (feature distillation)::

    min_theta  1/m sum_i  || n(S_theta(LR_i)) - n(F(HR_i)) ||_2^r  +  lambda KL(p(n(F(HR_i))) || p(n(S_theta(LR_i))))

with ``n(x) = x / ||x||_2``. The first term is the distance term of Eq. 9
(:func:`fsrlib.methods.losses.focal_distance`; ``r = 2`` is the squared L2). With the default recipe (whole photo
plus random crops, four passes, one-cycle AdamW) it is the whole loss: alone it wins back about a third of the mAP
lost at 1/64 on scenes it never saw (``benchmarks/RESULTS.md``). The second term (``rank_weight``, beyond the
paper, off by default) is a similarity distillation: ``p(x) = softmax(x B^T / tau)`` over the bank
``B`` of the training crops' full-size features, so the small query must rank
those photos as its full-size version does; it was what made the earlier, shorter recipe (300 steps, no crops)
help retrieval at all.
Database images keep the frozen backbone's features, so only small queries pass
through the student and nothing is re-indexed. The queries' features come out of the one extraction path,
:func:`fsrlib.features.extract.extract_features` with ``network=trained.network()``, cached under the checkpoint's id.

Pairs need only photos (a folder of unlabeled ones is enough: dataset ``photos``): each training photo gives
``crops_per_image`` crops, the first the whole photo and the others a random share ``crop_area`` of it (flipped
at random; colour jitter if asked); each crop is degraded by :func:`fsrlib.features.degrade.degrade` at
``ratios_per_crop`` of the training ratios. The frozen stages' activations of the
inputs (before block ``cache_block``) and the HR targets are cached per photo on
disk, keyed by the photo's content and every pair setting, so folds, seeds and
step budgets share them. Training runs ``passes`` over the pairs (or ``steps``), AdamW with a one-cycle
schedule. A checkpoint stores ``asdict(config)`` and the exact
training list (dataset, folder, path), so a leak of a test scene can be asserted.
"""
from __future__ import annotations

import ast
import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from fsrlib.devices import concrete_device
from fsrlib.features.backbones import split_lite0
from fsrlib.features.degrade import DEGRADATIONS, check_ratio
from fsrlib.methods.losses import focal_distances
from fsrlib.paths import json_digest

FORMAT_VERSION = 1
LITE0_BLOCKS = 16  #: MBConv blocks of EfficientNet-Lite0
#: The config fields that change the cached pairs (everything else only changes training).
PAIR_FIELDS = ("backbone", "cache_block", "ratios_per_crop", "crop_area", "flip",
               "colour_jitter", "ratios", "degradations", "reference", "pair_seed", "store_dtype")


#: The ratios the student trains on by default: the paper's mildest and the three smallest of Sec. 4.1's seven.
STUDENT_RATIOS: tuple[float, ...] = (1 / 4, 1 / 16, 1 / 36, 1 / 64)
SCHEDULES: tuple[str, ...] = ("onecycle", "cosine")


def training_ratios(recipe: Sequence[float], scored: Sequence[float]) -> tuple[float, ...]:
    """The ratios a student trains on when it will be scored at ``scored``: the recipe's own (it generalises to
    the ratios between them: measured better than raw at all seven of the paper's ratios when trained on four),
    plus every scored ratio beyond the recipe's range (a student must have seen the extremes it is scored at).
    Largest first; full size (1) is never a training ratio."""
    low, high = min(recipe), max(recipe)
    extra = [r for r in scored if r < 1.0 and not low <= r <= high]
    return tuple(sorted(set(recipe) | set(extra), reverse=True))


@dataclass
class StudentConfig:
    """One student: what is fine-tuned, on which pairs, how long. Defaults: the recipe of issue 24's GPU prototype
    (4 crops per photo, the whole photo and 3 random crops; 4 ratios, uniform degradation, no colour jitter; AdamW
    with weight decay and a one-cycle schedule, batch 64, 4 passes over the pairs), measured on CPU by
    ``benchmarks/bench_student.py``; :data:`STUDENT_PROFILES` has a GPU one."""

    backbone: str = "efficientnet_lite0"
    trainable_blocks: int = 2  # trailing MBConv blocks fine-tuned, plus the head conv (0: head only)
    cache_block: int = 11  # frozen activations are cached before this block (<= 16 - trainable_blocks)
    steps: int | None = None  # optimisation steps; None: ``passes`` over the training pairs
    passes: float = 4.0  # with steps=None: steps = ceil(passes * pairs / batch_size)
    batch_size: int = 64
    lr: float = 3e-4  # the peak of the one-cycle schedule (the start of the cosine one)
    weight_decay: float = 1e-4
    schedule: str = "onecycle"  # "onecycle" (warm-up then cosine decay) or "cosine" (decay from lr)
    crops_per_image: int = 4
    ratios_per_crop: int = 4  # each crop is degraded at this many distinct training ratios
    crop_area: tuple[float, float] = (0.35, 1.0)  # crop 0 is the whole photo, the others cover this share of it
    flip: bool = True
    colour_jitter: float = 0.0  # brightness, contrast and saturation factors drawn from [1 - j, 1 + j]
    ratios: tuple[float, ...] = STUDENT_RATIOS
    degradations: tuple[str, ...] = ("uniform",)
    reference: str = "input"
    focal_r: float = 2.0  # exponent r of the distance (2: squared L2 of unit vectors, i.e. 2 - 2 cos)
    identity_weight: float = 0.0  # weight of full-size crops (ratio 1) mapped to their own feature
    rank_weight: float = 0.0  # weight of the similarity distillation over the training crops' features
    temperature: float = 0.05  # its softmax temperature
    pair_seed: int = 0  # crops, jitter, ratios and degradations of the pairs
    seed: int = 0  # batch order
    threads: int = 2  # fixed while training (the GAN trainings use 2 too): the same numbers on any machine with 2 threads
    device: str = "cpu"
    store_dtype: str = "float16"

    def __post_init__(self) -> None:
        self.device = concrete_device(self.device)  # "auto": CUDA, else MPS, else CPU

    @property
    def pairs_per_image(self) -> int:
        return self.crops_per_image * min(self.ratios_per_crop, len(self.ratios))

    def steps_for(self, n_pairs: int) -> int:
        """The optimisation steps of a run on ``n_pairs`` training pairs: ``steps``, or ``passes`` over them."""
        return self.steps if self.steps is not None else math.ceil(self.passes * n_pairs / self.batch_size)


#: "cpu": the default above (minutes per thousand photos on a 2-core CPU once the pairs are cached). "paper": the
#: full budget (twice the blocks, twice the crops; meant for a GPU), named like every other full budget
#: (:data:`fsrlib.experiment.PROFILES`).
STUDENT_PROFILES: dict[str, dict] = {
    "cpu": {},
    "paper": {"trainable_blocks": 4, "crops_per_image": 8, "threads": 8, "device": "cuda"},
}


def student_config(profile: str = "cpu", **changes) -> StudentConfig:
    """The config of a named profile (:data:`STUDENT_PROFILES`) plus ``changes``."""
    if profile not in STUDENT_PROFILES:
        raise KeyError(f"unknown student profile {profile!r}; known: {sorted(STUDENT_PROFILES)}")
    return StudentConfig(**{**STUDENT_PROFILES[profile], **changes})


#: What a run sets itself and :func:`check_student_changes` refuses to change (the run's seed and device).
RUN_FIELDS = ("seed", "device")


def check_student_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` as a dict once each key is a :class:`StudentConfig` field a run may change (not
    :data:`RUN_FIELDS`) and the changed default config passes :func:`check_config`; else a ``ValueError``."""
    if not isinstance(changes, Mapping):
        raise ValueError(f"student changes are a mapping of StudentConfig fields to values, e.g. "
                         f"{{'crops_per_image': 1}}, not {changes!r}")
    known = {f.name for f in fields(StudentConfig)} - set(RUN_FIELDS)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown or run-owned student field(s) {unknown}; change any of {sorted(known)} (seed and "
                         "device are the run's own)")
    try:
        check_config(replace(StudentConfig(), **changes))
    except TypeError as err:  # a value of the wrong type that the dataclass itself refuses
        raise ValueError(f"student changes {dict(changes)!r}: {err}") from None
    return dict(changes)


def parse_changes(items: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=('x','y')"]`` as ``{"a": 1, "b": ("x", "y")}``: each value a Python literal (a bare word is
    kept as a string); a ``ValueError`` for an item without ``=``."""
    changes = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{item!r} is not FIELD=VALUE (e.g. crops_per_image=1)")
        try:
            changes[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            changes[key.strip()] = text
    return changes


def check_config(cfg: StudentConfig) -> None:
    """Refuse settings that cannot work, saying which."""
    first_trained = LITE0_BLOCKS - cfg.trainable_blocks
    if not 0 <= cfg.trainable_blocks <= LITE0_BLOCKS or not 1 <= cfg.cache_block <= first_trained:
        raise ValueError(f"need 0 <= trainable_blocks <= 16 and 1 <= cache_block <= 16 - trainable_blocks; got "
                         f"trainable_blocks={cfg.trainable_blocks}, cache_block={cfg.cache_block}")
    for r in cfg.ratios:
        check_ratio(r)
    if not cfg.ratios or 1.0 in cfg.ratios:
        raise ValueError("ratios are the down-scaling ratios to train on, below 1 (ratio 1 is identity_weight)")
    if not cfg.degradations or any(d not in DEGRADATIONS for d in cfg.degradations):
        raise ValueError(f"degradations must be a non-empty subset of {DEGRADATIONS}, got {cfg.degradations}")
    if len(cfg.crop_area) != 2 or not 0 < cfg.crop_area[0] <= cfg.crop_area[1] <= 1:
        raise ValueError(f"crop_area is a (smallest, largest) share of the photo's area, 0 < smallest <= largest "
                         f"<= 1; got {cfg.crop_area}")
    if min(cfg.crops_per_image, cfg.ratios_per_crop, cfg.batch_size) < 1:
        raise ValueError("crops_per_image, ratios_per_crop and batch_size must be >= 1")
    if (cfg.steps is not None and cfg.steps < 0) or not cfg.passes >= 0:
        raise ValueError(f"steps must be None or >= 0 and passes >= 0; got steps={cfg.steps}, passes={cfg.passes}")
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    if cfg.store_dtype not in ("float16", "float32"):
        raise ValueError(f"store_dtype must be 'float16' or 'float32', got {cfg.store_dtype!r}")
    if cfg.backbone != "efficientnet_lite0":
        raise ValueError(f"the student is built for efficientnet_lite0's blocks, not {cfg.backbone!r}")


class ResolutionStudent(nn.Module):
    """Frozen stem and blocks ``[0, cache_block)`` (``prefix``), frozen blocks up to the last
    ``trainable_blocks`` (``middle``), fine-tuned ``tail`` with the head and pooling:
    ``(N, 3, 224, 224) -> (N, 1280)``. Untrained, it *is* the frozen backbone."""

    def __init__(self, backbone: nn.Module, cache_block: int, trainable_blocks: int) -> None:
        super().__init__()
        self.cache_block, self.trainable_blocks = cache_block, trainable_blocks
        cuts = [cache_block, LITE0_BLOCKS - trainable_blocks]
        self.prefix, self.middle, self.tail = split_lite0(copy.deepcopy(backbone), cuts)
        for p in [*self.prefix.parameters(), *self.middle.parameters()]:
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_cached(self.prefix(x))

    def from_cached(self, activation: torch.Tensor) -> torch.Tensor:
        """Features from the cached prefix activation ``(N, C, H, W)`` -> ``(N, 1280)``."""
        return self.tail(self.middle(activation))


def student_digest(key: dict) -> str:
    return json_digest(key, 24)


# ---------------------------------------------------------------- loss
def similarity_kl(out: torch.Tensor, target: torch.Tensor, bank: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Similarity distillation, per pair ``(N,)``: :math:`KL(p_T \| p_S)` with
    :math:`p_x = \mathrm{softmax}(x B^\top / \tau)` over a bank ``B`` ``(K, D)`` of normalised full-size features.
    The query must rank the bank as its full-size version does, which an L2 pull toward a mean does not give.
    ``out`` and ``target`` are normalised ``(N, D)``."""
    log_p_s = torch.log_softmax(out @ bank.T / temperature, dim=1)
    log_p_t = torch.log_softmax(target @ bank.T / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def student_loss(out: torch.Tensor, target: torch.Tensor, cfg: StudentConfig, weights: torch.Tensor | None = None,
                 bank: torch.Tensor | None = None) -> torch.Tensor:
    r"""Weighted mean over pairs of :math:`\|n(S) - n(T)\|_2^{\,r}` (:func:`fsrlib.methods.losses.focal_distances`)
    plus ``rank_weight`` times :func:`similarity_kl` against ``bank``. ``out``, ``target``: ``(N, D)``."""
    out, target = nn.functional.normalize(out, dim=1), nn.functional.normalize(target, dim=1)
    per_pair = focal_distances(out, target, cfg.focal_r)
    if bank is not None and cfg.rank_weight > 0:
        per_pair = per_pair + cfg.rank_weight * similarity_kl(out, target, bank, cfg.temperature)
    if weights is None:
        return per_pair.mean()
    return (per_pair * weights).sum() / weights.sum()
