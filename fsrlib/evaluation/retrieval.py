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

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fsrlib.data.ground_truth import REVISITED_SETTINGS, revisited_ground_truth

GroundTruth = Mapping[str, Sequence[int]]


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of an ``(N, D)`` array, computed in float32.

    Each row is first scaled by the power of two that brings its largest
    magnitude into ``[0.5, 1)``. That is exact, so an ordinary row gives the
    same bits as ``x / ||x||``, and a row of norm 1e30 or 1e-30 (whose squares
    overflow or underflow float32) still becomes a unit vector instead of zeros
    or a tiny vector. An all-zero row stays zero; NaN and inf pass through.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected an (N, D) feature array, got shape {x.shape}")
    if x.dtype != np.float64:  # float64 is scaled before it is rounded, so 1e300 survives the cast
        x = x.astype(np.float32)
    peak = np.maximum(x.max(axis=1, keepdims=True, initial=0), -x.min(axis=1, keepdims=True, initial=0))
    scaled = np.ldexp(x, -np.frexp(peak)[1]).astype(np.float32, copy=False)
    return scaled / np.maximum(np.linalg.norm(scaled, axis=1, keepdims=True), eps)


def check_integer(value: object, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an ``int`` once it is shown to be an integer ``>= minimum``; else a ``ValueError`` naming ``name``.

    A bool, a float (even ``2.0``) or a string is refused: a count typed as ``2.5``
    or ``"10"`` is a mistake to report, not to round. ``hint`` ends the message.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})"
                         f"{'; ' + hint if hint else ''}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}{'; ' + hint if hint else ''}")
    return int(value)


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
    chunk = check_integer(chunk, "chunk", hint="the number of database rows scored at a time")
    _refuse_non_finite(queries, "query")
    _refuse_non_finite(database, "database")
    q = l2_normalize(queries)
    sims = np.empty((database.shape[0], q.shape[0]), dtype=np.float32)
    for start in range(0, database.shape[0], chunk):
        sims[start:start + chunk] = l2_normalize(database[start:start + chunk]) @ q.T
    return np.argsort(-sims, axis=0, kind="stable")


def positive_positions(ranking: np.ndarray, ok: Sequence[int], junk: Sequence[int]) -> np.ndarray:
    """0-based positions of the positives in ``ranking`` once junk is removed.

    ``ranking`` is one query's 1-d list of distinct database indices (it may be
    a top-k list: positives it lacks are simply not found); ``ok`` and ``junk``
    are lists of non-negative integer indices, ``ok`` without repeats. Anything
    else is a ``ValueError``. An index in both ``ok`` and ``junk`` is junk (see
    :func:`compute_map`).
    """
    ranking = np.asarray(ranking)
    if ranking.size == 0:
        ranking = ranking.astype(np.int64)
    if ranking.ndim != 1 or not np.issubdtype(ranking.dtype, np.integer):
        raise ValueError(f"ranking must be a 1-d array of integer database indices, got shape {ranking.shape} and "
                         f"dtype {ranking.dtype}; pass one column of a ranking, e.g. ranks[:, q]")
    ordered = np.sort(ranking)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if ranking.size and (ordered[0] < 0 or repeated.size):
        what = f"lists indices {_listing(repeated)} more than once" if repeated.size else "holds negative indices"
        raise ValueError(f"ranking {what}: a ranking orders each database image once, by a non-negative index")
    return _positions(ranking, _index_array(ok, "the 'ok' list", None, repeats=False),
                      _index_array(junk, "the 'junk' list", None, repeats=True))


def _positions(ranking: np.ndarray, ok: np.ndarray, junk: np.ndarray) -> np.ndarray:
    kept = ranking[~np.isin(ranking, junk)] if junk.size else ranking
    return np.flatnonzero(np.isin(kept, ok))


def _checked_positions(positions: np.ndarray) -> np.ndarray:
    """``positions`` as an int64 array once shown to be 1-d, integer, non-negative and strictly increasing."""
    pos = np.asarray(positions)
    if pos.size == 0:
        return np.empty(0, dtype=np.int64)
    if pos.ndim != 1 or not np.issubdtype(pos.dtype, np.integer):
        raise ValueError(f"positions must be a 1-d array of integer 0-based ranks, got shape {pos.shape} and dtype "
                         f"{pos.dtype}; compute them with positive_positions")
    if pos[0] < 0 or np.any(pos[1:] <= pos[:-1]):
        raise ValueError(f"positions must be non-negative and strictly increasing (each rank holds one image), got "
                         f"[{_listing(pos)}]; compute them with positive_positions, or pass np.unique(positions)")
    return pos.astype(np.int64, copy=False)


def average_precision(positions: np.ndarray, n_positives: int) -> float:
    """Trapezoidal AP from the junk-free 0-based positions of the positives.

    With positives found at positions ``p_0 < p_1 < ...`` (j-th positive at
    rank ``p_j``), the precision just before and at that positive are
    ``j / p_j`` (1 when ``p_j = 0``) and ``(j + 1) / (p_j + 1)``; each positive
    adds the trapezoid ``(prec_before + prec_at) / 2 * (1 / n_positives)``.
    Positives missing from the ranking contribute nothing. ``positions`` must be
    non-negative, strictly increasing integers, no more of them than the
    ``n_positives >= 1`` the query has: else a ``ValueError`` (AP would leave [0, 1]).
    """
    n_positives = check_integer(n_positives, "n_positives",
                                hint="average precision is undefined for a query with no positives")
    pos = _checked_positions(positions)
    if pos.size > n_positives:
        raise ValueError(f"{pos.size} positions for n_positives={n_positives}: a query cannot find more positives "
                         "than it has; pass the number of positives in its ground truth, len(ok)")
    return _average_precision(pos, n_positives)


def _average_precision(pos: np.ndarray, n_positives: int) -> float:
    pos = pos.astype(np.float64)
    j = np.arange(pos.size, dtype=np.float64)
    prec_before = np.where(pos == 0, 1.0, j / np.maximum(pos, 1.0))
    prec_at = (j + 1.0) / (pos + 1.0)
    return float(np.sum((prec_before + prec_at) / 2.0) / n_positives)


def precision_at_k(positions: np.ndarray, k: int) -> float:
    """revisitop's mP@k term: with ``pos`` 1-based positive positions,
    ``kq = min(max(pos), k)`` and ``P = |{pos <= kq}| / kq``.

    ``positions`` as for :func:`average_precision`; ``k`` a positive integer.
    """
    return _precision_at_k(_checked_positions(positions), check_integer(k, "k"))


def _precision_at_k(positions: np.ndarray, k: int) -> float:
    pos = positions + 1
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
    n_db = rows if n_db is None else check_integer(n_db, "n_db", minimum=0)
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


def check_ground_truth(gnd: Sequence[GroundTruth], n_db: int, keys: Sequence[str] = ("ok", "junk"), *,
                       repeats: bool = False) -> list[dict[str, np.ndarray]]:
    """Each query's ``keys`` lists as int64 arrays once shown to be possible; else a ``ValueError`` naming the query.

    ``gnd`` holds one dict per query; each of its ``keys`` (absent: empty) must
    be a flat list of integer database indices in ``[0, n_db)``, without
    repeats unless ``repeats`` (a positive listed twice would count twice in
    ``n_positives``). Other keys (``bbx``, ``id``, ...) are not looked at.
    """
    checked = []
    for q, g in enumerate(_per_query(gnd)):
        name = f"query {q}" + (f" ({g['id']!r})" if isinstance(g, Mapping) and "id" in g else "")
        if not isinstance(g, Mapping):
            raise ValueError(f"the ground truth of {name} must be a dict like {{'ok': [...], 'junk': [...]}}, "
                             f"got {type(g).__name__}")
        checked.append({k: _index_array(g.get(k, ()), f"the {k!r} list of {name}", n_db, repeats) for k in keys})
    return checked


def _per_query(gnd: Sequence[GroundTruth]) -> Sequence[GroundTruth]:
    """``gnd`` itself once shown to be a list of per-query entries (a lone dict is the usual slip)."""
    if isinstance(gnd, (Mapping, str, bytes)) or not isinstance(gnd, Iterable) or not hasattr(gnd, "__len__"):
        raise ValueError("gnd must be a list with one ground-truth dict per query, got a "
                         f"{type(gnd).__name__}: wrap a single query's dict in a list")
    return gnd


def _index_array(values: object, what: str, n_db: int | None, repeats: bool) -> np.ndarray:
    """``values`` as int64 database indices in ``[0, n_db)`` (no upper bound if ``n_db`` is None)."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValueError(f"{what} must be a list of database indices, got {values!r}")
    arr = np.asarray(values) if isinstance(values, np.ndarray) else np.asarray(list(values))
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be a flat list of integer database indices, got shape {arr.shape} and "
                         f"dtype {arr.dtype} ({_listing(arr.ravel())})")
    upper = np.iinfo(np.int64).max if n_db is None else n_db
    outside = np.unique(arr[(arr < 0) | (arr >= upper)])
    if outside.size:
        raise ValueError(f"{what} holds indices outside the database [0, {'N' if n_db is None else n_db}): "
                         f"{_listing(outside)}. Ground truth and ranking must index the same database (negative "
                         "indices do not count from the end here; pass n_db= for a truncated ranking)")
    ordered = np.sort(arr)
    twice = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if twice.size and not repeats:
        raise ValueError(f"{what} lists indices {_listing(twice)} more than once: list each image once (a repeated "
                         "positive counts twice among the positives, so AP could never reach 1)")
    return arr.astype(np.int64, copy=False)


def compute_map(
    ranks: np.ndarray, gnd: Sequence[GroundTruth], kappas: Sequence[int] = (1, 5, 10), *, n_db: int | None = None
) -> tuple[float, np.ndarray, np.ndarray, dict[int, float]]:
    """mAP, per-query AP, per-query P@k and mP@k over queries that have positives.

    ``ranks`` is ``(n_db, n_queries)``; ``gnd[q]`` holds ``"ok"`` and optional
    ``"junk"`` database indices. A query with no positives is left out of the
    means and gets ``nan`` in the per-query arrays (revisitop convention).
    ``ranks`` must be a possible ranking (see :func:`check_ranking`; ``n_db``
    is for a truncated one): integer, in range, no index twice in a column.
    The ground truth must be possible too (:func:`check_ground_truth`): integer
    indices in ``[0, n_db)``, none listed twice in ``ok`` or in ``junk``; and
    ``kappas`` positive integers. Else a ``ValueError`` names the query.

    An index listed both as ``ok`` and ``junk`` is accepted and is junk: it is
    removed from the ranking but still counts in the query's number of
    positives, exactly as Oxford's ``compute_ap.cpp`` skips junk before it looks
    for positives (revisitop instead counts it as a positive *and* shifts later
    positives past it). The benchmarks' own files decide such cases, so they are
    not refused; such a query's AP stays below 1 even for a perfect ranking.
    """
    kappas = _checked_kappas(kappas)
    ranks = check_ranking(ranks, len(_per_query(gnd)), n_db)
    return _compute_map(ranks, check_ground_truth(gnd, ranks.shape[0] if n_db is None else n_db), kappas)


def _checked_kappas(kappas: Sequence[int]) -> tuple[int, ...]:
    if isinstance(kappas, (str, bytes)) or not isinstance(kappas, Iterable):
        raise ValueError(f"kappas must be a list of positive integers (the k of mP@k), got {kappas!r}")
    return tuple(check_integer(k, "each of kappas") for k in kappas)


def _compute_map(ranks: np.ndarray, gnd: Sequence[Mapping[str, np.ndarray]],
                 kappas: Sequence[int]) -> tuple[float, np.ndarray, np.ndarray, dict[int, float]]:
    aps = np.full(len(gnd), np.nan)
    prs = np.full((len(gnd), len(kappas)), np.nan)
    for q, g in enumerate(gnd):
        ok = g["ok"]
        if not ok.size:
            continue
        pos = _positions(ranks[:, q], ok, g["junk"])
        aps[q] = _average_precision(pos, ok.size)
        prs[q] = [_precision_at_k(pos, k) for k in kappas]
    valid = ~np.isnan(aps)
    if not valid.any():
        raise ValueError("no query has any positive: mAP is undefined")
    mean_pr = {int(k): float(prs[valid, i].mean()) for i, k in enumerate(kappas)}
    return float(aps[valid].mean()), aps, prs, mean_pr


def random_ranking_maps(gnd: Sequence[GroundTruth], n_db: int, n_draws: int, *,
                        rng: np.random.Generator | int = 0) -> np.ndarray:
    """The mAP of ``n_draws`` uniformly random rankings of ``n_db`` images for ``gnd``: the chance level.

    Draw ``i`` ranks the database for every query by
    ``np.argsort(rng.random((n_db, n_queries)), axis=0)``, one call per draw in
    order, so a seeded ``rng`` (a Generator, or an int seed) repeats the draws.
    ``n_draws`` must be a positive integer and ``gnd`` possible for ``n_db``
    images (:func:`check_ground_truth`). Returns the ``(n_draws,)`` mAPs.
    """
    n_draws = check_integer(n_draws, "n_draws", hint="the chance level is a mean over at least one random ranking")
    n_db = check_integer(n_db, "n_db", hint="the number of database images")
    checked = check_ground_truth(gnd, n_db)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(check_integer(rng, "rng (a seed)", minimum=0))
    return np.array([_compute_map(np.argsort(rng.random((n_db, len(checked))), axis=0), checked, ())[0]
                     for _ in range(n_draws)])


def compute_map_revisited(ranks: np.ndarray, gnd: Sequence[Mapping[str, Sequence[int]]],
                          kappas: Sequence[int] = (1, 5, 10), *,
                          n_db: int | None = None) -> dict[str, dict[str, float]]:
    """revisitop's evaluation: mAP and mP@k for Easy, Medium and Hard.

    Queries with no positives in a setting are left out of that setting's means
    (as revisitop's ``compute_map`` does). ``ranks`` is checked as in :func:`compute_map`;
    the ``easy``, ``hard`` and ``junk`` lists as by :func:`check_ground_truth`, except
    that a repeat is allowed: :func:`revisited_ground_truth` reads them as sets.
    """
    kappas = _checked_kappas(kappas)
    ranks = check_ranking(ranks, len(_per_query(gnd)), n_db)
    labelled = check_ground_truth(gnd, ranks.shape[0] if n_db is None else n_db, ("easy", "hard", "junk"),
                                  repeats=True)
    out = {}
    for setting in REVISITED_SETTINGS:
        truth = [{k: np.asarray(v, dtype=np.int64) for k, v in g.items()}
                 for g in revisited_ground_truth(labelled, setting)]
        m_ap, _, _, mpr = _compute_map(ranks, truth, kappas)
        out[setting] = {"mAP": m_ap, **{f"mP@{k}": v for k, v in mpr.items()}}
    return out
