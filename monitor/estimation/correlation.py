"""Measures of a correlation or covariance matrix: repair, average, absorption, bets, turbulence.

All functions are pure and take NumPy arrays; none of them mutates its input.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_PSD_TOLERANCE = 1e-12
# The Newton iteration stops when the diagonal of (G + diag y)_+ is within this (2-norm) of
# ones. It converges quadratically: a step from 1e-4 lands near 1e-9, the next below 1e-12.
_NEWTON_TOLERANCE = 1e-10
_NEWTON_ITERATIONS = 50
_LINE_SEARCH_HALVINGS = 30
_CG_ITERATIONS = 200
_ARMIJO = 1e-4
# The dual objective is a sum of O(N) squares of eigenvalues: near the optimum its decrease is
# below the rounding of the sum, so the line search tolerates that much (relative) increase.
_ROUNDING_SLACK = 1e-11

TURBULENCE_EIGEN_FLOOR = 1e-2
"""Smallest eigenvalue of the correlation matrix that turbulence divides by (see turbulence)."""
TURBULENCE_MAX_FLOORED_SHARE = 0.5
"""Turbulence is None when a larger share of the correlation eigenvalues is below the floor."""


def correlation_from_covariance(cov: FloatArray) -> FloatArray:
    """Correlation matrix of a covariance matrix (unit diagonal, entries clipped to [-1, 1])."""
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    np.fill_diagonal(corr, 1.0)
    return np.asarray(np.clip(corr, -1.0, 1.0), dtype=np.float64)


def repair_correlation(corr: FloatArray) -> tuple[FloatArray, bool]:
    """Nearest valid correlation matrix: symmetric, unit diagonal, positive semi-definite.

    Hayashi-Yoshida entries are each consistent but the matrix need not be PSD. When the
    smallest eigenvalue is below zero we compute the nearest correlation matrix in the
    Frobenius norm (N. Higham, "Computing the nearest correlation matrix", IMA J. Numer. Anal.
    22, 2002) with the quadratically convergent Newton method of Qi and Sun (SIAM J. Matrix
    Anal. Appl. 28, 2006): about five eigendecompositions where Higham's alternating
    projections need 30 or more for the same accuracy, which is what a snapshot of 200
    asynchronous symbols (never PSD) pays twice.

    Returns:
        The repaired matrix and whether a repair was needed.
    """
    sym = 0.5 * (corr + corr.T)
    np.fill_diagonal(sym, 1.0)
    if sym.shape[0] < 2 or _has_cholesky(sym):
        return np.clip(sym, -1.0, 1.0), False
    vals, vecs = np.linalg.eigh(sym)
    if vals[0] >= -_PSD_TOLERANCE:
        return np.clip(sym, -1.0, 1.0), False
    return nearest_correlation(sym, vals, vecs), True


def _has_cholesky(sym: FloatArray) -> bool:
    """A Cholesky factorisation settles most PSD matrices at a fraction of an eigh's cost."""
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        return False
    return True


def nearest_correlation(
    sym: FloatArray, vals: FloatArray | None = None, vecs: FloatArray | None = None
) -> FloatArray:
    """The nearest correlation matrix to the symmetric ``sym`` (Qi & Sun's dual Newton method).

    The nearest correlation matrix is ``(G + diag y)_+`` for the ``y`` that minimises the
    convex dual ``theta(y) = ||(G + diag y)_+||^2 / 2 - sum(y)``, whose gradient is
    ``diag((G + diag y)_+) - 1``. Each Newton step solves its generalised Jacobian system by
    conjugate gradients (cheap: no eigendecomposition) and costs one eigendecomposition.

    Args:
        sym: symmetric matrix with unit diagonal.
        vals, vecs: ``np.linalg.eigh(sym)`` when the caller has it already.

    Returns:
        A symmetric PSD matrix with unit diagonal and entries in [-1, 1]; after the iteration
        cap (never reached in practice) it is still valid, only not quite the nearest.
    """
    if vals is None or vecs is None:
        vals, vecs = np.linalg.eigh(sym)
    y = np.zeros(sym.shape[0])
    grad = _dual_gradient(vals, vecs)
    for _ in range(_NEWTON_ITERATIONS):
        if np.linalg.norm(grad) <= _NEWTON_TOLERANCE:
            break
        step = _conjugate_gradient(_jacobian(vals, vecs), -grad)
        y, vals, vecs, grad = _line_search(sym, y, step, vals, grad)
    return _unit_diagonal((vecs * np.maximum(vals, 0.0)) @ vecs.T)


def _dual_objective(vals: FloatArray, y: FloatArray) -> float:
    return 0.5 * float(np.sum(np.maximum(vals, 0.0) ** 2)) - float(y.sum())


def _dual_gradient(vals: FloatArray, vecs: FloatArray) -> FloatArray:
    """diag((G + diag y)_+) - 1 from the eigendecomposition of G + diag y."""
    return np.asarray(((vecs * np.maximum(vals, 0.0)) * vecs).sum(axis=1) - 1.0)


def _line_search(
    sym: FloatArray, y: FloatArray, step: FloatArray, vals: FloatArray, grad: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Armijo backtracking on the dual; near the optimum the full Newton step is taken."""
    theta = _dual_objective(vals, y)
    slope = float(grad @ step)
    slack = _ROUNDING_SLACK * (1.0 + abs(theta))
    alpha = 1.0
    for _ in range(_LINE_SEARCH_HALVINGS):
        trial = y + alpha * step
        new_vals, new_vecs = np.linalg.eigh(sym + np.diag(trial))
        if _dual_objective(new_vals, trial) <= theta + _ARMIJO * alpha * slope + slack:
            break
        alpha *= 0.5
    return trial, new_vals, new_vecs, _dual_gradient(new_vals, new_vecs)


def _jacobian(vals: FloatArray, vecs: FloatArray) -> Callable[[FloatArray], FloatArray]:
    """h -> V h, the generalised Jacobian of the dual gradient (Qi & Sun 2006, eq. 3.4).

    ``V h = diag(P (Omega o (P' diag(h) P)) P')`` with ``Omega`` 1 between positive
    eigenvalues, 0 between the others and ``l_i / (l_i - l_j)`` across. Written over the
    smaller of the two eigenvalue sets, so a product costs O(N^2 min(r, N - r)), not O(N^3).
    """
    pos = vals > 0.0
    lp, ln = vals[pos], vals[~pos]
    across = lp[:, None] / (lp[:, None] - ln[None, :])
    vp, vn = vecs[:, pos], vecs[:, ~pos]
    if len(lp) <= len(ln):

        def product(h: FloatArray) -> FloatArray:
            inner = ((vp @ ((vp.T * h) @ vp)) * vp).sum(axis=1)
            return np.asarray(inner + 2.0 * ((vp @ (across * ((vp.T * h) @ vn))) * vn).sum(axis=1))

    else:
        outside = 1.0 - across

        def product(h: FloatArray) -> FloatArray:
            rest = ((vn @ ((vn.T * h) @ vn)) * vn).sum(axis=1)
            cross = ((vp @ (outside * ((vp.T * h) @ vn))) * vn).sum(axis=1)
            return np.asarray(h - rest - 2.0 * cross)

    return product


def _conjugate_gradient(product: Callable[[FloatArray], FloatArray], rhs: FloatArray) -> FloatArray:
    """Approximate solution of ``V x = rhs`` (V symmetric PSD) by conjugate gradients.

    The residual asked for shrinks with ``rhs`` (the dual gradient), so that the inexact
    Newton iteration stays quadratic near the solution.
    """
    tolerance = min(1e-2, float(np.linalg.norm(rhs))) * float(np.linalg.norm(rhs))
    x = np.zeros_like(rhs)
    residual, direction = rhs.copy(), rhs.copy()
    rr = float(residual @ residual)
    for _ in range(_CG_ITERATIONS):
        if math.sqrt(rr) <= tolerance:
            break
        image = product(direction)
        curvature = float(direction @ image)
        if curvature <= 0.0:  # V is singular along this direction: stop with what we have
            break
        alpha = rr / curvature
        x += alpha * direction
        residual -= alpha * image
        rr, previous = float(residual @ residual), rr
        direction = residual + (rr / previous) * direction
    return x if x.any() else rhs


def _unit_diagonal(psd: FloatArray) -> FloatArray:
    """Scale a PSD matrix to unit diagonal (a congruence, so still PSD); clip the rounding.

    At the Newton solution the diagonal is already 1 to 1e-10. A zero diagonal entry means a
    zero row (PSD), which becomes the identity's row.
    """
    d = np.diag(psd).copy()
    scale = np.where(d > 1e-300, 1.0 / np.sqrt(np.where(d > 1e-300, d, 1.0)), 0.0)
    out = psd * np.outer(scale, scale)
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


def turbulence(returns: FloatArray, cov: FloatArray) -> float | None:
    """Mahalanobis distance r' Sigma^-1 r of a zero-mean return vector (Kritzman & Li, 2010).

    ``cov`` must be the covariance of returns over the same interval. Chi-square with N degrees
    of freedom under normality, so its mean is N and its median about ``N (1 - 2 / (9N))^3``.

    The inverse is a well-conditioned one, never a plain solve: the PSD repair of asynchronous
    estimates leaves exact zero eigenvalues, where ``np.linalg.solve`` divides by rounding
    noise (values down to -1e17 were seen). The distance does not change when each asset is
    rescaled, so it is computed on standardised returns ``z = r / sd`` with the correlation
    matrix ``C`` (whose conditioning then reflects dependence only, not a quiet stablecoin next
    to a volatile coin): ``d = sum_i (v_i' z)^2 / max(lambda_i, TURBULENCE_EIGEN_FLOOR)`` over
    the eigenpairs of ``C``. The floor is in correlation units (the mean eigenvalue is 1): a
    direction whose variance is estimated below 1% of an average asset's cannot be told from
    zero by an EWMA estimate, and flooring it keeps a return along it from reading as an
    arbitrarily large distance. Floored directions can only lower the figure, so it stays >= 0.

    Returns:
        The distance (>= 0), or None when it cannot be said: inputs not finite, a variance not
        positive, or more than half of the eigenvalues below the floor (the matrix then resolves
        fewer than N / 2 directions; see :data:`TURBULENCE_MAX_FLOORED_SHARE`).
    """
    if not (np.isfinite(returns).all() and np.isfinite(cov).all()):
        return None
    var = np.diag(cov)
    if returns.size == 0 or not (var > 0.0).all():
        return None
    sd = np.sqrt(var)
    corr = cov / np.outer(sd, sd)
    vals, vecs = np.linalg.eigh(0.5 * (corr + corr.T))
    floored = vals < TURBULENCE_EIGEN_FLOOR
    if floored.sum() > TURBULENCE_MAX_FLOORED_SHARE * len(vals):
        return None
    projected = vecs.T @ (returns / sd)
    return float(np.sum(projected**2 / np.maximum(vals, TURBULENCE_EIGEN_FLOOR)))
