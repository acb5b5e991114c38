"""The methods of the core experiment: one registry, one signature.

Every method is one function ``(FoldContext) -> {ratio: (Q, D) query features}`` registered with
:func:`register_method`, which records what the experiment, the CLI and the figures need to know of it
(trained or not, what it works on, its colour and legend label, which :class:`MethodSettings` fields it reads).
The experiment hands it one fold at a time (:class:`FoldContext`: the fold's training photos and their features,
its queries' raw features, the settings); an untrained method gets every query in one context.

| name | input | what |
|---|---|---|
| ``raw`` | features | the bicubic LR feature, unchanged (paper: "Raw representation") |
| ``bicubic`` | features | the same as ``raw`` under the ISR methods' name (the paper: raw *is* bicubic) |
| ``ridge`` | features | closed-form ridge on the residual, penalty picked on held-out training images |
| ``mlp`` | features | one-hidden-layer MLP, MSE |
| ``cnn_baseline`` | features | the paper's G (Table 2) alone, plain MSE, no critic (Fig. 4 "CNN-Baseline") |
| ``gan_distance`` | features | G + D, Eq. 7 and Eq. 8 (r = 1) |
| ``fsrgan`` | features | G + D, Eq. 7 and Eq. 9 with r = 2: the paper's FSR-GAN |
| ``fsrgan_r3`` | features | as ``fsrgan`` with r = 3 |
| ``fsrgan_residual`` | features | our variant: ``G(f) = f + Δ(f)``, Δ zero-initialised, same losses as ``fsrgan`` |
| ``srcnn``, ``vdsr`` | pixels | ISR then features: super-resolve the small query, extract |
| ``student`` | pixels | beyond the paper: the backbone's last blocks fine-tuned to be resolution-robust |

*features* methods map the raw query feature (trained on the fold's feature pairs); *pixels* methods make the
query feature again from the query's pixels (trained on the fold's photos).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from fsrlib.devices import concrete_device
from fsrlib.evaluation.retrieval import l2_normalize
from fsrlib.features.degrade import PAPER_RATIOS, Degradation, Reference
from fsrlib.methods.baselines import MLPConfig, RidgeConfig, train_mlp, train_ridge
from fsrlib.methods.models import GeneratorConfig
from fsrlib.methods.train import TrainConfig, train_cached
from fsrlib.seed import deterministic

if TYPE_CHECKING:
    from fsrlib.data.datasets import RetrievalDataset
    from fsrlib.methods.student import StudentConfig

#: A trained feature mapping: ``(Q, D) -> (Q, D)``, one model for every ratio, as in the paper.
Enhancer = Callable[[np.ndarray], np.ndarray]
#: Features per ratio, ``{ratio: (N, D)}``; in training features ratio 1.0 is the full-size target.
Features = dict[float, np.ndarray]
#: What a method returns: the fold's query features per ratio (a pixel method may leave ratios out).
QueryFeatures = dict[float, np.ndarray]


@dataclass
class MethodSettings:
    """What a registered method may read of a run: its training budget, where it runs, and the degradation.

    :class:`fsrlib.experiment.ExperimentConfig` extends it, and its ``method_settings()`` hands a method only these
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
    #: budget word ("cpu" / "paper") of the methods trained on pixels: the ISR networks and the student
    pixel_profile: str = "cpu"
    #: what the pixel methods extract with, at which ratios, from which degradation
    backbone: str = "efficientnet_lite0"
    ratios: tuple[float, ...] = PAPER_RATIOS
    degradation: Degradation = "uniform"
    reference: Reference = "input"
    #: unlabeled photos the student adds to every fold's training photos (issue 24): "photos" (the ``photos``
    #: dataset where :func:`fsrlib.data.datasets.locate` finds it; a warning if it is nowhere), a folder, or None
    unlabeled_photos: str | None = "photos"
    #: of those, a seeded subset of this many (the same photos for every seed: a learning curve varies one thing);
    #: None: all of them
    unlabeled_count: int | None = None
    #: :class:`fsrlib.methods.student.StudentConfig` fields changed on top of the ``pixel_profile``'s student (an
    #: ablation: ``{"crops_per_image": 1}``); they win over what the student takes from the run (degradation,
    #: reference, ratios), except ``seed`` and ``device``, which are the run's
    student_changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.device = concrete_device(self.device)  # "auto": CUDA, else MPS, else CPU


@dataclass
class FoldContext:
    """One fold as a method sees it: what it may train on and the queries it must return features for.

    ``queries`` holds the raw (bicubic) L2-normalised features of this fold's queries, ``{ratio: (Q, D)}`` with
    ratio 1.0 among them; ``query_index`` says which of ``test``'s queries they are. ``training_set`` is the
    fold's training collection (its photos: ``training_set.train``; ``None`` for an untrained method, which gets
    every query in one context), and :meth:`training_features` its features at ratio 1 and every ratio of the
    settings, extracted on first use.
    """

    test: RetrievalDataset
    training_set: RetrievalDataset | None
    query_index: np.ndarray
    queries: Features
    settings: MethodSettings
    progress: bool = False
    extract_training: Callable[[], Features] | None = None
    #: what a trained method tells the experiment about each model it trained (photos, seconds...): it appends
    #: one dict per model; the experiment returns them (:attr:`fsrlib.experiment.ExperimentResult.trainings`)
    trainings: list[dict[str, Any]] = field(default_factory=list)

    def training_features(self) -> Features:
        """L2-normalised features of the training photos, ``{ratio: (N, D)}`` (1.0: the full-size targets)."""
        if self.extract_training is None:
            raise ValueError("this fold has no training features: an untrained method was asked to train")
        return self.extract_training()

    def map_queries(self, enhance: Enhancer) -> QueryFeatures:
        """``enhance`` applied to the raw query features at every ratio of the settings."""
        return {r: enhance(self.queries[r]) for r in self.settings.ratios}

    def fold_rows(self, features: QueryFeatures) -> QueryFeatures:
        """This fold's rows of features extracted for *every* query of ``test`` (what a pixel method computes)."""
        return {r: f[self.query_index] for r, f in features.items()}

    def pixel_queries(self, ratios: Sequence[float] | None = None, **recipe: Any) -> QueryFeatures:
        """This fold's query features made again from their pixels by the one extraction path
        (:func:`fsrlib.features.extract.extract_features`), L2-normalised, at ``ratios`` (default: the settings'),
        always on the experiment's backbone, degradation, reference, device and cache; ``recipe`` adds what the
        method changes (``upscaler=`` an ISR network, ``network=`` a fine-tuned backbone, ``store_dtype=``)."""
        from fsrlib.features.extract import extract_features

        cfg = self.settings
        ratios = list(cfg.ratios if ratios is None else ratios)
        if not ratios:
            return {}
        feats = extract_features(self.test, "query", ratios, backbone=cfg.backbone, degradation=cfg.degradation,
                                 reference=cfg.reference, device=cfg.device, cache_dir=cfg.cache_dir,
                                 progress=self.progress, **recipe)
        return self.fold_rows({r: l2_normalize(f) for r, f in feats.items()})


@dataclass(frozen=True)
class Method:
    """One registered method: the function and what the experiment, the CLI and the figures know of it."""

    name: str
    run: Callable[[FoldContext], QueryFeatures]
    label: str
    trained: bool
    input: Literal["features", "pixels"]
    color: str | None
    reads: tuple[str, ...]
    summary: str
    #: whether the CLI's experiment runs it when no method is named (:func:`default_methods`)
    default: bool = False
    #: a generator method's :class:`~fsrlib.methods.train.TrainConfig` changes on top of the budget's
    #: (:func:`register_generator`, :func:`generator_config`); ``None`` for every other method
    train_changes: Mapping[str, Any] | None = None


#: The registry: every method by name (:func:`register_method` adds one, :func:`get_method` reads one).
METHODS: dict[str, Method] = {}


def register_method(name: str, *, summary: str, trained: bool = True, input: Literal["features", "pixels"] = "features",
                    color: str | None = None, label: str | None = None, reads: tuple[str, ...] = (),
                    default: bool = False, train_changes: Mapping[str, Any] | None = None):
    """Decorator: register ``fn(ctx: FoldContext) -> {ratio: (Q, D)}`` as method ``name``.

    ``trained``: whether it learns from the fold (an untrained one runs once, for every query and only the first
    seed); ``input``: "features" (maps the raw query feature) or "pixels" (makes the query feature again from its
    pixels); ``color``/``label``: its line in every figure (a palette colour and its name when not given);
    ``reads``: the :class:`MethodSettings` fields it depends on (checked to exist); ``default``: run when no method
    is named (:func:`default_methods`); ``train_changes``: a generator's
    :class:`~fsrlib.methods.train.TrainConfig` changes (:func:`register_generator`). Registering a name twice
    replaces the method (that is how a reader overrides one); the function is returned unchanged."""
    known = {f.name for f in fields(MethodSettings)}
    if not set(reads) <= known:
        raise ValueError(f"method {name!r} reads {sorted(set(reads) - known)}, which MethodSettings does not have; "
                         f"it has {sorted(known)}")
    if input not in ("features", "pixels"):
        raise ValueError(f"input must be 'features' or 'pixels', got {input!r}")

    def add(fn: Callable[[FoldContext], QueryFeatures]) -> Callable[[FoldContext], QueryFeatures]:
        METHODS[name] = Method(name=name, run=fn, label=label or name, trained=trained, input=input, color=color,
                               reads=tuple(reads), summary=summary, default=default,
                               train_changes=None if train_changes is None else dict(train_changes))
        return fn

    return add


def default_methods() -> tuple[str, ...]:
    """The methods run when none is named, in the order they were registered: the paper's method, our variant
    and the baselines."""
    return tuple(name for name, method in METHODS.items() if method.default)


def get_method(name: str) -> Method:
    """The registered method ``name``; a ``KeyError`` listing the known ones for any other name."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def torch_enhancer(model: torch.nn.Module, device: str) -> Enhancer:
    """A trained torch feature mapping as an :data:`Enhancer` (no gradients, numpy in and out)."""
    def enhance(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(features, device=device)).cpu().numpy()

    return enhance


#: The budget fields a generator method reads; :data:`PIXELS`, those a pixel method reads.
TRAINING = ("epochs", "steps", "critic_iters", "seed", "device", "cache_dir")
PIXELS = ("pixel_profile", "backbone", "ratios", "degradation", "reference", "seed", "device", "cache_dir")


@register_method("raw", trained=False, label="raw LR feature (bicubic)", color="#8c8c8c", default=True,
                 summary="the bicubic LR feature, unchanged")
def raw(ctx: FoldContext) -> QueryFeatures:
    return {r: ctx.queries[r] for r in ctx.settings.ratios}


register_method("bicubic", trained=False, color="#8c8c8c",
                summary="the same as raw under the ISR methods' name (raw is bicubic)")(raw)


@register_method("ridge", color="#1f77b4", reads=("seed",), default=True,
                 summary="closed-form ridge on the residual, penalty picked on held-out training images")
def ridge(ctx: FoldContext) -> QueryFeatures:
    with deterministic():
        model = train_ridge(ctx.training_features(), RidgeConfig(seed=ctx.settings.seed))
    return ctx.map_queries(model)


@register_method("mlp", color="#17becf", reads=("epochs", "seed", "device"), default=True,
                 summary="one-hidden-layer MLP, MSE")
def mlp(ctx: FoldContext) -> QueryFeatures:
    cfg = ctx.settings
    with deterministic():
        model = train_mlp(ctx.training_features(), MLPConfig(seed=cfg.seed, device=cfg.device, epochs=cfg.epochs))
    return ctx.map_queries(torch_enhancer(model, cfg.device))


def train_config(cfg: MethodSettings, **changes) -> TrainConfig:
    """The experiment's training settings (epochs or steps, critic iterations, seed, device) plus ``changes``."""
    base = TrainConfig(epochs=cfg.epochs, steps=cfg.steps, critic_iters=cfg.critic_iters, seed=cfg.seed,
                       device=cfg.device)
    return replace(base, **changes)


def generator_methods() -> tuple[str, ...]:
    """The registered generator methods (the paper's G under its losses, and our variant), in registration order."""
    return tuple(name for name, method in METHODS.items() if method.train_changes is not None)


def generator_config(name: str, cfg: MethodSettings) -> TrainConfig:
    """The :class:`~fsrlib.methods.train.TrainConfig` that registered generator method ``name`` trains with under ``cfg``
    (what a chapter passes to :func:`fsrlib.methods.train.train_cached` to look at the training itself)."""
    changes = get_method(name).train_changes
    if changes is None:
        raise KeyError(f"{name!r} is not a generator method; known: {', '.join(generator_methods())}")
    return train_config(cfg, **changes)


def trained_generator(name: str, train: Features, cfg: MethodSettings) -> Enhancer:
    """Generator method ``name`` trained (or read from the cache) on ``train`` under ``cfg``, as an enhancer."""
    config = generator_config(name, cfg)
    with deterministic():
        result = train_cached(train, config, cache_dir=cfg.cache_dir)
    return torch_enhancer(result.generator, cfg.device)


def register_generator(name: str, changes: Mapping, *, summary: str, color: str | None = None,
                       default: bool = False) -> None:
    """A generator variant as a method: its :class:`~fsrlib.methods.train.TrainConfig` changes on top of the
    budget's."""
    TrainConfig(**changes)  # an unknown field fails here, at registration, not at the first training
    register_method(name, color=color, reads=TRAINING, summary=summary, default=default, train_changes=changes)(
        lambda ctx: ctx.map_queries(trained_generator(name, ctx.training_features(), ctx.settings)))


register_generator("cnn_baseline", {"loss": "mse"}, color="#9467bd", default=True,
                   summary="the paper's G alone, plain MSE, no critic (Fig. 4 CNN-Baseline)")
register_generator("gan_distance", {"loss": "gan", "r": 1.0}, color="#e377c2",
                   summary="G + D, Eq. 7 and Eq. 8 (r = 1)")
register_generator("fsrgan", {"loss": "gan", "r": 2.0}, color="#d62728", default=True,
                   summary="G + D, Eq. 7 and Eq. 9 with r = 2: the paper's FSR-GAN")
register_generator("fsrgan_r3", {"loss": "gan", "r": 3.0}, color="#8c564b", summary="as fsrgan with r = 3")
register_generator("fsrgan_residual", {"loss": "gan", "r": 2.0, "generator": GeneratorConfig(residual=True)},
                   color="#ff7f0e", default=True,
                   summary="our variant: G(f) = f + delta(f), delta zero-initialised")


def isr_method(model: str) -> Callable[[FoldContext], QueryFeatures]:
    """ISR then features: train (or load) ISR ``model`` on the fold's training photos, super-resolve the queries at
    the ratios it was trained for and extract. Other ratios are absent (SRCNN: 1/4, 1/9, 1/16)."""
    def run(ctx: FoldContext) -> QueryFeatures:
        from fsrlib.methods.isr_train import trained_upscaler

        cfg = ctx.settings
        with deterministic():
            upscaler = trained_upscaler(ctx.training_set, model, cfg.pixel_profile, degradation=cfg.degradation,
                                        reference=cfg.reference, seed=cfg.seed, device=cfg.device,
                                        cache_dir=cfg.cache_dir)
        return ctx.pixel_queries([r for r in cfg.ratios if upscaler.supports(r)], upscaler=upscaler)

    return run


register_method("srcnn", input="pixels", color="#2ca02c", reads=PIXELS,
                summary="SRCNN super-resolves the query, then features")(isr_method("srcnn"))
register_method("vdsr", input="pixels", color="#bcbd22", reads=PIXELS,
                summary="VDSR super-resolves the query, then features")(isr_method("vdsr"))

def with_unlabeled_photos(ds: RetrievalDataset, train: RetrievalDataset, source: str | None,
                          count: int | None = None) -> RetrievalDataset:
    """``train``'s photos plus the unlabeled ``source`` (see :attr:`MethodSettings.unlabeled_photos`), all of them
    or a seeded subset of ``count`` (:func:`fsrlib.data.protocols.training_subset`), refusing any copy of one of
    ``ds``'s images among them (a test photo must never be trained on)."""
    from fsrlib.data.datasets import load_dataset, locate
    from fsrlib.data.protocols import cross_dataset_folds, pooled_training_set, training_subset

    if source is None:
        return train
    folder = locate("photos") if source == "photos" else Path(source)
    if folder is None:
        warnings.warn("the student trains on the fold's photos only: the unlabeled photos (dataset 'photos') are "
                      "not on this machine. Set FSRLIB_DEV_DATA to the folder holding photos-unlabeled, pass "
                      "unlabeled_photos=<a folder of photos>, or unlabeled_photos=None to silence this", stacklevel=3)
        return train
    photos = load_dataset("photos", folder)
    if count is not None:
        photos = training_subset(photos, count)
    cross_dataset_folds(ds, [photos])  # raises if the folder is the test collection's or holds a copy of its images
    return pooled_training_set([train, photos], name=f"{train.name}+photos")


def student_settings(cfg: MethodSettings) -> StudentConfig:
    """The student a run trains: the ``pixel_profile``'s recipe at the run's seed and device, on the run's
    degradation and reference, then ``student_changes`` (which win), on the recipe's ratios plus every scored ratio
    beyond them (:func:`fsrlib.methods.student.training_ratios`)."""
    from fsrlib.methods.student import check_student_changes, student_config, training_ratios

    recipe = replace(student_config(cfg.pixel_profile, seed=cfg.seed, device=cfg.device),
                     reference=cfg.reference, degradations=(cfg.degradation,))
    recipe = replace(recipe, **check_student_changes(cfg.student_changes))
    return replace(recipe, ratios=training_ratios(recipe.ratios, cfg.ratios))


@register_method("student", input="pixels", reads=(*PIXELS, "unlabeled_photos", "unlabeled_count", "student_changes"),
                 summary="Lite0's last blocks fine-tuned so that a small query gives its full-size feature")
def student(ctx: FoldContext) -> QueryFeatures:
    """The resolution-robust student (:mod:`fsrlib.methods.student`, beyond the paper): Lite0's last blocks fine-tuned on
    the training photos so that a degraded crop gives the frozen backbone's feature of the full-size crop; the
    queries go through it, the database keeps the frozen backbone's features."""
    from fsrlib.methods.student_train import train_student

    cfg = ctx.settings
    if cfg.backbone != "efficientnet_lite0":
        raise ValueError(f"the student fine-tunes efficientnet_lite0's last blocks; backbone {cfg.backbone!r} "
                         "has no student yet")
    train = with_unlabeled_photos(ctx.test, ctx.training_set, cfg.unlabeled_photos, cfg.unlabeled_count)
    with deterministic():
        trained = train_student(train, student_settings(cfg), cache_dir=cfg.cache_dir,
                                exclude=[ctx.test.path(ctx.test.queries[q]) for q in ctx.query_index])
    ctx.trainings.append({"photos": len(trained.training_images), "pair_s": trained.pair_seconds,
                          "train_s": trained.train_seconds, "student": trained.cache_id})
    # the queries through the student (cached under its checkpoint's id); the database keeps the frozen backbone's
    return ctx.pixel_queries(network=trained.network(), store_dtype="float32")

