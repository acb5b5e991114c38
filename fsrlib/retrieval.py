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


def non_finite_rows(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Indices of the rows of an ``(N, D)`` array that hold a NaN or an infinity (checked ``chunk`` rows at a time)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        return np.empty(0, dtype=np.int64)
    bad = [start + np.flatnonzero(~np.isfinite(x[start:start + chunk]).all(axis=1))
           for start in range(0, x.shape[0], chunk)]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def _refuse_non_finite(x: np.ndarray, what: str) -> None:
    bad = non_finite_rows(x)
    if bad.size:
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
        raise ValueError(f"{bad.size} {what} feature row(s) hold NaN or inf values (rows {shown}): a ranking by them "
                         "would be arbitrary. Find where they came from (a failed extraction, a diverged model) "
                         "and recompute them, or drop those rows.")


def rank_database(queries: np.ndarray, database: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Rank ``database`` (N, D) for every query (Q, D) by cosine similarity.

    Both sides are L2-normalised; the database is scored ``chunk`` rows at a time
    in float32, so a float16 database of distractors is never copied whole. Ties
    are broken by database index (a stable sort), so a ranking is deterministic.
    A NaN or inf in a query or database row is an error that names the rows.
    Returns an ``(N, Q)`` int64 array.
    """
    queries, database = np.asarray(queries), np.asarray(database)
    if queries.ndim != 2 or database.ndim != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(f"queries {queries.shape} and database {database.shape} must be (Q, D) and (N, D) "
                         "arrays of the same feature dim D")
    _refuse_non_finite(queries, "query")
    _refuse_non_finite(database, "database")
    q = l2_normalize(queries)
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


def check_ranking(ranks: np.ndarray, n_queries: int, n_db: int | None = None,
                  budget: int = 1 << 25) -> np.ndarray:
    """``ranks`` as an array once it is shown to be a possible ranking; else a ``ValueError`` saying what is wrong.

    A ranking is ``(rows, n_queries)`` of integers; each column lists distinct
    database indices in ``[0, n_db)``. ``n_db`` defaults to ``rows`` (a full
    ranking, so every column is a permutation); pass it for a truncated top-k
    ranking. Duplicates are found by marking each column's indices in a
    boolean table of ``n_db`` entries per column, ``budget`` entries at a time
    (one pass over the ranking; a short top-k ranking is sorted instead).
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != n_queries:
        hint = " (it looks transposed: pass ranks.T)" if ranks.ndim == 2 and ranks.shape[0] == n_queries else ""
        raise ValueError(f"ranks must be (n_db, {n_queries}): one column per query; got shape {ranks.shape}{hint}")
    if not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError(f"ranks must hold integer database indices, got dtype {ranks.dtype} (NaN or fractional "
                         "ranks are no ranking); use rank_database, or np.argsort of the scores along axis 0")
    rows = ranks.shape[0]
    n_db = rows if n_db is None else int(n_db)
    if rows > n_db:
        raise ValueError(f"ranks has {rows} rows but the database holds {n_db} images: some index repeats")
    if ranks.size == 0:
        return ranks
    low, high = int(ranks.min()), int(ranks.max())
    if low < 0 or high >= n_db:
        cols = np.flatnonzero(((ranks < 0) | (ranks >= n_db)).any(axis=0))
        raise ValueError(f"ranks hold indices outside the database [0, {n_db}) (min {low}, max {high}) in the "
                         f"columns of queries {_listing(cols)}; pass n_db= if the ranking is truncated")
    repeated = _columns_with_repeats(ranks, n_db, budget)
    if repeated.size:
        raise ValueError(f"the rankings of queries {_listing(repeated)} list a database index more than once: a "
                         "ranking orders each database image once (AP would exceed 1 otherwise)")
    return ranks


def _columns_with_repeats(ranks: np.ndarray, n_db: int, budget: int) -> np.ndarray:
    rows, n_queries = ranks.shape
    if rows * 32 < n_db:  # a short (top-k) ranking: sorting its columns is cheaper than an n_db table
        ordered = np.sort(ranks, axis=0)
        return np.flatnonzero((ordered[1:] == ordered[:-1]).any(axis=0))
    width = max(1, min(n_queries, budget // max(n_db, 1)))
    seen = np.zeros(n_db * width, dtype=bool)
    bad = []
    for start in range(0, n_queries, width):
        block = ranks[:, start:start + width]
        w = block.shape[1]
        table = seen[: n_db * w]
        table[:] = False
        table[(block + np.arange(w, dtype=np.int64) * n_db).ravel()] = True
        distinct = np.count_nonzero(table.reshape(w, n_db), axis=1)
        bad.append(start + np.flatnonzero(distinct != rows))
    return np.concatenate(bad)


def _listing(indices: np.ndarray, limit: int = 10) -> str:
    return ", ".join(str(int(i)) for i in indices[:limit]) + (", ..." if len(indices) > limit else "")


def compute_map(
    ranks: np.ndarray, gnd: Sequence[GroundTruth], kappas: Sequence[int] = (1, 5, 10), *, n_db: int | None = None
) -> tuple[float, np.ndarray, np.ndarray, dict[int, float]]:
    """mAP, per-query AP, per-query P@k and mP@k over queries that have positives.

    ``ranks`` is ``(n_db, n_queries)``; ``gnd[q]`` holds ``"ok"`` and optional
    ``"junk"`` database indices. A query with no positives is left out of the
    means and gets ``nan`` in the per-query arrays (revisitop convention).
    ``ranks`` must be a possible ranking (see :func:`check_ranking`; ``n_db``
    is for a truncated one): integer, in range, no index twice in a column.
    """
    return _compute_map(check_ranking(ranks, len(gnd), n_db), gnd, kappas)


def _compute_map(ranks: np.ndarray, gnd: Sequence[GroundTruth],
                 kappas: Sequence[int]) -> tuple[float, np.ndarray, np.ndarray, dict[int, float]]:
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
                          kappas: Sequence[int] = (1, 5, 10), *,
                          n_db: int | None = None) -> dict[str, dict[str, float]]:
    """revisitop's evaluation: mAP and mP@k for Easy, Medium and Hard.

    Queries with no positives in a setting are left out of that setting's means
    (as revisitop's ``compute_map`` does). ``ranks`` is checked as in :func:`compute_map`.
    """
    ranks = check_ranking(ranks, len(gnd), n_db)
    out = {}
    for setting in REVISITED_SETTINGS:
        m_ap, _, _, mpr = _compute_map(ranks, revisited_ground_truth(gnd, setting), kappas)
        out[setting] = {"mAP": m_ap, **{f"mP@{k}": v for k, v in mpr.items()}}
    return out
