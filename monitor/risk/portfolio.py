"""Risk of one portfolio from the engine's covariance: value, volatility, VaR, CVaR, components.

Positions are linear: the exposure of a position is ``e_i = quantity_i * price_i`` in base
currency, and the P&L over a horizon h is ``e' r`` for log returns r with covariance
``Sigma * h``. Losses are zero-mean (RiskMetrics): ``VaR = k_var * sigma_p``,
``CVaR = k_es * sigma_p`` with the multipliers of :mod:`monitor.risk.tails`, and
``sigma_p = sqrt(e' Sigma e * h)``.

- Euler component VaR: ``k_var * e_i (Sigma e)_i * h / sigma_p``; the components sum to the VaR.
- Stressed VaR: every correlation set to 1, ``sigma = |sum_i e_i sigma_i| sqrt(h)``. For a
  long/short book this can be below the VaR (the hedge is perfect at correlation 1).
- Diversification ratio: ``sum_i |e_i| sigma_i / sigma_p`` (Choueifaty & Coignard, 2008, with
  absolute exposures so that shorts count as risk).
- Diversification benefit: ``1 - VaR / stressed VaR``.
- Cornish-Fisher shape: skewness and excess kurtosis of the snapshot-interval P&L standardised by
  its ex-ante sigma, EWMA-weighted at the slow half-life, scaled to the horizon as for i.i.d.
  sums (skew / sqrt(n), kurtosis / n, n = horizon / interval).
- Hedge: with ``hedge_with``, the minimum-variance hedge of the positions with those
  instruments (:mod:`monitor.risk.hedge`); a position in one of them counts as held hedge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.config.schema import EstimatorConfig, PortfolioConfig, RiskConfig
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.estimation.ewma import EwmaMoments, MomentsTuple
from monitor.risk.hedge import HedgeSet
from monitor.risk.snapshot import HedgeRisk, PortfolioRisk, TailRisk
from monitor.risk.tails import TailFactors, tail_factors

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """What one snapshot offers a portfolio.

    Attributes:
        ts: snapshot time.
        price, logp: per tracked symbol.
        cov_rate: repaired covariance per second (NaN where not ready).
        ready: symbols whose figures are ready.
        previous: (time, log prices, covariance per second) of the previous snapshot.
    """

    ts: float
    price: FloatArray
    logp: FloatArray
    cov_rate: FloatArray
    ready: BoolArray
    previous: tuple[float, FloatArray, FloatArray] | None


class PortfolioModel:
    """Static description of one portfolio plus its P&L shape estimate."""

    def __init__(
        self,
        config: PortfolioConfig,
        index: Mapping[str, int],
        risk: RiskConfig,
        estimator: EstimatorConfig,
    ) -> None:
        self.name = config.name
        self.symbols = tuple(p.symbol for p in config.positions)
        self._idx = np.array([index[s] for s in self.symbols], dtype=np.int64)
        self._ii = np.ix_(self._idx, self._idx)
        self._qty = np.array([p.quantity for p in config.positions], dtype=np.float64)
        self._horizon_s = risk.horizon
        self._confidence = tuple(risk.confidence)
        self._distribution = risk.distribution
        self._dof = risk.dof
        self._min_obs = estimator.min_observations
        self._shape = EwmaMoments(estimator.slow_halflife)
        self._interval = EwmaMoments(estimator.slow_halflife)
        hedge_with = config.hedge_with or ()
        self._hedge = HedgeSet(hedge_with, index, self._idx.tolist(), risk) if hedge_with else None
        held = {p.symbol: p.quantity for p in config.positions}
        self._held = np.array([held.get(s, 0.0) for s in hedge_with], dtype=np.float64)

    def export_state(self) -> tuple[MomentsTuple, MomentsTuple]:
        """The P&L shape and snapshot-interval estimators, for checkpoints."""
        return self._shape.to_tuple(), self._interval.to_tuple()

    def import_state(self, state: tuple[MomentsTuple, MomentsTuple]) -> None:
        """Continue from estimators that :meth:`export_state` returned."""
        self._shape = EwmaMoments.from_tuple(state[0])
        self._interval = EwmaMoments.from_tuple(state[1])

    def risk(self, state: PortfolioState) -> PortfolioRisk:
        """Figures of this portfolio at ``state``; None where not ready."""
        exposure = self._qty * state.price[self._idx]
        hedge = self._hedge_risk(state, exposure)
        if not np.isfinite(exposure).all():
            return PortfolioRisk(self.name, self.symbols, tails=self._empty_tails(), hedge=hedge)
        value = float(exposure.sum())
        gross = float(np.abs(exposure).sum())
        cov = state.cov_rate[self._ii]
        self._update_shape(state)
        if not state.ready[self._idx].all() or not np.isfinite(cov).all():
            empty = self._empty_tails()
            return PortfolioRisk(self.name, self.symbols, value, gross, tails=empty, hedge=hedge)
        return self._figures(exposure, cov, value, gross, hedge)

    def _hedge_risk(self, state: PortfolioState, exposure: FloatArray) -> HedgeRisk | None:
        """The minimum-variance hedge with ``hedge_with`` (positions in it count as held)."""
        if self._hedge is None:
            return None
        return self._hedge.risk(state.price, state.cov_rate, state.ready, exposure, self._held)

    def _figures(
        self,
        exposure: FloatArray,
        cov: FloatArray,
        value: float,
        gross: float,
        hedge: HedgeRisk | None,
    ) -> PortfolioRisk:
        root_h = math.sqrt(self._horizon_s)
        sigma_rate = math.sqrt(max(float(exposure @ cov @ exposure), 0.0))
        sd = np.sqrt(np.diag(cov))
        standalone = float(np.abs(exposure) @ sd)
        aligned = abs(float(exposure @ sd))
        marginal = cov @ exposure / sigma_rate if sigma_rate > 0 else np.zeros_like(exposure)
        skew, kurt = self._shape_estimate()
        tails = tuple(
            _tail(
                c,
                tail_factors(self._distribution, c, self._dof, *self._horizon_shape(skew, kurt)),
                sigma_rate * root_h,
                aligned * root_h,
                exposure * marginal * root_h,
            )
            for c in self._confidence
        )
        return PortfolioRisk(
            name=self.name,
            symbols=self.symbols,
            value=value,
            gross_exposure=gross,
            volatility=sigma_rate * math.sqrt(SECONDS_PER_YEAR) / gross if gross > 0 else None,
            diversification_ratio=standalone / sigma_rate if sigma_rate > 0 else None,
            diversification_benefit=1.0 - sigma_rate / aligned if aligned > 0 else None,
            skew=skew,
            excess_kurtosis=kurt,
            tails=tails,
            hedge=hedge,
        )

    def _empty_tails(self) -> tuple[TailRisk, ...]:
        return tuple(TailRisk(c) for c in self._confidence)

    def _update_shape(self, state: PortfolioState) -> None:
        """Add the standardised P&L of the last snapshot interval to the shape estimate."""
        if state.previous is None:
            return
        prev_ts, prev_logp, prev_cov = state.previous
        dt = state.ts - prev_ts
        idx = self._idx
        exposure = self._qty * np.exp(prev_logp[idx])
        pnl = float(exposure @ (state.logp[idx] - prev_logp[idx]))
        variance = float(exposure @ prev_cov[self._ii] @ exposure) * dt
        if dt > 0 and math.isfinite(pnl) and math.isfinite(variance) and variance > 0:
            self._shape.update(state.ts, pnl / math.sqrt(variance))
            self._interval.update(state.ts, dt)

    def _shape_estimate(self) -> tuple[float | None, float | None]:
        """Skewness and excess kurtosis of standardised interval P&L, once supported."""
        if self._shape.count < self._min_obs:
            return None, None
        m2 = self._shape.moment(2)
        if not m2 > 0:
            return None, None
        return self._shape.moment(3) / m2**1.5, self._shape.moment(4) / m2**2 - 3.0

    def _horizon_shape(
        self, skew: float | None, kurt: float | None
    ) -> tuple[float | None, float | None]:
        if skew is None or kurt is None:
            return None, None
        n = max(self._horizon_s / self._interval.mean, 1.0)
        return skew / math.sqrt(n), kurt / n


def _tail(
    confidence: float,
    factors: TailFactors | None,
    sigma_h: float,
    stressed_sigma_h: float,
    euler_h: FloatArray,
) -> TailRisk:
    """Tail figures from multipliers; components use ``euler_h = e_i (Sigma e)_i h / sigma_p``."""
    if factors is None:
        return TailRisk(confidence)
    return TailRisk(
        confidence=confidence,
        var=factors.var * sigma_h,
        cvar=factors.es * sigma_h,
        stressed_var=factors.var * stressed_sigma_h,
        component_var=tuple(float(x) for x in factors.var * euler_h),
    )
