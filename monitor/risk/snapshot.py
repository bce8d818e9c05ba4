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
class HedgeLeg:
    """One hedge instrument of a book's minimum-variance hedge (see :mod:`monitor.risk.hedge`).

    Attributes:
        symbol: engine symbol of the instrument.
        held: units the book holds now (a portfolio's position; an account's spot, linear and
            inverse positions on the symbol, in units of the underlying).
        quantity: the minimum-variance holding, units (negative = short); None when the hedge
            cannot be computed.
        trade: what to trade now, ``quantity - held`` (negative = sell).
        drift: ``|held - quantity| / |quantity|``; None when the book holds none of it.
    """

    symbol: str
    held: float
    quantity: float | None = None
    trade: float | None = None
    drift: float | None = None


@dataclass(frozen=True, slots=True)
class HedgeTail:
    """Covariance VaR and CVaR of a book before and after its minimum-variance trade.

    Attributes:
        confidence: e.g. 0.99.
        var, cvar: the book as held, with the hedge's multipliers (see :mod:`monitor.risk.hedge`).
        var_hedged, cvar_hedged: the book after the trade.
    """

    confidence: float
    var: float | None = None
    cvar: float | None = None
    var_hedged: float | None = None
    cvar_hedged: float | None = None


@dataclass(frozen=True, slots=True)
class DeltaHedge:
    """What neutralises an option account's delta and vega risk on one underlying.

    Attributes:
        symbol: the underlying's engine symbol.
        delta: the account's net delta, units of the underlying (options, positions and coin
            collateral).
        perp_quantity: the perpetual trade that makes it zero, ``-delta`` (units of the
            underlying: contracts of a linear perpetual of one unit each).
        vega: USD per volatility point (IV 0.60 -> 0.61) of the options on it.
        vol_of_vol: annualised volatility of log IV used (estimated from marks, else
            ``[risk] vol_of_vol``); None without options.
        iv_shock: the relative IV move of a one-sigma vol-of-vol shock over the horizon,
            ``exp(vol_of_vol sqrt(horizon)) - 1`` (0.05: every IV times 1.05).
        vega_cost: the loss of the worse of that shock up or down, prices held, by full
            revaluation (USD, >= 0).
    """

    symbol: str
    delta: float
    perp_quantity: float
    vega: float = 0.0
    vol_of_vol: float | None = None
    iv_shock: float | None = None
    vega_cost: float | None = None


@dataclass(frozen=True, slots=True)
class HedgeRisk:
    """A book's minimum-variance hedge with its ``hedge_with`` instruments.

    Attributes:
        legs: one per hedge instrument, in ``hedge_with`` order.
        tails: VaR and CVaR before and after the trade, per confidence.
        effectiveness: ``1 - sigma_hedged^2 / sigma^2``: the share of the book's current P&L
            variance the trade removes (0..1).
        drift: how stale the held hedge is: ``||(held - quantity) p|| / ||quantity p||`` over
            the legs, USD-weighted (``|held - quantity| / |quantity|`` for one instrument);
            None when the book holds none of the instruments or the hedge is zero.
        condition_index: ``sqrt(lambda_max / lambda_min)`` of the hedge instruments'
            correlation matrix; above :data:`monitor.risk.hedge.MAX_CONDITION_INDEX` the
            hedge is null.
        reason: why the figures are null (missing data, ill-conditioned), else None.
        delta: for accounts with options, the delta and vega to neutralise per underlying.
    """

    legs: tuple[HedgeLeg, ...]
    tails: tuple[HedgeTail, ...] = ()
    effectiveness: float | None = None
    drift: float | None = None
    condition_index: float | None = None
    reason: str | None = None
    delta: tuple[DeltaHedge, ...] = ()

    def tail(self, confidence: float) -> HedgeTail | None:
        """The figures at ``confidence``, if configured."""
        return next((t for t in self.tails if math.isclose(t.confidence, confidence)), None)


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
        hedge: the minimum-variance hedge with ``hedge_with``; None when not configured.
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
    hedge: HedgeRisk | None = None

    def tail(self, confidence: float) -> TailRisk | None:
        """The tail figures at ``confidence``, if configured."""
        for tail in self.tails:
            if math.isclose(tail.confidence, confidence):
                return tail
        return None


@dataclass(frozen=True, slots=True)
class LiquidationDistance:
    """The smallest moves of one symbol alone that liquidate an account.

    Attributes:
        symbol: the engine symbol moved, every other price held.
        down, up: liquidating fractional moves (-0.2 = -20%), None when none within range.
        down_sigma, up_sigma: the same moves as ``|ln(1 + move)|`` over the symbol's horizon
            sigma; None before the covariance is ready or when there is no such move.
    """

    symbol: str
    down: float | None = None
    up: float | None = None
    down_sigma: float | None = None
    up_sigma: float | None = None


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One stress scenario of one account.

    Attributes:
        name: ``grid`` (the worst of the standard grid), ``extended``,
            ``diversification_failure``, ``iv_up`` and ``iv_down`` (books with options: every
            implied volatility times ``1 + [stress] vol_up`` or ``1 - vol_down``, prices held)
            or a configured historical shock.
        pnl: change of the account's equity, USD (negative = loss), in full.
        margin_ratio: the projected margin ratio (None for cash accounts).
        coverage: the share of ``pnl`` that counts towards the account's ``stress_loss``
            (``[stress] extended_coverage`` for the extended moves, 1 otherwise).
    """

    name: str
    pnl: float
    margin_ratio: float | None = None
    coverage: float = 1.0


@dataclass(frozen=True, slots=True)
class Exposure:
    """An account's Greeks on one symbol (USD value; collateral in the coin included).

    Attributes:
        symbol: engine symbol.
        delta: units of the symbol; ``delta_usd`` = delta x price.
        gamma: per USD; vega: USD per volatility point (0.01); theta: USD per day.
        stress_loss: the worst loss of the standard grid and extended moves when only this
            symbol moves, USD (>= 0).
    """

    symbol: str
    delta: float
    delta_usd: float
    gamma: float
    vega: float
    theta: float
    stress_loss: float


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """Margin, liquidation distance, stress and VaR of one account; None where not known.

    Attributes:
        name, margin_model: as configured.
        equity: collateral at full value plus positions, USD.
        margin_balance: collateral after haircuts plus positions, USD.
        maintenance: maintenance margin, USD (None for cash accounts).
        margin_ratio: maintenance / margin balance; the venue liquidates at 1.
        liquidation: per symbol moved alone.
        liquidation_distance_sigma: the nearest liquidation in sigmas of the current covariance:
            the smaller of the move along the covariance's worst direction for the book's
            deltas and the nearest single-symbol move (see :mod:`monitor.risk.account`).
        exposures: Greeks per symbol.
        stress_loss: the worst loss over the scenarios (each P&L times its coverage), capped
            at what the account can lose: its equity, for margined accounts (USD, >= 0).
        stress_loss_uncapped: the same worst loss without the cap.
        stress_loss_ratio: ``stress_loss / equity``: 1 when a scenario takes all of a margined
            account's equity (or it has none left); a cash account's may exceed 1.
        vega: the book's vega, USD per volatility point (IV 0.60 -> 0.61), summed over symbols.
        scenarios: results per scenario.
        tails: VaR and CVaR per confidence: a full-revaluation Monte Carlo for books with
            options (:mod:`monitor.risk.optionvar`), the covariance VaR of the deltas otherwise.
        delta_gamma: delta-gamma Cornish-Fisher VaR and CVaR, per confidence; None where the
            expansion is not monotone (see :mod:`monitor.risk.deltagamma`).
        hedge: the minimum-variance hedge of the book's deltas with ``hedge_with`` (and, for
            books with options, the delta and vega per underlying); None when not configured.
    """

    name: str
    margin_model: str
    equity: float | None = None
    margin_balance: float | None = None
    maintenance: float | None = None
    margin_ratio: float | None = None
    liquidation: tuple[LiquidationDistance, ...] = ()
    liquidation_distance_sigma: float | None = None
    exposures: tuple[Exposure, ...] = ()
    stress_loss: float | None = None
    stress_loss_uncapped: float | None = None
    stress_loss_ratio: float | None = None
    vega: float | None = None
    scenarios: tuple[ScenarioResult, ...] = ()
    tails: tuple[TailRisk, ...] = ()
    delta_gamma: tuple[TailRisk, ...] = ()
    hedge: HedgeRisk | None = None


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
        accounts: one entry per account.
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
    accounts: tuple[AccountRisk, ...] = ()

    def index(self, symbol: str) -> int:
        """Position of ``symbol`` in the arrays."""
        return self.symbols.index(symbol)

    def portfolio(self, name: str) -> PortfolioRisk | None:
        """The portfolio called ``name``."""
        return next((p for p in self.portfolios if p.name == name), None)

    def account(self, name: str) -> AccountRisk | None:
        """The account called ``name``."""
        return next((a for a in self.accounts if a.name == name), None)


_MARKET = frozenset(MarketRisk.__slots__)
_SYMBOL = {"price": "price", "volatility": "volatility", "volatility_slow": "volatility_slow"}
_PAIR = {"correlation": "correlation", "correlation_slow": "correlation_slow"}
_PORTFOLIO = frozenset(
    {"portfolio_value", "portfolio_volatility", "diversification_ratio", "diversification_benefit"}
)
_TAIL_PREFIXES = ("stressed_var_", "cvar_", "var_")
_ACCOUNT = frozenset(
    {"margin_ratio", "liquidation_distance_sigma", "stress_loss", "stress_loss_ratio", "vega"}
)
HEDGE_DRIFT = "hedge_drift"


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
    if metric in _ACCOUNT:
        account = snap.account(labels.get("account", ""))
        return None if account is None else getattr(account, metric)
    if metric == HEDGE_DRIFT:
        return _hedge_drift(snap, labels, portfolio)
    if portfolio is not None:
        return _portfolio_metric(snap.portfolio(portfolio), metric)
    return None


def _hedge_drift(
    snap: RiskSnapshot, labels: Mapping[str, str], portfolio: str | None
) -> float | None:
    """The drift of an account's hedge (``account`` label) or of a portfolio's."""
    book: PortfolioRisk | AccountRisk | None
    if "account" in labels:
        book = snap.account(labels["account"])
    else:
        book = None if portfolio is None else snap.portfolio(portfolio)
    return None if book is None or book.hedge is None else book.hedge.drift


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


def is_account_metric(metric: str) -> bool:
    """Whether ``metric`` is evaluated per account."""
    return metric in _ACCOUNT


def is_hedge_metric(metric: str) -> bool:
    """Whether ``metric`` is evaluated per hedged book (portfolio or account)."""
    return metric == HEDGE_DRIFT


def is_portfolio_metric(metric: str) -> bool:
    """Whether ``metric`` is evaluated per portfolio."""
    return metric in _PORTFOLIO or metric.startswith(_TAIL_PREFIXES)
