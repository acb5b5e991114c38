"""Evaluation protocols: which images a trained method may learn from, for which test queries.

Three protocols, named for what the model is allowed to see:

| name | training images | what it measures |
|---|---|---|
| ``paper`` | the test collection's own non-query images (Sec. 4.1, used again in Sec. 5: Holidays' queries are
  the test set and *every other image* the training set; Paris/Oxford: the rest of the collection) | FSR on queries
  whose **scenes the model has seen** (the other photos of the same group / landmark); read as deployment, a search
  engine adapting to its own database without labels |
| ``group_disjoint`` | ``k`` folds over the query groups (Holidays' groups, Paris/Oxford landmarks): each fold's
  queries are scored by a model trained only on images of the *other* folds' groups, so every query is evaluated
  once, by a model that never saw its scene | FSR on **unseen scenes of the same kind** |
| ``cross_dataset`` | another collection's photos (``train_on``, e.g. ``("paris6k", "mini")``) | FSR on **unseen
  scenes of another kind** |

A protocol yields :class:`Fold` s. Every fold scores a subset of the test
dataset's queries against the *full* database, and carries its training set
as a :class:`~fsrlib.data.datasets.RetrievalDataset` whose ``train`` lists the
images (absolute paths when several collections are pooled), so the feature
cache keys it by folder and content, never by name alone.
"""
from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.paths import files_sha256

PROTOCOLS = ("paper", "group_disjoint", "cross_dataset")
_HOLIDAYS_GROUP = re.compile(r"(\d{4})\d{2}$")
_LANDMARK = re.compile(r"(?:paris|oxford)?_?([a-z_]+?)_\d+$")


@dataclass(frozen=True)
class Fold:
    """One training run of a protocol: its test queries (indices into the test dataset's queries) and training set."""

    name: str
    query_index: tuple[int, ...]
    #: the collection this fold trains on (its ``train`` split: :attr:`train_images`)
    training_set: RetrievalDataset

    @property
    def train_images(self) -> tuple[str, ...]:
        """The paths of the images this fold trains on (its training set's ``train`` split)."""
        return self.training_set.train

    def describe(self) -> str:
        return f"{self.name}: {len(self.query_index)} test queries, trained on {training_label(self.training_set)}"


def training_label(train: RetrievalDataset) -> str:
    """``"<name> (<n> images of <folder name>)"``, or ``"... pooled from <collections>"`` for a pooled set: what a
    model learned from, for tables and logs (the folder's name, not its machine-specific path)."""
    if train.root == Path("/"):  # pooled_training_set: absolute paths from several collections
        return f"{train.name} ({len(train.train)} images pooled from {train.name.replace('+', ', ')})"
    return f"{train.name} ({len(train.train)} images of {train.root.name or train.root})"


def image_group(dataset: RetrievalDataset, image: str) -> str:
    """The scene an image shows: Holidays' 4-digit group, a Paris/Oxford landmark, or mini's photograph.

    Two images of one group are photos of the same place or object; a model
    that saw one has seen the other's scene.
    """
    stem = Path(image).stem
    if dataset.scoring == "holidays":
        match = _HOLIDAYS_GROUP.match(stem)
        if match:
            return match.group(1)
    if dataset.name.startswith("mini"):
        return stem.split("_")[0]
    parent = Path(image).parent.name
    if parent and parent not in (".", ""):
        return parent  # paris/<landmark>/..., oxford's flat folder falls through to the name
    match = _LANDMARK.match(stem)
    return match.group(1) if match else stem


def file_sizes(paths: Iterable[Path]) -> dict[Path, int]:
    """The byte size of every regular file among ``paths`` (missing ones are left out: they are reported when read)."""
    sizes = {}
    for path in dict.fromkeys(paths):
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            sizes[path] = info.st_size
    return sizes


def copies_of_test_images(train: dict[Path, int], test: dict[Path, int]) -> list[tuple[Path, Path]]:
    """Every ``(training image, test image)`` pair with the same bytes, whatever their names or folders.

    ``train`` and ``test`` map files to their sizes (:func:`file_sizes`); only
    files whose size occurs on both sides are hashed (:func:`fsrlib.paths.files_sha256`).
    """
    common = set(train.values()) & set(test.values())
    train_side = [p for p, size in train.items() if size in common]
    test_side = [p for p, size in test.items() if size in common]
    if not train_side:
        return []
    candidates = list(dict.fromkeys([*train_side, *test_side]))
    digest = dict(zip(candidates, files_sha256(candidates)))
    test_by_digest: dict[str, Path] = {}
    for path in test_side:
        test_by_digest.setdefault(digest[path], path)
    return [(p, test_by_digest[digest[p]]) for p in train_side if digest[p] in test_by_digest]


def refuse_copies(pairs: Sequence[tuple[Path, Path]], train: RetrievalDataset, test: str, remedy: str) -> None:
    """Raise a ``ValueError`` naming a few of ``pairs`` (training image, test image with its bytes), their count and
    what to do (``remedy``); nothing if there are none."""
    if not pairs:
        return
    shown = "; ".join(f"{a} = {b}" for a, b in pairs[:3]) + ("; ..." if len(pairs) > 3 else "")
    raise ValueError(f"{len(pairs)} training image(s) of {training_label(train)} have the same bytes as {test}, "
                     f"e.g. {shown}: a model trained on them has seen the photos it is scored on. {remedy}")


def query_groups(dataset: RetrievalDataset) -> list[str]:
    """The group of every query, in query order."""
    return [image_group(dataset, q) for q in dataset.queries]


def paper_folds(dataset: RetrievalDataset) -> list[Fold]:
    """The paper's protocol (Sec. 4.1, used in Sec. 5): train on every image of the collection that is not a query
    (one fold, all queries)."""
    everything = tuple(range(len(dataset.queries)))
    if dataset.train:  # the loader's own training split (mini, Paris/Oxford: every non-query image)
        return [Fold("paper", everything, dataset)]
    queries = set(dataset.queries)
    train = tuple(p for p in dataset.images if p not in queries)
    if not train:
        raise ValueError(f"{dataset.name} has no non-query images to train on")
    return [Fold("paper", everything, replace(dataset, name=f"{dataset.name}-nonquery", train=train))]


def group_disjoint_folds(dataset: RetrievalDataset, k: int = 3, seed: int = 0) -> list[Fold]:
    """``k`` folds over the queries' groups; fold ``i`` trains on images of groups outside fold ``i`` only.

    Groups are shuffled with ``seed`` and dealt round-robin, so folds differ in
    size by at most one group. Every query is in exactly one fold. A training
    image whose bytes equal an image of a held-out group (a copy filed under
    another group's name) is refused: the model would have seen that scene.
    """
    groups = query_groups(dataset)
    distinct = sorted(set(groups))
    if k < 2 or k > len(distinct):
        raise ValueError(f"group-disjoint folds need 2 <= k <= {len(distinct)} (the number of query groups of "
                         f"{dataset.name}), got k={k}")
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = {distinct[g]: i % k for i, g in enumerate(order)}
    pool = tuple(dict.fromkeys((*dataset.images, *dataset.train)))
    group_of = {p: image_group(dataset, p) for p in dict.fromkeys((*pool, *dataset.queries))}
    size_of = file_sizes(dataset.path(p) for p in group_of)
    folds = []
    for i in range(k):
        held_out = {g for g, f in fold_of.items() if f == i}
        train = tuple(p for p in pool if group_of[p] not in held_out)
        index = tuple(q for q, g in enumerate(groups) if fold_of[g] == i)
        fold = Fold(f"fold {i + 1}/{k}", index,
                    replace(dataset, name=f"{dataset.name}-fold{i + 1}of{k}-seed{seed}", train=train))
        train_files = {dataset.path(p) for p in train}
        held_files = {dataset.path(p) for p, g in group_of.items() if g in held_out}
        pairs = copies_of_test_images({p: s for p, s in size_of.items() if p in train_files},
                                      {p: s for p, s in size_of.items() if p in held_files})
        refuse_copies(pairs, fold.training_set, f"images of the groups {fold.name} holds out (group-disjoint protocol)",
                      "Remove the duplicate photos from the collection, or use the paper protocol, which does not "
                      "promise unseen scenes.")
        folds.append(fold)
    return folds


def pooled_training_set(sources: Sequence[RetrievalDataset], name: str | None = None) -> RetrievalDataset:
    """One training set from several collections' images (database + train, queries excluded), by absolute path."""
    paths: list[str] = []
    for ds in sources:
        queries = set(ds.queries)
        own = ds.train or tuple(p for p in ds.images if p not in queries)
        paths += [str(ds.path(p).resolve()) for p in own]
    label = name or "+".join(ds.name for ds in sources)
    return RetrievalDataset(name=label, root=Path("/"), images=(), queries=(), gnd=(), train=tuple(paths),
                            exif_transpose=any(ds.exif_transpose for ds in sources))


def training_subset(train: RetrievalDataset, count: int, seed: int = 0) -> RetrievalDataset:
    """A seeded subset of ``count`` of ``train``'s training images, kept in their order (all of them when ``count``
    is at least their number). The same ``seed`` gives the same photos, whatever else a run varies."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"the number of training images to keep must be a whole number >= 0, got {count!r}")
    if count >= len(train.train):
        return train
    keep = np.random.default_rng(seed).permutation(len(train.train))[:count]
    return replace(train, train=tuple(train.train[i] for i in sorted(keep)))


def cross_dataset_folds(dataset: RetrievalDataset, train_sources: Sequence[RetrievalDataset]) -> list[Fold]:
    """Train on other collections (one fold, all queries).

    Refuses a source folder that is the test's own, and any training image
    whose bytes equal one of the test collection's files (query, database or
    training split: a copy of the test folder, under any name), naming a few
    and the count.
    """
    own = dataset.root.resolve()
    for src in train_sources:
        if src.root.resolve() == own:
            raise ValueError(f"cross-dataset training set {src.name} lives in the test dataset's own folder {own}; "
                             "that is the within-dataset (paper) protocol")
    single = train_sources[0] if len(train_sources) == 1 and train_sources[0].train else None
    train = single if single is not None else pooled_training_set(train_sources)  # one source: its own split
    tested = file_sizes(dataset.path(p) for p in (*dataset.queries, *dataset.images, *dataset.train))
    pairs = copies_of_test_images(file_sizes(train.path(p) for p in train.train), tested)
    refuse_copies(pairs, train, f"images of the test collection {dataset.name} ({dataset.root}: its queries, "
                  "database or training split)", "That is the test collection itself, not another one: remove those "
                  "copies from the training folder, or train on another collection.")
    return [Fold("cross-dataset", tuple(range(len(dataset.queries))), train)]


def make_folds(dataset: RetrievalDataset, protocol: str, *, k: int = 3, seed: int = 0,
               train_sources: Sequence[RetrievalDataset] = ()) -> list[Fold]:
    """The folds of ``protocol`` (one of :data:`PROTOCOLS`) on ``dataset``."""
    if protocol == "paper":
        return paper_folds(dataset)
    if protocol == "group_disjoint":
        return group_disjoint_folds(dataset, k=k, seed=seed)
    if protocol == "cross_dataset":
        if not train_sources:
            raise ValueError("the cross_dataset protocol needs training collections (train_on=...)")
        return cross_dataset_folds(dataset, train_sources)
    raise KeyError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def seen_groups(dataset: RetrievalDataset, fold: Fold) -> set[str]:
    """Groups of the test dataset whose images are in the fold's training set (for leak checks)."""
    root = dataset.root.resolve()
    seen = set()
    for p in fold.train_images:
        path = fold.training_set.path(p).resolve()
        if path.is_relative_to(root):
            seen.add(image_group(dataset, path.relative_to(root).as_posix()))
    return seen


def subsample_groups(fold: Fold, dataset: RetrievalDataset, fraction: float, seed: int = 0) -> Fold:
    """The fold with its training set cut to a ``fraction`` of its groups (whole groups, drawn with ``seed``).

    For learning curves: held-out mAP against the number of distinct scenes a model learned from.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    groups = sorted({image_group(dataset, p) for p in fold.train_images})
    keep_n = max(1, round(fraction * len(groups)))
    if keep_n == len(groups):
        return fold  # the whole training set: the same model as the fold's own (and the same cache entry)
    keep = set(np.random.default_rng(seed).permutation(groups)[:keep_n].tolist())
    train = tuple(p for p in fold.train_images if image_group(dataset, p) in keep)
    name = f"{fold.training_set.name}-{keep_n}of{len(groups)}groups-seed{seed}"
    return Fold(f"{fold.name}, {keep_n} of {len(groups)} groups", fold.query_index,
                replace(fold.training_set, name=name, train=train))
