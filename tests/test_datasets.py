import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrlib.data.datasets import DatasetNotFoundError, load_dataset
from fsrlib.data.datasets.mini import files_digest, load_mini, region_boxes


def instance_of(path: str) -> str:
    """'test/coffee_r3_v2.jpg' -> 'coffee_r3'."""
    return re.sub(r"_v\d+\.jpg$", "", Path(path).name)


def test_mini_form(mini_dataset):
    ds = mini_dataset
    assert len(ds.queries) == len(ds.gnd) == 28 and len(ds.images) == 140 and len(ds.train) == 168
    for q, g in zip(ds.queries, ds.gnd):
        assert set(g) >= {"ok", "junk", "bbx"}
        assert {instance_of(ds.images[i]) for i in g["ok"]} == {instance_of(q)}
        assert len(g["ok"]) == 5
    assert all(ds.path(p).is_file() for p in ds.images + ds.queries + ds.train)


def test_mini_train_and_test_regions_are_disjoint(mini_dataset):
    test_instances = {instance_of(p) for p in mini_dataset.images + mini_dataset.queries}
    train_instances = {instance_of(p) for p in mini_dataset.train}
    assert not test_instances & train_instances
    assert not set(mini_dataset.queries) & set(mini_dataset.train)


def test_regions_do_not_overlap():
    boxes = region_boxes(640, 480)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.slow
def test_mini_is_deterministic(mini_dataset, tmp_path):
    other = load_mini(tmp_path / "again")
    files = list(other.images + other.queries + other.train)
    assert files == list(mini_dataset.images + mini_dataset.queries + mini_dataset.train)
    assert files_digest(other.root, files) == files_digest(mini_dataset.root, files)


def test_damaged_mini_is_rebuilt(mini_dataset, tmp_path):
    import shutil

    copy = tmp_path / "mini"
    shutil.copytree(mini_dataset.root, copy)
    victim = copy / mini_dataset.images[0]
    victim.write_bytes(b"broken")
    rebuilt = load_mini(copy)
    assert rebuilt.path(mini_dataset.images[0]).read_bytes() != b"broken"


def test_unknown_dataset():
    with pytest.raises(KeyError, match="known datasets"):
        load_dataset("imagenet21k")


def test_absent_dataset_says_what_to_fetch(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="paris_120310.tgz"):
        load_dataset("paris6k", tmp_path)


def write_gt(gt: Path, stem: str, query: str, box, good=(), ok=(), junk=()):
    gt.mkdir(parents=True, exist_ok=True)
    (gt / f"{stem}_query.txt").write_text(f"{query} {' '.join(str(float(v)) for v in box)}\n")
    for kind, names in (("good", good), ("ok", ok), ("junk", junk)):
        (gt / f"{stem}_{kind}.txt").write_text("".join(n + "\n" for n in names))


def test_paris_layout_partial(tmp_path):
    """A miniature Paris6k layout with missing images: ground truth is restricted and reported."""
    for name in ("paris_louvre_000001", "paris_louvre_000002", "paris_pompidou_000003"):
        folder = tmp_path / "paris" / name.split("_")[1]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / f"{name}.jpg")
    gt = tmp_path / "paris_120310"
    write_gt(gt, "louvre_1", "paris_louvre_000001", (1, 2, 30, 40), good=["paris_louvre_000002"],
             ok=["paris_louvre_999999"], junk=["paris_pompidou_000003"])
    write_gt(gt, "pompidou_1", "paris_pompidou_000777", (0, 0, 10, 10), ok=["paris_pompidou_000003"])
    with pytest.warns(UserWarning, match="partly present.*1 of 2 queries"):
        ds = load_dataset("paris6k", tmp_path)
    assert ds.images == ("paris/louvre/paris_louvre_000001.jpg", "paris/louvre/paris_louvre_000002.jpg",
                         "paris/pompidou/paris_pompidou_000003.jpg")
    assert ds.queries == ("paris/louvre/paris_louvre_000001.jpg",)
    assert ds.gnd[0]["ok"] == [1] and ds.gnd[0]["junk"] == [2] and ds.gnd[0]["bbx"] == (1.0, 2.0, 30.0, 40.0)
    assert ds.queries[0] not in ds.train
    assert ds.split_items("query")[0].bbx == (1.0, 2.0, 30.0, 40.0)


def test_a_data_note_is_shown_once_per_process(tmp_path):
    """A chapter loads the same partial subset in many cells: its note appears once, not once per load, and a
    note with other words (another folder's counts) is still shown."""
    test_paris_layout_partial(tmp_path / "a")  # shows the note once (asserted inside)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        load_dataset("paris6k", tmp_path / "a")
    assert not [w for w in again if "partly present" in str(w.message)]
    paris_tree(tmp_path / "b", names=("paris_louvre_000001",))
    write_gt(tmp_path / "b" / "paris_120310", "louvre_1", "paris_louvre_000001", (1, 2, 30, 40))
    write_gt(tmp_path / "b" / "paris_120310", "louvre_2", "paris_louvre_000777", (1, 2, 30, 40))
    with pytest.warns(UserWarning, match="partly present"):
        load_dataset("paris6k", tmp_path / "b")


def paris_tree(root: Path, names=("paris_louvre_000001", "paris_louvre_000002", "paris_pompidou_000003"),
               suffix=".jpg") -> None:
    for name in names:
        folder = root / "paris" / name.split("_")[1]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / f"{name}{suffix}", format="JPEG")


def load_quietly(root: Path):
    """Load the miniature Paris6k, ignoring the "partly present" warning every miniature copy gives."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*partly present")
        return load_dataset("paris6k", root)


def test_same_image_name_in_two_folders_is_an_error(tmp_path):
    paris_tree(tmp_path)
    # the same file name under a second landmark: before, one silently replaced the other in the database
    Image.fromarray(np.full((40, 50, 3), 255, np.uint8)).save(tmp_path / "paris" / "pompidou" /
                                                              "paris_louvre_000002.jpg")
    write_gt(tmp_path / "paris_120310", "louvre_1", "paris_louvre_000001", (1, 2, 30, 30),
             good=["paris_louvre_000002"])
    with pytest.raises(ValueError, match=r"paris/louvre/paris_louvre_000002.jpg and "
                                         r"paris/pompidou/paris_louvre_000002.jpg.*each name occurs once"):
        load_quietly(tmp_path)


def test_upper_case_jpg_files_and_their_queries_are_kept(tmp_path):
    paris_tree(tmp_path, ("paris_louvre_000001", "paris_louvre_000002"), suffix=".JPG")
    paris_tree(tmp_path, ("paris_pompidou_000003",))
    write_gt(tmp_path / "paris_120310", "louvre_1", "paris_louvre_000001", (1, 2, 30, 30),
             good=["paris_louvre_000002"])
    ds = load_quietly(tmp_path)
    assert ds.images == ("paris/louvre/paris_louvre_000001.JPG", "paris/louvre/paris_louvre_000002.JPG",
                         "paris/pompidou/paris_pompidou_000003.jpg")
    assert ds.queries == ("paris/louvre/paris_louvre_000001.JPG",) and ds.gnd[0]["ok"] == [1]


@pytest.fixture
def complete_paris(monkeypatch):
    """Make the three-image miniature Paris6k count as a complete copy, so any warning it gives is news."""
    from fsrlib.data.datasets.oxford_paris import LAYOUTS

    monkeypatch.setitem(LAYOUTS, "paris6k", {**LAYOUTS["paris6k"], "n_images": 3})


def test_ground_truth_names_with_or_without_suffix_are_one_image(tmp_path, complete_paris):
    """'paris_louvre_000002.jpg' in a _good.txt used to drop a positive that is on disk (mAP 0.576 -> 0.529)."""
    paris_tree(tmp_path)
    gt = tmp_path / "paris_120310"
    write_gt(gt, "louvre_1", "paris_louvre_000001.jpg", (1, 2, 30, 30), good=["paris_louvre_000002.jpg"],
             ok=["paris_pompidou_000003.JPG"])
    write_gt(gt, "pompidou_1", "paris_pompidou_000003", (1, 2, 30, 30), ok=["paris_louvre_000002.jpeg\r"],
             junk=["paris_louvre_000001"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every name is found: nothing to warn about
        ds = load_dataset("paris6k", tmp_path)
    assert ds.queries == ("paris/louvre/paris_louvre_000001.jpg", "paris/pompidou/paris_pompidou_000003.jpg")
    assert [(g["ok"], g["junk"]) for g in ds.gnd] == [([1, 2], []), ([1], [0])]


def test_names_not_found_are_reported_even_in_a_complete_copy(tmp_path, complete_paris):
    paris_tree(tmp_path)
    write_gt(tmp_path / "paris_120310", "louvre_1", "paris_louvre_000001", (1, 2, 30, 30),
             good=["paris_louvre_000002", "paris_louvre_00002"], junk=["paris_louvre_000002.png"])
    with pytest.warns(UserWarning, match=r"all 3 images of paris6k are present under paris/, with every query's; "
                                         r"the kept queries' ground truth lists 2 positives \(1 found\) and 1 junk "
                                         r"images \(0 found\); the 2 name\(s\) it lists with no image found "
                                         r"\(paris_louvre_000002.png, paris_louvre_00002\) are left out of it\."):
        ds = load_dataset("paris6k", tmp_path)
    assert ds.gnd[0]["ok"] == [1] and ds.gnd[0]["junk"] == []


def test_ground_truth_file_that_is_not_text_is_named(tmp_path):
    paris_tree(tmp_path)
    write_gt(tmp_path / "paris_120310", "louvre_1", "paris_louvre_000001", (1, 2, 30, 30))
    (tmp_path / "paris_120310" / "louvre_1_ok.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"louvre_1_ok.txt is not a text file .*unpack its archive again"):
        load_quietly(tmp_path)


@pytest.mark.filterwarnings("ignore:.*partly present")
def test_queries_without_positives_are_named(tmp_path):
    paris_tree(tmp_path)
    gt = tmp_path / "paris_120310"
    write_gt(gt, "louvre_1", "paris_louvre_000001", (1, 2, 30, 30), good=["paris_louvre_000002"])
    write_gt(gt, "louvre_2", "paris_louvre_000002", (1, 2, 30, 30), junk=["paris_louvre_000001"])  # empty truth
    write_gt(gt, "pompidou_1", "paris_pompidou_000003", (1, 2, 30, 30), ok=["paris_pompidou_000999"])
    with pytest.warns(UserWarning, match=r"2 paris6k queries have no positive image and will be left out of mAP: "
                                         r"louvre_2 \(its ground truth lists none\), pompidou_1 \(none of the 1 it "
                                         r"lists is among the images found, e.g. paris_pompidou_000999\)"):
        ds = load_dataset("paris6k", tmp_path)
    assert [g["ok"] for g in ds.gnd] == [[1], [], []] and any("no positive" in n for n in ds.notes)


def test_missing_ground_truth_file_says_which_and_what_to_do(tmp_path):
    paris_tree(tmp_path)
    gt = tmp_path / "paris_120310"
    write_gt(gt, "louvre_1", "paris_louvre_000001", (1, 2, 30, 30), good=["paris_louvre_000002"])
    (gt / "louvre_1_good.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"louvre_1_good.txt is missing.*fsrlib fetch paris6k"):
        load_quietly(tmp_path)


@pytest.mark.parametrize("box", [(30, 2, 10, 30), (1, 30, 30, 30), (60, 50, 90, 90), (-20, -9, -1, -1),
                                 (float("nan"), 2, 30, 30)])
def test_bad_query_box_is_refused_when_loading(tmp_path, box):
    paris_tree(tmp_path)
    gt = tmp_path / "paris_120310"
    write_gt(gt, "louvre_1", "paris_louvre_000001", (1, 2, 30, 30), good=["paris_louvre_000002"])
    write_gt(gt, "louvre_2", "paris_louvre_000002", box, good=["paris_louvre_000001"])
    with pytest.raises(ValueError, match=r"1 query box\(es\) select no pixel.*\n  louvre_2: .*of size 50x40|"
                                         r"louvre_2: .*non-finite"):
        load_quietly(tmp_path)


def test_box_partly_outside_the_image_is_clipped_not_refused(tmp_path):
    paris_tree(tmp_path)
    write_gt(tmp_path / "paris_120310", "louvre_1", "paris_louvre_000001", (-5, 2, 80, 30),
             good=["paris_louvre_000002"])
    assert load_quietly(tmp_path).split_items("query")[0].bbx == (-5.0, 2.0, 80.0, 30.0)


@pytest.mark.paris
def test_shared_paris_subset(paris_root):
    with pytest.warns(UserWarning, match="6 of 55 queries") as caught:
        ds = load_dataset("paris6k", paris_root)
    assert not [w for w in caught if "no positive" in str(w.message)]  # empty _good.txt files, positives in _ok
    assert len(ds.images) == 150
    assert [g["id"] for g in ds.gnd] == ["defense_4", "defense_5", "eiffel_3", "invalides_2", "invalides_5",
                                         "triomphe_5"]
    assert all(g["ok"] for g in ds.gnd)
    assert not set(ds.queries) & set(ds.train)
    assert ds.queries[-1].endswith("paris_defense_000038.jpg")  # triomphe_5's query lies in defense/


def test_one_listing_fingerprint_for_every_cache(tiny_dataset):
    """Features, bit-rate queries and ISR training sets key on the same fingerprint, with one policy for a
    missing file (it counts as size -1 and is reported when read), so they cannot disagree."""
    from dataclasses import replace

    from fsrlib.methods.isr_train import ISRTrainConfig, isr_key

    items = tiny_dataset.split_items("train")
    before, isr_before = tiny_dataset.listing_sha256(items), isr_key(tiny_dataset, ISRTrainConfig())
    first = tiny_dataset.path(items[0].path)
    first.write_bytes(first.read_bytes() + b"\0")  # same name, new content of another size
    assert tiny_dataset.listing_sha256(items) != before
    assert isr_key(tiny_dataset, ISRTrainConfig()) != isr_before
    first.unlink()
    assert tiny_dataset.listing_sha256(items) != before  # a missing file: a different key, not an OSError
    isr_key(tiny_dataset, ISRTrainConfig())
    boxed = replace(items[1], bbx=(0.0, 0.0, 10.0, 10.0))
    assert tiny_dataset.listing_sha256([items[1]]) != tiny_dataset.listing_sha256([boxed])
