import numpy as np
import pytest
import torch

from fsrlib.methods.baselines import MLPConfig, fit_ridge_residual, train_mlp, train_ridge
from fsrlib.methods.models import GeneratorConfig
from fsrlib.methods.pairs import make_pairs, split_by_image
from fsrlib.methods.train import TrainConfig, load_generator, train_fsrgan, validation_distance

DIM = 64


@pytest.fixture(scope="module")
def features():
    """Synthetic pairs: LR features are HR features shrunk toward a common direction, more at smaller ratios."""
    rng = np.random.default_rng(0)
    hr = rng.normal(size=(120, DIM)).astype(np.float32)
    hr /= np.linalg.norm(hr, axis=1, keepdims=True)
    common = np.ones(DIM, np.float32) / np.sqrt(DIM)
    out = {1.0: hr}
    for ratio in (1 / 4, 1 / 16):
        lr = (1 - ratio) * 0.5 * common + (0.5 + ratio) * hr
        out[ratio] = (lr / np.linalg.norm(lr, axis=1, keepdims=True)).astype(np.float32)
    return out


def small_config(**kw):
    base = dict(epochs=2, batch_size=32, critic_iters=1, val_fraction=0.2, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_pairs_mix_ratios_and_split_by_image(features):
    pairs = make_pairs(features)
    assert len(pairs) == 240 and pairs.lr.shape == (240, DIM)
    assert set(pairs.ratio.tolist()) == {1 / 4, 1 / 16}
    train, val = split_by_image(pairs, 0.25, seed=0)
    assert not set(train.image.tolist()) & set(val.image.tolist())
    assert len(set(val.image.tolist())) == 30
    with pytest.raises(ValueError, match="ratio 1.0"):
        make_pairs({0.25: features[0.25]})


def test_cnn_baseline_lowers_the_distance(features):
    result = train_fsrgan(features, small_config(loss="mse", epochs=15, lr=1e-3))
    first, last = result.history["epochs"][0]["val_distance"], result.history["epochs"][-1]["val_distance"]
    assert np.mean(list(last.values())) < np.mean(list(first.values()))
    assert result.critic is None


def test_gan_history_callback_and_clipping(features, capsys):
    events = []
    result = train_fsrgan(features, small_config(), callback=events.append)
    assert capsys.readouterr().out == ""  # the loop never prints
    steps = [e for e in events if e["event"] == "step"]
    assert {"critic_loss", "wasserstein", "generator_loss", "adversarial", "distance_term"} <= set(steps[0])
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [0, 1]
    assert set(result.history["epochs"][-1]["val_distance"]) == {1 / 4, 1 / 16}
    assert max(p.abs().max() for p in result.critic.parameters()) <= 0.01 + 1e-9


def test_gradient_penalty_option_leaves_weights_unclipped(features):
    result = train_fsrgan(features, small_config(gp_weight=10.0, epochs=1))
    assert max(p.abs().max() for p in result.critic.parameters()) > 0.01


def test_same_seed_same_model(features):
    a = train_fsrgan(features, small_config(epochs=1)).generator
    b = train_fsrgan(features, small_config(epochs=1)).generator
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_checkpoint_resume_and_rebuild(features, tmp_path):
    ckpt = tmp_path / "g.pt"
    full = train_fsrgan(features, small_config(epochs=3))
    train_fsrgan(features, small_config(epochs=2), checkpoint=ckpt)
    resumed = train_fsrgan(features, small_config(epochs=3), checkpoint=ckpt, resume=True)
    assert len(resumed.history["epochs"]) == 3
    for pa, pb in zip(full.generator.parameters(), resumed.generator.parameters()):
        torch.testing.assert_close(pa, pb)
    rebuilt = load_generator(ckpt)
    x = torch.as_tensor(features[1 / 4][:5])
    with torch.no_grad():
        assert rebuilt(x).shape == (5, DIM)
    with pytest.raises(ValueError, match="different config"):
        train_fsrgan(features, small_config(epochs=3, lr=1e-2), checkpoint=ckpt, resume=True)


def test_residual_variant_starts_at_raw(features):
    result = train_fsrgan(features, small_config(epochs=0, generator=GeneratorConfig(residual=True)))
    pairs = make_pairs(features)
    raw = (pairs.lr - pairs.hr).norm(dim=1).mean()
    assert np.mean(list(validation_distance(result.generator, pairs).values())) == pytest.approx(float(raw), rel=1e-5)


def test_bad_loss_name(features):
    with pytest.raises(ValueError, match="loss"):
        train_fsrgan(features, small_config(loss="hinge"))


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8))
    a = rng.normal(size=(8, 8)) * 0.3
    y = x @ a + 0.5
    model = fit_ridge_residual(x, y, penalty=1e-8)
    np.testing.assert_allclose(model(x.astype(np.float32)), y, atol=1e-4)


def test_ridge_large_penalty_is_the_identity(features):
    model = fit_ridge_residual(features[1 / 4], features[1.0], penalty=1e12)
    np.testing.assert_allclose(model(features[1 / 4]), features[1 / 4] + model.bias, atol=1e-5)


def test_ridge_and_mlp_beat_raw_on_synthetic_pairs(features):
    raw = np.linalg.norm(features[1 / 16] - features[1.0], axis=1).mean()
    ridge = train_ridge(features)
    assert np.linalg.norm(ridge(features[1 / 16]) - features[1.0], axis=1).mean() < raw
    mlp = train_mlp(features, MLPConfig(epochs=60, hidden=256))
    with torch.no_grad():
        out = mlp(torch.as_tensor(features[1 / 16])).numpy()
    assert np.linalg.norm(out - features[1.0], axis=1).mean() < raw


def test_train_cached_loads_a_finished_run(features, tmp_path, monkeypatch):
    from fsrlib.methods import train as train_module

    first = train_module.train_cached(features, small_config(epochs=1), cache_dir=tmp_path)
    assert len(list((tmp_path / "models").glob("*.pt"))) == 1

    def no_steps(*a, **k):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(train_module, "generator_step", no_steps)
    again = train_module.train_cached(features, small_config(epochs=1), cache_dir=tmp_path)
    for pa, pb in zip(first.generator.parameters(), again.generator.parameters()):
        torch.testing.assert_close(pa, pb)
    assert again.history == first.history
    other = {r: f * 0.5 for r, f in features.items()}  # other training data: another key
    monkeypatch.undo()
    train_module.train_cached(other, small_config(epochs=1), cache_dir=tmp_path)
    assert len(list((tmp_path / "models").glob("*.pt"))) == 2


def test_training_does_not_modify_the_callers_config(features):
    shared = GeneratorConfig(residual=True)
    config = small_config(epochs=0, generator=shared)
    result = train_fsrgan(features, config)
    assert shared.feature_dim == GeneratorConfig().feature_dim  # untouched
    assert result.config.generator.feature_dim == DIM


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_training_on_non_finite_features_is_refused(features, bad):
    broken = {r: f.copy() for r, f in features.items()}
    broken[1 / 16][[3, 7], 5] = bad
    for train in (lambda f: train_fsrgan(f, small_config(epochs=1)), train_ridge,
                  lambda f: train_mlp(f, MLPConfig(epochs=1, hidden=8))):
        with pytest.raises(ValueError, match=r"NaN or inf values \(ratio 1/16: 2 row\(s\) \(3, 7\)\)"):
            train(broken)
    hr_broken = {**features, 1.0: features[1.0].copy()}
    hr_broken[1.0][9, 0] = bad
    with pytest.raises(ValueError, match=r"ratio 1: 1 row\(s\) \(9\)"):
        train_fsrgan(hr_broken, small_config(epochs=1))


def test_train_cached_rebuilds_a_damaged_checkpoint(features, tmp_path):
    from fsrlib.methods import train as train_module

    config = small_config(loss="mse", epochs=1, generator=GeneratorConfig(channels=(2,) * 6))  # cheap to retrain
    first = train_module.train_cached(features, config, cache_dir=tmp_path)
    (path,) = (tmp_path / "models").glob("*.pt")
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], b""):  # a truncated copy; a file left empty by a full disk
        path.write_bytes(damaged)
        with pytest.warns(UserWarning, match=rf"model checkpoint {path}.* is unusable.*training again"):
            again = train_module.train_cached(features, config, cache_dir=tmp_path)
        for pa, pb in zip(first.generator.parameters(), again.generator.parameters()):
            torch.testing.assert_close(pa, pb)  # rebuilt with the same seed: the same model
        assert train_module.read_checkpoint(path) is not None  # and stored again, readable


def test_checkpoint_without_its_fields_is_rebuilt(features, tmp_path):
    from fsrlib.paths import save_checkpoint

    path = tmp_path / "g.pt"
    save_checkpoint(path, {"generator": {}})  # ours (it carries fsrlib's checksum), but lacking fields
    with pytest.warns(UserWarning, match="it lacks config, epoch"):
        result = train_fsrgan(features, small_config(loss="mse", epochs=1), checkpoint=path, resume=True)
    assert len(result.history["epochs"]) == 1 and path.is_file()


def test_load_generator_names_an_unreadable_file(tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"cannot read the checkpoint {path}"):
        load_generator(path)


def test_the_paper_budget_is_counted_in_generator_steps():
    from fsrlib.methods.train import PAPER_GENERATOR_STEPS, paper_generator_steps

    # Oxford5k: 4,500 training images, 10% held out, 7 ratios, batch 64: 443 steps an epoch, 6 epochs
    assert PAPER_GENERATOR_STEPS == paper_generator_steps() == 6 * 443 == 2658
    # the same 6 epochs on mini's 168 training images: about 100 steps (the training chapter's exercise 3)
    assert paper_generator_steps(train_images=168) == 6 * 17


@pytest.mark.parametrize("steps", [1, 7, 13])
def test_a_step_budget_trains_exactly_that_many_generator_steps(features, steps):
    result = train_fsrgan(features, small_config(loss="mse", steps=steps, epochs=99))  # steps replace epochs
    assert len(result.history["steps"]) == steps
    per_epoch = -(-192 // 32)  # 240 pairs, 20% held out, batch 32
    assert len(result.history["epochs"]) == -(-steps // per_epoch)


def test_a_step_budget_resumes_and_extends(features, tmp_path):
    path = tmp_path / "g.pt"
    train_fsrgan(features, small_config(steps=12), checkpoint=path)  # two whole epochs of 6 steps
    resumed = train_fsrgan(features, small_config(steps=18), checkpoint=path, resume=True)
    straight = train_fsrgan(features, small_config(steps=18))
    assert len(resumed.history["steps"]) == 18
    for a, b in zip(resumed.generator.parameters(), straight.generator.parameters()):
        torch.testing.assert_close(a, b)  # extended from an epoch boundary: the same model as one run
    partial = tmp_path / "partial.pt"
    train_fsrgan(features, small_config(steps=8), checkpoint=partial)  # stops part-way through epoch 2
    assert len(train_fsrgan(features, small_config(steps=16), checkpoint=partial, resume=True).history["steps"]) == 16


class Interrupted(Exception):
    pass


def interrupt_after_epoch(n):
    def callback(event):
        if event["event"] == "epoch" and event["epoch"] == n:
            raise Interrupted
    return callback


@pytest.mark.parametrize("every, saved_epochs", [(0.0, 2), (1e9, None)])
def test_checkpoints_are_spaced_in_time_and_resuming_from_any_gives_the_same_model(features, tmp_path, every,
                                                                                      saved_epochs):
    """Saving after every epoch (every=0) keeps the last finished epoch; a long spacing keeps nothing until the end.
    Either way, training to the end from what is on disk gives the uninterrupted model."""
    ckpt = tmp_path / "g.pt"
    with pytest.raises(Interrupted):
        train_fsrgan(features, small_config(epochs=4), checkpoint=ckpt, checkpoint_every=every,
                     callback=interrupt_after_epoch(2))
    if saved_epochs is None:
        assert not ckpt.exists()
    else:
        assert torch.load(ckpt, weights_only=False)["epoch"] == saved_epochs
    resumed = train_fsrgan(features, small_config(epochs=4), checkpoint=ckpt, resume=True, checkpoint_every=every)
    full = train_fsrgan(features, small_config(epochs=4))
    for pa, pb in zip(full.generator.parameters(), resumed.generator.parameters()):
        torch.testing.assert_close(pa, pb)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 4  # the last epoch is always saved


def test_training_shows_a_bar_only_when_progress_was_asked_for(features, capsys):
    """Issue 25: GAN training ran with no progress bar; a quiet run (run(progress=False), --quiet) must stay quiet."""
    from fsrlib.progress import shown

    config = small_config(steps=6, epochs=None)
    train_fsrgan(features, config)
    assert "training gan G" not in capsys.readouterr().err
    with shown(True):
        train_fsrgan(features, config)
    err = capsys.readouterr().err
    assert "training gan G (r=2)" in err and "/6 " in err  # the bar counts the 6 steps
    with shown(True), shown(False):
        train_fsrgan(features, config)
    assert "training" not in capsys.readouterr().err
