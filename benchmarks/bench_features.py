"""Feature extraction against the bare backbone forward, as a ratio measured in one run (issue 14's goal:
>= 0.8 on a CPU, >= 0.5 on a GPU).

    .venv/bin/python benchmarks/bench_features.py                  # this machine's CPU, library defaults
    python benchmarks/bench_features.py --device cuda --batch-size 256 --images 150 --repeat 20 --ratios 1 1/4 1/9 1/16 1/25 1/36 1/49 1/64
    python benchmarks/bench_features.py --device cuda --batch-size 256 --images 150 --repeat 20 --decode draft --precision float16
    python benchmarks/bench_features.py --device cuda --batch-size 256 --images 50 --repeat 60 --ratios-on-device both

*Pipeline*: ``extract_features`` into an empty temporary cache over the first ``--images`` database photos
(each listed ``--repeat`` times) at every ratio, in ``--rounds`` parts: JPEG decoding and degradation in the
DataLoader workers (``--ratios-on-device``: ``off``; ``on``: the workers ship each photo's network input once and the
device makes the ratios; ``auto``: the library's default; ``both``: each round runs ``on`` then ``off``, each with
its own cache and its own ratio), the forward, float16 storage, the checksummed entry. *Bare forward*: the same
model object, batch size, device and precision on one batch already on the device, timed before the rounds and
after each pipeline run; each run's ratio uses the two slices around it, which cancels drifts of a shared
machine, and the median over rounds is the result. Photos: the shared Paris subset (~1024x768 JPEGs)
when it is beside the checkout, else ``mini`` (~350 px); ``--dataset``/``--data-dir`` choose another.
``--sweep`` adds the bare-forward table over batch sizes and thread counts, ``--worker-cost`` the CPU time a
decoding worker spends per photo, with the ratios made by the worker or on the device (cores x its rate bounds what
a GPU can be fed).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from fsrlib.data.datasets import RetrievalDataset, load_dataset
from fsrlib.features import extract, inputs
from fsrlib.features.backbones import BACKBONES, WeightsUnavailableError, get_backbone_spec, shared_backbone
from fsrlib.features.extract import extract_features

PARIS_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "paris6k-subset"
#: ``--ratios-on-device`` choices: the ``LoaderConfig.ratios_on_device`` values each measures, by label.
PATHS = {"auto": {"auto": None}, "on": {"on": True}, "off": {"off": False}, "both": {"on": True, "off": False}}


def bare_forward(backbone: str, batch: int, n_images: int, device: str, precision: str = "float32") -> float:
    """Images/s of the pipeline's own model on one random normalised batch already on ``device``."""
    spec, model = get_backbone_spec(backbone), shared_backbone(backbone, str(torch.device(device)))
    x = torch.randn(batch, 3, spec.input_size, spec.input_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)  # the layout the pipeline's inputs have
    with torch.inference_mode(), extract._autocast(torch.device(device), precision):
        for _ in range(3 if device.startswith("cuda") else 1):
            model(x)  # warm-up (cuDNN picks its kernels)
        _sync(device)
        start, done = time.perf_counter(), 0
        while done < n_images:
            out = model(x)
            done += batch
        out.float().cpu()
        _sync(device)
    return done / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def photos(args: argparse.Namespace) -> RetrievalDataset:
    if args.dataset is None:
        found = (PARIS_SUBSET / "paris_120310").is_dir()
        name, data_dir = ("paris6k", PARIS_SUBSET) if found else ("mini", None)
    else:
        name, data_dir = args.dataset, args.data_dir
    ds = load_dataset(name, data_dir)
    return dataclasses.replace(ds, images=ds.images[:args.images] * args.repeat, queries=(), gnd=())


def worker_cost(ds: RetrievalDataset, ratios: tuple[float, ...], n_photos: int = 30) -> None:
    """CPU time one worker spends per photo, full and draft decoding: decoding and every ratio, or (ratios on the
    device) decoding and the one network input; what bounds a GPU."""
    items = ds.split_items("db")[:n_photos]
    for decode in ("full", "draft"):
        for made_by, prepare in (("the worker", lambda item: inputs.network_inputs(ds, item, ratios, decode=decode)),
                                 ("the device", lambda item: inputs.reference_image(ds, item, decode=decode))):
            start = time.process_time()
            for item in items:
                prepare(item)
            per_photo = (time.process_time() - start) / len(items)
            print(f"worker, decode {decode}, ratios made by {made_by}: {per_photo * 1000:.1f} ms CPU per photo = "
                  f"{len(ratios) / per_photo:.0f} network inputs/s per core at {len(ratios)} ratios")


def sweep(device: str) -> None:
    print("| backbone | batch | threads | images/s (forward only) |\n|---|---|---|---|")
    threads = torch.get_num_threads()
    for name in BACKBONES:
        for n_threads in sorted({1, threads}):
            torch.set_num_threads(n_threads)
            for batch in (1, 8, 64):
                try:
                    ips = bare_forward(name, batch, 64, device)
                except WeightsUnavailableError:
                    print(f"| {name} | - | - | skipped: weights not available offline |")
                    break
                print(f"| {name} | {batch} | {n_threads} | {ips:.1f} |")
    torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--images", type=int, default=48, help="database photos to extract (first N)")
    parser.add_argument("--repeat", type=int, default=1, help="list each photo N times (long enough for a GPU)")
    parser.add_argument("--rounds", type=int, default=3, help="pipeline runs, each between two forward slices")
    parser.add_argument("--ratios", nargs="+", default=["1", "1/4", "1/16", "1/64"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--decode", choices=["full", "draft"], default="full")
    parser.add_argument("--precision", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--ratios-on-device", choices=list(PATHS), default="auto",
                        help="where the ratios are made; 'both': each round measures 'on' then 'off'")
    parser.add_argument("--sweep", action="store_true", help="also the bare-forward table over batch sizes")
    parser.add_argument("--worker-cost", action="store_true", help="also the CPU time per photo in a worker")
    args = parser.parse_args()
    ratios = tuple(float(Fraction(r)) for r in args.ratios)
    if args.sweep:
        sweep(args.device)
    ds = photos(args)
    if args.worker_cost:
        worker_cost(ds, ratios)
    options = {"backbone": args.backbone, "device": args.device, "batch_size": args.batch_size,
               "workers": args.workers, "decode": args.decode, "precision": args.precision, "progress": False}
    paths = PATHS[args.ratios_on_device]
    parts = [dataclasses.replace(ds, images=ds.images[i::args.rounds]) for i in range(args.rounds)]
    per_round = max(len(p.images) for p in parts) * len(ratios)
    forward = [bare_forward(args.backbone, args.batch_size, per_round, args.device, args.precision)]
    pipeline: dict[str, list[float]] = {label: [] for label in paths}
    rows: dict[str, list[float]] = {label: [] for label in paths}
    with tempfile.TemporaryDirectory() as cache:
        for i, part in enumerate(parts):  # each run between two bare-forward slices: drifts of the machine cancel
            for label, on_device in paths.items():  # each path its own cache: neither reads the other's entries
                start = time.perf_counter()
                extract_features(part, "db", ratios, cache_dir=Path(cache) / f"{i}-{label}",
                                 ratios_on_device=on_device, **options)
                pipeline[label].append(len(part.images) * len(ratios) / (time.perf_counter() - start))
                forward.append(bare_forward(args.backbone, args.batch_size, per_round, args.device, args.precision))
                rows[label].append(pipeline[label][-1] / np.mean(forward[-2:]))
                print(f"round {i + 1}/{args.rounds}, ratios on device {label}: pipeline {pipeline[label][-1]:.1f} "
                      f"images/s, {rows[label][-1]:.2f} of the bare forward", flush=True)
        label = next(iter(paths))
        start = time.perf_counter()
        extract_features(parts[0], "db", ratios, cache_dir=Path(cache) / f"0-{label}", **options)
        warm = time.perf_counter() - start
    workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    print(f"{ds.name}: {len(ds.images)} photos x {len(ratios)} ratios in {args.rounds} rounds; {args.device}, batch "
          f"{args.batch_size}, {torch.get_num_threads()} threads, {workers} workers, decode {args.decode}, "
          f"{args.precision}")
    print("bare forward   " + " ".join(f"{f:8.1f}" for f in forward) + " images/s (before, then after each run)")
    for label in paths:
        print(f"ratios on device {label}:")
        print("whole pipeline " + " ".join(f"{p:8.1f}" for p in pipeline[label]) + " images/s (cold cache)")
        print("ratio          " + " ".join(f"{r:8.2f}" for r in rows[label]) + f"; median "
              f"{np.median(rows[label]):.2f} of the bare forward")
    print(f"cache load {warm * 1000:.0f} ms")

if __name__ == "__main__":
    main()
