"""Feature-enhancement methods of the core experiment, by name.

Each factory takes the training features ``{ratio: (N, D)}`` (ratio 1.0 is the
HR target) and a :class:`MethodBudget` (the part of the experiment's config a
method may read), and returns an enhancer
``(features (Q, D), ratio) -> (Q, D)``. One trained model serves every ratio,
as in the paper.

| name | what |
|---|---|
| ``raw`` | the bicubic LR feature, unchanged (paper: "Raw representation") |
| ``ridge`` | closed-form ridge on the residual, penalty picked on held-out training images |
| ``mlp`` | one-hidden-layer MLP, MSE |
| ``cnn_baseline`` | the paper's G (Table 2) alone, plain MSE, no critic (Fig. 4 "CNN-Baseline") |
| ``gan_distance`` | G + D, Eq. 7 and Eq. 8 (r = 1) |
| ``fsrgan`` | G + D, Eq. 7 and Eq. 9 with r = 2: the paper's FSR-GAN |
| ``fsrgan_r3`` | as ``fsrgan`` with r = 3 |
| ``fsrgan_residual`` | our variant: ``G(f) = f + Δ(f)``, Δ zero-initialised, same losses as ``fsrgan`` |
| ``bicubic`` | the same as ``raw`` under the ISR methods' name (the paper: raw *is* bicubic) |
| ``srcnn``, ``vdsr`` | ISR then features: super-resolve the small query, extract (:data:`EXTRACTORS`) |
| ``student`` | beyond the paper: the backbone's last blocks fine-tuned to be resolution-robust (:data:`EXTRACTORS`) |

The ISR methods and the student act on pixels, not features, so the
experiment runs them as *extractors* of the query features, not as enhancers.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .baselines import MLPConfig, RidgeConfig, train_mlp, train_ridge
from .degrade import PAPER_RATIOS, Degradation, Reference
from .devices import concrete_device
from .models import GeneratorConfig
from .retrieval import l2_normalize
from .seed import deterministic
from .train import TrainConfig, train_cached

if TYPE_CHECKING:
    from .datasets import RetrievalDataset

Enhancer = Callable[[np.ndarray, float], np.ndarray]
Features = dict[float, np.ndarray]


@dataclass
class MethodBudget:
    """What a registered method may read of a run: its training budget, where it runs, and the degradation.

    :class:`fsrlib.experiment.ExperimentConfig` extends it, and its ``budget()`` hands a method only these
    fields, so methods depend on this small record and not on the experiment (which imports the registry).
    """

    #: Sec. 3.3: 6 epochs, 5 critic updates per generator update
    epochs: int = 6
    critic_iters: int = 5
    #: the GANs' budget in generator steps; when set it replaces ``epochs`` (the ``paper`` profile sets it)
    steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    cache_dir: str | None = None
    #: budget word ("cpu" / "paper") of the pixel methods: ISR networks and the student
    isr_profile: str = "cpu"
    #: what the pixel methods extract with, at which ratios, from which degradation
    backbone: str = "efficientnet_lite0"
    ratios: tuple[float, ...] = PAPER_RATIOS
    degradation: Degradation = "uniform"
    reference: Reference = "input"
    #: unlabeled photos the student adds to every fold's training photos (issue 24): "photos" (the ``photos``
    #: dataset where :func:`fsrlib.datasets.locate` finds it; a warning if it is nowhere), a folder, or None
    unlabeled_photos: str | None = "photos"

    def __post_init__(self) -> None:
        self.device = concrete_device(self.device)  # "auto": CUDA, else MPS, else CPU


def torch_enhancer(model: torch.nn.Module, device: str) -> Enhancer:
    def enhance(features: np.ndarray, ratio: float) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(features, device=device)).cpu().numpy()

    return enhance


def raw(train: Features, cfg: MethodBudget) -> Enhancer:
    return lambda features, ratio: features


def ridge(train: Features, cfg: MethodBudget) -> Enhancer:
    model = train_ridge(train, RidgeConfig(seed=cfg.seed))
    return lambda features, ratio: model(features)


def mlp(train: Features, cfg: MethodBudget) -> Enhancer:
    model = train_mlp(train, MLPConfig(seed=cfg.seed, device=cfg.device, epochs=cfg.epochs))
    return torch_enhancer(model, cfg.device)


def train_config(cfg: MethodBudget, **changes) -> TrainConfig:
    """The experiment's training settings (epochs or steps, critic iterations, seed, device) plus ``changes``."""
    base = TrainConfig(epochs=cfg.epochs, steps=cfg.steps, critic_iters=cfg.critic_iters, seed=cfg.seed,
                       device=cfg.device)
    return replace(base, **changes)


#: The generator methods' training settings on top of the budget's (:func:`generator_config`).
GENERATORS: dict[str, dict] = {
    "cnn_baseline": {"loss": "mse"},
    "gan_distance": {"loss": "gan", "r": 1.0},
    "fsrgan": {"loss": "gan", "r": 2.0},
    "fsrgan_r3": {"loss": "gan", "r": 3.0},
    "fsrgan_residual": {"loss": "gan", "r": 2.0, "generator": GeneratorConfig(residual=True)},
}


def generator_config(name: str, cfg: MethodBudget) -> TrainConfig:
    """The :class:`~fsrlib.train.TrainConfig` that registered generator method ``name`` trains with under ``cfg``
    (what a chapter passes to :func:`fsrlib.train.train_cached` to look at the training itself)."""
    if name not in GENERATORS:
        raise KeyError(f"{name!r} is not a generator method; known: {sorted(GENERATORS)}")
    return train_config(cfg, **GENERATORS[name])


def generator_method(name: str) -> Callable[[Features, MethodBudget], Enhancer]:
    def factory(train: Features, cfg: MethodBudget) -> Enhancer:
        result = train_cached(train, generator_config(name, cfg), cache_dir=cfg.cache_dir)
        return torch_enhancer(result.generator, cfg.device)

    return factory


METHODS: dict[str, Callable[[Features, MethodBudget], Enhancer]] = {
    "raw": raw,
    "ridge": ridge,
    "mlp": mlp,
    **{name: generator_method(name) for name in GENERATORS},
}
METHODS["bicubic"] = raw

QueryFeatures = dict[float, np.ndarray]
#: ``(test dataset, training set, budget, progress) -> {ratio: (Q, D)}``: L2-normalised features of *every* query
#: of the test dataset, extracted through something trained on the training set's images (pixels, not features).
Extractor = Callable[["RetrievalDataset", "RetrievalDataset", MethodBudget, bool], QueryFeatures]


def isr_extractor(model: str) -> Extractor:
    """ISR then features: train (or load) ISR ``model`` on the training images, super-resolve the queries at the
    ratios it was trained for and extract. Other ratios are absent (SRCNN: 1/4, 1/9, 1/16)."""
    def extract(ds: RetrievalDataset, train: RetrievalDataset, cfg: MethodBudget, progress: bool) -> QueryFeatures:
        from .features import extract_features
        from .isr_train import trained_upscaler

        with deterministic():
            upscaler = trained_upscaler(train, model, cfg.isr_profile, degradation=cfg.degradation,
                                        reference=cfg.reference, seed=cfg.seed, device=cfg.device,
                                        cache_dir=cfg.cache_dir)
        ratios = [r for r in cfg.ratios if upscaler.supports(r)]
        if not ratios:
            return {}
        feats = extract_features(ds, "query", ratios, upscaler=upscaler, backbone=cfg.backbone,
                                 degradation=cfg.degradation, reference=cfg.reference, device=cfg.device,
                                 cache_dir=cfg.cache_dir, progress=progress)
        return {r: l2_normalize(f) for r, f in feats.items()}

    return extract


def with_unlabeled_photos(ds: RetrievalDataset, train: RetrievalDataset, source: str | None) -> RetrievalDataset:
    """``train``'s photos plus the unlabeled ``source`` (see :attr:`MethodBudget.unlabeled_photos`), refusing any
    copy of one of ``ds``'s images among them (a test photo must never be trained on)."""
    from .datasets import load_dataset, locate
    from .protocols import cross_dataset_folds, pooled_training_set

    if source is None:
        return train
    folder = locate("photos") if source == "photos" else Path(source)
    if folder is None:
        warnings.warn("the student trains on the fold's photos only: the unlabeled photos (dataset 'photos') are "
                      "not on this machine. Set FSRLIB_DEV_DATA to the folder holding photos-unlabeled, pass "
                      "unlabeled_photos=<a folder of photos>, or unlabeled_photos=None to silence this", stacklevel=3)
        return train
    photos = load_dataset("photos", folder)
    cross_dataset_folds(ds, [photos])  # raises if the folder is the test collection's or holds a copy of its images
    return pooled_training_set([train, photos], name=f"{train.name}+photos")


def student(ds: RetrievalDataset, train: RetrievalDataset, cfg: MethodBudget, progress: bool) -> QueryFeatures:
    """The resolution-robust student (:mod:`fsrlib.student`, beyond the paper): Lite0's last blocks fine-tuned on
    the training photos so that a degraded crop gives the frozen backbone's feature of the full-size crop; the
    queries go through it, the database keeps the frozen backbone's features."""
    from .student import student_config, student_query_features, train_student

    if cfg.backbone != "efficientnet_lite0":
        raise ValueError(f"the student fine-tunes efficientnet_lite0's last blocks; backbone {cfg.backbone!r} "
                         "has no student yet")
    train = with_unlabeled_photos(ds, train, cfg.unlabeled_photos)
    with deterministic():
        # trained on the experiment's ratios, degradation and reference: the queries it will see (issue 27)
        ratios = tuple(r for r in cfg.ratios if r < 1.0)
        settings = student_config(cfg.isr_profile, seed=cfg.seed, device=cfg.device, reference=cfg.reference,
                                  degradations=(cfg.degradation,), **({"ratios": ratios} if ratios else {}))
        trained = train_student(train, settings, cache_dir=cfg.cache_dir)
    feats = student_query_features(trained, ds, cfg.ratios, degradation=cfg.degradation, reference=cfg.reference,
                                   device=cfg.device, cache_dir=cfg.cache_dir)
    return {r: l2_normalize(f) for r, f in feats.items()}


#: Methods that change how the query's feature is extracted, trained per fold on its images: ISR networks
#: (SRCNN, VDSR) and the resolution-robust student.
EXTRACTORS: dict[str, Extractor] = {"srcnn": isr_extractor("srcnn"), "vdsr": isr_extractor("vdsr"),
                                    "student": student}
UNTRAINED = {"raw", "bicubic"}
#: What the core experiment runs unless told otherwise: the paper's method, our variant, and the baselines.
DEFAULT_METHODS = ("raw", "ridge", "mlp", "cnn_baseline", "fsrgan", "fsrgan_residual")
