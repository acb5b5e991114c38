"""One step from a dataset item to the network input: load (crop box, EXIF orientation), then degrade.

Every place that turns a benchmark image into what the CNN sees (the feature
cache, the ISR training pairs, the plots and the chapters) calls
:func:`item_input`, so a chapter's ``degradation`` and ``reference`` parameters
reach every figure as well as every number.
"""
from __future__ import annotations

from PIL import Image

from fsrlib.data.datasets import ImageItem, RetrievalDataset
from fsrlib.data.imageio import load_image
from fsrlib.features.degrade import Degradation, Degraded, Reference, degrade


def load_item(dataset: RetrievalDataset, item: ImageItem | str, *, draft_size: int | None = None) -> Image.Image:
    """The RGB image of a dataset item (a path relative to the dataset root, or an :class:`ImageItem` with a box);
    ``draft_size``: reduced-size JPEG decoding, see :func:`fsrlib.data.imageio.load_image`."""
    item = ImageItem(item) if isinstance(item, str) else item
    return load_image(dataset.path(item.path), item.bbx, exif_transpose=dataset.exif_transpose, draft_size=draft_size)


def item_input(dataset: RetrievalDataset, item: ImageItem | str, ratio: float, *, degradation: Degradation = "uniform",
               reference: Reference = "input", size: int = 224) -> Degraded:
    """:func:`fsrlib.features.degrade.degrade` of :func:`load_item`: the small image and the ``size`` x ``size`` input."""
    return degrade(load_item(dataset, item), ratio, degradation=degradation, reference=reference, size=size)


def query_item(dataset: RetrievalDataset, query: int) -> ImageItem:
    """Query ``query`` of ``dataset`` as an item, with its crop box."""
    return dataset.split_items("query")[query]
