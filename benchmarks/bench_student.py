"""Held-out mAP of the resolution-robust student (fsrlib.methods.student) on Holidays, against raw and HR queries.

Each run is the core experiment (:func:`fsrlib.experiment.run`, methods raw and the registered ``student``) on the
Holidays subset, scored at full size and the paper's seven ratios. Protocols (fsrlib.data.protocols):
``group_disjoint`` (3 folds over Holidays' 150 groups; each fold's queries are scored against the full 422-image
database by a student trained only on the other folds' groups; per-query APs are pooled so every query is scored
once), ``cross_dataset`` (trained on the Paris subset + mini, or with ``--unlabeled`` on the Paris subset and the
unlabeled photos; tested on every Holidays query) and ``paper`` (trained on the database's 272 non-query photos,
which show every query's scene: a search engine adapting to its own database without labels). ``--unlabeled N``
adds N unlabeled photos (-1: all 2,223) to every training set (the experiment's ``unlabeled_count``), ``--set``
changes the student's recipe (its ``student_changes``). Per ratio (1 included: is the student harmless on
full-size queries?): raw, HR and student mAP, the student's mean over seeds, the fraction of the gap (HR - raw) it
recovers, a bootstrap 95% interval over queries (per-query AP averaged over seeds first) and the paired difference
to raw; every query's AP and every training's photos and seconds go to ``--out``. ``--distractors`` ranks the
same query features against the Holidays database plus every Paris-subset and mini image, as the distractors
chapter does.

    nice -n 10 .venv/bin/python benchmarks/bench_student.py prepare [--crops 2] [--unlabeled -1]
    nice -n 10 .venv/bin/python benchmarks/bench_student.py run --protocol cross_dataset --unlabeled -1 \
        --seeds 0 1 2 [--set passes=8.0 trainable_blocks=4 ...] [--out results.json]

Results recorded before the run went through the experiment (commit in each file) used options since removed
(``--extra``, ``--photos``, ``--vary-pairs``); rerun those at their recorded commit.
"""
from __future__ import annotations

import argparse
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
from fsrlib.data.protocols import pooled_training_set, training_subset
from fsrlib.evaluation.retrieval import l2_normalize
from fsrlib.evaluation.stats import bootstrap_interval, compare, gap_recovered
from fsrlib.experiment import ExperimentConfig, score_queries, split_features
from fsrlib.experiment import run as experiment_run
from fsrlib.features.degrade import PAPER_RATIOS, ratio_label
from fsrlib.features.extract import extract_features
from fsrlib.methods.registry import student_settings
from fsrlib.methods.student import StudentConfig, parse_changes
from fsrlib.methods.student_pairs import build_pairs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HOLIDAYS = Path(os.environ.get("FSRLIB_HOLIDAYS", SHARED / "holidays-subset"))
PARIS = Path(os.environ.get("FSRLIB_PARIS", SHARED / "paris6k-subset"))
PHOTOS = Path(os.environ.get("FSRLIB_PHOTOS", SHARED / "photos-unlabeled"))
EVAL_RATIOS = PAPER_RATIOS
#: what every protocol adds to Holidays when no unlabeled photos are asked for (cross-dataset: the training sets)
EXTRA = (("paris6k", PARIS), ("mini", None))


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
    """The core experiment this benchmark runs: raw and the registered student on the Holidays subset, scored at
    full size and the paper's seven ratios, under ``args.protocol``; with ``--unlabeled`` the unlabeled photos
    (all, or a seeded subset) join every fold's training photos, and the cross-dataset protocol trains on them and
    the Paris subset only (issue 24), else on the Paris subset and mini."""
    changes = parse_changes(args.set)
    sources = EXTRA[:1] if args.unlabeled else EXTRA
    return ExperimentConfig(
        dataset="holidays", data_dir=str(HOLIDAYS), methods=("raw", "student"), ratios=(1.0, *EVAL_RATIOS),
        protocol=args.protocol, folds=3, fold_seed=args.split_seed,
        train_on=tuple(n for n, _ in sources) if args.protocol == "cross_dataset" else (),
        train_data_dirs=tuple(None if d is None else str(d) for _, d in sources)
        if args.protocol == "cross_dataset" else (),
        unlabeled_photos=str(PHOTOS) if args.unlabeled else None,
        unlabeled_count=None if args.unlabeled < 0 else args.unlabeled or None,
        student_changes=changes, pixel_profile="cpu", device="cpu")


def extra_sources() -> list:
    return [load_dataset(name, folder) for name, folder in EXTRA]


def distractor_features() -> np.ndarray:
    """Every image of the other collections (the Paris subset and mini: database, training and query splits), as the
    distractors chapter adds them to the Holidays database; none shows a Holidays scene."""
    parts = [extract_features(ds, split, (1.0,), progress=False)[1.0]
             for ds in extra_sources() for split in ("db", "train", "query") if ds.split_items(split)]
    return l2_normalize(np.concatenate(parts))


def prepare(args: argparse.Namespace) -> None:
    """Fill the caches: Holidays database and query features, and the pairs of every photo."""
    cfg = replace(StudentConfig(), crops_per_image=args.crops)
    holidays = load_dataset("holidays", HOLIDAYS)
    start = time.perf_counter()
    extract_features(holidays, "db", (1.0,), progress=False)
    extract_features(holidays, "query", (1.0, *EVAL_RATIOS), progress=False)
    print(f"database + query features: {time.perf_counter() - start:.0f} s", flush=True)
    sets = {"holidays": replace(holidays, train=holidays.images)}
    if args.cross:
        sets["paris+mini"] = pooled_training_set(extra_sources())
    if args.unlabeled:
        photos = load_dataset("photos", PHOTOS)
        sets["unlabeled"] = photos if args.unlabeled < 0 else training_subset(photos, args.unlabeled)
    for name, train in sets.items():
        start = time.perf_counter()
        pairs = build_pairs(train, cfg, progress=lambda i, n: print(f"{name}: {i}/{n} photos", flush=True)
                            if i % 50 == 0 or i == n else None)
        n_lr = int((pairs.ratio < 1).sum())
        print(f"{name}: {n_lr} pairs (+ {len(pairs) - n_lr} full-size crops) in {time.perf_counter() - start:.0f} s",
              flush=True)


def run(args: argparse.Namespace) -> dict:
    """The experiment (:func:`fsrlib.experiment.run`) with raw and the student, every seed; per-query APs from its
    result (with ``--distractors`` the same query features ranked against the database plus the distractors)."""
    cfg = experiment_config(args)
    result = experiment_run(cfg, seeds=args.seeds, progress=False)
    holidays = load_dataset("holidays", HOLIDAYS)
    ratios = (1.0, *EVAL_RATIOS)
    hr = result.enhanced[("hr", args.seeds[0])][1.0]
    if args.distractors:  # search among the other collections' images too (ground truth unchanged: they match nothing)
        db = l2_normalize(np.concatenate([split_features(holidays, "db", (), cfg, False)[1.0],
                                          distractor_features()]))

        def aps(method: str, seed: int, r: float) -> np.ndarray:
            return score_queries(result.enhanced[(method, seed)][r], hr, db, holidays, cfg.kappas).ap
    else:  # the experiment's own scores
        pq = result.per_query.set_index(["method", "seed", "ratio"]).sort_index()

        def aps(method: str, seed: int, r: float) -> np.ndarray:
            return pq.loc[(method, seed, r)].sort_values("query")["ap"].to_numpy()
    raw = {r: aps("raw", args.seeds[0], r) for r in ratios}
    student_ap = {r: np.stack([aps("student", s, r) for s in args.seeds]) for r in ratios}
    timings = [{"seed": t["seed"], "fold": t["fold"], "pair_s": t["pair_s"], "train_s": t["train_s"],
                "photos": t["photos"]} for t in result.trainings]
    for t in timings:
        print(f"seed {t['seed']} {t['fold']}: {t['photos']} photos, pairs {t['pair_s']:.0f} s, "
              f"training {t['train_s']:.0f} s", flush=True)
    base = student_settings(replace(cfg.method_settings(), seed=args.seeds[0]))
    return report(args, base, raw, student_ap, timings, result.folds)


def provenance() -> dict:
    """The git commit and the machine a result comes from (the chapters print them beside recorded results)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"commit": commit, "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                         f"{os.cpu_count()} cores"}


def report(args, cfg: StudentConfig, raw: dict, student_ap: dict, timings: list, folds: list[str]) -> dict:
    hr = float(np.mean(raw[1.0]))
    rows = []
    unlabeled = {0: "", -1: " + all unlabeled photos"}.get(args.unlabeled, f" + {args.unlabeled} unlabeled photos")
    print(f"\n{args.protocol}{unlabeled}, seeds {args.seeds}, database "
          f"{'Holidays + distractors' if args.distractors else 'Holidays'}, config changes {args.set or 'none'}; "
          f"HR mAP {hr:.3f}")
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
    return {"protocol": args.protocol, "unlabeled": args.unlabeled, "distractors": args.distractors,
            "seeds": args.seeds, "folds": folds, "config": asdict(cfg), "rows": rows,
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
    r.add_argument("--split-seed", type=int, default=0, help="seed of the group-disjoint folds")
    r.add_argument("--distractors", action="store_true",
                   help="search among the Holidays database plus every Paris-subset and mini image")
    r.add_argument("--unlabeled", type=int, default=0,
                   help="add this many unlabeled photos (-1: all; a seeded subset, the same for every seed) to every "
                        "fold's training set; cross_dataset then trains on them and the Paris subset only (issue 24)")
    r.add_argument("--set", nargs="*", default=[],
                   help="StudentConfig changes (the experiment's student_changes), e.g. steps=300 lr=1e-4")
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
