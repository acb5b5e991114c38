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
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .retrieval import l2_normalize, non_finite_rows

FORMAT_VERSION = 1


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
        """Write to ``path`` (``.npz``) through a temporary file, so a crash leaves no half-written file."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, format=FORMAT_VERSION, mean=self.mean, projection=self.projection,
                     eigenvalues=self.eigenvalues, power=self.power, shrinkage=self.shrinkage)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> PCAWhitening:
        """Read what :meth:`save` wrote."""
        with np.load(path) as f:
            if int(f["format"]) != FORMAT_VERSION:
                raise ValueError(f"{path} holds a whitening of format {int(f['format'])}, this fsrlib reads "
                                 f"format {FORMAT_VERSION}: learn it again with learn_pca_whitening")
            return cls(f["mean"], f["projection"], f["eigenvalues"], float(f["power"]), float(f["shrinkage"]))


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
