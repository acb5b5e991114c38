"""Training FSR-GAN (paper Sec. 3.2-3.3) and its CNN-Baseline.

Small step functions return numbers; the loop reports through a callback and
never prints. Adam with learning rate 0.0008 and 6 epochs are the paper's
values; a budget is best counted in generator *steps* (``TrainConfig.steps``), since 6 epochs of a 150-photo
subset are ~100 steps and 6 epochs of Oxford5k's 4,500 training images ~2,660 (:func:`paper_generator_steps`).
The critic follows WGAN (Arjovsky et al.): weight clipping by default,
a gradient penalty as an option, ``critic_iters`` critic updates per generator
update. Checkpoints store ``asdict(config)`` and can be resumed.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from fsrlib.devices import concrete_device
from fsrlib.evaluation.retrieval import non_finite_rows
from fsrlib.features.degrade import ratio_label
from fsrlib.methods.losses import critic_loss, generator_loss, gradient_penalty, mse_loss
from fsrlib.methods.models import CriticConfig, FeatureCritic, FeatureGenerator, GeneratorConfig
from fsrlib.methods.pairs import FeaturePairs, make_pairs, split_by_image
from fsrlib.paths import (
    cache_dir_or_default,
    canonical_json,
    checked_checkpoint,
    read_checkpoint,
    refuse_to_overwrite,
    save_checkpoint,
)
from fsrlib.progress import bar
from fsrlib.seed import set_seed


@dataclass
class TrainConfig:
    """How G (and D) are trained. ``loss="gan"`` is Eq. 7 + Eq. 9; ``loss="mse"`` is the CNN-Baseline."""

    loss: Literal["gan", "mse"] = "gan"
    r: float = 2.0
    distance_weight: float = 1.0
    lr: float = 8e-4
    epochs: int = 6
    #: generator steps to train for; when set it replaces ``epochs`` (the last epoch stops part-way)
    steps: int | None = None
    batch_size: int = 64
    critic_iters: int = 5
    clip_value: float = 0.01
    gp_weight: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)

    def __post_init__(self) -> None:
        self.device = concrete_device(self.device)  # "auto": CUDA, else MPS, else CPU


def paper_generator_steps(train_images: int = 4500, ratios: int = 7, batch_size: int = 64, epochs: int = 6,
                          val_fraction: float = 0.1) -> int:
    """The generator steps of the paper's budget (Sec. 3.3: 6 epochs of Oxford5k's ~4,500 training images, batch 64
    here), counted as this trainer counts them: one pair per training image and ratio, ``val_fraction`` held out:
    ``6 * ceil(4050 * 7 / 64) = 6 * 443 = 2,658``."""
    kept = train_images - round(val_fraction * train_images)
    return epochs * -(-kept * ratios // batch_size)


#: Sec. 3.3's length in generator steps (:func:`paper_generator_steps`): what the ``paper`` profile trains.
PAPER_GENERATOR_STEPS = paper_generator_steps()


#: Seconds of training an interruption may cost: a long run on small data has hundreds of short epochs, and saving
#: G, D and both optimisers (52 MB for the 1280-d networks) after each one would cost more than the steps.
CHECKPOINT_EVERY_S: float = 60.0


def last_epoch(config: TrainConfig, n_pairs: int, start_epoch: int = 0, steps_done: int = 0) -> int:
    """The epoch the loop stops before: ``config.epochs``, or (with ``config.steps``) enough epochs after
    ``start_epoch`` to bring ``steps_done`` up to ``config.steps`` generator steps."""
    if config.steps is None:
        return config.epochs
    per_epoch = max(1, -(-n_pairs // config.batch_size))
    return start_epoch + max(0, -(-(config.steps - steps_done) // per_epoch))


@dataclass
class TrainResult:
    generator: FeatureGenerator
    critic: FeatureCritic | None
    history: dict
    config: TrainConfig


def critic_step(generator: FeatureGenerator, critic: FeatureCritic, optimizer: torch.optim.Optimizer,
                lr: torch.Tensor, hr: torch.Tensor, config: TrainConfig) -> dict[str, float]:
    """One critic update on Eq. 7 (the fake batch is detached), then the Lipschitz constraint."""
    with torch.no_grad():
        fake = generator(lr)
    loss = critic_loss(critic(hr), critic(fake))
    total = loss + config.gp_weight * gradient_penalty(critic, hr, fake) if config.gp_weight > 0 else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    if config.gp_weight <= 0:
        with torch.no_grad():
            for p in critic.parameters():
                p.clamp_(-config.clip_value, config.clip_value)
    return {"critic_loss": float(loss.detach()), "wasserstein": float(-loss.detach())}


def generator_step(generator: FeatureGenerator, critic: FeatureCritic | None, optimizer: torch.optim.Optimizer,
                   lr: torch.Tensor, hr: torch.Tensor, config: TrainConfig) -> dict[str, float]:
    """One generator update on Eq. 9 (GAN) or plain MSE (CNN-Baseline)."""
    fake = generator(lr)
    if config.loss == "mse":
        loss = mse_loss(fake, hr)
        terms = {"generator_loss": float(loss.detach()), "distance": float((fake.detach() - hr).norm(dim=1).mean())}
    else:
        parts = generator_loss(critic(fake), fake, hr, config.r, config.distance_weight)
        loss = parts["total"]
        terms = {"generator_loss": float(loss.detach()), "adversarial": float(parts["adversarial"].detach()),
                 "distance_term": float(parts["distance"].detach()),
                 "distance": float((fake.detach() - hr).norm(dim=1).mean())}
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return terms


@torch.no_grad()
def validation_distance(generator: FeatureGenerator, pairs: FeaturePairs, batch_size: int = 512) -> dict[float, float]:
    """Mean ``||G(F_LR) - F_HR||_2`` per ratio, G in eval mode."""
    was_training = generator.training
    generator.eval()
    sr = torch.cat([generator(pairs.lr[i:i + batch_size]) for i in range(0, len(pairs), batch_size)])
    generator.train(was_training)
    dist = (sr - pairs.hr).norm(dim=1)
    return {float(r): float(dist[pairs.ratio == r].mean()) for r in torch.unique(pairs.ratio).tolist()}


def check_finite_features(features: Mapping[float, np.ndarray]) -> None:
    """Refuse ``{ratio: (N, D)}`` training features that hold NaN or inf, naming the ratios and rows.

    A model fitted to them does not fail: its weights turn NaN (or the loss
    absorbs the bad rows) and every later number is quietly wrong.
    """
    problems = []
    for ratio in sorted(features):
        bad = non_finite_rows(np.asarray(features[ratio]))
        if bad.size:
            rows = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
            problems.append(f"ratio {ratio_label(ratio)}: {bad.size} row(s) ({rows})")
    if problems:
        raise ValueError("training features hold NaN or inf values (" + "; ".join(problems) + "); refusing to "
                         "train on them. Recompute those features (a failed extraction, a damaged cache entry) or "
                         "drop those images from every ratio.")


def with_feature_dim(config: TrainConfig, features: Mapping[float, np.ndarray]) -> TrainConfig:
    """A copy of ``config`` whose G and D are sized for ``features`` (the caller's config is not modified)."""
    dim = int(np.asarray(features[1.0]).shape[1])
    return replace(config, generator=replace(config.generator, feature_dim=dim),
                   critic=replace(config.critic, feature_dim=dim))


def build_models(config: TrainConfig) -> tuple[FeatureGenerator, FeatureCritic | None]:
    generator = FeatureGenerator(config.generator).to(config.device)
    critic = FeatureCritic(config.critic).to(config.device) if config.loss == "gan" else None
    return generator, critic


def train_fsrgan(features: Mapping[float, np.ndarray], config: TrainConfig | None = None, *,
                 callback: Callable[[dict], None] | None = None, checkpoint: str | Path | None = None,
                 resume: bool = False, owned_checkpoint: bool = False,
                 checkpoint_every: float = CHECKPOINT_EVERY_S) -> TrainResult:
    """Train G (and D) on pairs from ``{ratio: (N, D)}`` training features, all ratios mixed.

    ``callback`` receives ``{"event": "step" | "epoch", ...}`` dicts. With
    ``checkpoint`` set, state is saved at the end of an epoch once ``checkpoint_every`` seconds have passed since
    the last save (0: after every epoch), and always after the last one, so an interruption loses at most about
    that much work; the result does not depend on where it is resumed from. ``resume=True``
    continues from it (the stored config must match); a file there that fsrlib did not write is refused before
    any training (never overwritten) unless ``owned_checkpoint`` says the path is fsrlib's own (a cache
    entry), and an unreadable checkpoint
    (damaged, or failing its checksum) is reported with a warning and trained again from the start.
    """
    config = config or TrainConfig()
    if config.loss not in ("gan", "mse"):
        raise ValueError(f"loss must be 'gan' or 'mse', got {config.loss!r}")
    check_finite_features(features)
    if checkpoint is not None and not owned_checkpoint:
        refuse_to_overwrite(checkpoint)
    config = with_feature_dim(config, features)
    generator_seed = set_seed(config.seed)
    pairs = make_pairs(features)
    train_pairs, val_pairs = split_by_image(pairs, config.val_fraction, config.seed)
    train_pairs, val_pairs = train_pairs.to(config.device), val_pairs.to(config.device)
    generator, critic = build_models(config)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr)
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr) if critic is not None else None
    history: dict = {"steps": [], "epochs": []}
    start_epoch = 0
    state = read_checkpoint(checkpoint, config.device, required=CHECKPOINT_KEYS) if resume and checkpoint else None
    if state is not None:
        start_epoch, history = _load_state(state, checkpoint, config, generator, critic, opt_g, opt_d,
                                           generator_seed)
    report = callback or (lambda event: None)
    step_limit = config.steps if config.steps is not None else float("inf")
    stop = last_epoch(config, len(train_pairs), start_epoch, len(history["steps"]))
    saved_at = time.monotonic()
    per_epoch = -(-len(train_pairs) // config.batch_size)
    total = min(step_limit, stop * per_epoch) - len(history["steps"])
    steps_bar = bar(max(int(total), 0), f"training {config.loss} G (r={config.r:g})")
    for epoch in range(start_epoch, stop):
        generator.train()
        order = torch.randperm(len(train_pairs), generator=generator_seed).to(config.device)
        for start in range(0, len(train_pairs), config.batch_size):
            if len(history["steps"]) >= step_limit:
                break
            idx = order[start:start + config.batch_size]
            record: dict = {"event": "step", "epoch": epoch, "step": len(history["steps"])}
            if critic is not None:
                for _ in range(config.critic_iters):
                    cidx = torch.randint(len(train_pairs), (config.batch_size,), generator=generator_seed)
                    cidx = cidx.to(config.device)
                    record.update(critic_step(generator, critic, opt_d, train_pairs.lr[cidx], train_pairs.hr[cidx],
                                              config))
            record.update(generator_step(generator, critic, opt_g, train_pairs.lr[idx], train_pairs.hr[idx], config))
            history["steps"].append(record)
            report(record)
            steps_bar.update()
        summary = {"event": "epoch", "epoch": epoch,
                   "val_distance": validation_distance(generator, val_pairs) if len(val_pairs) else {}}
        history["epochs"].append(summary)
        report(summary)
        if summary["val_distance"]:
            steps_bar.set_postfix(val_distance=f"{np.mean(list(summary['val_distance'].values())):.4f}", refresh=False)
        if checkpoint is not None and (epoch + 1 == stop or time.monotonic() - saved_at >= checkpoint_every):
            _save_state(checkpoint, config, generator, critic, opt_g, opt_d, epoch + 1, history, generator_seed)
            saved_at = time.monotonic()
    steps_bar.close()
    generator.eval()
    return TrainResult(generator=generator, critic=critic, history=history, config=config)


def training_key(features: Mapping[float, np.ndarray], config: TrainConfig) -> str:
    """Digest of the training features (values and ratios) and the full config."""
    h = hashlib.sha256(canonical_json(asdict(config)).encode())
    for ratio in sorted(features):
        h.update(repr(float(ratio)).encode())
        h.update(np.ascontiguousarray(features[ratio], dtype=np.float32).tobytes())
    return h.hexdigest()[:20]


def train_cached(features: Mapping[float, np.ndarray], config: TrainConfig, *, cache_dir: str | Path | None = None,
                 callback: Callable[[dict], None] | None = None) -> TrainResult:
    """:func:`train_fsrgan` with its checkpoint kept under ``<cache>/models/``, keyed by features and config.

    A finished run is loaded instead of retrained (a warm book build trains nothing); an interrupted one resumes.
    """
    config = with_feature_dim(config, features)
    path = cached_checkpoint_path(features, config, cache_dir)
    return train_fsrgan(features, config, callback=callback, checkpoint=path, resume=True, owned_checkpoint=True)


def cached_checkpoint_path(features: Mapping[float, np.ndarray], config: TrainConfig,
                           cache_dir: str | Path | None = None) -> Path:
    """Where :func:`train_cached` keeps the checkpoint of ``config`` trained on ``features``."""
    config = with_feature_dim(config, features)
    folder = cache_dir_or_default(cache_dir)
    return folder / "models" / f"{config.loss}-r{config.r:g}-{training_key(features, config)}.pt"


def cached_history(features: Mapping[float, np.ndarray], config: TrainConfig,
                   cache_dir: str | Path | None = None) -> dict | None:
    """The training history (:attr:`TrainResult.history`) of a run :func:`train_cached` has stored, read without
    training anything; ``None`` if there is no usable checkpoint."""
    state = read_checkpoint(cached_checkpoint_path(features, config, cache_dir), "cpu", required=CHECKPOINT_KEYS)
    return None if state is None else state["history"]


#: What a checkpoint written by :func:`train_fsrgan` holds.
CHECKPOINT_KEYS: tuple[str, ...] = ("config", "epoch", "history", "rng", "torch_rng", "generator", "opt_g", "critic",
                                    "opt_d")


def _save_state(path, config, generator, critic, opt_g, opt_d, epoch, history, rng) -> None:
    state = {"config": asdict(config), "epoch": epoch, "history": history, "rng": rng.get_state(),
             "torch_rng": torch.get_rng_state(), "generator": generator.state_dict(), "opt_g": opt_g.state_dict(),
             "critic": critic.state_dict() if critic is not None else None,
             "opt_d": opt_d.state_dict() if opt_d is not None else None}
    save_checkpoint(path, state)


def _load_state(state, path, config, generator, critic, opt_g, opt_d, rng) -> tuple[int, dict]:
    stored, wanted = dict(state["config"]), asdict(config)
    for budget in ("epochs", "steps"):  # resuming may extend training
        stored.pop(budget, None), wanted.pop(budget, None)
    if stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        raise ValueError(f"checkpoint {path} was made with a different config ({', '.join(changed)} differ); "
                         "refusing to resume")
    generator.load_state_dict(state["generator"])
    opt_g.load_state_dict(state["opt_g"])
    if critic is not None:
        critic.load_state_dict(state["critic"])
        opt_d.load_state_dict(state["opt_d"])
    rng.set_state(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return state["epoch"], state["history"]


def load_generator(path: str | Path, device: str = "cpu") -> FeatureGenerator:
    """Rebuild a trained G from a checkpoint alone (its config is stored inside)."""
    state, problem = checked_checkpoint(Path(path), device, required=CHECKPOINT_KEYS)
    if state is None:
        raise ValueError(f"cannot read the checkpoint {path}: {problem}; train it again "
                         "(fsrlib.methods.train.train_cached, or train_fsrgan with checkpoint=...)")
    generator = FeatureGenerator(GeneratorConfig(**state["config"]["generator"])).to(device)
    generator.load_state_dict(state["generator"])
    return generator.eval()
