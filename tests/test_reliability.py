"""Nothing lost, nothing stale (issue 28): fsrlib never deletes what it did not create, caches are keyed by file
content, every file it reads back is verified, and concurrent runs cooperate."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fsrlib import paths
from fsrlib.data.datasets import load_dataset, locate
from fsrlib.data.datasets.mini import NotAMiniFolderError, load_mini

REPO = Path(__file__).resolve().parents[1]


def user_folder(root: Path) -> dict[str, bytes]:
    """A folder of the user's: a file at the top, one in a subfolder, a photo; returns its content by path."""
    (root / "k").mkdir(parents=True)
    (root / "k" / "a").write_text("hi")
    (root / "notes.txt").write_text("my thesis")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "holiday.jpg")
    return snapshot(root)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ a folder of the user's survives every entry point
def test_library_refuses_a_folder_it_did_not_make_and_leaves_it_untouched(tmp_path):
    before = user_folder(tmp_path / "mine")
    for load in (lambda: load_mini(tmp_path / "mine"), lambda: load_dataset("mini", tmp_path / "mine"),
                 lambda: locate("mini", tmp_path / "mine")):
        with pytest.raises(NotAMiniFolderError, match=r"mine holds 3 entries that fsrlib's mini build did not make "
                                                      r"\('holiday.jpg', 'k', 'notes.txt'\).*new or empty folder"):
            load()
    assert snapshot(tmp_path / "mine") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left beside it


def test_a_file_given_as_the_folder_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotAMiniFolderError, match="is not a folder"):
        load_mini(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "x"


def test_a_damaged_build_of_ours_is_rebuilt_but_not_if_the_user_added_a_file(mini_dataset, tmp_path):
    import shutil

    copy = tmp_path / "mini"
    shutil.copytree(mini_dataset.root, copy)
    (copy / mini_dataset.images[0]).write_bytes(b"broken")
    assert load_mini(copy).version == mini_dataset.version  # ours, damaged: rebuilt
    (copy / mini_dataset.images[0]).write_bytes(b"broken")
    (copy / "test" / "my_photo.jpg").write_bytes(b"precious")
    with pytest.raises(NotAMiniFolderError, match=r"1 entry .*\('test/my_photo.jpg'\)"):
        load_mini(copy)
    assert (copy / "test" / "my_photo.jpg").read_bytes() == b"precious"
    assert (copy / mini_dataset.images[0]).read_bytes() == b"broken"  # nothing was touched


def test_an_empty_or_new_folder_gets_mini(tmp_path):
    (tmp_path / "empty").mkdir()
    assert len(load_mini(tmp_path / "empty").queries) == 28
    assert len(load_mini(tmp_path / "new" / "deeper").queries) == 28


@pytest.mark.slow
@pytest.mark.parametrize("command", ["extract", "experiment"])
def test_cli_refuses_a_folder_it_did_not_make(tmp_path, command):
    before = user_folder(tmp_path / "x")
    args = {"extract": ["--split", "query", "--quiet"], "experiment": ["--methods", "raw", "--ratios", "1/4"]}[command]
    result = subprocess.run([sys.executable, "-m", "fsrlib", command, "--dataset", "mini", "--data-dir",
                             str(tmp_path / "x"), *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert "fsrlib's mini build did not make" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(tmp_path / "x") == before


@pytest.mark.slow
def test_papermill_refuses_a_folder_it_did_not_make(tmp_path):
    papermill = pytest.importorskip("papermill")
    before = user_folder(tmp_path / "x")
    with pytest.raises(papermill.PapermillExecutionError, match="NotAMiniFolderError"):
        papermill.execute_notebook(str(REPO / "book" / "pipeline.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"dataset": "mini", "data_dir": str(tmp_path / "x")},
                                   cwd=str(REPO / "book"), progress_bar=False, kernel_name="python3")
    assert snapshot(tmp_path / "x") == before


# ------------------------------------------------------------------ caches keyed by content
def test_file_digest_sees_a_same_size_same_mtime_replacement(tmp_path, monkeypatch):
    photo = tmp_path / "p.bin"
    photo.write_bytes(b"a" * 1000)
    first = paths.file_sha256(photo)
    st = photo.stat()
    photo.write_bytes(b"b" * 1000)
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same modification time
    assert photo.stat().st_size == st.st_size and photo.stat().st_mtime_ns == st.st_mtime_ns
    assert paths.file_sha256(photo) != first
    assert paths.file_sha256(photo) == paths._read_sha256(str(photo))


def test_file_digests_are_remembered_across_processes_and_survive_a_read_only_memo(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RACY_NS", 0)  # remember files written a moment ago
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.bin")
        files[-1].write_bytes(bytes([i]) * 100)
    expected = [paths._read_sha256(str(f)) for f in files]
    assert paths.files_sha256(files) == expected
    paths._DIGESTS.clear()  # as a new process would start
    monkeypatch.setattr(paths, "_read_sha256", lambda p: pytest.fail(f"{p} was read again"))
    assert paths.files_sha256(files) == expected  # from the on-disk memo
    paths._DIGESTS.clear()
    monkeypatch.undo()
    monkeypatch.setattr(paths, "_open_digest_memo", lambda: None)  # a cache where nothing can be written
    assert paths.files_sha256(files) == expected
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        paths.file_sha256(tmp_path / "missing.bin")


def test_an_exif_rotation_in_place_gives_new_features(tiny_dataset):
    """The issue's case: the orientation tag edited in place (same size, same modification time) used to return
    the old features from the cache."""
    from fsrlib.features.extract import extract_features

    path = tiny_dataset.path(tiny_dataset.queries[0]).with_suffix(".jpg")
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: as stored
    Image.open(path.with_suffix(".png")).convert("RGB").save(path, quality=95, exif=exif.tobytes())
    ds = type(tiny_dataset)(name="tiny", root=tiny_dataset.root, images=tiny_dataset.images,
                            queries=(path.name, tiny_dataset.queries[1]), gnd=tiny_dataset.gnd, exif_transpose=True)
    before = extract_features(ds, "query", (1.0,), progress=False, workers=0)[1.0]
    data, st = path.read_bytes(), path.stat()
    tag = {b"II": b"\x12\x01\x03\x00\x01\x00\x00\x00", b"MM": b"\x01\x12\x00\x03\x00\x00\x00\x01"}
    order = data[data.index(b"Exif\x00\x00") + 6:][:2]
    at = data.index(tag[order]) + 8
    value = (6).to_bytes(2, "little" if order == b"II" else "big")  # rotate 90 degrees
    path.write_bytes(data[:at] + value + data[at + 2:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    assert Image.open(path).getexif()[0x0112] == 6
    after = extract_features(ds, "query", (1.0,), progress=False, workers=0)[1.0]
    assert np.abs(after[0] - before[0]).max() > 0.1
    np.testing.assert_array_equal(after[1], before[1])


@pytest.mark.parametrize("damage", ["garbage pages", "another schema"])
def test_a_damaged_digest_memo_is_replaced_not_read_forever(tmp_path, monkeypatch, damage):
    import sqlite3

    monkeypatch.setattr(paths, "RACY_NS", 0)
    files = [tmp_path / f"{i}.bin" for i in range(20)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 50)
    expected = paths.files_sha256(files)
    memo = paths.cache_root() / paths.DIGEST_MEMO
    if damage == "garbage pages":
        data = bytearray(memo.read_bytes())
        data[100:len(data)] = np.random.default_rng(0).integers(0, 256, len(data) - 100, dtype=np.uint8).tobytes()
        memo.write_bytes(bytes(data))
    else:
        memo.unlink()
        with sqlite3.connect(memo) as db:
            db.execute("CREATE TABLE digest (name TEXT)")
    paths._DIGESTS.clear()
    with pytest.warns(UserWarning, match="digest memo .* is damaged; removing it"):
        assert paths.files_sha256(files) == expected
    paths._DIGESTS.clear()
    reads = []
    monkeypatch.setattr(paths, "_read_sha256", lambda p: reads.append(p) or pytest.fail("read again"))
    assert paths.files_sha256(files) == expected  # the fresh memo answers
    assert not reads


def test_a_file_changed_a_moment_ago_is_not_remembered(tmp_path):
    photo = tmp_path / "p.bin"
    photo.write_bytes(b"a" * 10)
    paths.file_sha256(photo)
    assert not any(key[0] == str(photo) for key in paths._DIGESTS)  # racy: hashed, not remembered


# ------------------------------------------------------------------ every file read back is verified
def test_a_checkpoint_with_a_changed_weight_is_retrained_with_a_warning(tmp_path):
    from fsrlib.methods.train import TrainConfig, load_generator, train_cached

    rng = np.random.default_rng(0)
    features = {1.0: rng.standard_normal((24, 16)).astype(np.float32),
                0.25: rng.standard_normal((24, 16)).astype(np.float32)}
    config = TrainConfig(epochs=1, batch_size=8, seed=0)
    first = train_cached(features, config, cache_dir=tmp_path)
    (path,) = (tmp_path / "models").glob("*.pt")
    state = torch.load(path, weights_only=False)
    for tensor in state["generator"].values():
        tensor.view(-1)[0] += 1.0  # one float changed per tensor, the stored checksum kept
    torch.save(state, path)
    with pytest.raises(ValueError, match=rf"cannot read the checkpoint {path}: its checksum does not match"):
        load_generator(path)
    with pytest.warns(UserWarning, match=r"checkpoint .* is unusable because its checksum does not match"):
        again = train_cached(features, config, cache_dir=tmp_path)
    for a, b in zip(first.generator.state_dict().values(), again.generator.state_dict().values()):
        torch.testing.assert_close(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(load_generator(path), torch.nn.Module)  # the rewritten checkpoint is good


def test_a_checkpoint_without_a_checksum_is_not_trusted(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"weights": torch.ones(3)}, path)
    with pytest.warns(UserWarning, match=r"old.pt is unusable because it lacks fsrlib_sha256"):
        assert paths.read_checkpoint(path) is None
    assert path.exists()  # not deleted: the rebuilt checkpoint is written over it
    paths.save_checkpoint(path, {"weights": torch.ones(3), "history": [1.0, 2.0], "scalar": torch.tensor(2.0)})
    state = paths.read_checkpoint(path, required=("weights",))
    assert set(state) == {"weights", "history", "scalar"}


def test_a_file_that_is_not_an_fsrlib_checkpoint_is_never_overwritten(tmp_path):
    from fsrlib.methods.train import TrainConfig, train_fsrgan

    features = {1.0: np.ones((8, 4), np.float32), 0.25: np.zeros((8, 4), np.float32)}
    mine = tmp_path / "mine.pt"
    torch.save({"my": torch.arange(3)}, mine)
    before = mine.read_bytes()
    for resume in (True, False):
        with pytest.raises(FileExistsError, match=r"mine.pt exists and is not a checkpoint fsrlib wrote"):
            train_fsrgan(features, TrainConfig(epochs=1, batch_size=4), checkpoint=mine, resume=resume)
    assert mine.read_bytes() == before
    ours = tmp_path / "ours.pt"
    train_fsrgan(features, TrainConfig(epochs=1, batch_size=4), checkpoint=ours)
    assert paths.written_by_fsrlib(ours)
    train_fsrgan(features, TrainConfig(epochs=2, batch_size=4), checkpoint=ours, resume=True)  # ours: resumed


@pytest.mark.slow
def test_bitrate_bits_are_verified_and_rebuilt(mini_dataset, tmp_path):
    from fsrlib.evaluation.bitrate import parse_codec, sent_queries

    codec = parse_codec("png")
    first = sent_queries(mini_dataset, 1 / 16, codec, cache_dir=tmp_path)
    (entry,) = (tmp_path / "bitrate").glob("*.npz")
    with np.load(entry) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["bits"] = arrays["bits"] * 0 + 1  # tampered: every query sent in one bit
    np.savez(entry, **arrays)
    with pytest.warns(UserWarning, match=r"bit-rate cache .* is unusable because its checksum does not match"):
        again = sent_queries(mini_dataset, 1 / 16, codec, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.bits, first.bits)
    np.testing.assert_allclose(again.features, first.features, atol=1e-5)


def test_a_corrupt_entry_in_a_read_only_cache_is_a_clear_error(tmp_path, monkeypatch):
    entry = tmp_path / "features.npz"
    paths.save_arrays(entry, {"features": np.ones((2, 3), np.float32)}, {"k": 1})
    entry.write_bytes(entry.read_bytes()[:50])  # truncated

    def read_only(self, missing_ok=False):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.warns(UserWarning, match="cannot be read"), \
            pytest.raises(PermissionError, match=r"features.npz is unusable and cannot be removed .*FSRLIB_CACHE"):
        paths.load_arrays(entry, {"k": 1}, ("features",))


# ------------------------------------------------------------------ concurrent runs
@pytest.mark.slow
def test_two_concurrent_extractions_into_one_cache_both_succeed(tmp_path, mini_dataset):
    code = ("import sys, numpy as np; from fsrlib.data.datasets import load_dataset; "
            "from fsrlib.features.extract import extract_features; "
            "ds = load_dataset('mini', sys.argv[1]); "
            "f = extract_features(ds, 'query', (1.0, 0.25), progress=False, workers=0, chunk_size=8, batch_size=4); "
            "np.save(sys.argv[2], np.stack([f[1.0], f[0.25]]))")
    env = {**os.environ, "FSRLIB_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(mini_dataset.root), str(tmp_path / f"{i}.npy")],
                             env=env, stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    np.testing.assert_array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))
    assert not list((tmp_path / "cache").rglob("*.partial"))


def test_the_command_line_extraction_waits_for_a_concurrent_one(tmp_path, mini_dataset, monkeypatch):
    """``python -m fsrlib extract`` runs through distributed.extract_sharded: it takes the same locks."""
    from fsrlib.features import extract
    from fsrlib.features.distributed import extract_sharded

    taken = []
    real = extract.locked
    monkeypatch.setattr(extract, "locked", lambda entries, what: taken.append(list(entries)) or real(entries, what))
    plan = extract_sharded(mini_dataset, "query", (1.0,), cache_dir=tmp_path, progress=False)
    assert taken and taken[0] == [plan.paths[1.0]]
    assert Path(str(plan.paths[1.0]) + ".lock").exists()


def test_a_lock_that_cannot_be_taken_says_what_to_do(tmp_path, monkeypatch):
    from filelock import FileLock

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(FileLock, "acquire", refuse)
    with pytest.raises(PermissionError, match=r"cannot lock the feature cache entry .*Point FSRLIB_CACHE"):
        with paths.locked([tmp_path / "e.npz"], "feature cache entry"):
            pass


def test_mini_is_built_once_by_concurrent_loaders(tmp_path):
    code = ("import sys; from fsrlib.data.datasets.mini import load_mini; ds = load_mini(sys.argv[1]); "
            "assert all(ds.path(p).is_file() for p in ds.images + ds.queries + ds.train); print(ds.version)")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "mini")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [o[1][-500:] for o in outputs]
    assert outputs[0][0] == outputs[1][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini"]  # no temporary folder left


def test_a_file_added_while_mini_builds_is_kept(tmp_path, monkeypatch):
    from fsrlib.data.datasets import mini

    root = tmp_path / "mini"
    real_build = mini.build_mini

    def build_while_the_user_writes(tmp):
        manifest = real_build(tmp)
        root.mkdir()
        (root / "thesis.tex").write_text("chapter 1")
        return manifest

    monkeypatch.setattr(mini, "build_mini", build_while_the_user_writes)
    with pytest.raises(NotAMiniFolderError, match="thesis.tex"):
        load_mini(root)
    assert (root / "thesis.tex").read_text() == "chapter 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini"]


def test_an_empty_folder_keeps_its_permissions(tmp_path):
    (tmp_path / "empty").mkdir(mode=0o775)
    os.chmod(tmp_path / "empty", 0o2775)
    load_mini(tmp_path / "empty")
    assert (tmp_path / "empty").stat().st_mode & 0o7777 == 0o2775


def test_unpacking_never_replaces_a_file_that_differs(tmp_path):
    from fsrlib.data.download import DownloadError, _merge_into

    src, dest = tmp_path / "src", tmp_path / "dest"
    for root, text in ((src, "archive"), (dest, "corrected by me")):
        (root / "gt").mkdir(parents=True)
        (root / "gt" / "q_query.txt").write_text(text)
        (root / "gt" / "same.txt").write_text("same")
    (src / "gt" / "new.txt").write_text("new")
    with pytest.raises(DownloadError, match=r"replace 1 file\(s\) .*q_query.txt.*Move them away"):
        _merge_into(src, dest)
    assert (dest / "gt" / "q_query.txt").read_text() == "corrected by me"
    (dest / "gt" / "q_query.txt").write_text("archive")  # the same bytes: a resumed unpack
    _merge_into(src, dest)
    assert sorted(p.name for p in (dest / "gt").iterdir()) == ["new.txt", "q_query.txt", "same.txt"]


# ------------------------------------------------------------------ environment
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_cache_variable_means_the_default_not_the_current_folder(monkeypatch, value):
    monkeypatch.setenv("FSRLIB_CACHE", value)
    assert paths.cache_root() == Path.home() / ".cache" / "fsrlib"


def test_a_relative_cache_variable_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FSRLIB_CACHE", "rel")
    assert paths.cache_root() == tmp_path / "rel"
