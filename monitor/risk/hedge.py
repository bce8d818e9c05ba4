"""Minimum-variance hedge of a book with chosen instruments, from the current covariance.

What to trade, now, to get the risk back. Inputs, over a set of symbols S (the book's risk
symbols and the hedge instruments):

- ``Sigma``: covariance of log returns over the horizon (the fast, repaired estimate);
- ``e``: the book's USD exposure, so that its P&L over the horizon is ``e' r`` (linear: a
  portfolio's ``q p``; an account's current deltas times price, the P&L linearised at the
  snapshot);
- the hedge instruments ``H`` (positions in S), their prices ``p_H``, and the units ``h0`` of
  each that the book already holds (part of ``e``).

**The P&L to hedge is the book without its holdings of the hedge instruments**,
``e_P = e - h0 p_H`` at ``H``. One unit of instrument j earns ``p_j r_j``, so in units

    Sigma_HH = diag(p_H) Sigma[H, H] diag(p_H),   Sigma_HP = diag(p_H) Sigma[H, :] e_P,
    h = -Sigma_HH^-1 Sigma_HP = -diag(p_H)^-1 Sigma[H, H]^-1 Sigma[H, :] e_P.

``h`` is the minimum-variance *holding* of each instrument and the trade is ``h - h0``. (The
trade does not depend on this choice: the variance is minimised over the total holding; the
choice only says what "quantity" means, and makes ``hedge_drift`` compare the held quantity
with the minimum-variance one.) A book holding only hedge instruments has nothing to hedge:
``h = 0`` and the trade closes it.

Figures:

- hedged variance ``(e_P + h p_H)' Sigma (e_P + h p_H) = e_P' Sigma e_P - Sigma_PH Sigma_HH^-1
  Sigma_HP`` (floored at 0), against the current ``e' Sigma e``;
- effectiveness ``1 - sigma_hedged^2 / sigma^2``, the share of the current variance the trade
  removes: 0..1, since holding ``h0`` is one of the hedges minimised over. For a book holding
  none of the instruments it is the R^2 of the book's P&L on theirs (``rho^2`` for one);
- VaR and CVaR before and after, ``k sigma`` with the multipliers of ``[risk] distribution``
  (:mod:`monitor.risk.tails`); for ``cornish-fisher``, normal multipliers for both, since the
  skew and kurtosis estimated for the book's P&L are not those of the hedged book, and the
  pair then compares like with like;
- drift per instrument ``|h0 - h| / |h|``, and for the book the USD-weighted
  ``||(h0 - h) p_H|| / ||h p_H||`` (the same for one instrument); null when the book holds
  none of the instruments (no hedge to be stale) or ``h = 0``.

Conditioning: the system is solved in correlation terms, ``C = D^-1 Sigma[H, H] D^-1`` with
``D`` the instruments' standard deviations, through the eigenvalues of ``C`` (scale-free). The
figures are null, never a huge number, when an instrument or a book symbol has no price or
covariance, an instrument does not move (zero variance), or the condition index
``sqrt(lambda_max / lambda_min)`` of ``C`` exceeds :data:`MAX_CONDITION_INDEX` (30, Belsley, Kuh
and Welsch's 1980 threshold for strong collinearity: two instruments correlated beyond 0.9978).
Below it, the hedge in standard-deviation units is at most ``sqrt(k) 900`` times the book's
standard deviation; a well-spread set (BTC and ETH at 0.9 correlation: index 4.4) stays near 1.

Assumptions: the P&L is linear over the horizon (options: delta only, gamma and vega left to
the :class:`~monitor.risk.snapshot.DeltaHedge` figures); returns are zero-mean with the current
fast covariance, which moves with the market: the hedge is only as stable as the correlations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.config.schema import RiskConfig
from monitor.risk.snapshot import HedgeLeg, HedgeRisk, HedgeTail
from monitor.risk.tails import TailFactors, tail_factors

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_CONDITION_INDEX = 30.0
"""Largest ``sqrt(lambda_max / lambda_min)`` of the instruments' correlation matrix solved for."""

NO_DATA = "missing data: a book symbol or hedge instrument has no price or covariance yet"
NO_MOVE = "a hedge instrument has zero variance"


@dataclass(frozen=True, slots=True)
class Solution:
    """The minimum-variance holding of each hedge instrument, or why there is none.

    Attributes:
        variance: the current book's P&L variance over the horizon; None without data.
        quantity: units of each instrument; None when not computable.
        variance_hedged: the variance after trading to ``quantity``.
        condition_index: of the instruments' correlation matrix, when it could be formed.
        reason: why ``quantity`` is None.
    """

    variance: float | None = None
    quantity: FloatArray | None = None
    variance_hedged: float | None = None
    condition_index: float | None = None
    reason: str | None = None


class HedgeSet:
    """A book's hedge instruments compiled against the engine's symbols.

    Args:
        hedge_with: the instruments' engine symbols, distinct.
        index: engine symbol -> column of the engine's arrays.
        book: engine columns of the book's risk symbols, in the order of its exposures.
        risk: horizon, confidence levels and distribution.
    """

    def __init__(
        self,
        hedge_with: Sequence[str],
        index: Mapping[str, int],
        book: Sequence[int],
        risk: RiskConfig,
    ) -> None:
        self.symbols = tuple(hedge_with)
        columns = dict.fromkeys([*(int(i) for i in book), *(index[s] for s in hedge_with)])
        position = {column: k for k, column in enumerate(columns)}
        self._columns = np.array(list(columns), dtype=np.int64)
        self._grid = np.ix_(self._columns, self._columns)
        self._book = np.array([position[int(i)] for i in book], dtype=np.int64)
        self._hedge = np.array([position[index[s]] for s in hedge_with], dtype=np.int64)
        self._levels = [(c, hedge_factors(risk.distribution, c, risk.dof)) for c in risk.confidence]
        self._horizon_s = float(risk.horizon)

    @property
    def columns(self) -> IntArray:
        """Engine columns of the instruments, in ``hedge_with`` order."""
        out: IntArray = self._columns[self._hedge]
        return out

    def risk(
        self,
        price: FloatArray,
        cov_rate: FloatArray,
        ready: BoolArray,
        exposure: FloatArray,
        held: FloatArray,
    ) -> HedgeRisk:
        """The hedge at one snapshot.

        Args:
            price: last price of every engine symbol.
            cov_rate: covariance of log returns per second, engine symbols.
            ready: symbols whose covariance is published.
            exposure: the book's USD exposure on its risk symbols (holdings included).
            held: units of each instrument the book holds.
        """
        cols = self._columns
        if not ready[cols].all():
            return hedge_risk(
                self.symbols, Solution(reason=NO_DATA), held, price[self.columns], self._levels
            )
        cov = cov_rate[self._grid] * self._horizon_s
        book = np.zeros(len(cols))
        np.add.at(book, self._book, exposure)
        hedge_price = price[self.columns]
        solution = minimum_variance(cov, book, self._hedge, hedge_price, held)
        return hedge_risk(self.symbols, solution, held, hedge_price, self._levels)


def minimum_variance(
    cov: FloatArray, exposure: FloatArray, hedge: IntArray, price: FloatArray, held: FloatArray
) -> Solution:
    """Solve ``h = -Sigma_HH^-1 Sigma_HP`` for the book without its hedge holdings.

    Args:
        cov: covariance of log returns over the horizon, S x S.
        exposure: the book's USD exposure over S, its holdings of the instruments included.
        hedge: positions of the hedge instruments in S, distinct.
        price: price of each instrument.
        held: units of each instrument the book holds.
    """
    cov_e = cov @ exposure
    variance = float(exposure @ cov_e)
    if not (math.isfinite(variance) and np.isfinite(cov).all()):  # NaN anywhere, or inf
        return Solution(reason=NO_DATA)
    if not (price > 0.0).all() or not math.isfinite(float(price.sum())):
        return Solution(reason=NO_DATA)
    variance = max(variance, 0.0)
    rows = cov[hedge]
    block = rows[:, hedge]
    sd = np.sqrt(np.maximum(block.diagonal(), 0.0))
    if not (sd > 0.0).all():
        return Solution(variance, reason=NO_MOVE)
    rest = exposure.copy()
    rest[hedge] -= held * price
    values, vectors = np.linalg.eigh(block / sd[:, None] / sd[None, :])
    top = float(values[-1])
    index = math.sqrt(top / float(values[0])) if values[0] > 0.0 else math.inf
    if not index <= MAX_CONDITION_INDEX:
        reason = f"ill-conditioned: condition index {index:.4g} > {MAX_CONDITION_INDEX:g}"
        return Solution(variance, condition_index=index, reason=reason)
    target = (rows @ rest) / sd
    usd = -(vectors @ ((vectors.T @ target) / values)) / sd  # USD exposure of each instrument
    hedged = rest.copy()
    hedged[hedge] += usd
    variance_hedged = min(max(float(hedged @ cov @ hedged), 0.0), variance)
    return Solution(variance, usd / price, variance_hedged, index)


def hedge_factors(distribution: str, confidence: float, dof: float) -> TailFactors:
    """VaR and ES multipliers of hedge figures: the configured ones, normal for Cornish-Fisher."""
    shape_free = "normal" if distribution == "cornish-fisher" else distribution
    factors = tail_factors(shape_free, confidence, dof)
    assert factors is not None  # normal and Student-t need no shape
    return factors


def hedge_risk(
    symbols: Sequence[str],
    solution: Solution,
    held: FloatArray,
    price: FloatArray,
    levels: Sequence[tuple[float, TailFactors]],
) -> HedgeRisk:
    """The snapshot figures of a solution.

    Args:
        symbols: the instruments, in ``hedge_with`` order.
        solution: from :func:`minimum_variance`.
        held: units of each instrument the book holds.
        price: price of each instrument.
        levels: ``(confidence, multipliers)`` per configured confidence.
    """
    quantity = solution.quantity
    legs = tuple(
        HedgeLeg(symbol, float(held[j]), *_leg(float(held[j]), quantity, j))
        for j, symbol in enumerate(symbols)
    )
    sigma = _root(solution.variance)
    sigma_hedged = _root(solution.variance_hedged)
    tails = tuple(
        HedgeTail(
            confidence,
            var=_times(f.var, sigma),
            cvar=_times(f.es, sigma),
            var_hedged=_times(f.var, sigma_hedged),
            cvar_hedged=_times(f.es, sigma_hedged),
        )
        for confidence, f in levels
    )
    return HedgeRisk(
        legs=legs,
        tails=tails,
        effectiveness=_effectiveness(solution),
        drift=None if quantity is None else book_drift(held, quantity, price),
        condition_index=solution.condition_index,
        reason=solution.reason,
    )


def book_drift(held: FloatArray, quantity: FloatArray, price: FloatArray) -> float | None:
    """``||(held - quantity) p|| / ||quantity p||``; None when nothing is held or the hedge is 0."""
    if not np.any(held != 0.0):
        return None
    usd, off = quantity * price, (held - quantity) * price
    norm = float(usd @ usd)
    if not norm > 0.0:
        return None
    return math.sqrt(float(off @ off) / norm)


def _leg(
    held: float, quantity: FloatArray | None, j: int
) -> tuple[float | None, float | None, float | None]:
    """(quantity, trade, drift) of one instrument."""
    if quantity is None:
        return None, None, None
    q = float(quantity[j])
    drift = abs(held - q) / abs(q) if held != 0.0 and q != 0.0 else None
    return q, q - held, drift


def _effectiveness(solution: Solution) -> float | None:
    if solution.variance is None or solution.variance_hedged is None:
        return None
    if not solution.variance > 0.0:
        return None
    return 1.0 - solution.variance_hedged / solution.variance


def _root(variance: float | None) -> float | None:
    return None if variance is None else math.sqrt(variance)


def _times(factor: float, sigma: float | None) -> float | None:
    return None if sigma is None else factor * sigma
