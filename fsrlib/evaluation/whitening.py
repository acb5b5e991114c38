"""PCA-whitening of global features, learned without labels (Jégou & Chum, ECCV 2012).

With ``X`` the ``(N, D)`` L2-normalised learning features, ``mu`` their mean and
``C = (X - mu)^T (X - mu) / N = U diag(lambda) U^T`` their covariance (eigenvalues
in decreasing order), a feature ``x`` becomes

    y = normalise( diag(lambda~_1..d ^ (-power / 2)) U_d^T (normalise(x) - mu) )

keeping the ``d`` leading components. ``power = 1`` is full whitening (every kept
direction gets unit variance), ``0`` plain PCA, ``0.5`` halfway. Whitening divides by
the small eigenvalues, which are the least well estimated when ``N`` is not much
larger than ``d``; ``shrinkage`` ``s`` pulls them toward their mean first,
``lambda~ = (1 - s) lambda + s mean(lambda_1..d)``. Learned on the database, it
down-weights the directions that many images share ("co-occurrences"), which is
why it tends to raise mAP; it also shrinks the index (4096 -> 512 dimensions is
8x less memory and work per vector).

:meth:`PCAWhitening.save` writes atomically with a checksum of every value; :meth:`PCAWhitening.load` verifies
it and the shapes, dtypes and finiteness, and names the file and what to do when it fails. fsrlib keeps no
whitening in its cache (benchmarks learn them in memory), so a damaged file is an error, never silently rebuilt.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsrlib.evaluation.retrieval import l2_normalize, non_finite_rows
from fsrlib.paths import arrays_sha256, save_arrays

#: 2: every value checksummed (``fsrlib.paths.save_arrays``); 1: no checksum, still read.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class PCAWhitening:
    """A learned whitening: ``mean`` (D,), ``projection`` (D, d) and the kept ``eigenvalues`` (d,), largest first."""

    mean: np.ndarray
    projection: np.ndarray
    eigenvalues: np.ndarray
    power: float = 1.0
    shrinkage: float = 0.0

    @property
    def dim_in(self) -> int:
        return int(self.projection.shape[0])

    @property
    def dim_out(self) -> int:
        return int(self.projection.shape[1])

    def __call__(self, features: np.ndarray, chunk_rows: int = 65536) -> np.ndarray:
        """Whitened, L2-normalised ``(N, d)`` float32 features of ``features`` (N, D); see :func:`pca_whiten`."""
        return pca_whiten(features, self, chunk_rows)

    def save(self, path: str | Path) -> None:
        """Write to ``path`` (``.npz``) atomically, with a checksum of every value that :meth:`load` verifies."""
        problem = whitening_problem(self.arrays())
        if problem is not None:
            raise ValueError(f"refusing to save a broken whitening to {path}: {problem}")
        save_arrays(path, self.arrays(), {"what": "PCAWhitening", "format": FORMAT_VERSION})

    def arrays(self) -> dict[str, np.ndarray]:
        """Every value of the whitening as a named array (what :meth:`save` writes and checksums)."""
        return {"mean": np.asarray(self.mean), "projection": np.asarray(self.projection),
                "eigenvalues": np.asarray(self.eigenvalues), "power": np.float64(self.power),
                "shrinkage": np.float64(self.shrinkage)}

    @classmethod
    def load(cls, path: str | Path) -> PCAWhitening:
        """Read what :meth:`save` wrote, verified: its checksum (files of format 1, written before there was one,
        are read without), then shapes, dtypes and finite values. A file that fails is a
        :class:`WhiteningFileError` naming it and saying to learn the whitening again; none is a
        ``FileNotFoundError``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no whitening file at {path}; {RELEARN}")
        arrays = read_whitening_arrays(path)
        problem = whitening_problem(arrays)
        if problem is not None:
            raise WhiteningFileError(f"whitening file {path} is damaged: {problem}; {RELEARN}")
        return cls(arrays["mean"], arrays["projection"], arrays["eigenvalues"], float(arrays["power"]),
                   float(arrays["shrinkage"]))


class WhiteningFileError(ValueError):
    """A saved whitening cannot be read, fails its checksum or holds values no whitening can have."""


RELEARN = ("learn it again with learn_pca_whitening(features, ...) and save it (fsrlib does not keep whitenings in "
           "its cache; only you can rebuild this file)")
_NAMES = ("mean", "projection", "eigenvalues", "power", "shrinkage")


def read_whitening_arrays(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a whitening file at ``path``, checksum verified (format 2; format 1 has none).

    Raises :class:`WhiteningFileError` naming ``path`` for an unreadable file, another file's content, an unknown
    format or a wrong checksum.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {name: data[name] for name in data.files}
    except Exception as err:  # zip, CRC, .npy-instead-of-.npz and EOF errors all mean unreadable
        raise WhiteningFileError(f"whitening file {path} cannot be read ({type(err).__name__}: {err}): it is "
                                 f"truncated, damaged or not a whitening; {RELEARN}") from err
    missing = [name for name in _NAMES if name not in stored]
    if missing:
        raise WhiteningFileError(f"{path} is not a whitening file (it lacks {missing}); {RELEARN}")
    arrays = {name: stored[name] for name in _NAMES}
    if "sha256" not in stored and _stored_format(stored) == 1:
        return arrays
    if (found := _stored_format(stored)) != FORMAT_VERSION:
        raise WhiteningFileError(f"{path} holds a whitening of format {found or 'unknown'}, this fsrlib reads "
                                 f"formats 1 and {FORMAT_VERSION}; {RELEARN}")
    if str(stored.get("sha256", "")) != arrays_sha256(arrays):
        raise WhiteningFileError(f"whitening file {path} is damaged: its checksum does not match; {RELEARN}")
    return arrays


def _stored_format(stored: dict[str, np.ndarray]) -> int | None:
    """The format of a whitening file's arrays: ``format`` (version 1) or the saved key's (version 2)."""
    try:
        if "key" in stored:
            return int(json.loads(str(stored["key"]))["format"])
        return int(stored["format"])
    except (KeyError, TypeError, ValueError):
        return None


def whitening_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """What makes ``arrays`` (see :meth:`PCAWhitening.arrays`) no whitening, or ``None``: ``mean`` (D,),
    ``projection`` (D, d) with d <= D, ``eigenvalues`` (d,) non-negative and non-increasing, all floating point
    and finite, ``power`` finite and ``shrinkage`` in [0, 1]."""
    mean, projection, eigenvalues = arrays["mean"], arrays["projection"], arrays["eigenvalues"]
    if mean.ndim != 1 or projection.ndim != 2 or eigenvalues.ndim != 1:
        return (f"shapes mean {mean.shape}, projection {projection.shape}, eigenvalues {eigenvalues.shape} are not "
                "(D,), (D, d), (d,)")
    if not (projection.shape[0] == mean.shape[0] >= projection.shape[1] == eigenvalues.shape[0] >= 1):
        return (f"shapes mean {mean.shape}, projection {projection.shape}, eigenvalues {eigenvalues.shape} do not "
                "fit together as (D,), (D, d), (d,) with 1 <= d <= D")
    values = {name: np.asarray(arrays[name]) for name in _NAMES}
    not_float = [name for name, v in values.items() if not np.issubdtype(v.dtype, np.floating)]
    if not_float:
        return f"not floating point: {', '.join(not_float)}"
    not_finite = [name for name, v in values.items() if not np.isfinite(v).all()]
    if not_finite:
        return f"NaN or inf in {', '.join(not_finite)}"
    if (eigenvalues < 0).any() or (np.diff(eigenvalues) > 0).any():
        return f"the eigenvalues {eigenvalues[:5].tolist()}... are not non-negative and decreasing"
    if not 0.0 <= float(values["shrinkage"]) <= 1.0:
        return f"shrinkage {float(values['shrinkage'])} is outside [0, 1]"
    return None


def learn_pca_whitening(features: np.ndarray, dim: int = 512, *, power: float = 1.0, shrinkage: float = 0.0,
                        max_rows: int = 100_000, seed: int = 0) -> PCAWhitening:
    """Learn a PCA-whitening from ``features`` (N, D) (no labels; typically the database itself).

    Rows are L2-normalised first. At most ``max_rows`` rows (a seeded random
    subset) enter the covariance, accumulated in float64 chunks. ``dim`` must be
    below ``N`` (``N`` centred rows span at most ``N - 1`` directions).
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"expected (N, D) features, got shape {features.shape}")
    n, d_in = features.shape
    if not 1 <= dim <= min(d_in, n - 1):
        raise ValueError(f"dim={dim} must be between 1 and min(D, N - 1) = {min(d_in, n - 1)} for {n} features of "
                         f"dimension {d_in} (N features span at most N - 1 directions); lower dim or learn on "
                         "more features")
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    bad = non_finite_rows(features)
    if bad.size:
        raise ValueError(f"feature rows {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} hold NaN or inf "
                         "values; recompute or drop them before learning a whitening")
    if n < 3 * dim and power > 0 and shrinkage == 0:
        warnings.warn(f"learning a {dim}-d whitening from {n} features: the smallest of the kept eigenvalues are "
                      "poorly estimated and whitening amplifies their noise (it can cost much mAP, see "
                      "benchmarks/RESULTS.md); pass shrinkage=0.5 or power=0.5, lower dim, or learn on more features",
                      stacklevel=2)
    rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False)) if n > max_rows else None
    sample = features if rows is None else features[rows]
    mean, cov = _mean_and_covariance(sample)
    eigenvalues, vectors = np.linalg.eigh(cov)
    eigenvalues, vectors = eigenvalues[::-1][:dim], vectors[:, ::-1][:, :dim]
    if eigenvalues[-1] <= 1e-12 * eigenvalues[0]:
        raise ValueError(f"the features vary in fewer than dim={dim} directions (eigenvalue {dim} is "
                         f"{eigenvalues[-1]:.2e}); lower dim")
    shrunk = (1.0 - shrinkage) * eigenvalues + shrinkage * eigenvalues.mean()
    projection = vectors * shrunk ** (-power / 2.0)
    return PCAWhitening(mean.astype(np.float32), projection.astype(np.float32), eigenvalues.astype(np.float32),
                        float(power), float(shrinkage))


def pca_whiten(features: np.ndarray, whitening: PCAWhitening, chunk_rows: int = 65536) -> np.ndarray:
    """``normalise((normalise(x) - mean) @ projection)`` for each row of ``features`` (N, D): ``(N, d)`` float32."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != whitening.dim_in:
        raise ValueError(f"features of shape {features.shape} do not fit a whitening learned on "
                         f"{whitening.dim_in}-d features")
    out = np.empty((len(features), whitening.dim_out), dtype=np.float32)
    for start in range(0, len(features), chunk_rows):
        x = l2_normalize(features[start:start + chunk_rows]) - whitening.mean
        out[start:start + chunk_rows] = l2_normalize(x @ whitening.projection)
    return out


def _mean_and_covariance(features: np.ndarray, chunk_rows: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and population covariance (D, D), float64, of the L2-normalised rows.

    Two passes: the mean, then the centred products (float32 per chunk, summed in float64).
    """
    n, d = features.shape
    chunks = range(0, n, chunk_rows)
    mean = sum(l2_normalize(features[s:s + chunk_rows]).sum(axis=0, dtype=np.float64) for s in chunks) / n
    cov = np.zeros((d, d))
    for start in chunks:
        x = l2_normalize(features[start:start + chunk_rows]) - mean.astype(np.float32)
        cov += x.T @ x
    return mean, cov / n
