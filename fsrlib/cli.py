"""The ``fsrlib`` command line's parser: every command and option, its help and its default as it would be typed
(the commands themselves run in :mod:`fsrlib.__main__`)."""
from __future__ import annotations

import argparse
import textwrap
from fractions import Fraction

from fsrlib.data.datasets import DATASETS, DISTRACTORS
from fsrlib.data.protocols import PROTOCOLS
from fsrlib.data.sources import SOURCES
from fsrlib.experiment import PROFILES
from fsrlib.features.backbones import BACKBONES
from fsrlib.features.cache import DECODINGS, PRECISIONS
from fsrlib.features.degrade import DEGRADATIONS, PAPER_RATIOS, REFERENCES, check_ratio, ratio_label
from fsrlib.methods.isr_train import ISR_PROFILES
from fsrlib.methods.registry import METHODS, default_methods

#: What ``fsrlib --help`` says first.
DESCRIPTION = """Command line: ``fsrlib experiment --dataset mini --methods raw`` (or ``python -m fsrlib ...``); ``fsrlib fetch
holidays`` downloads, verifies and unpacks a benchmark; ``fsrlib extract`` caches a split's features."""

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


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written; every option's help ends with its default as it would be typed (``1/4 1/9``, not
    ``[0.25, 0.111]``). Flags, required options and help that already says its default (what ``None`` means) are
    left as they are."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if ("default:" in text or "%(default)" in text or action.required or action.nargs == 0
                or default is None or default is argparse.SUPPRESS):
            return text
        values = list(default) if isinstance(default, (list, tuple)) else [default]
        shown = " ".join(ratio_label(v) if action.type is parse_ratio else str(v) for v in values) or "none"
        return f"{text} (default: {shown.replace('%', '%%')})"

    def _split_lines(self, text: str, width: int) -> list[str]:
        """As argparse does, without breaking ``--train-on`` or ``re-extract`` at their hyphens."""
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def one_of_help(names) -> str:
    """``a, b or c``."""
    names = list(names)
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]


#: Help shared by ``experiment`` and ``extract``.
DEGRADATION_HELP = ("how an image is shrunk to a ratio: 'uniform' takes every k-th pixel with no low-pass filter "
                    "(the paper's), 'antialias' is bicubic resizing with anti-aliasing")
REFERENCE_HELP = ("what a ratio shrinks: 'input' the backbone's square network input (a ratio leaves the same "
                  "pixels on every benchmark), 'original' the photo itself (keeps its aspect ratio)")
DATASET_NAMES = (f"{one_of_help(DATASETS)}, optionally followed by +{' or +'.join(sorted(DISTRACTORS))} to add "
                 "those distractors to the database")


def profile_help() -> str:
    """``--profile``'s help, from :data:`fsrlib.experiment.PROFILES` and :data:`fsrlib.methods.isr_train.ISR_PROFILES`."""
    words = {"epochs": "epochs", "steps": "generator steps", "critic_iters": "critic updates per step"}
    budgets = "; ".join(f"{name}: " + ", ".join(f"{v:,} {words.get(k, k)}" for k, v in PROFILES[name].items())
                        for name in sorted(PROFILES))
    return (f"GAN training budget ({budgets}); 'paper' is as long as Sec. 3.3 trains, 'short' is the paper's epoch "
            f"count on a small training set (under-trained). The ISR models and the student train their own budget "
            f"of that name ({one_of_help(sorted(ISR_PROFILES))}; 'cpu' for the other profiles)")


def build_parser() -> argparse.ArgumentParser:
    """The ``fsrlib`` parser (also ``python -m fsrlib``): the ``experiment``, ``extract`` and ``fetch`` commands."""
    parser = argparse.ArgumentParser(prog="fsrlib", description=DESCRIPTION, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("experiment", help="run the core experiment and print its tables",
                         formatter_class=HelpFormatter)
    exp.add_argument("--dataset", default="mini", help=f"test collection: {DATASET_NAMES} (photos has no queries: "
                     "it is training data, for --train-on)")
    exp.add_argument("--data-dir", default=None,
                     help="--dataset's folder (default: $FSRLIB_DATA's folder for it, else its development subset "
                          "under $FSRLIB_DEV_DATA; mini is built in the cache)")
    exp.add_argument("--backbone", default="efficientnet_lite0",
                     help=f"network the features come from: {one_of_help(BACKBONES)}")
    exp.add_argument("--ratios", nargs="+", type=parse_ratio, default=list(PAPER_RATIOS),
                     help="query area ratios in (0, 1], each once, e.g. 1/4 0.0625; the paper's by default")
    exp.add_argument("--methods", nargs="+", default=list(default_methods()),
                     help="methods to compare, each once: feature mappings "
                          f"{', '.join(m for m, v in METHODS.items() if v.input == 'features')}; or methods that "
                          "re-extract the query, trained on pixels, "
                          f"{', '.join(m for m, v in METHODS.items() if v.input == 'pixels')}")
    exp.add_argument("--degradation", choices=DEGRADATIONS, default="uniform", help=DEGRADATION_HELP)
    exp.add_argument("--reference", choices=REFERENCES, default="input", help=REFERENCE_HELP)
    exp.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help=profile_help())
    exp.add_argument("--epochs", type=count(0), default=None,
                     help="train the GANs for this many epochs instead (default: the --profile's budget)")
    exp.add_argument("--steps", type=count(1), default=None,
                     help="train the GANs for this many generator steps instead (default: the --profile's budget)")
    exp.add_argument("--critic-iters", type=count(1), default=None,
                     help="critic updates per generator update (default: the --profile's)")
    exp.add_argument("--protocol", choices=PROTOCOLS, default=None,
                     help="which images trained methods learn from: 'paper' the collection's non-query images "
                          "(Sec. 5), 'group_disjoint' k folds over query groups (unseen scenes), 'cross_dataset' "
                          "other collections (--train-on) (default: cross_dataset with --train-dataset, else paper)")
    exp.add_argument("--folds", type=count(2), default=None,
                     help="folds of the group_disjoint protocol (default: 3)")
    exp.add_argument("--train-on", nargs="+", default=[], metavar="DATASET",
                     help=f"the cross_dataset protocol's training collections, each once, any of: "
                          f"{', '.join(DATASETS)}")
    exp.add_argument("--train-data-dirs", nargs="+", default=[], metavar="DIR",
                     help="their folders, in the same order ('-' or left out: found as for --data-dir)")
    exp.add_argument("--train-dataset", default=None,
                     help="older spelling of '--protocol cross_dataset --train-on NAME' (default: not used)")
    exp.add_argument("--train-data-dir", default=None,
                     help="--train-dataset's folder (default: found as for --data-dir)")
    exp.add_argument("--seed", type=count(0), default=None, help="seed of the trained methods (default: 0)")
    exp.add_argument("--seeds", nargs="+", type=count(0), default=None,
                     help="train every learned method once per seed; tables then show 95%% intervals over queries "
                          "(default: one run, with --seed)")
    exp.add_argument("--device", default="auto",
                     help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps (checked before any work)")
    exp.add_argument("--unlabeled-photos", default="photos", metavar="FOLDER",
                     help="unlabeled photos the student adds to every fold's training photos: a folder, 'photos' "
                          "(the photos dataset where it is found: $FSRLIB_DATA/photos or $FSRLIB_DEV_DATA's "
                          "photos-unlabeled) or 'none'")
    exp.add_argument("--unlabeled-count", type=count(0), default=None, metavar="N",
                     help="of those, a seeded subset of N, the same for every seed (default: all of them)")
    exp.add_argument("--student", nargs="+", default=[], metavar="FIELD=VALUE",
                     help="change the student's recipe (fsrlib.methods.student.StudentConfig fields, Python "
                          "literals), e.g. crops_per_image=1 \"degradations=('uniform','antialias')\" "
                          "(default: the profile's recipe)")
    exp.add_argument("--out", action="append", default=[],
                     help=f"also save the tidy table here ({' or '.join(TABLE_SUFFIXES)}, chosen by suffix; "
                          "folders are made); repeatable")
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    add_extract_parser(sub)
    add_fetch_parser(sub)
    return parser


def add_fetch_parser(sub: argparse._SubParsersAction) -> None:
    fetch = sub.add_parser("fetch", help="download, verify and unpack benchmarks (safe to rerun: finished files "
                           "are verified against the manifest and kept)", formatter_class=HelpFormatter)
    fetch.add_argument("benchmarks", nargs="+", choices=sorted(SOURCES), metavar="BENCHMARK",
                       help=f"one or more of: {', '.join(sorted(SOURCES))}")
    fetch.add_argument("--data-dir", default=None,
                       help="root folder, one sub-folder per benchmark (default: $FSRLIB_DATA, else ~/fsrlib_data)")
    fetch.add_argument("--mirror", default=None, help="base URL tried first for every file (default: none)")
    fetch.add_argument("--retries", type=count(0), default=2, help="retries per mirror on network errors")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")


def add_extract_parser(sub: argparse._SubParsersAction) -> None:
    """``extract``: cache one split's features, alone or as every rank of ``torchrun`` (:mod:`fsrlib.features.distributed`)."""
    ext = sub.add_parser("extract", help="extract and cache a split's features (runs unchanged under torchrun)",
                         formatter_class=HelpFormatter)
    ext.add_argument("--dataset", required=True, help=f"the collection: {DATASET_NAMES}")
    ext.add_argument("--data-dir", default=None,
                     help="--dataset's folder (default: its folder under $FSRLIB_DATA; mini is built in the cache)")
    ext.add_argument("--split", choices=["db", "query", "train"], required=True,
                     help="which images: the database, the queries (cropped to their boxes) or the training images")
    ext.add_argument("--ratios", nargs="+", type=parse_ratio, default=[1.0],
                     help="area ratios in (0, 1], each once; 1 is the high-resolution feature")
    ext.add_argument("--backbone", default="efficientnet_lite0", choices=sorted(BACKBONES),
                     help="network the features come from")
    ext.add_argument("--degradation", choices=DEGRADATIONS, default="uniform", help=DEGRADATION_HELP)
    ext.add_argument("--reference", choices=REFERENCES, default="input", help=REFERENCE_HELP)
    ext.add_argument("--device", default="auto",
                     help="auto (CUDA, else MPS, else CPU), cpu or cuda (under torchrun: each rank its local GPU)")
    ext.add_argument("--batch-size", type=count(1), default=8,
                     help="images per forward pass (changes the features only by float rounding)")
    ext.add_argument("--chunk-size", type=count(1), default=256,
                     help="images per resumable chunk (rounded down to whole batches)")
    ext.add_argument("--workers", type=count(0), default=None,
                     help="decoding processes per rank, 0 to decode in the main process (default: the cores, "
                          "shared among local ranks)")
    ext.add_argument("--ratios-on-device", choices=("auto", "on", "off"), default="auto",
                     help="'on': workers ship each photo's network input once and --device makes the ratios (same "
                          "features, same cache entries; not with --reference original); 'off': the workers make "
                          "them; 'auto': on for CUDA GPUs")
    ext.add_argument("--decode", choices=DECODINGS, default="full",
                     help="'draft': decode JPEGs at reduced size (faster; other pixels, own cache entry; needs "
                          "--reference input)")
    ext.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="autocast the forward in float16/bfloat16 (faster on GPU; own cache entry)")
    ext.add_argument("--cache-dir", default=None,
                     help="feature cache, shared by all ranks and nodes (default: $FSRLIB_CACHE, else "
                          "~/.cache/fsrlib)")
    ext.add_argument("--quiet", action="store_true", help="no progress bar")
