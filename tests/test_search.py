import numpy as np
import pytest

from fsrlib.retrieval import l2_normalize, rank_database
from fsrlib.search import FeatureIndex


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(1000, 32)).astype(np.float32), rng.normal(size=(7, 32)).astype(np.float32)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_top_k_agrees_with_exhaustive_float32(data, backend):
    db, q = data
    index = FeatureIndex.build(db, backend=backend, chunk_rows=128)  # several chunks
    scores, idx = index.search(q, k=10)
    exact = l2_normalize(q) @ l2_normalize(db).T
    expected = np.argsort(-exact, axis=1)[:, :10]
    assert idx.shape == scores.shape == (7, 10)
    # float16 storage may swap near-ties: compare the retrieved sets and the scores to 1e-3
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, expected)])
    assert overlap >= 0.95
    np.testing.assert_allclose(scores, np.take_along_axis(exact, idx, 1), atol=2e-3)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_float16_storage_halves_memory(data):
    db, _ = data
    assert FeatureIndex.build(db).nbytes == db.nbytes // 2
    assert FeatureIndex.build(db, backend="faiss").nbytes == db.nbytes // 2


def test_ties_go_to_the_lower_index():
    db = np.array([[1.0, 0], [0, 1], [1, 0], [1, 0]], np.float32)
    _, idx = FeatureIndex.build(db, chunk_rows=2).search(np.array([[1.0, 0]]), k=3)
    assert idx.tolist() == [[0, 2, 3]]


def test_bad_input(data):
    db, q = data
    with pytest.raises(ValueError, match="unknown search backend"):
        FeatureIndex.build(db, backend="annoy")
    with pytest.raises(ValueError, match="query dim"):
        FeatureIndex.build(db).search(q[:, :16], k=3)
    with pytest.raises(ValueError, match="k must be"):
        FeatureIndex.build(db).search(q, k=0)


def test_rank_database_chunked_equals_unchunked(data):
    db, q = data
    np.testing.assert_array_equal(rank_database(q, db, chunk=100), rank_database(q, db, chunk=10_000))
    # a float16 database ranks like its float32 original up to near-ties
    r16 = rank_database(q, db.astype(np.float16))
    assert (r16[:20] == rank_database(q, db)[:20]).mean() > 0.9
