"""Command line: ``python -m fsrlib experiment --dataset mini --methods raw``."""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction

from .degrade import PAPER_RATIOS
from .experiment import PROFILES, ExperimentConfig, pivot, profile_settings, run_experiment, save_table, worse_than_raw
from .methods import DEFAULT_METHODS, ISR_METHODS, METHODS


def parse_ratio(text: str) -> float:
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"a ratio is a number or fraction like 1/16, not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fsrlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("experiment", help="run the core experiment and print its tables")
    exp.add_argument("--dataset", default="mini")
    exp.add_argument("--data-dir", default=None)
    exp.add_argument("--backbone", default="efficientnet_lite0")
    exp.add_argument("--ratios", nargs="+", type=parse_ratio, default=list(PAPER_RATIOS))
    exp.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                     help=f"any of: {', '.join([*METHODS, *ISR_METHODS])}")
    exp.add_argument("--degradation", choices=["uniform", "antialias"], default="uniform")
    exp.add_argument("--reference", choices=["input", "original"], default="input")
    exp.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                     help="training budget: 'cpu' (book default) or 'paper' (6 epochs, 5 critic updates; "
                          "the ISR models' 'gpu' profile)")
    exp.add_argument("--epochs", type=int, default=None, help="override the profile's training epochs")
    exp.add_argument("--critic-iters", type=int, default=None,
                     help="override the profile's critic updates per generator update")
    exp.add_argument("--train-dataset", default=None, help="train on this dataset's training split (cross-dataset)")
    exp.add_argument("--train-data-dir", default=None)
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--device", default="cpu")
    exp.add_argument("--out", action="append", default=[], help="save the table (.csv or .json); repeatable")
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    budget = profile_settings(args.profile)
    budget.update({k: v for k, v in (("epochs", args.epochs), ("critic_iters", args.critic_iters)) if v is not None})
    cfg = ExperimentConfig(dataset=args.dataset, data_dir=args.data_dir, backbone=args.backbone,
                           ratios=tuple(args.ratios), methods=tuple(args.methods), degradation=args.degradation,
                           reference=args.reference, seed=args.seed, device=args.device, **budget,
                           train_dataset=args.train_dataset, train_data_dir=args.train_data_dir,
                           isr_profile="gpu" if args.profile == "paper" else "cpu")
    table = run_experiment(cfg, progress=not args.quiet)
    for metric in ("mAP", "mP@5", "distance"):
        print(f"\n{metric} on {cfg.dataset} ({cfg.backbone}), queries at each area ratio:")
        print(pivot(table, metric).round(4).to_string())
    if table.attrs.get("trained_on"):
        print(f"\ntrained methods learned from: {table.attrs['trained_on']}")
    harmed = worse_than_raw(table)
    if len(harmed):
        print("\nwhere a method's mAP falls below the raw LR feature's (by more than 0.005):")
        print(harmed.round(4).to_string(index=False))
    for path in args.out:
        print(f"saved {save_table(table, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
