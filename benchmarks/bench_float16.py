"""Does float16 feature storage change retrieval? mAP per ratio with float16 vs float32 features.

    .venv/bin/python benchmarks/bench_float16.py [--dataset mini] [--data-dir DIR]
"""
from __future__ import annotations

import argparse

from fsrlib.data.datasets import load_dataset
from fsrlib.evaluation.retrieval import compute_map, rank_database
from fsrlib.features.degrade import PAPER_RATIOS, ratio_label
from fsrlib.features.extract import extract_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="mini")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    ds = load_dataset(args.dataset, args.data_dir)
    scales = (1.0, *PAPER_RATIOS)
    print(f"{ds.summary()}\n| ratio | mAP float32 | mAP float16 | abs diff |\n|---|---|---|---|")
    worst = 0.0
    maps = {}
    for dtype in ("float32", "float16"):
        db = extract_features(ds, "db", (1.0,), store_dtype=dtype, progress=False)[1.0]
        q = extract_features(ds, "query", scales, store_dtype=dtype, progress=False)
        maps[dtype] = {r: compute_map(rank_database(q[r], db), ds.gnd)[0] for r in scales}
    for r in scales:
        diff = abs(maps["float32"][r] - maps["float16"][r])
        worst = max(worst, diff)
        print(f"| {ratio_label(r)} | {maps['float32'][r]:.6f} | {maps['float16'][r]:.6f} | {diff:.2e} |")
    print(f"largest mAP difference: {worst:.2e}")


if __name__ == "__main__":
    main()
