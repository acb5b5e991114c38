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
from numbers import Real

import numpy as np

from fsrlib.evaluation.retrieval import check_integer

N_BOOT = 2000
LEVEL = 0.95


def _clean(ap: Sequence[float]) -> np.ndarray:
    """Per-query values as a 1-d float64 array: numbers, ``nan`` for a query without positives, never inf."""
    try:
        values = np.asarray(ap, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"per-query APs must be numbers (nan for a query without positives): {exc}") from None
    if values.ndim != 1:
        raise ValueError(f"per-query APs must be 1-d, got shape {values.shape}")
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise ValueError(f"per-query values of queries {infinite[:10].tolist()} are infinite: a mean over them is "
                         "no measurement; find where they came from (nan marks a query without positives)")
    return values


def _real(value: object, name: str) -> float:
    """``value`` as a float once shown to be a real number that is not NaN (a bool or a string is refused)."""
    try:
        number = float(value) if isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) else np.nan
    except OverflowError:  # an int beyond float range
        number = np.nan
    if np.isnan(number):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return number


def _resampling(n_boot: int, level: float, seed: int) -> tuple[int, float, int]:
    """``(n_boot, level, seed)`` once shown to be a positive count, a level in (0, 1) and a seed >= 0."""
    n_boot = check_integer(n_boot, "n_boot", hint="the number of bootstrap resamples (2000 is the default)")
    level = _real(level, "level")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (0.95 for a 95% interval), got {level}")
    return n_boot, level, check_integer(seed, "seed", minimum=0)


def bootstrap_interval(ap: Sequence[float], *, n_boot: int = N_BOOT, level: float = LEVEL,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``ap`` (queries without positives, ``nan``, are left out).

    ``n_boot`` resamples (a positive integer), central ``level`` in (0, 1), ``seed >= 0``: else a ``ValueError``.
    """
    n_boot, level, seed = _resampling(n_boot, level, seed)
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
    """Mean of ``ap_a - ap_b`` over queries and its paired bootstrap interval ``(diff, lo, hi)``.

    Queries where either value is ``nan`` are left out; the other arguments as in :func:`bootstrap_interval`.
    """
    _resampling(n_boot, level, seed)
    a, b = _clean(ap_a), _clean(ap_b)
    if a.shape != b.shape:
        raise ValueError(f"paired APs must cover the same queries, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    lo, hi = bootstrap_interval(a[keep] - b[keep], n_boot=n_boot, level=level, seed=seed)
    return float(np.mean(a[keep] - b[keep])), lo, hi


def verdict(lo: float, hi: float) -> str:
    """"better" if the whole interval of a difference lies above 0, "worse" if below, else "no clear difference".

    An interval with a NaN end or ``lo > hi`` is no interval: a ``ValueError``.
    """
    lo, hi = _real(lo, "lo"), _real(hi, "hi")
    if lo > hi:
        raise ValueError(f"lo = {lo} is above hi = {hi}: pass the interval's ends in order (lo, hi)")
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
    level: float = LEVEL  # of the interval (lo, hi)

    @property
    def verdict(self) -> str:
        return verdict(self.lo, self.hi)

    def __str__(self) -> str:
        return (f"{self.verdict} ({self.diff:+.3f} {self.unit}, {100 * self.level:g}% interval {self.lo:+.3f} to "
                f"{self.hi:+.3f})")


def compare(ap_a: Sequence[float], ap_b: Sequence[float], *, unit: str = "mAP", **kwargs) -> Comparison:
    """Paired comparison of two methods' per-query values (AP unless ``unit`` says otherwise; see
    :func:`paired_difference`)."""
    return Comparison(*paired_difference(ap_a, ap_b, **kwargs), unit=unit, level=kwargs.get("level", LEVEL))


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
    A NaN ``value`` fails the check; a NaN, infinite or negative ``tolerance``, or an
    ``expected`` that is not a finite number, is a ``ValueError`` (the check itself is wrong).
    """
    expected, tolerance = _real(expected, "expected"), _real(tolerance, "tolerance")
    if not np.isfinite(expected) or not 0.0 <= tolerance < np.inf:
        raise ValueError(f"check_close({name!r}) needs a finite expected value and a finite tolerance >= 0, got "
                         f"expected={expected}, tolerance={tolerance}")
    if not np.isfinite(value) or abs(value - expected) > tolerance:
        raise ToleranceError(f"{name} = {value:.4f}, expected {expected} +- {tolerance}: outside tolerance. "
                             "If a deliberate change moved it, update the expected value in the chapter.")
    return f"{name}: within tolerance ({expected} +- {tolerance})"


def check_between(name: str, value: float, low: float, high: float) -> str:
    """Raise :class:`ToleranceError` unless ``low <= value <= high``; return a one-line verdict.

    ``low <= high`` (either may be infinite, neither NaN), else a ``ValueError``.
    """
    low, high = _real(low, "low"), _real(high, "high")
    if low > high:
        raise ValueError(f"check_between({name!r}): low = {low} is above high = {high}; pass the bounds in order")
    if not np.isfinite(value) or not low <= value <= high:
        raise ToleranceError(f"{name} = {value:.4f}, expected within [{low}, {high}]")
    return f"{name}: within [{low}, {high}]"
