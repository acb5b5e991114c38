"""The resolution-robust student: pairs, training, checkpoints, the training list, and the query extractor.

Budgets are tiny (three photo crops, one crop each, a few steps); the pairs are cached once per module.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fsrlib.data.datasets import RetrievalDataset
from fsrlib.data.datasets.holidays import load_holidays
from fsrlib.data.imageio import load_image
from fsrlib.data.protocols import group_disjoint_folds, image_group
from fsrlib.features.backbones import load_backbone
from fsrlib.features.degrade import degrade
from fsrlib.features.extract import extract_features, image_features
from fsrlib.methods import student as st
from fsrlib.methods import student_pairs, student_train
from fsrlib.methods.losses import focal_distance

RATIOS = (1 / 16, 1 / 64)
TINY = st.StudentConfig(crops_per_image=1, ratios_per_crop=2, ratios=RATIOS, crop_area=(1.0, 1.0), flip=False,
                        colour_jitter=0.0, steps=0, batch_size=4, trainable_blocks=1, store_dtype="float32")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> RetrievalDataset:
    """Three real-photo crops: all three are training images; one query, two database images."""
    import skimage.data

    root = tmp_path_factory.mktemp("photos")
    names = []
    for i, photo in enumerate((skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee())):
        Image.fromarray(np.ascontiguousarray(photo[20:260, 30:330])).save(root / f"p{i}.png")
        names.append(f"p{i}.png")
    return RetrievalDataset(name="photos", root=root, images=tuple(names[1:]), queries=(names[0],),
                            gnd=({"ok": [0], "junk": []},), train=tuple(names))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("student-cache")


@pytest.fixture(scope="module")
def pairs(photos, cache) -> student_pairs.StudentPairs:
    return student_pairs.build_pairs(photos, TINY, cache_dir=cache)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Extraction in one thread: several times faster than two on a shared, oversubscribed CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("efficientnet_lite0")


@pytest.mark.parametrize(("cache_block", "trainable"), [(11, 2), (16, 0), (1, 15)])
def test_untrained_student_is_the_frozen_backbone_exactly(backbone, cache_block, trainable):
    model = st.ResolutionStudent(backbone, cache_block, trainable)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))  # any size goes through
    with torch.no_grad():
        assert torch.equal(model(x), backbone(x))
    assert not any(p.requires_grad for p in [*model.prefix.parameters(), *model.middle.parameters()])
    assert all(p.requires_grad for p in model.tail.parameters())
    assert len(model.tail.blocks) == trainable


def test_pairs_have_the_right_shapes(pairs, photos):
    rows_per_photo = 1 + len(RATIOS)  # the full-size crop, then one input per drawn ratio
    assert len(pairs) == len(photos.train) * rows_per_photo
    assert pairs.lr.shape == (len(pairs), 192, 7, 7)  # input of block 15 of EfficientNet-Lite0, the tail's
    assert pairs.hr.shape == (len(pairs), 1280) and pairs.lr.dtype == torch.float32
    assert pairs.image.tolist() == [i for i in range(3) for _ in range(rows_per_photo)]
    for i in range(3):
        mine = pairs.ratio[pairs.image == i]
        assert sorted(mine.tolist()) == sorted([1.0, *RATIOS])
        assert torch.equal(pairs.degradation[pairs.image == i] == -1, mine == 1.0)


def test_pair_targets_and_inputs_are_the_frozen_features_of_degrade(pairs, photos, backbone):
    """Crop scale 1, no flip, no jitter: the target is the frozen feature of the photo's full-size input, and
    each LR activation, finished by the frozen blocks, is the frozen feature of ``degrade`` at its ratio."""
    frozen = st.ResolutionStudent(backbone, 16 - TINY.trainable_blocks, 0)
    image = load_image(photos.path(photos.train[1]))
    expected_hr = image_features([degrade(image, 1.0).upsampled])[0]
    mine = pairs.image == 1
    np.testing.assert_allclose(pairs.hr[mine][0].numpy(), expected_hr, rtol=1e-4, atol=1e-5)
    for act, ratio, d in zip(pairs.lr[mine], pairs.ratio[mine], pairs.degradation[mine]):
        if ratio == 1.0:
            continue
        lr_input = degrade(image, float(ratio), degradation=TINY.degradations[int(d)]).upsampled
        with torch.no_grad():
            got = frozen.from_cached(act[None])[0].numpy()
        np.testing.assert_allclose(got, image_features([lr_input])[0], rtol=1e-4, atol=1e-5)


def test_a_photos_pairs_do_not_depend_on_the_other_photos(pairs, photos, tmp_path):
    alone = student_pairs.build_pairs(replace(photos, train=(photos.train[2],)), TINY, cache_dir=tmp_path)
    mine = pairs.image == 2
    assert torch.equal(alone.lr, pairs.lr[mine]) and torch.equal(alone.ratio, pairs.ratio[mine])


def test_more_crops_reuse_the_cached_ones(photos, cache, pairs, monkeypatch):
    one_photo = replace(photos, train=(photos.train[0],))
    calls = []
    original = student_pairs.crop_arrays
    monkeypatch.setattr(student_pairs, "crop_arrays", lambda *a, **k: calls.append(1) or original(*a, **k))
    two = student_pairs.build_pairs(one_photo, replace(TINY, crops_per_image=2), cache_dir=cache)
    assert len(calls) == 1  # only the photo's second crop was computed; the first came from the cache
    assert len(two) == 2 * int((pairs.image == 0).sum())
    assert torch.equal(two.lr[:len(two) // 2], pairs.lr[pairs.image == 0])


def test_a_corrupt_pair_entry_is_rebuilt_with_a_warning(photos, pairs, tmp_path):
    student_pairs.build_pairs(replace(photos, train=(photos.train[0],)), TINY, cache_dir=tmp_path)
    entries = sorted((tmp_path / "student" / "pairs").rglob("*.npz"))
    assert len(entries) == 2  # at the cache block, and at the tail's input
    for entry in entries:
        entry.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unusable"):
        again = student_pairs.build_pairs(replace(photos, train=(photos.train[0],)), TINY, cache_dir=tmp_path)
    assert torch.equal(again.lr, pairs.lr[pairs.image == 0])


def test_the_loss_is_the_focal_distance_of_normalised_features():
    g = torch.Generator().manual_seed(0)
    out, target = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    unit = torch.nn.functional.normalize
    for r in (1.0, 2.0, 3.0):
        cfg = replace(st.StudentConfig(), focal_r=r)
        expected = focal_distance(unit(out, dim=1), unit(target, dim=1), r)
        assert torch.allclose(st.student_loss(out, target, cfg), expected)
        assert torch.allclose(st.student_loss(out, target, cfg, weights=torch.ones(5)), expected)
    cfg = st.StudentConfig()
    dropped = st.student_loss(out, target, cfg, weights=torch.tensor([1.0, 1, 1, 1, 0]))
    assert torch.allclose(dropped, st.student_loss(out[:4], target[:4], cfg))
    bank = unit(torch.randn(7, 8, generator=g), dim=1)
    ranked = replace(cfg, rank_weight=1.0)
    assert st.student_loss(3 * target, target, ranked, bank=bank) == pytest.approx(0.0, abs=1e-6)  # perfect


def test_similarity_kl_is_zero_for_the_same_ranking_and_has_gradients():
    g = torch.Generator().manual_seed(1)
    unit = torch.nn.functional.normalize
    bank = unit(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    target = unit(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    other = unit(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1).requires_grad_(True)
    assert torch.allclose(st.similarity_kl(target, target, bank, 0.1), torch.zeros(3, dtype=torch.float64))
    assert (st.similarity_kl(other, target, bank, 0.1) > 0).all()
    assert torch.autograd.gradcheck(lambda x: st.similarity_kl(x, target, bank, 0.1), (other,))


def test_training_reduces_the_distance_to_the_full_size_features(pairs, backbone):
    cfg = replace(TINY, steps=8, lr=2e-3)
    before = st.ResolutionStudent(backbone, cfg.cache_block, cfg.trainable_blocks)
    after, history = student_train.fit_student(pairs, cfg)
    lr_pairs = pairs.subset(pairs.ratio < 1)
    d_before, d_after = student_train.pair_distance(before, lr_pairs), student_train.pair_distance(after, lr_pairs)
    assert len(history["loss"]) == 8 and np.isfinite(history["loss"]).all()
    assert np.mean(list(d_after.values())) < 0.8 * np.mean(list(d_before.values()))


def test_training_is_reproducible_for_a_seed(pairs):
    cfg = replace(TINY, steps=3, lr=1e-3, seed=5)
    _, first = student_train.fit_student(pairs, cfg)
    _, second = student_train.fit_student(pairs, cfg)
    assert first["loss"] == second["loss"]


def test_zero_steps_gives_the_frozen_query_features(photos, cache):
    untrained = student_train.train_student(photos, TINY, cache_dir=cache)
    mine = extract_features(photos, "query", (1.0, *RATIOS), network=untrained.network(), store_dtype="float32",
                            cache_dir=cache, progress=False)
    frozen = extract_features(photos, "query", (1.0, *RATIOS), store_dtype="float32", cache_dir=cache,
                              progress=False)
    for ratio in (1.0, *RATIOS):
        assert mine[ratio].shape == (1, 1280) and mine[ratio].dtype == np.float32
        np.testing.assert_allclose(mine[ratio], frozen[ratio], rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip_records_config_and_training_list(photos, cache, monkeypatch):
    cfg = replace(TINY, steps=2, seed=11)
    trained = student_train.train_student(photos, cfg, cache_dir=cache)
    path = student_train.checkpoint_path(cache, student_train.student_key(photos, cfg))
    stored = torch.load(path, weights_only=True)
    assert stored["config"] == asdict(cfg)
    assert stored["training_images"] == [{"dataset": "photos", "folder": str(photos.root), "path": p}
                                         for p in photos.train]
    monkeypatch.setattr(student_train, "fit_student", lambda *a, **k: pytest.fail("a cached student was trained again"))
    again = student_train.train_student(photos, cfg, cache_dir=cache)
    rebuilt = student_train.load_student(path)  # from the stored config alone
    for loaded in (again, rebuilt):
        assert loaded.config == cfg and loaded.training_images == trained.training_images
        assert loaded.history == trained.history
        for a, b in zip(loaded.model.state_dict().values(), trained.model.state_dict().values()):
            assert torch.equal(a, b)


def test_a_corrupt_checkpoint_is_rebuilt_with_a_warning(photos, cache):
    cfg = replace(TINY, steps=1, seed=12)
    student_train.train_student(photos, cfg, cache_dir=cache)
    path = student_train.checkpoint_path(cache, student_train.student_key(photos, cfg))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unusable"):
        rebuilt = student_train.train_student(photos, cfg, cache_dir=cache)
    assert len(rebuilt.history["loss"]) == 1 and student_train.load_student(path) is not None


def test_an_excluded_image_in_the_training_list_is_refused(photos, cache):
    with pytest.raises(ValueError, match="excluded"):
        student_train.train_student(photos, TINY, exclude=[photos.path(photos.train[1])], cache_dir=cache)
    rows = student_train.training_list(photos, exclude=[photos.root / "elsewhere.png"])
    assert [r["path"] for r in rows] == list(photos.train)


def test_group_disjoint_training_lists_never_hold_a_test_group(tmp_path):
    """On a Holidays-shaped folder, each fold's training list excludes every image of its test groups."""
    (tmp_path / "jpg").mkdir()
    for group in range(1000, 1006):
        for number in range(3):
            Image.new("RGB", (8, 8), (40 * (group - 1000), 80 * number, 7)).save(tmp_path / "jpg" / f"{group}{number:02d}.jpg")
    holidays = load_holidays(tmp_path)
    for fold in group_disjoint_folds(holidays, k=3):
        test_groups = {image_group(holidays, holidays.queries[q]) for q in fold.query_index}
        banned = [holidays.path(p) for p in holidays.images if image_group(holidays, p) in test_groups]
        rows = student_train.training_list(fold.training_set, exclude=banned)
        assert rows and not {image_group(holidays, r["path"]) for r in rows} & test_groups
        with pytest.raises(ValueError, match="excluded"):
            student_train.training_list(replace(fold.training_set, train=(*fold.train_images, holidays.images[0])),
                             exclude=[holidays.path(p) for p in holidays.images])


@pytest.mark.parametrize("changes, reason", [
    ({"trainable_blocks": 6}, "trainable_blocks=6"), ({"cache_block": 0}, "cache_block=0"),
    ({"ratios": (1.0, 0.25)}, "below 1"), ({"degradations": ("nearest",)}, "nearest"),
    ({"crop_area": (0.5, 1.5)}, r"got \(0.5, 1.5\)"), ({"crop_area": (0.8, 0.5)}, r"got \(0.8, 0.5\)"),
    ({"crop_area": (0.5,)}, r"got \(0.5,\)"), ({"schedule": "step"}, "'step'"), ({"passes": -1.0}, "passes=-1.0"),
    ({"passes": float("nan")}, "passes=nan"), ({"steps": -1}, "steps=-1"), ({"backbone": "vgg16_fc7"}, "vgg16_fc7")])
def test_bad_settings_are_refused_with_a_reason(changes, reason):
    with pytest.raises(ValueError, match=reason):  # the message names the setting and the value refused
        st.check_config(replace(st.StudentConfig(), **changes))
    st.check_config(st.StudentConfig())  # the defaults pass


def test_profiles():
    assert st.student_config("cpu") == st.StudentConfig()
    gpu = st.student_config("paper", seed=3)
    cpu = st.StudentConfig()
    assert gpu.device == "cuda" and gpu.seed == 3
    assert gpu.trainable_blocks > cpu.trainable_blocks and gpu.pairs_per_image > cpu.pairs_per_image
    with pytest.raises(KeyError, match="known"):
        st.student_config("tpu")


def test_crop_zero_is_the_whole_photo_and_the_others_cover_a_share_in_crop_area():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    cfg = replace(st.StudentConfig(), flip=False, crop_area=(0.35, 0.6))
    rng = np.random.default_rng(1)
    assert np.array_equal(np.asarray(student_pairs.augmented_crop(photo, 1.0, rng, cfg)), np.asarray(photo))
    for _ in range(20):
        scale = float(rng.uniform(*cfg.crop_area))
        w, h = student_pairs.augmented_crop(photo, scale, rng, cfg).size
        assert w <= 400 and h <= 300 and 0.3 < w * h / (400 * 300) < 0.65
    whole, _ = student_pairs.crop_inputs(photo, 0, np.random.default_rng(2), cfg)
    other, _ = student_pairs.crop_inputs(photo, 1, np.random.default_rng(2), cfg)
    assert np.array_equal(np.asarray(whole[0]), np.asarray(degrade(photo, 1.0).upsampled))
    assert not np.array_equal(np.asarray(other[0]), np.asarray(whole[0]))


def test_a_budget_in_passes_counts_steps_from_the_pairs(pairs):
    cfg = replace(TINY, steps=None, passes=2.0, lr=1e-3)
    n_lr = int((pairs.ratio < 1).sum())
    assert cfg.steps_for(n_lr) == -(-2 * n_lr // cfg.batch_size)
    _, history = student_train.fit_student(pairs, cfg)
    assert history["steps"] == len(history["loss"]) == cfg.steps_for(n_lr)
    _, cosine = student_train.fit_student(pairs, replace(cfg, schedule="cosine"))
    assert cosine["steps"] == history["steps"] and cosine["loss"] != history["loss"]


def test_the_experiment_trains_the_student_on_its_own_ratios_degradation_and_reference(monkeypatch, tiny_dataset):
    """Issue 27: the registered method used to train on the student's defaults whatever the experiment asked."""
    from fsrlib.methods.registry import FoldContext, MethodSettings, get_method

    seen = []

    class Stop(Exception):
        pass

    def capture(train, config, **kwargs):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(student_train, "train_student", capture)
    budget = MethodSettings(ratios=(1.0, 1 / 9, 1 / 100), degradation="antialias", reference="original",
                          unlabeled_photos=None)
    with pytest.raises(Stop):
        get_method("student").run(FoldContext(test=tiny_dataset, training_set=tiny_dataset, query_index=np.arange(1),
                                              queries={}, settings=budget))
    (cfg,) = seen
    # the recipe's ratios (1/9 lies between them) plus 1/100, beyond them; the experiment's degradation and reference
    assert cfg.ratios == (*st.STUDENT_RATIOS, 1 / 100) and cfg.degradations == ("antialias",)
    assert cfg.reference == "original"
    # under the paper's seven ratios the student trains on exactly the recipe's four (what bench_student measured)
    assert st.training_ratios(st.STUDENT_RATIOS, (1.0, 1 / 4, 1 / 9, 1 / 16, 1 / 25, 1 / 36, 1 / 49, 1 / 64)) == \
        st.STUDENT_RATIOS
    assert st.training_ratios((1 / 16,), (1 / 4, 1 / 16, 1 / 64)) == (1 / 4, 1 / 16, 1 / 64)


def _photo_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = np.random.default_rng(i).integers(0, 255, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.jpg")
    return folder


def test_the_student_adds_the_unlabeled_photos_to_every_fold(tmp_path, tiny_dataset, monkeypatch):
    from fsrlib.methods.registry import with_unlabeled_photos

    photos = _photo_folder(tmp_path / "unlabeled", 3)
    pooled = with_unlabeled_photos(tiny_dataset, tiny_dataset, str(photos))
    expected = {str(tiny_dataset.path(p).resolve()) for p in tiny_dataset.train} | \
        {str((photos / f"p{i}.jpg").resolve()) for i in range(3)}
    assert set(pooled.train) == expected and len(pooled.train) == 8
    assert with_unlabeled_photos(tiny_dataset, tiny_dataset, None) is tiny_dataset
    # found by name where the development data is; absent: a warning that says how to fix it, and the fold alone
    monkeypatch.setenv("FSRLIB_DEV_DATA", str(tmp_path))
    (tmp_path / "photos-unlabeled").symlink_to(photos)
    assert len(with_unlabeled_photos(tiny_dataset, tiny_dataset, "photos").train) == 8
    monkeypatch.setenv("FSRLIB_DEV_DATA", str(tmp_path / "nowhere"))
    with pytest.warns(UserWarning, match="fold's photos only.*FSRLIB_DEV_DATA"):
        assert with_unlabeled_photos(tiny_dataset, tiny_dataset, "photos") is tiny_dataset


def test_a_test_photo_among_the_unlabeled_ones_is_refused(tmp_path, tiny_dataset):
    from fsrlib.methods.registry import with_unlabeled_photos

    photos = _photo_folder(tmp_path / "unlabeled", 2)
    (photos / "leak.png").write_bytes(tiny_dataset.path(tiny_dataset.queries[0]).read_bytes())
    with pytest.raises(ValueError, match="leak.png"):
        with_unlabeled_photos(tiny_dataset, tiny_dataset, str(photos))
    with pytest.raises(Exception, match="no photos"):
        with_unlabeled_photos(tiny_dataset, tiny_dataset, str(tmp_path / "missing"))


def test_a_run_changes_the_recipe_and_its_changes_win(monkeypatch, tiny_dataset):
    """bench_student's ablations go through the experiment: ``student_changes`` on top of the profile, winning over
    the run's degradation; the run's seed and device are its own; bad changes are refused before any work."""
    from fsrlib.experiment import ExperimentConfig
    from fsrlib.methods.registry import MethodSettings, student_settings

    run = MethodSettings(seed=3, degradation="uniform", student_changes={
        "crops_per_image": 1, "degradations": ("uniform", "antialias"), "ratios": (1 / 4, 1 / 64)})
    cfg = student_settings(run)
    assert cfg.crops_per_image == 1 and cfg.degradations == ("uniform", "antialias") and cfg.seed == 3
    # the changed ratios, plus the paper's ratios beyond them? none: 1/4..1/64 spans them
    assert cfg.ratios == (1 / 4, 1 / 64)
    assert student_settings(MethodSettings(degradation="antialias")).degradations == ("antialias",)
    for bad, match in (({"seed": 1}, "run-owned"), ({"crop_count": 2}, "crop_count"),
                       ({"trainable_blocks": 99}, "trainable_blocks"), (["crops_per_image"], "mapping")):
        with pytest.raises(ValueError, match=match):
            st.check_student_changes(bad)
        with pytest.raises(ValueError, match="nothing was run"):
            ExperimentConfig(methods=("student",), student_changes=bad)
    assert st.parse_changes(["crops_per_image=1", "degradations=('uniform','antialias')", "schedule=cosine"]) == \
        {"crops_per_image": 1, "degradations": ("uniform", "antialias"), "schedule": "cosine"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        st.parse_changes(["crops_per_image"])


def test_the_student_counts_its_unlabeled_photos_and_reports_its_training(tmp_path, tiny_dataset, monkeypatch):
    """``unlabeled_count`` keeps a seeded subset of the unlabeled photos (bench_student's learning curve), and what
    the student trained on reaches the experiment through ``FoldContext.trainings``; no query is trained on."""
    from fsrlib.methods.registry import FoldContext, MethodSettings, get_method, with_unlabeled_photos

    photos = _photo_folder(tmp_path / "unlabeled", 6)
    two = with_unlabeled_photos(tiny_dataset, tiny_dataset, str(photos), count=2)
    assert len(two.train) == len(tiny_dataset.train) + 2
    assert set(two.train) < set(with_unlabeled_photos(tiny_dataset, tiny_dataset, str(photos)).train)
    seen = []

    class Stop(Exception):
        pass

    def capture(train, config, **kwargs):
        seen.append((train, kwargs))
        raise Stop

    monkeypatch.setattr(student_train, "train_student", capture)
    ctx = FoldContext(test=tiny_dataset, training_set=tiny_dataset, query_index=np.arange(1), queries={},
                      settings=MethodSettings(unlabeled_photos=str(photos), unlabeled_count=2))
    with pytest.raises(Stop):
        get_method("student").run(ctx)
    (train, kwargs), = seen
    assert train.train == two.train
    assert [Path(p) for p in kwargs["exclude"]] == [tiny_dataset.path(tiny_dataset.queries[0])]


def test_a_training_subset_is_seeded_ordered_and_nested(tiny_dataset):
    from fsrlib.data.protocols import training_subset

    many = replace(tiny_dataset, train=tuple(f"img{i:03d}.jpg" for i in range(50)))
    ten, five = training_subset(many, 10), training_subset(many, 5)
    assert len(ten.train) == 10 and list(ten.train) == sorted(ten.train)
    assert set(five.train) < set(ten.train)  # a larger subset holds the smaller: one curve varies one thing
    assert training_subset(many, 10).train == ten.train and training_subset(many, 10, seed=1).train != ten.train
    assert training_subset(many, 500) is many
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="whole number"):
            training_subset(many, bad)
