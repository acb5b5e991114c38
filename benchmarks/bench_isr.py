"""ISR baselines: training time per profile, PSNR/SSIM against bicubic, inference throughput per ratio.

    .venv/bin/python benchmarks/bench_isr.py [--dataset mini] [--data-dir DIR] [--profile cpu] [--models srcnn vdsr]

Trains (or loads from the cache) each model on the dataset's training split, exactly as the core experiment
does, then measures on held-out database images: PSNR/SSIM on Y at x2..x8 (the paper's area ratios 1/4..1/64)
and super-resolution throughput (224x224 images per second, batch 1, this machine's threads).
"""
from __future__ import annotations

import argparse
import time

import torch
from PIL import Image

from fsrlib.data.datasets import load_dataset
from fsrlib.data.imageio import load_image
from fsrlib.features.degrade import PAPER_RATIOS, degrade, ratio_label
from fsrlib.methods.isr_train import ISR_PROFILES, evaluate_isr, luma_pairs, trained_upscaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mini")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--models", nargs="+", default=["srcnn", "vdsr"])
    parser.add_argument("--test-images", type=int, default=40)
    args = parser.parse_args()
    ds = load_dataset(args.dataset, args.data_dir)
    print(f"{ds.summary()}; torch threads: {torch.get_num_threads()}")
    upscalers = {}
    for name in args.models:
        t0 = time.perf_counter()
        upscalers[name] = trained_upscaler(ds, name, args.profile)
        trained = sum(h.get("train_seconds", 0.0) for h in upscalers[name].histories.values())
        print(f"{name}: ready in {time.perf_counter() - t0:.1f} s; training took {trained:.1f} s when it ran "
              f"({len(upscalers[name].histories)} network(s), profile {args.profile}: "
              f"{ISR_PROFILES[args.profile][name]})")
    hr, lr = luma_pairs(ds, "db", PAPER_RATIOS, limit=args.test_images)
    table = evaluate_isr(upscalers, hr, lr)
    print(f"\nPSNR / SSIM on Y, {len(hr)} held-out images:")
    print(table.pivot_table(index="method", columns="scale", values=["PSNR", "SSIM"], sort=False).round(3)
          .to_string())
    image = load_image(ds.path(ds.images[0]))
    print("\n| model | ratio | images/s (224x224) |\n|---|---|---|")
    for name, up in upscalers.items():
        for r in PAPER_RATIOS:
            if not up.supports(r):
                continue
            x: Image.Image = degrade(image, r).upsampled
            up(x, r)
            t0 = time.perf_counter()
            n = 5
            for _ in range(n):
                up(x, r)
            print(f"| {name} | {ratio_label(r)} | {n / (time.perf_counter() - t0):.2f} |")


if __name__ == "__main__":
    main()
