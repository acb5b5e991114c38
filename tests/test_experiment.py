import json

import numpy as np
import pytest

from fsrlib.__main__ import main, parse_ratio
from fsrlib.experiment import ExperimentConfig, pivot, run_experiment, save_table


@pytest.fixture(scope="module")
def mini_table(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    cfg = ExperimentConfig(ratios=(0.25, 1 / 64), cache_dir=cache, data_dir=str(tmp_path_factory.mktemp("d") / "m"))
    return run_experiment(cfg, progress=False)


def test_table_is_tidy_and_complete(mini_table):
    assert set(mini_table.columns) == {"dataset", "backbone", "method", "ratio", "ratio_label", "metric", "value"}
    assert set(mini_table["metric"]) == {"distance", "mAP", "mP@1", "mP@5", "mP@10"}
    assert set(mini_table["method"]) == {"hr", "raw"}
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


def test_unknown_method():
    with pytest.raises(KeyError, match="known methods"):
        run_experiment(ExperimentConfig(methods=("magic",)), progress=False)


def test_cli(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["experiment", "--ratios", "1/16", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mAP on mini" in text and "1/16" in text and out.is_file()


def test_parse_ratio():
    assert parse_ratio("1/16") == 1 / 16 and parse_ratio("0.5") == 0.5
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_ratio("a quarter")
