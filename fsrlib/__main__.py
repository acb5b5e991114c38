"""Command line: ``fsrlib experiment --dataset mini --methods raw`` (or ``python -m fsrlib ...``); ``fsrlib fetch
holidays`` downloads, verifies and unpacks a benchmark; ``fsrlib extract`` caches a split's features. This module
checks the parsed arguments and runs the commands; their parser, options and help are :mod:`fsrlib.cli`'s."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from fsrlib.cli import TABLE_SUFFIXES, build_parser
from fsrlib.data.datasets import DATASETS, DISTRACTORS, DatasetNotFoundError, load_dataset, locate
from fsrlib.devices import resolve_device
from fsrlib.evaluation.analysis import summarize
from fsrlib.experiment import (
    ExperimentConfig,
    ExperimentResult,
    check_methods,
    check_seeds,
    pivot,
    profile_settings,
    resolve_folds,
    run,
    save_table,
    worse_than_raw,
)
from fsrlib.features.backbones import BACKBONES
from fsrlib.features.degrade import check_ratios, small_size
from fsrlib.features.distributed import extract_command
from fsrlib.methods.isr_train import ISR_PROFILES
from fsrlib.methods.registry import METHODS
from fsrlib.methods.student import parse_changes
from fsrlib.paths import data_root


def experiment_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the ``experiment`` arguments, found before any image is read (empty if nothing)."""
    problems = []
    if args.epochs is not None and args.steps is not None:
        problems.append(f"--epochs {args.epochs} and --steps {args.steps}: give one training budget, not both")
    for option, name in (("--dataset", args.dataset), ("--train-dataset", args.train_dataset)):
        base, _, extra = (name or "").partition("+")
        if name is not None and (base not in DATASETS or (extra and extra not in DISTRACTORS)):
            problems.append(f"{option} {name}: unknown dataset; known: {', '.join(DATASETS)} (optionally "
                            f"+{' or +'.join(sorted(DISTRACTORS))})")
    if args.backbone not in BACKBONES:
        problems.append(f"--backbone {args.backbone}: unknown; known: {', '.join(BACKBONES)}")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        problems.append(f"--methods: unknown {', '.join(unknown)}; known: {', '.join(METHODS)}")
    for option, check, values in (("--ratios", check_ratios, args.ratios), ("--methods", check_methods, args.methods),
                                  ("--seeds", check_seeds, args.seeds)):
        if values is None:  # --seeds not given
            continue
        try:
            check(values)
        except ValueError as err:
            problems.append(f"{option}: {err}")
    if args.seed is not None and args.seeds is not None:
        problems.append(f"--seed {args.seed}: ignored when --seeds is given; list it in --seeds instead")
    if args.reference == "input" and args.backbone in BACKBONES:
        side = BACKBONES[args.backbone].input_size
        for ratio in args.ratios:
            try:
                small_size(side, side, ratio)
            except ValueError as err:
                problems.append(f"--ratios: {err}")
    problems += protocol_problems(args) + output_problems(args.out)
    try:
        resolve_device(args.device)
    except ValueError as err:
        problems.append(f"--device: {err}")
    return problems


def chosen_protocol(args: argparse.Namespace) -> str:
    """``--protocol``, or what its absence means: ``cross_dataset`` with the older ``--train-dataset``, else
    ``paper``."""
    return args.protocol or ("cross_dataset" if args.train_dataset is not None else "paper")


def protocol_problems(args: argparse.Namespace) -> list[str]:
    """Protocol options that contradict each other, or that the chosen protocol would silently ignore."""
    protocol, problems = chosen_protocol(args), []
    for name in args.train_on:
        if name not in DATASETS:
            problems.append(f"--train-on {name}: unknown dataset; known: {', '.join(DATASETS)}")
    if args.train_dataset is not None and args.protocol not in (None, "cross_dataset"):
        problems.append(f"--train-dataset {args.train_dataset}: it is the older spelling of '--protocol cross_dataset "
                        f"--train-on NAME', so it contradicts --protocol {args.protocol}; drop one of them")
    if args.train_dataset is not None and args.train_on:
        problems.append("--train-dataset and --train-on both name training collections; use --train-on alone")
    if args.train_data_dir is not None and args.train_dataset is None:
        problems.append(f"--train-data-dir {args.train_data_dir}: it is --train-dataset's folder, and there is no "
                        "--train-dataset; with --train-on, give --train-data-dirs")
    if args.train_on and protocol != "cross_dataset":
        problems.append(f"--train-on: only --protocol cross_dataset reads it, and the protocol is {protocol}; add "
                        "--protocol cross_dataset or drop --train-on")
    if protocol == "cross_dataset" and not (args.train_on or args.train_dataset):
        problems.append("--protocol cross_dataset needs --train-on (e.g. --train-on paris6k mini)")
    if len(args.train_data_dirs) > len(args.train_on):
        problems.append("--train-data-dirs: more folders than --train-on collections")
    sources = list(zip(args.train_on, [*args.train_data_dirs, *["-"] * len(args.train_on)]))
    for name, folder in dict.fromkeys(s for s in sources if sources.count(s) > 1):
        problems.append(f"--train-on: {name} (folder {folder}) is listed more than once; list each collection once")
    if args.folds is not None and protocol != "group_disjoint":
        problems.append(f"--folds {args.folds}: only --protocol group_disjoint reads it, and the protocol is "
                        f"{protocol}; add --protocol group_disjoint or drop --folds")
    return problems


def output_problems(outs: list[str]) -> list[str]:
    """Why the table could not be saved at each ``--out`` (checked before the run), and paths given twice."""
    problems, seen = [], {}
    for out in outs:
        problem = output_problem(Path(out))
        if problem:
            problems.append(f"--out {out}: {problem}")
        same = os.path.abspath(out)
        if same in seen:
            problems.append(f"--out {out}: the same file as --out {seen[same]}; give each file once")
        seen.setdefault(same, out)
    return problems


def output_problem(path: Path) -> str | None:
    """Why a table could not be written at ``path``: wrong suffix, a folder, no permission, or a parent folder that
    cannot be made; ``None`` if it can be (the folders are made when it is saved)."""
    if path.suffix not in TABLE_SUFFIXES:
        return f"the table is saved as {' or '.join(TABLE_SUFFIXES)}, chosen by suffix"
    if path.is_dir():
        return f"is a folder; name a file in it, e.g. {path / ('results' + path.suffix)}"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file exists and is read-only; choose another name or make it writable"
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, so the folder {path.parent} cannot be made; choose another place"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in {folder}; choose a folder you can write to"
    return None


def fetch_command(args: argparse.Namespace) -> int:
    """``fsrlib fetch``: fetch each benchmark in turn; exit code 1 at the first that fails (its reason printed)."""
    import logging

    from fsrlib.data.download import (
        ChecksumMismatchError,
        DownloadError,
        FolderNotWritableError,
        RarToolMissingError,
        fetch_benchmark,
    )

    logging.basicConfig(level=logging.INFO, format="[fetch] %(message)s")
    root = args.data_dir or data_root()
    for name in args.benchmarks:
        try:
            folder = fetch_benchmark(name, root, mirror=args.mirror, progress=not args.quiet, retries=args.retries)
        except (DownloadError, ChecksumMismatchError, RarToolMissingError, FolderNotWritableError) as exc:
            print(f"[fetch] {name}: {exc}", file=sys.stderr)
            return 1
        print(f"[fetch] {name}: ready in {folder}")
    return 0


def extract_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the ``extract`` arguments that argparse cannot see (empty if nothing)."""
    try:
        check_ratios(args.ratios)
    except ValueError as err:
        return [f"--ratios: {err}"]
    return []


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
    """The run the checked ``experiment`` arguments describe; ``--train-dataset NAME`` becomes ``--protocol
    cross_dataset --train-on NAME``, so the run and what it reports mean one thing."""
    if args.data_dir is None and args.dataset in DATASETS and args.dataset != "mini":
        # not given: $FSRLIB_DATA/<name>, then the shared development subset ($FSRLIB_DEV_DATA), as the chapters do
        found = locate(args.dataset)
        if found is not None:
            args.data_dir = str(found)
            print(f"{args.dataset}: reading {found}", file=sys.stderr)
    names, dirs = list(args.train_on), list(args.train_data_dirs)
    if args.train_dataset is not None:
        names, dirs = [args.train_dataset], [args.train_data_dir or "-"]
    given = [None if d == "-" else d for d in dirs] + [None] * (len(names) - len(dirs))
    found = [d if d is not None or name == "mini" else locate(name) for name, d in zip(names, given)]
    budget = profile_settings(args.profile)
    if args.epochs is not None:  # an explicit epoch count replaces the profile's step budget
        budget.update(epochs=args.epochs, steps=None)
    budget.update({k: v for k, v in (("steps", args.steps), ("critic_iters", args.critic_iters)) if v is not None})
    return ExperimentConfig(dataset=args.dataset, data_dir=args.data_dir, backbone=args.backbone,
                            ratios=tuple(args.ratios), methods=tuple(args.methods), degradation=args.degradation,
                            reference=args.reference, seed=args.seed if args.seed is not None else 0,
                            device=args.device, **budget, protocol=chosen_protocol(args),
                            folds=args.folds if args.folds is not None else 3, train_on=tuple(names),
                            train_data_dirs=tuple(None if d is None else str(d) for d in found),
                            pixel_profile=args.profile if args.profile in ISR_PROFILES else "cpu",
                            unlabeled_photos=None if args.unlabeled_photos.lower() == "none" else args.unlabeled_photos,
                            unlabeled_count=args.unlabeled_count, student_changes=parse_changes(args.student))


def protocol_problem(cfg: ExperimentConfig) -> str | None:
    """Why the test collection or the protocol's training sets cannot be used (missing, too few groups for the
    folds, a copy of the test images...), found by building them before any feature is extracted."""
    try:
        ds = load_dataset(cfg.dataset, cfg.data_dir)
        if any(METHODS[m].trained for m in cfg.methods if m in METHODS):
            resolve_folds(cfg, ds)
    except (ValueError, DatasetNotFoundError, FileNotFoundError) as err:
        return str(err)
    except KeyError as err:
        return str(err.args[0])
    return None


def save_tables(table: pd.DataFrame, outs: list[str]) -> bool:
    """Save ``table`` at every ``--out`` first thing after the run, so no later report can lose it; a path that fails
    all the same is reported and the others are still written. True if every one was saved."""
    saved = True
    for out in outs:
        try:
            print(f"saved {save_table(table, out)}")
        except OSError as err:
            print(f"could not save the table at {out}: {err}", file=sys.stderr)
            saved = False
    return saved


def report(result: ExperimentResult, cfg: ExperimentConfig, seeds: list[int] | None) -> None:
    """Print the experiment's tables: each metric, what trained methods learned from, intervals, harm against raw."""
    table = result.table
    for metric in ("mAP", "mP@5", "distance"):
        print(f"\n{metric} on {cfg.dataset} ({cfg.backbone}), queries at each area ratio:")
        print(pivot(table, metric).round(4).to_string())
    if table.attrs.get("trained_on"):
        print(f"\ntrained methods learned from: {table.attrs['trained_on']}")
    if (seeds and len(seeds) > 1) or cfg.protocol != "paper":
        summary = summarize(result.per_query)
        summary["mAP [95% interval]"] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                                         zip(summary["mAP"], summary["lo"], summary["hi"])]
        print(f"\nmAP with 95% bootstrap intervals over queries (seed means), protocol {cfg.protocol}:")
        print(summary.pivot(index="method", columns="ratio_label", values="mAP [95% interval]").to_string())
        judged = summary.dropna(subset=["verdict"]) if "verdict" in summary else summary.iloc[0:0]
        if len(judged):
            print("\nagainst raw (paired bootstrap over queries):")
            print(judged.pivot(index="method", columns="ratio_label", values="verdict").to_string())
    harmed = worse_than_raw(table)
    if len(harmed):
        print("\nwhere a method's mAP falls below the raw LR feature's (by more than 0.005):")
        print(harmed.round(4).to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    """Run a command; exit code 0, 1 if a table could not be saved, 2 if the arguments were refused (nothing run)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "fetch":
        return fetch_command(args)
    problems = extract_problems(args) if args.command == "extract" else experiment_problems(args)
    if problems:
        parser.error("\n  ".join(["invalid arguments (nothing was run):", *problems]))  # exits with code 2
    if args.command == "extract":
        return extract_command(args)
    try:
        cfg = experiment_config(args)
    except ValueError as err:
        parser.error(str(err))
    problem = protocol_problem(cfg)
    if problem:
        parser.error(f"invalid arguments (nothing was run):\n  {problem}")
    result = run(cfg, seeds=args.seeds, progress=not args.quiet)
    saved = save_tables(result.table, args.out)
    report(result, cfg, args.seeds)
    return 0 if saved else 1


if __name__ == "__main__":
    sys.exit(main())
