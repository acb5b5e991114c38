"""Measurements behind the paper's motivation (Sec. 1, Fig. 2, Table 1), numpy only.

All features are expected L2-normalised (``fsrlib.evaluation.retrieval.l2_normalize``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fsrlib.evaluation.retrieval import GroundTruth, compute_map, l2_normalize, non_finite_rows, rank_database
from fsrlib.features.degrade import ratio_label

#: Table 1 of the paper: variance of the LR-HR Euclidean distance per area ratio (VGG16 fc7 on Oxford5k).
PAPER_TABLE1: dict[float, float] = {1 / 4: 0.0070, 1 / 9: 0.0103, 1 / 16: 0.0107, 1 / 25: 0.0101, 1 / 36: 0.0091,
                                    1 / 49: 0.0078, 1 / 64: 0.0068}


def lr_hr_distances(features: Mapping[float, np.ndarray]) -> pd.DataFrame:
    """Per image and ratio, ``||F_LR - F_HR||_2`` (Fig. 2a); ``features[1.0]`` is HR. Tidy: ratio, image, distance."""
    hr = features[1.0]
    rows = [pd.DataFrame({"ratio": r, "ratio_label": ratio_label(r), "image": np.arange(len(hr)),
                          "distance": np.linalg.norm(f - hr, axis=1)})
            for r, f in sorted(features.items(), reverse=True) if r != 1.0]
    return pd.concat(rows, ignore_index=True)


def distance_statistics(distances: pd.DataFrame) -> pd.DataFrame:
    """Mean and variance of the LR-HR distance per ratio, with the paper's Table 1 variance beside ours."""
    stats = distances.groupby(["ratio", "ratio_label"], sort=False)["distance"].agg(["mean", "var"]).reset_index()
    stats = stats.rename(columns={"mean": "mean distance", "var": "variance (ours)"})
    stats["variance (paper, VGG16/Oxford5k)"] = stats["ratio"].map(PAPER_TABLE1)
    return stats.set_index("ratio_label").drop(columns="ratio")


def pair_distances(queries: np.ndarray, database: np.ndarray,
                   gnd: Sequence[GroundTruth]) -> tuple[np.ndarray, np.ndarray]:
    """Distances of similar pairs (query, positive) and dissimilar pairs (query, neither positive nor junk)."""
    similar, dissimilar = [], []
    for q, g in enumerate(gnd):
        dist = np.linalg.norm(database - queries[q], axis=1)
        ok = np.asarray(list(g.get("ok", [])), dtype=np.int64)
        other = np.setdiff1d(np.arange(len(database)), np.concatenate([ok, np.asarray(list(g.get("junk", [])),
                                                                                       dtype=np.int64)]))
        similar.append(dist[ok])
        dissimilar.append(dist[other])
    return np.concatenate(similar), np.concatenate(dissimilar)


def map_with_distractors(queries: np.ndarray, database: np.ndarray, distractors: np.ndarray,
                         gnd: Sequence[GroundTruth]) -> float:
    """mAP after appending ``distractors`` to the database (Fig. 2c); ground-truth indices are unchanged."""
    return compute_map(rank_database(queries, np.concatenate([database, distractors])), gnd)[0]


def top_k(queries: np.ndarray, database: np.ndarray, k: int = 5) -> np.ndarray:
    """``(Q, k)`` indices of the k nearest database items of each query."""
    return rank_database(queries, database)[:k].T


def mean_pairwise_cosine(features: np.ndarray) -> float:
    """Mean cosine similarity between different rows of ``features`` (N, D), N >= 2: how alike the features of
    different images are. Close to 1: one feature whatever the image (a collapsed map)."""
    x = _unit_rows(features, "features")
    if len(x) < 2:
        raise ValueError(f"need at least 2 rows to compare different images, got {len(x)}")
    total = x.sum(axis=0, dtype=np.float64)  # sum over i != j of x_i . x_j = |sum x|^2 - sum |x_i|^2
    return float((total @ total - len(x)) / (len(x) * (len(x) - 1)))


def output_similarity(outputs: Mapping[float, np.ndarray], hr: np.ndarray) -> pd.DataFrame:
    """What a feature map does to a set of queries, per ratio: ``to_hr``, the mean cosine between each query's
    output and its own full-resolution feature (``hr``, row-aligned), and ``between_queries``, the mean cosine
    between different queries' outputs (:func:`mean_pairwise_cosine`). A map that keeps the queries apart has
    ``between_queries`` near that of ``hr``; one that pulls every query towards one place has it near 1, and then
    ``to_hr`` no longer depends on the input. Index: ratio labels, largest ratio first."""
    target = _unit_rows(hr, "hr")
    rows = {}
    for r, out in sorted(outputs.items(), reverse=True):
        x = _unit_rows(out, f"outputs at ratio {ratio_label(r)}")
        if x.shape != target.shape:
            raise ValueError(f"outputs at ratio {ratio_label(r)} have shape {x.shape}, hr has {target.shape}: "
                             "they must be the same queries, in the same order")
        rows[ratio_label(r)] = {"to_hr": float(np.einsum("nd,nd->n", x, target).mean()),
                                "between_queries": mean_pairwise_cosine(x)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _unit_rows(features: np.ndarray, what: str) -> np.ndarray:
    """``features`` L2-normalised (:func:`~fsrlib.evaluation.retrieval.l2_normalize`); refuses non-finite values, and rows
    that do not come out of unit length (all-zero rows, or values too large for float32's norm)."""
    bad = non_finite_rows(features)
    if bad.size:
        raise ValueError(f"{what} contain NaN or infinite values (rows {', '.join(map(str, bad[:10]))})")
    x = l2_normalize(features)
    off = np.flatnonzero(np.abs(np.linalg.norm(x, axis=1) - 1) > 1e-3)
    if off.size:
        raise ValueError(f"{what} have rows without a direction (rows {', '.join(map(str, off[:10]))}): all zero, "
                         "or too large to normalise in float32")
    return x


def seed_mean_ap(per_query: pd.DataFrame) -> pd.DataFrame:
    """Per-query AP averaged over seeds: one row per (method, ratio, query)."""
    return per_query.groupby(["method", "ratio", "query"], sort=False)["ap"].mean().reset_index()


def summarize(per_query: pd.DataFrame, *, baseline: str = "raw", reference: str = "hr",
              n_boot: int = 2000) -> pd.DataFrame:
    """mAP of every method and ratio with its 95% bootstrap interval over queries, the spread over seeds, the
    share of the down-scaling gap it recovers, and a computed verdict against ``baseline`` (paired bootstrap).

    ``per_query`` is :attr:`fsrlib.experiment.ExperimentResult.per_query`. Per-query APs are averaged over
    seeds first, so the interval is that of the seeds' mean.
    """
    from fsrlib.evaluation.stats import bootstrap_interval, compare, gap_recovered

    mean_ap = seed_mean_ap(per_query)
    by_seed = {key: group.groupby("seed")["ap"].mean() for key, group in per_query.groupby(["method", "ratio"])}
    rows = []
    for (method, ratio), group in mean_ap.groupby(["method", "ratio"], sort=False):
        ap = group.sort_values("query")["ap"].to_numpy()
        lo, hi = bootstrap_interval(ap, n_boot=n_boot)
        seeds = by_seed[(method, ratio)]
        row = {"method": method, "ratio": ratio, "ratio_label": ratio_label(ratio), "mAP": float(np.nanmean(ap)),
               "lo": lo, "hi": hi, "seeds": len(seeds), "seed_min": float(seeds.min()), "seed_max": float(seeds.max())}
        base = mean_ap[(mean_ap["method"] == baseline) & (mean_ap["ratio"] == ratio)].sort_values("query")["ap"]
        ref = mean_ap[(mean_ap["method"] == reference) & (mean_ap["ratio"] == ratio)]["ap"]
        if method not in (baseline, reference) and len(base) == len(ap):
            result = compare(ap, base.to_numpy(), n_boot=n_boot)
            row.update({f"vs {baseline}": result.diff, "diff_lo": result.lo, "diff_hi": result.hi,
                        "verdict": result.verdict})
        if len(base) and len(ref):
            row["gap recovered"] = gap_recovered(row["mAP"], float(np.nanmean(base)), float(np.nanmean(ref)))
        rows.append(row)
    return pd.DataFrame(rows)


def rescued_and_broken(per_query: pd.DataFrame, method: str, ratio: float, *, baseline: str = "raw",
                       threshold: float = 0.25) -> pd.DataFrame:
    """Queries whose AP (seed mean) a method raises (``rescued``) or lowers (``broken``) by more than ``threshold``
    against ``baseline`` at ``ratio``, largest changes first."""
    mean_ap = seed_mean_ap(per_query)
    at = mean_ap[mean_ap["ratio"] == ratio].pivot(index="query", columns="method", values="ap")
    change = (at[method] - at[baseline]).rename("change")
    table = pd.DataFrame({baseline: at[baseline], method: at[method], "change": change})
    table["effect"] = np.where(change > threshold, "rescued", np.where(change < -threshold, "broken", ""))
    return table[table["effect"] != ""].sort_values("change", key=np.abs, ascending=False)


def summary_row(summary: pd.DataFrame, method: str, ratio: float) -> pd.Series | None:
    """The row of :func:`summarize`'s table for ``method`` at ``ratio`` (``None`` if it was not run)."""
    rows = summary[(summary["method"] == method) & np.isclose(summary["ratio"], ratio)]
    return rows.iloc[0] if len(rows) else None


def with_interval(summary: pd.DataFrame) -> pd.DataFrame:
    """``method x ratio`` view of :func:`summarize`'s table as ``"mAP [lo, hi]"`` strings, ratios largest first."""
    cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(summary["mAP"], summary["lo"], summary["hi"])]
    wide = summary.assign(cell=cells).pivot(index="method", columns="ratio", values="cell")
    wide = wide[sorted(wide.columns, reverse=True)]
    wide.columns = [ratio_label(r) for r in wide.columns]
    return wide


def versus_baseline(summary: pd.DataFrame, method: str, ratio: float, baseline: str = "raw") -> str:
    """One computed phrase: ``"better than raw (+0.031 mAP, interval +0.010 to +0.052; 24% of the gap)"``."""
    row = summary_row(summary, method, ratio)
    if row is None or "verdict" not in row or pd.isna(row.get("verdict")):
        return "not run"
    verdict = {"better": f"better than {baseline}", "worse": f"worse than {baseline}"}.get(
        row["verdict"], f"not clearly different from {baseline}")
    return (f"{verdict} ({row[f'vs {baseline}']:+.3f} mAP, interval {row['diff_lo']:+.3f} to "
            f"{row['diff_hi']:+.3f}; {row['gap recovered']:.0%} of the gap)")


def paired_by_query(per_query: pd.DataFrame, a: str, b: str, metric: str = "ap"):
    """Paired comparison of methods ``a`` and ``b`` over queries (metric averaged over seeds and ratios).

    ``metric="ap"``: "better" means ``a`` ranks better; ``metric="distance"``: "better" means ``a`` is closer to
    the HR feature. Returns :class:`fsrlib.evaluation.stats.Comparison`.
    """
    from fsrlib.evaluation.stats import compare

    pooled = per_query[per_query["method"].isin([a, b])].groupby(["method", "query"])[metric].mean()
    x, y = pooled.loc[a].to_numpy(), pooled.loc[b].to_numpy()
    return compare(y, x, unit="distance") if metric == "distance" else compare(x, y)


def verdicts_by_ratio(per_query: pd.DataFrame, method: str, baseline: str = "raw",
                      metric: str = "ap") -> dict[str, list[str]]:
    """Paired verdict of ``method`` against ``baseline`` at every ratio both were run at (per-query values averaged
    over seeds first): ``{"better": [ratio labels], "worse": [...], "no clear difference": [...]}``, ratios largest
    first. ``metric="distance"``: "better" means closer to the HR feature."""
    from fsrlib.evaluation.stats import compare
    from fsrlib.features.degrade import ratio_label

    out: dict[str, list[str]] = {"better": [], "worse": [], "no clear difference": []}
    rows = per_query[per_query["method"].isin([method, baseline])]
    pooled = rows.groupby(["method", "ratio", "query"])[metric].mean()
    if method not in pooled.index.get_level_values(0) or baseline not in pooled.index.get_level_values(0):
        return out
    for ratio in sorted(set(pooled.loc[method].index.get_level_values(0))
                        & set(pooled.loc[baseline].index.get_level_values(0)), reverse=True):
        a, b = pooled.loc[(method, ratio)], pooled.loc[(baseline, ratio)]
        a, b = a.align(b, join="inner")
        c = compare(b.to_numpy(), a.to_numpy(), unit="distance") if metric == "distance" else compare(
            a.to_numpy(), b.to_numpy())
        out[c.verdict].append(ratio_label(ratio))
    return out


def verdict_phrase(by_verdict: dict[str, list[str]], baseline: str = "raw") -> str:
    """:func:`verdicts_by_ratio` as one computed phrase for the prose, e.g. ``"worse than raw at 1/4 and 1/9, not
    clearly different at 1/16"``; ``"not run"`` when there is no ratio."""
    def listed(labels: list[str]) -> str:
        return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]

    parts = []
    for key, words in (("better", f"better than {baseline}"), ("worse", f"worse than {baseline}"),
                       ("no clear difference", f"not clearly different from {baseline}")):
        if by_verdict.get(key):
            every = sum(len(v) for v in by_verdict.values()) == len(by_verdict[key]) and len(by_verdict[key]) > 1
            parts.append(f"{words} at every ratio ({listed(by_verdict[key])})" if every
                         else f"{words} at {listed(by_verdict[key])}")
    return ", ".join(parts) if parts else "not run"


def ordering_reading(claims: Mapping[str, object], claimed: str = "better") -> str:
    """Whether a claimed ordering holds, as one computed phrase: ``claims`` maps what the first method was compared
    with (e.g. ``"the CNN-Baseline"``) to its :class:`fsrlib.evaluation.stats.Comparison` (or ``None``: not run), all
    claimed to come out ``claimed``. E.g. ``"holds against GAN + distance; reversed against the CNN-Baseline; not
    settled against r = 3 (no clear difference)"``; ``"not run"`` when no comparison was run."""
    opposite = {"better": "worse", "worse": "better"}[claimed]
    groups: dict[str, list[str]] = {"holds": [], "reversed": [], "unsettled": [], "not run": []}
    for name, comparison in claims.items():
        if comparison is None:
            groups["not run"].append(name)
        else:
            groups[{claimed: "holds", opposite: "reversed"}.get(comparison.verdict, "unsettled")].append(name)
    if len(groups["not run"]) == len(claims):
        return "not run"
    words = {"holds": "holds against {}", "reversed": "is reversed against {}",
             "unsettled": "is not settled against {} (no clear difference)", "not run": "was not run against {}"}
    return "; ".join(words[k].format(" and ".join(v)) for k, v in groups.items() if v)


def generalisation_goal(summary: pd.DataFrame, method: str, ratios: Sequence[float] = (1 / 36, 1 / 64),
                        share: float = 0.5) -> dict:
    """Does ``method`` recover at least ``share`` of the gap at every one of ``ratios``, and where is it worse
    than raw beyond the interval? (the goal of the generalisation chapter)."""
    rows = summary[summary["method"] == method]
    out: dict = {"method": method}
    gaps = []
    for r in ratios:
        row = summary_row(summary, method, r)
        gaps.append(float(row["gap recovered"]) if row is not None else float("nan"))
        out[f"gap recovered at {ratio_label(r)}"] = gaps[-1]
    worse = rows[rows.get("verdict", pd.Series(dtype=str)) == "worse"]["ratio_label"] if "verdict" in rows else []
    out["ratios worse than raw"] = ", ".join(worse) or "none"
    out[f"{share:.0%} of the gap at each"] = bool(np.all(np.asarray(gaps) >= share))
    return out
