"""A resolution-robust student (beyond the paper, issue 13): fine-tune the backbone's last blocks on pixels.

The paper's G maps features to features and, trained on a few hundred photos, pulls
queries toward them. The student instead fine-tunes EfficientNet-Lite0's last
``trainable_blocks`` MBConv blocks and its head so that a degraded image gives the
*frozen* backbone's feature of the full-size image (feature distillation)::

    min_theta  1/m sum_i  || n(S_theta(LR_i)) - n(F(HR_i)) ||_2^r  +  lambda KL(p(n(F(HR_i))) || p(n(S_theta(LR_i))))

with ``n(x) = x / ||x||_2``. The first term is the distance term of Eq. 9
(:func:`fsrlib.losses.focal_distance`; ``r = 2`` is the squared L2). Alone, it pulls
queries toward a common direction: on unseen Holidays groups it halves the distance
to the HR feature but hardly moves mAP. The second term (``rank_weight``, beyond the
paper) is a similarity distillation: ``p(x) = softmax(x B^T / tau)`` over the bank
``B`` of the training crops' full-size features, so the small query must rank
those photos as its full-size version does; it is what makes the student help
retrieval (numbers: ``benchmarks/bench_student.py``).
Database images keep the frozen backbone's features, so only small queries pass
through the student and nothing is re-indexed. The queries' features come out of the one extraction path,
:func:`fsrlib.features.extract_features` with ``network=trained.network()``, cached under the checkpoint's id.

Pairs need only photos (a folder of unlabeled ones is enough: dataset ``photos``): each training photo gives
``crops_per_image`` crops, the first the whole photo and the others a random share ``crop_area`` of it (flipped
at random; colour jitter if asked); each crop is degraded by :func:`fsrlib.degrade.degrade` at
``ratios_per_crop`` of the training ratios. The frozen stages' activations of the
inputs (before block ``cache_block``) and the HR targets are cached per photo on
disk, keyed by the photo's content and every pair setting, so folds, seeds and
step budgets share them. Training runs ``passes`` over the pairs (or ``steps``), AdamW with a one-cycle
schedule. A checkpoint stores ``asdict(config)`` and the exact
training list (dataset, folder, path), so a leak of a test scene can be asserted.
"""
from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch import nn

from .backbones import get_backbone_spec, shared_backbone, split_lite0
from .datasets import RetrievalDataset
from .degrade import DEGRADATIONS, check_ratio, degrade
from .devices import concrete_device
from .features import NetworkVariant
from .imageio import load_image
from .losses import focal_distances
from .pairs import FeaturePairs
from .paths import (cache_dir_or_default, canonical_json, file_sha256, files_sha256, json_digest, load_arrays,
                    read_checkpoint, save_arrays, save_checkpoint)
from .progress import bar
from .seed import deterministic

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


# ---------------------------------------------------------------- pairs
def augmented_crop(image: Image.Image, scale: float, rng: np.random.Generator, cfg: StudentConfig) -> Image.Image:
    """A random crop of ``scale`` of the photo's area (aspect ratio in [3/4, 4/3], clipped to the photo; the whole
    photo at 1),
    flipped with probability 1/2 and colour-jittered, as ``cfg`` says."""
    width, height = image.size
    if scale < 1:
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = min(width, max(1, round(math.sqrt(scale * width * height * aspect))))
        h = min(height, max(1, round(math.sqrt(scale * width * height / aspect))))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        image = image.crop((x, y, x + w, y + h))
    if cfg.flip and rng.random() < 0.5:
        image = ImageOps.mirror(image)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color) if cfg.colour_jitter else ():
        image = enhancer(image).enhance(rng.uniform(1 - cfg.colour_jitter, 1 + cfg.colour_jitter))
    return image


def crop_inputs(image: Image.Image, crop: int, rng: np.random.Generator,
                cfg: StudentConfig) -> tuple[list[Image.Image], np.ndarray]:
    """Network inputs of one crop's pairs and their ``(M, 2)`` table ``(ratio, degradation index)``.

    The crop's full-size input comes first (ratio 1, degradation -1: the target's source), then one input per
    drawn training ratio, each with a drawn degradation. Crop 0 is the whole photo; crop ``c > 0`` covers a share
    of its area drawn uniformly from ``cfg.crop_area``.
    """
    view = augmented_crop(image, 1.0 if crop == 0 else float(rng.uniform(*cfg.crop_area)), rng, cfg)
    inputs, rows = [degrade(view, 1.0, reference=cfg.reference).upsampled], [(1.0, -1)]
    for k in rng.choice(len(cfg.ratios), size=min(cfg.ratios_per_crop, len(cfg.ratios)), replace=False):
        d = int(rng.integers(len(cfg.degradations)))
        inputs.append(degrade(view, cfg.ratios[k], degradation=cfg.degradations[d], reference=cfg.reference).upsampled)
        rows.append((cfg.ratios[k], d))
    return inputs, np.asarray(rows, dtype=np.float64)


@dataclass
class StudentPairs(FeaturePairs):
    """``P`` pairs: ``lr`` the frozen activations at the tail's input ``(P, C, H, W)``, ``hr`` the targets
    ``(P, D)`` (frozen features of the full-size crops, not normalised), ``ratio`` ``(P,)``
    (1.0 for a full-size crop), ``image`` ``(P,)`` index of the training photo, and ``degradation`` ``(P,)``
    index into the config's degradations (-1 at ratio 1)."""

    degradation: torch.Tensor


def _digest(key: dict) -> str:
    return json_digest(key, 24)


def file_digest(path: Path) -> str:
    """The photo's content digest (:func:`fsrlib.paths.file_sha256`, remembered while the file is unchanged), cut
    to 24 hex digits: the form the pair cache's keys and the crops' seeds use."""
    return file_sha256(path)[:24]


def pair_key(digest: str, bbx, exif_transpose: bool, crop: int, cfg: StudentConfig) -> dict:
    """Everything one crop's cached pairs depend on: the photo's content, crop box and EXIF handling, the crop's
    index, backbone and weights, and the pair settings (:data:`PAIR_FIELDS`). ``crops_per_image`` is not in it,
    so a larger budget reuses the crops of a smaller one."""
    spec = get_backbone_spec(cfg.backbone)
    settings = {f: getattr(cfg, f) for f in PAIR_FIELDS}
    return {"format": FORMAT_VERSION, "kind": "student-pairs", "content": digest, "bbx": bbx, "crop": crop,
            "exif_transpose": exif_transpose, "weights": spec.weights_id, "preprocess_version": spec.preprocess_version,
            **json.loads(json.dumps(settings))}


@torch.inference_mode()
def crop_arrays(frozen: ResolutionStudent, inputs: list[Image.Image], rows: np.ndarray, cfg: StudentConfig,
                batch: int = 16) -> dict[str, np.ndarray]:
    """Cached form of one crop: prefix activations ``lr`` ``(M, C, H, W)`` of its inputs, ``rows`` ``(M, 2)``
    and the frozen feature ``target`` ``(D,)`` of its full-size input (the first row)."""
    spec = get_backbone_spec(cfg.backbone)
    x = torch.cat([frozen.prefix(spec.to_tensor(inputs[i:i + batch]).to(cfg.device))
                   for i in range(0, len(inputs), batch)])
    target = frozen.from_cached(x[:1])[0].float().cpu().numpy()
    return {"lr": x.cpu().numpy().astype(cfg.store_dtype), "rows": rows, "target": target.astype(np.float32)}


def build_pairs(train: RetrievalDataset, cfg: StudentConfig, *, cache_dir: str | Path | None = None,
                progress: Callable[[int, int], None] | None = None) -> StudentPairs:
    """Pairs of every image of ``train``'s training split, computed once per crop and cached.

    ``lr`` holds the activations at the tail's input (block ``16 - trainable_blocks``): the frozen blocks after
    ``cache_block`` are applied once and cached too, so training runs only the tail. Crop ``c`` of a photo is
    drawn from its own generator, seeded by ``pair_seed``, the photo's content and ``c``, so it depends neither on
    the other photos in the list nor on ``crops_per_image``. ``progress(done, total)`` is called after each photo.
    """
    check_config(cfg)
    items = train.split_items("train")
    if not items:
        raise ValueError(f"{train.name} has no training images to make student pairs from")
    folder = cache_dir_or_default(cache_dir)
    frozen: list[ResolutionStudent] = []  # built on first need
    parts = []
    for i, item in enumerate(items):
        path, image = train.path(item.path), None
        digest = file_digest(path)
        for c in range(cfg.crops_per_image):
            key = pair_key(digest, item.bbx, train.exif_transpose, c, cfg)
            entry = folder / "student" / "pairs" / cfg.backbone / digest[:2] / f"{_digest(key)}.npz"
            arrays = load_arrays(entry, key, ("lr", "rows", "target"), what="student cache")
            if arrays is None:
                frozen = frozen or [ResolutionStudent(shared_backbone(cfg.backbone, cfg.device), cfg.cache_block,
                                                      cfg.trainable_blocks)]
                if image is None:
                    image = load_image(path, item.bbx, exif_transpose=train.exif_transpose)
                rng = np.random.default_rng([cfg.pair_seed, int(digest[:15], 16), c])
                arrays = crop_arrays(frozen[0], *crop_inputs(image, c, rng, cfg), cfg)
                save_arrays(entry, arrays, key)
            cut = LITE0_BLOCKS - cfg.trainable_blocks
            if cut > cfg.cache_block:
                key_cut = key | {"cut": cut}
                entry_cut = entry.with_name(f"{_digest(key_cut)}.npz")
                at_cut = load_arrays(entry_cut, key_cut, ("lr",), what="student cache")
                if at_cut is None:
                    frozen = frozen or [ResolutionStudent(shared_backbone(cfg.backbone, cfg.device), cfg.cache_block,
                                                          cfg.trainable_blocks)]
                    with torch.inference_mode():
                        lr = frozen[0].middle(torch.from_numpy(arrays["lr"]).to(cfg.device).float())
                    at_cut = {"lr": lr.cpu().numpy().astype(cfg.store_dtype)}
                    save_arrays(entry_cut, at_cut, key_cut)
                arrays = {**arrays, "lr": at_cut["lr"]}
            parts.append(_as_pairs(arrays, i))
        if progress is not None:
            progress(i + 1, len(items))
    return StudentPairs.concat(parts)


def _as_pairs(arrays: dict[str, np.ndarray], image: int) -> StudentPairs:
    rows, n = arrays["rows"], len(arrays["rows"])
    return StudentPairs(lr=torch.from_numpy(arrays["lr"]), hr=torch.from_numpy(arrays["target"]).expand(n, -1),
                        ratio=torch.from_numpy(rows[:, 0].copy()),
                        degradation=torch.from_numpy(rows[:, 1].astype(np.int64)), image=torch.full((n,), image))


# ---------------------------------------------------------------- training
@dataclass
class TrainedStudent:
    """A trained student with what it learned from: ``config``, the exact ``training_images``
    (``{"dataset", "folder", "path"}`` rows), the loss ``history`` and the seconds spent making pairs / training.
    ``cache_id`` names its checkpoint (config and training photos): its query features are cached under it."""

    model: ResolutionStudent
    config: StudentConfig
    cache_id: str
    training_images: list[dict]
    history: dict = field(default_factory=dict)
    pair_seconds: float = 0.0
    train_seconds: float = 0.0

    def network(self) -> NetworkVariant:
        """The student as the network :func:`fsrlib.features.extract_features` runs instead of the backbone."""
        return NetworkVariant(cache_id=f"student-{self.cache_id}", module=self.model)


def training_list(train: RetrievalDataset, exclude: Collection[str | Path] = ()) -> list[dict]:
    """The training images as ``{"dataset", "folder", "path"}`` rows; raises if one of them is in ``exclude``
    (image files, compared by resolved path): a test query's image must never be trained on."""
    rows = [{"dataset": train.name, "folder": str(train.root), "path": it.path} for it in train.split_items("train")]
    banned = {Path(p).resolve() for p in exclude}
    leaked = [r["path"] for r in rows if (Path(r["folder"]) / r["path"]).resolve() in banned]
    if leaked:
        raise ValueError(f"{len(leaked)} training image(s) of {train.name} are in the excluded (test) set, e.g. "
                         f"{leaked[:3]}; remove them from the training split")
    return rows


def student_key(train: RetrievalDataset, cfg: StudentConfig) -> dict:
    """What a checkpoint depends on: the config (but the device) and the training photos' contents."""
    contents = [d[:24] for d in files_sha256([train.path(it.path) for it in train.split_items("train")])]
    settings = {k: v for k, v in asdict(cfg).items() if k != "device"}
    return {"format": FORMAT_VERSION, "config": json.loads(json.dumps(settings)), "exif": train.exif_transpose,
            "images": json_digest(contents, None)}


def checkpoint_path(folder: Path, key: dict) -> Path:
    return folder / "student" / "models" / f"student-{_digest(key)}.pt"


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
    r"""Weighted mean over pairs of :math:`\|n(S) - n(T)\|_2^{\,r}` (:func:`fsrlib.losses.focal_distances`)
    plus ``rank_weight`` times :func:`similarity_kl` against ``bank``. ``out``, ``target``: ``(N, D)``."""
    out, target = nn.functional.normalize(out, dim=1), nn.functional.normalize(target, dim=1)
    per_pair = focal_distances(out, target, cfg.focal_r)
    if bank is not None and cfg.rank_weight > 0:
        per_pair = per_pair + cfg.rank_weight * similarity_kl(out, target, bank, cfg.temperature)
    if weights is None:
        return per_pair.mean()
    return (per_pair * weights).sum() / weights.sum()


def student_step(model: ResolutionStudent, optimizer: torch.optim.Optimizer, activation: torch.Tensor,
                 target: torch.Tensor, cfg: StudentConfig, weights: torch.Tensor | None = None,
                 bank: torch.Tensor | None = None) -> float:
    """One update of the tail on :func:`student_loss` over a batch of tail inputs ``(N, C, H, W)``; returns it."""
    loss = student_loss(model.tail(activation), target, cfg, weights, bank)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.inference_mode()
def pair_distance(model: ResolutionStudent, pairs: StudentPairs, batch: int = 256) -> dict[float, float]:
    """Mean ``||n(S(LR)) - n(F(HR))||_2`` per ratio of ``pairs`` (the untrained student gives the raw distance)."""
    out = torch.cat([model.tail(pairs.lr[i:i + batch].float()) for i in range(0, len(pairs), batch)])
    dist = (nn.functional.normalize(out, dim=1) - nn.functional.normalize(pairs.hr.float(), dim=1)).norm(dim=1)
    return {float(r): float(dist[pairs.ratio == r].mean()) for r in torch.unique(pairs.ratio).tolist()}


def fit_student(pairs: StudentPairs, cfg: StudentConfig, *,
                on_step: Callable[[int, float], None] | None = None) -> tuple[ResolutionStudent, dict]:
    """Fine-tune a fresh student's tail on ``pairs`` (from :func:`build_pairs` with the same ``trainable_blocks``;
    seeded sampler, fixed threads, BN statistics frozen,
    AdamW with a one-cycle or cosine schedule over :meth:`StudentConfig.steps_for` steps). Returns the student and
    ``{"loss": [...], "steps": n}``."""
    check_config(cfg)
    with deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        model = ResolutionStudent(shared_backbone(cfg.backbone, cfg.device), cfg.cache_block, cfg.trainable_blocks)
        use = pairs if cfg.identity_weight > 0 else pairs.subset(pairs.ratio < 1.0)
        steps = cfg.steps_for(len(use))
        history: dict = {"loss": [], "steps": steps}
        if steps == 0:
            return model, history
        bank = nn.functional.normalize(pairs.hr[pairs.ratio == 1.0].float(), dim=1).to(cfg.device)
        weights = torch.where(use.ratio < 1.0, 1.0, cfg.identity_weight).float()
        params = [p for p in model.tail.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.schedule == "onecycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps)
        else:
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        generator = torch.Generator().manual_seed(cfg.seed)
        steps_bar = bar(steps, f"training the student ({cfg.trainable_blocks} blocks)")
        for step in range(steps):
            idx = torch.randint(len(use), (cfg.batch_size,), generator=generator)
            loss = student_step(model, optimizer, use.lr[idx].to(cfg.device).float(), use.hr[idx].to(cfg.device),
                                cfg, weights[idx].to(cfg.device) if cfg.identity_weight > 0 else None, bank)
            schedule.step()
            history["loss"].append(loss)
            if on_step is not None:
                on_step(step, loss)
            steps_bar.update()
        steps_bar.close()
    model.eval()
    return model, history


def train_student(train: RetrievalDataset, config: StudentConfig | None = None, *,
                  exclude: Collection[str | Path] = (), cache_dir: str | Path | None = None,
                  on_step: Callable[[int, float], None] | None = None) -> TrainedStudent:
    """Train (or load) the student on ``train``'s training split; the checkpoint lives under
    ``<cache>/student/models/``, keyed by config and the training photos. An unreadable checkpoint is reported
    with a warning and rebuilt. ``exclude``: image files that must not be in the training list (raises)."""
    cfg = config or StudentConfig()
    check_config(cfg)
    images = training_list(train, exclude)
    folder = cache_dir_or_default(cache_dir)
    key = student_key(train, cfg)
    path = checkpoint_path(folder, key)
    loaded = load_student(path, key, cfg.device)
    if loaded is not None:
        return loaded
    start = time.perf_counter()
    pairs = build_pairs(train, cfg, cache_dir=folder)
    pair_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model, history = fit_student(pairs, cfg, on_step=on_step)
    result = TrainedStudent(model, cfg, _digest(key), images, history, pair_seconds, time.perf_counter() - start)
    save_student(path, key, result)
    return result


#: What a student checkpoint holds (:func:`save_student`).
STUDENT_CHECKPOINT_KEYS = ("key", "config", "training_images", "tail", "history", "pair_seconds", "train_seconds")


def save_student(path: Path, key: dict, result: TrainedStudent) -> None:
    """Checkpoint: the key, ``asdict(config)``, the training list, the tail's weights, history and timings."""
    state = {"key": canonical_json(key), "config": asdict(result.config),
             "training_images": result.training_images, "tail": result.model.tail.state_dict(),
             "history": result.history, "pair_seconds": result.pair_seconds, "train_seconds": result.train_seconds}
    save_checkpoint(path, state)


def load_student(path: Path, key: dict | None = None, device: str = "cpu") -> TrainedStudent | None:
    """The student saved at ``path`` (rebuilt from its stored config alone); ``None`` if there is none.
    A file that cannot be read (:func:`fsrlib.paths.read_checkpoint`), whose key differs from ``key`` or whose
    weights do not fit is reported and ``None`` returned (a retrained student is written over it)."""
    state = read_checkpoint(path, device, required=STUDENT_CHECKPOINT_KEYS, weights_only=True)
    if state is None:
        return None
    try:
        if key is not None and state["key"] != canonical_json(key):
            raise ValueError("its key does not match (stale entry)")
        cfg = StudentConfig(**_tuples(state["config"]))
        model = ResolutionStudent(shared_backbone(cfg.backbone, device), cfg.cache_block, cfg.trainable_blocks)
        model.tail.load_state_dict(state["tail"])
        return TrainedStudent(model.eval(), replace(cfg, device=device), json_digest(json.loads(state["key"]), 24),
                              list(state["training_images"]),
                              dict(state["history"]), float(state["pair_seconds"]), float(state["train_seconds"]))
    except Exception as err:  # stale key, a config this version cannot build, wrong shapes
        warnings.warn(f"student checkpoint {path} is unusable ({type(err).__name__}: {err}); rebuilding it",
                      stacklevel=2)
        return None


def _tuples(stored: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
