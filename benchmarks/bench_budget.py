"""The paper's GANs trained as long as the paper trains them (issue 23), on the 150 Holidays queries.

One *unit* is one (protocol, method, seed): :func:`fsrlib.experiment.run` with methods ``raw`` and the method, at a
training budget (``--profile paper``: 2,658 generator steps with 5 critic updates, Sec. 3.3's 6 epochs of Oxford5k
counted in steps; ``--profile short``: the book's live 6 epochs of the subset, ~60-100 steps). Each unit writes its
per-query APs to ``benchmarks/results/budget/<protocol>-<method>-<profile>-seed<k>.csv`` and, beside it, a JSON
with the full config, the git commit, the machine and the seconds it took. A unit whose files exist (for the same
config) is skipped, so the script is resumable; an interrupted GAN resumes from its per-epoch checkpoint in the
cache. ``--summary`` prints mAP per ratio (mean over seeds), the share of the gap (HR - raw) won back and the paired
bootstrap verdict against raw, from the files alone.

    nice -n 10 .venv/bin/python benchmarks/bench_budget.py run --methods fsrgan --protocols paper --seeds 0
    .venv/bin/python benchmarks/bench_budget.py summary
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from fsrlib.data.datasets import load_dataset
from fsrlib.evaluation.analysis import summarize
from fsrlib.evaluation.recorded import read_recorded_runs
from fsrlib.experiment import PROFILES, ExperimentConfig, profile_settings, resolve_folds, run, training_features
from fsrlib.features.degrade import ratio_label
from fsrlib.methods.registry import generator_config, generator_methods
from fsrlib.methods.train import cached_history

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "budget"
HOLIDAYS = Path(os.environ.get("FSRLIB_HOLIDAYS", REPO.parent / "shared" / "data" / "holidays-subset"))
#: the ratios of issue 23's GPU measurement (mild, middle, the paper's smallest)
RATIOS = (1 / 4, 1 / 16, 1 / 64)


def unit_paths(protocol: str, method: str, profile: str, seed: int) -> tuple[Path, Path]:
    stem = RESULTS / f"{protocol}-{method}-{profile}-seed{seed}"
    return stem.with_suffix(".csv"), stem.with_suffix(".json")


def curves_path(csv: Path) -> Path:
    return csv.with_name(csv.stem + "-curves.json")


#: every how many generator steps a loss record is kept in a curves file (validation is kept per epoch)
STEP_STRIDE = 10


def record_curves(cfg: ExperimentConfig, method: str, path: Path) -> bool:
    """Write the training curves of every fold of a finished unit (read from the models the run cached; nothing
    is trained) to ``path``: per fold, the validation distance per epoch and every 10th step's losses. False if
    a fold's model is not in the cache (a unit recorded on another machine)."""
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    folds = []
    for fold in resolve_folds(cfg, ds):
        history = cached_history(training_features(fold.training_set, ds, cfg, False), generator_config(method, cfg.method_settings()),
                                 cfg.cache_dir)
        if history is None:
            return False
        folds.append({"fold": fold.name, "steps": len(history["steps"]),
                      "epochs": [{"epoch": e["epoch"], "val_distance": {str(r): d for r, d in e["val_distance"].items()}}
                                 for e in history["epochs"]],
                      "step_records": [{k: v for k, v in r.items() if k != "event"}
                                       for r in history["steps"][::STEP_STRIDE]]})
    path.write_text(json.dumps({"method": method, "step_stride": STEP_STRIDE, "folds": folds}))
    return True


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


#: Config fields renamed since units were recorded: old name -> new name (the value means the same).
RENAMED_FIELDS = {"isr_profile": "pixel_profile"}


def same_config(stored: dict, wanted: dict) -> bool:
    """Whether a recorded unit was run with ``wanted``: equal, except for fields added to the config since it was
    recorded that hold their default (a new field cannot have changed an old run), and reading a renamed field
    under its new name."""
    stored = {RENAMED_FIELDS.get(k, k): v for k, v in stored.items()}
    defaults = json.loads(json.dumps(asdict(ExperimentConfig()), default=str))
    added = {k for k in wanted if k not in stored and wanted[k] == defaults.get(k)}
    return {k: v for k, v in wanted.items() if k not in added} == stored


def run_unit(protocol: str, method: str, profile: str, seed: int, args: argparse.Namespace) -> None:
    csv, meta = unit_paths(protocol, method, profile, seed)
    cfg = ExperimentConfig(dataset="holidays", data_dir=str(args.data_dir), ratios=tuple(args.ratios),
                           methods=("raw", method), protocol=protocol, folds=args.folds or 3, device=args.device,
                           seed=seed, **profile_settings(profile))
    config = json.loads(json.dumps(asdict(cfg), default=str))
    config["data_dir"] = Path(config["data_dir"]).name  # the collection's folder, not this machine's path to it
    if csv.is_file() and meta.is_file() and same_config(json.loads(meta.read_text()).get("config", {}), config):
        if method in generator_methods() and not curves_path(csv).is_file():  # a unit recorded before curves were kept
            kept = record_curves(cfg, method, curves_path(csv))
            print(f"{csv.name}: done already; curves {'recorded' if kept else 'not in this cache'}", flush=True)
        else:
            print(f"{csv.name}: done already", flush=True)
        return
    print(f"{csv.name}: training {method} ({profile}: {PROFILES[profile]}), protocol {protocol}, seed {seed}",
          flush=True)
    start = time.perf_counter()
    result = run(cfg, seeds=[seed], progress=False)
    seconds = time.perf_counter() - start
    RESULTS.mkdir(parents=True, exist_ok=True)
    result.per_query.to_csv(csv, index=False)
    meta.write_text(json.dumps({"config": config, "generator": method in generator_methods(),  # trains for `steps`
                                "commit": commit(), "seconds": round(seconds, 1),
                                "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                           f"{os.cpu_count()} cores", "folds": result.folds}, indent=1))
    if method in generator_methods():
        record_curves(cfg, method, curves_path(csv))
    print(f"{csv.name}: {seconds:.0f} s; " + ", ".join(
        f"{m} {ratio_label(r)} {g['ap'].mean():.3f}" for (m, r), g in result.per_query.groupby(["method", "ratio"])),
        flush=True)


def summary(results: Path | None = None) -> pd.DataFrame:
    """mAP per (protocol, profile, method, ratio) over the seeds run, its interval, the share of the gap (HR - raw)
    won back and the paired verdict against raw (:func:`fsrlib.evaluation.analysis.summarize`), from the files alone."""
    tables = [summarize(per_query).assign(protocol=protocol, profile=profile)
              for (protocol, profile), per_query in read_recorded_runs(results or RESULTS).items()]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="train and score the missing units")
    go.add_argument("--methods", nargs="+", default=["fsrgan"])
    go.add_argument("--protocols", nargs="+", default=["paper"])
    go.add_argument("--seeds", nargs="+", type=int, default=[0])
    go.add_argument("--profile", choices=sorted(PROFILES), default="paper")
    go.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    go.add_argument("--folds", type=int, default=None, help="group_disjoint folds (default 3)")
    go.add_argument("--device", default="cpu")
    go.add_argument("--data-dir", type=Path, default=HOLIDAYS)
    sub.add_parser("summary", help="print the table from the result files")
    args = parser.parse_args(argv)
    if args.command == "summary":
        table = summary()
        columns = ["protocol", "profile", "method", "ratio_label", "seeds", "mAP", "lo", "hi", "gap recovered",
                   "verdict"]
        print(table[[c for c in columns if c in table]].round(3).to_string(index=False) if len(table)
              else f"no results under {RESULTS}")
        return 0
    if not (args.data_dir / "jpg").is_dir():
        parser.error(f"no Holidays images under {args.data_dir}/jpg; pass --data-dir or set FSRLIB_HOLIDAYS")
    for protocol in args.protocols:
        for method in args.methods:
            for seed in args.seeds:
                run_unit(protocol, method, args.profile, seed, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
