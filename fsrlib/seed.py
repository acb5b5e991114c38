"""One function that seeds every random number generator fsrlib uses."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


#: Threads used while training: a fixed count keeps the reduction order (and so the float rounding) the same on
#: every machine with at least this many cores. Results still differ between CPU kinds (BLAS picks different
#: kernels), which is why the book checks trained numbers with tolerances and claims only what holds over seeds.
TRAIN_THREADS = 2


def train_threads(threads: int = TRAIN_THREADS) -> int:
    """The thread count a training runs with: ``threads``, or ``$FSRLIB_TRAIN_THREADS`` where it is set (on a
    machine shared by several jobs: two trainings of 2 threads each on 2 cores run many times slower than one after
    the other), never more than the cores this process may use (more threads than cores only wait for each other)."""
    given = os.environ.get("FSRLIB_TRAIN_THREADS")
    if given:
        try:
            threads = int(given)
        except ValueError:
            raise ValueError(f"FSRLIB_TRAIN_THREADS={given!r}: expected a whole number of threads, e.g. 1") from None
        if threads < 1:
            raise ValueError(f"FSRLIB_TRAIN_THREADS={given!r}: at least 1 thread")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(threads, cores))


@contextmanager
def deterministic(threads: int = TRAIN_THREADS) -> Iterator[None]:
    """Run a training block with a fixed thread count (:func:`train_threads`) and PyTorch's deterministic algorithms
    (warn-only).

    Both settings are restored afterwards, so extraction elsewhere keeps every core.
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(train_threads(threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
