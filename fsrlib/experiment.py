"""The core experiment: enhance low-resolution query features and measure retrieval.

For a dataset, a backbone and a list of area ratios, every method maps the
query features extracted at each ratio (paper Sec. 5.2: degrade, bicubic
up-sample to 224, extract) to enhanced features; the result is a tidy table
``method x ratio x metric`` with the mean Euclidean distance to the
high-resolution feature (Fig. 4/5), mAP (Fig. 6) and mP@k.

All features are L2-normalised before they are compared, enhanced or trained
on, so distances lie in [0, 2] as the paper's Fig. 2a/5 values suggest.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets import RetrievalDataset, load_dataset
from .degrade import PAPER_RATIOS, Method, Reference, ratio_label
from .features import extract_features
from .isr_train import trained_upscaler
from .methods import ISR_METHODS, METHODS, UNTRAINED
from .retrieval import compute_map, compute_map_revisited, l2_normalize, rank_database


@dataclass
class ExperimentConfig:
    """Everything that defines one run of the core experiment (paper values as defaults)."""

    dataset: str = "mini"
    data_dir: str | None = None
    backbone: str = "efficientnet_lite0"
    ratios: tuple[float, ...] = PAPER_RATIOS
    methods: tuple[str, ...] = ("raw",)
    degradation: Method = "uniform"
    reference: Reference = "input"
    kappas: tuple[int, ...] = (1, 5, 10)
    epochs: int = 6
    critic_iters: int = 5
    seed: int = 0
    device: str = "cpu"
    cache_dir: str | None = None
    train_dataset: str | None = None
    train_data_dir: str | None = None
    isr_profile: str = "cpu"


#: Training budgets. "paper": Sec. 3.3's 6 epochs and WGAN's 5 critic updates per generator update, sized for
#: benchmarks of thousands of images. "cpu": the book's default on the small mini/Paris-subset training sets
#: (~150 images, so an epoch is ~20 generator steps), a few minutes per trained method on a 2-core CPU.
PROFILES: dict[str, dict[str, int]] = {"paper": {"epochs": 6, "critic_iters": 5},
                                       "cpu": {"epochs": 20, "critic_iters": 2}}


def profile_settings(profile: str) -> dict[str, int]:
    """Training settings of a named size profile (see :data:`PROFILES`)."""
    try:
        return dict(PROFILES[profile])
    except KeyError:
        raise KeyError(f"unknown profile {profile!r}; known profiles: {sorted(PROFILES)}") from None


def feature_kwargs(cfg: ExperimentConfig, progress: bool) -> dict:
    return {"backbone": cfg.backbone, "method": cfg.degradation, "reference": cfg.reference,
            "device": cfg.device, "cache_dir": cfg.cache_dir, "progress": progress}


def split_features(ds: RetrievalDataset, split: str, ratios: Sequence[float], cfg: ExperimentConfig,
                   progress: bool = True) -> dict[float, np.ndarray]:
    """L2-normalised features of a split at ratio 1 and every ratio in ``ratios``."""
    scales = tuple(dict.fromkeys((1.0, *ratios)))
    feats = extract_features(ds, split, scales, **feature_kwargs(cfg, progress))
    return {r: l2_normalize(f) for r, f in feats.items()}


def evaluate(enhanced: np.ndarray, hr: np.ndarray, db: np.ndarray, ds: RetrievalDataset,
             kappas: Sequence[int]) -> dict[str, float]:
    """Distance to the HR query feature, mAP and mP@k of one set of query features.

    On a revisited benchmark, ``mAP`` and ``mP@k`` are the Medium setting's and
    ``mAP easy`` / ``mAP hard`` are added.
    """
    enhanced = l2_normalize(enhanced)
    ranks = rank_database(enhanced, db)
    m_ap, _, _, mpr = compute_map(ranks, ds.gnd, kappas)
    row = {"distance": float(np.linalg.norm(enhanced - hr, axis=1).mean()), "mAP": m_ap}
    row.update({f"mP@{k}": v for k, v in mpr.items()})
    if ds.protocol == "revisited":
        settings = compute_map_revisited(ranks, ds.gnd, kappas)
        row.update({"mAP easy": settings["easy"]["mAP"], "mAP hard": settings["hard"]["mAP"]})
    return row


def run_experiment(cfg: ExperimentConfig, *, progress: bool = True) -> pd.DataFrame:
    """Run the core experiment; returns a tidy table (one row per method, ratio and metric).

    Trained methods learn from the training split of ``cfg.train_dataset``
    (default: the test dataset's own, the paper's within-dataset protocol; another
    name gives the cross-dataset protocol). Query images never enter it: every
    loader keeps them out of ``train``.
    """
    unknown = [m for m in cfg.methods if m not in METHODS and m not in ISR_METHODS]
    if unknown:
        raise KeyError(f"unknown method(s) {unknown}; known methods: {sorted([*METHODS, *ISR_METHODS])}")
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    db = split_features(ds, "db", (), cfg, progress)[1.0]
    queries = split_features(ds, "query", cfg.ratios, cfg, progress)
    train: dict[float, np.ndarray] = {}
    source = ds
    if any(m not in UNTRAINED for m in cfg.methods):
        if cfg.train_dataset is not None and cfg.train_dataset != ds.name:
            source = load_dataset(cfg.train_dataset, cfg.train_data_dir)
        if not source.train:
            raise ValueError(f"{source.name} has no training split; pass train_dataset= another dataset "
                             "(the cross-dataset protocol), e.g. 'mini' or 'paris6k'")
    if any(m in METHODS and m not in UNTRAINED for m in cfg.methods):
        train = split_features(source, "train", cfg.ratios, cfg, progress)
    reference_row = evaluate(queries[1.0], queries[1.0], db, ds, cfg.kappas)
    records = [{"method": "hr", "ratio": ratio, **reference_row} for ratio in cfg.ratios]
    for name in cfg.methods:
        if name in ISR_METHODS:
            records += isr_records(name, ds, source, db, queries[1.0], cfg, progress)
            continue
        enhance = METHODS[name](train, cfg)
        for ratio in cfg.ratios:
            records.append({"method": name, "ratio": ratio,
                            **evaluate(enhance(queries[ratio], ratio), queries[1.0], db, ds, cfg.kappas)})
    wide = pd.DataFrame.from_records(records)
    wide.insert(2, "ratio_label", [ratio_label(r) for r in wide["ratio"]])
    tidy = wide.melt(id_vars=["method", "ratio", "ratio_label"], var_name="metric", value_name="value")
    tidy.insert(0, "dataset", ds.name)
    tidy.insert(1, "backbone", cfg.backbone)
    tidy.attrs["config"] = asdict(cfg)
    trained = train or any(m in ISR_METHODS for m in cfg.methods)
    tidy.attrs["trained_on"] = f"{source.name} (train split, {len(source.train)} images)" if trained else None
    return tidy


def isr_records(name: str, ds: RetrievalDataset, source: RetrievalDataset, db: np.ndarray, hr: np.ndarray,
                cfg: ExperimentConfig, progress: bool) -> list[dict]:
    """Rows of an ISR method: train (or load) it on ``source``'s training images, super-resolve the queries at
    the ratios it was trained for, extract and evaluate. Other ratios get no row (SRCNN: 1/4, 1/9, 1/16)."""
    upscaler = trained_upscaler(source, name, cfg.isr_profile, cfg.degradation, cfg.reference, cfg.seed,
                                cfg.device, cfg.cache_dir)
    ratios = [r for r in cfg.ratios if upscaler.supports(r)]
    if not ratios:
        return []
    feats = extract_features(ds, "query", ratios, upscaler=upscaler, **feature_kwargs(cfg, progress))
    return [{"method": name, "ratio": r, **evaluate(l2_normalize(feats[r]), hr, db, ds, cfg.kappas)}
            for r in ratios]


def pivot(table: pd.DataFrame, metric: str = "mAP") -> pd.DataFrame:
    """``method x ratio`` view of one metric, ratios in the paper's order."""
    sub = table[table["metric"] == metric]
    wide = sub.pivot_table(index="method", columns="ratio", values="value", sort=False)
    wide = wide[sorted(wide.columns, reverse=True)]
    wide.columns = [ratio_label(r) for r in wide.columns]
    return wide


def worse_than_raw(table: pd.DataFrame, metric: str = "mAP", tolerance: float = 0.005) -> pd.DataFrame:
    """Rows ``(method, ratio, value, raw, drop)`` where a method scores below the raw LR feature.

    "Never worse than raw" is the property an enhancement must have to be safe
    to deploy; this lists every violation larger than ``tolerance``.
    """
    sub = table[table["metric"] == metric]
    raw = sub[sub["method"] == "raw"].set_index("ratio")["value"]
    rows = sub[~sub["method"].isin(["raw", "hr"])].copy()
    rows["raw"] = rows["ratio"].map(raw)
    rows["drop"] = rows["raw"] - rows["value"]
    return rows[rows["drop"] > tolerance][["method", "ratio_label", "value", "raw", "drop"]]


def save_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Save as CSV or JSON (by suffix); JSON also records the configuration."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".json":
        path.write_text(json.dumps({"config": table.attrs.get("config"), "trained_on": table.attrs.get("trained_on"),
                                    "rows": table.to_dict(orient="records")}, indent=1, default=str))
    else:
        raise ValueError(f"save as .csv or .json, not {path.suffix!r}")
    return path
