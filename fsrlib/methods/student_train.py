"""Training the student, and its checkpoints (see :mod:`fsrlib.methods.student` for the method)."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.features.backbones import shared_backbone
from fsrlib.features.extract import NetworkVariant
from fsrlib.methods.student import (
    FORMAT_VERSION,
    ResolutionStudent,
    StudentConfig,
    check_config,
    student_digest,
    student_loss,
)
from fsrlib.methods.student_pairs import StudentPairs, build_pairs
from fsrlib.paths import (
    cache_dir_or_default,
    canonical_json,
    files_sha256,
    json_digest,
    read_checkpoint,
    save_checkpoint,
)
from fsrlib.progress import bar
from fsrlib.seed import deterministic


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
        """The student as the network :func:`fsrlib.features.extract.extract_features` runs instead of the backbone."""
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
    return folder / "student" / "models" / f"student-{student_digest(key)}.pt"


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
    result = TrainedStudent(model, cfg, student_digest(key), images, history, pair_seconds, time.perf_counter() - start)
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
