"""One step from a dataset item to the network input: load (crop box, EXIF orientation), then degrade.

Every place that turns a benchmark image into what the CNN sees (the feature
cache, the ISR training pairs, the plots and the chapters) calls
:func:`item_input`, so a chapter's ``degradation`` and ``reference`` parameters
reach every figure as well as every number. The feature cache's workers make every ratio of one photo from one
decoded image (:func:`network_inputs`): the same pixels as :func:`item_input` one ratio at a time.
"""
from __future__ import annotations

from collections.abc import Sequence

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


def reference_image(dataset: RetrievalDataset, item: ImageItem, *, reference: Reference = "input", size: int = 224,
                    decode: str = "full") -> Image.Image:
    """The image every ratio of ``item`` is shrunk from: the photo (:func:`load_item`), resized to the
    ``size``-square network input where ``reference="input"`` (:func:`fsrlib.features.degrade.degrade`'s first step)."""
    image = load_item(dataset, item, draft_size=size if decode == "draft" else None)
    if reference == "input":
        # degrade's first step, done once for every ratio: it leaves an image of the target size as it is
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image


def network_inputs(dataset: RetrievalDataset, item: ImageItem, ratios: Sequence[float], *,
                   degradation: Degradation = "uniform",
                   reference: Reference = "input", size: int = 224, decode: str = "full") -> list[Image.Image]:
    """One image of ``dataset`` (:func:`reference_image`), decoded once and degraded at each ratio: the
    backbone's ``size``-square inputs, as :func:`item_input` gives them one ratio at a time."""
    image = reference_image(dataset, item, reference=reference, size=size, decode=decode)
    return [degrade(image, r, degradation=degradation, reference=reference, size=size).upsampled for r in ratios]


def query_item(dataset: RetrievalDataset, query: int) -> ImageItem:
    """Query ``query`` of ``dataset`` as an item, with its crop box."""
    return dataset.split_items("query")[query]
