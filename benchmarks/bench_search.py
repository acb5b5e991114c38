"""Search at the scale of distractors: query latency and memory of exact search over 10k..1M vectors.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--dims 1280 4096]
                                                [--backends numpy faiss] [--out benchmarks/results/search.json]

Each (size, dim, backend) runs in its own process so its peak memory is its own. Vectors are synthetic
(clustered Gaussians, like CNN features), generated chunk by chunk straight into float16 storage. Reported:
build time, stored bytes, peak RSS, latency of 1 query and of a batch of 55 queries (Oxford5k's count) at
k = 100, and for <= 100k the full ranking that mAP needs (rank_database, 55 queries).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fsrlib.retrieval import rank_database
from fsrlib.search import FeatureIndex

CHUNK = 32768


def synthetic_chunks(n: int, dim: int, seed: int = 0):
    """``n`` clustered vectors in chunks: 256 random centres plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, dim)).astype(np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        yield centres[rng.integers(0, 256, m)] + 2.0 * rng.standard_normal((m, dim), dtype=np.float32)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_one(n: int, dim: int, backend: str) -> dict:
    t0 = time.perf_counter()
    index = FeatureIndex.from_chunks(synthetic_chunks(n, dim), (n, dim), backend)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(55, dim)).astype(np.float32)
    repeat = 5 if n <= 100_000 else 2
    row = {"n": n, "dim": dim, "backend": backend, "build_s": build, "stored_MB": index.nbytes / 2**20,
           "latency_1q_ms": 1e3 * timed(lambda: index.search(queries[:1], 100), repeat),
           "latency_55q_ms": 1e3 * timed(lambda: index.search(queries, 100), repeat)}
    if backend == "numpy" and n <= 100_000:
        row["full_ranking_55q_ms"] = 1e3 * timed(lambda: rank_database(queries, index.vectors), 2)
    row["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[1280, 4096])
    parser.add_argument("--backends", nargs="+", default=["numpy", "faiss"])
    parser.add_argument("--out", default="benchmarks/results/search.json")
    parser.add_argument("--one", nargs=3, metavar=("N", "DIM", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(int(args.one[0]), int(args.one[1]), args.one[2])))
        return
    rows = []
    print("| vectors | dim | backend | build s | stored MB | peak RSS MB | 1 query ms | 55 queries ms | "
          "full ranking 55q ms |\n|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for dim in args.dims:
            for backend in args.backends:
                out = subprocess.run([sys.executable, __file__, "--one", str(n), str(dim), backend],
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    print(f"| {n} | {dim} | {backend} | failed: {out.stderr.strip()[-200:]} |")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(r)
                full = f"{r['full_ranking_55q_ms']:.0f}" if "full_ranking_55q_ms" in r else "-"
                print(f"| {n:,} | {dim} | {backend} | {r['build_s']:.1f} | {r['stored_MB']:.0f} | "
                      f"{r['peak_rss_MB']:.0f} | {r['latency_1q_ms']:.1f} | {r['latency_55q_ms']:.1f} | {full} |",
                      flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
