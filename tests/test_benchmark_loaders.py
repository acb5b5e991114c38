"""Loaders of the real benchmarks on miniature copies of their layouts."""
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrlib.data.datasets import DatasetNotFoundError, load_dataset, load_distractors, with_distractors
from fsrlib.data.datasets.oxford_paris import PARIS_CORRUPT
from fsrlib.data.imageio import load_image
from fsrlib.evaluation.retrieval import compute_map, compute_map_revisited


def jpg(path: Path, value: int = 0, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def holidays_tree(root: Path, folder: str = "jpg") -> None:
    for name in ("100000", "100001", "100002", "100100", "100101", "100200"):
        jpg(root / folder / f"{name}.jpg", value=int(name[-3:]) % 250)


def test_holidays_groups_queries_and_self_junk(tmp_path):
    holidays_tree(tmp_path)
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset("holidays", tmp_path)
    messages = [str(w.message) for w in caught]
    assert any("6 of 1491 images, 3 of 500 queries" in m for m in messages)
    # the lone query is kept and named, never dropped without a word
    assert any(m.startswith("1 Holidays query has no other photo") and m.endswith("mAP (a query without positives "
                                                                                  "has no AP): jpg/100200.jpg.")
               for m in messages)
    assert ds.scoring == "holidays" and ds.exif_transpose
    assert [Path(q).stem for q in ds.queries] == ["100000", "100100", "100200"]
    assert len(ds.images) == 6  # queries stay in the database...
    assert ds.gnd[0]["ok"] == [1, 2] and ds.gnd[0]["junk"] == [0]  # ...as junk in their own ranking
    assert ds.gnd[1]["ok"] == [4] and ds.gnd[1]["junk"] == [3]
    assert ds.gnd[2]["ok"] == []  # a group with a lone query has no positives: left out of mAP
    # a ranking that puts each query first scores exactly as if the query were absent
    ranks = np.array([[0, 1, 2, 3, 4, 5], [3, 4, 0, 1, 2, 5], [5, 0, 1, 2, 3, 4]]).T
    m_ap, aps, _, _ = compute_map(ranks, ds.gnd)
    assert m_ap == pytest.approx(1.0) and np.isnan(aps[2])  # the lone query: no AP, out of the mean
    assert not ds.train and any("no training split" in n for n in ds.notes)


@pytest.mark.parametrize("copy", ["jpg/extra/100100.jpg", "jpg/100100.JPG", "jpg/jpg2/100100.jpeg"])
def test_holidays_same_name_twice_is_an_error(tmp_path, copy):
    """A second 100100 used to add a query (5 instead of 4 on a real copy, mAP 0.927 -> 0.940)."""
    holidays_tree(tmp_path)
    jpg(tmp_path / copy)
    first, second = sorted(["jpg/100100.jpg", copy])
    with pytest.raises(ValueError, match=rf"1 image name\(s\) occur more than once .*\({first} and {second}\).*"
                                         "each name occurs once"):
        load_dataset("holidays", tmp_path)


def test_holidays_name_clashes_among_ignored_files_are_not_an_error(tmp_path):
    """Files the loader ignores (not named NNNNNN) cannot change the benchmark, so their clashes are no error."""
    holidays_tree(tmp_path)
    jpg(tmp_path / "jpg" / "a" / "cover.jpg")
    jpg(tmp_path / "jpg" / "b" / "cover.JPG")
    with pytest.warns(UserWarning, match="cover"):
        ds = load_dataset("holidays", tmp_path)
    assert len(ds.images) == 6


@pytest.mark.filterwarnings("ignore:.*partly present")
def test_holidays_suffixes_in_any_case_and_subfolders(tmp_path):
    """Group ids come from the name alone, so .JPG, .jpeg and folders (jpg1/, jpg2/) change nothing."""
    for rel in ("jpg/100000.JPG", "jpg/a/100001.jpeg", "jpg/b/100002.Jpg", "jpg/b/100100.JPEG", "jpg/100101.jpg"):
        jpg(tmp_path / rel)
    ds = load_dataset("holidays", tmp_path)
    assert ds.images == ("jpg/100000.JPG", "jpg/a/100001.jpeg", "jpg/b/100002.Jpg", "jpg/b/100100.JPEG",
                         "jpg/100101.jpg")  # database order: by image name, wherever the file is
    assert ds.queries == ("jpg/100000.JPG", "jpg/b/100100.JPEG")
    assert [(g["ok"], g["junk"]) for g in ds.gnd] == [([1, 2], [0]), ([4], [3])]


def test_holidays_ignored_files_and_groups_without_query_are_reported(tmp_path):
    holidays_tree(tmp_path)
    (tmp_path / "jpg" / "100200.jpg").unlink()
    (tmp_path / "jpg" / "100100.jpg").unlink()
    jpg(tmp_path / "jpg" / "IMG_0001.jpg")
    jpg(tmp_path / "jpg" / "1000000.jpg")
    (tmp_path / "jpg" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset("holidays", tmp_path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "1 group(s) have photos but not their query NNNN00 (e.g. 1001)" in messages
    assert "2 image file(s) not named NNNNNN (six digits, the Holidays naming) are ignored: jpg/1000000.jpg, " \
           "jpg/IMG_0001.jpg." in messages
    assert ds.queries == ("jpg/100000.jpg",) and len(ds.images) == 4


def test_holidays_rotated_release_and_absent(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="fetch holidays_rotated"):
        load_dataset("holidays_rotated", tmp_path)
    jpg(tmp_path / "jpg_rotated" / "IMG_0001.JPG")
    with pytest.raises(DatasetNotFoundError, match=r"its 1 image files, e.g. jpg_rotated/IMG_0001.JPG, are not so "
                                                   r"named\). Run `fsrlib fetch holidays_rotated"):
        load_dataset("holidays_rotated", tmp_path)
    (tmp_path / "jpg_rotated" / "IMG_0001.JPG").unlink()
    holidays_tree(tmp_path, "jpg_rotated")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset("holidays_rotated", tmp_path)
    assert ds.images[0] == "jpg_rotated/100000.jpg" and ds.name == "holidays_rotated"


def test_holidays_exif_orientation_applied(tmp_path):
    """A sideways photo whose EXIF says 'rotate 90' loads upright."""
    img = Image.fromarray(np.zeros((20, 60, 3), np.uint8))  # 60 wide, 20 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    (tmp_path / "jpg").mkdir()
    img.save(tmp_path / "jpg" / "100000.jpg", exif=exif)
    assert load_image(tmp_path / "jpg" / "100000.jpg", exif_transpose=True).size == (20, 60)


def revisited_tree(root: Path) -> None:
    for name in ("all_souls_000001", "all_souls_000002", "all_souls_000003", "radcliffe_000004", "q_000009"):
        jpg(root / "oxbuild_images" / f"{name}.jpg")
    cfg = {"imlist": ["all_souls_000001", "all_souls_000002", "all_souls_000003", "radcliffe_000004",
                      "missing_000005"],
           "qimlist": ["q_000009", "q_missing"],
           "gnd": [{"bbx": [1, 2, 30, 25], "easy": [0, 4], "hard": [2], "junk": [3]},
                   {"bbx": [0, 0, 5, 5], "easy": [1], "hard": [], "junk": []}]}
    with (root / "gnd_roxford5k.pkl").open("wb") as fh:
        pickle.dump(cfg, fh)


def test_revisited_oxford_layout(tmp_path):
    revisited_tree(tmp_path)
    with pytest.warns(UserWarning, match="4 of 5 database images, 1 of 2 queries"):
        ds = load_dataset("roxford5k", tmp_path)
    assert ds.scoring == "revisited"
    assert ds.queries == ("oxbuild_images/q_000009.jpg",) and ds.queries[0] not in ds.images
    g = ds.gnd[0]
    assert (g["easy"], g["hard"], g["junk"]) == ([0], [2], [3])  # index 4 was the missing image
    assert (g["ok"], g["junk"]) == ([0, 2], [3])  # Medium
    assert g["bbx"] == (1.0, 2.0, 30.0, 25.0)
    res = compute_map_revisited(np.array([[1, 2, 0, 3]]).T, ds.gnd)
    # Easy: [1, 0] after junk {2, 3}; Hard: [1, 2] after junk {0, 3}; Medium: [1, 2, 0] after junk {3}
    assert res["easy"]["mAP"] == pytest.approx(0.25) and res["hard"]["mAP"] == pytest.approx(0.25)
    assert res["medium"]["mAP"] == pytest.approx((0 + 1 / 2) / 4 + (1 / 2 + 2 / 3) / 4)


def test_revisited_needs_its_pickle(tmp_path):
    jpg(tmp_path / "paris" / "louvre" / "paris_louvre_000001.jpg")
    with pytest.raises(DatasetNotFoundError, match="gnd_rparis6k.pkl.*fetch rparis6k"):
        load_dataset("rparis6k", tmp_path)


def test_revisited_names_with_suffix_are_the_same_images(tmp_path):
    revisited_tree(tmp_path)
    expected = load_quietly("roxford5k", tmp_path)
    with (tmp_path / "gnd_roxford5k.pkl").open("rb") as fh:
        cfg = pickle.load(fh)
    cfg["imlist"] = [n + (".jpg" if i % 2 else ".JPG") for i, n in enumerate(cfg["imlist"])]
    cfg["qimlist"][0] += ".jpg"
    with (tmp_path / "gnd_roxford5k.pkl").open("wb") as fh:
        pickle.dump(cfg, fh)
    ds = load_quietly("roxford5k", tmp_path)
    assert (ds.images, ds.queries, ds.gnd) == (expected.images, expected.queries, expected.gnd)


def load_quietly(name: str, root: Path):
    """Load a miniature copy, ignoring the "partly present" warning every miniature copy gives."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*partly present")
        return load_dataset(name, root)


def damaged_pickle(cfg: dict, how: str) -> bytes:
    """The bytes of ``gnd_*.pkl`` damaged in one way (see the test below)."""
    good = pickle.dumps(cfg)
    edits = {
        "truncated": lambda c: good[: len(good) // 2], "html": lambda c: b"<html>404 Not Found</html>",
        "empty": lambda c: b"", "a list": lambda c: pickle.dumps([c]),
        "no gnd": lambda c: pickle.dumps({k: v for k, v in c.items() if k != "gnd"}),
        "index outside": lambda c: pickle.dumps({**c, "gnd": [{**c["gnd"][0], "easy": [0, 99]}, c["gnd"][1]]}),
        "float index": lambda c: pickle.dumps({**c, "gnd": [{**c["gnd"][0], "hard": [1.5]}, c["gnd"][1]]}),
        "no hard": lambda c: pickle.dumps({**c, "gnd": [{"bbx": None, "easy": [], "junk": []}, c["gnd"][1]]}),
        "bad box": lambda c: pickle.dumps({**c, "gnd": [{**c["gnd"][0], "bbx": [1, 2, 3]}, c["gnd"][1]]}),
        "one gnd short": lambda c: pickle.dumps({**c, "gnd": c["gnd"][:1]}),
        "name twice": lambda c: pickle.dumps({**c, "imlist": c["imlist"][:4] + ["all_souls_000001.jpg"]}),
        "imlist a string": lambda c: pickle.dumps({**c, "imlist": "all_souls_000001"}),
    }
    return edits[how](cfg)


@pytest.mark.parametrize(("how", "problem"), [
    ("truncated", "cannot be read as revisitop ground truth"), ("html", "UnpicklingError"), ("empty", "EOFError"),
    ("a list", "it holds a list, not a dict"), ("no gnd", r"it lacks \['gnd'\]"),
    ("index outside", r"q_000009 has easy indices outside imlist's 0..4"), ("float index", "hard indices outside"),
    ("no hard", r"keys \['easy', 'hard', 'junk'\]"), ("bad box", "bbx .* not four numbers"),
    ("one gnd short", "one entry per query"), ("name twice", "imlist names an image more than once"),
    ("imlist a string", "imlist is not a list of image names"),
])
def test_damaged_revisited_pickle_is_named_with_what_to_do(tmp_path, how, problem):
    from fsrlib.data.datasets.revisited import DamagedGroundTruthError

    revisited_tree(tmp_path)
    with (tmp_path / "gnd_roxford5k.pkl").open("rb") as fh:
        cfg = pickle.load(fh)
    (tmp_path / "gnd_roxford5k.pkl").write_bytes(damaged_pickle(cfg, how))
    with pytest.raises(DamagedGroundTruthError, match=rf"gnd_roxford5k.pkl .*{problem}.*Delete it and run "
                                                      rf"`fsrlib fetch roxford5k --data-dir "):
        load_quietly("roxford5k", tmp_path)


def test_paris_corrupt_images_are_dropped(tmp_path, caplog):
    from tests.test_datasets import write_gt

    jpg(tmp_path / "paris" / "louvre" / "paris_louvre_000001.jpg")
    (tmp_path / "paris" / "louvre" / "paris_louvre_000136.jpg").write_text("<html>302 Found</html>")
    write_gt(tmp_path / "paris_120310", "louvre_1", "paris_louvre_000001", (0, 0, 5, 5),
             good=["paris_louvre_000136"])
    assert "paris_louvre_000136" in PARIS_CORRUPT and len(PARIS_CORRUPT) == 20
    with caplog.at_level("INFO"), pytest.warns(UserWarning) as caught:
        ds = load_dataset("paris6k", tmp_path)
    assert ds.images == ("paris/louvre/paris_louvre_000001.jpg",)
    assert "dropped 1 known-corrupt" in caplog.text
    # the positive it named is reported as the corrupt file it is, not as an unknown name
    assert any("so are the 1 known-corrupt Paris6k file(s) it names" in str(w.message) and
               "with no image found" not in str(w.message) for w in caught)


def test_distractors_are_appended_after_the_database(tmp_path, tiny_dataset):
    for i in range(3):
        jpg(tmp_path / "flickr100k" / "oxc1_100k" / f"d{i}.jpg", value=i)
    with pytest.raises(KeyError, match="unknown distractor set"):
        with_distractors(tiny_dataset, "imagenet", tmp_path)
    ds = with_distractors(tiny_dataset, "flickr100k", tmp_path / "flickr100k", limit=2)
    assert ds.images[:3] == tiny_dataset.images and len(ds.images) == 5
    assert ds.gnd == tiny_dataset.gnd and ds.name == "tiny+flickr100k"
    assert Path(ds.path(ds.images[3])).is_file()  # absolute paths outside the benchmark's root
    assert "2 flickr100k distractors appended (100071 in the full set)" in ds.notes
    alone = load_distractors("flickr100k", tmp_path / "flickr100k", limit=2)
    assert alone.split_items("db")[1].path == "oxc1_100k/d1.jpg" and not alone.queries
    assert alone.path(alone.images[0]).is_file() and alone.name == "flickr100k[:2]"


def test_distractors_by_name(tmp_path, monkeypatch, mini_dataset):
    monkeypatch.setenv("FSRLIB_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="fetch flickr100k"):
        load_dataset("mini+flickr100k", mini_dataset.root)
    jpg(tmp_path / "flickr100k" / "a.jpg")
    ds = load_dataset("mini+flickr100k", mini_dataset.root)
    assert len(ds.images) == len(mini_dataset.images) + 1



def test_default_folders_are_the_ones_the_fetch_script_fills(tmp_path, monkeypatch):
    from fsrlib.data.datasets import default_dir

    monkeypatch.setenv("FSRLIB_DATA", str(tmp_path))
    assert default_dir("roxford5k") == tmp_path / "oxford5k"  # revisited ground truth beside the images
    assert default_dir("holidays_rotated") == tmp_path / "holidays"
    assert default_dir("flickr100k") == tmp_path / "flickr100k"
    monkeypatch.setenv("FSRLIB_CACHE", str(tmp_path / "cache"))
    from fsrlib.data.datasets.mini import MINI_VERSION

    assert default_dir("mini") == tmp_path / "cache" / "datasets" / f"mini-v{MINI_VERSION}"  # built, not fetched
