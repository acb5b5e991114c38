import json
from pathlib import Path

import numpy as np
import pytest

from fsrlib.__main__ import main
from fsrlib.cli import parse_ratio
from fsrlib.experiment import ExperimentConfig, pivot, profile_settings, run, save_table, worse_than_raw


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for this module, so the CLI test reuses the features the table fixture extracted."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture(scope="module")
def mini_table(shared_cache):
    cfg = ExperimentConfig(ratios=(0.25, 1 / 64), cache_dir=str(shared_cache),
                           data_dir=str(shared_cache / "datasets" / "mini-v1"),
                           methods=("raw", "ridge", "cnn_baseline"), epochs=1)
    return run(cfg, progress=False).table


def test_table_is_tidy_and_complete(mini_table):
    assert set(mini_table.columns) == {"dataset", "backbone", "protocol", "method", "ratio", "ratio_label", "seed",
                                       "metric", "value"}
    assert set(mini_table["metric"]) == {"distance", "mAP", "mP@1", "mP@5", "mP@10"}
    assert set(mini_table["method"]) == {"hr", "raw", "ridge", "cnn_baseline"}
    assert mini_table.attrs["trained_on"].startswith("paper: 28 test queries, trained on mini (168 images of")
    assert np.isfinite(mini_table["value"]).all()


def test_shrinking_queries_moves_features_away(mini_table):
    dist = pivot(mini_table, "distance")
    assert dist.loc["hr", "1/4"] == pytest.approx(0, abs=1e-6)
    assert 0 < dist.loc["raw", "1/4"] < dist.loc["raw", "1/64"] <= 2
    m_ap = pivot(mini_table, "mAP")
    assert m_ap.loc["raw", "1/64"] < m_ap.loc["hr", "1/64"]


def test_save_csv_and_json(mini_table, tmp_path):
    save_table(mini_table, tmp_path / "t.csv")
    saved = json.loads(save_table(mini_table, tmp_path / "t.json").read_text())
    assert saved["config"]["dataset"] == "mini" and len(saved["rows"]) == len(mini_table)
    with pytest.raises(ValueError, match=".csv or .json"):
        save_table(mini_table, tmp_path / "t.xlsx")


def test_worse_than_raw_lists_only_real_drops():
    import pandas as pd

    rows = [("raw", 0.25, 0.80), ("good", 0.25, 0.81), ("bad", 0.25, 0.70), ("hr", 0.25, 0.9), ("noise", 0.25, 0.799)]
    table = pd.DataFrame([{"method": m, "ratio": r, "ratio_label": "1/4", "metric": "mAP", "value": v}
                          for m, r, v in rows])
    harmed = worse_than_raw(table, tolerance=0.005)
    assert harmed["method"].tolist() == ["bad"] and harmed["drop"].iloc[0] == pytest.approx(0.10)


@pytest.mark.slow
def test_residual_fsrgan_is_never_much_worse_than_raw(tmp_path):
    """The property our variant was designed for, on the mini dataset with the book's CPU budget."""
    cfg = ExperimentConfig(methods=("raw", "fsrgan_residual"), ratios=(1 / 4, 1 / 16, 1 / 64), epochs=20,
                           critic_iters=2, cache_dir=str(tmp_path))
    table = run(cfg, progress=False).table
    assert worse_than_raw(table, tolerance=0.02).empty


def test_profiles():
    assert profile_settings("paper") == {"steps": 2658, "critic_iters": 5}  # Sec. 3.3's length, in steps
    assert profile_settings("short") == {"epochs": 6, "critic_iters": 5}  # the paper's epoch count, on a subset
    with pytest.raises(KeyError, match="known profiles"):
        profile_settings("huge")


def test_unknown_method():
    with pytest.raises(KeyError, match="known methods"):
        run(ExperimentConfig(methods=("magic",)), progress=False)


def test_cli(mini_table, shared_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FSRLIB_CACHE", str(shared_cache))
    out = tmp_path / "r.csv"
    args = ["experiment", "--ratios", "1/4", "1/64", "--methods", "raw", "ridge", "--quiet", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "mAP on mini" in text and "1/64" in text and "ridge" in text and out.is_file()
    assert "trained methods learned from: paper: 28 test queries, trained on mini (168 images of" in text


def test_parse_ratio():
    assert parse_ratio("1/16") == 1 / 16 and parse_ratio("0.5") == 0.5
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_ratio("a quarter")


def test_methods_read_a_budget_not_the_experiment():
    """The registry depends on its own small record; the experiment hands every method the same fields it holds."""
    import subprocess
    import sys
    from dataclasses import fields

    from fsrlib.methods.registry import MethodSettings

    code = "import sys, fsrlib.methods.registry; print('fsrlib.experiment' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    cfg = ExperimentConfig(epochs=3, critic_iters=1, seed=7, pixel_profile="paper", degradation="antialias")
    budget = cfg.method_settings()
    assert budget == MethodSettings(epochs=3, critic_iters=1, seed=7, pixel_profile="paper", degradation="antialias")
    assert all(getattr(budget, f.name) == getattr(cfg, f.name) for f in fields(MethodSettings))
    assert ExperimentConfig().method_settings() == MethodSettings()  # the same paper defaults on both sides


def test_generator_config_is_what_the_registry_trains():
    from fsrlib.methods.models import GeneratorConfig
    from fsrlib.methods.registry import generator_config, generator_methods
    from fsrlib.methods.train import TrainConfig

    budget = ExperimentConfig(epochs=20, critic_iters=2, seed=1).method_settings()
    assert generator_config("fsrgan", budget) == TrainConfig(loss="gan", r=2.0, epochs=20, critic_iters=2, seed=1)
    residual = generator_config("fsrgan_residual", budget)
    assert residual.generator == GeneratorConfig(residual=True) and residual.r == 2.0
    assert generator_config("cnn_baseline", budget).loss == "mse"
    assert generator_methods() == ("cnn_baseline", "gan_distance", "fsrgan", "fsrgan_r3", "fsrgan_residual")
    with pytest.raises(KeyError, match="not a generator method"):
        generator_config("ridge", budget)


@pytest.mark.parametrize(("changes", "message"), [
    ({"ratios": ()}, r"ratios=\(\): no down-scaling ratio given"),  # papermill's `ratios: []` gave empty tables
    ({"ratios": [1 / 16, 0.0625]}, r"ratio listed more than once: 1/16 \(2 times\)"),
    ({"ratios": (float("nan"),)}, r"ratios=\(nan,\): .*area ratio in \(0, 1\].*got nan"),
    ({"ratios": (0.25, 4.0)}, r"a ratio above 1 would enlarge"),
    ({"ratios": ("1/16",)}, r"must be a real number .* not a str: '1/16'"),
    ({"ratios": 0.25}, r"ratios must be a list of area ratios such as \(1/4, 1/16\), not 0.25"),
    ({"methods": ("raw", "ridge", "raw")}, r"methods lists 'raw' more than once"),
    ({"methods": "raw"}, r"methods='raw': expected a list"),
    ({"methods": ()}, r"no method given"),
    ({"seed": -1}, r"a seed must be a whole number of at least 0, got -1"),
    ({"epochs": -2, "critic_iters": 0}, r"epochs=-2.*\n.*critic_iters=0"),
    ({"kappas": (5, 5)}, r"kappas lists 5 more than once"),
    ({"protocol": "leave_one_out"}, r"protocol='leave_one_out': unknown protocol; choose one of paper"),
    ({"pixel_profile": "huge"}, r"pixel_profile='huge': unknown profile"),
    ({"protocol": "group_disjoint", "folds": 1}, r"folds=1: folds must be a whole number of at least 2"),
    ({"protocol": "group_disjoint", "train_dataset": "mini"}, r"cannot be combined with protocol='group_disjoint'"),
    ({"train_dataset": "mini", "train_on": ("paris6k",)}, r"both name training collections"),
    ({"train_data_dir": "elsewhere"}, r"train_data_dir='elsewhere' is the folder of train_dataset, which is not given"),
    ({"train_on": ("mini",), "train_data_dirs": (None, "b")}, r"more folders than train_on"),
    ({"protocol": "cross_dataset", "train_on": ("paris6k", "paris6k")}, r"paris6k \(default folder\) more than once"),
    ({"protocol": "cross_dataset"}, r"protocol='cross_dataset' needs the collections to train on"),
])
def test_config_refuses_bad_fields_when_made(changes, message):
    """Issue 28: a chapter's (or a caller's) bad parameters fail where the config is made, naming the value."""
    with pytest.raises(ValueError, match=message) as info:
        ExperimentConfig(**changes)
    assert "nothing was run" in str(info.value)


def test_config_keeps_valid_values_and_train_on_across_protocols():
    from fractions import Fraction

    cfg = ExperimentConfig(ratios=[Fraction(1, 4), np.float64(1 / 16)], methods=["raw"], seed=np.int64(3))
    assert cfg.ratios == (0.25, 0.0625) and cfg.methods == ("raw",) and cfg.seed == 3
    from dataclasses import replace

    crossed = ExperimentConfig(protocol="cross_dataset", train_on=("paris6k", "mini"), train_data_dirs=("p",))
    assert replace(crossed, protocol="paper").train_on == ("paris6k", "mini")  # chapters switch protocols this way
    assert ExperimentConfig(train_dataset="mini").protocol == "paper"  # the older spelling still runs cross-dataset


def test_run_checks_seeds_and_later_changes_before_any_work(monkeypatch):
    from fsrlib import experiment

    def no_loading(*args, **kwargs):
        raise AssertionError("a dataset was loaded")

    monkeypatch.setattr(experiment, "load_dataset", no_loading)
    for seeds, message in (([], "no seed given"), ([0, 1, 0], "seeds lists 0 more than once"),
                           ([1, -1], "got -1"), (0, "not the single value 0")):
        with pytest.raises(ValueError, match=message):
            run(ExperimentConfig(), seeds=seeds, progress=False)
    cfg = ExperimentConfig()
    cfg.ratios = ()
    with pytest.raises(ValueError, match="no down-scaling ratio given"):
        run(cfg, progress=False)


def test_worse_than_raw_refuses_a_table_with_raw_twice():
    import pandas as pd

    table = pd.DataFrame([{"method": "raw", "ratio": 0.25, "ratio_label": "1/4", "metric": "mAP", "value": v}
                          for v in (0.8, 0.7)])
    with pytest.raises(ValueError, match="several raw mAP rows at ratio 1/4"):
        worse_than_raw(table)


def test_cli_saves_before_reporting(mini_table, shared_cache, tmp_path, capsys, monkeypatch):
    """The tables are written first; --out into a missing folder is made."""
    monkeypatch.setenv("FSRLIB_CACHE", str(shared_cache))
    out = tmp_path / "new" / "r.json"
    assert main(["experiment", "--ratios", "1/4", "--methods", "raw", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.index("saved") < text.index("mAP on mini") and json.loads(out.read_text())["rows"]


def test_a_failed_save_keeps_the_older_table(tmp_path, monkeypatch):
    import pandas as pd

    older = tmp_path / "t.csv"
    older.write_text("older table\n")

    def disk_full(self, path, **kwargs):
        Path(path).write_text("half a ta")
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_table(pd.DataFrame({"a": [1]}), older)
    assert older.read_text() == "older table\n" and list(tmp_path.iterdir()) == [older]
