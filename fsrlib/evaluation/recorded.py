"""Reading what the benchmark scripts recorded under ``benchmarks/results/``: the paper-length GAN units of
``bench_budget.py`` (per-query APs, where each ran, training curves) and the student runs of ``bench_student.py``,
as frames ready for :func:`fsrlib.evaluation.analysis.summarize`, plus the checks the chapters make on them (whether
a curve has flattened). A pip install has no ``benchmarks/``: the folder readers then return nothing.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from fsrlib.evaluation.analysis import seed_mean_ap, summarize


def read_recorded_runs(folder: str | Path) -> dict[tuple[str, str], pd.DataFrame]:
    """The per-query results ``benchmarks/bench_budget.py`` recorded in ``folder`` (files
    ``<protocol>-<method>-<profile>-seed<k>.csv``), joined by ``(protocol, profile)``: each frame holds every
    recorded method's, raw's and HR's per-query APs over the seeds run, ready for :func:`summarize`. Empty if the
    folder is absent (a pip install has no ``benchmarks/``)."""
    frames: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for csv in sorted(Path(folder).glob("*-seed*.csv")):
        protocol, _, profile, _ = csv.stem.rsplit("-", 3)
        frames.setdefault((protocol, profile), []).append(pd.read_csv(csv))
    return {key: pd.concat(parts, ignore_index=True).drop_duplicates(["method", "ratio", "seed", "query"])
            for key, parts in frames.items()}


def read_recorded_curves(folder: str | Path) -> dict[tuple[str, str, str, int], list[dict]]:
    """The training curves ``benchmarks/bench_budget.py`` kept beside its results (``<unit>-curves.json``), by
    ``(protocol, method, profile, seed)``: one history per fold, in the form
    :func:`fsrlib.plotting.plot_training_history` draws (validation distance per epoch, losses every
    ``step_stride``-th step; ``n_steps``: how many it trained). Empty if the folder is absent."""
    curves: dict[tuple[str, str, str, int], list[dict]] = {}
    for path in sorted(Path(folder).glob("*-seed*-curves.json")):
        protocol, method, profile, seed = path.name.removesuffix("-curves.json").rsplit("-", 3)
        recorded = json.loads(path.read_text())
        curves[(protocol, method, profile, int(seed.removeprefix("seed")))] = [
            {"fold": fold["fold"], "n_steps": fold["steps"], "steps": fold["step_records"],
             "epochs": [{"epoch": e["epoch"], "val_distance": {float(r): d for r, d in e["val_distance"].items()}}
                        for e in fold["epochs"]]}
            for fold in recorded["folds"]]
    return curves


def read_recorded_units(folder: str | Path) -> pd.DataFrame:
    """Where each recorded unit of ``benchmarks/bench_budget.py`` comes from, one row per unit: protocol, method,
    profile, seed, device, generator steps and epochs (empty for a method that is not a generator, such as ridge,
    which the profile's budget does not touch), machine, seconds and git commit (from the JSON beside its results)."""
    rows = []
    for meta in sorted(Path(folder).glob("*-seed*.json")):
        if meta.name.endswith("-curves.json"):
            continue
        protocol, method, profile, seed = meta.stem.rsplit("-", 3)
        recorded = json.loads(meta.read_text())
        config = recorded.get("config", {})
        trains_steps = recorded.get("generator", True)  # units recorded before the field were all generators
        rows.append({"protocol": protocol, "method": method, "profile": profile, "seed": int(seed.removeprefix("seed")),
                     "device": config.get("device"), "steps": config.get("steps") if trains_steps else None,
                     "epochs": config.get("epochs") if trains_steps else None,
                     "machine": recorded.get("machine"), "seconds": recorded.get("seconds"),
                     "commit": str(recorded.get("commit", ""))[:10]})
    units = pd.DataFrame(rows)
    return units.astype({"steps": "Int64", "epochs": "Int64"}) if len(units) else units  # whole numbers or <NA>


def read_student_run(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """One run recorded by ``benchmarks/bench_student.py`` (a JSON file): its per-query APs as a frame ready for
    :func:`summarize` (methods ``raw``, ``hr`` and ``student``, one row per ratio, seed and query; ``raw`` and
    ``hr`` do not depend on the seed and are stored once, as seed ``-1``), and what it ran (protocol, seeds,
    student config, timings, command, commit and machine where recorded). ``FileNotFoundError`` if it is absent."""
    recorded = json.loads(Path(path).read_text())
    per_query = recorded.get("per_query")
    if not per_query:
        raise ValueError(f"{path} has no per-query APs (recorded before they were kept): rerun its command, "
                         f"{recorded.get('command', 'benchmarks/bench_student.py run ...')!r}")
    seeds = list(recorded["seeds"])
    full = np.asarray(per_query["1"]["raw"], dtype=float)
    parts = []
    for label, aps in per_query.items():
        ratio = float(Fraction(label))  # "1", "1/64": the labels ratio_label writes
        raw = np.asarray(aps["raw"], dtype=float)
        student = np.asarray(aps["student"], dtype=float)
        if student.shape != (len(seeds), len(raw)):
            raise ValueError(f"{path}: student APs at {label} have shape {student.shape}, expected "
                             f"({len(seeds)} seeds, {len(raw)} queries)")
        queries = np.arange(len(raw))
        parts.append(pd.DataFrame({"method": "raw", "ratio": ratio, "seed": -1, "query": queries, "ap": raw}))
        parts.append(pd.DataFrame({"method": "hr", "ratio": ratio, "seed": -1, "query": queries, "ap": full}))
        for seed, row in zip(seeds, student):
            parts.append(pd.DataFrame({"method": "student", "ratio": ratio, "seed": seed, "query": queries, "ap": row}))
    about = {k: recorded.get(k) for k in ("protocol", "seeds", "unlabeled", "extra", "distractors", "photos",
                                           "config", "timings", "command", "commit", "machine")}
    return pd.concat(parts, ignore_index=True), about


#: How far two recordings of the same frozen scores may differ: the raw features bench_student stored as float32
#: before it ran the experiment (which stores them as float16) rank a few queries differently (2 of 1,200 query
#: and ratio APs, mAP within 0.0014 at any ratio); other queries or another backbone differ everywhere.
FROZEN_TOLERANCE = {"cells": 0.01, "map": 0.005}


def same_frozen_scores(first: pd.DataFrame, other: pd.DataFrame) -> str | None:
    """Why two student runs' raw and full-size APs are not the same frozen scores (other queries, ratios or
    features), or ``None``: the same (method, ratio, query) rows, at most 1% of their APs more than 0.001 apart
    and every method's mAP at every ratio within 0.005 (:data:`FROZEN_TOLERANCE`)."""
    keys = ["method", "ratio", "query"]
    a, b = first.sort_values(keys).reset_index(drop=True), other.sort_values(keys).reset_index(drop=True)
    if len(a) != len(b) or not (a[keys].to_numpy() == b[keys].to_numpy()).all():
        return f"{len(b)} method, ratio and query rows against {len(a)}, or not the same ones"
    apart = float(np.mean(np.abs(a["ap"].to_numpy() - b["ap"].to_numpy()) > 1e-3))
    maps = (a.groupby(["method", "ratio"])["ap"].mean() - b.groupby(["method", "ratio"])["ap"].mean()).abs().max()
    if apart > FROZEN_TOLERANCE["cells"] or maps > FROZEN_TOLERANCE["map"]:
        return f"{apart:.1%} of the APs differ, mAP by up to {maps:.4f}"
    return None


def summarize_student_runs(runs: Mapping[object, Sequence[str | Path]],
                           ratios: Sequence[float] | None = None) -> pd.DataFrame:
    """The student's :func:`summarize` rows for several recorded runs side by side (a learning curve, an ablation):
    ``runs`` maps a key (a photo count, a variant's name) to its files, one per seed or one holding several seeds.
    Each run's seeds are pooled (per-query APs averaged over them) and compared with raw, paired by query. Returns
    one row per key and ratio (``ratios``: all recorded), with the key in column ``run``. The files of a run must
    share their raw and full-size APs (same queries, same frozen features: :func:`same_frozen_scores`), whose first
    file's are the baseline, and may not record a seed twice."""
    rows = []
    for key, paths in runs.items():
        if not paths:
            raise ValueError(f"run {key!r} has no files")
        frames = [read_student_run(path)[0] for path in paths]
        frozen = frames[0][frames[0]["method"] != "student"]
        for path, frame in zip(paths[1:], frames[1:]):
            problem = same_frozen_scores(frozen, frame[frame["method"] != "student"])
            if problem:
                raise ValueError(f"run {key!r}: {path} was scored on other queries or features than {paths[0]} "
                                 f"({problem})")
        students = pd.concat([f[f["method"] == "student"] for f in frames], ignore_index=True)
        if students.duplicated(["ratio", "seed", "query"]).any():
            raise ValueError(f"run {key!r}: a seed is recorded in two of its files {list(map(str, paths))}")
        table = summarize(pd.concat([frozen, students], ignore_index=True))
        table = table[table["method"] == "student"]
        if ratios is not None:
            table = table[np.isin(table["ratio"], np.asarray(ratios, dtype=float))]
        rows.append(table.assign(run=key))
    return pd.concat(rows, ignore_index=True)


def student_aps(paths: Sequence[str | Path], ratio: float) -> np.ndarray:
    """The student's AP per query (in query order) at ``ratio``, averaged over the seeds recorded in ``paths`` (one
    run's files): what a paired comparison of two recorded runs compares."""
    frame = seed_mean_ap(pd.concat([read_student_run(path)[0] for path in paths], ignore_index=True))
    frame = frame[(frame["method"] == "student") & np.isclose(frame["ratio"], ratio)]
    if frame.empty:
        raise ValueError(f"no student APs at ratio {ratio:g} in {list(map(str, paths))}")
    return frame.sort_values("query")["ap"].to_numpy()


def with_recorded(live: pd.DataFrame | None, recorded: pd.DataFrame | None, method: str,
                  ratios: Sequence[float] | None = None) -> pd.DataFrame:
    """Per-query results of a live run with one method's rows from a recorded run added (at ``ratios``; default:
    the live run's), ready for :func:`summarize`: the recorded method is then compared with the live run's raw
    queries, paired by query. Without a live run, the recorded run's own raw and HR rows come along."""
    if live is None and recorded is None:
        raise ValueError("nothing to join: neither a live nor a recorded run")
    parts = [] if live is None else [live]
    if recorded is not None:
        if ratios is None:
            ratios = sorted(live["ratio"].unique()) if live is not None else sorted(recorded["ratio"].unique())
        at = recorded["ratio"].apply(lambda r: bool(np.isclose(r, ratios).any()))
        parts.append(recorded[(recorded["method"] == method) & at])
        if live is None:
            parts.append(recorded[(recorded["method"] != method) & at])
        elif method in set(live["method"]):
            raise ValueError(f"the live run has its own {method!r} rows: rename one of the two before joining")
    return pd.concat(parts, ignore_index=True)


def curve_flatness(history: Mapping, ratio: float, tail: float = 0.1) -> float:
    """How much the validation distance at ``ratio`` still moved at the end of a training run: the relative change
    of its mean over the last ``tail`` of the epochs against the ``tail`` before (negative: still falling). A run
    that has converged gives a value near 0; one cut short gives a clearly negative one."""
    values = np.asarray([e["val_distance"][ratio] for e in history["epochs"]], dtype=float)
    width = max(1, int(round(tail * len(values))))
    if len(values) < 2 * width:
        raise ValueError(f"{len(values)} epochs are too few to compare two tails of {width}")
    last, before = values[-width:].mean(), values[-2 * width:-width].mean()
    return float((last - before) / before)
