"""Measures of a correlation or covariance matrix: repair, average, absorption, bets, turbulence.

All functions are pure and take NumPy arrays; none of them mutates its input.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from statsmodels.stats.correlation_tools import corr_nearest
from statsmodels.tools.sm_exceptions import IterationLimitWarning

FloatArray = npt.NDArray[np.float64]

_PSD_TOLERANCE = 1e-12
# corr_nearest's stopping test (smallest eigenvalue >= threshold) is rarely met exactly, so it
# runs to its iteration cap: the default cap (100 N) took 40 s for N = 50. The projections have
# converged to 1e-8 in distance after about 20 iterations; the final eigenvalue clip does the rest.
_HIGHAM_ITERATIONS = 30


def correlation_from_covariance(cov: FloatArray) -> FloatArray:
    """Correlation matrix of a covariance matrix (unit diagonal, entries clipped to [-1, 1])."""
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    np.fill_diagonal(corr, 1.0)
    return np.asarray(np.clip(corr, -1.0, 1.0), dtype=np.float64)


def repair_correlation(corr: FloatArray) -> tuple[FloatArray, bool]:
    """Nearest valid correlation matrix: symmetric, unit diagonal, positive semi-definite.

    Hayashi-Yoshida entries are each consistent but the matrix need not be PSD. When the
    smallest eigenvalue is below zero we project with Higham's alternating projections
    (N. Higham, "Computing the nearest correlation matrix", IMA J. Numer. Anal. 22, 2002) as
    implemented by statsmodels' ``corr_nearest``, then clip the residual rounding.

    Returns:
        The repaired matrix and whether a repair was needed.
    """
    sym = 0.5 * (corr + corr.T)
    np.fill_diagonal(sym, 1.0)
    if _is_psd(sym):
        return np.clip(sym, -1.0, 1.0), False
    with warnings.catch_warnings():
        # an iteration limit leaves a near-PSD matrix that the final clip completes
        warnings.simplefilter("ignore", IterationLimitWarning)
        fixed = np.asarray(
            corr_nearest(sym, threshold=0.0, n_fact=_HIGHAM_ITERATIONS / sym.shape[0]),
            dtype=np.float64,
        )
    return _clip_to_psd(fixed), True


def _is_psd(sym: FloatArray) -> bool:
    """Positive semi-definite to rounding; a Cholesky factorisation settles most cases fast."""
    if sym.shape[0] < 2:
        return True
    try:
        np.linalg.cholesky(sym)
        return True
    except np.linalg.LinAlgError:
        return bool(np.linalg.eigvalsh(sym)[0] >= -_PSD_TOLERANCE)


def _clip_to_psd(corr: FloatArray) -> FloatArray:
    """Clip tiny negative eigenvalues and restore the unit diagonal."""
    vals, vecs = np.linalg.eigh(0.5 * (corr + corr.T))
    clipped = (vecs * np.maximum(vals, 0.0)) @ vecs.T
    sd = np.sqrt(np.diag(clipped))
    out = clipped / np.outer(sd, sd)
    out = 0.5 * (out + out.T)
    np.fill_diagonal(out, 1.0)
    return np.asarray(np.clip(out, -1.0, 1.0), dtype=np.float64)


def average_correlation(corr: FloatArray) -> float:
    """Mean of the off-diagonal entries of a symmetric unit-diagonal matrix (each pair once)."""
    n = corr.shape[0]
    if n < 2:
        return math.nan
    return float((corr.sum() - np.trace(corr)) / (n * (n - 1)))


def eigenvalues(corr: FloatArray) -> FloatArray:
    """Eigenvalues of a symmetric matrix, descending, clipped at zero."""
    return np.asarray(np.clip(np.linalg.eigvalsh(corr)[::-1], 0.0, None), dtype=np.float64)


def absorption_ratio(corr: FloatArray, n_factors: int | None = None) -> float:
    """Share of total variance absorbed by the top eigenvectors (Kritzman et al., 2011).

    Computed on the correlation matrix (standardised returns), so one very volatile asset cannot
    dominate the figure. ``n_factors`` defaults to ceil(N / 5).
    """
    return absorption_from_eigenvalues(eigenvalues(corr), n_factors)


def absorption_from_eigenvalues(vals: FloatArray, n_factors: int | None = None) -> float:
    """Absorption ratio from descending eigenvalues."""
    k = n_factors if n_factors is not None else math.ceil(len(vals) / 5)
    return float(vals[:k].sum() / vals.sum())


def effective_bets(corr: FloatArray) -> float:
    """Effective number of independent bets in the universe, between 1 and N.

    Definition: the exponential of the Shannon entropy of the normalised eigenvalues of the
    correlation matrix (the "effective rank" of Roy and Vetterli, 2007; it equals Meucci's 2009
    PCA effective number of bets of a portfolio with equal risk on every principal component).
    Unlike Meucci's weight-dependent version it is well defined for repeated eigenvalues, e.g.
    an equicorrelated matrix. N for uncorrelated assets, 1 when all correlations are 1.
    """
    return bets_from_eigenvalues(eigenvalues(corr))


def bets_from_eigenvalues(vals: FloatArray) -> float:
    """Effective number of bets from eigenvalues."""
    p = vals / vals.sum()
    p = p[p > 0]
    return float(math.exp(-float(np.sum(p * np.log(p)))))


def turbulence(returns: FloatArray, cov: FloatArray) -> float:
    """Mahalanobis distance r' Sigma^-1 r of a zero-mean return vector (Kritzman & Li, 2010).

    ``cov`` must be the covariance of returns over the same interval. Chi-square with N degrees
    of freedom under normality, so its mean is N. A singular ``cov`` uses the pseudo-inverse.
    """
    try:
        solved = np.linalg.solve(cov, returns)
    except np.linalg.LinAlgError:
        solved = np.linalg.pinv(cov, hermitian=True) @ returns
    return float(returns @ solved)
