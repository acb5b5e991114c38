"""The ``photos`` dataset: a folder of unlabeled photos, training data only (issue 24)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fsrlib.data.datasets import DatasetNotFoundError, load_dataset, locate
from fsrlib.data.protocols import cross_dataset_folds
from fsrlib.experiment import ExperimentConfig, run


def _photo(path, seed=0, size=(40, 30), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


def test_every_photo_below_the_folder_is_training_data_and_nothing_else(tmp_path):
    _photo(tmp_path / "b.jpg", 1)
    _photo(tmp_path / "a" / "deep" / "c.JPEG", 2, fmt="JPEG")
    _photo(tmp_path / "d.png", 3)
    _photo(tmp_path / ".hidden" / "e.jpg", 4)  # a hidden folder (thumbnails, trash) is not a photo collection
    _photo(tmp_path / ".f.jpg", 5)
    (tmp_path / "notes.txt").write_text("not a photo")
    ds = load_dataset("photos", tmp_path)
    assert ds.train == ("a/deep/c.JPEG", "b.jpg", "d.png")
    assert ds.queries == () and ds.images == () and ds.gnd == ()
    assert ds.exif_transpose and ds.path("b.jpg") == tmp_path / "b.jpg"


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir(), lambda p: (p.mkdir(), (p / "x.txt").write_text("x"))])
def test_a_missing_or_photo_less_folder_says_what_to_pass(tmp_path, make):
    folder = tmp_path / "photos"
    make(folder)
    with pytest.raises(DatasetNotFoundError, match="no photos .* under .*photos.*data_dir="):
        load_dataset("photos", folder)


def test_photos_cannot_be_scored_but_can_be_trained_on(tmp_path, tiny_dataset):
    for i in range(3):
        _photo(tmp_path / "photos" / f"{i}.jpg", 10 + i)
    with pytest.raises(ValueError, match="no queries to score.*train_on=\\('photos',\\)"):
        run(ExperimentConfig(dataset="photos", data_dir=str(tmp_path / "photos"), methods=("raw",)), progress=False)
    photos = load_dataset("photos", tmp_path / "photos")
    (fold,) = cross_dataset_folds(tiny_dataset, [photos])
    assert fold.training_set is photos and len(fold.query_index) == len(tiny_dataset.queries)


def test_a_copy_of_a_test_image_among_the_photos_is_refused(tmp_path, tiny_dataset):
    (tmp_path / "photos").mkdir()
    _photo(tmp_path / "photos" / "own.jpg", 20)
    query = tiny_dataset.path(tiny_dataset.queries[0])
    (tmp_path / "photos" / "copy.jpg").write_bytes(query.read_bytes())
    with pytest.raises(ValueError, match="copy.jpg"):
        cross_dataset_folds(tiny_dataset, [load_dataset("photos", tmp_path / "photos")])


def test_the_shared_development_photos_are_found():
    folder = locate("photos")
    if folder is None:
        pytest.skip("the shared development photos (../shared/data/photos-unlabeled) are not here; "
                    "set FSRLIB_DEV_DATA to the folder that holds them")
    ds = load_dataset("photos", folder)
    assert len(ds.train) > 2000 and not ds.queries
