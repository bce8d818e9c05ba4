"""Maintenance margin per venue model and margin ratios.

The distance to liquidation, searched over these models, is in :mod:`monitor.risk.liquidation`.

Pure functions: amounts in, amounts out. Nothing here fetches brackets, positions or prices, and
nothing here prices an instrument: the Deribit-style risk matrix takes a repricing function.

- Binance USD-M: tiered brackets, ``MM = |notional| * mmr - cum`` of the tier holding the notional,
  with ``cum_i = cum_{i-1} + floor_i (mmr_i - mmr_{i-1})`` so that MM is continuous at each floor.
  Margin balance = wallet + unrealised PnL; margin ratio = MM / margin balance, liquidation at 1.
  Portfolio-margin accounts report the inverse, ``uniMMR = adjusted equity / MM``.
- Bybit unified account: ``MM rate = total MM / (margin balance - haircut loss + order loss)``
  (Bybit's glossary, where order loss is defined as ``min(0, ...)``, i.e. never positive); the
  portfolio-margin mode puts equity in place of margin balance. Liquidation at 100%.
- Deribit portfolio margin for one settlement currency (see :func:`deribit_portfolio_margin`).

What the Deribit model here was checked against: the ``private/pme/simulate`` response example in
Deribit's API reference (model parameters, per-instrument and aggregated risk vectors, roll shock,
risk-matrix margin and maintenance of a BTC-PERPETUAL / BTC-28JUN24 book) and Deribit's
"Portfolio Margin" support article (9 moves over +/-price_range, vol up / same / down, an extended
table of large moves under vol up only, "a fraction of simulated P&L" and "a dampener").
What could not be checked is listed where it is used: the extended dampener's formula and unit,
the term part of the roll shock, the delta shock and the pnl offset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

Reprice = Callable[[float, float], float]
"""``reprice(spot_move, vol_shift) -> book value in coin`` at one scenario.

``spot_move`` is a fractional move of the underlying (-0.16 = -16%). ``vol_shift`` is the relative
volatility range of the scenario: ``+volatility_range_up``, ``0`` or ``-volatility_range_down``.
The repricer applies Deribit's per-expiry scaling (``(30 / days) ** vega_power``, the short or long
term power, and the ``min_volatility_for_shock_up`` floor), since only it knows each expiry.
"""


# --- Binance USD-M tiered brackets -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bracket:
    """One Binance USD-M maintenance tier, ``notional_floor <= |notional| < notional_cap``.

    Attributes:
        notional_floor: lower bound of the tier, in quote currency.
        notional_cap: upper bound of the tier, in quote currency.
        mmr: maintenance margin rate of the tier (0.004 = 0.4%).
        maint_amount: the tier's maintenance amount (Binance's ``cum``), in quote currency.
    """

    notional_floor: float
    notional_cap: float
    mmr: float
    maint_amount: float


def brackets_from_table(rows: Iterable[Sequence[float]]) -> tuple[Bracket, ...]:
    """Build contiguous brackets from ``(notional_cap, mmr)`` or ``(cap, mmr, maint_amount)`` rows.

    Floors are the previous cap (0 for the first tier). A missing maintenance amount is computed
    as ``cum_i = cum_{i-1} + floor_i (mmr_i - mmr_{i-1})``; a given one must agree with it.

    Raises:
        ValueError: no rows, a row of the wrong length, caps not increasing, a rate outside
            [0, 1) or lower than the tier below, or a given amount that breaks continuity.
    """
    brackets: list[Bracket] = []
    floor, prev_mmr, cum = 0.0, 0.0, 0.0
    for row in rows:
        if len(row) not in (2, 3):
            raise ValueError(f"bracket row needs (cap, mmr[, maint_amount]), got {tuple(row)}")
        cap, mmr = float(row[0]), float(row[1])
        if not cap > floor or not 0.0 <= mmr < 1.0 or mmr < prev_mmr:
            raise ValueError(f"bracket row {tuple(row)} after cap {floor}, mmr {prev_mmr}")
        cum += floor * (mmr - prev_mmr)
        if len(row) == 3 and not math.isclose(float(row[2]), cum, rel_tol=1e-9, abs_tol=1e-6):
            raise ValueError(f"maint_amount {row[2]} at floor {floor} breaks continuity: {cum}")
        brackets.append(Bracket(floor, cap, mmr, float(row[2]) if len(row) == 3 else cum))
        floor, prev_mmr = cap, mmr
    if not brackets:
        raise ValueError("no bracket rows")
    return tuple(brackets)


def binance_maintenance(notional: float, brackets: Sequence[Bracket]) -> float:
    """Maintenance margin ``|notional| * mmr - maint_amount`` of the tier holding ``|notional|``.

    Raises:
        ValueError: ``|notional|`` above the last cap (Binance's position limit).
    """
    size = abs(notional)
    if size > brackets[-1].notional_cap:
        raise ValueError(f"notional {size} above the last bracket cap {brackets[-1].notional_cap}")
    return float(tiered_maintenance(np.array([size]), brackets)[0])


def tiered_maintenance(notional: FloatArray, brackets: Sequence[Bracket]) -> FloatArray:
    """:func:`binance_maintenance` over an array, the last tier extended beyond its cap.

    A price move can carry a position past the venue's position limit (which only stops new
    orders); its maintenance then keeps the last tier's rate. Bybit's risk-limit tiers
    (maintenance rate and deduction) have the same form.
    """
    size = np.abs(notional)
    caps = np.array([b.notional_cap for b in brackets])
    tier = np.minimum(np.searchsorted(caps, size, side="right"), len(brackets) - 1)
    rate = np.array([b.mmr for b in brackets])[tier]
    amount = np.array([b.maint_amount for b in brackets])[tier]
    out: FloatArray = size * rate - amount
    return out


# --- Ratios ------------------------------------------------------------------------------------


def margin_balance(wallet_balance: float, unrealised_pnl: float) -> float:
    """Binance margin balance: wallet balance plus unrealised PnL."""
    return wallet_balance + unrealised_pnl


def margin_ratio(maintenance: float, balance: float) -> float:
    """Maintenance over margin balance; the account is liquidated at 1.0.

    No maintenance gives 0; maintenance against a balance at or below zero gives infinity.
    """
    if maintenance <= 0.0:
        return 0.0
    return maintenance / balance if balance > 0.0 else math.inf


def uni_mmr(equity: float, maintenance: float) -> float:
    """Binance portfolio-margin ``uniMMR = adjusted equity / MM`` (infinite with no MM)."""
    return equity / maintenance if maintenance > 0.0 else math.inf


def bybit_mm_rate(
    total_maintenance: float,
    balance: float,
    haircut_loss: float = 0.0,
    order_loss: float = 0.0,
) -> float:
    """Bybit unified account MM rate, ``MM / (balance - haircut_loss + order_loss)``.

    Args:
        total_maintenance: total maintenance margin of the account, USD.
        balance: margin balance (cross margin) or equity (portfolio margin), USD.
        haircut_loss: potential loss of collateral value from spot orders, >= 0, USD.
        order_loss: Bybit's order loss, ``min(0, ...)`` per order, so <= 0, USD.

    Raises:
        ValueError: a haircut loss below zero or an order loss above zero (a sign mix-up).
    """
    if haircut_loss < 0.0 or order_loss > 0.0:
        raise ValueError(
            f"haircut_loss must be >= 0 and order_loss <= 0: {haircut_loss}, {order_loss}"
        )
    return margin_ratio(total_maintenance, balance - haircut_loss + order_loss)


# --- Deribit portfolio margin ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskMatrixParams:
    """Parameters of the Deribit-style risk matrix for one currency pair and currency.

    Defaults are the BTC values of the ``private/pme/simulate`` example (timestamp 1718619740501).

    Attributes:
        price_range: largest standard move of the underlying (0.16 = +/-16%).
        buckets_count: moves per side; 4 gives 9 moves including zero.
        volatility_range_up: relative vol shift of the vol-up scenarios.
        volatility_range_down: relative vol shift of the vol-down scenarios.
        extended_moves: moves of the extended table, evaluated under vol up only.
        extended_table_factor: multiplier of the extended table's scaled PnL.
        extended_dampener_usd: dampener of the extended table; unit and formula unverified.
        min_annualised_move: floor of the roll-shock rate per expiry.
        annualised_move_risk: yearly roll-shock rate, scaled by time to expiry; unverified.
        mm_factor: maintenance as a fraction of the risk-matrix margin.
    """

    price_range: float = 0.16
    buckets_count: int = 4
    volatility_range_up: float = 0.5
    volatility_range_down: float = 0.25
    extended_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    extended_table_factor: float = 1.0
    extended_dampener_usd: float = 100_000.0
    min_annualised_move: float = 0.01
    annualised_move_risk: float = 0.075
    mm_factor: float = 0.8


DERIBIT_BTC = RiskMatrixParams()


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """A Deribit-style risk-matrix margin, in coin.

    Attributes:
        standard_pnl: PnL of the 27 standard scenarios, move-major, (vol up, same, down) each.
        extended_pnl: scaled and dampened PnL of the extended moves, in ``extended_moves`` order.
        worst_case: the largest loss over both tables as a positive number (0 if none).
        roll_shock: the roll shock added to the worst case.
        delta_shock: the delta shock added to the worst case.
        risk_matrix_margin: worst case + roll shock + delta shock.
        maintenance: ``mm_factor * risk_matrix_margin``.
    """

    standard_pnl: tuple[float, ...]
    extended_pnl: tuple[float, ...]
    worst_case: float
    roll_shock: float
    delta_shock: float
    risk_matrix_margin: float
    maintenance: float


def standard_scenarios(params: RiskMatrixParams = DERIBIT_BTC) -> tuple[tuple[float, float], ...]:
    """The ``(spot_move, vol_shift)`` grid: evenly spaced moves, each with vol up, same, down."""
    moves = np.linspace(-params.price_range, params.price_range, 2 * params.buckets_count + 1)
    shifts = (params.volatility_range_up, 0.0, -params.volatility_range_down)
    return tuple((float(m), s) for m in moves for s in shifts)


def extended_pnl(
    pnl: float, move: float, index_price: float, params: RiskMatrixParams = DERIBIT_BTC
) -> float:
    """Scale and dampen the PnL (coin) of one extended move.

    Scaling ("only a fraction of simulated P&L"): the PnL in USD at the move, ``pnl (1 + move)``
    index units, times ``price_range / |move|``, converted back to coin at the edge of the
    standard range, ``1 + sign(move) price_range``. This reproduces Deribit's published extended
    vector exactly: an inverse future's entries equal its +/-16% entries.

    Dampening (unverified, see module docstring): the loss is cut toward zero by
    ``(|move| / price_range - 1) * extended_dampener_usd``, converted to coin at the same edge
    price. Deribit's example only shows the dampened result as 0, which any dampener above
    ~0.06 BTC equivalent reproduces; it does not pin down the formula or the unit.
    """
    edge = 1.0 + math.copysign(params.price_range, move)
    scaled = params.extended_table_factor * pnl * (1.0 + move) * params.price_range / abs(move)
    scaled /= edge
    ratio = max(abs(move) / params.price_range, 1.0)
    damp = (ratio - 1.0) * params.extended_dampener_usd / (index_price * edge)
    return math.copysign(max(abs(scaled) - damp, 0.0), scaled)


def roll_shock(
    expiry_deltas: Iterable[tuple[float, float]], params: RiskMatrixParams = DERIBIT_BTC
) -> float:
    """Roll shock: ``sum_e |delta_e| * max(min_annualised_move, annualised_move_risk * years_e)``.

    Args:
        expiry_deltas: ``(net delta in coin, years to expiry)`` per expiry; a perpetual is one
            expiry with 0 years.
        params: supplies ``min_annualised_move`` and ``annualised_move_risk``.

    Verified: per-expiry absolute deltas (not the net delta) times the 1% floor reproduce
    Deribit's example, 0.01 * (0.314538364 + 0.001187534) = 0.00315725898. Unverified: the term
    part. In the example the floor binds (11 days at 7.5% a year is 0.22%), so whether the rate
    is ``r T``, ``exp(r T) - 1`` or something else is not shown; ``r T`` is used here.
    """
    return sum(
        abs(delta) * max(params.min_annualised_move, params.annualised_move_risk * years)
        for delta, years in expiry_deltas
    )


def deribit_portfolio_margin(
    reprice: Reprice,
    index_price: float,
    *,
    roll_shock_coin: float = 0.0,
    delta_shock_coin: float = 0.0,
    params: RiskMatrixParams = DERIBIT_BTC,
) -> PortfolioMargin:
    """Risk-matrix margin and maintenance of one currency's book, in coin.

    PnL of a scenario is ``reprice(move, shift) - reprice(0, 0)``. The standard table has
    ``2 * buckets_count + 1`` moves over +/-``price_range``, each under vol up, same and down;
    the extended table has ``extended_moves`` under vol up, scaled and dampened as in
    :func:`extended_pnl` (Deribit applies the dampener to the aggregated vector, as here).
    Maintenance is ``mm_factor * (worst loss + roll shock + delta shock)``.

    Args:
        reprice: book value in coin at ``(spot_move, vol_shift)``; see :data:`Reprice`.
        index_price: the underlying's index price in USD, to convert the USD dampener.
        roll_shock_coin: from :func:`roll_shock`.
        delta_shock_coin: Deribit's delta shock, computed by the caller. Its formula
            (``max_delta_shock``, ``m_inc``, ``delta_total_liq_shock_threshold``) is not
            published in a form that could be checked; the example's value is 0.
        params: model parameters; Deribit's ``pnl_offset`` (0 in the example) is not modelled.
    """
    base = reprice(0.0, 0.0)
    standard = [reprice(m, s) - base for m, s in standard_scenarios(params)]
    up = params.volatility_range_up
    extended = [reprice(m, up) - base for m in params.extended_moves]
    return portfolio_margin_from_pnl(
        standard,
        extended,
        index_price,
        roll_shock_coin=roll_shock_coin,
        delta_shock_coin=delta_shock_coin,
        params=params,
    )


def portfolio_margin_from_pnl(
    standard: Iterable[float],
    extended_raw: Iterable[float],
    index_price: float,
    *,
    roll_shock_coin: float = 0.0,
    delta_shock_coin: float = 0.0,
    params: RiskMatrixParams = DERIBIT_BTC,
) -> PortfolioMargin:
    """:func:`deribit_portfolio_margin` from PnL already computed, e.g. in one vectorised pass.

    Args:
        standard: PnL (coin) of :func:`standard_scenarios`, in that order.
        extended_raw: unscaled PnL (coin) of ``params.extended_moves`` under vol up.
        index_price, roll_shock_coin, delta_shock_coin, params: as for
            :func:`deribit_portfolio_margin`.
    """
    standard_pnl = tuple(float(x) for x in standard)
    extended = tuple(
        extended_pnl(float(pnl), m, index_price, params)
        for pnl, m in zip(extended_raw, params.extended_moves, strict=True)
    )
    worst = max(0.0, -min(standard_pnl + extended))
    total = worst + roll_shock_coin + delta_shock_coin
    return PortfolioMargin(
        standard_pnl=standard_pnl,
        extended_pnl=extended,
        worst_case=worst,
        roll_shock=roll_shock_coin,
        delta_shock=delta_shock_coin,
        risk_matrix_margin=total,
        maintenance=params.mm_factor * total,
    )


def portfolio_maintenance(
    standard: FloatArray,
    extended_raw: FloatArray,
    index_price: FloatArray,
    roll_shock_coin: FloatArray,
    params: RiskMatrixParams = DERIBIT_BTC,
) -> FloatArray:
    """The maintenance of :func:`portfolio_margin_from_pnl` for many rows at once, in coin.

    Args:
        standard: PnL (coin), rows x :func:`standard_scenarios`.
        extended_raw: unscaled PnL (coin), rows x ``params.extended_moves``, under vol up.
        index_price: index price per row, USD.
        roll_shock_coin: roll shock per row (no delta shock).
        params: model parameters.
    """
    moves = np.asarray(params.extended_moves)
    edge = 1.0 + np.copysign(params.price_range, moves)
    scale = params.extended_table_factor * (1.0 + moves) * params.price_range / np.abs(moves)
    scaled = extended_raw * (scale / edge)
    ratio = np.maximum(np.abs(moves) / params.price_range, 1.0)
    damp = (ratio - 1.0) * params.extended_dampener_usd / (index_price[:, None] * edge)
    extended = np.sign(scaled) * np.maximum(np.abs(scaled) - damp, 0.0)
    worst = np.maximum(0.0, -np.minimum(standard.min(axis=1), extended.min(axis=1)))
    out: FloatArray = params.mm_factor * (worst + roll_shock_coin)
    return out
