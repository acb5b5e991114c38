"""Nearest-neighbour search over large databases (distractors: 100k to 1M features).

Features are stored as float16 (half the memory; 0 mAP difference measured on
our benchmarks, ``benchmarks/bench_float16.py``) and scored in float32 chunks,
so the peak extra memory is one chunk, not a float32 copy of the database.
Two exact backends, both returning cosine similarities of L2-normalised rows:

- ``"numpy"``: chunked matrix products with a running top-k (no dependency).
- ``"faiss"``: ``faiss-cpu``'s exact inner-product index over float16 codes
  (``IndexScalarQuantizer`` with ``QT_fp16``), faster per query on large sets.

For mAP the whole ranking is needed: :func:`fsrlib.retrieval.rank_database`
does that in chunks too.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .retrieval import l2_normalize


@dataclass
class FeatureIndex:
    """An exact cosine-similarity index over ``(N, D)`` features stored as float16."""

    vectors: np.ndarray
    backend: str = "numpy"
    chunk_rows: int = 65536
    _faiss_index: object | None = None

    @classmethod
    def build(cls, database: np.ndarray, backend: str = "numpy", chunk_rows: int = 65536) -> FeatureIndex:
        """Index ``database`` (N, D), normalised chunk by chunk into float16 storage."""
        database = np.asarray(database)
        if database.ndim != 2:
            raise ValueError(f"expected an (N, D) database, got shape {database.shape}")
        chunks = (database[s:s + chunk_rows] for s in range(0, len(database), chunk_rows))
        return cls.from_chunks(chunks, database.shape, backend, chunk_rows)

    @classmethod
    def from_chunks(cls, chunks: Iterable[np.ndarray], shape: tuple[int, int], backend: str = "numpy",
                    chunk_rows: int = 65536) -> FeatureIndex:
        """Index a database that arrives in ``(n_i, D)`` chunks totalling ``shape`` (never held in float32)."""
        if backend not in ("numpy", "faiss"):
            raise ValueError(f"unknown search backend {backend!r}; choose 'numpy' or 'faiss'")
        n, dim = shape
        if backend == "faiss":
            index = _faiss_fp16_index(dim)
            for chunk in chunks:
                index.add(l2_normalize(chunk))
            if index.ntotal != n:
                raise ValueError(f"chunks held {index.ntotal} rows, expected {n}")
            return cls(np.empty((0, dim), np.float16), backend, chunk_rows, index)
        stored = np.empty((n, dim), dtype=np.float16)
        start = 0
        for chunk in chunks:
            stored[start:start + len(chunk)] = l2_normalize(chunk)
            start += len(chunk)
        if start != n:
            raise ValueError(f"chunks held {start} rows, expected {n}")
        return cls(stored, backend, chunk_rows)

    @property
    def size(self) -> int:
        return self._faiss_index.ntotal if self._faiss_index is not None else len(self.vectors)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored vectors (what grows with the database)."""
        if self._faiss_index is not None:
            return int(self._faiss_index.sa_code_size()) * self.size
        return int(self.vectors.nbytes)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(Q, k)``, best first; ties go to the lower index (numpy backend)."""
        q = l2_normalize(np.atleast_2d(queries))
        k = min(k, self.size)
        if k < 1:
            raise ValueError("k must be >= 1 and the index must not be empty")
        if q.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"query dim {q.shape[1]} != database dim {self.vectors.shape[1]}")
        if self._faiss_index is not None:
            scores, idx = self._faiss_index.search(np.ascontiguousarray(q), k)
            return scores, idx.astype(np.int64)
        return _numpy_top_k(self.vectors, q, k, self.chunk_rows)


def _numpy_top_k(vectors: np.ndarray, q: np.ndarray, k: int, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for start in range(0, len(vectors), chunk_rows):
        sims = q @ vectors[start:start + chunk_rows].astype(np.float32).T  # (Q, chunk)
        cand_s = np.concatenate([best_s, sims], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + sims.shape[1]), sims.shape)], 1)
        if cand_s.shape[1] > k:
            keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
            cand_s, cand_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
        best_s, best_i = cand_s, cand_i
    order = np.lexsort((best_i, -best_s), axis=1)  # by score, then index
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def _faiss_fp16_index(dim: int):
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the 'faiss' backend needs faiss-cpu: `pip install faiss-cpu` (or use backend='numpy')") \
            from exc
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
