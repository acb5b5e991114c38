"""Feature extraction over several processes, GPUs and machines with ``torchrun`` (``torch.distributed``).

``python -m fsrlib extract ...`` runs the same alone or as every rank of::

    torchrun --nproc_per_node 8 -m fsrlib extract --dataset roxford5k+revisitop1m --split db --device cuda
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 --rdzv-id fsr \\
        -m fsrlib extract ... --cache-dir /shared/fsrlib-cache

With ``WORLD_SIZE > 1`` (set by torchrun) it joins the process group through
``env://`` (gloo on CPU, NCCL on CUDA, one GPU per local rank). Rank 0 alone
reads the cache and plans the work (keeping the valid chunks of earlier runs,
deleting damaged ones) and broadcasts the plan; every rank computes every
``world``-th chunk into the cache's ``.partial`` folders, which must be one
shared folder on every machine; after a barrier rank 0 checks the chunks and
joins them into the final entries. Batches lie on one global grid, so the
result is bit for bit that of one process with the same thread count
(torchrun sets ``OMP_NUM_THREADS=1``). A rank that dies makes torchrun stop
the others; rerunning the same command (with any number of ranks) computes
only the chunks that are missing.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from fsrlib.data.datasets import DatasetNotFoundError, RetrievalDataset, load_dataset
from fsrlib.devices import resolve_device
from fsrlib.features.degrade import ratio_label
from fsrlib.features.extract import (
    CachePlan,
    FeatureRecipe,
    assemble,
    compute_jobs,
    fill_cache,
    lookup_features,
    pending_jobs,
)
from fsrlib.features.loader import LoaderConfig
from fsrlib.paths import locked

#: How long a rank waits for the others at the barrier (the slowest rank's share of the work, at most).
BARRIER_TIMEOUT = timedelta(hours=6)


def world_size() -> int:
    """The number of ranks torchrun started (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def extract_sharded(dataset: RetrievalDataset, split: str, ratios: Sequence[float],
                    recipe: FeatureRecipe | None = None, loader: LoaderConfig | None = None, *,
                    cache_dir: str | Path | None = None, progress: bool = True,
                    timeout: timedelta = BARRIER_TIMEOUT) -> CachePlan | None:
    """Cache ``split``'s features at ``ratios``, shared over the torchrun ranks; see the module docstring.

    Returns the completed plan on rank 0 (and when run alone; ``plan.features()`` gives
    ``{ratio: (N, D) float32}``, ``plan.paths`` the entries), ``None`` on the other ranks.
    ``recipe`` and ``loader`` default to :class:`FeatureRecipe` and :class:`LoaderConfig` defaults;
    ``loader.workers=None`` gives each rank an equal share of the machine's cores.
    """
    recipe, loader = recipe or FeatureRecipe(), loader or LoaderConfig()
    if loader.workers is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        loader = replace(loader, workers=max(1, loader.n_workers // local))
    if world_size() <= 1:
        return fill_cache(dataset, split, ratios, recipe, loader, cache_dir=cache_dir, progress=progress)
    with process_group(loader.device, timeout) as (rank, world, device), ExitStack() as hold:
        loader = replace(loader, device=device)
        plan = None
        if rank == 0:  # rank 0 holds the entries' locks until it has assembled them (another run waits)
            plan = lookup_features(dataset, split, ratios, recipe, cache_dir=cache_dir)
            hold.enter_context(locked([plan.paths[r] for r in plan.missing], "feature cache entry"))
            plan = lookup_features(dataset, split, ratios, recipe, cache_dir=cache_dir)
        shared = [(plan.keys, plan.paths, pending_jobs(plan, loader)) if plan is not None else None]
        dist.broadcast_object_list(shared, src=0)
        keys, paths, jobs = shared[0]
        if plan is None:
            plan = CachePlan(dataset, split, dataset.split_items(split), recipe, keys, paths)
        compute_jobs(plan, jobs[rank::world], loader, progress=progress and rank == 0)
        dist.barrier()
        if rank != 0:
            return None
        assemble(plan, loader)
        return plan


@contextmanager
def process_group(device: str, timeout: timedelta = BARRIER_TIMEOUT) -> Iterator[tuple[int, int, str]]:
    """Join torchrun's process group (``env://``): gloo on CPU, NCCL on CUDA with this rank's local GPU.

    Yields ``(rank, world_size, device)``; leaves the group on exit if it joined it.
    """
    device = resolve_device(device)  # "auto" becomes the best device here
    kind = torch.device(device).type
    if kind == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", init_method="env://", timeout=timeout)
    try:
        yield dist.get_rank(), dist.get_world_size(), device
    finally:
        if joined:
            dist.destroy_process_group()


def extract_command(args: argparse.Namespace) -> int:
    """``python -m fsrlib extract``: check the arguments, extract, print where each entry is (rank 0)."""
    try:
        resolve_device(args.device)
        recipe = FeatureRecipe(args.backbone, args.degradation, args.reference, decode=args.decode,
                               precision=args.precision)
        loader = LoaderConfig(args.device, args.batch_size, args.chunk_size, args.workers,
                              ratios_on_device={"auto": None, "on": True, "off": False}[args.ratios_on_device])
        dataset = load_dataset(args.dataset, args.data_dir)
    except (ValueError, KeyError, DatasetNotFoundError) as err:
        raise SystemExit(f"python -m fsrlib extract: {err}") from None
    plan = extract_sharded(dataset, args.split, args.ratios, recipe, loader, cache_dir=args.cache_dir,
                           progress=not args.quiet)
    for r, feats in (plan.found.items() if plan is not None else ()):
        print(f"{dataset.name}/{args.split} at ratio {ratio_label(r)}: {feats.shape[0]} x {feats.shape[1]} "
              f"features in {plan.paths[r]}")
    return 0
