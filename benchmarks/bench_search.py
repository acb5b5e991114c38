"""Search at the scale of distractors: latency, recall@100, memory and build time of each index kind.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--dims 1280 4096]
        [--kinds faiss-exact ivf ivfpq hnsw white-ivf white-hnsw] [--white-dim 256] [--real]
        [--out benchmarks/results/search.json]

Each (size, dim) runs in its own process, so its peak memory is its own. Vectors are structured, not random
Gaussians (which have no neighbourhood structure and would understate what IVF finds): every vector is a real
feature of the shared Holidays or Paris photos (efficientnet_lite0, 1280-d), mixed with a second one at a random
weight in [0, 1], plus Gaussian noise with the real features' own covariance and a small isotropic part (see
``structured_chunks``); the 4096-d sets are the same vectors lifted by a fixed random ReLU layer (1280 -> 4096).
Queries are 100 further vectors of the same kind. The database lives once, as float16; every approximate index
shares it for its exact re-ranking.

Reported per index and search setting: build time, bytes per vector (float16 store + faiss codes, ids, links),
latency of one query (median over 20 queries, one call each, one thread; wall clock, and the thread's CPU time,
which a busy machine inflates less) and of a batch of 100 (per query, all cores), recall@100 against exact search
over the same vectors. ``white-*`` rows are PCA-whitened to ``--white-dim`` dimensions (learned on the database;
recall is against exact search in the whitened space, and the build includes learning and applying the whitening).

``--real`` measures mAP on the real Holidays and Paris subsets (features cached by fsrlib), alone and with 100k
structured distractors made from the other set's features: exact, each approximate kind (top-100 ranking) and
PCA-whitening (dims, power, learned on what); with distractors, each ranking's paired bootstrap difference from
exact search over the queries (95% interval, verdict).
"""
from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fsrlib.evaluation.retrieval import average_precision, positive_positions, rank_database
from fsrlib.evaluation.search import FeatureIndex
from fsrlib.evaluation.stats import compare
from fsrlib.evaluation.whitening import learn_pca_whitening

CHUNK = 32768
N_QUERIES = 100
K = 100
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def real_features(name: str) -> tuple[np.ndarray, np.ndarray, list]:
    """``(db, queries, gnd)`` of the shared ``holidays`` or ``paris6k`` subset (1280-d, cached after the first run)."""
    from fsrlib.data.datasets import load_dataset
    from fsrlib.features.extract import extract_features

    folder = {"holidays": "holidays-subset", "paris6k": "paris6k-subset"}[name]
    ds = load_dataset(name, SHARED / folder)
    db, q = (extract_features(ds, split, progress=False)[1.0] for split in ("db", "query"))
    return db, q, list(ds.gnd)


def structured_chunks(base: np.ndarray, n: int, dim: int, seed: int, spread: float = 1.0, noise: float = 0.005):
    """``n`` vectors in chunks: ``normalise(f_i + w f_j) + spread * z @ S + noise * g`` for real features ``f``
    (L2-normalised rows of ``base``), ``w ~ U(0, 1)``, ``S`` the square root of the real features' covariance (so
    ``z @ S`` varies as they do, in their principal directions), ``z`` and ``g`` standard Gaussians; lifted to
    ``dim`` by ``relu(x @ W)`` (a fixed random ``W``) when ``dim`` differs from the features'."""
    rng = np.random.default_rng(seed)
    base = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    _, sv, vt = np.linalg.svd(base - base.mean(axis=0), full_matrices=False)
    root_cov = (sv[:, None] * vt / np.sqrt(len(base))).astype(np.float32)  # (r, D), root_cov.T @ root_cov = cov
    lift = np.random.default_rng(12345).standard_normal((base.shape[1], dim), dtype=np.float32) \
        if dim != base.shape[1] else None
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        weight = rng.uniform(0, 1, (m, 1)).astype(np.float32)
        mix = base[rng.integers(0, len(base), m)] + weight * base[rng.integers(0, len(base), m)]
        x = mix / np.linalg.norm(mix, axis=1, keepdims=True)
        x += spread * rng.standard_normal((m, len(root_cov)), dtype=np.float32) @ root_cov
        x += noise * rng.standard_normal(x.shape, dtype=np.float32)
        yield x if lift is None else np.maximum(x @ lift, 0)


def timed(fn, repeat: int = 1, clock=time.perf_counter) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls, by ``clock``."""
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times))


@contextmanager
def single_thread():
    """One BLAS and one faiss thread: a single query's latency, without thread start-up stalls on busy cores."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        faiss.omp_set_num_threads(threads)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)]))


def measure(search, nbytes: int, size: int, queries: np.ndarray, truth: np.ndarray, build_s: float,
            name: str) -> dict:
    """Latency, recall@100 and memory of ``search(queries, k) -> (scores, indices)``."""
    search(queries[:1], K)  # warm-up
    with single_thread():
        singles = [timed(lambda i=i: search(queries[i:i + 1], K)) for i in range(min(20, len(queries)))]
        cpu = [timed(lambda i=i: search(queries[i:i + 1], K), 1, time.thread_time) for i in range(len(singles))]
    batch = timed(lambda: search(queries, K))
    _, found = search(queries, K)
    return {"index": name, "build_s": build_s, "bytes_per_vector": nbytes / size,
            "latency_1q_ms": 1e3 * float(np.median(singles)), "cpu_1q_ms": 1e3 * float(np.median(cpu)),
            "batch_ms_per_query": 1e3 * batch / len(queries),
            "recall_at_100": recall(found, truth)}


def run_scale(n: int, dim: int, kinds: list[str], white_dim: int) -> list[dict]:
    base = np.concatenate([part for name in ("holidays", "paris6k") for part in real_features(name)[:2]])
    t0 = time.perf_counter()
    store = FeatureIndex.from_chunks(structured_chunks(base, n, dim, seed=0), (n, dim))
    store_s = time.perf_counter() - t0
    queries = np.concatenate(list(structured_chunks(base, N_QUERIES, dim, seed=1)))
    with single_thread():
        exact_1q = timed(lambda: store.search(queries[:1], K), repeat=3 if n <= 100_000 else 1)
        exact_cpu = timed(lambda: store.search(queries[:1], K), 3 if n <= 100_000 else 1, time.thread_time)
    t0 = time.perf_counter()
    _, truth = store.search(queries, K)
    batch = time.perf_counter() - t0
    rows: list[dict] = []

    def emit(row: dict) -> None:  # printed as it comes, so a run stopped early keeps what it measured
        rows.append(row | {"n": n, "dim": dim})
        print(json.dumps(rows[-1]), flush=True)

    emit({"index": "exact", "build_s": store_s, "bytes_per_vector": store.nbytes / n, "latency_1q_ms": 1e3 * exact_1q,
          "cpu_1q_ms": 1e3 * exact_cpu, "batch_ms_per_query": 1e3 * batch / N_QUERIES, "recall_at_100": 1.0})
    white_store = None
    for name in kinds:
        white, kind = name.startswith("white-"), name.removeprefix("white-")
        t0 = time.perf_counter()
        if white and white_store is None:  # learned once, its time added to every whitened row's build time
            whiten = learn_pca_whitening(store.vectors, white_dim)
            white_store = FeatureIndex.build(whiten(store.vectors))
            white_s = time.perf_counter() - t0
            _, white_truth = white_store.search(whiten(queries), K)
            t0 = time.perf_counter()
        if kind == "faiss-exact":
            chunks = (whiten(store.vectors[s:s + CHUNK]) for s in range(0, n, CHUNK)) if white else \
                structured_chunks(base, n, dim, seed=0)
            index = FeatureIndex.from_chunks(chunks, (n, white_dim if white else dim), "faiss")
        else:
            index = (white_store if white else store).with_kind(kind)
        build = time.perf_counter() - t0 + (white_s if white else 0.0)
        search = (lambda x, k, index=index: index.search(whiten(x), k)) if white else index.search
        extra_bytes = whiten.projection.nbytes + whiten.mean.nbytes if white else 0
        for setting in search_settings(index):
            index.config = replace(index.config, **setting)
            row = measure(search, index.nbytes + extra_bytes, n, queries, white_truth if white else truth, build,
                          f"white{white_dim}-{kind}" if white else kind)
            if white:  # how much whitening itself changes the top 100 (not an index error; mAP judges it)
                row["recall_vs_raw_exact"] = recall(search(queries, K)[1], truth)
            emit(row | {"setting": setting, "config": str(index.config) if kind != "faiss-exact" else ""})
        del index
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [r | {"n": n, "dim": dim, "peak_rss_MB": peak} for r in rows]


def search_settings(index: FeatureIndex) -> list[dict]:
    """The default search setting and more thorough ones (recall against latency)."""
    if index.kind == "exact":
        return [{}]
    if index.kind == "hnsw":
        return [{"ef_search": ef} for ef in (128, 256, 512)]  # at least the shortlist, 2k = 200
    default = index.config.nprobe
    return [{"nprobe": p} for p in sorted({max(1, default // 2), default, min(index.config.nlist, 2 * default),
                                           min(index.config.nlist, 4 * default)})]


def query_aps(found: np.ndarray, gnd: list) -> np.ndarray:
    """AP of each query (with positives) from top-k rankings ``found`` (Q, k): positives beyond k count as not
    retrieved (the same for every index)."""
    return np.array([average_precision(positive_positions(f, g["ok"], g.get("junk", [])), len(g["ok"]))
                     for f, g in zip(found, gnd) if len(g["ok"])])


def full_map(db: np.ndarray, q: np.ndarray, gnd: list) -> float:
    return float(query_aps(rank_database(q, db).T, gnd).mean())


def paired_rows(aps: dict[str, np.ndarray], baseline: str = "exact") -> dict[str, str]:
    """Each ranking's per-query APs against ``baseline``'s: paired bootstrap difference, 95% interval, verdict."""
    return {name: str(compare(ap, aps[baseline])) for name, ap in aps.items() if name != baseline}


def run_real(n_distractors: int = 100_000) -> list[dict]:
    """mAP on each real subset alone (exact, PCA-whitened) and with ``n_distractors`` structured distractors."""
    warnings.simplefilter("ignore", UserWarning)  # partial subsets; whitening from few features (measured here)
    rows = []
    sets = {name: real_features(name) for name in ("holidays", "paris6k")}
    for name, (db, q, gnd) in sets.items():
        other = np.concatenate(sets["paris6k" if name == "holidays" else "holidays"][:2])
        row = {"set": name, "distractors": 0, "exact": full_map(db, q, gnd)}
        for dim, power, shrinkage in itertools.product((128, 256), (1.0, 0.5), (0.0, 0.5)):
            for learned_on, feats in (("own db", db), ("other set", other)):
                if dim < len(feats):
                    w = learn_pca_whitening(feats, dim, power=power, shrinkage=shrinkage)
                    row[f"white{dim} p{power} s{shrinkage} on {learned_on}"] = full_map(w(db), w(q), gnd)
        rows.append(row)
        print(json.dumps(row), flush=True)
        big = np.concatenate([db, *structured_chunks(other, n_distractors, db.shape[1], seed=7)])
        store = FeatureIndex.build(big)
        aps = {"exact": query_aps(rank_database(q, big).T, gnd), "exact top100": query_aps(store.search(q, K)[1], gnd)}
        for kind in ("ivf", "ivfpq", "hnsw"):
            aps[f"{kind} top100"] = query_aps(store.with_kind(kind).search(q, K)[1], gnd)
        for dim, power in itertools.product((256, 512), (1.0, 0.5)):
            w = learn_pca_whitening(big, dim, power=power)
            aps[f"white{dim} p{power} on db"] = query_aps(rank_database(w(q), w(big)).T, gnd)
            if dim == 256 and power == 1.0:  # the fast path: whitened, then an approximate index
                white = FeatureIndex.build(w(big))
                aps["white256 p1.0 exact top100"] = query_aps(white.search(w(q), K)[1], gnd)
                for kind in ("ivf", "hnsw"):
                    aps[f"white256 p1.0 {kind} top100"] = query_aps(white.with_kind(kind).search(w(q), K)[1], gnd)
        row = {"set": name, "distractors": n_distractors, **{k: float(v.mean()) for k, v in aps.items()},
               "vs exact, paired over queries": paired_rows(aps)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[1280, 4096])
    parser.add_argument("--kinds", nargs="+",
                        default=["faiss-exact", "ivf", "ivfpq", "hnsw", "white-ivf", "white-hnsw"])
    parser.add_argument("--white-dim", type=int, default=256)
    parser.add_argument("--real", action="store_true", help="measure mAP on the real subsets instead")
    parser.add_argument("--out", default="benchmarks/results/search.json")
    parser.add_argument("--one", nargs=2, type=int, metavar=("N", "DIM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_scale(*args.one, args.kinds, args.white_dim)))
        return
    if args.real:
        rows = run_real()
    else:
        rows = []
        print("| vectors | dim | index | search | build s | bytes/vector | 1 query ms | 1 query CPU ms | "
              "batch of 100, ms/query | recall@100 |\n|---|---|---|---|---|---|---|---|---|---|")
        for n in args.sizes:
            for dim in args.dims:
                cmd = [sys.executable, __file__, "--one", str(n), str(dim), "--white-dim", str(args.white_dim),
                       "--kinds", *args.kinds]
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    print(f"| {n:,} | {dim} | failed: {out.stderr.strip()[-300:]} |", flush=True)
                    continue
                for r in json.loads(out.stdout.strip().splitlines()[-1]):
                    rows.append(r)
                    setting = ", ".join(f"{k}={v}" for k, v in r.get("setting", {}).items())
                    print(f"| {n:,} | {dim} | {r['index']} | {setting} | {r['build_s']:.1f} | "
                          f"{r['bytes_per_vector']:,.0f} | {r['latency_1q_ms']:.2f} | {r['cpu_1q_ms']:.2f} | "
                          f"{r['batch_ms_per_query']:.2f} | {r['recall_at_100']:.3f} |",
                          flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
