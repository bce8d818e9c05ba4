"""Delta-gamma VaR of a book with options: the first three cumulants into Cornish-Fisher.

For price changes ``dS ~ N(0, Sigma)`` over the horizon, a book with deltas ``d`` and gamma
matrix ``G`` (both in base currency per unit of underlying) changes value by
``dV = d'dS + 1/2 dS' G dS``. Its cumulants are

    k1 = 1/2 tr(G Sigma)
    k2 = d' Sigma d + 1/2 tr((G Sigma)^2)
    k3 = tr((G Sigma)^3) + 3 d' Sigma G Sigma d

(e.g. Mina and Ulmer, "Delta-gamma four ways", RiskMetrics 1999). The loss ``L = -dV`` has
mean ``-k1``, variance ``k2`` and third cumulant ``-k3``; its VaR and ES come from the
Cornish-Fisher expansion with the skewness ``-k3 / k2^1.5`` (excess kurtosis left at zero:
three cumulants, as the method prescribes).

Validity guard. The expansion is a quantile function only where it increases. Hedged option
books have loss skews of -2 (long gamma) to +2 (short gamma) and beyond, where it turns down
before the 99% quantile: a delta-neutral short call then read a 99% VaR below its 95% one, a
long call a negative 99% VaR. :func:`delta_gamma_tails` therefore returns the figures only
when ``z_cf`` increases over ``[0, z_max]``, from the median to the highest confidence used,
and None otherwise: it is a fast estimate beside the full-revaluation Monte Carlo
(:mod:`monitor.risk.optionvar`), which is what an account reports as its VaR. Valid figures are
floored at zero (a VaR cannot be negative) with ES at least the VaR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.risk.tails import cornish_fisher_factors, cornish_fisher_monotone

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Cumulants:
    """The first three cumulants of the value change ``dV``."""

    k1: float
    k2: float
    k3: float

    @property
    def loss_skew(self) -> float:
        """Skewness of the loss ``-dV``."""
        return -self.k3 / self.k2**1.5 if self.k2 > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DeltaGammaRisk:
    """VaR and ES of the loss at one confidence, base currency (positive = loss)."""

    confidence: float
    var: float
    es: float
    cumulants: Cumulants


def cumulants(delta: FloatArray, gamma: FloatArray, cov: FloatArray) -> Cumulants:
    """Cumulants of ``d'dS + 1/2 dS'G dS`` for ``dS ~ N(0, cov)``."""
    gs = gamma @ cov
    sd = cov @ delta
    return Cumulants(
        k1=0.5 * float(np.trace(gs)),
        k2=float(delta @ sd) + 0.5 * float(np.trace(gs @ gs)),
        k3=float(np.trace(gs @ gs @ gs)) + 3.0 * float(sd @ gamma @ sd),
    )


def delta_gamma_var(
    delta: FloatArray, gamma: FloatArray, cov: FloatArray, confidence: float
) -> DeltaGammaRisk:
    """Cornish-Fisher VaR and ES of the delta-gamma loss over the covariance's horizon."""
    c = cumulants(delta, gamma, cov)
    sigma = math.sqrt(max(c.k2, 0.0))
    factors = cornish_fisher_factors(confidence, c.loss_skew, 0.0)
    return DeltaGammaRisk(
        confidence=confidence,
        var=-c.k1 + sigma * factors.var,
        es=-c.k1 + sigma * factors.es,
        cumulants=c,
    )


def delta_gamma_tails(
    delta: FloatArray, gamma: FloatArray, cov: FloatArray, confidence: Sequence[float]
) -> list[DeltaGammaRisk] | None:
    """Delta-gamma VaR and ES at each level, or None where Cornish-Fisher is not monotone.

    See the module docstring for the guard; valid figures satisfy ``0 <= VaR <= ES``.
    """
    from scipy import stats  # imported at first use: only option books need it

    c = cumulants(delta, gamma, cov)
    z_max = float(stats.norm.ppf(max(confidence)))
    if not cornish_fisher_monotone(c.loss_skew, 0.0, z_max):
        return None
    out = []
    for level in confidence:
        risk = delta_gamma_var(delta, gamma, cov, level)
        var = max(risk.var, 0.0)
        out.append(DeltaGammaRisk(level, var, max(risk.es, var), c))
    return out
