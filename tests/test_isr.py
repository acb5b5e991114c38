import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fsrlib.methods.isr import (
    SRCNN,
    VDSR,
    Upscaler,
    VDSRConfig,
    build_isr_model,
    psnr,
    rgb_to_ycbcr,
    ssim,
    super_resolve,
    ycbcr_to_rgb,
)
from fsrlib.methods.isr_train import ISRTrainConfig, evaluate_isr, isr_config, luma_pairs, sample_batch, train_isr
from fsrlib.methods.models import count_parameters


def test_srcnn_915_shapes_and_parameters():
    model = SRCNN()
    # 9x9x1x64 + 64, 1x1x64x32 + 32, 5x5x32x1 + 1 (Dong et al.'s 9-1-5 network)
    assert count_parameters(model) == 81 * 64 + 64 + 64 * 32 + 32 + 25 * 32 + 1 == 8129
    assert model(torch.rand(2, 1, 33, 47)).shape == (2, 1, 33, 47)


def test_vdsr_shapes_parameters_and_residual_path():
    model = VDSR()
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 20 and all(c.kernel_size == (3, 3) for c in convs)
    assert count_parameters(model) == (9 * 64 + 64) + 18 * (9 * 64 * 64 + 64) + (9 * 64 + 1) == 665_921
    x = torch.rand(1, 1, 41, 41)
    with torch.no_grad():
        convs[-1].weight.zero_()
        convs[-1].bias.zero_()
        assert torch.equal(model(x), x)  # zero residual: the bicubic input comes back unchanged
        assert not torch.equal(VDSR(VDSRConfig(residual=False))(x), x)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\) luminance"):
        SRCNN()(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match="at least 2 layers"):
        VDSR(VDSRConfig(depth=1))
    with pytest.raises(KeyError, match="unknown ISR model"):
        build_isr_model("edsr")
    with pytest.raises(KeyError, match="unknown ISR profile"):
        isr_config("vdsr", "tpu")
    with pytest.raises(ValueError, match="RGB image"):
        rgb_to_ycbcr(np.zeros((4, 4)))


def test_scale_below_one_is_rejected(tiny_dataset):
    # the super-resolution scale is 1 / sqrt(ratio): a ratio just above 1 asks the "upscaler" to shrink (x0.95)
    with pytest.raises(ValueError, match=r"area ratio in \(0, 1\]"):
        luma_pairs(tiny_dataset, "train", [1.1], limit=1)
    hr, lr = luma_pairs(tiny_dataset, "train", [1.0], limit=1)  # scale exactly 1: the HR input itself
    np.testing.assert_array_equal(lr[1.0], hr)


def test_upscaling_ratio_of_four_is_rejected(tiny_dataset):
    # a "ratio" of 4 read as "x4" would be a 4x larger image, not a 1/16 one
    with pytest.raises(ValueError, match=r"area ratio in \(0, 1\]"):
        luma_pairs(tiny_dataset, "train", [4.0], limit=1)


def test_damaged_isr_checkpoint_is_rebuilt(tiny_dataset, tmp_path):
    from fsrlib.methods.isr_train import train_isr_cached

    cfg = ISRTrainConfig(model="srcnn", ratios=(1 / 4,), patch_size=33, batch_size=2, steps=2)
    first, _, key = train_isr_cached(tiny_dataset, cfg, tmp_path)
    path = tmp_path / "isr" / f"srcnn-{key}.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match=rf"model checkpoint {path}.* is unusable"):
        again, _, _ = train_isr_cached(tiny_dataset, cfg, tmp_path)
    for pa, pb in zip(first.parameters(), again.parameters()):
        torch.testing.assert_close(pa, pb)  # the same seed trains the same network
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file loads without a warning
        loaded, _, _ = train_isr_cached(tiny_dataset, cfg, tmp_path)
    torch.testing.assert_close(next(loaded.parameters()), next(first.parameters()))


def test_psnr_known_values():
    a = np.zeros((8, 8))
    assert psnr(a, a) == math.inf
    # MSE 1 at range 255: 10 log10(255^2) = 48.1308 dB
    assert psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-4)
    b = a.copy()
    b[0, 0] = 100  # outside the shaved border it does not count
    assert psnr(a, b, border=1) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, np.zeros((4, 4)))


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    img = np.tile(np.linspace(16, 235, 32), (32, 1))  # a smooth ramp
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, img + rng.normal(0, 20, img.shape)) < 0.5
    assert ssim(img, img + 5) > 0.99  # a small brightness shift barely matters


def test_ycbcr_matlab_convention_and_roundtrip():
    px = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    ycc = rgb_to_ycbcr(px)
    np.testing.assert_allclose(ycc[0, :, 0], [16.0, 235.0], atol=1e-9)  # MATLAB rgb2ycbcr: Y in [16, 235]
    np.testing.assert_allclose(ycc[0, :, 1:], 128.0, atol=1e-9)
    rgb = np.random.default_rng(1).integers(0, 256, size=(10, 10, 3)).astype(np.uint8)
    assert np.abs(ycbcr_to_rgb(rgb_to_ycbcr(rgb)).astype(int) - rgb).max() <= 1


def test_super_resolve_changes_only_luma():
    model = SRCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # predicts mid-grey (0.5 on the [0, 1] scale, Y = 16 + 219/2) everywhere
    img = Image.fromarray(np.full((20, 20, 3), (200, 40, 40), np.uint8))
    before = rgb_to_ycbcr(np.asarray(img))
    out = rgb_to_ycbcr(np.asarray(super_resolve(model, img)))
    assert np.allclose(out[..., 0], 125.5, atol=1)
    np.testing.assert_allclose(out[..., 1:], before[..., 1:], atol=1.5)  # chroma kept


def test_short_training_lowers_the_loss(tiny_dataset):
    hr, lr = luma_pairs(tiny_dataset, "train", [1 / 4])
    assert hr.shape == (5, 224, 224) and lr[1 / 4].shape == hr.shape
    x, y = sample_batch(hr, lr, 4, 33, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 1, 33, 33)
    cfg = ISRTrainConfig(model="srcnn", ratios=(1 / 4,), patch_size=33, batch_size=16, steps=60, lr=1e-3)
    _, history = train_isr(hr, lr, cfg)
    first, last = np.mean(history["loss"][:10]), np.mean(history["loss"][-10:])
    assert last < 0.5 * first
    with pytest.raises(ValueError, match="patch size"):
        train_isr(hr[:, :20, :20], {r: v[:, :20, :20] for r, v in lr.items()}, cfg)


def test_upscaler_refuses_untrained_ratios_and_table_includes_bicubic(tiny_dataset):
    up = Upscaler("srcnn", {1 / 4: SRCNN().eval()}, cache_id="test")
    assert up.supports(1 / 4) and up.supports(1.0) and not up.supports(1 / 64)
    img = Image.fromarray(np.zeros((224, 224, 3), np.uint8))
    assert up(img, 1.0) is img
    with pytest.raises(ValueError, match="trained for area ratios 0.25, not 0.01562"):
        up(img, 1 / 64)
    hr, lr = luma_pairs(tiny_dataset, "db", [1 / 4, 1 / 9])
    table = evaluate_isr({"srcnn": up}, hr, lr)
    assert set(table["method"]) == {"bicubic", "srcnn"}
    assert table[table["method"] == "srcnn"]["ratio"].tolist() == [1 / 4]  # not at 1/9: no row, no fallback
    assert table[table["method"] == "bicubic"]["scale"].tolist() == ["x2", "x3"]


def test_per_image_rows_average_to_the_table_and_realigned_is_a_row(tiny_dataset):
    up = Upscaler("srcnn", {1 / 4: SRCNN().eval()}, cache_id="test")
    hr, lr = luma_pairs(tiny_dataset, "db", [1 / 4, 1 / 9])
    mean = evaluate_isr({"srcnn": up}, hr, lr, realigned=True)
    rows = evaluate_isr({"srcnn": up}, hr, lr, realigned=True, per_image=True)
    assert len(rows) == len(hr) * (3 + 2) and set(rows["image"]) == set(range(len(hr)))
    averaged = rows.groupby(["method", "ratio"], sort=False)[["PSNR", "SSIM"]].mean().reset_index()
    np.testing.assert_allclose(averaged[["PSNR", "SSIM"]], mean[["PSNR", "SSIM"]])
    assert "bicubic, re-aligned" in set(mean["method"])


def test_realign_uniform_moves_kept_pixels_back_where_they_were_taken():
    """Uniform sub-sampling by 2 keeps pixel 2j+1; bicubic up-sampling shows it at 2j+0.5: on a smooth pattern the
    bicubic image is off by the pattern's slope times half a pixel, the re-aligned one is not. At x7 (224 = 7 x 32)
    nothing moves."""
    from fsrlib.features.degrade import degrade, uniform_kept_positions
    from fsrlib.methods.isr import realign_uniform
    from fsrlib.methods.isr_train import luma

    np.testing.assert_array_equal(uniform_kept_positions(224, 112)[:2], [[1, 0.5], [3, 2.5]])
    np.testing.assert_array_equal(uniform_kept_positions(224, 32)[:2], [[3, 3], [10, 10]])
    y, x = np.mgrid[:224, :224]
    wave = 128 + 90 * np.sin(2 * np.pi * x / 40) * np.cos(2 * np.pi * y / 56)
    image = Image.fromarray(np.repeat(wave[..., None], 3, axis=2).round().astype(np.uint8))
    truth = luma(image)
    bicubic = luma(degrade(image, 1 / 4).upsampled)
    realigned = realign_uniform(bicubic, 1 / 4)
    inner = (slice(8, -8), slice(8, -8))
    off, back = np.abs(bicubic - truth)[inner].mean(), np.abs(realigned - truth)[inner].mean()
    assert back < off / 3, (off, back)
    odd = luma(degrade(image, 1 / 49).upsampled)
    np.testing.assert_allclose(realign_uniform(odd, 1 / 49), odd, atol=1e-6)
    assert realign_uniform(np.stack([bicubic, bicubic]), 1 / 4).shape == (2, 224, 224)
    with pytest.raises(ValueError, match="expected"):
        realign_uniform(bicubic[0], 1 / 4)


def test_features_through_an_upscaler(tiny_dataset):
    from fsrlib.features.extract import extract_features

    up = Upscaler("srcnn", {1 / 4: SRCNN().eval()}, cache_id="untrained-srcnn")
    raw = extract_features(tiny_dataset, "query", (1.0, 1 / 4), progress=False)
    isr = extract_features(tiny_dataset, "query", (1.0, 1 / 4), progress=False, upscaler=up)
    np.testing.assert_array_equal(raw[1.0], isr[1.0])  # HR is never super-resolved
    assert not np.allclose(raw[1 / 4], isr[1 / 4])
    with pytest.raises(ValueError, match="not trained for ratios"):
        extract_features(tiny_dataset, "query", (1 / 9,), progress=False, upscaler=up)


def test_core_experiment_with_isr_rows(mini_dataset, monkeypatch):
    """srcnn/vdsr go through the same extraction and evaluation; SRCNN has rows only at its trained ratios."""
    from fsrlib.experiment import ExperimentConfig, pivot, run
    from fsrlib.methods import isr_train

    tiny = {"srcnn": {"patch_size": 33, "batch_size": 4, "steps": 3, "lr": 1e-3},
            "vdsr": {"patch_size": 41, "batch_size": 2, "steps": 2, "lr": 1e-4,
                     "model_config": {"depth": 3, "channels": 8}}}
    monkeypatch.setitem(isr_train.ISR_PROFILES, "cpu", tiny)
    cfg = ExperimentConfig(dataset="mini", data_dir=str(mini_dataset.root), ratios=(1 / 4, 1 / 64),
                           methods=("raw", "bicubic", "srcnn", "vdsr"))
    table = run(cfg, progress=False).table
    m = pivot(table, "mAP")
    assert m.loc["srcnn", "1/4"] > 0 and np.isnan(m.loc["srcnn", "1/64"])  # no silent bicubic fallback
    assert m.loc["vdsr"].notna().all()
    assert m.loc["bicubic"].tolist() == m.loc["raw"].tolist()
    assert table.attrs["trained_on"].startswith("paper: 28 test queries, trained on mini (")


def test_an_upscaler_made_with_device_auto_runs_on_this_machines_best_device():
    """Issue 25: the chapters pass ``device="auto"``; an Upscaler built with it (isr's solutions do) resolves it
    once, and an unknown device is a clear error, not a failure deep inside torch."""
    from fsrlib.devices import best_device
    from fsrlib.methods.isr import SRCNN, Upscaler

    up = Upscaler("srcnn", {0.25: SRCNN()}, cache_id="srcnn-test", device="auto")
    assert up.device == best_device()
    assert next(up.models[0.25].parameters()).device.type == torch.device(best_device()).type
    out = up.refine_luma(np.random.default_rng(0).random((2, 24, 24)), 0.25)
    assert out.shape == (2, 24, 24) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="gpu"):
        Upscaler("srcnn", {0.25: SRCNN()}, cache_id="srcnn-test", device="gpu")
