"""One function that seeds every random number generator fsrlib uses."""
from __future__ import annotations

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


@contextmanager
def deterministic(threads: int = TRAIN_THREADS) -> Iterator[None]:
    """Run a training block with a fixed thread count and PyTorch's deterministic algorithms (warn-only).

    Both settings are restored afterwards, so extraction elsewhere keeps every core.
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
