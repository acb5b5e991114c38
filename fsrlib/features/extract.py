"""Batched feature extraction at every scale, fed by worker processes, with a verified, resumable cache.

:func:`extract_features` is three steps, each usable on its own (the
distributed extraction in :mod:`fsrlib.features.distributed` shares them out over ranks):

1. :func:`lookup_features`: which ratios the cache already holds (see
   :mod:`fsrlib.features.cache` for the key and the checks);
2. :func:`pending_jobs` and :func:`compute_jobs`: the rows still missing, read
   by a ``torch.utils.data.DataLoader`` whose worker processes decode each
   image once and degrade it at every missing ratio (or, with
   ``LoaderConfig.ratios_on_device``, :mod:`fsrlib.features.loader`, ship its undegraded network input once
   and the device degrades it: the same pixels), forwarded in batches and
   written chunk by chunk to the entry's ``.partial`` folder;
3. :func:`assemble`: the chunks joined into the final, checksummed entries.

With the defaults the features are bit-identical to a plain loop of
``degrade(load_image(...))`` and ``BackboneSpec.to_tensor`` in batches of
``batch_size``. Two options change the numbers and so enter the cache key:
``decode="draft"`` (JPEGs decoded at 1/2, 1/4 or 1/8 size in the DCT domain,
never below the 224 px network input) and ``precision="float16"`` or
``"bfloat16"`` (autocast forward; float16 moves features by about 1e-5 in
cosine, bfloat16 by about 1e-3, which moved mini's mAP by 0.007). Features are stored as float16 by default
(``benchmarks/bench_float16.py`` measures that it changes no mAP on our data)
and returned as float32.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from fsrlib.data.datasets import ImageItem, RetrievalDataset
from fsrlib.devices import resolve_device
from fsrlib.features.backbones import BackboneSpec, get_backbone_spec, shared_backbone
from fsrlib.features.cache import (
    FORMAT_VERSION,
    STORE_DTYPES,
    FeatureRecipe,
    assemble_entry,
    cache_key,
    cache_path,
    key_digest,
    load_entry,
    missing_intervals,
    save_chunk,
    save_entry,
    scan_chunks,
)
from fsrlib.features.degrade import Degradation, Reference, check_ratio
from fsrlib.features.degrade_tensor import degrade_batch
from fsrlib.features.loader import Job, LoaderConfig, image_loader, next_pixels
from fsrlib.paths import cache_dir_or_default, locked

__all__ = ["FORMAT_VERSION", "STORE_DTYPES", "CachePlan", "FeatureRecipe", "NetworkVariant", "PixelTransform",
           "assemble", "cache_key", "cache_path", "compute_jobs", "extract_features", "image_features", "key_digest",
           "fill_cache", "load_entry", "lookup_features", "pending_jobs", "save_entry"]


@runtime_checkable
class PixelTransform(Protocol):
    """What turns a degraded, up-sampled query image into the image the backbone sees, before extraction: an ISR
    network (:class:`fsrlib.methods.isr.Upscaler`) or anything with the same four members. Its ``cache_id`` enters the
    feature cache's key, so two transforms never share entries; features never depend on how it was made."""

    name: str
    cache_id: str

    def supports(self, ratio: float) -> bool: ...

    def __call__(self, image: Image.Image, ratio: float) -> Image.Image: ...


@dataclass(frozen=True)
class NetworkVariant:
    """A network extraction runs instead of the recipe's backbone: same input (the backbone's preprocessing),
    same feature size, e.g. a student fine-tuned from it (:mod:`fsrlib.methods.student`). Its ``cache_id`` names the
    weights and enters the cache key, so its entries never mix with the backbone's or another variant's."""

    cache_id: str
    module: nn.Module


@dataclass
class CachePlan:
    """The cache lookup for one split: where each ratio's entry lives and the ones found (``(N, D)`` stored)."""

    dataset: RetrievalDataset
    split: str
    items: tuple[ImageItem, ...]
    recipe: FeatureRecipe
    keys: dict[float, dict]
    paths: dict[float, Path]
    found: dict[float, np.ndarray] = field(default_factory=dict)
    upscaler: PixelTransform | None = None
    network: NetworkVariant | None = None

    @property
    def spec(self) -> BackboneSpec:
        return get_backbone_spec(self.recipe.backbone)

    @property
    def missing(self) -> list[float]:
        return [r for r in self.keys if r not in self.found]

    def ratios_on_device(self, loader: LoaderConfig) -> bool:
        """Whether ``loader`` makes this plan's ratios on its device: asked to, from the network input
        (``reference="input"``) and with no ISR upscaler (it works on PIL images, in :func:`_upscale`)."""
        return loader.degrades_on_device and self.recipe.reference == "input" and self.upscaler is None

    def features(self) -> dict[float, np.ndarray]:
        """``{ratio: (N, D) float32}`` for every ratio (all must have been found or assembled)."""
        return {r: self.found[r].astype(np.float32) for r in self.keys}


def lookup_features(dataset: RetrievalDataset, split: str, ratios: Sequence[float],
                    recipe: FeatureRecipe | None = None, *, cache_dir: str | Path | None = None,
                    upscaler: PixelTransform | None = None, network: NetworkVariant | None = None) -> CachePlan:
    """Check the arguments and load every cached entry of ``split`` at ``ratios`` (``recipe``: default
    :class:`FeatureRecipe`); see :class:`CachePlan`."""
    recipe = recipe or FeatureRecipe()
    for r in ratios:
        check_ratio(r)
    items = dataset.split_items(split)
    if not items:
        raise ValueError(f"{dataset.name} has no images in split {split!r}")
    if upscaler is not None:
        unsupported = [r for r in ratios if r != 1.0 and not upscaler.supports(r)]  # full size is never transformed
        if unsupported:
            raise ValueError(f"upscaler {upscaler.name} was not trained for ratios {unsupported}")
    spec = get_backbone_spec(recipe.backbone)
    cache = cache_dir_or_default(cache_dir)
    keys = {r: cache_key(dataset, items, spec, r, recipe.degradation, recipe.reference, recipe.store_dtype,
                         None if upscaler is None else upscaler.cache_id, None if network is None else network.cache_id,
                         decode=recipe.decode, precision=recipe.precision) for r in dict.fromkeys(ratios)}
    paths = {r: cache_path(cache, key, split) for r, key in keys.items()}
    found = {r: f for r in keys if (f := load_entry(paths[r], keys[r], spec.dim)) is not None}
    return CachePlan(dataset, split, items, recipe, keys, paths, found, upscaler, network)


def pending_jobs(plan: CachePlan, loader: LoaderConfig) -> list[Job]:
    """The chunks still to compute for the plan's missing ratios, after keeping the valid ones on disk.

    A job covers rows that miss at several ratios at once, so each image is decoded once for all of them.
    """
    by_rows: dict[tuple[int, int], list[float]] = {}
    n, dim = len(plan.items), plan.spec.dim
    for r in plan.missing:
        done = scan_chunks(plan.paths[r], n, dim, plan.recipe.store_dtype, loader.unit)
        for rows in missing_intervals(list(done), n, loader.chunk_rows):
            by_rows.setdefault(rows, []).append(r)
    return [Job(a, b, tuple(rs)) for (a, b), rs in sorted(by_rows.items())]


def compute_jobs(plan: CachePlan, jobs: Sequence[Job], loader: LoaderConfig, *, progress: bool = True,
                 on_chunk: Callable[[float, int], None] | None = None) -> None:
    """Compute ``jobs`` and save each as a chunk of the plan's entries (final entries are not written).

    ``on_chunk(ratio, start)`` is called after each chunk is saved.
    """
    if not jobs:
        return
    device = torch.device(loader.device)
    model = shared_backbone(plan.recipe.backbone, str(device)) if plan.network is None else \
        plan.network.module.to(device).eval()
    bar = tqdm(total=sum((j.stop - j.start) * len(j.ratios) for j in jobs), disable=not progress, unit="img",
               desc=f"{plan.dataset.name}/{plan.split} {plan.recipe.backbone}")
    on_device = plan.ratios_on_device(loader)
    rows = iter(image_loader(plan.dataset, plan.items, plan.recipe, plan.spec.input_size, jobs, loader, on_device))
    try:
        for job in jobs:
            for r, feats in zip(job.ratios, _forward_job(model, plan, job, rows, loader, device, on_device)):
                save_chunk(plan.paths[r], job.start, feats.astype(plan.recipe.store_dtype), loader.unit)
                bar.update(len(feats))
                if on_chunk is not None:
                    on_chunk(r, job.start)
    finally:
        bar.close()
        del rows  # stops the worker processes now, even when an exception keeps this frame alive


def assemble(plan: CachePlan, loader: LoaderConfig) -> None:
    """Join the chunks of every missing ratio into its final entry (and put it in ``plan.found``)."""
    for r in plan.missing:
        plan.found[r] = assemble_entry(plan.paths[r], plan.keys[r], plan.spec.dim, loader.unit)


def extract_features(
    dataset: RetrievalDataset,
    split: str,
    ratios: Sequence[float] = (1.0,),
    *,
    backbone: str = "efficientnet_lite0",
    degradation: Degradation = "uniform",
    reference: Reference = "input",
    device: str = "cpu",
    batch_size: int = 8,
    chunk_size: int = 256,
    store_dtype: str = "float16",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | None = None,
    on_chunk: Callable[[float, int], None] | None = None,
    upscaler: PixelTransform | None = None,
    network: NetworkVariant | None = None,
    decode: str = "full",
    precision: str = "float32",
    ratios_on_device: bool | None = None,
) -> dict[float, np.ndarray]:
    """Features of ``dataset``'s ``split`` at every area ratio: ``{ratio: (N, D) float32}``.

    ``ratio=1`` is the high-resolution feature. Each image is read once per chunk and degraded at every ratio
    still missing from the cache; an interrupted run resumes from its chunks and gives exactly the uninterrupted
    result; a second process asking for the same entries waits for the first and reads what it built.
    ``upscaler`` (a :class:`PixelTransform`, e.g. an ISR model) replaces the bicubic input below full size by its
    super-resolved version ("ISR then features"); ``network`` (a :class:`NetworkVariant`, e.g. a student) runs
    instead of the backbone. See
    :class:`FeatureRecipe` for ``decode``/``precision`` and :class:`LoaderConfig`
    for ``device``, ``batch_size``, ``chunk_size``, ``workers`` and ``ratios_on_device``.
    """
    recipe = FeatureRecipe(backbone, degradation, reference, store_dtype, decode, precision)
    loader = LoaderConfig(device, batch_size, chunk_size, workers, ratios_on_device=ratios_on_device)
    return fill_cache(dataset, split, ratios, recipe, loader, cache_dir=cache_dir, upscaler=upscaler,
                      network=network, progress=progress, on_chunk=on_chunk).features()


def fill_cache(dataset: RetrievalDataset, split: str, ratios: Sequence[float], recipe: FeatureRecipe,
               loader: LoaderConfig, *, cache_dir: str | Path | None = None,
               upscaler: PixelTransform | None = None, network: NetworkVariant | None = None, progress: bool = True,
               on_chunk: Callable[[float, int], None] | None = None) -> CachePlan:
    """Load what is cached and compute the rest, holding the missing entries' locks (:func:`fsrlib.paths.locked`)
    while they are built: a second process asking for them waits, then reads what the first built. Returns the
    completed plan."""
    plan = lookup_features(dataset, split, ratios, recipe, cache_dir=cache_dir, upscaler=upscaler, network=network)
    if plan.missing:
        with locked([plan.paths[r] for r in plan.missing], "feature cache entry"):
            plan = lookup_features(dataset, split, ratios, recipe, cache_dir=cache_dir, upscaler=upscaler,
                                   network=network)
            if plan.missing:
                compute_jobs(plan, pending_jobs(plan, loader), loader, progress=progress, on_chunk=on_chunk)
                assemble(plan, loader)
    return plan


def image_features(images: Sequence, backbone: str = "efficientnet_lite0", device: str = "cpu",
                   batch_size: int = 8) -> np.ndarray:
    """Features ``(N, D)`` float32 of PIL images already at the backbone's input size (not cached)."""
    spec, device = get_backbone_spec(backbone), resolve_device(device)
    return _forward(shared_backbone(backbone, str(torch.device(device))), spec, list(images), batch_size, device)


@torch.inference_mode()
def _forward(model: nn.Module, spec: BackboneSpec, images: list, batch_size: int, device: str) -> np.ndarray:
    parts = [model(spec.to_tensor(images[i:i + batch_size]).to(device)).float().cpu().numpy()
             for i in range(0, len(images), batch_size)]
    return np.concatenate(parts)


def _forward_job(model: nn.Module, plan: CachePlan, job: Job, rows: Iterator, loader: LoaderConfig,
                 device: torch.device, ratios_on_device: bool) -> list[np.ndarray]:
    """``(job rows, D)`` float32 features at each of the job's ratios, in batches on the global grid.

    With ``ratios_on_device`` each row holds one undegraded input, degraded here at each ratio on ``device``.
    """
    outs: list[list[torch.Tensor]] = [[] for _ in job.ratios]
    for start in range(job.start, job.stop, loader.unit):
        items = [next_pixels(rows) for _ in range(min(loader.unit, job.stop - start))]
        if device.type == "cuda":  # one pinned buffer, one asynchronous copy; normalised on the GPU
            pixels = torch.stack(items, out=torch.empty((len(items), *items[0].shape), dtype=torch.uint8,
                                                        pin_memory=True)).to(device, non_blocking=True)
        else:
            pixels = torch.stack(items)
        if plan.upscaler is not None:
            pixels = _upscale(pixels, job.ratios, plan.upscaler)
        with torch.inference_mode():
            for j, (r, outputs) in enumerate(zip(job.ratios, outs)):
                inputs = _degraded(pixels[:, 0], r, plan.recipe.degradation) if ratios_on_device else pixels[:, j]
                with _autocast(device, plan.recipe.precision):  # the forward only: degrade_batch's sums stay exact
                    outputs.append(model(_to_input(plan.spec, inputs).to(device)))  # no-op but on mps
    return [torch.cat(o).float().cpu().numpy() for o in outs]


def _degraded(pixels: torch.Tensor, ratio: float, degradation: Degradation) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 network inputs at ``ratio`` (:func:`fsrlib.features.degrade_tensor.degrade_batch`), on their
    device and in the workers' layout (contiguous, channels last), so :func:`_to_input` treats both paths alike."""
    return degrade_batch(pixels.permute(0, 3, 1, 2), ratio, degradation).permute(0, 2, 3, 1).contiguous()


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def _to_input(spec: BackboneSpec, pixels: torch.Tensor) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 -> normalised ``(N, 3, S, S)`` float32 on the pixels' device.

    On the CPU these are :meth:`BackboneSpec.to_tensor`'s operations, in its order.
    """
    if pixels.device.type == "cpu":
        x = torch.from_numpy(pixels.numpy().astype(np.float32) / 255.0)
    else:
        x = pixels.float() / 255.0
    x = x.permute(0, 3, 1, 2)
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _upscale(pixels: torch.Tensor, ratios: Sequence[float], upscaler: PixelTransform) -> torch.Tensor:
    out = pixels.cpu().clone()
    for b in range(out.shape[0]):
        for j, r in enumerate(ratios):
            if r != 1.0:
                out[b, j] = torch.from_numpy(np.array(upscaler(Image.fromarray(out[b, j].numpy()), r)))
    return out.to(pixels.device)
