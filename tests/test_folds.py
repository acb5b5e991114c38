"""Evaluation protocols (fsrlib.data.protocols): which images a trained method may learn from."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.data.protocols import (
    cross_dataset_folds,
    group_disjoint_folds,
    image_group,
    make_folds,
    paper_folds,
    pooled_training_set,
    query_groups,
    seen_groups,
)


def holidays_like(root: Path, groups: int = 7, per_group: int = 3) -> RetrievalDataset:
    """A Holidays-shaped dataset description (no files needed): group g has images g00 (query), g01, g02."""
    images = [f"jpg/{1000 + g:04d}{i:02d}.jpg" for g in range(groups) for i in range(per_group)]
    queries = [p for p in images if p.endswith("00.jpg")]
    gnd = [{"ok": [j for j, p in enumerate(images) if p[4:8] == q[4:8] and p != q], "junk": [images.index(q)]}
           for q in queries]
    return RetrievalDataset(name="holidays", root=root, images=tuple(images), queries=tuple(queries), gnd=tuple(gnd),
                            scoring="holidays")


def test_groups_of_holidays_and_paris_layouts(tmp_path):
    ds = holidays_like(tmp_path)
    assert image_group(ds, "jpg/100301.jpg") == "1003"
    assert query_groups(ds) == [f"{1000 + g}" for g in range(7)]
    paris = RetrievalDataset(name="paris6k", root=tmp_path, images=("paris/eiffel/paris_eiffel_000001.jpg",),
                             queries=(), gnd=())
    assert image_group(paris, paris.images[0]) == "eiffel"


@pytest.mark.parametrize("k", [2, 3, 7])
def test_group_disjoint_folds_cover_every_query_once_and_never_leak(tmp_path, k):
    ds = holidays_like(tmp_path)
    folds = group_disjoint_folds(ds, k=k, seed=1)
    covered = sorted(q for f in folds for q in f.query_index)
    assert covered == list(range(len(ds.queries)))  # every query evaluated exactly once
    groups = query_groups(ds)
    for fold in folds:
        test_groups = {groups[q] for q in fold.query_index}
        assert not seen_groups(ds, fold) & test_groups  # no training image shows a test group
        assert {image_group(ds, p) for p in fold.train_images} == set(groups) - test_groups
    sizes = [len(f.query_index) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_group_disjoint_rejects_impossible_k(tmp_path):
    with pytest.raises(ValueError, match="2 <= k <= 7"):
        group_disjoint_folds(holidays_like(tmp_path), k=8)


def test_paper_protocol_trains_on_non_query_images_and_sees_query_scenes(tmp_path):
    ds = holidays_like(tmp_path)
    (fold,) = paper_folds(ds)
    assert not set(fold.train_images) & set(ds.queries)
    assert len(fold.train_images) == len(ds.images) - len(ds.queries)
    assert seen_groups(ds, fold) == set(query_groups(ds))  # the honest label: it has seen every query's scene


def test_cross_dataset_keys_training_by_folder_and_refuses_the_test_folder(tmp_path):
    """Issue 11: a 'cross' run whose training folder is the test folder is the within-dataset protocol."""
    test = holidays_like(tmp_path / "a")
    same_folder = holidays_like(tmp_path / "a")
    with pytest.raises(ValueError, match="own folder"):
        cross_dataset_folds(test, [same_folder])
    other = holidays_like(tmp_path / "b")
    (fold,) = cross_dataset_folds(test, [other, holidays_like(tmp_path / "c")])
    assert all(Path(p).is_absolute() for p in fold.train_images)
    assert {str(Path(p).parent.parent.name) for p in fold.train_images} == {"b", "c"}
    assert not seen_groups(test, fold)


def test_pooled_training_set_excludes_queries(tmp_path):
    ds = holidays_like(tmp_path)
    pooled = pooled_training_set([ds])
    assert len(pooled.train) == len(ds.images) - len(ds.queries)
    assert not any(p.endswith("00.jpg") for p in pooled.train)


def test_make_folds_names_protocols(tmp_path):
    ds = holidays_like(tmp_path)
    with pytest.raises(KeyError, match="unknown protocol"):
        make_folds(ds, "leave_one_out")
    with pytest.raises(ValueError, match="train_on"):
        make_folds(ds, "cross_dataset")
    assert np.array_equal(make_folds(ds, "paper")[0].query_index, np.arange(len(ds.queries)))


def test_experiment_cross_dataset_trains_on_the_named_folder(mini_dataset, tmp_path):
    """--train-dataset mini --train-data-dir A with --dataset mini --data-dir A is refused (not silently within)."""
    from fsrlib.experiment import ExperimentConfig, run

    cfg = ExperimentConfig(dataset="mini", data_dir=str(mini_dataset.root), ratios=(1 / 16,), methods=("raw", "ridge"),
                           train_dataset="mini", train_data_dir=str(mini_dataset.root))
    with pytest.raises(ValueError, match="own folder"):
        run(cfg, progress=False)


def with_files(ds: RetrievalDataset, seed: int = 0) -> RetrievalDataset:
    """Write a distinct small file for every image of ``ds`` (all of one size, so only bytes tell them apart)."""
    rng = np.random.default_rng(seed)
    for rel in dict.fromkeys((*ds.images, *ds.queries, *ds.train)):
        ds.path(rel).parent.mkdir(parents=True, exist_ok=True)
        ds.path(rel).write_bytes(rng.bytes(64))
    return ds


def test_cross_dataset_refuses_a_byte_copy_of_the_test_images_under_any_name(tmp_path):
    """Issue 28: a copy of the test folder defeated the folder check and was reported as cross-dataset."""
    test = with_files(holidays_like(tmp_path / "test"))
    other = with_files(holidays_like(tmp_path / "other"), seed=1)
    (fold,) = cross_dataset_folds(test, [other])  # different bytes: accepted
    assert len(fold.train_images) == 14
    renamed = holidays_like(tmp_path / "renamed", groups=2)
    for i, rel in enumerate(renamed.images):  # the test collection's database images under other names
        renamed.path(rel).parent.mkdir(parents=True, exist_ok=True)
        renamed.path(rel).write_bytes(test.path(test.images[i + 3]).read_bytes())
    copied = (r"4 training image\(s\) of holidays\+holidays \(18 images pooled from holidays, holidays\) have the same bytes as images of "
              r"the test collection holidays .*e\.g\. .*renamed/jpg/100001\.jpg = .*test/jpg/100101\.jpg; .*; \.\.\.: "
              r"a model trained on them")
    with pytest.raises(ValueError, match=copied):
        cross_dataset_folds(test, [other, renamed])


def test_group_disjoint_refuses_a_held_out_photo_filed_under_another_group(tmp_path):
    """A copy of a photo filed under another group's name would show a model the scene it is scored on."""
    ds = with_files(holidays_like(tmp_path))
    assert len(group_disjoint_folds(ds, k=7)) == 7
    ds.path("jpg/100601.jpg").write_bytes(ds.path("jpg/100000.jpg").read_bytes())  # group 1006 holds 1000's query
    with pytest.raises(ValueError, match=r"1 training image\(s\) .* same bytes as images of the groups fold \d/7 "
                                         r"holds out .*(100601\.jpg = .*100000|100000\.jpg = .*100601)\.jpg.*"
                                         r"use the paper protocol"):
        group_disjoint_folds(ds, k=7)


def test_experiment_refuses_a_copy_before_extracting(mini_dataset, tmp_path, monkeypatch):
    """The protocol's training sets are built (and checked) before any feature is extracted."""
    import shutil

    from fsrlib import experiment

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted before the protocol was checked")

    monkeypatch.setattr(experiment, "extract_features", no_extraction)
    copy = tmp_path / "mini-copy"
    shutil.copytree(mini_dataset.root, copy)
    base = experiment.ExperimentConfig(dataset="mini", data_dir=str(mini_dataset.root), ratios=(1 / 16,),
                                       methods=("raw", "ridge"))
    with pytest.raises(ValueError, match="have the same bytes as images of the test collection mini"):
        experiment.run(replace(base, protocol="cross_dataset", train_on=("mini",), train_data_dirs=(str(copy),)),
                       progress=False)
    with pytest.raises(ValueError, match="group-disjoint folds need 2 <= k <= 14"):
        experiment.run(replace(base, protocol="group_disjoint", folds=50), progress=False)
