"""benchmarks/bench_budget.py (issue 23): the recorded paper-length runs are read back and summarised correctly."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsrlib.evaluation.recorded import read_recorded_runs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_budget.py"


def bench():
    spec = importlib.util.spec_from_file_location("bench_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unit(folder: Path, method: str, seed: int, method_ap: float, protocol: str = "paper") -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(40):
        for name, ap in (("hr", 0.9), ("raw", 0.4), (method, method_ap)):
            rows.append({"method": name, "ratio": 1 / 64, "seed": seed, "query": q, "query_name": f"{q}.jpg",
                         "ap": float(np.clip(ap + rng.normal(0, 0.01), 0, 1))})
    pd.DataFrame(rows).to_csv(folder / f"{protocol}-{method}-paper-seed{seed}.csv", index=False)


def test_recorded_runs_are_joined_by_protocol_and_profile_without_double_counting(tmp_path):
    unit(tmp_path, "fsrgan", 0, 0.65)
    unit(tmp_path, "fsrgan", 1, 0.65)
    unit(tmp_path, "cnn_baseline", 0, 0.30)
    unit(tmp_path, "fsrgan", 0, 0.42, protocol="group_disjoint")
    runs = read_recorded_runs(tmp_path)
    assert set(runs) == {("paper", "paper"), ("group_disjoint", "paper")}
    paper = runs[("paper", "paper")]
    assert len(paper[(paper["method"] == "raw") & (paper["seed"] == 0)]) == 40  # raw of seed 0 once, not twice
    table = bench().summary(tmp_path).set_index(["protocol", "method"])
    fsrgan = table.loc[("paper", "fsrgan")]
    assert fsrgan["seeds"] == 2 and fsrgan["gap recovered"] == pytest.approx(0.5, abs=0.02)
    assert fsrgan["verdict"] == "better"
    assert table.loc[("paper", "cnn_baseline")]["verdict"] == "worse"
    assert table.loc[("group_disjoint", "fsrgan")]["gap recovered"] == pytest.approx(0.04, abs=0.02)


def test_no_recorded_runs_is_an_empty_result(tmp_path, capsys):
    assert read_recorded_runs(tmp_path / "absent") == {}
    module = bench()
    module.RESULTS = tmp_path / "absent"
    assert module.main(["summary"]) == 0
    assert "no results under" in capsys.readouterr().out


def test_training_curves_are_recorded_from_the_cached_models_and_drawn(tmp_path, mini_dataset, monkeypatch):
    import matplotlib.pyplot as plt

    from fsrlib.evaluation.recorded import read_recorded_curves
    from fsrlib.experiment import ExperimentConfig, run
    from fsrlib.plotting import plot_training_history

    module = bench()
    cfg = ExperimentConfig(dataset="mini", data_dir=str(mini_dataset.root), methods=("raw", "fsrgan"), steps=12,
                           critic_iters=1, ratios=(1 / 16,), protocol="group_disjoint", folds=2)
    run(cfg, progress=False)
    path = tmp_path / "group_disjoint-fsrgan-short-seed0-curves.json"
    assert module.record_curves(cfg, "fsrgan", path)
    (history, other) = read_recorded_curves(tmp_path)[("group_disjoint", "fsrgan", "short", 0)]
    assert history["fold"] != other["fold"] and history["n_steps"] == 12
    assert [r["step"] for r in history["steps"]] == [0, 10]  # every 10th of the 12 steps
    assert set(history["epochs"][-1]["val_distance"]) == {1 / 16}
    fig, axes = plt.subplots(1, 3)
    plot_training_history(history, axes)
    plt.close(fig)
    # a unit whose models are not in this cache (recorded elsewhere) writes nothing and says so
    monkeypatch.setenv("FSRLIB_CACHE", str(tmp_path / "empty-cache"))
    assert not module.record_curves(cfg, "fsrgan", tmp_path / "other-curves.json")
    assert not (tmp_path / "other-curves.json").exists()


def test_a_converged_curve_is_flat_and_a_cut_short_one_is_not():
    from fsrlib.evaluation.recorded import curve_flatness

    epochs = np.arange(200)
    converged = {"epochs": [{"val_distance": {0.25: 0.5 + 0.5 * np.exp(-e / 10)}} for e in epochs]}
    cut_short = {"epochs": [{"val_distance": {0.25: 1.0 - 0.002 * e}} for e in epochs]}
    assert abs(curve_flatness(converged, 0.25)) < 1e-3
    assert curve_flatness(cut_short, 0.25) == pytest.approx(-0.04 / 0.661)  # means of epochs 180-199 and 160-179
    with pytest.raises(ValueError, match="too few"):
        curve_flatness({"epochs": converged["epochs"][:1]}, 0.25)


def test_each_recorded_unit_says_where_it_ran(tmp_path):
    import json

    from fsrlib.evaluation.recorded import read_recorded_units

    unit(tmp_path, "fsrgan", 1, 0.6, protocol="group_disjoint")
    (tmp_path / "group_disjoint-fsrgan-paper-seed1.json").write_text(json.dumps(
        {"config": {"device": "cuda", "steps": 2658, "epochs": 6}, "commit": "0123456789abcdef", "seconds": 61.5,
         "machine": "gpu-host x86_64, 16 cores"}))
    (tmp_path / "group_disjoint-fsrgan-paper-seed1-curves.json").write_text("{}")
    (row,) = read_recorded_units(tmp_path).to_dict("records")
    assert row == {"protocol": "group_disjoint", "method": "fsrgan", "profile": "paper", "seed": 1, "device": "cuda",
                   "steps": 2658, "epochs": 6, "machine": "gpu-host x86_64, 16 cores", "seconds": 61.5,
                   "commit": "0123456789"}


def test_a_unit_of_a_method_that_is_not_a_generator_shows_no_budget(tmp_path):
    """ridge is recorded beside the GANs for comparison; the profile's 2,658 steps are in its config but it never
    trains for them, so the table of units must not say it did."""
    import json

    from fsrlib.evaluation.recorded import read_recorded_units

    unit(tmp_path, "ridge", 0, 0.6)
    (tmp_path / "paper-ridge-paper-seed0.json").write_text(json.dumps(
        {"config": {"device": "cpu", "steps": 2658, "epochs": 6}, "generator": False, "commit": "abc", "seconds": 3.0,
         "machine": "m"}))
    (row,) = read_recorded_units(tmp_path).to_dict("records")
    assert row["method"] == "ridge" and row["steps"] is None and row["epochs"] is None


def test_a_unit_recorded_before_a_config_field_was_added_is_still_done():
    import json
    from dataclasses import asdict

    from fsrlib.experiment import ExperimentConfig

    module = bench()
    wanted = json.loads(json.dumps(asdict(ExperimentConfig(steps=2658)), default=str))
    older = {k: v for k, v in wanted.items() if k != "unlabeled_photos"}
    assert module.same_config(wanted, wanted) and module.same_config(older, wanted)
    assert not module.same_config({**older, "steps": 100}, wanted)
    assert not module.same_config(older, {**wanted, "unlabeled_photos": "/elsewhere"})  # a new field, not default


def test_a_unit_recorded_under_a_field_s_old_name_is_still_done():
    import json
    from dataclasses import asdict

    from fsrlib.experiment import ExperimentConfig

    module = bench()
    wanted = json.loads(json.dumps(asdict(ExperimentConfig(steps=2658, pixel_profile="paper")), default=str))
    recorded = {("isr_profile" if k == "pixel_profile" else k): v for k, v in wanted.items()}
    assert module.same_config(recorded, wanted)
    assert not module.same_config({**recorded, "isr_profile": "cpu"}, wanted)
