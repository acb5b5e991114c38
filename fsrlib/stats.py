"""Statistics a reader can trust: bootstrap intervals over queries, computed verdicts, tolerance checks.

mAP is a mean over queries, so its sampling noise comes from *which* queries
the benchmark happens to hold. The percentile bootstrap over queries
(Efron & Tibshirani 1993) resamples them with replacement; a difference
between two methods is judged on the *paired* bootstrap (the same resampled
queries for both), which is far tighter than comparing two separate
intervals. For trained methods, the per-query AP is first averaged over
seeds, so the interval covers query sampling and the seeds' mean.

Verdicts ("better", "worse", "no clear difference") are computed here, never
typed into prose: a chapter prints them or glues them into its text.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def _clean(ap: Sequence[float]) -> np.ndarray:
    values = np.asarray(ap, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"per-query APs must be 1-d, got shape {values.shape}")
    return values


def bootstrap_interval(ap: Sequence[float], *, n_boot: int = N_BOOT, level: float = LEVEL,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``ap`` (queries without positives, ``nan``, are left out)."""
    values = _clean(ap)
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("no query has an AP: the interval is undefined")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_difference(ap_a: Sequence[float], ap_b: Sequence[float], *, n_boot: int = N_BOOT,
                      level: float = LEVEL, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``ap_a - ap_b`` over queries and its paired bootstrap interval ``(diff, lo, hi)``."""
    a, b = _clean(ap_a), _clean(ap_b)
    if a.shape != b.shape:
        raise ValueError(f"paired APs must cover the same queries, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    lo, hi = bootstrap_interval(a[keep] - b[keep], n_boot=n_boot, level=level, seed=seed)
    return float(np.mean(a[keep] - b[keep])), lo, hi


def verdict(lo: float, hi: float) -> str:
    """"better" if the whole interval of a difference lies above 0, "worse" if below, else "no clear difference"."""
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "no clear difference"


@dataclass(frozen=True)
class Comparison:
    """Method A against method B on the same queries."""

    diff: float
    lo: float
    hi: float
    unit: str = "mAP"  # what the difference is in ("distance": B's distance minus A's, so positive = A closer)

    @property
    def verdict(self) -> str:
        return verdict(self.lo, self.hi)

    def __str__(self) -> str:
        return f"{self.verdict} ({self.diff:+.3f} {self.unit}, 95% interval {self.lo:+.3f} to {self.hi:+.3f})"


def compare(ap_a: Sequence[float], ap_b: Sequence[float], *, unit: str = "mAP", **kwargs) -> Comparison:
    """Paired comparison of two methods' per-query values (AP unless ``unit`` says otherwise; see
    :func:`paired_difference`)."""
    return Comparison(*paired_difference(ap_a, ap_b, **kwargs), unit=unit)


def gap_recovered(method: float, raw: float, hr: float) -> float:
    """Fraction of the mAP that down-scaling costs (``hr - raw``) that a method wins back (1 = all, < 0 = harm)."""
    gap = hr - raw
    if gap <= 0:
        return float("nan")
    return (method - raw) / gap


class ToleranceError(AssertionError):
    """A checked number moved further from its expected value than its stated tolerance."""


def check_close(name: str, value: float, expected: float, tolerance: float) -> str:
    """Raise :class:`ToleranceError` unless ``|value - expected| <= tolerance``; return a one-line verdict.

    Chapters print the returned line, which holds no machine-dependent digits,
    so the stored output stays valid on any machine where the check passes.
    """
    if not np.isfinite(value) or abs(value - expected) > tolerance:
        raise ToleranceError(f"{name} = {value:.4f}, expected {expected} +- {tolerance}: outside tolerance. "
                             "If a deliberate change moved it, update the expected value in the chapter.")
    return f"{name}: within tolerance ({expected} +- {tolerance})"


def check_between(name: str, value: float, low: float, high: float) -> str:
    """Raise :class:`ToleranceError` unless ``low <= value <= high``; return a one-line verdict."""
    if not np.isfinite(value) or not low <= value <= high:
        raise ToleranceError(f"{name} = {value:.4f}, expected within [{low}, {high}]")
    return f"{name}: within [{low}, {high}]"
