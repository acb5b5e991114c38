"""Bootstrap intervals, paired comparisons, verdicts and tolerance checks (fsrlib.evaluation.stats)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fsrlib.evaluation.analysis import paired_by_query, rescued_and_broken, summarize, versus_baseline
from fsrlib.evaluation.stats import (
    ToleranceError,
    bootstrap_interval,
    check_between,
    check_close,
    compare,
    gap_recovered,
    verdict,
)


def test_interval_contains_the_mean_and_shrinks_with_more_queries():
    rng = np.random.default_rng(0)
    small, large = rng.uniform(size=30), rng.uniform(size=3000)
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5  # width ~ 1/sqrt(n): 10x the queries, ~1/10 the width


def test_interval_ignores_queries_without_positives_and_refuses_none():
    assert bootstrap_interval([0.5, np.nan, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="no query"):
        bootstrap_interval([np.nan])


def test_paired_comparison_sees_a_consistent_small_gain_that_separate_intervals_miss():
    rng = np.random.default_rng(1)
    base = rng.uniform(size=150)
    better = np.clip(base + 0.02, 0, 1)  # every query +0.02: tiny next to the spread of APs over queries
    lo_a, hi_a = bootstrap_interval(better)
    lo_b, hi_b = bootstrap_interval(base)
    assert lo_a < hi_b  # the separate intervals overlap ...
    result = compare(better, base)
    assert result.verdict == "better" and result.lo > 0  # ... the paired one does not
    assert compare(base, better).verdict == "worse"
    assert compare(base, base + rng.normal(0, 0.05, 150)).verdict == "no clear difference"


def test_verdict_and_gap():
    assert verdict(0.01, 0.2) == "better" and verdict(-0.2, -0.01) == "worse" and verdict(-0.1, 0.1).startswith("no")
    assert gap_recovered(0.6, 0.4, 0.8) == pytest.approx(0.5)
    assert gap_recovered(0.3, 0.4, 0.8) < 0
    assert np.isnan(gap_recovered(0.5, 0.8, 0.8))


def test_tolerance_checks_raise_outside_and_print_no_digits_of_the_value():
    line = check_close("raw mAP", 0.8331, 0.833, 0.003)
    assert "0.8331" not in line and "within tolerance" in line
    with pytest.raises(ToleranceError, match="outside tolerance"):
        check_close("raw mAP", 0.9, 0.833, 0.003)
    with pytest.raises(ToleranceError):
        check_close("raw mAP", float("nan"), 0.833, 0.003)
    assert "within" in check_between("gap", 0.2, 0.1, 1.0)
    with pytest.raises(ToleranceError):
        check_between("gap", 0.05, 0.1, 1.0)


def per_query_frame() -> pd.DataFrame:
    rows = []
    for seed in (0, 1):
        for q in range(4):
            rows += [{"method": "hr", "ratio": 0.25, "seed": seed, "query": q, "ap": 1.0},
                     {"method": "raw", "ratio": 0.25, "seed": seed, "query": q, "ap": 0.5},
                     {"method": "fsr", "ratio": 0.25, "seed": seed, "query": q, "ap": [0.9, 0.1, 0.5, 0.5][q] + 0.1 * seed}]
    return pd.DataFrame(rows)


def test_summarize_averages_seeds_per_query_and_reports_the_gap():
    summary = summarize(per_query_frame()).set_index("method")
    assert summary.loc["raw", "mAP"] == pytest.approx(0.5)
    assert summary.loc["fsr", "mAP"] == pytest.approx((0.95 + 0.15 + 0.55 + 0.55) / 4)
    assert summary.loc["fsr", "seeds"] == 2
    assert summary.loc["fsr", "seed_min"] == pytest.approx(0.5) and summary.loc["fsr", "seed_max"] == pytest.approx(0.6)
    assert summary.loc["fsr", "gap recovered"] == pytest.approx((0.55 - 0.5) / 0.5)
    assert summary.loc["fsr", "verdict"] == "no clear difference"


def test_rescued_and_broken_lists_big_changes_only():
    table = rescued_and_broken(per_query_frame(), "fsr", 0.25)
    assert dict(zip(table.index, table["effect"])) == {0: "rescued", 1: "broken"}


def test_versus_baseline_reads_as_a_sentence_for_every_verdict():
    summary = summarize(per_query_frame())
    phrase = versus_baseline(summary, "fsr", 0.25)
    assert phrase.startswith("not clearly different from raw (+0.050 mAP, interval ")
    assert phrase.endswith("10% of the gap)")
    good = per_query_frame().query("method == 'raw'").assign(method="good", ap=0.9)
    bad = good.assign(method="bad", ap=0.1)
    both = summarize(pd.concat([per_query_frame(), good, bad]))
    assert versus_baseline(both, "good", 0.25).startswith("better than raw (+0.400 mAP")
    assert versus_baseline(both, "bad", 0.25).startswith("worse than raw (-0.400 mAP")
    assert versus_baseline(summary, "fsr", 1 / 64) == "not run"


def test_paired_comparison_names_its_unit():
    frame = per_query_frame().assign(distance=lambda f: 1.0 - f["ap"])
    assert " mAP, 95% interval" in str(paired_by_query(frame, "fsr", "raw", "ap"))
    by_distance = paired_by_query(frame, "hr", "raw", "distance")
    assert by_distance.verdict == "better" and " distance, 95% interval" in str(by_distance)


def test_verdicts_by_ratio_and_their_phrase():
    from fsrlib.evaluation.analysis import verdict_phrase, verdicts_by_ratio

    rng = np.random.default_rng(0)
    rows = []
    for q in range(40):
        base = rng.uniform(0.2, 0.8)
        for ratio, shift in ((1 / 4, 0.2), (1 / 16, 0.0), (1 / 64, -0.2)):
            rows.append({"method": "raw", "ratio": ratio, "seed": 0, "query": q, "ap": base})
            for seed in (0, 1):  # seeds are averaged per query before the paired bootstrap
                wobble = rng.normal(0, 0.01) if shift else (0.05 if q % 2 else -0.05)  # 1/16: mean change 0
                rows.append({"method": "m", "ratio": ratio, "seed": seed, "query": q, "ap": base + shift + wobble})
    frame = pd.DataFrame(rows)
    by = verdicts_by_ratio(frame, "m")
    assert by == {"better": ["1/4"], "worse": ["1/64"], "no clear difference": ["1/16"]}
    assert verdict_phrase(by) == ("better than raw at 1/4, worse than raw at 1/64, "
                                  "not clearly different from raw at 1/16")
    assert verdict_phrase({"better": [], "worse": ["1/4", "1/64"], "no clear difference": []}) == \
        "worse than raw at every ratio (1/4 and 1/64)"
    assert verdict_phrase(verdicts_by_ratio(frame, "absent")) == "not run"


def test_mean_pairwise_cosine_matches_the_explicit_mean_and_flags_a_collapsed_map():
    from fsrlib.evaluation.analysis import mean_pairwise_cosine

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    explicit = sims[~np.eye(7, dtype=bool)].mean()
    assert mean_pairwise_cosine(3.0 * x) == pytest.approx(explicit, abs=1e-6)  # scale does not matter (float32)
    assert mean_pairwise_cosine(np.tile(x[:1], (4, 1))) == pytest.approx(1.0)  # one output for every input
    assert mean_pairwise_cosine(np.eye(4)) == pytest.approx(0.0)
    for scale in (1e30, 1e-30):  # squares overflow / underflow float32: l2_normalize scales each row first
        assert mean_pairwise_cosine(scale * x) == pytest.approx(explicit, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_cosine(x[:1])
    with pytest.raises(ValueError, match="NaN"):
        mean_pairwise_cosine(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="without a direction"):
        mean_pairwise_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_output_similarity_separates_an_identity_map_from_a_collapsed_one():
    from fsrlib.evaluation.analysis import output_similarity

    rng = np.random.default_rng(1)
    hr = rng.standard_normal((20, 8))
    lr = {0.25: hr + 0.1 * rng.standard_normal(hr.shape), 1 / 64: hr + 2.0 * rng.standard_normal(hr.shape)}
    kept = output_similarity(lr, hr)
    assert list(kept.index) == ["1/4", "1/64"]  # largest ratio first
    assert kept.loc["1/4", "to_hr"] > 0.99 > kept.loc["1/64", "to_hr"]
    assert kept["between_queries"].abs().max() < 0.3
    centre = rng.standard_normal(8)
    collapsed = output_similarity({r: centre + 1e-3 * f for r, f in lr.items()}, hr)
    assert (collapsed["between_queries"] > 0.99).all()
    assert collapsed["to_hr"].max() - collapsed["to_hr"].min() < 0.01  # the input no longer matters
    with pytest.raises(ValueError, match="same queries"):
        output_similarity({0.25: hr[:5]}, hr)


# issue 28: resampling parameters and checks that are no measurement are refused by name


@pytest.mark.parametrize("kwargs, message", [
    ({"n_boot": 0}, "n_boot must be >= 1, got 0"),  # was an IndexError from an empty quantile
    ({"n_boot": 2.5}, "n_boot must be an integer"),
    ({"n_boot": True}, "n_boot must be an integer"),
    ({"level": 0.0}, "level must lie strictly between 0 and 1"),
    ({"level": 1.0}, "level must lie strictly between 0 and 1"),
    ({"level": 95}, "level must lie strictly between 0 and 1"),
    ({"level": float("nan")}, "level must be a real number"),
    ({"level": "0.95"}, "level must be a real number"),
    ({"seed": -1}, "seed must be >= 0"),
])
def test_bad_resampling_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_interval([0.2, 0.4, 0.9], **kwargs)
    with pytest.raises(ValueError, match=message):
        compare([0.2, 0.4, 0.9], [0.1, 0.5, 0.7], **kwargs)


def test_values_that_are_no_measurement_are_refused():
    with pytest.raises(ValueError, match=r"queries \[1\] are infinite"):
        bootstrap_interval([0.5, np.inf, 0.2])
    with pytest.raises(ValueError, match="must be numbers"):
        bootstrap_interval(["a", "b"])
    with pytest.raises(ValueError, match="lo = 0.2 is above hi = 0.1"):
        verdict(0.2, 0.1)
    with pytest.raises(ValueError, match="lo must be a real number"):
        verdict(float("nan"), 0.1)
    with pytest.raises(ValueError, match="finite tolerance >= 0"):
        check_close("raw mAP", 0.83, 0.833, -0.003)
    with pytest.raises(ValueError, match="expected must be a real number"):
        check_close("raw mAP", 0.83, float("nan"), 0.003)
    with pytest.raises(ValueError, match="low = 1.0 is above high = 0.1"):
        check_between("gap", 0.5, 1.0, 0.1)
    assert "within" in check_between("gap", 0.5, 0.1, np.inf)  # an open bound is fine


def test_a_comparison_prints_its_own_level():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=40), rng.uniform(size=40)
    assert "90% interval" in str(compare(a, b, level=0.9))
    assert "95% interval" in str(compare(a, b))


def test_ordering_reading_names_where_a_claimed_order_holds_fails_or_is_unsettled():
    from fsrlib.evaluation.analysis import ordering_reading
    from fsrlib.evaluation.stats import Comparison

    better, worse, unclear = Comparison(0.1, 0.05, 0.15), Comparison(-0.1, -0.15, -0.05), Comparison(0.0, -0.1, 0.1)
    assert ordering_reading({"A": better, "B": worse, "C": unclear, "D": None}) == (
        "holds against A; is reversed against B; is not settled against C (no clear difference); "
        "was not run against D")
    assert ordering_reading({"A": better, "B": better}) == "holds against A and B"
    assert ordering_reading({"A": worse}, claimed="worse") == "holds against A"
    assert ordering_reading({"A": None}) == "not run"
    with pytest.raises(KeyError):
        ordering_reading({"A": better}, claimed="equal")
