"""Full revaluation of one account's book under many price and volatility scenarios at once.

Pure and vectorised: a scenario is one row of prices (USD per unit of every tracked symbol)
and one implied-volatility multiplier; :meth:`Book.value` revalues every row in one pass, which
is what stress grids, the risk matrix and liquidation searches need.

Values in USD (see :mod:`monitor.config.book` for position units):

- collateral: ``amount * price`` (price 1 without a price symbol); towards the margin balance
  only ``(1 - haircut)`` of it counts.
- spot: ``q S``; linear: ``q (S - entry)``; inverse: the coin P&L ``Q (1/entry - 1/S)`` worth
  ``S`` each.
- options: Black-76 on the forward ``F = b S`` (``b`` the basis of the venue's mark, 1 when
  unknown) with the mark IV (or the configured one) times the scenario's multiplier. A linear
  option is worth ``q V``; an inverse one pays ``V / F`` coins, worth ``q V / b`` in USD.

Greeks are of the USD value with respect to the underlying's price ``S``: delta in units of the
underlying, gamma per USD, vega per 1.00 of volatility, theta per year.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.config.book import AccountConfig, BookPosition
from monitor.risk.options import SECONDS_PER_YEAR, Black76Array, black76_array, black76_price

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_YEARS = 60.0 / SECONDS_PER_YEAR
"""An option in its last minute is valued one minute before expiry (finite Greeks); at or past
expiry it is worth its intrinsic value (the horizon of a VaR can reach beyond an expiry)."""


@dataclass(frozen=True, slots=True)
class OptionMark:
    """What the venue's ticker says of one option.

    Attributes:
        iv: mark implied volatility, 0.6 = 60%.
        basis: forward over index price of the ticker (``underlying_price / index_price``).
    """

    iv: float
    basis: float = 1.0


@dataclass(frozen=True, slots=True)
class Valuation:
    """The book under S scenarios; every array has length S, USD.

    Attributes:
        collateral: collateral at full value.
        collateral_margin: collateral after haircuts.
        positions: positions' value (spot value, unrealised P&L, options' value).
        linear_notional: ``|q S|`` of each linear position, shape (S, positions).
        inverse_notional: ``|Q|`` of each inverse position (USD, constant), length positions.
        settlement: USD price of one unit of the settlement currency.
    """

    collateral: FloatArray
    collateral_margin: FloatArray
    positions: FloatArray
    linear_notional: FloatArray
    inverse_notional: FloatArray
    settlement: FloatArray

    @property
    def equity(self) -> FloatArray:
        """Collateral plus positions, USD."""
        out: FloatArray = self.collateral + self.positions
        return out

    @property
    def margin_balance(self) -> FloatArray:
        """Collateral after haircuts plus positions, USD."""
        out: FloatArray = self.collateral_margin + self.positions
        return out


@dataclass(frozen=True, slots=True)
class Greeks:
    """Greeks of the book per tracked symbol (zero where it holds nothing), USD value."""

    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


class Book:
    """One account's collateral and positions, compiled to index arrays.

    Args:
        account: the configured account (validated).
        index: engine symbol -> column of the price rows.
    """

    def __init__(self, account: AccountConfig, index: Mapping[str, int]) -> None:
        self.account = account
        self.n = len(index)
        coll = account.collateral
        self._c_amount = np.array([c.amount for c in coll], dtype=np.float64)
        self._c_keep = np.array([1.0 - c.haircut for c in coll], dtype=np.float64)
        self._c_idx = _indices([c.price_symbol for c in coll], index)
        pos = account.positions
        self._spot = _Linear.of([p for p in pos if p.kind == "spot"], index)
        self._linear = _Linear.of([p for p in pos if p.kind == "linear"], index)
        self._inverse = _Linear.of([p for p in pos if p.kind == "inverse"], index)
        opts = [p for p in pos if p.kind == "option"]
        terms = [p.option_terms() for p in opts]
        self.option_names = tuple(p.instrument for p in opts)
        self._o_idx = _indices([p.underlying for p in opts], index)
        self._o_qty = np.array([p.size for p in opts], dtype=np.float64)
        self._o_strike = np.array([t[0] for t in terms], dtype=np.float64)
        self._o_expiry = np.array([t[1] for t in terms], dtype=np.float64)
        self._o_call = np.array([t[2] for t in terms], dtype=bool)
        self._o_inverse = np.array([p.settlement == "inverse" for p in opts], dtype=bool)
        self._o_iv = np.array([p.iv or 0.0 for p in opts], dtype=np.float64)
        self._settle_idx = _indices([account.settlement_symbol], index)[0]

    def value(
        self,
        prices: FloatArray,
        vol_mult: FloatArray,
        ts: float,
        marks: Mapping[str, OptionMark],
    ) -> Valuation:
        """Revalue under each row of ``prices`` (S x symbols) with IV times ``vol_mult``.

        ``vol_mult`` is one multiplier per row (S), or one per row and option (S x options).
        """
        coll_px = _column(prices, self._c_idx)
        collateral = coll_px @ self._c_amount
        lin_px = prices[:, self._linear.idx]
        inv_px = prices[:, self._inverse.idx]
        inv = self._inverse
        positions = (
            prices[:, self._spot.idx] @ self._spot.qty
            + (lin_px - self._linear.entry) @ self._linear.qty
            + (inv_px / inv.entry - 1.0) @ inv.qty  # Q (1/entry - 1/S) coins at S each
        )
        if len(self.option_names):
            positions = positions + self._option_values(prices, vol_mult, ts, marks).sum(axis=1)
        return Valuation(
            collateral=collateral,
            collateral_margin=coll_px @ (self._c_amount * self._c_keep),
            positions=positions,
            linear_notional=np.abs(lin_px * self._linear.qty),
            inverse_notional=np.abs(self._inverse.qty),
            settlement=_column(prices, np.array([self._settle_idx]))[:, 0],
        )

    def greeks(self, prices: FloatArray, ts: float, marks: Mapping[str, OptionMark]) -> Greeks:
        """Greeks at one row of prices (length symbols)."""
        delta, gamma, vega, theta = (np.zeros(self.n) for _ in range(4))
        np.add.at(delta, self._spot.idx, self._spot.qty)
        np.add.at(delta, self._linear.idx, self._linear.qty)
        np.add.at(delta, self._inverse.idx, self._inverse.qty / self._inverse.entry)
        held = self._c_idx >= 0
        np.add.at(delta, self._c_idx[held], self._c_amount[held])
        if len(self.option_names):
            _, b76, basis = self._options(prices[None, :], np.ones(1), ts, marks)
            # d/dS of q V(bS) (linear) or q V(bS) / b (inverse)
            scale = self._o_qty * np.where(self._o_inverse, 1.0, basis)
            np.add.at(delta, self._o_idx, scale * b76.delta[0])
            np.add.at(gamma, self._o_idx, scale * basis * b76.gamma[0])
            np.add.at(vega, self._o_idx, scale / basis * b76.vega[0])
            np.add.at(theta, self._o_idx, scale / basis * b76.theta[0])
        return Greeks(delta, gamma, vega, theta)

    def _options(
        self, prices: FloatArray, vol_mult: FloatArray, ts: float, marks: Mapping[str, OptionMark]
    ) -> tuple[FloatArray, Black76Array, FloatArray]:
        """USD value per option (S x options), the Black-76 arrays, and the basis per option."""
        forward, years, vol, basis = self._inputs(prices, vol_mult, ts, marks)
        b76 = black76_array(forward, self._o_strike, years, vol, self._o_call)
        usd = self._o_qty * b76.price / np.where(self._o_inverse, basis, 1.0)
        return usd, b76, basis

    def _option_values(
        self, prices: FloatArray, vol_mult: FloatArray, ts: float, marks: Mapping[str, OptionMark]
    ) -> FloatArray:
        """USD value per option (S x options), without the Greeks."""
        forward, years, vol, basis = self._inputs(prices, vol_mult, ts, marks)
        price = black76_price(forward, self._o_strike, years, vol, self._o_call)
        out: FloatArray = self._o_qty * price / np.where(self._o_inverse, basis, 1.0)
        return out

    def _inputs(
        self, prices: FloatArray, vol_mult: FloatArray, ts: float, marks: Mapping[str, OptionMark]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Forward, years to expiry, volatility (S x options) and basis per option."""
        iv = self._o_iv.copy()
        basis = np.ones(len(self.option_names))
        for i, name in enumerate(self.option_names):
            mark = marks.get(name)
            if mark is not None:
                iv[i], basis[i] = mark.iv, mark.basis
        left = (self._o_expiry - ts) / SECONDS_PER_YEAR
        years = np.where(left > 0.0, np.maximum(left, MIN_YEARS), 0.0)
        mult = vol_mult[:, None] if vol_mult.ndim == 1 else vol_mult
        return prices[:, self._o_idx] * basis, years, iv * mult, basis

    @property
    def option_index(self) -> IntArray:
        """Column of each option's underlying in the price rows, in option order."""
        return self._o_idx

    def settlement_index(self) -> int:
        """Column of the settlement currency's price, -1 when it is worth 1 USD."""
        return int(self._settle_idx)


@dataclass(frozen=True, slots=True)
class _Linear:
    """Index, size and entry price of positions of one kind."""

    idx: IntArray
    qty: FloatArray
    entry: FloatArray

    @classmethod
    def of(cls, pos: list[BookPosition], index: Mapping[str, int]) -> _Linear:
        return cls(
            idx=_indices([p.underlying for p in pos], index),
            qty=np.array([p.size for p in pos], dtype=np.float64),
            entry=np.array([p.entry_price or 0.0 for p in pos], dtype=np.float64),
        )


def _indices(symbols: list[str | None], index: Mapping[str, int]) -> IntArray:
    """Column of each symbol, -1 for None (a price of exactly 1 USD)."""
    return np.array([-1 if s is None else index[s] for s in symbols], dtype=np.int64)


def _column(prices: FloatArray, idx: IntArray) -> FloatArray:
    """Prices of columns ``idx`` per row, 1.0 where the index is -1."""
    out: FloatArray = np.where(idx >= 0, prices[:, np.maximum(idx, 0)], 1.0)
    return out
