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

What each kind promises, as recall against exact search: the share of the
returned ``k`` whose exact cosine reaches the ``k``-th best one (less 2e-3 for
float16 storage, so any of several exactly tied images counts). Measured at the
defaults; ``tests/test_properties.py`` checks them on databases with duplicated
rows and with norms from 1e-30 to 1e30, which change nothing:

- ``"exact"`` (both backends): 1. Scores are those of the float16 vectors,
  within 1e-3 of the float32 cosines (measured: 3e-4).
- ``"ivf"``: at least 0.95. Recall@100 0.96 at 100k vectors (nprobe 126,
  ``benchmarks/RESULTS.md``); at least 0.98 on 100 to 6,000 clustered vectors
  for ``k < 50`` (1 up to 624 vectors, where ``nprobe`` covers every list). On
  unstructured Gaussian vectors, whose neighbours spread over many lists, it
  fell to 0.87 at 1,000 vectors.
- ``"hnsw"``: at least 0.95: recall@100 0.98 at 100k, 1 on the small sets above.
- ``"ivfpq"``: at least 0.95 for ``k >= 100`` with its 8-bit codes (``N >=
  9,984``): 0.96 at 100k, 1 on 10,000 to 12,000 clustered vectors. Not for
  small ``k``: its ``8 k`` candidates, ranked by codes of 16 dimensions per
  byte, then miss neighbours (``k < 50`` on those vectors: mean 0.91, single
  queries down to 0.35), nor for small databases, whose default codes have
  fewer bits. Raise ``rerank`` there, or use ``"ivf"``.

Two lines for a distractor-sized database (PCA-whitening first makes it smaller
and often more accurate, see :mod:`fsrlib.evaluation.whitening`)::

    index = FeatureIndex.build(database, kind="ivf")
    scores, indices = index.search(queries, k=100)

For mAP the whole ranking is needed: :func:`fsrlib.evaluation.retrieval.rank_database`
does that in chunks too.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

import numpy as np

from fsrlib.evaluation.retrieval import check_integer, l2_normalize, non_finite_rows

KINDS = ("exact", "ivf", "ivfpq", "hnsw")
MIN_APPROXIMATE = 100  # vectors an approximate index needs to train its quantisers on
#: the faiss codes an approximate index may store: scalar quantisers, float32, or PQ{m}[x{bits}]
CODES = re.compile(r"SQ4|SQ6|SQ8|SQfp16|Flat|PQ(?P<m>\d+)(?:x(?P<bits>\d+))?")


class IndexConfigError(ValueError):
    """faiss refused to build or search an index with the given settings (the message says which to change)."""


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

    Every count is a positive integer (``hnsw_m >= 2``), ``codes`` one of
    ``SQ4``, ``SQ6``, ``SQ8``, ``SQfp16``, ``Flat`` or ``PQ{m}`` / ``PQ{m}x{bits}``
    (``m`` dividing ``D``, 1 to 16 bits), ``seed`` in ``[0, 2**31)``; anything else is a
    ``ValueError`` naming the field, when the config is made or, for what depends
    on ``N`` and ``D`` (PQ's ``m``, ``nlist`` against the training rows), resolved.
    An ``nprobe`` above ``nlist`` is lowered to ``nlist`` (every list is visited).
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

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "gpu":
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(f"gpu must be True or False, got {value!r}")
            elif f.name == "codes":
                if value is not None and (not isinstance(value, str) or not CODES.fullmatch(value)):
                    raise ValueError(f"codes={value!r} is not a code this index knows: choose 'SQ8' (default), "
                                     "'SQ4', 'SQ6', 'SQfp16', 'Flat', or 'PQ{m}' / 'PQ{m}x{bits}' (e.g. 'PQ16x8')")
            elif value is not None or f.default is not None:
                minimum = {"hnsw_m": 2, "seed": 0}.get(f.name, 1)
                default = "" if f.default is None else f" ({f.default})"
                check_integer(value, f.name, minimum=minimum, hint=f"leave it out for the default{default}")
        if self.seed >= 2**31:
            raise ValueError(f"seed must be below 2**31 (faiss stores it as an int), got {self.seed}")

    def resolved(self, kind: str, n: int, dim: int) -> ApproximateConfig:
        """This config with every ``None`` replaced by its default for ``n`` vectors of ``dim`` dimensions.

        Raises a ``ValueError`` for settings no index of ``kind`` over ``n`` x ``dim`` can have (see the class).
        """
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(n)), n // 39))
        codes = self.codes or (_default_pq(dim, n) if kind == "ivfpq" else "SQ8")
        train = self.train_rows or max(40 * nlist, 20_000)
        rerank = self.rerank or (8 if codes.startswith("PQ") else 2)
        config = replace(self, nlist=nlist, nprobe=min(nlist, self.nprobe or max(16, nlist // 10)), codes=codes,
                         rerank=rerank, train_rows=min(n, train))
        config.check_fits(kind, dim)
        return config

    def check_fits(self, kind: str, dim: int) -> None:
        """A ``ValueError`` naming the setting if this resolved config cannot build a ``kind`` index of ``dim``."""
        pq = CODES.fullmatch(self.codes)
        if kind == "ivfpq" and not pq["m"]:
            raise ValueError(f"kind='ivfpq' needs PQ codes, got codes={self.codes!r}: pass codes='PQ{{m}}' or "
                             "leave it out, or use kind='ivf' for scalar-quantised codes")
        if kind != "hnsw" and self.nlist > self.train_rows:
            raise ValueError(f"nlist={self.nlist} inverted lists need at least as many training vectors, but "
                             f"train_rows is {self.train_rows} (at most the database size): lower nlist "
                             "(about N / 39) or leave it out")
        if pq["m"]:
            m, bits = int(pq["m"]), int(pq["bits"] or 8)
            if m < 1 or dim % m:
                raise ValueError(f"codes={self.codes!r}: PQ's m={m} must divide the dimension D={dim}")
            if not 1 <= bits <= 16 or 1 << bits > self.train_rows:
                raise ValueError(f"codes={self.codes!r}: PQ needs 1 to 16 bits and at least 2**bits training "
                                 f"vectors, has {self.train_rows}; use fewer bits (e.g. 'PQ{m}x4')")


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
        database = _real_array(database, "database")
        if database.ndim != 2:
            raise ValueError(f"expected an (N, D) database, got shape {database.shape}")
        chunk_rows = check_integer(chunk_rows, "chunk_rows")
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
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise ValueError(f"shape must be (N, D), got {shape!r}")
        n, dim = check_integer(shape[0], "N, shape[0]", minimum=0), check_integer(shape[1], "D, shape[1]")
        chunk_rows = check_integer(chunk_rows, "chunk_rows")
        if backend == "faiss":
            index = _faiss_fp16_index(dim)
            for _, chunk in _checked(chunks, dim):
                with _faiss_errors("add vectors to the exact index", "the chunks (no setting is involved)"):
                    index.add(l2_normalize(chunk))
            if index.ntotal != n:
                raise ValueError(f"chunks held {index.ntotal} rows, expected {n}")
            return cls(np.empty((0, dim), np.float16), backend, chunk_rows, index)
        stored = np.empty((n, dim), dtype=np.float16)
        end = 0
        for start, chunk in _checked(chunks, dim):
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
        if config is not None and not isinstance(config, ApproximateConfig):
            raise ValueError(f"config must be an ApproximateConfig (or None for the defaults), got "
                             f"{type(config).__name__}")
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
        """``(scores, indices)``, each ``(Q, min(k, N))``, best first, for ``queries`` (Q, D) or one query (D,).

        ``k`` is a positive integer; a ``k`` above the database size ``N`` returns
        all ``N`` images, ranked (no padding). Exact ties go to the lower index
        (numpy backend; the approximate kinds among the ``rerank * k`` candidates
        they re-score). A query with a NaN or inf, a query of another dimension,
        or an empty index is an error that says which.
        """
        k = check_integer(k, "k", hint="the number of neighbours to return per query")
        queries = np.atleast_2d(_real_array(queries, "queries"))
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"query dim {queries.shape[-1]} != database dim {self.dim}: queries must be "
                             f"(Q, {self.dim}) or ({self.dim},), got shape {queries.shape}")
        if self.size == 0:
            raise ValueError("the index is empty: build it from a database with at least one row")
        bad = non_finite_rows(queries)
        if bad.size:
            raise ValueError(f"query rows {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} hold NaN or inf "
                             "values, so their neighbours would be arbitrary; recompute or drop those queries")
        q = l2_normalize(queries)
        k = min(k, self.size)
        if self.kind == "exact" and self._faiss_index is not None:
            with _faiss_errors(f"search the exact index for k={k}", "k"):
                scores, idx = self._faiss_index.search(np.ascontiguousarray(q), k)
            return scores, idx.astype(np.int64)
        if self.kind == "exact":
            return _numpy_top_k(self.vectors, q, k, self.chunk_rows)
        return self._approximate_search(q, k)

    def _approximate_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        config = self.config.resolved(self.kind, *self.vectors.shape)  # the caller may have replaced a value
        shortlist = min(self.size, config.rerank * k)
        with _faiss_errors(f"search the {self.kind} index for a shortlist of {shortlist} (rerank * k)",
                           "k, rerank, nprobe or ef_search (a GPU index takes k and nprobe up to 2048)"):
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


def _real_array(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as an array of real numbers (integers or floats); else a ``ValueError``."""
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{what} must hold real numbers (float or integer features), got dtype {x.dtype}")
    return x


def _checked(chunks: Iterable[np.ndarray], dim: int) -> Iterable[tuple[int, np.ndarray]]:
    """``(start row, chunk)`` for each ``(n_i, dim)`` chunk, refusing rows with NaN or inf by their database index."""
    start = 0
    for chunk in chunks:
        chunk = _real_array(chunk, f"the chunk of database rows from {start}")
        if chunk.ndim != 2 or chunk.shape[1] != dim:
            raise ValueError(f"the chunk of database rows from {start} has shape {chunk.shape}, expected (n, {dim})")
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
            keep = _best_k(cand_s, cand_i, k)
            cand_s, cand_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
        best_s, best_i = cand_s, cand_i
    order = np.lexsort((best_i, -best_s), axis=1)  # by score, then index
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def _best_k(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` best of each row of ``(Q, m)`` ``scores``, an exact tie going to the lower id.

    ``argpartition`` keeps an arbitrary one of several scores tied at the k-th
    place; only the rows where it left such a tie out are sorted in full.
    """
    keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kept = np.take_along_axis(scores, keep, 1)
    kth = kept.min(axis=1, keepdims=True)
    torn = np.flatnonzero((scores == kth).sum(axis=1) > (kept == kth).sum(axis=1))
    if torn.size:
        keep[torn] = np.lexsort((ids[torn], -scores[torn]), axis=1)[:, :k]
    return keep


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
    with _faiss_errors(f"make the index {spec!r}", "codes, hnsw_m or nlist"):
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = config.ef_construction
    else:
        index.cp.niter, index.cp.seed = config.kmeans_iters, config.seed  # the factory returns the IVF class itself
        if hasattr(index, "pq"):  # PQ codes
            index.pq.cp.niter, index.pq.cp.seed = config.kmeans_iters, config.seed
            index.do_polysemous_training = False  # only useful for Hamming filtering, which is not used here
    index, on_gpu = _to_gpu(faiss, index, kind) if config.gpu and kind != "hnsw" else (index, False)
    rows = np.sort(np.random.default_rng(config.seed).choice(n, config.train_rows, replace=False))
    with _faiss_errors(f"train and fill the {spec!r} index on {config.train_rows} of {n} vectors",
                       "nlist, train_rows or the PQ bits of codes"):
        index.train(vectors[rows].astype(np.float32))
        for start in range(0, n, chunk_rows):
            index.add(vectors[start:start + chunk_rows].astype(np.float32))
    return index, on_gpu


@contextmanager
def _faiss_errors(doing: str, change: str) -> Iterator[None]:
    """Re-raise a C++ error of faiss (a ``RuntimeError``) as :class:`IndexConfigError` saying what to change."""
    try:
        yield
    except RuntimeError as exc:
        raise IndexConfigError(f"faiss could not {doing}: {str(exc).strip()} -- change {change}") from exc


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
