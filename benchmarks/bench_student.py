"""Held-out mAP of the resolution-robust student (fsrlib.methods.student) on Holidays, against raw and HR queries.

Protocols (fsrlib.data.protocols): ``group_disjoint`` (3 folds over Holidays' 150 groups; each fold's queries are
scored against the full 422-image database by a student trained only on the other folds' groups; per-query APs
are pooled so every query is scored once), ``cross_dataset`` (trained on the Paris subset + mini, tested on
every Holidays query) and ``paper`` (trained on the database's 272 non-query photos, which show every query's
scene: a search engine adapting to its own database without labels). Per ratio (1 included: is the student
harmless on full-size queries?): raw, HR and student mAP, the student's mean over seeds, the fraction of the gap
(HR - raw) it recovers, a bootstrap 95% interval over queries (per-query AP averaged over seeds first) and the
paired difference to raw. Training time per run is printed. ``--distractors`` searches the Holidays database
plus every Paris-subset and mini image, as the distractors chapter does.

    nice -n 10 .venv/bin/python benchmarks/bench_student.py prepare [--crops 2]
    nice -n 10 .venv/bin/python benchmarks/bench_student.py run --protocol group_disjoint --seeds 0 1 2 \
        [--set steps=300 trainable_blocks=2 ...] [--out results.json]

Raw and HR query features are the frozen backbone's applied to the cached prefix activations (the same
numbers as fsrlib.features.extract.extract_features up to float rounding); the database is extract_features' own.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from fsrlib.data.datasets import load_dataset
from fsrlib.data.protocols import (
    cross_dataset_folds,
    group_disjoint_folds,
    image_group,
    paper_folds,
    pooled_training_set,
    seen_groups,
)
from fsrlib.evaluation.retrieval import compute_map, l2_normalize, rank_database
from fsrlib.evaluation.stats import bootstrap_interval, compare, gap_recovered
from fsrlib.features.degrade import PAPER_RATIOS, ratio_label
from fsrlib.features.extract import extract_features
from fsrlib.methods.student import StudentConfig
from fsrlib.methods.student_pairs import build_pairs
from fsrlib.methods.student_train import train_student

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HOLIDAYS = Path(os.environ.get("FSRLIB_HOLIDAYS", SHARED / "holidays-subset"))
PARIS = Path(os.environ.get("FSRLIB_PARIS", SHARED / "paris6k-subset"))
PHOTOS = Path(os.environ.get("FSRLIB_PHOTOS", SHARED / "photos-unlabeled"))
EVAL_RATIOS = PAPER_RATIOS


def folds_of(protocol: str, holidays, k: int = 3, split_seed: int = 0, unlabeled: int = 0) -> list:
    if protocol == "group_disjoint":
        return group_disjoint_folds(holidays, k=k, seed=split_seed)
    if protocol == "cross_dataset":  # with unlabeled photos: those and the Paris subset only (issue 24)
        sources = [load_dataset("paris6k", PARIS), unlabeled_photos(unlabeled, split_seed)] if unlabeled else \
            extra_sources()
        return cross_dataset_folds(holidays, sources)
    if protocol == "paper":
        return paper_folds(holidays)
    raise KeyError(protocol)


def unlabeled_photos(count: int, seed: int = 0):
    """The unlabeled photos (``fsrlib.data.datasets.photos``): all of them (``count`` < 0) or a seeded subset of
    ``count``, the same photos for every seed of a run so that a learning curve varies one thing."""
    photos = load_dataset("photos", PHOTOS)
    if 0 <= count < len(photos.train):
        keep = np.random.default_rng(seed).permutation(len(photos.train))[:count]
        photos = replace(photos, train=tuple(photos.train[i] for i in sorted(keep)))
    return photos


def extra_sources() -> list:
    return [load_dataset("paris6k", PARIS), load_dataset("mini")]


def distractor_features() -> np.ndarray:
    """Every image of the other collections (the Paris subset and mini: database, training and query splits), as the
    distractors chapter adds them to the Holidays database; none shows a Holidays scene."""
    parts = [extract_features(ds, split, (1.0,), progress=False)[1.0]
             for ds in extra_sources() for split in ("db", "train", "query") if ds.split_items(split)]
    return l2_normalize(np.concatenate(parts))


def test_images(holidays, fold, protocol: str = "group_disjoint") -> list[Path]:
    """The images no student of ``fold`` may train on: every Holidays image of the fold's test groups (the query
    and its positives), or under the ``paper`` protocol, whose training set is the database, the queries alone."""
    if protocol == "paper":
        return [holidays.path(holidays.queries[q]) for q in fold.query_index]
    groups = {image_group(holidays, holidays.queries[q]) for q in fold.query_index}
    return [holidays.path(p) for p in holidays.images if image_group(holidays, p) in groups]


def per_query_ap(queries: np.ndarray, db: np.ndarray, gnd: list) -> np.ndarray:
    return compute_map(rank_database(l2_normalize(queries), db), gnd)[1]


def prepare(args: argparse.Namespace) -> None:
    """Fill the caches: Holidays database and query features, and the pairs of every photo."""
    cfg = replace(StudentConfig(), crops_per_image=args.crops)
    holidays = load_dataset("holidays", HOLIDAYS)
    start = time.perf_counter()
    extract_features(holidays, "db", (1.0,), progress=False)
    extract_features(holidays, "query", (1.0, *EVAL_RATIOS), store_dtype="float32", progress=False)
    print(f"database + query features: {time.perf_counter() - start:.0f} s", flush=True)
    sets = {"holidays": replace(holidays, train=holidays.images)}
    if args.cross:
        sets["paris+mini"] = folds_of("cross_dataset", holidays)[0].train
    if args.unlabeled:
        sets["unlabeled"] = unlabeled_photos(args.unlabeled)
    for name, train in sets.items():
        start = time.perf_counter()
        pairs = build_pairs(train, cfg, progress=lambda i, n: print(f"{name}: {i}/{n} photos", flush=True)
                            if i % 50 == 0 or i == n else None)
        n_lr = int((pairs.ratio < 1).sum())
        print(f"{name}: {n_lr} pairs (+ {len(pairs) - n_lr} full-size crops) in {time.perf_counter() - start:.0f} s",
              flush=True)


def run(args: argparse.Namespace) -> dict:
    changes = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = replace(StudentConfig(), **changes)
    holidays = load_dataset("holidays", HOLIDAYS)
    db = l2_normalize(extract_features(holidays, "db", (1.0,), progress=False)[1.0])
    if args.distractors:  # search among the other collections' images too (ground truth unchanged: they match nothing)
        db = np.concatenate([db, distractor_features()])
    frozen = extract_features(holidays, "query", (1.0, *EVAL_RATIOS), store_dtype="float32", progress=False)
    gnd = list(holidays.gnd)
    raw = {r: per_query_ap(frozen[r], db, gnd) for r in (1.0, *EVAL_RATIOS)}
    folds = folds_of(args.protocol, holidays, split_seed=args.split_seed, unlabeled=args.unlabeled)
    student_ap = {r: np.full((len(args.seeds), len(gnd)), np.nan) for r in (1.0, *EVAL_RATIOS)}
    timings = []
    for s, seed in enumerate(args.seeds):
        cfg = replace(base, seed=seed, pair_seed=seed if args.vary_pairs else base.pair_seed)
        for fold in folds:
            if args.protocol == "group_disjoint":
                assert not seen_groups(holidays, fold) & {image_group(holidays, holidays.queries[q])
                                                          for q in fold.query_index}, "a test group was trained on"
            train = fold.train
            if args.extra:  # the fold's photos plus other collections' (no Holidays scene among them)
                train = pooled_training_set([train, *extra_sources()], name=f"{train.name}+paris6k+mini")
            if args.unlabeled and args.protocol != "cross_dataset":  # the fold's photos plus unlabeled ones
                train = pooled_training_set([train, unlabeled_photos(args.unlabeled, args.split_seed)],
                                            name=f"{train.name}+photos")
            if args.photos:  # learning curve: a seeded subset of the fold's training photos
                keep = np.random.default_rng(args.split_seed).permutation(len(train.train))[:args.photos]
                train = replace(train, train=tuple(train.train[i] for i in sorted(keep)))
            trained = train_student(train, cfg, exclude=test_images(holidays, fold, args.protocol))
            timings.append({"seed": seed, "fold": fold.name, "pair_s": trained.pair_seconds,
                            "train_s": trained.train_seconds, "photos": len(trained.training_images)})
            print(f"seed {seed} {fold.describe()}: pairs {trained.pair_seconds:.0f} s, "
                  f"training {trained.train_seconds:.0f} s", flush=True)
            index = list(fold.query_index)
            feats = extract_features(holidays, "query", (1.0, *EVAL_RATIOS), network=trained.network(),
                                     store_dtype="float32", progress=False)  # every query, cached per student
            for r in (1.0, *EVAL_RATIOS):
                student_ap[r][s, index] = per_query_ap(feats[r][index], db, [gnd[q] for q in index])
    return report(args, base, raw, student_ap, timings)


def provenance() -> dict:
    """The git commit and the machine a result comes from (the chapters print them beside recorded results)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"commit": commit, "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                         f"{os.cpu_count()} cores"}


def report(args, cfg: StudentConfig, raw: dict, student_ap: dict, timings: list) -> dict:
    hr = float(np.mean(raw[1.0]))
    rows = []
    unlabeled = {0: "", -1: " + all unlabeled photos"}.get(args.unlabeled, f" + {args.unlabeled} unlabeled photos")
    print(f"\n{args.protocol}{' + Paris/mini photos' if args.extra else ''}{unlabeled}, seeds {args.seeds}, photos per fold "
          f"{args.photos or 'all'}, database {'Holidays + distractors' if args.distractors else 'Holidays'}, "
          f"config changes "
          f"{args.set or 'none'}; HR mAP {hr:.3f}")
    print("| ratio | raw | student (per seed) | student [95% CI] | gap recovered | student - raw [95% CI] |")
    print("|---|---|---|---|---|---|")
    for r in (1.0, *EVAL_RATIOS):  # at 1 the "raw" query is the full-size one: is the student harmless there?
        per_seed = np.nanmean(student_ap[r], axis=1)
        mean_ap = student_ap[r].mean(axis=0)
        lo, hi = bootstrap_interval(mean_ap)
        diff = compare(mean_ap, raw[r])
        raw_map = float(np.mean(raw[r]))
        frac = gap_recovered(float(mean_ap.mean()), raw_map, hr) if r < 1 else float("nan")
        rows.append({"ratio": r, "raw": raw_map, "hr": hr, "student": float(mean_ap.mean()),
                     "student_per_seed": per_seed.tolist(), "ci": [lo, hi], "gap_recovered": frac,
                     "diff_vs_raw": [diff.diff, diff.lo, diff.hi], "verdict": diff.verdict})
        print(f"| {ratio_label(r)} | {raw_map:.3f} | {' '.join(f'{v:.3f}' for v in per_seed)} | "
              f"{mean_ap.mean():.3f} [{lo:.3f}, {hi:.3f}] | {frac:.2f} | {diff} |")
    train_s = [t["train_s"] for t in timings]
    pair_s = [t["pair_s"] for t in timings]
    print(f"training time per run: {np.mean(train_s):.0f} s (min {min(train_s):.0f}, max {max(train_s):.0f}); "
          f"pair making per run (0 when cached): mean {np.mean(pair_s):.0f} s")
    return {"protocol": args.protocol, "extra": args.extra, "unlabeled": args.unlabeled, "distractors": args.distractors, "seeds": args.seeds,
            "photos": args.photos,
            "config": asdict(cfg), "rows": rows,
            # every query's AP (raw; the student per seed), so a chapter can compute paired intervals from the file
            "per_query": {ratio_label(r): {"raw": np.asarray(raw[r]).tolist(), "student": student_ap[r].tolist()}
                          for r in (1.0, *EVAL_RATIOS)},
            "timings": timings, "command": " ".join(sys.argv), **provenance()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--crops", type=int, default=StudentConfig().crops_per_image)
    p.add_argument("--cross", action="store_true", help="also the Paris subset + mini photos")
    p.add_argument("--unlabeled", type=int, default=0, help="also this many unlabeled photos (-1: all)")
    r = sub.add_parser("run")
    r.add_argument("--protocol", default="group_disjoint", choices=("group_disjoint", "cross_dataset", "paper"),
                   help="paper: trained on the database's non-query photos (every query's scene is among them)")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--split-seed", type=int, default=0)
    r.add_argument("--vary-pairs", action="store_true", help="draw the pairs with each seed too (pair_seed=seed)")
    r.add_argument("--extra", action="store_true",
                   help="add the Paris subset's and mini's training photos to every fold's training set")
    r.add_argument("--distractors", action="store_true",
                   help="search among the Holidays database plus every Paris-subset and mini image")
    r.add_argument("--photos", type=int, default=0, help="train on this many photos per fold (0: all)")
    r.add_argument("--unlabeled", type=int, default=0,
                   help="add this many unlabeled photos (-1: all; a seeded subset, the same for every seed) to every "
                        "fold's training set; cross_dataset then trains on them and the Paris subset only (issue 24)")
    r.add_argument("--set", nargs="*", default=[], help="StudentConfig changes, e.g. steps=300 lr=1e-4")
    r.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args)
        return
    result = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
