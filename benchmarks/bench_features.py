"""Feature-extraction throughput (images/s per backbone, batch size, threads) and cache load time.

    .venv/bin/python benchmarks/bench_features.py [--device cpu] [--images 64]

Backbones whose weights are not available (vgg16_fc7 offline) are reported as skipped.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from fsrlib.backbones import BACKBONES, WeightsUnavailableError, get_backbone_spec, load_backbone
from fsrlib.datasets import load_dataset
from fsrlib.features import extract_features


def forward_throughput(name: str, batch: int, threads: int, n_images: int, device: str) -> float:
    torch.set_num_threads(threads)
    spec = get_backbone_spec(name)
    model = load_backbone(name, device)
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(batch)]
    x = spec.to_tensor(imgs).to(device)
    with torch.inference_mode():
        model(x)  # warm-up
        start, done = time.perf_counter(), 0
        while done < n_images:
            model(x)
            done += batch
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    print("| backbone | batch | threads | images/s (forward only) |\n|---|---|---|---|")
    for name in BACKBONES:
        for threads in sorted({1, torch.get_num_threads()}):
            for batch in (1, 4, 8, 16, 64):
                try:
                    ips = forward_throughput(name, batch, threads, args.images, args.device)
                except WeightsUnavailableError:
                    print(f"| {name} | - | - | skipped: weights not available offline |")
                    break
                print(f"| {name} | {batch} | {threads} | {ips:.1f} |")
            else:
                continue
            break
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ds = load_dataset("mini")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        extract_features(ds, "db", (1.0, 1 / 16), cache_dir=cache, progress=False, device=args.device)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        extract_features(ds, "db", (1.0, 1 / 16), cache_dir=cache, progress=False, device=args.device)
        warm = time.perf_counter() - start
    n = 2 * len(ds.images)
    print(f"\nmini db, 2 scales ({n} images incl. JPEG decode and degradation): cold {cold:.2f}s "
          f"({n / cold:.1f} images/s), cache load {warm * 1000:.1f} ms")


if __name__ == "__main__":
    main()
