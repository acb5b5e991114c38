"""Measurements behind the paper's motivation (Sec. 1, Fig. 2, Table 1), numpy only.

All features are expected L2-normalised (``fsrlib.retrieval.l2_normalize``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .degrade import ratio_label
from .retrieval import GroundTruth, compute_map, rank_database

#: Table 1 of the paper: variance of the LR-HR Euclidean distance per area ratio (VGG16 fc7 on Oxford5k).
PAPER_TABLE1: dict[float, float] = {1 / 4: 0.0070, 1 / 9: 0.0103, 1 / 16: 0.0107, 1 / 25: 0.0101, 1 / 36: 0.0091,
                                    1 / 49: 0.0078, 1 / 64: 0.0068}


def lr_hr_distances(features: Mapping[float, np.ndarray]) -> pd.DataFrame:
    """Per image and ratio, ``||F_LR - F_HR||_2`` (Fig. 2a); ``features[1.0]`` is HR. Tidy: ratio, image, distance."""
    hr = features[1.0]
    rows = [pd.DataFrame({"ratio": r, "ratio_label": ratio_label(r), "image": np.arange(len(hr)),
                          "distance": np.linalg.norm(f - hr, axis=1)})
            for r, f in sorted(features.items(), reverse=True) if r != 1.0]
    return pd.concat(rows, ignore_index=True)


def distance_statistics(distances: pd.DataFrame) -> pd.DataFrame:
    """Mean and variance of the LR-HR distance per ratio, with the paper's Table 1 variance beside ours."""
    stats = distances.groupby(["ratio", "ratio_label"], sort=False)["distance"].agg(["mean", "var"]).reset_index()
    stats = stats.rename(columns={"mean": "mean distance", "var": "variance (ours)"})
    stats["variance (paper, VGG16/Oxford5k)"] = stats["ratio"].map(PAPER_TABLE1)
    return stats.set_index("ratio_label").drop(columns="ratio")


def pair_distances(queries: np.ndarray, database: np.ndarray,
                   gnd: Sequence[GroundTruth]) -> tuple[np.ndarray, np.ndarray]:
    """Distances of similar pairs (query, positive) and dissimilar pairs (query, neither positive nor junk)."""
    similar, dissimilar = [], []
    for q, g in enumerate(gnd):
        dist = np.linalg.norm(database - queries[q], axis=1)
        ok = np.asarray(list(g.get("ok", [])), dtype=np.int64)
        other = np.setdiff1d(np.arange(len(database)), np.concatenate([ok, np.asarray(list(g.get("junk", [])),
                                                                                       dtype=np.int64)]))
        similar.append(dist[ok])
        dissimilar.append(dist[other])
    return np.concatenate(similar), np.concatenate(dissimilar)


def map_with_distractors(queries: np.ndarray, database: np.ndarray, distractors: np.ndarray,
                         gnd: Sequence[GroundTruth]) -> float:
    """mAP after appending ``distractors`` to the database (Fig. 2c); ground-truth indices are unchanged."""
    return compute_map(rank_database(queries, np.concatenate([database, distractors])), gnd)[0]


def top_k(queries: np.ndarray, database: np.ndarray, k: int = 5) -> np.ndarray:
    """``(Q, k)`` indices of the k nearest database items of each query."""
    return rank_database(queries, database)[:k].T
