"""Nearest-neighbour search over large databases (distractors: 100k to 1M features).

Features are stored as float16 (half the memory; 0 mAP difference measured on
our benchmarks, ``benchmarks/bench_float16.py``) and scored in float32, so the
peak extra memory is one chunk, not a float32 copy of the database. Scores are
cosine similarities of L2-normalised rows. Index kinds:

- ``"exact"`` with ``backend="numpy"``: chunked matrix products with a running
  top-k (no dependency); with ``backend="faiss"``: ``faiss-cpu``'s exact
  inner-product index over float16 codes (``IndexScalarQuantizer`` ``QT_fp16``).
- ``"ivf"`` (inverted file over 8-bit scalar codes), ``"ivfpq"`` (inverted file
  over product-quantised codes) and ``"hnsw"`` (a navigable small-world graph
  over 8-bit codes), all from faiss (optional: ``pip install faiss-cpu``). They
  propose a shortlist of ``rerank * k`` candidates, which is re-scored exactly
  against the stored float16 vectors: the returned scores are the exact ones,
  and only a true neighbour missing from the shortlist can differ from exact
  search (Jégou et al., "Searching in one billion vectors: re-rank with source
  coding", ICASSP 2011). :class:`ApproximateConfig` holds their parameters.

Two lines for a distractor-sized database (PCA-whitening first makes it smaller
and often more accurate, see :mod:`fsrlib.whitening`)::

    index = FeatureIndex.build(database, kind="ivf")
    scores, indices = index.search(queries, k=100)

For mAP the whole ranking is needed: :func:`fsrlib.retrieval.rank_database`
does that in chunks too.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from .retrieval import l2_normalize, non_finite_rows

KINDS = ("exact", "ivf", "ivfpq", "hnsw")
MIN_APPROXIMATE = 100  # vectors an approximate index needs to train its quantisers on


@dataclass(frozen=True)
class ApproximateConfig:
    """Parameters of the approximate kinds; ``None`` picks a default from the size ``N`` and dimension ``D``.

    ``nlist`` inverted lists (default ``4 sqrt(N)``, at most ``N / 39`` so that
    k-means has 39 points per centroid), of which ``nprobe`` are visited per query
    (default ``max(16, nlist / 10)``; ``benchmarks/RESULTS.md`` shows recall
    against ``nprobe``). ``codes`` is the faiss code of the
    approximate vectors (default ``"SQ8"``, one byte per dimension, for ivf and
    hnsw; ``PQ{D/16}`` for ivfpq); ``"Flat"`` stores them as float32.
    ``rerank * k`` candidates are re-scored exactly (default 2, 8 for PQ codes,
    whose shortlist order is rougher). ``train_rows`` vectors train
    the quantisers (default ``40 nlist``, at least 20,000). A GPU is used for the
    IVF kinds when faiss has one and ``gpu`` is true.
    """

    nlist: int | None = None
    nprobe: int | None = None
    codes: str | None = None
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    rerank: int | None = None
    train_rows: int | None = None
    kmeans_iters: int = 10
    gpu: bool = True
    seed: int = 0

    def resolved(self, kind: str, n: int, dim: int) -> ApproximateConfig:
        """This config with every ``None`` replaced by its default for ``n`` vectors of ``dim`` dimensions."""
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(n)), n // 39))
        codes = self.codes or (_default_pq(dim, n) if kind == "ivfpq" else "SQ8")
        train = self.train_rows or max(40 * nlist, 20_000)
        rerank = self.rerank or (8 if codes.startswith("PQ") else 2)
        return replace(self, nlist=nlist, nprobe=min(nlist, self.nprobe or max(16, nlist // 10)), codes=codes,
                       rerank=rerank, train_rows=min(n, train))


@dataclass
class FeatureIndex:
    """A cosine-similarity index over ``(N, D)`` features: float16 ``vectors`` (L2-normalised rows) plus,
    for the approximate kinds, a faiss index that proposes candidates (see the module docstring)."""

    vectors: np.ndarray
    backend: str = "numpy"
    chunk_rows: int = 65536
    _faiss_index: object | None = None
    kind: str = "exact"
    config: ApproximateConfig = field(default_factory=ApproximateConfig)
    _on_gpu: bool = False

    @classmethod
    def build(cls, database: np.ndarray, backend: str = "numpy", chunk_rows: int = 65536, *, kind: str = "exact",
              config: ApproximateConfig | None = None) -> FeatureIndex:
        """Index ``database`` (N, D), normalised chunk by chunk into float16 storage."""
        database = np.asarray(database)
        if database.ndim != 2:
            raise ValueError(f"expected an (N, D) database, got shape {database.shape}")
        chunks = (database[s:s + chunk_rows] for s in range(0, len(database), chunk_rows))
        return cls.from_chunks(chunks, database.shape, backend, chunk_rows, kind=kind, config=config)

    @classmethod
    def from_chunks(cls, chunks: Iterable[np.ndarray], shape: tuple[int, int], backend: str = "numpy",
                    chunk_rows: int = 65536, *, kind: str = "exact",
                    config: ApproximateConfig | None = None) -> FeatureIndex:
        """Index a database that arrives in ``(n_i, D)`` chunks totalling ``shape`` (never held in float32)."""
        if backend not in ("numpy", "faiss"):
            raise ValueError(f"unknown search backend {backend!r}; choose 'numpy' or 'faiss'")
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
        if kind != "exact" and backend != "numpy":
            raise ValueError(f"backend={backend!r} chooses the engine of kind='exact'; kind={kind!r} always uses "
                             "faiss for its shortlist and numpy for the exact re-ranking: leave backend out")
        n, dim = shape
        if backend == "faiss":
            index = _faiss_fp16_index(dim)
            for _, chunk in _checked(chunks):
                index.add(l2_normalize(chunk))
            if index.ntotal != n:
                raise ValueError(f"chunks held {index.ntotal} rows, expected {n}")
            return cls(np.empty((0, dim), np.float16), backend, chunk_rows, index)
        stored = np.empty((n, dim), dtype=np.float16)
        end = 0
        for start, chunk in _checked(chunks):
            end = start + len(chunk)
            if end <= n:
                stored[start:end] = l2_normalize(chunk)
        if end != n:
            raise ValueError(f"chunks held {end} rows, expected {n}")
        return cls(stored, backend, chunk_rows).with_kind(kind, config)

    def with_kind(self, kind: str, config: ApproximateConfig | None = None) -> FeatureIndex:
        """The same float16 vectors (shared, not copied) under index ``kind``, built with ``config``."""
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
        if self.backend != "numpy":
            raise ValueError("an index with backend='faiss' keeps its vectors inside faiss; build it with "
                             "backend='numpy' to give it another kind")
        if kind == "exact":
            return FeatureIndex(self.vectors, "numpy", self.chunk_rows)
        if len(self.vectors) < MIN_APPROXIMATE:
            raise ValueError(f"kind={kind!r} needs at least {MIN_APPROXIMATE} vectors to train on, got "
                             f"{len(self.vectors)}; exact search over so few is instant: use kind='exact'")
        config = (config or ApproximateConfig()).resolved(kind, *self.vectors.shape)
        index, on_gpu = _build_approximate(self.vectors, kind, config, self.chunk_rows)
        return FeatureIndex(self.vectors, "numpy", self.chunk_rows, index, kind, config, on_gpu)

    @property
    def size(self) -> int:
        return self._faiss_index.ntotal if self.backend == "faiss" else len(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held by what grows with the database: float16 vectors, plus faiss codes, ids and graph links."""
        if self.backend == "faiss":
            return int(self._faiss_index.sa_code_size()) * self.size
        return int(self.vectors.nbytes) + (_faiss_nbytes(self._faiss_index) if self._faiss_index else 0)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(Q, k)``, best first, for ``queries`` (Q, D).

        Ties go to the lower index (numpy backend and approximate kinds). A query
        with a NaN or inf is an error that names its row.
        """
        queries = np.atleast_2d(np.asarray(queries))
        bad = non_finite_rows(queries)
        if bad.size:
            raise ValueError(f"query rows {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} hold NaN or inf "
                             "values, so their neighbours would be arbitrary; recompute or drop those queries")
        q = l2_normalize(queries)
        k = min(k, self.size)
        if k < 1:
            raise ValueError("k must be >= 1 and the index must not be empty")
        if q.shape[1] != self.dim:
            raise ValueError(f"query dim {q.shape[1]} != database dim {self.dim}")
        if self.kind == "exact" and self._faiss_index is not None:
            scores, idx = self._faiss_index.search(np.ascontiguousarray(q), k)
            return scores, idx.astype(np.int64)
        if self.kind == "exact":
            return _numpy_top_k(self.vectors, q, k, self.chunk_rows)
        return self._approximate_search(q, k)

    def _approximate_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        config = self.config.resolved(self.kind, *self.vectors.shape)  # the caller may have replaced a value
        shortlist = min(self.size, config.rerank * k)
        params = _search_parameters(self._faiss_index, self.kind, config, shortlist, self._on_gpu)
        _, candidates = self._faiss_index.search(np.ascontiguousarray(q), shortlist, params=params)
        scores, idx = np.empty((len(q), k), np.float32), np.empty((len(q), k), np.int64)
        short = []
        for row, (query, cand) in enumerate(zip(q, candidates)):
            cand = np.unique(cand[cand >= 0])  # sorted: the stable sort below gives ties to the lower index
            if len(cand) < k:
                short.append(row)
                continue
            # einsum, not BLAS: a one-query product would wake BLAS threads, which stall on busy cores
            sims = np.einsum("cd,d->c", self.vectors[cand].astype(np.float32), query)
            best = np.argsort(-sims, kind="stable")[:k]
            scores[row], idx[row] = sims[best], cand[best]
        if short:  # fewer than k candidates reached (tiny lists): these rows get exact search, not a padded list
            scores[short], idx[short] = _numpy_top_k(self.vectors, q[short], k, self.chunk_rows)
        return scores, idx


def _checked(chunks: Iterable[np.ndarray]) -> Iterable[tuple[int, np.ndarray]]:
    """``(start row, chunk)`` for each chunk, refusing rows with NaN or inf by their database index."""
    start = 0
    for chunk in chunks:
        bad = non_finite_rows(chunk)
        if bad.size:
            rows = (start + bad[:10]).tolist()
            raise ValueError(f"database rows {rows}{' ...' if bad.size > 10 else ''} hold NaN or inf values; "
                             "recompute or drop them before indexing")
        yield start, chunk
        start += len(chunk)


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


def _import_faiss(what: str):
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(f"{what} needs faiss: `pip install faiss-cpu` (or `pip install fsrlib[faiss]`); "
                          "without it use kind='exact' with backend='numpy'") from exc
    return faiss


def _faiss_fp16_index(dim: int):
    faiss = _import_faiss("the 'faiss' backend")
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


def _default_pq(dim: int, n: int) -> str:
    """``PQ{m}x{bits}``: ``m`` the largest divisor of ``dim`` up to ``dim / 16``, 8 bits (fewer for a tiny ``n``)."""
    m = max(d for d in range(1, max(1, dim // 16) + 1) if dim % d == 0)
    bits = min(8, max(1, int(math.log2(max(n, 2) / 39))))
    return f"PQ{m}x{bits}"


def _build_approximate(vectors: np.ndarray, kind: str, config: ApproximateConfig, chunk_rows: int):
    """A trained faiss index of ``kind`` holding every row of ``vectors`` (float16, (N, D)); and whether on a GPU."""
    faiss = _import_faiss(f"kind={kind!r}")
    n, dim = vectors.shape
    spec = f"HNSW{config.hnsw_m},{config.codes}" if kind == "hnsw" else f"IVF{config.nlist},{config.codes}"
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = config.ef_construction
    else:
        index.cp.niter, index.cp.seed = config.kmeans_iters, config.seed  # the factory returns the IVF class itself
        if kind == "ivfpq":
            index.pq.cp.niter, index.pq.cp.seed = config.kmeans_iters, config.seed
            index.do_polysemous_training = False  # only useful for Hamming filtering, which is not used here
    index, on_gpu = _to_gpu(faiss, index, kind) if config.gpu and kind != "hnsw" else (index, False)
    rows = np.sort(np.random.default_rng(config.seed).choice(n, config.train_rows, replace=False))
    index.train(vectors[rows].astype(np.float32))
    for start in range(0, n, chunk_rows):
        index.add(vectors[start:start + chunk_rows].astype(np.float32))
    return index, on_gpu


def _to_gpu(faiss, index, kind: str):
    if not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        return index, False
    try:
        return faiss.index_cpu_to_all_gpus(index), True
    except RuntimeError as exc:  # e.g. a PQ code size the GPU kernels do not support
        warnings.warn(f"faiss could not put the {kind} index on the GPU ({exc}); it stays on the CPU", stacklevel=3)
        return index, False


def _search_parameters(index, kind: str, config: ApproximateConfig, shortlist: int, on_gpu: bool):
    """faiss search parameters for one call (the index itself is not changed), or ``None`` on a GPU."""
    faiss = _import_faiss(f"kind={kind!r}")
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=max(config.ef_search, shortlist))
    if on_gpu:  # GPU indexes take no per-call parameters
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", config.nprobe)
        return None
    return faiss.SearchParametersIVF(nprobe=config.nprobe)


def _faiss_nbytes(index) -> int:
    """Bytes of a CPU faiss IVF or HNSW index that grow with N: codes, ids, coarse centroids, graph links."""
    import faiss

    if hasattr(index, "hnsw"):
        links = index.hnsw.neighbors.size() * 4 + index.hnsw.offsets.size() * 8 + index.hnsw.levels.size() * 4
        return int(index.storage.sa_code_size() * index.ntotal + links)
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:  # a GPU index: count its codes and ids
        return int(index.ntotal * (index.sa_code_size() + 8))
    return int(ivf.ntotal * (ivf.code_size + 8) + ivf.nlist * ivf.d * 4)
