"""Property-based tests (hypothesis): the retrieval metrics and the search index on inputs drawn at random.

Metrics: every AP and P@k lies in [0, 1], a perfect ranking scores 1, ``compute_map`` agrees with a literal port
of Oxford's ``compute_ap.cpp`` and revisitop's P@k written here, and impossible input is refused. Search: every
index kind agrees with exact float64 search within the recall that ``fsrlib.evaluation.search`` states, on databases with
exactly tied (duplicated) rows and with norms of 1e-30 and 1e30.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsrlib.evaluation.retrieval import (
    average_precision,
    compute_map,
    positive_positions,
    precision_at_k,
    random_ranking_maps,
)
from fsrlib.evaluation.search import ApproximateConfig, FeatureIndex

# failing examples are printed (with a blob that reproduces them), not saved between runs
FAST = settings(max_examples=60, deadline=None, database=None, print_blob=True)
# the search thresholds are statistical: the same examples on every run, so CI cannot flake
SEARCH = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])
SCALES = (1e-30, 1.0, 1e30)


# references written from the benchmarks' own code (Oxford's compute_ap.cpp is ported once, in test_retrieval)
from test_retrieval import oxford_compute_ap  # noqa: E402


def revisitop_precision(ranked: list[int], pos: set[int], junk: set[int], k: int) -> float:
    """revisitop compute_map's P@k: 1-based junk-free positive ranks p, kq = min(max(p), k), |p <= kq| / kq."""
    kept = [i for i in ranked if i not in junk]
    ranks = [r + 1 for r, i in enumerate(kept) if i in pos]
    if not ranks:
        return 0.0
    kq = min(max(ranks), k)
    return sum(r <= kq for r in ranks) / kq


def reference_map(ranks: np.ndarray, gnd: list[dict], kappas: tuple[int, ...]) -> tuple[float, dict[int, float]]:
    aps, prs = [], []
    for q, g in enumerate(gnd):
        ok, junk = set(g["ok"]), set(g["junk"])
        if ok:
            aps.append(oxford_compute_ap(ranks[:, q].tolist(), ok, junk))
            prs.append([revisitop_precision(ranks[:, q].tolist(), ok, junk, k) for k in kappas])
    return float(np.mean(aps)), dict(zip(kappas, np.mean(prs, axis=0).tolist(), strict=True))


# strategies


@st.composite
def ranked_queries(draw, max_db: int = 30) -> tuple[int, list[np.ndarray], list[dict]]:
    """``(n_db, rankings, gnd)``: 1-4 queries, each a (possibly truncated) ranking and ok/junk sets that may
    overlap (junk wins, as in compute_ap.cpp); at least one query has a positive."""
    n_db = draw(st.integers(1, max_db))
    rows = draw(st.integers(1, n_db))  # rows < n_db: a truncated top-k ranking
    index = st.integers(0, n_db - 1)
    rankings, gnd = [], []
    for _ in range(draw(st.integers(1, 4))):
        rankings.append(np.array(draw(st.permutations(range(n_db)))[:rows]))
        gnd.append({"ok": sorted(draw(st.sets(index, max_size=n_db))), "junk": sorted(draw(st.sets(index)))})
    if not any(g["ok"] for g in gnd):
        gnd[0]["ok"] = [draw(index)]
    return n_db, rankings, gnd


@st.composite
def one_query(draw, max_db: int = 30) -> tuple[np.ndarray, list[int], list[int]]:
    """A full ranking with a non-empty ok set and a junk set disjoint from it."""
    n_db = draw(st.integers(1, max_db))
    ranking = np.array(draw(st.permutations(range(n_db))))
    ok = draw(st.sets(st.integers(0, n_db - 1), min_size=1))
    junk = draw(st.sets(st.integers(0, n_db - 1))) - ok
    return ranking, sorted(ok), sorted(junk)


# metrics


@FAST
@given(one_query(), st.integers(1, 40))
def test_ap_and_precision_lie_in_the_unit_interval(query, k):
    ranking, ok, junk = query
    positions = positive_positions(ranking, ok, junk)
    assert 0.0 <= average_precision(positions, len(ok)) <= 1.0
    assert 0.0 <= precision_at_k(positions, k) <= 1.0


@FAST
@given(one_query(), st.data())
def test_a_perfect_ranking_scores_one_wherever_the_junk_is(query, data):
    ranking, ok, junk = query
    # positives first (in any order), the rest after; each junk image anywhere, as it takes no rank
    place = {int(i): 0 if i in ok else 2 for i in ranking}
    for j in junk:
        place[j] = data.draw(st.sampled_from((0, 1, 2)))
    perfect = np.array(sorted(ranking.tolist(), key=place.__getitem__))
    positions = positive_positions(perfect, ok, junk)
    assert average_precision(positions, len(ok)) == pytest.approx(1.0, abs=1e-12)
    assert all(precision_at_k(positions, k) == 1.0 for k in (1, 5, 10))
    m_ap, _, _, mean_pr = compute_map(perfect[:, None], [{"ok": ok, "junk": junk}])
    assert m_ap == pytest.approx(1.0, abs=1e-12) and set(mean_pr.values()) == {1.0}


@FAST
@given(ranked_queries())
def test_compute_map_agrees_with_the_reference(case):
    n_db, rankings, gnd = case
    ranks = np.stack(rankings, axis=1)
    kappas = (1, 5, 10)
    m_ap, aps, prs, mean_pr = compute_map(ranks, gnd, kappas, n_db=n_db)
    ref_map, ref_pr = reference_map(ranks, gnd, kappas)
    assert m_ap == pytest.approx(ref_map, abs=1e-12)
    assert mean_pr == pytest.approx(ref_pr, abs=1e-12)
    has_positives = np.array([bool(g["ok"]) for g in gnd])
    assert np.all((aps[has_positives] >= 0) & (aps[has_positives] <= 1)) and np.isnan(aps[~has_positives]).all()
    assert np.all((prs[has_positives] >= 0) & (prs[has_positives] <= 1))


def corrupt(values: list[int], n_db: int, how: str) -> list:
    """``values`` made impossible: an index twice, one past the database, a negative one, or floats."""
    return {"repeat": values + values[:1], "past the end": values + [n_db], "negative": values + [-1],
            "float": [float(v) for v in values]}[how]


@FAST
@given(ranked_queries(), st.sampled_from(("repeat", "past the end", "negative", "float")),
       st.sampled_from(("ok", "junk")), st.data())
def test_impossible_ground_truth_is_refused(case, how, key, data):
    n_db, rankings, gnd = case
    q = data.draw(st.sampled_from([i for i, g in enumerate(gnd) if g[key]] or [None]))
    if q is None:  # nothing in that list to corrupt: give it one index
        q, gnd[0][key] = 0, [0]
    gnd[q] = dict(gnd[q], **{key: corrupt(gnd[q][key], n_db, how)})
    with pytest.raises(ValueError, match=rf"the '{key}' list of query {q}"):
        compute_map(np.stack(rankings, axis=1), gnd, n_db=n_db)


@FAST
@given(ranked_queries(), st.sampled_from(("repeat", "past the end", "negative", "float")), st.data())
def test_impossible_rankings_are_refused(case, how, data):
    n_db, rankings, gnd = case
    ranks = np.stack(rankings, axis=1)
    q = data.draw(st.integers(0, ranks.shape[1] - 1))
    if how == "repeat":
        if len(ranks) < 2:
            ranks = np.concatenate([ranks, ranks])  # two rows of a one-image database: an index twice
        ranks[1, q] = ranks[0, q]
    elif how == "float":
        ranks = ranks + 0.5
    else:
        ranks[-1, q] = n_db if how == "past the end" else -1
    with pytest.raises(ValueError, match="ranks|ranking"):
        compute_map(ranks, gnd, n_db=n_db)


@FAST
@given(st.lists(st.integers(0, 50), min_size=1, max_size=10, unique=True).map(sorted),
       st.sampled_from(("repeat", "negative", "unsorted", "float", "too many")))
def test_impossible_positions_are_refused(positions, how):
    n_positives = len(positions) + 5
    if how == "repeat":
        positions = positions + positions[-1:]
    elif how == "negative":
        positions = [-1] + positions
    elif how == "unsorted":
        positions = positions + [positions[-1] - 1]
    elif how == "float":
        positions = [p + 0.5 for p in positions]
    else:
        n_positives = len(positions) - 1  # more positives found than the query has (or n_positives = 0)
    with pytest.raises(ValueError, match="positions|n_positives"):
        average_precision(np.array(positions), n_positives)
    if how != "too many":
        with pytest.raises(ValueError, match="positions must be"):
            precision_at_k(np.array(positions), 5)


@FAST
@given(st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2)))
def test_k_and_n_positives_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(np.array([0]), bad)
    with pytest.raises(ValueError, match="n_positives must be"):
        average_precision(np.array([0]), bad)


@FAST
@given(ranked_queries(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_random_ranking_maps_repeat_their_draws(case, n_draws, seed):
    n_db, _, gnd = case
    maps = random_ranking_maps(gnd, n_db, n_draws, rng=seed)
    rng = np.random.default_rng(seed)
    by_hand = [compute_map(np.argsort(rng.random((n_db, len(gnd))), axis=0), gnd)[0] for _ in range(n_draws)]
    assert maps.shape == (n_draws,) and np.all((maps >= 0) & (maps <= 1))
    np.testing.assert_array_equal(maps, by_hand)


# search


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """faiss trains these tiny indexes in a millisecond on one thread, but its OpenMP threads can spin for a
    quarter of a second per index on busy shared cores; the thread count is restored afterwards."""
    try:
        import faiss
    except ImportError:
        yield
        return
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def tie_aware_recall(true: np.ndarray, found: np.ndarray, tolerance: float = 2e-3) -> float:
    """Share of the found ``(Q, k)`` indices whose exact score reaches the k-th best (less ``tolerance``, the
    float16 storage error), so that any of several exactly tied images counts (the recall fsrlib.evaluation.search states)."""
    k = found.shape[1]
    kth = -np.partition(-true, k - 1, axis=1)[:, k - 1:k]
    return float(np.mean(np.take_along_axis(true, found, 1) >= kth - tolerance))


def unit64(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def database_with_ties(seed: int, n: int, dim: int, clustered: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(database, queries)`` in float64 at unit scale: ``n`` rows drawn with repeats from fewer distinct
    vectors (exact ties), clustered like retrieval features or not; a third of the queries are database rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(int(rng.integers(3, 30)), dim))

    def draw(count: int) -> np.ndarray:
        if not clustered:
            return rng.normal(size=(count, dim))
        return centres[rng.integers(0, len(centres), count)] + 0.5 * rng.normal(size=(count, dim))

    distinct = draw(int(rng.integers(max(1, n // 4), n + 1)))
    database = distinct[rng.integers(0, len(distinct), n)]
    queries = draw(9)
    queries[:3] = database[rng.integers(0, n, 3)]
    return database, queries


def scaled(x: np.ndarray, seed: int, dtype: type) -> np.ndarray:
    """``x`` with each row multiplied by 1e-30, 1 or 1e30 (squares that underflow or overflow float32)."""
    return (x * np.random.default_rng(seed).choice(SCALES, size=(len(x), 1))).astype(dtype)


def check_agrees_with_exact(index: FeatureIndex, database: np.ndarray, queries: np.ndarray, k: int, seed: int,
                            dtype: type, min_recall: float) -> None:
    scores, found = index.search(scaled(queries, seed + 1, dtype), k)
    true = unit64(queries) @ unit64(database).T
    assert found.shape == scores.shape == (len(queries), min(k, len(database)))
    assert all(len(set(row)) == found.shape[1] for row in found)  # each image at most once
    np.testing.assert_allclose(scores, np.take_along_axis(true, found, 1), atol=1e-3)  # scores are exact ones
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    assert tie_aware_recall(true, found) >= min_recall


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
@SEARCH
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), dim=st.integers(1, 16), k=st.integers(1, 320),
       dtype=st.sampled_from((np.float32, np.float64)))
def test_exact_search_is_exact_on_ties_and_extreme_norms(backend, seed, n, dim, k, dtype):
    if backend == "faiss":
        pytest.importorskip("faiss")
    database, queries = database_with_ties(seed, n, dim, clustered=False)
    index = FeatureIndex.build(scaled(database, seed, dtype), backend=backend, chunk_rows=64)
    check_agrees_with_exact(index, database, queries, k, seed, dtype, min_recall=1.0)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
@SEARCH
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(100, 800), dim=st.sampled_from((8, 16, 32)),
       k=st.integers(1, 50))
def test_approximate_kinds_keep_their_recall_on_ties_and_extreme_norms(kind, seed, n, dim, k):
    pytest.importorskip("faiss")
    database, queries = database_with_ties(seed, n, dim, clustered=True)
    index = FeatureIndex.build(scaled(database, seed, np.float32), kind=kind)
    check_agrees_with_exact(index, database, queries, k, seed, np.float32, min_recall=0.95)


@settings(SEARCH, max_examples=4)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(10_000, 12_000), dim=st.sampled_from((32, 64)))
def test_ivfpq_keeps_its_recall_at_k_100_on_ties_and_extreme_norms(seed, n, dim):
    pytest.importorskip("faiss")
    database, queries = database_with_ties(seed, n, dim, clustered=True)
    index = FeatureIndex.build(scaled(database, seed, np.float32), kind="ivfpq")
    assert index.config.codes.endswith("x8")  # the 8-bit codes the stated recall is for
    check_agrees_with_exact(index, database, queries, 100, seed, np.float32, min_recall=0.95)


@SEARCH
@given(seed=st.integers(0, 2**32 - 1), n_copies=st.integers(2, 6), k=st.integers(1, 8))
def test_exact_ties_go_to_the_lower_index(seed, n_copies, k):
    """Copies of one vector score exactly alike: exact numpy search, and the re-ranked kinds when their shortlist
    (``rerank * k``) holds every copy, list the lower indices first (the promise of ``FeatureIndex.search``)."""
    rng = np.random.default_rng(seed)
    database = rng.normal(size=(120, 8))
    copies = np.sort(rng.choice(120, n_copies, replace=False))
    database[copies] = database[copies[0]]
    kinds = ["exact"] + (["ivf", "hnsw"] if _has_faiss() else [])
    for kind in kinds:
        index = FeatureIndex.build(database, kind=kind, config=ApproximateConfig(rerank=8))
        _, found = index.search(database[copies[0]], k)
        assert found[0, :min(k, n_copies)].tolist() == copies[:k].tolist(), kind


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
