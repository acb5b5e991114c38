"""Training SRCNN and VDSR on the project's own degradation, and checking they beat bicubic.

Training pairs are made by :func:`fsrlib.features.degrade.degrade` from a dataset's
training split: the target is the high-resolution network input (ratio 1), the
input the bicubic up-sampling of the small image at a training ratio, both as
luminance in [0, 1]. Random patches (no flips: see :func:`sample_batch`); MSE;
Adam with gradient-norm clipping (VDSR's clipping, in the form that suits Adam).
SRCNN is trained once per ratio, as Dong et al. train one network per scale;
VDSR once on all ratios together, as Kim et al.'s multi-scale model.

No pretrained SR weights can be downloaded here, and a CPU budget of minutes is
far from the papers' days on a GPU: :func:`evaluate_isr` reports PSNR/SSIM on
held-out images against bicubic, so the reader sees how much was learned.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.devices import concrete_device
from fsrlib.features.degrade import PAPER_RATIOS, Degradation, Reference, degrade, ratio_label
from fsrlib.features.inputs import load_item
from fsrlib.methods.isr import ISR_MODELS, Upscaler, build_isr_model, psnr, realign_uniform, rgb_to_ycbcr, ssim
from fsrlib.paths import cache_dir_or_default, json_digest, read_checkpoint, save_checkpoint
from fsrlib.progress import bar
from fsrlib.seed import set_seed

#: The ratios the paper reports SRCNN at (Sec. 5): x2, x3, x4.
SRCNN_RATIOS: tuple[float, ...] = (1 / 4, 1 / 9, 1 / 16)

#: Published Set5 results (PSNR dB / SSIM on Y, MATLAB bicubic degradation), as tabulated in Kim et al. 2016
#: (VDSR, Table 2); SRCNN is Dong et al.'s 9-5-5 ImageNet model. For comparison only: other images, another
#: degradation, days of GPU training.
PUBLISHED_SET5: dict[str, dict[str, tuple[float, float]]] = {
    "bicubic": {"x2": (33.66, 0.9299), "x3": (30.39, 0.8682), "x4": (28.42, 0.8104)},
    "srcnn": {"x2": (36.66, 0.9542), "x3": (32.75, 0.9090), "x4": (30.48, 0.8628)},
    "vdsr": {"x2": (37.53, 0.9587), "x3": (33.66, 0.9213), "x4": (31.35, 0.8838)},
}


@dataclass
class ISRTrainConfig:
    """One ISR training run. Defaults: the book's CPU profile for VDSR (see :data:`ISR_PROFILES`)."""

    model: str = "vdsr"
    ratios: tuple[float, ...] = PAPER_RATIOS
    degradation: Degradation = "uniform"
    reference: Reference = "input"
    patch_size: int = 41
    batch_size: int = 16
    steps: int = 300
    lr: float = 1e-4
    cosine_decay: bool = True
    augment: bool = False
    grad_clip: float | None = 0.4
    seed: int = 0
    device: str = "cpu"
    model_config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.device = concrete_device(self.device)  # "auto": CUDA, else MPS, else CPU


#: Budgets, all with Adam and a cosine learning-rate decay. "cpu": minutes on a 2-core CPU (the book's default;
#: about 1 min per SRCNN network and 5 min for VDSR). "paper": closer to the papers (meant for a GPU; (VDSR: 41 px patches, batch 64,
#: ~80 epochs of 291 images; here 20k steps of batch 64)). The names are those of
#: :data:`fsrlib.experiment.PROFILES`, so one ``profile`` word picks every budget. SRCNN is not clipped (Dong et al. do not clip).
ISR_PROFILES: dict[str, dict[str, dict]] = {
    "cpu": {"srcnn": {"patch_size": 33, "batch_size": 32, "steps": 1000, "lr": 2e-3, "grad_clip": None},
            "vdsr": {"patch_size": 41, "batch_size": 16, "steps": 400, "lr": 5e-4}},
    "paper": {"srcnn": {"patch_size": 33, "batch_size": 128, "steps": 20000, "lr": 1e-3, "grad_clip": None},
              "vdsr": {"patch_size": 41, "batch_size": 64, "steps": 20000, "lr": 3e-4}},
}


def isr_config(model: str, profile: str = "cpu", **changes) -> ISRTrainConfig:
    """The training config of ``model`` in a named profile, plus ``changes``."""
    if model not in ISR_MODELS:
        raise KeyError(f"unknown ISR model {model!r}; known: {sorted(ISR_MODELS)}")
    if profile not in ISR_PROFILES:
        raise KeyError(f"unknown ISR profile {profile!r}; known: {sorted(ISR_PROFILES)}")
    return ISRTrainConfig(model=model, **{**ISR_PROFILES[profile][model], **changes})


def luma(image) -> np.ndarray:
    """Y of an RGB PIL image, scaled to [0, 1] (``(Y - 16) / 219``), float32 ``(H, W)``."""
    return ((rgb_to_ycbcr(np.asarray(image)))[..., 0].astype(np.float32) - 16.0) / 219.0


def luma_pairs(ds: RetrievalDataset, split: str, ratios: Sequence[float], *, degradation: Degradation = "uniform",
               reference: Reference = "input", limit: int | None = None) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """``(hr (N, 224, 224), {ratio: bicubic input (N, 224, 224)})`` luminance pairs from a split's images."""
    items = ds.split_items(split)[:limit]
    if not items:
        raise ValueError(f"{ds.name} has no images in split {split!r} to train or test super-resolution on")
    hr, lr = [], {r: [] for r in ratios}
    for item in items:
        image = load_item(ds, item)
        hr.append(luma(degrade(image, 1.0, degradation=degradation, reference=reference).upsampled))
        for r in ratios:
            lr[r].append(luma(degrade(image, r, degradation=degradation, reference=reference).upsampled))
    return np.stack(hr), {r: np.stack(v) for r, v in lr.items()}


def sample_batch(hr: np.ndarray, lr: dict[float, np.ndarray], batch: int, patch: int,
                 rng: np.random.Generator, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(batch, 1, patch, patch)`` input/target patches over images and ratios.

    ``augment`` flips and rotates each pair. Off by default: uniform sub-sampling at an even factor keeps the
    pixel half a pixel off its cell's centre, always towards the bottom right, and a flipped pair would teach
    the network the opposite shift.
    """
    ratios = list(lr)
    n, h, w = hr.shape
    xs, ys = [], []
    for _ in range(batch):
        i, r = rng.integers(n), ratios[rng.integers(len(ratios))]
        top, left = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        x, y = lr[r][i, top:top + patch, left:left + patch], hr[i, top:top + patch, left:left + patch]
        if augment:
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            x, y = np.rot90(x, k), np.rot90(y, k)
            if flip:
                x, y = x[:, ::-1], y[:, ::-1]
        xs.append(x.copy())
        ys.append(y.copy())
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))[:, None]


def train_isr(hr: np.ndarray, lr: dict[float, np.ndarray], config: ISRTrainConfig,
              callback: Callable[[dict], None] | None = None) -> tuple[nn.Module, dict[str, list[float]]]:
    """Train ``config.model`` on the pairs; returns the model (eval mode) and the loss history."""
    if hr.shape[1] < config.patch_size or hr.shape[2] < config.patch_size:
        raise ValueError(f"patch size {config.patch_size} exceeds the {hr.shape[1:]} training images")
    set_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    _, cfg_cls = ISR_MODELS[config.model]
    model = build_isr_model(config.model, cfg_cls(**config.model_config)).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps) if config.cosine_decay else None
    history: dict[str, list[float]] = {"step": [], "loss": []}
    model.train()
    scales = ", ".join(f"x{round(1 / np.sqrt(r))}" for r in config.ratios)
    steps_bar = bar(config.steps, f"training {config.model} ({scales})")
    for step in range(config.steps):
        x, y = (t.to(config.device) for t in sample_batch(hr, lr, config.batch_size, config.patch_size, rng,
                                                                 config.augment))
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        if callback is not None:
            callback({"step": step, "loss": history["loss"][-1]})
        steps_bar.update()
    steps_bar.close()
    return model.eval(), history


def isr_key(ds: RetrievalDataset, config: ISRTrainConfig) -> str:
    """Digest of the training images (:meth:`~fsrlib.data.datasets.RetrievalDataset.listing_sha256`, the fingerprint
    the feature cache uses too) and the config."""
    images = ds.listing_sha256(ds.split_items("train"))
    return json_digest([ds.name, ds.version, images, asdict(config)])


def train_isr_cached(ds: RetrievalDataset, config: ISRTrainConfig, cache_dir: str | Path | None = None,
                     callback: Callable[[dict], None] | None = None) -> tuple[nn.Module, dict, str]:
    """:func:`train_isr` on ``ds``'s training split, kept under ``<cache>/isr/``; returns (model, history, key).

    An unreadable or damaged cached model (checksum) is reported with a warning and trained again.
    """
    key = isr_key(ds, config)
    path = cache_dir_or_default(cache_dir, "isr", f"{config.model}-{key}.pt")
    _, cfg_cls = ISR_MODELS[config.model]
    state = read_checkpoint(path, config.device, required=("model_config", "state_dict", "history"))
    if state is not None:
        model = build_isr_model(config.model, cfg_cls(**state["model_config"])).to(config.device)
        model.load_state_dict(state["state_dict"])
        return model.eval(), state["history"], key
    hr, lr = luma_pairs(ds, "train", config.ratios, degradation=config.degradation, reference=config.reference)
    start = time.perf_counter()
    model, history = train_isr(hr, lr, config, callback)
    history["train_seconds"] = time.perf_counter() - start
    save_checkpoint(path, {"config": asdict(config), "model_config": asdict(model.config),
                           "state_dict": model.state_dict(), "history": history})
    return model, history, key


def trained_upscaler(ds: RetrievalDataset, model: str, profile: str = "cpu", *, degradation: Degradation = "uniform",
                     reference: Reference = "input", seed: int = 0, device: str = "cpu",
                     cache_dir: str | Path | None = None) -> Upscaler:
    """The :class:`Upscaler` of the experiment's ``srcnn`` / ``vdsr`` methods, trained (or loaded) on ``ds``.

    SRCNN: one network per ratio in :data:`SRCNN_RATIOS`. VDSR: one network for all paper ratios.
    """
    ratio_sets = [(r,) for r in SRCNN_RATIOS] if model == "srcnn" else [PAPER_RATIOS]
    models, keys, histories, device = {}, [], {}, concrete_device(device)
    for ratios in ratio_sets:
        cfg = isr_config(model, profile, ratios=ratios, degradation=degradation, reference=reference, seed=seed,
                         device=device)
        net, history, key = train_isr_cached(ds, cfg, cache_dir)
        keys.append(key)
        models.update({r: net for r in ratios})
        histories[", ".join(ratio_label(r) for r in ratios)] = history
    return Upscaler(model, models, cache_id=f"{model}-" + "-".join(keys), device=device, histories=histories)


def published_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Our PSNR/SSIM (from :func:`evaluate_isr`) beside the published Set5 numbers, for x2-x4."""
    rows = []
    for _, r in table.iterrows():
        pub = PUBLISHED_SET5.get(r["method"], {}).get(r["scale"])
        if pub is not None:
            rows.append({"method": r["method"], "scale": r["scale"], "PSNR (ours)": r["PSNR"],
                         "PSNR (Set5, published)": pub[0], "SSIM (ours)": r["SSIM"], "SSIM (Set5, published)": pub[1]})
    frame = pd.DataFrame(rows).set_index(["scale", "method"]).sort_index(level=0, sort_remaining=False)
    gain = frame["PSNR (ours)"] - frame["PSNR (ours)"].xs("bicubic", level="method").reindex(
        frame.index.get_level_values("scale")).to_numpy()
    pub_gain = frame["PSNR (Set5, published)"] - frame["PSNR (Set5, published)"].xs(
        "bicubic", level="method").reindex(frame.index.get_level_values("scale")).to_numpy()
    return frame.assign(**{"gain over bicubic (ours)": gain, "gain over bicubic (published)": pub_gain})


def evaluate_isr(models: dict[str, Upscaler], hr: np.ndarray, lr: dict[float, np.ndarray], *,
                 realigned: bool = False, per_image: bool = False) -> pd.DataFrame:
    """PSNR and SSIM on Y (dB; border of ``scale`` px shaved, as in SR papers) of bicubic and each model.

    ``hr`` / ``lr`` as from :func:`luma_pairs` on held-out images. Returns a tidy table
    ``method, ratio, scale, PSNR, SSIM`` (means over images), or with ``per_image`` one row per image (column
    ``image``), for paired intervals against bicubic. ``realigned`` adds the row ``bicubic, re-aligned``
    (:func:`fsrlib.methods.isr.realign_uniform`: the uniform degradation's kept pixels moved back where they were taken;
    meaningful for ``degradation="uniform"`` only).
    """
    rows = []
    for ratio, inputs in lr.items():
        scale = round(1 / np.sqrt(ratio))
        candidates = {"bicubic": inputs}
        if realigned:
            candidates["bicubic, re-aligned"] = realign_uniform(inputs, ratio)
        for name, up in models.items():
            if up.supports(ratio):
                candidates[name] = up.refine_luma(inputs, ratio)
        for name, est in candidates.items():
            p = [psnr(h * 219 + 16, e * 219 + 16, border=scale) for h, e in zip(hr, est)]
            s = [ssim(h * 219 + 16, e * 219 + 16, border=scale) for h, e in zip(hr, est)]
            common = {"method": name, "ratio": ratio, "ratio_label": ratio_label(ratio), "scale": f"x{scale}"}
            if per_image:
                rows += [{**common, "image": i, "PSNR": float(a), "SSIM": float(b)}
                         for i, (a, b) in enumerate(zip(p, s))]
            else:
                rows.append({**common, "PSNR": float(np.mean(p)), "SSIM": float(np.mean(s))})
    return pd.DataFrame(rows)
