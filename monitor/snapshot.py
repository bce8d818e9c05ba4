"""The immutable result of the engine at one event time, and how rules read metrics from it.

Every figure that is not yet supported by ``min_observations`` is ``None`` (scalars) or NaN
(arrays); a snapshot never carries a number computed from too little data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def frozen_array(values: FloatArray) -> FloatArray:
    """A read-only copy, so a snapshot cannot be changed after it is published."""
    out = np.array(values, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


def optional(value: float) -> float | None:
    """None for NaN or infinity, the float otherwise."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class MarketRisk:
    """Universe-wide figures; None until every universe symbol and pair is ready."""

    avg_correlation: float | None = None
    avg_correlation_slow: float | None = None
    absorption_ratio: float | None = None
    absorption_ratio_slow: float | None = None
    absorption_ratio_shift: float | None = None
    effective_bets: float | None = None
    turbulence: float | None = None


@dataclass(frozen=True, slots=True)
class TailRisk:
    """Losses over the risk horizon at one confidence, in base currency (positive = loss).

    Attributes:
        confidence: e.g. 0.99.
        var: value at risk.
        cvar: expected shortfall beyond the VaR.
        stressed_var: VaR with every correlation set to 1.
        component_var: Euler contribution of each position, summing to ``var``.
    """

    confidence: float
    var: float | None = None
    cvar: float | None = None
    stressed_var: float | None = None
    component_var: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class PortfolioRisk:
    """Risk of one configured portfolio.

    Attributes:
        name: portfolio name.
        symbols: position symbols, in config order.
        value: net market value sum(q * p), base currency.
        gross_exposure: sum(|q * p|).
        volatility: annualised P&L volatility divided by gross exposure (a fraction).
        diversification_ratio: sum(|e_i| sigma_i) / sigma_p (Choueifaty & Coignard, 2008).
        diversification_benefit: 1 - VaR / stressed VaR.
        skew, excess_kurtosis: of standardised snapshot-interval P&L (Cornish-Fisher input).
        tails: one entry per configured confidence, ascending.
    """

    name: str
    symbols: tuple[str, ...]
    value: float | None = None
    gross_exposure: float | None = None
    volatility: float | None = None
    diversification_ratio: float | None = None
    diversification_benefit: float | None = None
    skew: float | None = None
    excess_kurtosis: float | None = None
    tails: tuple[TailRisk, ...] = ()

    def tail(self, confidence: float) -> TailRisk | None:
        """The tail figures at ``confidence``, if configured."""
        for tail in self.tails:
            if math.isclose(tail.confidence, confidence):
                return tail
        return None


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """Everything the engine knows at event time ``ts``; arrays are read-only.

    Attributes:
        ts: event time, Unix seconds.
        symbols: tracked symbols; arrays are indexed alike.
        universe: indices of the universe symbols within ``symbols``.
        price: last price per symbol (NaN before the first tick).
        last_tick_ts: event time of each symbol's last tick (NaN before the first).
        volatility, volatility_slow: annualised volatility per symbol at each horizon.
        correlation, correlation_slow: PSD-repaired correlation matrices (NaN where not ready).
        covariance: annualised covariance of log returns, fast horizon.
        repaired: whether the fast correlation matrix needed a PSD repair.
        market: universe-wide figures.
        portfolios: one entry per configured portfolio.
        ticks: ticks accepted so far.
    """

    ts: float
    symbols: tuple[str, ...]
    universe: tuple[int, ...]
    price: FloatArray
    last_tick_ts: FloatArray
    volatility: FloatArray
    volatility_slow: FloatArray
    correlation: FloatArray
    correlation_slow: FloatArray
    covariance: FloatArray
    repaired: bool
    market: MarketRisk
    portfolios: tuple[PortfolioRisk, ...]
    ticks: int

    def index(self, symbol: str) -> int:
        """Position of ``symbol`` in the arrays."""
        return self.symbols.index(symbol)

    def portfolio(self, name: str) -> PortfolioRisk | None:
        """The portfolio called ``name``."""
        return next((p for p in self.portfolios if p.name == name), None)


_MARKET = frozenset(MarketRisk.__slots__)
_SYMBOL = {"price": "price", "volatility": "volatility", "volatility_slow": "volatility_slow"}
_PAIR = {"correlation": "correlation", "correlation_slow": "correlation_slow"}
_PORTFOLIO = frozenset(
    {"portfolio_value", "portfolio_volatility", "diversification_ratio", "diversification_benefit"}
)
_TAIL_PREFIXES = ("stressed_var_", "cvar_", "var_")


def metric_value(
    snap: RiskSnapshot, metric: str, labels: Mapping[str, str], portfolio: str | None = None
) -> float | None:
    """Read the value a rule compares: ``metric`` with ``labels`` (validated by the config).

    Returns None when the figure is not ready or not part of a snapshot.
    """
    if metric in _MARKET:
        value = getattr(snap.market, metric)
        return value if value is None else float(value)
    if metric in _SYMBOL:
        array: FloatArray = getattr(snap, _SYMBOL[metric])
        return optional(float(array[snap.index(labels["symbol"])]))
    if metric in _PAIR:
        matrix: FloatArray = getattr(snap, _PAIR[metric])
        return optional(float(matrix[snap.index(labels["a"]), snap.index(labels["b"])]))
    if portfolio is not None:
        return _portfolio_metric(snap.portfolio(portfolio), metric)
    return None


def _portfolio_metric(risk: PortfolioRisk | None, metric: str) -> float | None:
    if risk is None:
        return None
    if metric in _PORTFOLIO:
        field = metric.removeprefix("portfolio_")
        value: float | None = getattr(risk, field)
        return value
    for prefix in _TAIL_PREFIXES:
        if metric.startswith(prefix):
            confidence = float("0." + metric.removeprefix(prefix))
            tail = risk.tail(confidence)
            if tail is None:
                return None
            figure: float | None = getattr(tail, prefix.rstrip("_"))
            return figure
    return None


def is_portfolio_metric(metric: str) -> bool:
    """Whether ``metric`` is evaluated per portfolio."""
    return metric in _PORTFOLIO or metric.startswith(_TAIL_PREFIXES)
