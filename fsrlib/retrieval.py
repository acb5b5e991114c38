"""Ranking and the benchmarks' official retrieval metrics (numpy only, no torch).

A *ranking* is an ``(n_db, n_queries)`` integer array: column ``q`` lists database
indices from most to least similar to query ``q`` (the layout of cirtorch and
revisitop). Ground truth per query is a dict ``{"ok": [...], "junk": [...]}``
of database indices; this is the one form every benchmark is loaded into.

Average precision follows the Oxford/Paris ``compute_ap.cpp`` definition that
revisitop's ``compute_ap`` reproduces: precision-recall is integrated with the
trapezoidal rule, and junk images are removed from the ranking before positions
are counted (they neither help nor hurt, and take no rank). This is *not*
scikit-learn's ``average_precision_score`` (a step-wise estimator without junk).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

GroundTruth = Mapping[str, Sequence[int]]


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of an ``(N, D)`` array, computed in float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected an (N, D) feature array, got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def rank_database(queries: np.ndarray, database: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Rank ``database`` (N, D) for every query (Q, D) by cosine similarity.

    Both sides are L2-normalised; the database is scored ``chunk`` rows at a time
    in float32, so a float16 database of distractors is never copied whole. Ties
    are broken by database index (a stable sort), so a ranking is deterministic.
    Returns an ``(N, Q)`` int64 array.
    """
    q = l2_normalize(queries)
    database = np.asarray(database)
    if database.ndim != 2 or q.shape[1] != database.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} does not match database shape {database.shape}")
    sims = np.empty((database.shape[0], q.shape[0]), dtype=np.float32)
    for start in range(0, database.shape[0], chunk):
        sims[start:start + chunk] = l2_normalize(database[start:start + chunk]) @ q.T
    return np.argsort(-sims, axis=0, kind="stable")


def positive_positions(ranking: np.ndarray, ok: Sequence[int], junk: Sequence[int]) -> np.ndarray:
    """0-based positions of the positives in ``ranking`` once junk is removed."""
    ranking = np.asarray(ranking)
    is_junk = np.isin(ranking, np.asarray(list(junk), dtype=np.int64))
    kept = ranking[~is_junk]
    return np.flatnonzero(np.isin(kept, np.asarray(list(ok), dtype=np.int64)))


def average_precision(positions: np.ndarray, n_positives: int) -> float:
    """Trapezoidal AP from the junk-free 0-based positions of the positives.

    With positives found at positions ``p_0 < p_1 < ...`` (j-th positive at
    rank ``p_j``), the precision just before and at that positive are
    ``j / p_j`` (1 when ``p_j = 0``) and ``(j + 1) / (p_j + 1)``; each positive
    adds the trapezoid ``(prec_before + prec_at) / 2 * (1 / n_positives)``.
    Positives missing from the ranking contribute nothing.
    """
    if n_positives <= 0:
        raise ValueError("average precision is undefined for a query with no positives")
    pos = np.sort(np.asarray(positions, dtype=np.float64))
    j = np.arange(pos.size, dtype=np.float64)
    prec_before = np.where(pos == 0, 1.0, j / np.maximum(pos, 1.0))
    prec_at = (j + 1.0) / (pos + 1.0)
    return float(np.sum((prec_before + prec_at) / 2.0) / n_positives)


def precision_at_k(positions: np.ndarray, k: int) -> float:
    """revisitop's mP@k term: with ``pos`` 1-based positive positions,
    ``kq = min(max(pos), k)`` and ``P = |{pos <= kq}| / kq``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pos = np.asarray(positions) + 1
    if pos.size == 0:
        return 0.0
    kq = min(int(pos.max()), k)
    return float(np.sum(pos <= kq) / kq)


def compute_map(
    ranks: np.ndarray, gnd: Sequence[GroundTruth], kappas: Sequence[int] = (1, 5, 10)
) -> tuple[float, np.ndarray, np.ndarray, dict[int, float]]:
    """mAP, per-query AP, per-query P@k and mP@k over queries that have positives.

    ``ranks`` is ``(n_db, n_queries)``; ``gnd[q]`` holds ``"ok"`` and optional
    ``"junk"`` database indices. A query with no positives is left out of the
    means and gets ``nan`` in the per-query arrays (revisitop convention).
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(gnd):
        raise ValueError(f"ranks must be (n_db, {len(gnd)}), got shape {ranks.shape}")
    aps = np.full(len(gnd), np.nan)
    prs = np.full((len(gnd), len(kappas)), np.nan)
    for q, g in enumerate(gnd):
        ok = list(g.get("ok", []))
        if not ok:
            continue
        pos = positive_positions(ranks[:, q], ok, g.get("junk", []))
        aps[q] = average_precision(pos, len(ok))
        prs[q] = [precision_at_k(pos, k) for k in kappas]
    valid = ~np.isnan(aps)
    if not valid.any():
        raise ValueError("no query has any positive: mAP is undefined")
    mean_pr = {int(k): float(prs[valid, i].mean()) for i, k in enumerate(kappas)}
    return float(aps[valid].mean()), aps, prs, mean_pr


#: The revisited Oxford/Paris settings (Radenović et al. 2018) as (positives, extra junk) built from a
#: query's ``easy`` / ``hard`` lists: Easy ignores the hard images, Hard ignores the easy ones.
REVISITED_SETTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def revisited_ground_truth(gnd: Sequence[Mapping[str, Sequence[int]]], setting: str) -> list[dict[str, list[int]]]:
    """``{"ok", "junk"}`` per query for a revisited ``setting`` from ``{"easy", "hard", "junk"}`` lists."""
    try:
        positive_keys, junk_keys = REVISITED_SETTINGS[setting]
    except KeyError:
        raise KeyError(f"unknown revisited setting {setting!r}; choose one of {list(REVISITED_SETTINGS)}") from None
    return [{"ok": sorted({i for k in positive_keys for i in g.get(k, [])}),
             "junk": sorted({i for k in junk_keys for i in g.get(k, [])})} for g in gnd]


def compute_map_revisited(ranks: np.ndarray, gnd: Sequence[Mapping[str, Sequence[int]]],
                          kappas: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """revisitop's evaluation: mAP and mP@k for Easy, Medium and Hard.

    Queries with no positives in a setting are left out of that setting's means
    (as revisitop's ``compute_map`` does).
    """
    out = {}
    for setting in REVISITED_SETTINGS:
        m_ap, _, _, mpr = compute_map(ranks, revisited_ground_truth(gnd, setting), kappas)
        out[setting] = {"mAP": m_ap, **{f"mP@{k}": v for k, v in mpr.items()}}
    return out
