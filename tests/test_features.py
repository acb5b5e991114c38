import numpy as np
import pytest

from fsrlib import features
from fsrlib.features import extract_features


def run(ds, tmp_path, ratios=(1.0, 0.25), **kw):
    return extract_features(ds, "train", ratios, cache_dir=tmp_path / "c", progress=False, **kw)


def entry_files(tmp_path):
    return sorted((tmp_path / "c").rglob("*.npz"))


def test_shapes_and_scales(tiny_dataset, tmp_path):
    out = run(tiny_dataset, tmp_path)
    assert set(out) == {1.0, 0.25}
    assert out[1.0].shape == (5, 1280) and out[1.0].dtype == np.float32
    # the low-resolution feature differs from the high-resolution one
    assert np.linalg.norm(out[1.0] - out[0.25], axis=1).min() > 0


def test_cache_hit_does_not_touch_the_model(tiny_dataset, tmp_path, monkeypatch):
    first = run(tiny_dataset, tmp_path)

    def no_model(*a, **k):
        raise AssertionError("the backbone was loaded although everything was cached")

    monkeypatch.setattr(features, "_backbone", no_model)
    second = run(tiny_dataset, tmp_path)
    for r in first:
        np.testing.assert_array_equal(first[r], second[r])


def test_key_changes_with_what_changes_the_numbers(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path, ratios=(0.25,))
    run(tiny_dataset, tmp_path, ratios=(0.25,), method="antialias")
    run(tiny_dataset, tmp_path, ratios=(0.25,), reference="original")
    assert len(entry_files(tmp_path)) == 3


def test_interrupted_run_resumes(tiny_dataset, tmp_path, monkeypatch):
    calls = []

    def interrupt(ratio, start):
        calls.append(start)
        if start == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tiny_dataset, tmp_path, ratios=(1.0,), chunk_size=2, on_chunk=interrupt)
    assert entry_files(tmp_path) == []  # nothing final was written
    resumed = []
    out = run(tiny_dataset, tmp_path, ratios=(1.0,), chunk_size=2, on_chunk=lambda r, s: resumed.append(s))
    assert resumed == [4]  # chunks 0 and 2 were on disk, only the last one was computed
    fresh = extract_features(tiny_dataset, "train", (1.0,), cache_dir=tmp_path / "fresh", progress=False, chunk_size=2)
    np.testing.assert_array_equal(out[1.0], fresh[1.0])


def test_corrupt_entry_is_rebuilt(tiny_dataset, tmp_path):
    good = run(tiny_dataset, tmp_path, ratios=(1.0,))[1.0]
    path = entry_files(tmp_path)[0]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="cannot be read"):
        again = run(tiny_dataset, tmp_path, ratios=(1.0,))[1.0]
    np.testing.assert_array_equal(good, again)


def test_tampered_values_fail_the_checksum(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path, ratios=(1.0,))
    path = entry_files(tmp_path)[0]
    with np.load(path) as d:
        feats, key, digest = d["features"].copy(), str(d["key"]), str(d["sha256"])
    feats[0, 0] += 1
    with open(path, "wb") as f:
        np.savez(f, features=feats, key=key, sha256=digest)
    with pytest.warns(UserWarning, match="checksum"):
        run(tiny_dataset, tmp_path, ratios=(1.0,))


def test_stale_entry_is_not_used(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path, ratios=(1.0,))
    path = entry_files(tmp_path)[0]
    with np.load(path) as d:
        feats, digest = d["features"], str(d["sha256"])
    with open(path, "wb") as f:
        np.savez(f, features=feats, key='{"format": 0}', sha256=digest)
    with pytest.warns(UserWarning, match="stale"):
        run(tiny_dataset, tmp_path, ratios=(1.0,))


def test_float16_storage_is_close_to_float32(tiny_dataset, tmp_path):
    f16 = run(tiny_dataset, tmp_path, ratios=(1.0,))[1.0]
    f32 = run(tiny_dataset, tmp_path, ratios=(1.0,), store_dtype="float32")[1.0]
    rel = np.linalg.norm(f16 - f32, axis=1) / np.linalg.norm(f32, axis=1)
    assert rel.max() < 1e-3


def test_bad_arguments(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="store_dtype"):
        run(tiny_dataset, tmp_path, store_dtype="int8")
    with pytest.raises(KeyError, match="unknown backbone"):
        run(tiny_dataset, tmp_path, backbone="alexnet")
    with pytest.raises(ValueError, match="split"):
        extract_features(tiny_dataset, "validation", cache_dir=tmp_path)


def test_unreadable_image_names_the_file(tiny_dataset, tmp_path):
    (tiny_dataset.root / "img4.png").write_text("not a png")
    from fsrlib.imageio import ImageReadError

    with pytest.raises(ImageReadError, match="img4.png"):
        run(tiny_dataset, tmp_path, ratios=(1.0,))


def test_replaced_image_invalidates_the_cache(tiny_dataset, tmp_path):
    first = run(tiny_dataset, tmp_path, ratios=(1.0,))[1.0]
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.coffee()[:150, :200]).save(tiny_dataset.root / "img0.png")  # same name, new photo
    second = run(tiny_dataset, tmp_path, ratios=(1.0,))[1.0]
    assert len(entry_files(tmp_path)) == 2
    assert not np.allclose(first[0], second[0]) and np.allclose(first[1:], second[1:], atol=1e-6)
