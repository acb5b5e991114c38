"""Saved whitenings: written atomically, verified on load, and a damaged file named with what to do."""
import json
from pathlib import Path

import numpy as np
import pytest

from fsrlib.evaluation.whitening import PCAWhitening, WhiteningFileError, learn_pca_whitening
from fsrlib.paths import arrays_sha256


@pytest.fixture
def whitening() -> PCAWhitening:
    features = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
    return learn_pca_whitening(features, dim=4, power=0.5, shrinkage=0.2)


@pytest.fixture
def saved(whitening, tmp_path) -> Path:
    path = tmp_path / "white.npz"
    whitening.save(path)
    return path


def write_format_1(path: Path, w: PCAWhitening, **overrides) -> None:
    """A file as fsrlib wrote it before checksums (format 1), with ``overrides`` replacing values."""
    values = {"format": 1, "mean": w.mean, "projection": w.projection, "eigenvalues": w.eigenvalues,
              "power": w.power, "shrinkage": w.shrinkage}
    np.savez(path, **{**values, **overrides})


def test_round_trip_leaves_no_temporary_file(whitening, saved):
    back = PCAWhitening.load(saved)
    for name in ("mean", "projection", "eigenvalues"):
        np.testing.assert_array_equal(getattr(back, name), getattr(whitening, name))
    assert (back.power, back.shrinkage) == (0.5, 0.2)
    assert [p.name for p in saved.parent.iterdir()] == ["white.npz"]


def test_interrupted_save_keeps_the_previous_file(whitening, saved, monkeypatch):
    before = saved.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        whitening.save(saved)
    assert saved.read_bytes() == before and [p.name for p in saved.parent.iterdir()] == ["white.npz"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_file_is_named_with_what_to_do(saved, damage):
    data = saved.read_bytes()
    inside = data.index(b"\x93NUMPY", data.index(b"projection.npy")) + 140  # a byte of the projection's values
    damaged = {"truncate": data[: len(data) // 2],
               "flip": data[:inside] + bytes([data[inside] ^ 0x01]) + data[inside + 1:],
               "garbage": b"<html>502 Bad Gateway</html>", "empty": b""}[damage]
    saved.write_bytes(damaged)
    with pytest.raises(WhiteningFileError, match=rf"{saved.name}.*learn_pca_whitening"):
        PCAWhitening.load(saved)


def test_changed_value_fails_the_checksum(whitening, tmp_path):
    arrays = whitening.arrays()
    digest = arrays_sha256(arrays)
    arrays["projection"] = arrays["projection"] * 1.001  # plausible numbers, not the saved ones
    path = tmp_path / "edited.npz"
    np.savez(path, **arrays, key=json.dumps({"what": "PCAWhitening", "format": 2}), sha256=digest)
    with pytest.raises(WhiteningFileError, match=r"edited.npz is damaged: its checksum does not match"):
        PCAWhitening.load(path)


def test_files_without_checksum_still_load(whitening, tmp_path):
    write_format_1(tmp_path / "old.npz", whitening)
    back = PCAWhitening.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(back.projection, whitening.projection)
    assert (back.power, back.shrinkage) == (0.5, 0.2)


@pytest.mark.parametrize(("override", "message"), [
    ({"mean": np.zeros(15, np.float32)}, "do not fit together"),
    ({"projection": np.zeros(16, np.float32)}, r"are not \(D,\), \(D, d\), \(d,\)"),
    ({"eigenvalues": np.array([1.0, 2.0, 0.5, 0.1], np.float32)}, "decreasing"),
    ({"eigenvalues": np.array([4, 3, 2, 1])}, "not floating point: eigenvalues"),
    ({"mean": np.full(16, np.nan, np.float32)}, "NaN or inf in mean"),
    ({"shrinkage": 3.0}, r"shrinkage 3.0 is outside \[0, 1\]"),
])
def test_impossible_values_are_refused(whitening, tmp_path, override, message):
    """Format 1 has no checksum, so only the content checks stand between a damaged file and wrong features."""
    write_format_1(tmp_path / "bad.npz", whitening, **override)
    with pytest.raises(WhiteningFileError, match=rf"bad.npz is damaged: .*{message}.*learn it again"):
        PCAWhitening.load(tmp_path / "bad.npz")


def test_other_files_and_formats_are_refused(whitening, tmp_path):
    np.save(tmp_path / "features.npy", np.zeros((3, 16), np.float32))
    with pytest.raises(WhiteningFileError, match="features.npy cannot be read"):
        PCAWhitening.load(tmp_path / "features.npy")
    np.savez(tmp_path / "cache.npz", features=np.zeros((3, 16), np.float32))
    with pytest.raises(WhiteningFileError, match=r"cache.npz is not a whitening file \(it lacks \['mean'"):
        PCAWhitening.load(tmp_path / "cache.npz")
    write_format_1(tmp_path / "future.npz", whitening, format=7)
    with pytest.raises(WhiteningFileError, match="format 7, this fsrlib reads formats 1 and 2"):
        PCAWhitening.load(tmp_path / "future.npz")


def test_missing_file_and_broken_whitening(whitening, tmp_path):
    with pytest.raises(FileNotFoundError, match="no whitening file at .*absent.npz"):
        PCAWhitening.load(tmp_path / "absent.npz")
    broken = PCAWhitening(whitening.mean, whitening.projection * np.nan, whitening.eigenvalues)
    with pytest.raises(ValueError, match="refusing to save a broken whitening.*NaN or inf in projection"):
        broken.save(tmp_path / "broken.npz")
    assert not (tmp_path / "broken.npz").exists()
