import warnings

import numpy as np
import pytest

from fsrlib.features import extract, inputs, loader
from fsrlib.features.extract import extract_features


def run(ds, tmp_path, ratios=(1.0, 0.25), **kw):
    return extract_features(ds, "train", ratios, cache_dir=tmp_path / "c", progress=False, **kw)


def entry_files(tmp_path):
    """Final entries only (chunks of an unfinished run live in ``*.partial`` folders)."""
    return sorted(p for p in (tmp_path / "c").rglob("*.npz") if not p.parent.name.endswith(".partial"))


def chunk_files(tmp_path):
    return sorted((tmp_path / "c").rglob("*.partial/chunk_*.npz"))


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

    monkeypatch.setattr(extract, "shared_backbone", no_model)
    second = run(tiny_dataset, tmp_path)
    for r in first:
        np.testing.assert_array_equal(first[r], second[r])


def test_key_changes_with_what_changes_the_numbers(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path, ratios=(0.25,))
    run(tiny_dataset, tmp_path, ratios=(0.25,), degradation="antialias")
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
    from fsrlib.data.imageio import ImageReadError

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


# ---------------------------------------------------------------- the loader path equals a plain loop
def first_queries(ds, n):
    """``ds`` with only its first ``n`` queries (their ground truth still points into the whole database)."""
    import dataclasses

    return dataclasses.replace(ds, queries=ds.queries[:n], gnd=ds.gnd[:n])


def plain_loop(ds, split, ratios, batch_size):
    """The reference computation: decode, degrade, BackboneSpec.to_tensor, forward, in batches of the grid."""
    import torch

    from fsrlib.data.imageio import load_image
    from fsrlib.features.backbones import get_backbone_spec, load_backbone
    from fsrlib.features.degrade import degrade

    spec, model = get_backbone_spec("efficientnet_lite0"), load_backbone("efficientnet_lite0", "cpu")
    images = [load_image(ds.path(it.path), it.bbx) for it in ds.split_items(split)]
    out = {}
    with torch.inference_mode():
        for r in ratios:
            inputs = [degrade(img, r).upsampled for img in images]
            out[r] = np.concatenate([model(spec.to_tensor(inputs[i:i + batch_size])).numpy()
                                     for i in range(0, len(inputs), batch_size)])
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_default_path_is_bit_identical_to_a_plain_loop(mini_dataset, tmp_path, workers):
    ds = first_queries(mini_dataset, 5)  # JPEGs; batches of 4: rows [0, 4) and [4, 5) (a batch of one)
    got = extract_features(ds, "query", (1.0, 1 / 16), cache_dir=tmp_path / "c", progress=False, batch_size=4,
                           store_dtype="float32", workers=workers)
    want = plain_loop(ds, "query", (1.0, 1 / 16), batch_size=4)
    for r in want:
        np.testing.assert_array_equal(got[r], want[r])


def test_worker_dataset_pickles(tiny_dataset):
    import pickle

    from fsrlib.features.extract import FeatureRecipe
    from fsrlib.features.loader import JobImages

    images = JobImages(tiny_dataset, tiny_dataset.split_items("train"), FeatureRecipe(), 224)
    again = pickle.loads(pickle.dumps(images))
    np.testing.assert_array_equal(again[(1, (1.0, 0.25))].numpy(), images[(1, (1.0, 0.25))].numpy())
    assert again[(1, (1.0, 0.25))].shape == (2, 224, 224, 3)


@pytest.mark.slow
def test_spawned_workers_give_the_same_features(tiny_dataset, tmp_path):
    from fsrlib.features.extract import assemble, compute_jobs, lookup_features, pending_jobs
    from fsrlib.features.loader import LoaderConfig

    want = run(tiny_dataset, tmp_path, ratios=(1.0, 0.25), workers=0)
    plan = lookup_features(tiny_dataset, "train", (1.0, 0.25), cache_dir=tmp_path / "spawned")
    loader = LoaderConfig(workers=2, mp_context="spawn")
    compute_jobs(plan, pending_jobs(plan, loader), loader, progress=False)
    assemble(plan, loader)
    for r, f in plan.features().items():
        np.testing.assert_array_equal(f, want[r])


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_image_gives_load_images_error_not_a_worker_traceback(tiny_dataset, tmp_path, workers):
    from fsrlib.data.imageio import ImageReadError

    (tiny_dataset.root / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageReadError, match="img3.png") as info:
        run(tiny_dataset, tmp_path, ratios=(1.0,), workers=workers)
    assert "DataLoader worker" not in str(info.value) and "Traceback" not in str(info.value)


# ---------------------------------------------------------------- resuming (issue 11)
def interrupted(ds, tmp_path, chunk_size, batch_size=8):
    """Run that stops after saving the chunk at row 2 (rows [0, 2) and [2, 4) are on disk with chunk_size 2)."""
    def stop(ratio, start):
        if start == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(ds, tmp_path, ratios=(1.0,), chunk_size=chunk_size, batch_size=batch_size, on_chunk=stop)


@pytest.mark.parametrize("batch_size, recomputed", [(8, [0, 3]), (2, [4])])
def test_resume_with_another_chunk_size_gives_the_uninterrupted_result(tiny_dataset, tmp_path, batch_size,
                                                                        recomputed):
    interrupted(tiny_dataset, tmp_path, chunk_size=2, batch_size=batch_size)
    starts = []
    # with batch_size 8 the batches were 2 rows and would now be 3: those chunks are recomputed, with a warning;
    # with batch_size 2 both runs batch by 2, so the chunks on disk are kept and only rows [4, 5) are computed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run(tiny_dataset, tmp_path, ratios=(1.0,), chunk_size=3, batch_size=batch_size,
                  on_chunk=lambda r, s: starts.append(s))[1.0]
    assert starts == recomputed
    assert any("batches of 2" in str(w.message) for w in caught) == (batch_size == 8)
    fresh = extract_features(tiny_dataset, "train", (1.0,), cache_dir=tmp_path / "fresh", progress=False,
                             chunk_size=3, batch_size=batch_size)[1.0]
    assert out.shape == (5, 1280)
    np.testing.assert_array_equal(out, fresh)


def uninterrupted(ds, tmp_path):
    return extract_features(ds, "train", (1.0,), cache_dir=tmp_path / "fresh", progress=False, chunk_size=2)[1.0]


def test_flipped_bytes_in_a_chunk_are_recomputed(tiny_dataset, tmp_path):
    interrupted(tiny_dataset, tmp_path, chunk_size=2)
    chunk = chunk_files(tmp_path)[0]
    data = bytearray(chunk.read_bytes())
    data[1000] ^= 0xFF  # inside the feature values, whatever the file format
    chunk.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="unusable chunk"):
        out = run(tiny_dataset, tmp_path, ratios=(1.0,), chunk_size=2)[1.0]
    np.testing.assert_array_equal(out, uninterrupted(tiny_dataset, tmp_path))
    assert np.isfinite(out).all()


def test_tampered_chunk_fails_its_checksum(tiny_dataset, tmp_path):
    interrupted(tiny_dataset, tmp_path, chunk_size=2)
    chunk = chunk_files(tmp_path)[0]
    with np.load(chunk) as d:
        fields = {k: d[k].copy() for k in d.files}
    fields["features"][0, 0] = np.nan
    with open(chunk, "wb") as f:
        np.savez(f, **fields)
    with pytest.warns(UserWarning, match="checksum"):
        out = run(tiny_dataset, tmp_path, ratios=(1.0,), chunk_size=2)[1.0]
    np.testing.assert_array_equal(out, uninterrupted(tiny_dataset, tmp_path))


def test_zero_length_chunk_is_recomputed(tiny_dataset, tmp_path):
    interrupted(tiny_dataset, tmp_path, chunk_size=2)
    chunk_files(tmp_path)[-1].write_bytes(b"")  # a disk that filled up, a killed copy
    with pytest.warns(UserWarning, match="cannot be read"):
        out = run(tiny_dataset, tmp_path, ratios=(1.0,), chunk_size=2)[1.0]
    np.testing.assert_array_equal(out, uninterrupted(tiny_dataset, tmp_path))
    assert chunk_files(tmp_path) == []  # the folder of chunks is gone once the entry is written


def test_missing_intervals_hand_worked():
    from fsrlib.features.cache import missing_intervals

    assert missing_intervals([], 10, 4) == [(0, 4), (4, 8), (8, 10)]
    # rows [2, 6) done (another chunk size): the rest, cut where an uninterrupted run's chunks end
    assert missing_intervals([(2, 6)], 10, 4) == [(0, 2), (6, 8), (8, 10)]
    assert missing_intervals([(0, 4), (8, 10)], 10, 4) == [(4, 8)]
    assert missing_intervals([(0, 10)], 10, 4) == []


# ---------------------------------------------------------------- options that change the numbers
@pytest.fixture
def large_jpegs(tmp_path):
    """Two 1024x768 JPEGs (a photo scaled up) with a query box: big enough for 1/2 and 1/4 draft decoding."""
    import skimage.data
    from PIL import Image

    from fsrlib.data.datasets import RetrievalDataset

    for i, name in enumerate(("astronaut", "coffee")):
        Image.fromarray(getattr(skimage.data, name)()).resize((1024, 768)).save(tmp_path / f"big{i}.jpg", quality=90)
    return RetrievalDataset(name="big", root=tmp_path, images=("big0.jpg", "big1.jpg"), queries=("big1.jpg",),
                            gnd=({"ok": [1], "junk": [], "bbx": (100.0, 50.0, 700.0, 600.0)},))


def test_draft_decoding_keeps_the_box_and_at_least_the_input_size(large_jpegs):
    from fsrlib.data.imageio import load_image

    path, box = large_jpegs.path("big1.jpg"), (100.0, 50.0, 700.0, 600.0)
    full = load_image(path, box)
    draft = load_image(path, box, draft_size=224)
    assert full.size == (600, 550) and draft.size == (300, 275)  # 1/2: the box's short side stays >= 224
    assert load_image(path, draft_size=224).size == (512, 384)  # 1024x768 at 1/2; 1/4 would be 192 < 224
    diff = np.abs(np.asarray(full.resize(draft.size), dtype=float) - np.asarray(draft, dtype=float)).mean()
    assert diff < 8  # the same region, not a shifted one (a wrong box scale gives tens of grey levels)


def test_draft_decoding_has_its_own_cache_entry_and_close_features(large_jpegs, tmp_path):
    def extract_with(**kw):
        return extract_features(large_jpegs, "db", (1.0, 1 / 16), cache_dir=tmp_path / "c", progress=False, **kw)

    full, draft = extract_with(), extract_with(decode="draft")
    assert len(entry_files(tmp_path)) == 4
    for r in full:
        assert not np.array_equal(full[r], draft[r])
        cos = (full[r] * draft[r]).sum(1) / np.linalg.norm(full[r], axis=1) / np.linalg.norm(draft[r], axis=1)
        assert cos.min() > 0.95
    with pytest.raises(ValueError, match="reference='input'"):
        extract_with(decode="draft", reference="original")
    with pytest.raises(ValueError, match="precision"):
        extract_with(precision="float8")


def test_float16_autocast_has_its_own_entry_and_close_features(tiny_dataset, tmp_path):
    def query_features(**kw):  # 2 images: float16 convolutions are emulated, slowly, on most CPUs
        return extract_features(tiny_dataset, "query", (1.0,), cache_dir=tmp_path / "c", progress=False,
                                store_dtype="float32", **kw)[1.0]

    full, half = query_features(), query_features(precision="float16")
    assert len(entry_files(tmp_path)) == 2 and not np.array_equal(full, half)
    cos = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cos.min() > 0.9999  # float16 keeps 11 bits: about 1e-5 (bfloat16, 8 bits: about 1e-3)


def native_half_precision(precision: str) -> bool:
    """Whether this machine computes ``precision`` convolutions natively (a GPU, or a CPU with AVX512/AMX for it)."""
    import torch

    if torch.cuda.is_available():
        return True
    flags = {"float16": ("avx512_fp16", "amx_fp16"), "bfloat16": ("avx512_bf16", "amx_bf16")}[precision]
    try:
        cpuinfo = open("/proc/cpuinfo").read().split()
    except OSError:
        return False
    return any(flag in cpuinfo for flag in flags)


@pytest.mark.slow
def test_float16_autocast_changes_no_map_by_more_than_0_005(mini_dataset, tmp_path):
    import torch

    from fsrlib.evaluation.retrieval import compute_map, rank_database

    if not native_half_precision("float16"):
        pytest.skip("this CPU emulates float16 convolutions (~10x slower than float32 here: about 40 minutes for "
                    "mini on 2 cores); the test runs on a GPU or a CPU with AVX512-FP16/AMX-FP16")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ratios = (1.0, 1 / 16, 1 / 64)

    def maps(precision):
        kw = {"cache_dir": tmp_path / "c", "progress": False, "precision": precision, "device": device}
        db = extract_features(mini_dataset, "db", (1.0,), **kw)[1.0]
        queries = extract_features(mini_dataset, "query", ratios, **kw)
        return np.array([compute_map(rank_database(queries[r], db), mini_dataset.gnd)[0] for r in ratios])

    full, half = maps("float32"), maps("float16")
    assert len(entry_files(tmp_path)) == 2 * (1 + len(ratios))  # float16 features never reuse float32 entries
    np.testing.assert_array_less(np.abs(full - half), 0.005)


def test_the_cache_key_names_the_degradation_by_its_name(tiny_dataset):
    """One word per idea (issue 27): format 3 stores the degradation under "degradation" (formats 1-2 wrote "method",
    a word the method registry owns), and an entry's file name says it too."""
    from pathlib import Path

    from fsrlib.features.backbones import get_backbone_spec
    from fsrlib.features.cache import cache_key, cache_path

    items = tiny_dataset.split_items("db")
    key = cache_key(tiny_dataset, items, get_backbone_spec("efficientnet_lite0"), 0.25, "antialias", "input",
                    "float16")
    assert key["degradation"] == "antialias" and "method" not in key and key["format"] == 3
    assert "-antialias-input-" in cache_path(Path("c"), key, "db").name


# ---------------------------------------------------------------- ratios made on the device (issue 26)
@pytest.fixture
def two_photos(tmp_path):
    """Two real photos of other sizes than the input (512x512 PNG, 451x300 JPEG), the JPEG with a query box."""
    import skimage.data
    from PIL import Image

    from fsrlib.data.datasets import RetrievalDataset

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "astronaut.png")
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "chelsea.jpg", quality=90)
    return RetrievalDataset(name="two", root=tmp_path, images=("astronaut.png", "chelsea.jpg"),
                            queries=("chelsea.jpg",), gnd=({"ok": [1], "junk": [], "bbx": (40.0, 20.0, 400.0, 290.0)},))


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def forbid(monkeypatch, name, module=inputs):
    def fail(*args, **kwargs):
        raise AssertionError(f"{module.__name__}.{name} was called on the path that should not call it")

    monkeypatch.setattr(module, name, fail)


@pytest.mark.parametrize("degradation, workers", [("uniform", 0), ("antialias", 0), ("uniform", 2)])
def test_ratios_on_device_give_the_workers_features(two_photos, tmp_path, monkeypatch, degradation, workers):
    from fsrlib.features.degrade import PAPER_RATIOS

    ratios = (1.0, *PAPER_RATIOS)

    def extract_with(on_device):
        return extract_features(two_photos, "db", ratios, cache_dir=tmp_path / str(on_device), progress=False,
                                degradation=degradation, store_dtype="float32", workers=workers,
                                ratios_on_device=on_device)

    pil = extract_with(False)
    degraded = []
    degrade_batch = extract.degrade_batch
    monkeypatch.setattr(extract, "degrade_batch", lambda b, r, d: degraded.append((r, d)) or degrade_batch(b, r, d))
    forbid(monkeypatch, "degrade")  # the workers' PIL degradation (forked workers inherit the patch)
    device = extract_with(True)
    assert sorted(degraded) == sorted((r, degradation) for r in ratios)  # one batch: each ratio made once, here
    for r in ratios:
        assert cosines(device[r], pil[r]).min() >= 0.99999, f"ratio {r}"
        # the check can fail: the features at any other ratio are further away than that
        for other in ratios:
            if other != r:
                assert cosines(device[r], pil[other]).min() < 0.99999, f"ratio {r} vs {other}"


@pytest.mark.parametrize("first", [False, True])
def test_both_paths_read_each_others_cache_entries(two_photos, tmp_path, monkeypatch, first):
    filled = extract_features(two_photos, "query", (1.0, 1 / 16), cache_dir=tmp_path / "c", progress=False,
                              ratios_on_device=first)
    entries = entry_files(tmp_path)
    assert len(entries) == 2
    forbid(monkeypatch, "shared_backbone", extract)
    read = extract_features(two_photos, "query", (1.0, 1 / 16), cache_dir=tmp_path / "c", progress=False,
                            ratios_on_device=not first)
    assert entry_files(tmp_path) == entries
    for r in filled:
        np.testing.assert_array_equal(read[r], filled[r])


def test_original_reference_and_isr_stay_on_the_workers_path(two_photos, tmp_path, monkeypatch):
    from fsrlib.methods.isr import SRCNN, Upscaler

    up = Upscaler("srcnn", {1 / 4: SRCNN().eval()}, cache_id="untrained-srcnn")
    cases = [{"reference": "original"}, {"upscaler": up}]
    want = [extract_features(two_photos, "query", (1.0, 1 / 4), cache_dir=tmp_path / f"pil{i}", progress=False,
                             ratios_on_device=False, **kw) for i, kw in enumerate(cases)]
    forbid(monkeypatch, "degrade_batch", extract)
    for i, kw in enumerate(cases):
        got = extract_features(two_photos, "query", (1.0, 1 / 4), cache_dir=tmp_path / f"device{i}", progress=False,
                               ratios_on_device=True, **kw)
        for r in got:
            np.testing.assert_array_equal(got[r], want[i][r])


def test_a_worker_ships_the_undegraded_input_once(two_photos):
    from fsrlib.features.extract import FeatureRecipe
    from fsrlib.features.loader import JobImages

    items = two_photos.split_items("query")  # the box is applied before the resize, as on the workers' path
    pil = JobImages(two_photos, items, FeatureRecipe(), 224)[(0, (1.0, 1 / 4))]
    once = JobImages(two_photos, items, FeatureRecipe(), 224, ratios_on_device=True)[(0, (1.0, 1 / 4))]
    assert once.shape == (1, 224, 224, 3) and once.dtype == pil.dtype
    np.testing.assert_array_equal(once[0].numpy(), pil[0].numpy())


def test_ratios_on_device_default_and_bad_values(monkeypatch):
    from fsrlib.features.loader import LoaderConfig

    assert not LoaderConfig().degrades_on_device
    assert LoaderConfig(ratios_on_device=True).degrades_on_device
    with pytest.raises(ValueError, match="ratios_on_device"):
        LoaderConfig(ratios_on_device="on")
    monkeypatch.setattr(loader, "resolve_device", lambda device: device)  # no GPU needed to resolve "auto"
    assert LoaderConfig("cuda").degrades_on_device and LoaderConfig("cuda:1").degrades_on_device
    assert not LoaderConfig("mps").degrades_on_device  # degrade_batch computes on the CPU there
    assert not LoaderConfig("cuda", ratios_on_device=False).degrades_on_device


def test_any_pixel_transform_is_an_input_of_the_recipe_with_its_own_cache_entries(tiny_dataset, tmp_path):
    """ISR is one pixel transform among others: extraction takes anything with a name, a cache_id, supports() and
    __call__(image, ratio), keys its entries by the cache_id, and neither the cache nor extraction imports ISR."""
    import subprocess
    import sys

    from PIL import ImageOps

    from fsrlib.features.extract import PixelTransform

    class Grey:
        name = "grey"

        def __init__(self, cache_id):
            self.cache_id = cache_id

        def supports(self, ratio):
            return ratio <= 0.25

        def __call__(self, image, ratio):
            return ImageOps.grayscale(image).convert("RGB")

    assert isinstance(Grey("g1"), PixelTransform)
    raw = extract_features(tiny_dataset, "query", (1.0, 1 / 4), progress=False, cache_dir=tmp_path / "c")
    grey = extract_features(tiny_dataset, "query", (1.0, 1 / 4), progress=False, cache_dir=tmp_path / "c",
                            upscaler=Grey("g1"))
    np.testing.assert_array_equal(raw[1.0], grey[1.0])  # the full-size query is never transformed
    assert not np.allclose(raw[1 / 4], grey[1 / 4])
    assert len(entry_files(tmp_path)) == 3  # full size, raw 1/4, grey 1/4: the transform's id keys its entry
    again = extract_features(tiny_dataset, "query", (1 / 4,), progress=False, cache_dir=tmp_path / "c",
                             upscaler=Grey("g1"))
    np.testing.assert_array_equal(again[1 / 4], grey[1 / 4])
    extract_features(tiny_dataset, "query", (1 / 4,), progress=False, cache_dir=tmp_path / "c", upscaler=Grey("g2"))
    assert len(entry_files(tmp_path)) == 4
    with pytest.raises(ValueError, match="not trained for ratios"):
        extract_features(tiny_dataset, "query", (1 / 2,), progress=False, cache_dir=tmp_path / "c", upscaler=Grey("g1"))
    code = "import sys, fsrlib.features.extract, fsrlib.features.cache; print('fsrlib.methods.isr' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
