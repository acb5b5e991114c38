"""Command line: ``python -m fsrlib experiment --dataset mini --methods raw``."""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction

from pathlib import Path

from .backbones import BACKBONES
from .datasets import DATASETS, DISTRACTORS, locate
from .degrade import DEGRADATIONS, PAPER_RATIOS, REFERENCES, check_ratio, small_size
from .devices import resolve_device
from .distributed import extract_command
from .analysis import summarize
from .experiment import PROFILES, ExperimentConfig, pivot, profile_settings, run, save_table, worse_than_raw
from .methods import DEFAULT_METHODS, EXTRACTORS, METHODS
from .protocols import PROTOCOLS

#: What ``--out`` can write (:func:`fsrlib.experiment.save_table` picks the format by suffix).
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".json")


def parse_ratio(text: str) -> float:
    """An area ratio in (0, 1] from ``"1/16"`` or ``"0.0625"`` (argparse ``type=``)."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"a ratio is a number or fraction like 1/16, not {text!r}") from None
    try:
        return check_ratio(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text}: {err}") from None


def count(minimum: int):
    """argparse ``type=`` for an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def experiment_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the ``experiment`` arguments, found before any image is read (empty if nothing)."""
    problems = []
    for option, name in (("--dataset", args.dataset), ("--train-dataset", args.train_dataset)):
        base, _, extra = (name or "").partition("+")
        if name is not None and (base not in DATASETS or (extra and extra not in DISTRACTORS)):
            problems.append(f"{option} {name}: unknown dataset; known: {', '.join(DATASETS)} (optionally "
                            f"+{' or +'.join(sorted(DISTRACTORS))})")
    if args.backbone not in BACKBONES:
        problems.append(f"--backbone {args.backbone}: unknown; known: {', '.join(BACKBONES)}")
    unknown = [m for m in args.methods if m not in METHODS and m not in EXTRACTORS]
    if unknown:
        problems.append(f"--methods: unknown {', '.join(unknown)}; known: {', '.join([*METHODS, *EXTRACTORS])}")
    if args.reference == "input" and args.backbone in BACKBONES:
        side = BACKBONES[args.backbone].input_size
        for ratio in args.ratios:
            try:
                small_size(side, side, ratio)
            except ValueError as err:
                problems.append(f"--ratios: {err}")
    for name in args.train_on:
        if name not in DATASETS:
            problems.append(f"--train-on {name}: unknown dataset; known: {', '.join(DATASETS)}")
    if args.protocol == "cross_dataset" and not (args.train_on or args.train_dataset):
        problems.append("--protocol cross_dataset needs --train-on (e.g. --train-on paris6k mini)")
    if len(args.train_data_dirs) > len(args.train_on):
        problems.append("--train-data-dirs: more folders than --train-on collections")
    for path in args.out:
        if Path(path).suffix not in TABLE_SUFFIXES:
            problems.append(f"--out {path}: the table is saved as {' or '.join(TABLE_SUFFIXES)}, chosen by suffix")
    try:
        resolve_device(args.device)
    except ValueError as err:
        problems.append(f"--device: {err}")
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fsrlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("experiment", help="run the core experiment and print its tables")
    exp.add_argument("--dataset", default="mini")
    exp.add_argument("--data-dir", default=None)
    exp.add_argument("--backbone", default="efficientnet_lite0")
    exp.add_argument("--ratios", nargs="+", type=parse_ratio, default=list(PAPER_RATIOS))
    exp.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                     help=f"any of: {', '.join([*METHODS, *EXTRACTORS])}")
    exp.add_argument("--degradation", choices=DEGRADATIONS, default="uniform")
    exp.add_argument("--reference", choices=REFERENCES, default="input")
    exp.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                     help="training budget: 'cpu' (book default) or 'paper' (6 epochs, 5 critic updates; "
                          "the ISR models' and the student's full budgets too)")
    exp.add_argument("--epochs", type=count(0), default=None, help="override the profile's training epochs")
    exp.add_argument("--critic-iters", type=count(1), default=None,
                     help="override the profile's critic updates per generator update")
    exp.add_argument("--protocol", choices=PROTOCOLS, default="paper",
                     help="which images trained methods learn from: 'paper' (the collection's non-query images, "
                          "Sec. 5), 'group_disjoint' (k folds over query groups: unseen scenes) or 'cross_dataset' "
                          "(other collections, --train-on)")
    exp.add_argument("--folds", type=count(2), default=3, help="folds of the group_disjoint protocol")
    exp.add_argument("--train-on", nargs="+", default=[], metavar="DATASET",
                     help="the cross_dataset protocol's training collections, e.g. paris6k mini")
    exp.add_argument("--train-data-dirs", nargs="+", default=[], metavar="DIR",
                     help="their folders, in the same order ('-' for the default location)")
    exp.add_argument("--train-dataset", default=None,
                     help="older spelling of '--protocol cross_dataset --train-on NAME'")
    exp.add_argument("--train-data-dir", default=None)
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--seeds", nargs="+", type=int, default=None,
                     help="train every learned method once per seed; tables then show 95%% intervals over queries")
    exp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (checked before any work)")
    exp.add_argument("--out", action="append", default=[], help="save the table (.csv or .json); repeatable")
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    add_extract_parser(sub)
    return parser


def add_extract_parser(sub: argparse._SubParsersAction) -> None:
    """``extract``: cache one split's features, alone or as every rank of ``torchrun`` (:mod:`fsrlib.distributed`)."""
    ext = sub.add_parser("extract", help="extract and cache a split's features (runs unchanged under torchrun)")
    ext.add_argument("--dataset", required=True, help="e.g. paris6k, roxford5k+revisitop1m")
    ext.add_argument("--data-dir", default=None)
    ext.add_argument("--split", choices=["db", "query", "train"], required=True)
    ext.add_argument("--ratios", nargs="+", type=parse_ratio, default=[1.0])
    ext.add_argument("--backbone", default="efficientnet_lite0", choices=sorted(BACKBONES))
    ext.add_argument("--degradation", choices=DEGRADATIONS, default="uniform")
    ext.add_argument("--reference", choices=REFERENCES, default="input")
    ext.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each rank its local GPU)")
    ext.add_argument("--batch-size", type=count(1), default=8)
    ext.add_argument("--chunk-size", type=count(1), default=256, help="images per resumable chunk")
    ext.add_argument("--workers", type=count(0), default=None,
                     help="decoding processes per rank (default: the cores, shared among local ranks)")
    ext.add_argument("--decode", choices=["full", "draft"], default="full",
                     help="'draft': decode JPEGs at reduced size (faster; other pixels, own cache entry)")
    ext.add_argument("--precision", choices=["float32", "float16", "bfloat16"], default="float32",
                     help="autocast the forward in float16/bfloat16 (faster on GPU; own cache entry)")
    ext.add_argument("--cache-dir", default=None, help="default $FSRLIB_CACHE; shared by all ranks and nodes")
    ext.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "extract":
        return extract_command(args)
    if args.command == "experiment":
        problems = experiment_problems(args)
        if problems:
            parser.error("\n  ".join(["invalid arguments (nothing was run):", *problems]))  # exits with code 2
    if args.data_dir is None and args.dataset in DATASETS and args.dataset != "mini":
        # not given: $FSRLIB_DATA/<name>, then the shared development subset ($FSRLIB_DEV_DATA), as the chapters do
        found = locate(args.dataset)
        if found is not None:
            args.data_dir = str(found)
            print(f"{args.dataset}: reading {found}", file=sys.stderr)
    given = [None if d == "-" else d for d in args.train_data_dirs]
    given += [None] * (len(args.train_on) - len(given))
    found = [d if d is not None or name == "mini" else locate(name) for name, d in zip(args.train_on, given)]
    train_dirs = tuple(None if d is None else str(d) for d in found)
    budget = profile_settings(args.profile)
    budget.update({k: v for k, v in (("epochs", args.epochs), ("critic_iters", args.critic_iters)) if v is not None})
    cfg = ExperimentConfig(dataset=args.dataset, data_dir=args.data_dir, backbone=args.backbone,
                           ratios=tuple(args.ratios), methods=tuple(args.methods), degradation=args.degradation,
                           reference=args.reference, seed=args.seed, device=args.device, **budget,
                           protocol=args.protocol, folds=args.folds, train_on=tuple(args.train_on),
                           train_data_dirs=train_dirs,
                           train_dataset=args.train_dataset, train_data_dir=args.train_data_dir,
                           isr_profile=args.profile)
    result = run(cfg, seeds=args.seeds, progress=not args.quiet)
    table = result.table
    for metric in ("mAP", "mP@5", "distance"):
        print(f"\n{metric} on {cfg.dataset} ({cfg.backbone}), queries at each area ratio:")
        print(pivot(table, metric).round(4).to_string())
    if table.attrs.get("trained_on"):
        print(f"\ntrained methods learned from: {table.attrs['trained_on']}")
    if (args.seeds and len(args.seeds) > 1) or args.protocol != "paper":
        summary = summarize(result.per_query)
        summary["mAP [95% interval]"] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                                         zip(summary["mAP"], summary["lo"], summary["hi"])]
        print(f"\nmAP with 95% bootstrap intervals over queries (seed means), protocol {args.protocol}:")
        print(summary.pivot(index="method", columns="ratio_label", values="mAP [95% interval]").to_string())
        judged = summary.dropna(subset=["verdict"]) if "verdict" in summary else summary.iloc[0:0]
        if len(judged):
            print("\nagainst raw (paired bootstrap over queries):")
            print(judged.pivot(index="method", columns="ratio_label", values="verdict").to_string())
    harmed = worse_than_raw(table)
    if len(harmed):
        print("\nwhere a method's mAP falls below the raw LR feature's (by more than 0.005):")
        print(harmed.round(4).to_string(index=False))
    for path in args.out:
        print(f"saved {save_table(table, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
