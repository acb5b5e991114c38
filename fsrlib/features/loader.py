"""The worker side of feature extraction: which rows to compute (:class:`Job`), how (:class:`LoaderConfig`), and
the ``torch.utils.data`` pieces that decode each photo once in worker processes and hand its network inputs, at
every ratio of its job, to the forward in :mod:`fsrlib.features.extract`.

Nothing here changes a feature: the pixels are :func:`fsrlib.features.inputs.network_inputs`' (or, made on the
device, the same), and the batch grid is fixed by :attr:`LoaderConfig.unit`. A worker's error comes back to the
calling process as it was raised, naming the image (:class:`Failure`).
"""
from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fsrlib.data.datasets import ImageItem, RetrievalDataset
from fsrlib.devices import resolve_device
from fsrlib.features.cache import FeatureRecipe
from fsrlib.features.inputs import network_inputs, reference_image


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class LoaderConfig:
    """How features are computed; nothing here changes them except through float rounding.

    Batches lie on a global grid of ``unit = min(batch_size, chunk_size)`` rows and
    chunks hold a whole number of batches (``chunk_size`` rounded down), so the
    result does not depend on ``chunk_size``, on interruptions or on sharding.
    ``workers``: decoding processes (``None``: one per CPU core; ``0``: in this process).
    ``mp_context``: their start method (``"fork"``, ``"spawn"``...; ``None``: the platform's default).
    ``ratios_on_device``: where the recipe allows it (``reference="input"``, no upscaler), the workers ship each
    photo's ``S x S`` uint8 network input once and ``device`` makes every ratio from it
    (:func:`fsrlib.features.degrade_tensor.degrade_batch`, the same pixels as the workers' PIL, so the same features and
    cache entries); ``None``: on CUDA GPUs only. On the CPU the workers' PIL costs a quarter to a third of
    ``degrade_batch``'s CPU time per input and runs in parallel (MPS computes ``degrade_batch`` on the CPU too).
    """

    device: str = "cpu"
    batch_size: int = 8
    chunk_size: int = 256
    workers: int | None = None
    mp_context: str | None = None
    ratios_on_device: bool | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.chunk_size < 1 or (self.workers is not None and self.workers < 0):
            raise ValueError(f"batch_size and chunk_size must be >= 1 and workers >= 0, got {self}")
        if self.ratios_on_device not in (None, True, False):
            raise ValueError(f"ratios_on_device must be True, False or None (auto), got {self.ratios_on_device!r}")
        # "gpu", or "cuda" without a GPU, fail here with a clear message; "auto" becomes the best device here
        object.__setattr__(self, "device", resolve_device(self.device))

    @property
    def unit(self) -> int:
        return min(self.batch_size, self.chunk_size)

    @property
    def chunk_rows(self) -> int:
        return self.chunk_size // self.unit * self.unit

    @property
    def n_workers(self) -> int:
        return cpu_cores() if self.workers is None else self.workers

    @property
    def degrades_on_device(self) -> bool:
        """``ratios_on_device``, with ``None`` resolved: whether the device makes the ratios where it can."""
        if self.ratios_on_device is None:
            return torch.device(self.device).type == "cuda"
        return bool(self.ratios_on_device)


@dataclass(frozen=True)
class Job:
    """Rows ``[start, stop)`` of a split to compute at each of ``ratios``: one chunk per ratio."""

    start: int
    stop: int
    ratios: tuple[float, ...]


@dataclass
class Failure:
    """An exception raised in a worker, carried back to be raised in the calling process as it was."""

    error: BaseException


def portable_error(err: BaseException, path: Path) -> BaseException:
    if str(path) not in str(err) and hasattr(err, "add_note"):
        err.add_note(f"while preparing image {path}")
    try:
        return pickle.loads(pickle.dumps(err))
    except Exception:
        return RuntimeError(f"{type(err).__name__} while preparing image {path}: {err}")


class JobImages(Dataset):
    """Worker side: row ``i`` of a split at ``ratios`` as ``(R, S, S, 3)`` uint8 network inputs, or with
    ``ratios_on_device`` as ``(1, S, S, 3)``: the undegraded input, which the device degrades at every ratio.

    Holds only picklable data (the dataset description, the items, the recipe), so
    workers start with ``fork`` or ``spawn`` alike; errors come back as :class:`Failure`.
    """

    def __init__(self, dataset: RetrievalDataset, items: Sequence[ImageItem], recipe: FeatureRecipe,
                 size: int, ratios_on_device: bool = False) -> None:
        self.dataset, self.items, self.recipe, self.size = dataset, tuple(items), recipe, size
        self.ratios_on_device = ratios_on_device

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: tuple[int, tuple[float, ...]]) -> torch.Tensor | Failure:
        row, ratios = index
        item = self.items[row]
        try:
            if self.ratios_on_device:
                inputs = [reference_image(self.dataset, item, size=self.size, decode=self.recipe.decode)]
            else:
                inputs = network_inputs(self.dataset, item, ratios, degradation=self.recipe.degradation,
                                        reference=self.recipe.reference, size=self.size, decode=self.recipe.decode)
        except Exception as err:
            return Failure(portable_error(err, self.dataset.path(item.path)))
        return torch.from_numpy(np.stack([np.asarray(x) for x in inputs]))


class JobRows(Sampler):
    """``(row, ratios)`` for every row of every job, in order."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = list(jobs)

    def __len__(self) -> int:
        return sum(j.stop - j.start for j in self.jobs)

    def __iter__(self) -> Iterator[tuple[int, tuple[float, ...]]]:
        for job in self.jobs:
            for row in range(job.start, job.stop):
                yield row, job.ratios


def image_loader(dataset: RetrievalDataset, items: Sequence[ImageItem], recipe: FeatureRecipe, size: int,
                 jobs: Sequence[Job], loader: LoaderConfig, ratios_on_device: bool) -> DataLoader:
    """Every row of ``jobs`` as :class:`JobImages` gives it, in order, from ``loader``'s worker processes."""
    n_rows = sum(j.stop - j.start for j in jobs)
    workers = min(loader.n_workers, n_rows)
    images = JobImages(dataset, items, recipe, size, ratios_on_device)
    return DataLoader(images, batch_size=None, sampler=JobRows(jobs), num_workers=workers, persistent_workers=False,
                      prefetch_factor=max(2, math.ceil(loader.unit / workers)) if workers else None,
                      multiprocessing_context=loader.mp_context if workers else None)


def next_pixels(rows: Iterator) -> torch.Tensor:
    item = next(rows)
    if isinstance(item, Failure):
        raise item.error
    return item
