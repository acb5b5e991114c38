"""Training throughput of FSR-GAN (feature pairs/s) and peak memory, for 1280-d and 4096-d features.

    .venv/bin/python benchmarks/bench_training.py [--device cpu] [--steps 10]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from fsrlib.methods.train import TrainConfig, train_fsrgan


def synthetic_features(dim: int, n: int) -> dict[float, np.ndarray]:
    rng = np.random.default_rng(0)
    hr = rng.normal(size=(n, dim)).astype(np.float32)
    return {1.0: hr, 0.25: hr + 0.1 * rng.normal(size=hr.shape).astype(np.float32)}


def pairs_per_second(dim: int, loss: str, critic_iters: int, steps: int, batch: int, device: str) -> float:
    feats = synthetic_features(dim, steps * batch)  # one epoch = `steps` generator steps
    cfg = TrainConfig(loss=loss, epochs=1, batch_size=batch, critic_iters=critic_iters, val_fraction=0.0,
                      device=device)
    start = time.perf_counter()
    train_fsrgan(feats, cfg)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    pairs_per_second(1280, "mse", 1, 2, args.batch, args.device)  # warm-up: thread pools, allocator
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}")
    print("| dim | loss | critic iters | pairs/s (generator steps) |\n|---|---|---|---|")
    for dim in (1280, 4096):
        for loss, ci in (("mse", 0), ("gan", 1), ("gan", 5)):
            pps = pairs_per_second(dim, loss, max(ci, 1), args.steps, args.batch, args.device)
            print(f"| {dim} | {loss} | {ci if loss == 'gan' else '-'} | {pps:.0f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
