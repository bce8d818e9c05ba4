"""An account's hedge: minimum-variance on its current deltas, and for option books the perp
that neutralises delta and the vega a one-sigma vol-of-vol shock would cost, per underlying.

- **Minimum-variance hedge** (:mod:`monitor.risk.hedge`) of the book linearised at the
  snapshot: exposures ``delta x price`` on the account's risk symbols (options, positions and
  coin collateral). The units held of a hedge instrument are the account's spot, linear and
  inverse positions on it (an inverse contract's delta is ``Q / entry`` coins); options and
  collateral are the book being hedged.
- **Delta-neutral perp** per risk symbol: ``-delta`` units of the underlying (contracts of a
  linear perpetual of one unit each; for an inverse perpetual of ``C`` USD per contract that is
  ``-delta x price / C`` contracts).
- **Vega**: USD per volatility point of the options on the underlying, the one-sigma relative
  IV move over the horizon ``exp(w) - 1`` with ``w = vol-of-vol x sqrt(horizon / 1 year)``
  (the vol-of-vol the option VaR uses: estimated from the feed's marks, else
  ``[risk] vol_of_vol``), and its cost: the worse of the book's P&L with every IV on that
  underlying times ``exp(w)`` or ``exp(-w)``, prices held, by full revaluation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from monitor.config.book import AccountConfig
from monitor.config.schema import RiskConfig
from monitor.risk.book import Book, Greeks, OptionMark
from monitor.risk.hedge import NO_DATA, HedgeSet
from monitor.risk.options import SECONDS_PER_YEAR
from monitor.risk.optionvar import OptionVar
from monitor.risk.snapshot import DeltaHedge, HedgeLeg, HedgeRisk

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class AccountHedge:
    """One account's hedge, compiled against the engine's symbols.

    Args:
        account: the account, with ``hedge_with`` set.
        symbols: the engine's tracked symbols, in order.
        risk_idx: engine columns of the account's risk symbols.
        risk: horizon, confidence levels, distribution and vol-of-vol.
        book: the account's book, compiled against the engine's symbols.
        option_var: the account's option VaR (its vol-of-vol), None without options.
    """

    def __init__(
        self,
        account: AccountConfig,
        symbols: Sequence[str],
        risk_idx: IntArray,
        risk: RiskConfig,
        book: Book,
        option_var: OptionVar | None,
    ) -> None:
        index = {s: i for i, s in enumerate(symbols)}
        hedge_with = account.hedge_with or ()
        self._set = HedgeSet(hedge_with, index, risk_idx.tolist(), risk)
        self._held = np.array([_held(account, s) for s in hedge_with], dtype=np.float64)
        self._risk_idx = risk_idx
        self._symbols = tuple(symbols)
        self._book = book
        self._option_var = option_var
        self._horizon_years = float(risk.horizon) / SECONDS_PER_YEAR

    def empty(self) -> HedgeRisk:
        """The hedge when the account itself cannot be valued (a price is missing)."""
        legs = tuple(
            HedgeLeg(s, float(h)) for s, h in zip(self._set.symbols, self._held, strict=True)
        )
        return HedgeRisk(legs=legs, reason=NO_DATA)

    def risk(
        self,
        ts: float,
        price: FloatArray,
        cov_rate: FloatArray,
        ready: BoolArray,
        greeks: Greeks,
        marks: Mapping[str, OptionMark],
        iv_variance: Mapping[str, float],
    ) -> HedgeRisk:
        """The hedge at one snapshot (see the module docstring)."""
        r = self._risk_idx
        exposure = greeks.delta[r] * price[r]
        hedge = self._set.risk(price, cov_rate, ready, exposure, self._held)
        if self._option_var is None:
            return hedge
        return dataclasses.replace(hedge, delta=self._deltas(ts, price, greeks, marks, iv_variance))

    def _deltas(
        self,
        ts: float,
        price: FloatArray,
        greeks: Greeks,
        marks: Mapping[str, OptionMark],
        iv_variance: Mapping[str, float],
    ) -> tuple[DeltaHedge, ...]:
        assert self._option_var is not None
        vol_of_vol = self._option_var.vol_of_vol(iv_variance)
        costs = self._vega_costs(ts, price, marks, vol_of_vol)
        out = []
        for j, u in enumerate(self._risk_idx.tolist()):
            delta = float(greeks.delta[u])
            has_options = bool(np.any(self._book.option_index == u))
            vov = float(vol_of_vol[j]) if has_options else None
            out.append(
                DeltaHedge(
                    symbol=self._symbols[u],
                    delta=delta,
                    perp_quantity=-delta if delta != 0.0 else 0.0,
                    vega=float(greeks.vega[u]) * 0.01,
                    vol_of_vol=vov,
                    iv_shock=None if vov is None else math.expm1(self._shock(vov)),
                    vega_cost=costs.get(u),
                )
            )
        return tuple(out)

    def _shock(self, vol_of_vol: float) -> float:
        """One sigma of log IV over the horizon."""
        return vol_of_vol * math.sqrt(self._horizon_years)

    def _vega_costs(
        self,
        ts: float,
        price: FloatArray,
        marks: Mapping[str, OptionMark],
        vol_of_vol: FloatArray,
    ) -> dict[int, float]:
        """Per underlying with options: the loss of the worse one-sigma IV shock up or down."""
        options = self._book.option_index
        underlyings = [u for u in self._risk_idx.tolist() if np.any(options == u)]
        if not underlyings:
            return {}
        position = {u: j for j, u in enumerate(self._risk_idx.tolist())}
        mult = np.ones((2 * len(underlyings) + 1, len(options)))
        for k, u in enumerate(underlyings):
            w = self._shock(float(vol_of_vol[position[u]]))
            mult[2 * k + 1, options == u] = math.exp(w)
            mult[2 * k + 2, options == u] = math.exp(-w)
        rows = np.repeat(price[None, :], len(mult), axis=0)
        equity = self._book.value(rows, mult, ts, marks).equity
        pnl = equity[1:] - equity[0]
        return {
            u: max(0.0, -float(min(pnl[2 * k], pnl[2 * k + 1]))) for k, u in enumerate(underlyings)
        }


def _held(account: AccountConfig, symbol: str) -> float:
    """Units of ``symbol`` the account's spot, linear and inverse positions hold."""
    units = 0.0
    for p in account.positions:
        if p.underlying != symbol or p.kind == "option":
            continue
        if p.kind == "inverse":
            assert p.entry_price is not None  # validated: inverse positions have one
            units += p.size / p.entry_price
        else:
            units += p.size
    return units
