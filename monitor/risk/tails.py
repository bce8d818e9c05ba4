"""Value at risk and expected shortfall multipliers for a zero-mean loss of unit variance.

A portfolio with loss standard deviation ``sigma`` over the horizon has ``VaR = sigma * var_k``
and ``CVaR = sigma * es_k``, where (var_k, es_k) come from :func:`tail_factors`.

- normal: ``var_k = z_a``, ``es_k = phi(z_a) / (1 - a)``.
- student-t with nu > 2 degrees of freedom, rescaled to unit variance with
  ``s = sqrt((nu - 2) / nu)``: ``var_k = s q``, ``es_k = s f_nu(q) (nu + q^2) / ((nu - 1)(1 - a))``,
  ``q = t_nu^-1(a)``.
- cornish-fisher: ``z_cf = z + (z^2 - 1) S / 6 + (z^3 - 3z) K / 24 - (2z^3 - 5z) S^2 / 36`` with
  skewness S and excess kurtosis K of the loss; ES integrates ``z_cf`` over the tail in closed form.

The quantiles and densities are scipy's, computed as ``scipy.stats`` computes them but from
``scipy.special`` (the same functions on the same arguments, so the same floats, which
``tests/unit/monitor/risk/test_tails.py`` checks): ``scipy.stats`` takes about half a second to
import, more than the rest of a replay's start-up, and only option books need it
(:mod:`monitor.risk.montecarlo`). scipy is imported at the first call, not with the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True, slots=True)
class TailFactors:
    """Multipliers of the loss standard deviation.

    Attributes:
        var: value at risk per unit sigma.
        es: expected shortfall (CVaR) per unit sigma.
    """

    var: float
    es: float


@lru_cache(maxsize=64)
def normal_factors(confidence: float) -> TailFactors:
    """Normal VaR and ES multipliers."""
    z = normal_quantile(confidence)
    return TailFactors(z, normal_density(z) / (1.0 - confidence))


@lru_cache(maxsize=64)
def student_t_factors(confidence: float, dof: float) -> TailFactors:
    """Student-t VaR and ES multipliers, scaled so the loss has unit variance."""
    if not dof > 2.0:
        raise ValueError(f"student-t needs more than 2 degrees of freedom, got {dof}")
    q = student_t_quantile(confidence, dof)
    scale = math.sqrt((dof - 2.0) / dof)
    es = student_t_density(q, dof) * (dof + q * q) / ((dof - 1.0) * (1.0 - confidence))
    return TailFactors(scale * q, scale * es)


def normal_quantile(p: float) -> float:
    """``scipy.stats.norm.ppf(p)``: the standard normal quantile (``scipy.special.ndtri``)."""
    from scipy import special

    return float(special.ndtri(np.asarray([p], dtype=np.float64))[0])


def normal_density(x: float) -> float:
    """``scipy.stats.norm.pdf(x)``, by scipy's formula."""
    v = np.asarray([x], dtype=np.float64)
    return float((np.exp(-(v**2) / 2.0) / np.sqrt(2 * np.pi))[0])


def student_t_quantile(p: float, dof: float) -> float:
    """``scipy.stats.t.ppf(p, dof)`` (``scipy.special.stdtrit``)."""
    from scipy import special

    return float(special.stdtrit(np.asarray([dof]), np.asarray([p], dtype=np.float64))[0])


def student_t_density(x: float, dof: float) -> float:
    """``scipy.stats.t.pdf(x, dof)`` for a finite ``dof``, by scipy's formula."""
    from scipy import special

    v, df = np.asarray([x], dtype=np.float64), np.asarray([dof], dtype=np.float64)
    log_density = (
        np.log(special.poch(0.5 * df, 0.5))
        - 0.5 * (np.log(df) + np.log(np.pi))
        - (df + 1) / 2 * np.log1p(v * v / df)
    )
    return float(np.exp(log_density)[0])


def cornish_fisher_z(z: float, skew: float, excess_kurtosis: float) -> float:
    """Cornish-Fisher expansion of a standard normal quantile."""
    return (
        z
        + (z * z - 1.0) * skew / 6.0
        + (z**3 - 3.0 * z) * excess_kurtosis / 24.0
        - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0
    )


def cornish_fisher_monotone(skew: float, excess_kurtosis: float, z_max: float) -> bool:
    """Whether the Cornish-Fisher quantile ``z_cf(z)`` increases for ``z`` in ``[0, z_max]``.

    ``dz_cf/dz = 1 + z S / 3 + (z^2 - 1) K / 8 - (6 z^2 - 5) S^2 / 36``, a quadratic in ``z``: it
    is checked at both ends and at its vertex when that lies inside.
    """
    a = excess_kurtosis / 8.0 - skew * skew / 6.0
    b = skew / 3.0
    c = 1.0 - excess_kurtosis / 8.0 + 5.0 * skew * skew / 36.0
    points = [0.0, z_max]
    if a != 0.0 and 0.0 < -b / (2.0 * a) < z_max:
        points.append(-b / (2.0 * a))
    return all(a * z * z + b * z + c > 0.0 for z in points)


def cornish_fisher_factors(confidence: float, skew: float, excess_kurtosis: float) -> TailFactors:
    """Cornish-Fisher VaR and ES multipliers for a loss with the given shape.

    ES integrates the expansion against the normal density above ``z_a`` in closed form
    (the modified ES of Boudt, Peterson and Croux, 2008):
    ``(1 - a) ES = phi(z)[1 + z S / 6 + (z^2 - 1) K / 24 - (2 z^2 - 1) S^2 / 36]``.
    """
    z = normal_quantile(confidence)
    density = normal_density(z)
    shape = (
        1.0
        + z * skew / 6.0
        + (z * z - 1.0) * excess_kurtosis / 24.0
        - (2.0 * z * z - 1.0) * skew * skew / 36.0
    )
    return TailFactors(
        cornish_fisher_z(z, skew, excess_kurtosis), density * shape / (1.0 - confidence)
    )


def tail_factors(
    distribution: str,
    confidence: float,
    dof: float,
    skew: float | None = None,
    excess_kurtosis: float | None = None,
) -> TailFactors | None:
    """Multipliers for the configured distribution; None when its shape is not yet estimated."""
    if distribution == "normal":
        return normal_factors(confidence)
    if distribution == "student-t":
        return student_t_factors(confidence, dof)
    if distribution == "cornish-fisher":
        if skew is None or excess_kurtosis is None:
            return None
        return cornish_fisher_factors(confidence, skew, excess_kurtosis)
    raise ValueError(f"unknown distribution {distribution!r}")
