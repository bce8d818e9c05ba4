"""Margin, distance to liquidation, stress and VaR of one account, from one snapshot's prices.

Everything is a full revaluation of the :class:`~monitor.risk.book.Book` (USD) under scenario rows:

- **Maintenance** per margin model: Binance USD-M and Bybit tiers (``|notional| * rate -
  amount`` per position; Bybit inverse notional is the contracts' USD value), Deribit portfolio
  margin (``0.8 x`` the risk-matrix margin of the 27 standard and extended scenarios around each
  row, plus the roll shock, in the settlement currency, see :mod:`monitor.risk.margin`), none for
  ``cash`` accounts. Margin ratio = maintenance / margin balance; the venue liquidates at 1.
  Simplification: the risk matrix shifts every option's IV by the same relative amount, without
  Deribit's per-expiry ``(30 / days) ** vega_power`` scaling.
- **Liquidation distance** of one symbol: the smallest moves down and up of that symbol alone
  (every other price held) at which maintenance >= margin balance, found by a scan and
  bisection; in sigmas, ``|ln(1 + move)|`` over the symbol's horizon sigma. The account's
  ``liquidation_distance_sigma`` is the smaller of those and of the move along the worst
  direction of the current covariance for the book's USD deltas ``e``: log returns
  ``-t Sigma_h e / sqrt(e' Sigma_h e)`` have Mahalanobis length ``t``, so ``t`` sigmas. For one
  symbol both agree. Searched up to 20 sigmas; beyond that it is infinite.
- **Stress**: every risk symbol (position underlyings and non-stablecoin collateral) moving by
  the same percentage over the -16%..+16% grid with IV up, unchanged and down, the extended
  moves with IV up, the diversification failure (each symbol ``k_sigma`` of its own horizon
  sigmas, all the same way, IV up), for books with options every IV up and down with prices
  held (``iv_up``, ``iv_down``), and configured historical shocks; the projected margin ratio
  of each. ``stress_loss`` is the worst loss over all of them, the extended moves counting
  ``[stress] extended_coverage`` of their loss (SPAN's convention for its extreme moves: the
  -66% move on a linear book is a statement about leverage, not a likely loss), capped at the
  equity of a margined account; ``stress_loss_ratio`` is that over the equity
  (:func:`monitor.risk.stress.summarise`).
- **VaR**: books with options: a full-revaluation Monte Carlo of prices, implied volatilities
  and time decay over the horizon (:mod:`monitor.risk.optionvar`). Linear books: the covariance VaR
  of the delta-equivalent exposures ``delta x price`` with the configured distribution (normal
  when it is Cornish-Fisher, whose shape is estimated for portfolios only). The delta-gamma VaR
  (first three cumulants of ``delta' dS + 1/2 dS' Gamma dS`` into Cornish-Fisher) is a fast
  estimate beside it, null where the expansion is not monotone (:mod:`monitor.risk.deltagamma`).
- **Vega**: USD per volatility point (an absolute 0.01 of IV), summed over the symbols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.config.book import AccountConfig, StressConfig
from monitor.config.schema import RiskConfig
from monitor.risk.account_hedge import AccountHedge
from monitor.risk.book import Book, Greeks, OptionMark, Valuation
from monitor.risk.deltagamma import delta_gamma_tails
from monitor.risk.liquidation import first_crossing, liquidation_distance_sigma
from monitor.risk.margin import (
    DERIBIT_BTC,
    Bracket,
    brackets_from_table,
    portfolio_maintenance,
    roll_shock,
    standard_scenarios,
    tiered_maintenance,
)
from monitor.risk.options import SECONDS_PER_YEAR
from monitor.risk.optionvar import OptionVar
from monitor.risk.snapshot import (
    AccountRisk,
    Exposure,
    HedgeRisk,
    LiquidationDistance,
    ScenarioResult,
    TailRisk,
)
from monitor.risk.stress import EXTENDED_MOVES, GRID_MOVES, summarise
from monitor.risk.tails import tail_factors

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_SIGMAS = 20.0
SCAN_POINTS = 40
MOVE_TOL = 1e-7


@dataclass(frozen=True, slots=True)
class MarketState:
    """What one snapshot offers an account.

    Attributes:
        ts: event time.
        price: last price per tracked symbol.
        cov_rate: repaired covariance of log returns per second (NaN where not ready).
        ready: symbols whose covariance figures are ready.
        marks: option marks by instrument name.
        iv_variance: annualised variance of log mark IV by instrument, where estimated.
    """

    ts: float
    price: FloatArray
    cov_rate: FloatArray
    ready: BoolArray
    marks: Mapping[str, OptionMark]
    iv_variance: Mapping[str, float] = field(default_factory=dict)


class AccountModel:
    """One account compiled against the engine's symbols.

    Args:
        account: validated account.
        symbols: the engine's tracked symbols, in order.
        risk: horizon, confidence levels and distribution.
        stress: scenario settings.
    """

    def __init__(
        self,
        account: AccountConfig,
        symbols: Sequence[str],
        risk: RiskConfig,
        stress: StressConfig,
    ) -> None:
        index = {s: i for i, s in enumerate(symbols)}
        self.name = account.name
        self.model = account.margin
        self.symbols = tuple(symbols)
        self.book = Book(account, index)
        self._needed = np.array(sorted({index[s] for s in account.symbols()}), dtype=np.int64)
        risky = [p.underlying for p in account.positions]
        risky += [c.price_symbol for c in account.collateral if c.price_symbol and not c.stablecoin]
        self.risk_idx = np.array([index[s] for s in dict.fromkeys(risky)], dtype=np.int64)
        self._risk = risk
        self._stress = stress
        self._option_var = (
            OptionVar(account, symbols, self.risk_idx, risk) if self.book.option_names else None
        )
        lin = [p for p in account.positions if p.kind == "linear"]
        inv = [p for p in account.positions if p.kind == "inverse"]
        self._lin_brackets = [_brackets(p.brackets or account.brackets) for p in lin]
        self._inv_brackets = [_brackets(p.brackets or account.brackets) for p in inv]
        futures = lin + inv
        self._roll = [(p.kind == "inverse", p.size, p.expiry_ts()) for p in futures]
        self._roll_idx = np.array([index[p.underlying] for p in futures], dtype=np.int64)
        first = account.positions[0].underlying if account.positions else None
        self._pm_idx = -1 if first is None else index[first]
        scen = standard_scenarios(DERIBIT_BTC)
        up = DERIBIT_BTC.volatility_range_up
        self._pm_moves = np.array([m for m, _ in scen] + list(DERIBIT_BTC.extended_moves))
        self._pm_shifts = np.array([s for _, s in scen] + [up] * len(DERIBIT_BTC.extended_moves))
        self._pm_base = scen.index((0.0, 0.0))
        self._pm_standard = len(scen)
        self._hedge = (
            AccountHedge(account, symbols, self.risk_idx, risk, self.book, self._option_var)
            if account.hedge_with
            else None
        )

    def risk(self, market: MarketState) -> AccountRisk:
        """The account's figures at ``market``; None where a price or the covariance is missing."""
        if not np.isfinite(market.price[self._needed]).all():
            empty = None if self._hedge is None else self._hedge.empty()
            return AccountRisk(self.name, self.model, hedge=empty)
        base = market.price[None, :]
        val = self.book.value(base, np.ones(1), market.ts, market.marks)
        mm = self.maintenance(base, np.ones(1), market, val)
        margin = self.model != "cash"
        ratio = float(_ratio(mm, val.margin_balance)[0]) if margin else None
        sigmas = self._sigmas(market)
        greeks = self.book.greeks(market.price, market.ts, market.marks)
        liquidated = bool(val.margin_balance[0] - mm[0] <= 0.0)
        liquidation = self._liquidation(market, sigmas, liquidated) if margin else ()
        scenarios = self._scenarios(market, val, sigmas)
        stress = summarise([s.pnl * s.coverage for s in scenarios], float(val.equity[0]), margin)
        exposures = self._exposures(market, greeks, val)
        return AccountRisk(
            name=self.name,
            margin_model=self.model,
            equity=float(val.equity[0]),
            margin_balance=float(val.margin_balance[0]),
            maintenance=float(mm[0]) if margin else None,
            margin_ratio=ratio,
            liquidation=liquidation,
            liquidation_distance_sigma=(
                self._distance_sigma(market, liquidation, sigmas, greeks.delta) if margin else None
            ),
            exposures=exposures,
            stress_loss=stress.loss,
            stress_loss_uncapped=stress.uncapped,
            stress_loss_ratio=stress.ratio,
            vega=float(sum(e.vega for e in exposures)),
            scenarios=scenarios,
            tails=self._tails(market, greeks.delta, sigmas, float(val.equity[0])),
            delta_gamma=self._delta_gamma(market, greeks.delta, greeks.gamma, sigmas),
            hedge=self._hedge_risk(market, greeks),
        )

    def _hedge_risk(self, market: MarketState, greeks: Greeks) -> HedgeRisk | None:
        """The hedge with ``hedge_with`` (:mod:`monitor.risk.account_hedge`), if configured."""
        if self._hedge is None:
            return None
        m = market
        return self._hedge.risk(m.ts, m.price, m.cov_rate, m.ready, greeks, m.marks, m.iv_variance)

    # --- maintenance ---------------------------------------------------------------------

    def maintenance(
        self, prices: FloatArray, vol_mult: FloatArray, market: MarketState, val: Valuation
    ) -> FloatArray:
        """Maintenance margin per scenario row, USD."""
        rows = prices.shape[0]
        if self.model == "cash":
            return np.zeros(rows)
        if self.model == "deribit-pm":
            return self._portfolio_margin(prices, vol_mult, market)
        mm = np.zeros(rows)
        for j, brackets in enumerate(self._lin_brackets):
            mm += tiered_maintenance(val.linear_notional[:, j], brackets)
        for k, brackets in enumerate(self._inv_brackets):
            mm += tiered_maintenance(val.inverse_notional[k : k + 1], brackets)[0]
        return mm

    def _portfolio_margin(
        self, prices: FloatArray, vol_mult: FloatArray, market: MarketState
    ) -> FloatArray:
        """Deribit-style maintenance of each row, in the settlement currency, times its price."""
        rows, n_scen = prices.shape[0], len(self._pm_moves)
        if self._pm_idx < 0:
            return np.zeros(rows)
        grid = np.repeat(prices, n_scen, axis=0)
        grid[:, self._pm_idx] *= 1.0 + np.tile(self._pm_moves, rows)
        mult = np.repeat(vol_mult, n_scen) * (1.0 + np.tile(self._pm_shifts, rows))
        val = self.book.value(grid, mult, market.ts, market.marks)
        settle_value = (val.positions / val.settlement).reshape(rows, n_scen)
        pnl = settle_value - settle_value[:, self._pm_base : self._pm_base + 1]
        settle = val.settlement.reshape(rows, n_scen)[:, self._pm_base]
        coin = portfolio_maintenance(
            pnl[:, : self._pm_standard],
            pnl[:, self._pm_standard :],
            prices[:, self._pm_idx],
            self._roll_shock(prices, settle, market.ts),
        )
        out: FloatArray = coin * settle
        return out

    def _roll_shock(self, prices: FloatArray, settle: FloatArray, ts: float) -> FloatArray:
        """Roll shock of the futures per row, deltas in the settlement currency."""
        shock = np.zeros(prices.shape[0])
        for (inverse, size, expiry), idx in zip(self._roll, self._roll_idx, strict=True):
            usd = np.full(prices.shape[0], size) if inverse else size * prices[:, idx]
            years = 0.0 if expiry is None else max(expiry - ts, 0.0) / SECONDS_PER_YEAR
            shock += roll_shock([(1.0, years)]) * np.abs(usd / settle)
        return shock

    # --- liquidation -----------------------------------------------------------------------

    def _excess(self, rows: FloatArray, market: MarketState) -> FloatArray:
        """Margin balance minus maintenance per row (<= 0: liquidated)."""
        ones = np.ones(rows.shape[0])
        val = self.book.value(rows, ones, market.ts, market.marks)
        out: FloatArray = val.margin_balance - self.maintenance(rows, ones, market, val)
        return out

    def _crossing(self, moved: _Rows, end: float, market: MarketState) -> float | None:
        def liquidated(x: float) -> bool:
            return bool(self._excess(moved(np.array([x])), market)[0] <= 0.0)

        def scan(xs: FloatArray) -> BoolArray:
            return np.asarray(self._excess(moved(xs), market) <= 0.0)

        tol = MOVE_TOL * max(abs(end), 1.0)
        return first_crossing(liquidated, end, SCAN_POINTS, tol, scan=scan)

    def _liquidation(
        self, market: MarketState, sigmas: FloatArray | None, liquidated: bool
    ) -> tuple[LiquidationDistance, ...]:
        """Per risk symbol; ``liquidated``: the account already is, at every move (0)."""
        out = []
        for j, u in enumerate(self.risk_idx):
            moved = _single(market.price, int(u))
            down = 0.0 if liquidated else self._crossing(moved, -0.99, market)
            up = 0.0 if liquidated else self._crossing(moved, 3.0, market)
            sd = None if sigmas is None else float(sigmas[j])
            out.append(
                LiquidationDistance(
                    symbol=self.symbols[int(u)],
                    down=down,
                    up=up,
                    down_sigma=_in_sigmas(down, sd),
                    up_sigma=_in_sigmas(up, sd),
                )
            )
        return tuple(out)

    def _distance_sigma(
        self,
        market: MarketState,
        liquidation: tuple[LiquidationDistance, ...],
        sigmas: FloatArray | None,
        delta: FloatArray,
    ) -> float | None:
        if sigmas is None:
            return None
        single = [d for x in liquidation for d in (x.down_sigma, x.up_sigma) if d is not None]
        best = min(single, default=math.inf)
        cov_h = self._cov_h(market)
        e = delta[self.risk_idx] * market.price[self.risk_idx]
        sigma_p = math.sqrt(max(float(e @ cov_h @ e), 0.0))
        if sigma_p > 0.0:
            direction = -(cov_h @ e) / sigma_p
            joint = self._crossing(
                _along(market.price, self.risk_idx, direction), MAX_SIGMAS, market
            )
            if joint is not None:
                best = min(best, joint)
        return best

    # --- stress ----------------------------------------------------------------------------

    def _scenarios(
        self, market: MarketState, val: Valuation, sigmas: FloatArray | None
    ) -> tuple[ScenarioResult, ...]:
        st = self._stress
        up, down = 1.0 + st.vol_up, 1.0 - st.vol_down
        groups: list[tuple[str, FloatArray, FloatArray]] = []
        grid = [(m, v) for m in GRID_MOVES for v in (up, 1.0, down)]
        groups.append(("grid", *self._uniform(market, [g[0] for g in grid], [g[1] for g in grid])))
        groups.append(("extended", *self._uniform(market, EXTENDED_MOVES, [up] * 4)))
        if len(self.book.option_names):
            groups.append(("iv_up", market.price[None, :], np.array([up])))
            groups.append(("iv_down", market.price[None, :], np.array([down])))
        if sigmas is not None:
            rows = np.repeat(market.price[None, :], 2, axis=0)
            shift = np.outer([-1.0, 1.0], st.k_sigma * sigmas)
            rows[:, self.risk_idx] *= np.exp(shift)
            groups.append(("diversification_failure", rows, np.full(2, up)))
        index = {s: i for i, s in enumerate(self.symbols)}
        for shock in st.shocks:
            row = market.price.copy()
            for symbol, move in shock.moves.items():
                row[index[symbol]] *= 1.0 + move
            groups.append((shock.name, row[None, :], np.array([up if shock.vol_up else 1.0])))
        return tuple(
            self._scenario(
                name, r, m, market, val, st.extended_coverage if name == "extended" else 1.0
            )
            for name, r, m in groups
        )

    def _uniform(
        self, market: MarketState, moves: Sequence[float], mults: Sequence[float], only: int = -1
    ) -> tuple[FloatArray, FloatArray]:
        """Rows moving every risk symbol (or only column ``only``) by each move."""
        rows = np.repeat(market.price[None, :], len(moves), axis=0)
        cols = self.risk_idx if only < 0 else np.array([only])
        rows[:, cols] *= 1.0 + np.asarray(moves)[:, None]
        return rows, np.asarray(mults, dtype=np.float64)

    def _scenario(
        self,
        name: str,
        rows: FloatArray,
        mults: FloatArray,
        market: MarketState,
        val: Valuation,
        coverage: float,
    ) -> ScenarioResult:
        shocked = self.book.value(rows, mults, market.ts, market.marks)
        pnl = shocked.equity - val.equity[0]
        ratio = None
        if self.model != "cash":
            mm = self.maintenance(rows, mults, market, shocked)
            ratio = float(_ratio(mm, shocked.margin_balance).max())
        return ScenarioResult(name, float(pnl.min()), ratio, coverage)

    def _exposures(
        self, market: MarketState, greeks: Greeks, val: Valuation
    ) -> tuple[Exposure, ...]:
        st = self._stress
        up, down = 1.0 + st.vol_up, 1.0 - st.vol_down
        moves = [m for m in GRID_MOVES for _ in range(3)] + list(EXTENDED_MOVES)
        mults = [up, 1.0, down] * len(GRID_MOVES) + [up] * len(EXTENDED_MOVES)
        out = []
        weight = np.ones(len(moves))
        weight[len(GRID_MOVES) * 3 :] = st.extended_coverage
        for u in self.risk_idx:
            rows, mult = self._uniform(market, moves, mults, only=int(u))
            pnl = self.book.value(rows, mult, market.ts, market.marks).equity - val.equity[0]
            pnl = pnl * weight
            price = float(market.price[u])
            out.append(
                Exposure(
                    symbol=self.symbols[int(u)],
                    delta=float(greeks.delta[u]),
                    delta_usd=float(greeks.delta[u]) * price,
                    gamma=float(greeks.gamma[u]),
                    vega=float(greeks.vega[u]) * 0.01,
                    theta=float(greeks.theta[u]) / 365.0,
                    stress_loss=max(0.0, -float(pnl.min())),
                )
            )
        return tuple(out)

    # --- VaR -------------------------------------------------------------------------------

    def _sigmas(self, market: MarketState) -> FloatArray | None:
        """Horizon sigma of each risk symbol's log return, None until all are ready."""
        r = self.risk_idx
        if len(r) == 0 or not market.ready[r].all():
            return None
        sd: FloatArray = np.sqrt(np.diag(market.cov_rate)[r] * self._risk.horizon)
        return sd if np.isfinite(sd).all() else None

    def _cov_h(self, market: MarketState) -> FloatArray:
        out: FloatArray = market.cov_rate[np.ix_(self.risk_idx, self.risk_idx)] * self._risk.horizon
        return out

    def _tails(
        self, market: MarketState, delta: FloatArray, sigmas: FloatArray | None, equity: float
    ) -> tuple[TailRisk, ...]:
        levels = self._risk.confidence
        if sigmas is None:
            return tuple(TailRisk(c) for c in levels)
        cov_h = self._cov_h(market)
        if self._option_var is not None:
            return self._option_var.tails(
                market.ts, market.price, cov_h, equity, market.marks, market.iv_variance
            )
        e = delta[self.risk_idx] * market.price[self.risk_idx]
        sigma = math.sqrt(max(float(e @ cov_h @ e), 0.0))
        euler = e * (cov_h @ e) / sigma if sigma > 0 else np.zeros_like(e)
        dist = "normal" if self._risk.distribution == "cornish-fisher" else self._risk.distribution
        out = []
        for c in levels:
            f = tail_factors(dist, c, self._risk.dof)
            assert f is not None  # normal and Student-t need no shape
            out.append(
                TailRisk(
                    confidence=c,
                    var=f.var * sigma,
                    cvar=f.es * sigma,
                    stressed_var=f.var * abs(float(e @ sigmas)),
                    component_var=tuple(float(x) for x in f.var * euler),
                )
            )
        return tuple(out)

    def _delta_gamma(
        self, market: MarketState, delta: FloatArray, gamma: FloatArray, sigmas: FloatArray | None
    ) -> tuple[TailRisk, ...]:
        levels = self._risk.confidence
        if sigmas is None:
            return tuple(TailRisk(c) for c in levels)
        r = self.risk_idx
        price = market.price[r]
        cov_ds = self._cov_h(market) * np.outer(price, price)
        tails = delta_gamma_tails(delta[r], np.diag(gamma[r]), cov_ds, levels)
        if tails is None:
            return tuple(TailRisk(c) for c in levels)
        return tuple(TailRisk(confidence=t.confidence, var=t.var, cvar=t.es) for t in tails)


class _Rows:
    """Price rows as a function of a scalar per row (a move, or a number of sigmas)."""

    def __init__(self, base: FloatArray, cols: IntArray, log_direction: FloatArray | None) -> None:
        self._base, self._cols, self._dir = base, cols, log_direction

    def __call__(self, xs: FloatArray) -> FloatArray:
        rows = np.repeat(self._base[None, :], len(xs), axis=0)
        if self._dir is None:
            rows[:, self._cols] *= 1.0 + xs[:, None]
        else:
            rows[:, self._cols] *= np.exp(np.outer(xs, self._dir))
        return rows


def _single(price: FloatArray, col: int) -> _Rows:
    """Rows moving one column by a fraction."""
    return _Rows(price, np.array([col]), None)


def _along(price: FloatArray, cols: IntArray, direction: FloatArray) -> _Rows:
    """Rows moving ``cols`` by ``t * direction`` in log terms."""
    return _Rows(price, cols, direction)


def _ratio(maintenance: FloatArray, balance: FloatArray) -> FloatArray:
    """:func:`monitor.risk.margin.margin_ratio` per row."""
    safe = np.where(balance > 0.0, balance, 1.0)
    out: FloatArray = np.where(
        maintenance <= 0.0, 0.0, np.where(balance > 0.0, maintenance / safe, math.inf)
    )
    return out


def _in_sigmas(move: float | None, sigma: float | None) -> float | None:
    if move is None or sigma is None or not sigma > 0.0:
        return None
    return liquidation_distance_sigma(move, sigma)


def _brackets(rows: Sequence[Sequence[float]]) -> tuple[Bracket, ...]:
    return brackets_from_table(rows) if rows else (Bracket(0.0, math.inf, 0.0, 0.0),)
