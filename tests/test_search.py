import sys
import warnings

import numpy as np
import pytest

from fsrlib.evaluation.retrieval import l2_normalize, rank_database
from fsrlib.evaluation.search import ApproximateConfig, FeatureIndex
from fsrlib.evaluation.whitening import PCAWhitening, learn_pca_whitening, pca_whiten


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(1000, 32)).astype(np.float32), rng.normal(size=(7, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    """A Gaussian mixture (60 centres, noise as large as the centres' spread / 2): 6,000 vectors and 40 queries."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(60, 32)).astype(np.float32)

    def draw(n):
        return centres[rng.integers(0, 60, n)] + 0.5 * rng.normal(size=(n, 32)).astype(np.float32)

    db, q = draw(6000), draw(40)
    exact = np.argsort(-(l2_normalize(q) @ l2_normalize(db).T), axis=1, kind="stable")
    return db, q, exact


def overlap(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected)]))


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_top_k_agrees_with_exhaustive_float32(data, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    db, q = data
    index = FeatureIndex.build(db, backend=backend, chunk_rows=128)  # several chunks
    scores, idx = index.search(q, k=10)
    exact = l2_normalize(q) @ l2_normalize(db).T
    expected = np.argsort(-exact, axis=1)[:, :10]
    assert idx.shape == scores.shape == (7, 10)
    # float16 storage may swap near-ties: compare the retrieved sets and the scores to 1e-3
    assert overlap(idx, expected) >= 0.95
    np.testing.assert_allclose(scores, np.take_along_axis(exact, idx, 1), atol=2e-3)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_float16_storage_halves_memory(data):
    db, _ = data
    assert FeatureIndex.build(db).nbytes == db.nbytes // 2


def test_faiss_float16_storage_halves_memory(data):
    pytest.importorskip("faiss")
    db, _ = data
    assert FeatureIndex.build(db, backend="faiss").nbytes == db.nbytes // 2


def test_ties_go_to_the_lower_index():
    db = np.array([[1.0, 0], [0, 1], [1, 0], [1, 0]], np.float32)
    _, idx = FeatureIndex.build(db, chunk_rows=2).search(np.array([[1.0, 0]]), k=3)
    assert idx.tolist() == [[0, 2, 3]]


def test_bad_input(data):
    db, q = data
    with pytest.raises(ValueError, match="unknown search backend"):
        FeatureIndex.build(db, backend="annoy")
    with pytest.raises(ValueError, match="unknown index kind"):
        FeatureIndex.build(db, kind="lsh")
    with pytest.raises(ValueError, match="leave backend out"):
        FeatureIndex.build(db, backend="faiss", kind="ivf")
    with pytest.raises(ValueError, match="at least 100 vectors"):
        FeatureIndex.build(db[:50], kind="hnsw")
    with pytest.raises(ValueError, match="query dim"):
        FeatureIndex.build(db).search(q[:, :16], k=3)
    with pytest.raises(ValueError, match="k must be"):
        FeatureIndex.build(db).search(q, k=0)


def test_nan_query_is_an_error_naming_its_rows(data):
    db, q = data
    q = q.copy()
    q[2, 5] = np.nan
    q[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"query rows \[2, 4\]"):
        FeatureIndex.build(db).search(q, k=3)


def test_nan_database_row_is_an_error_naming_it(data):
    db, _ = data
    db = db.copy()
    db[700, 3] = np.nan
    with pytest.raises(ValueError, match=r"database rows \[700\]"):
        FeatureIndex.build(db, chunk_rows=256)  # found in the third chunk, reported by its database index


def test_missing_faiss_is_a_clear_error(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    db, _ = data
    for kind in ("ivf", "ivfpq", "hnsw"):
        with pytest.raises(ImportError, match="pip install faiss-cpu"):
            FeatureIndex.build(db, kind=kind)
    FeatureIndex.build(db).search(db[:1], k=1)  # the exact numpy path needs no faiss


def test_default_config_follows_the_database_size():
    big = ApproximateConfig().resolved("ivf", 1_000_000, 4096)
    assert (big.nlist, big.nprobe, big.codes, big.train_rows, big.rerank) == (4000, 400, "SQ8", 160_000, 2)
    pq = ApproximateConfig().resolved("ivfpq", 1_000_000, 4096)
    assert (pq.codes, pq.rerank) == ("PQ256x8", 8)  # 16 dims per byte
    assert ApproximateConfig().resolved("ivfpq", 100_000, 1280).codes == "PQ80x8"
    small = ApproximateConfig().resolved("ivf", 3900, 32)
    assert small.nlist == 100  # 4 sqrt(N) = 250 would leave k-means fewer than 39 points per list
    assert small.nprobe == 16 and small.train_rows == 3900
    assert ApproximateConfig(nlist=8, nprobe=64).resolved("ivf", 3900, 32).nprobe == 8


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_approximate_recall_and_exact_scores(clustered, kind):
    pytest.importorskip("faiss")
    db, q, exact = clustered
    index = FeatureIndex.build(db, kind=kind)
    if kind != "hnsw":
        assert index.config.nprobe < index.config.nlist / 4  # it does skip most of the database
    scores, idx = index.search(q, k=50)
    assert idx.shape == scores.shape == (40, 50)
    assert overlap(idx, exact[:, :50]) >= 0.95
    # re-ranked: the scores are exactly those of the stored float16 vectors, best first, ties to the lower index
    stored = index.vectors[idx].astype(np.float32)  # (Q, k, D)
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", stored, l2_normalize(q)), rtol=0, atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert all(len(set(row)) == 50 for row in idx)


def test_ivf_without_reranking_room_still_returns_k_true_results(clustered):
    """Lists too short for k candidates: those queries fall back to exact search instead of padding."""
    pytest.importorskip("faiss")
    db, q, _ = clustered
    index = FeatureIndex.build(db, kind="ivf", config=ApproximateConfig(nlist=100, nprobe=1, rerank=1))
    exact_scores, exact_idx = index.with_kind("exact").search(q, k=500)
    scores, idx = index.search(q, k=500)  # one list holds about 60 vectors
    np.testing.assert_array_equal(idx, exact_idx)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-6)


def test_with_kind_shares_the_float16_store_and_counts_its_bytes(clustered):
    pytest.importorskip("faiss")
    db, _, _ = clustered
    exact = FeatureIndex.build(db)
    ivf = exact.with_kind("ivf", ApproximateConfig(nlist=50))
    assert ivf.vectors is exact.vectors
    n, d = db.shape
    # float16 store + one byte per dimension (SQ8) + an int64 id per vector + 50 float32 centroids
    assert ivf.nbytes == n * d * 2 + n * (d + 8) + 50 * d * 4


def test_rank_database_chunked_equals_unchunked(data):
    db, q = data
    np.testing.assert_array_equal(rank_database(q, db, chunk=100), rank_database(q, db, chunk=10_000))
    # a float16 database ranks like its float32 original up to near-ties
    r16 = rank_database(q, db.astype(np.float16))
    assert (r16[:20] == rank_database(q, db)[:20]).mean() > 0.9


# PCA-whitening


def test_whitening_by_hand():
    """Unit vectors: 4 on the x axis (+-1 twice), 2 on the y axis: mean 0, covariance diag(2/3, 1/3)."""
    x = np.array([[1, 0], [-1, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)
    w = learn_pca_whitening(x, dim=2)
    np.testing.assert_allclose(w.eigenvalues, [2 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(np.abs(w.projection), np.diag([np.sqrt(1.5), np.sqrt(3.0)]), atol=1e-6)
    np.testing.assert_allclose(np.abs(w(np.array([[3.0, 0.0]]))), [[1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("power", [1.0, 0.5, 0.0])
def test_whitening_shape_and_orthogonality(clustered, power):
    db, _, _ = clustered
    w = learn_pca_whitening(db, dim=16, power=power)
    out = w(db)
    assert out.shape == (6000, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(w.eigenvalues) <= 0)
    # projection = U diag(lambda^(-power/2)) with orthonormal U
    u = w.projection * w.eigenvalues ** (power / 2)
    np.testing.assert_allclose(u.T @ u, np.eye(16), atol=1e-4)
    if power == 1.0:  # full whitening: the learning set gets unit variance in every kept direction
        centred = (l2_normalize(db) - w.mean) @ w.projection
        np.testing.assert_allclose(np.cov(centred.T, bias=True), np.eye(16), atol=1e-3)


def test_shrinkage_evens_out_the_scaling(clustered):
    db, _, _ = clustered
    scales = [np.linalg.norm(learn_pca_whitening(db, 16, shrinkage=s).projection, axis=0) for s in (0.0, 0.5, 1.0)]
    spread = [s.max() / s.min() for s in scales]
    assert spread[0] > spread[1] > spread[2] == pytest.approx(1.0, abs=1e-4)  # s = 1: PCA with one common scale


def test_whitening_save_load_round_trip(clustered, tmp_path):
    db, q, _ = clustered
    w = learn_pca_whitening(db, dim=8, power=0.5, shrinkage=0.2)
    w.save(tmp_path / "white.npz")
    back = PCAWhitening.load(tmp_path / "white.npz")
    for name in ("mean", "projection", "eigenvalues"):
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name))
    assert (back.power, back.shrinkage) == (0.5, 0.2)
    np.testing.assert_array_equal(back(q), pca_whiten(q, w))
    assert not list(tmp_path.glob("*.tmp"))


def test_whitening_from_too_few_features_warns(clustered):
    db, _, _ = clustered
    with pytest.warns(UserWarning, match="shrinkage=0.5"):
        learn_pca_whitening(db[:40], dim=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn_pca_whitening(db[:40], dim=16, shrinkage=0.5)
        learn_pca_whitening(db[:48], dim=16)


def test_whitening_bad_input(clustered):
    db, _, _ = clustered
    with pytest.raises(ValueError, match="N - 1"):
        learn_pca_whitening(db[:10], dim=10)
    with pytest.raises(ValueError, match="shrinkage"):
        learn_pca_whitening(db, dim=4, shrinkage=2.0)
    bad = db.copy()
    bad[11, 0] = np.nan
    with pytest.raises(ValueError, match=r"rows \[11\]"):
        learn_pca_whitening(bad, dim=4)
    with pytest.raises(ValueError, match="32-d"):
        learn_pca_whitening(db, dim=4)(db[:, :16])


# issue 28: k, queries and index settings are checked before faiss sees them


@pytest.mark.parametrize("k, message", [(2.5, "k must be an integer"), ("3", "k must be an integer"),
                                        (True, "k must be an integer"), (0, "k must be >= 1"),
                                        (-1, "k must be >= 1")])
def test_k_must_be_a_positive_integer(data, k, message):
    db, q = data
    with pytest.raises(ValueError, match=message):
        FeatureIndex.build(db).search(q, k=k)


def test_k_above_the_database_size_returns_the_whole_database_ranked(data):
    db, q = data
    scores, idx = FeatureIndex.build(db[:5]).search(q, k=50)
    assert idx.shape == scores.shape == (7, 5)
    assert all(sorted(row) == list(range(5)) for row in idx)


def test_queries_and_database_must_be_real_arrays_of_the_right_shape(data):
    db, q = data
    index = FeatureIndex.build(db)
    with pytest.raises(ValueError, match=r"query dim 32 != database dim 32: .*got shape \(1, 7, 32\)"):
        index.search(q[None], k=3)
    with pytest.raises(ValueError, match="queries must hold real numbers"):
        index.search(np.array([["a"] * 32]), k=3)
    assert index.search(q[0], k=3)[1].shape == (1, 3)  # one (D,) query
    with pytest.raises(ValueError, match="the index is empty"):
        FeatureIndex.build(np.empty((0, 32), np.float32)).search(q, k=3)
    with pytest.raises(ValueError, match="database must hold real numbers"):
        FeatureIndex.build(db.astype(complex))
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        FeatureIndex.build(db, chunk_rows=0)
    with pytest.raises(ValueError, match=r"shape must be \(N, D\)"):
        FeatureIndex.from_chunks([db], (1000,))
    with pytest.raises(ValueError, match=r"chunk of database rows from 500 has shape \(500, 16\), expected \(n, 32\)"):
        FeatureIndex.from_chunks([db[:500], db[500:, :16]], db.shape)


@pytest.mark.parametrize("settings, message", [
    ({"nlist": 2.5}, "nlist must be an integer"),
    ({"nprobe": 0}, "nprobe must be >= 1"),
    ({"rerank": 0.5}, "rerank must be an integer"),
    ({"hnsw_m": 1}, "hnsw_m must be >= 2"),  # faiss crashes the interpreter on 1 and 0
    ({"ef_search": 0}, "ef_search must be >= 1"),
    ({"kmeans_iters": None}, "kmeans_iters must be an integer"),
    ({"seed": 2**40}, "seed must be below 2"),
    ({"gpu": "yes"}, "gpu must be True or False"),
    ({"codes": "SQ7"}, "codes='SQ7' is not a code this index knows"),
    ({"codes": 8}, "codes=8 is not a code"),
])
def test_config_values_are_checked_when_the_config_is_made(settings, message):
    with pytest.raises(ValueError, match=message):
        ApproximateConfig(**settings)


@pytest.mark.parametrize("kind, settings, message", [
    ("ivfpq", {"codes": "SQ8"}, "kind='ivfpq' needs PQ codes"),
    ("ivfpq", {"codes": "PQ5"}, "PQ's m=5 must divide the dimension D=32"),
    ("ivfpq", {"codes": "PQ4x12"}, "at least 2\\*\\*bits training vectors, has 1000"),
    ("ivfpq", {"codes": "PQ4x17"}, "1 to 16 bits"),
    ("ivf", {"nlist": 5000}, "nlist=5000 inverted lists need at least as many training vectors"),
    ("ivf", {"train_rows": 5}, "train_rows is 5"),
])
def test_config_values_that_cannot_fit_the_database_are_refused(data, kind, settings, message):
    db, _ = data
    with pytest.raises(ValueError, match=message):
        FeatureIndex.build(db, kind=kind, config=ApproximateConfig(**settings))


def test_config_must_be_an_approximate_config(data):
    db, _ = data
    with pytest.raises(ValueError, match="config must be an ApproximateConfig"):
        FeatureIndex.build(db, kind="ivf", config={"nlist": 8})


def test_faiss_errors_say_which_setting_to_change(data, monkeypatch):
    faiss = pytest.importorskip("faiss")
    from fsrlib.evaluation.search import IndexConfigError

    db, q = data

    def refuse(*args, **kwargs):
        raise RuntimeError("Error in faiss::index_factory: could not parse")

    monkeypatch.setattr(faiss, "index_factory", refuse)
    with pytest.raises(IndexConfigError, match=r"faiss could not make the index 'IVF\d+,SQ8': .* change codes"):
        FeatureIndex.build(db, kind="ivf")
    monkeypatch.undo()
    index = FeatureIndex.build(db, kind="ivf")
    monkeypatch.setattr(index._faiss_index, "search", refuse)
    with pytest.raises(IndexConfigError, match=r"search the ivf index .* change k, rerank, nprobe"):
        index.search(q, k=3)


def test_ties_at_the_k_th_place_go_to_the_lower_index():
    # argpartition alone kept an arbitrary one of the copies tied at the cut
    db = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32)
    copies = [22, 26, 140, 299]
    db[copies] = db[22]
    for chunk_rows in (300, 64):
        index = FeatureIndex.build(db, chunk_rows=chunk_rows)
        for k in (1, 2, 3):
            assert index.search(db[22], k=k)[1][0].tolist() == copies[:k]
