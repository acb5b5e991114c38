"""benchmarks/bench_student.py's recorded results (issue 24) are read back by fsrlib.evaluation.recorded.read_student_run
into per-query frames whose summary agrees with what the script printed and stored."""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsrlib.evaluation.analysis import summarize, summary_row
from fsrlib.evaluation.recorded import read_student_run
from fsrlib.methods.student import StudentConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_student.py"


def bench():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_student", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def recorded(tmp_path: Path, seeds=(0, 1), queries: int = 40) -> tuple[Path, dict]:
    """A result written by the script's own ``report`` from made-up APs: the student helps at the small ratios."""
    module = bench()
    rng = np.random.default_rng(0)
    ratios = (1.0, *module.EVAL_RATIOS)
    raw = {r: np.clip(0.9 * r ** 0.1 + rng.normal(0, 0.05, queries), 0, 1) for r in ratios}
    student = {r: np.clip(raw[r] + (0.1 if r < 1 else 0.0) + rng.normal(0, 0.02, (len(seeds), queries)), 0, 1)
               for r in ratios}
    args = argparse.Namespace(protocol="cross_dataset", unlabeled=-1, distractors=False, seeds=list(seeds), set=[])
    result = module.report(args, StudentConfig(), raw, student, [{"seed": s, "train_s": 1.0, "pair_s": 0.0}
                                                                  for s in seeds], ["all queries"])
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result))
    return path, result


@pytest.mark.parametrize("protocol, unlabeled, train_on, count", [
    ("cross_dataset", 500, ("paris6k",), 500), ("cross_dataset", -1, ("paris6k",), None),
    ("cross_dataset", 0, ("paris6k", "mini"), None), ("group_disjoint", -1, (), None), ("paper", 250, (), 250)])
def test_each_run_is_the_core_experiment_with_the_student(protocol, unlabeled, train_on, count):
    """The script runs fsrlib.experiment (issue 27): its options become one ExperimentConfig (the unlabeled photos
    as unlabeled_count, --set as student_changes), checked before any work."""
    module = bench()
    args = argparse.Namespace(protocol=protocol, unlabeled=unlabeled, set=["crops_per_image=1"], split_seed=2)
    cfg = module.experiment_config(args)
    assert cfg.methods == ("raw", "student") and cfg.ratios == (1.0, *module.EVAL_RATIOS)
    assert cfg.protocol == protocol and cfg.train_on == train_on and cfg.fold_seed == 2
    assert cfg.unlabeled_count == count and (cfg.unlabeled_photos is None) == (unlabeled == 0)
    assert cfg.student_changes == {"crops_per_image": 1}
    with pytest.raises(ValueError, match="nothing was run"):
        module.experiment_config(argparse.Namespace(protocol=protocol, unlabeled=unlabeled, split_seed=0,
                                                    set=["trainable_blocks=99"]))


def test_a_recorded_run_summarises_to_the_numbers_the_script_stored(tmp_path):
    path, result = recorded(tmp_path)
    per_query, about = read_student_run(path)
    assert about["protocol"] == "cross_dataset" and about["seeds"] == [0, 1]
    assert len(about["commit"]) == 40 and "cores" in about["machine"]
    summary = summarize(per_query)
    for row in result["rows"]:
        got = summary_row(summary, "student", row["ratio"])
        assert got["mAP"] == pytest.approx(row["student"])
        assert got["seeds"] == 2
        assert [got["seed_min"], got["seed_max"]] == pytest.approx(sorted(row["student_per_seed"]))
        assert summary_row(summary, "raw", row["ratio"])["mAP"] == pytest.approx(row["raw"])
        assert summary_row(summary, "hr", row["ratio"])["mAP"] == pytest.approx(row["hr"])
        assert got["vs raw"] == pytest.approx(row["diff_vs_raw"][0])
        if row["ratio"] < 1:
            assert got["gap recovered"] == pytest.approx(row["gap_recovered"])
            assert got["verdict"] == "better"  # +0.1 on every query


def test_a_result_without_per_query_aps_or_with_the_wrong_shape_is_refused(tmp_path):
    path, result = recorded(tmp_path)
    old = dict(result)
    del old["per_query"]
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="no per-query APs.*rerun its command"):
        read_student_run(path)
    bad = json.loads(json.dumps(result))
    bad["per_query"]["1/64"]["student"] = bad["per_query"]["1/64"]["student"][:1]  # one seed of two
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="1/64.*expected \\(2 seeds, 40 queries\\)"):
        read_student_run(path)
    with pytest.raises(FileNotFoundError):
        read_student_run(tmp_path / "absent.json")


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("student_*unlabeled*.json")),
                         ids=lambda p: p.name)
def test_every_committed_student_result_reads_back_to_its_own_table(path):
    per_query, about = read_student_run(path)
    summary = summarize(per_query)
    stored = json.loads(path.read_text())["rows"]
    for row in stored:
        assert summary_row(summary, "student", row["ratio"])["mAP"] == pytest.approx(row["student"], abs=1e-9)
        assert summary_row(summary, "raw", row["ratio"])["mAP"] == pytest.approx(row["raw"], abs=1e-9)
    assert per_query["query"].nunique() == 150 and set(per_query["seed"]) == {-1, *about["seeds"]}


def test_a_recorded_method_joins_a_live_run_paired_by_query(tmp_path):
    from fsrlib.evaluation.recorded import with_recorded

    path, _ = recorded(tmp_path, seeds=(0,))
    student, _ = read_student_run(path)
    live = student[student["method"] != "student"].copy()
    live = live[np.isclose(live["ratio"], 1 / 64) | np.isclose(live["ratio"], 1 / 4)]
    live["seed"] = 0
    joined = with_recorded(live, student, "student")
    assert set(joined["method"]) == {"raw", "hr", "student"}
    assert sorted(joined.loc[joined["method"] == "student", "ratio"].unique()) == [1 / 64, 1 / 4]
    summary = summarize(joined)
    assert summary_row(summary, "student", 1 / 64)["verdict"] == "better"
    alone = summarize(with_recorded(None, student, "student", [1 / 64]))
    assert set(alone["ratio"]) == {1 / 64} and set(alone["method"]) == {"raw", "hr", "student"}
    with pytest.raises(ValueError, match="own 'student' rows"):
        with_recorded(student, student, "student")
    with pytest.raises(ValueError, match="nothing to join"):
        with_recorded(None, None, "student")


def test_runs_recorded_one_seed_per_file_are_pooled_into_one_row_per_run_and_ratio(tmp_path):
    from fsrlib.evaluation.recorded import summarize_student_runs

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    seed0, _ = recorded(tmp_path / "a", seeds=(0,))
    seed1, _ = recorded(tmp_path / "b", seeds=(1,))
    both, _ = recorded(tmp_path / "c", seeds=(0, 1))
    table = summarize_student_runs({250: [seed0, seed1], 500: [both]}, ratios=(1 / 64,))
    assert list(table["run"]) == [250, 500] and list(table["ratio"]) == [1 / 64, 1 / 64]
    pooled = table.iloc[0]
    alone = [summary_row(summarize(read_student_run(p)[0]), "student", 1 / 64)["mAP"] for p in (seed0, seed1)]
    assert pooled["seeds"] == 2 and pooled["mAP"] == pytest.approx(np.mean(alone))
    assert [pooled["seed_min"], pooled["seed_max"]] == pytest.approx(sorted(alone))
    assert pooled["verdict"] == "better" and pooled["gap recovered"] > 0


def test_pooling_takes_frozen_scores_that_differ_by_feature_storage_alone(tmp_path):
    """Runs recorded before bench_student ran the experiment stored raw features as float32, later ones as float16:
    a few query APs differ (2 of 1,200 in the recorded files). Such files pool, with the first file's raw APs as the
    baseline; APs that differ widely are other features and are refused."""
    from fsrlib.evaluation.recorded import same_frozen_scores, summarize_student_runs

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, _ = recorded(tmp_path / "a", seeds=(0,))
    second, result = recorded(tmp_path / "b", seeds=(1,))
    aps = result["per_query"]["1/64"]["raw"]
    aps[3] = min(1.0, aps[3] + 0.1)  # one query ranked differently: 1 of 40 APs at one ratio, mAP by 0.0025
    second.write_text(json.dumps(result))
    table = summarize_student_runs({"pooled": [first, second]}, ratios=(1 / 64,))
    assert table.iloc[0]["seeds"] == 2
    frozen = [read_student_run(p)[0] for p in (first, second)]
    assert same_frozen_scores(*(f[f["method"] != "student"] for f in frozen)) is None
    # the baseline is the first file's raw: the pooled gap is the one computed against it
    alone = summarize(pd.concat([frozen[0][frozen[0]["method"] != "student"],
                                 *(f[f["method"] == "student"] for f in frozen)], ignore_index=True))
    assert table.iloc[0]["gap recovered"] == pytest.approx(summary_row(alone, "student", 1 / 64)["gap recovered"])
    for q in range(12):  # 12 of 40 queries moved at one ratio: raw mAP at 1/64 off by about 0.06
        aps[q] = min(1.0, aps[q] + 0.2)
    second.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="other queries or features .*of the APs differ"):
        summarize_student_runs({"pooled": [first, second]}, ratios=(1 / 64,))


def test_pooling_refuses_a_seed_recorded_twice_and_files_scored_on_other_queries(tmp_path):
    from fsrlib.evaluation.recorded import summarize_student_runs

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, _ = recorded(tmp_path / "a", seeds=(0,))
    again, _ = recorded(tmp_path / "b", seeds=(0,))
    with pytest.raises(ValueError, match="a seed is recorded in two of its files"):
        summarize_student_runs({"twice": [first, again]})
    (tmp_path / "c").mkdir()
    fewer, _ = recorded(tmp_path / "c", seeds=(1,), queries=30)
    with pytest.raises(ValueError, match="other queries or features"):
        summarize_student_runs({"mixed": [first, fewer]})
    with pytest.raises(ValueError, match="has no files"):
        summarize_student_runs({"empty": []})


def test_student_aps_are_the_seed_mean_per_query_in_query_order(tmp_path):
    from fsrlib.evaluation.recorded import student_aps

    path, result = recorded(tmp_path, seeds=(0, 1))
    stored = np.asarray(json.loads(path.read_text())["per_query"]["1/64"]["student"])
    assert student_aps([path], 1 / 64) == pytest.approx(stored.mean(axis=0))
    with pytest.raises(ValueError, match="no student APs at ratio 0.5"):
        student_aps([path], 0.5)


@pytest.mark.parametrize("distractors", [False, True])
def test_a_run_reads_its_aps_from_the_experiment_result(monkeypatch, tiny_dataset, distractors):
    """``run`` turns the experiment's result into the stored per-query APs: its own scores, or with
    ``--distractors`` the same features ranked against the database plus the distractors (which, matching nothing,
    can only lower an AP)."""
    import pandas as pd

    from fsrlib.experiment import ExperimentResult, score_queries

    module = bench()
    rng = np.random.default_rng(0)
    ratios = (1.0, *module.EVAL_RATIOS)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    db = unit(rng.normal(size=(len(tiny_dataset.images), 8)))
    enhanced = {("hr", 0): {1.0: unit(rng.normal(size=(2, 8)))}}
    enhanced |= {(m, s): {r: unit(rng.normal(size=(2, 8))) for r in ratios} for m, s in (("raw", 0), ("student", 0),
                                                                                         ("student", 1))}
    frames = [pd.DataFrame({"method": m, "seed": s, "ratio": r, "query": [1, 0],  # out of order on purpose
                            "ap": score_queries(f[r], enhanced[("hr", 0)][1.0], db, tiny_dataset, (1,)).ap[::-1]})
              for (m, s), f in enhanced.items() if m != "hr" for r in ratios]
    result = ExperimentResult(table=pd.DataFrame(), per_query=pd.concat(frames, ignore_index=True), folds=["all"],
                              enhanced=enhanced, trainings=[{"method": "student", "seed": s, "fold": "all",
                                                             "photos": 5, "pair_s": 0.0, "train_s": 1.0}
                                                            for s in (0, 1)])
    monkeypatch.setattr(module, "experiment_run", lambda cfg, seeds, progress: result)
    monkeypatch.setattr(module, "load_dataset", lambda name, folder=None: tiny_dataset)
    monkeypatch.setattr(module, "split_features", lambda ds, split, ratios, cfg, progress: {1.0: db})
    monkeypatch.setattr(module, "distractor_features", lambda: unit(rng.normal(size=(20, 8))))
    args = argparse.Namespace(protocol="cross_dataset", unlabeled=-1, distractors=distractors, seeds=[0, 1], set=[],
                              split_seed=0)
    out = module.run(args)
    own = {r: score_queries(enhanced[("student", 1)][r], enhanced[("hr", 0)][1.0], db, tiny_dataset, (1,)).ap
           for r in ratios}
    got = {r: np.asarray(out["per_query"][module.ratio_label(r)]["student"])[1] for r in ratios}
    for r in ratios:
        if distractors:
            assert (got[r] <= own[r] + 1e-12).all()
        else:
            assert got[r] == pytest.approx(own[r])  # in query order, whatever order the frame held
    assert [t["photos"] for t in out["timings"]] == [5, 5]
