"""Venue maintenance-margin models, margin ratios and liquidation distance, on published numbers.

Golden sources:
- Binance: the historic BTCUSDT USD-M tiers (REFERENCE.md section 3), checked by hand below.
- Deribit: the ``private/pme/simulate`` response example in Deribit's API reference (BTC,
  timestamp 1718619740501). Its book is BTC-PERPETUAL 0.314538364 and BTC-28JUN24 -0.001187534
  (both inverse, priced ``q (1 - 1/(1+m))``), index 65666.19; it publishes the per-instrument and
  aggregated risk vectors, worst case 0.05968587238095239, roll shock 0.00315725898, risk-matrix
  margin 0.06284313098 and maintenance 0.050274504784.
"""

from __future__ import annotations

import math
from dataclasses import astuple, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.risk.liquidation import (
    LiquidationMoves,
    first_crossing,
    liquidation_distance_sigma,
    liquidation_move,
)
from monitor.risk.margin import (
    DERIBIT_BTC,
    Bracket,
    Reprice,
    binance_maintenance,
    brackets_from_table,
    bybit_mm_rate,
    deribit_portfolio_margin,
    extended_pnl,
    margin_balance,
    margin_ratio,
    portfolio_maintenance,
    portfolio_margin_from_pnl,
    roll_shock,
    standard_scenarios,
    uni_mmr,
)

BTCUSDT_TIERS = [(50_000, 0.004), (250_000, 0.005), (1_000_000, 0.01), (10_000_000, 0.025)]
BTCUSDT = brackets_from_table(BTCUSDT_TIERS)

# Deribit's example (private/pme/simulate, BTC).
PERP_Q = 0.314538364
FUTURE_Q = -0.001187534
INDEX_USD = 65666.19
PERP_STANDARD_BY_MOVE = [  # published BTC-PERPETUAL initial risk vector, one value per move
    -0.05991206933333334,
    -0.04289159509090909,
    -0.027351162086956524,
    -0.013105765166666668,
    0.0,
    0.012097629384615385,
    0.023299138074074074,
    0.033700538999999995,
    0.043384601931034494,
]
PERP_EXTENDED = [-0.05991206933333334] * 2 + [0.04338460193103449] * 6
FUTURE_STANDARD_BY_MOVE = [
    0.0002261969523809524,
    0.00016193645454545456,
    0.00010326382608695652,
    0.00004948058333333334,
    0.0,
    -0.00004567438461538462,
    -0.00008796548148148148,
    -0.0001272357857142857,
    -0.00016379779310344832,
]
AGGREGATED_LOSSES = [  # published aggregated standard vector, negative side (the rest is 0)
    -0.05968587238095239,
    -0.04272965863636364,
    -0.02724789826086957,
    -0.013056284583333334,
]
PUBLISHED_WORST_CASE = 0.05968587238095239
PUBLISHED_ROLL_SHOCK = 0.00315725898
PUBLISHED_RISK_MATRIX_MARGIN = 0.06284313098
PUBLISHED_MAINTENANCE = 0.050274504784


def inverse(q: float) -> Reprice:
    """Coin value change of an inverse future of ``q`` coin at ``spot_move``, vol-insensitive."""
    return lambda move, _vol: q * (1.0 - 1.0 / (1.0 + move))


def example_book(move: float, _vol: float) -> float:
    """The example's whole book: the perpetual and the short June future."""
    return (PERP_Q + FUTURE_Q) * (1.0 - 1.0 / (1.0 + move))


# --- Binance -----------------------------------------------------------------------------------


def test_brackets_from_table_computes_the_historic_maintenance_amounts() -> None:
    """cum_i = cum_{i-1} + floor_i (mmr_i - mmr_{i-1}) is 0, 50, 1300, 16300; given amounts stay."""
    expected = [
        (0.0, 50_000.0, 0.004, 0.0),
        (50_000.0, 250_000.0, 0.005, 50.0),
        (250_000.0, 1_000_000.0, 0.01, 1300.0),
        (1_000_000.0, 10_000_000.0, 0.025, 16300.0),
    ]
    assert [astuple(b) for b in BTCUSDT] == [pytest.approx(row, rel=1e-15) for row in expected]
    given_amounts = [
        (*row, cum) for row, cum in zip(BTCUSDT_TIERS, (0, 50, 1300, 16300), strict=True)
    ]
    given = brackets_from_table(given_amounts)
    assert [b.maint_amount for b in given] == [0.0, 50.0, 1300.0, 16300.0]
    assert [b.notional_floor for b in given] == [b.notional_floor for b in BTCUSDT]


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [(50_000, 0.004), (40_000, 0.005)],
        [(50_000, 0.004), (250_000, 0.003)],
        [(50_000, 1.0)],
        [(50_000, 0.004), (250_000, 0.005, 60)],
        [(50_000,)],
    ],
)
def test_brackets_from_table_rejects_inconsistent_tables(rows: list[tuple[float, ...]]) -> None:
    """Empty tables, falling caps or rates, rates of 100% and discontinuous amounts are errors."""
    with pytest.raises(ValueError, match=r"bracket|maint_amount"):
        brackets_from_table(rows)


@pytest.mark.parametrize(
    ("notional", "maintenance"),
    [
        (10_000, 40.0),  # 10k * 0.4%
        (50_000, 200.0),  # floor of tier 2: 50k * 0.5% - 50 = 50k * 0.4%
        (100_000, 450.0),  # 100k * 0.5% - 50
        (-100_000, 450.0),  # a short of the same size
        (250_000, 1200.0),  # 250k * 1% - 1300 = 250k * 0.5% - 50
        (500_000, 3700.0),  # 500k * 1% - 1300
        (1_000_000, 8700.0),  # 1M * 2.5% - 16300 = 1M * 1% - 1300
        (2_000_000, 33_700.0),  # 2M * 2.5% - 16300
        (10_000_000, 233_700.0),  # the last cap itself
    ],
)
def test_binance_maintenance_by_hand(notional: float, maintenance: float) -> None:
    """MM = |notional| * mmr - cum of the tier holding |notional|."""
    assert binance_maintenance(notional, BTCUSDT) == pytest.approx(maintenance, rel=1e-12)


def test_binance_maintenance_rejects_notional_above_the_last_cap() -> None:
    """Binance caps the position at the last tier; beyond it there is no rate to apply."""
    with pytest.raises(ValueError, match="above the last bracket cap"):
        binance_maintenance(10_000_001, BTCUSDT)


@pytest.mark.parametrize("bracket", BTCUSDT[1:])
def test_binance_maintenance_is_continuous_at_each_floor(bracket: Bracket) -> None:
    """Just below a floor (tier below) and at it (tier above) the maintenance agrees."""
    below = binance_maintenance(math.nextafter(bracket.notional_floor, 0.0), BTCUSDT)
    at = binance_maintenance(bracket.notional_floor, BTCUSDT)
    assert at == pytest.approx(below, rel=1e-12)
    assert at == pytest.approx(bracket.notional_floor * bracket.mmr - bracket.maint_amount)


tier_tables = st.lists(
    st.tuples(st.floats(1.0, 1e8), st.floats(0.0, 0.1)), min_size=1, max_size=8
).map(
    lambda steps: brackets_from_table(
        [
            (sum(s[0] for s in steps[: i + 1]), min(0.99, sum(s[1] for s in steps[: i + 1])))
            for i in range(len(steps))
        ]
    )
)


@given(tier_tables, st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.booleans())
def test_binance_maintenance_is_non_negative_and_monotone_in_size(
    brackets: tuple[Bracket, ...], a: float, b: float, short: bool
) -> None:
    """For any table with rising caps and rates, MM >= 0 and grows with |notional|, either side."""
    cap = brackets[-1].notional_cap
    small, large = sorted((a * cap, b * cap))
    sign = -1.0 if short else 1.0
    mm_small = binance_maintenance(sign * small, brackets)
    mm_large = binance_maintenance(sign * large, brackets)
    assert mm_small >= -1e-9 * cap
    assert mm_large >= mm_small - 1e-9 * cap


# --- Ratios ------------------------------------------------------------------------------------


def test_margin_ratio_and_uni_mmr() -> None:
    """Ratio = MM / (wallet + uPnL), liquidation at 1; uniMMR is equity / MM."""
    balance = margin_balance(10_000.0, -2_000.0)
    assert balance == 8_000.0
    assert margin_ratio(2_000.0, balance) == 0.25
    assert margin_ratio(8_000.0, balance) == 1.0
    assert margin_ratio(0.0, -5.0) == 0.0
    assert margin_ratio(1.0, 0.0) == math.inf
    assert uni_mmr(12_000.0, 10_000.0) == 1.2
    assert uni_mmr(12_000.0, 0.0) == math.inf


def test_bybit_mm_rate_by_hand() -> None:
    """MM / (margin balance - haircut loss + order loss), with Bybit's order loss <= 0."""
    assert bybit_mm_rate(1_500.0, 10_000.0, 500.0, -1_000.0) == pytest.approx(1_500.0 / 8_500.0)
    assert bybit_mm_rate(8_500.0, 10_000.0, 500.0, -1_000.0) == pytest.approx(1.0)
    assert bybit_mm_rate(1_000.0, 4_000.0) == 0.25


@pytest.mark.parametrize(("haircut", "order_loss"), [(-1.0, 0.0), (0.0, 1.0)])
def test_bybit_mm_rate_rejects_sign_mixups(haircut: float, order_loss: float) -> None:
    """A negative haircut or a positive order loss is a sign error by the caller."""
    with pytest.raises(ValueError, match="haircut_loss"):
        bybit_mm_rate(1.0, 10.0, haircut, order_loss)


# --- Deribit -----------------------------------------------------------------------------------


def test_standard_scenarios_are_nine_moves_times_three_vol_shifts() -> None:
    """-16%..+16% in steps of 4%, each with vol up +0.5, unchanged, vol down -0.25."""
    grid = standard_scenarios()
    assert len(grid) == 27
    moves = [m for m, _ in grid[::3]]
    assert moves == pytest.approx([-0.16 + 0.04 * i for i in range(9)], abs=1e-15)
    assert [shift for _, shift in grid] == [0.5, 0.0, -0.25] * 9


@pytest.mark.parametrize(
    ("q", "published"), [(PERP_Q, PERP_STANDARD_BY_MOVE), (FUTURE_Q, FUTURE_STANDARD_BY_MOVE)]
)
def test_deribit_per_instrument_vectors_reproduce_the_example(
    q: float, published: list[float]
) -> None:
    """Each inverse future's 27 standard entries match the published initial risk vector."""
    margin = deribit_portfolio_margin(inverse(q), INDEX_USD)
    expected = [value for value in published for _ in range(3)]
    assert margin.standard_pnl == pytest.approx(expected, rel=1e-13, abs=1e-18)


def test_deribit_extended_scaling_reproduces_the_published_extended_vector() -> None:
    """Undampened, the perpetual's extended entries are its -16% and +16% entries, as published."""
    undamped = replace(DERIBIT_BTC, extended_dampener_usd=0.0)
    margin = deribit_portfolio_margin(inverse(PERP_Q), INDEX_USD, params=undamped)
    assert margin.extended_pnl == pytest.approx(PERP_EXTENDED, rel=1e-13)


def test_deribit_golden_example() -> None:
    """Worst case, roll shock, risk-matrix margin and maintenance of the published example.

    Published to 7 digits in REFERENCE.md: worst 0.0596859, roll 0.0031573, margin 0.0628431,
    maintenance 0.8 x 0.0628431 = 0.05027448 (tolerance half a unit in the 7th decimal, times 0.8
    for the maintenance). Published unrounded by Deribit: margin 0.06284313098, maintenance
    0.050274504784. Computed here: worst 0.05968587238095238, margin 0.0628431313609524,
    maintenance 0.0502745050887619; the 3.8e-10 gap is Deribit rounding the worst case to 1e-9
    BTC before adding the roll shock (checked below), so the unrounded values agree to 1e-9.
    """
    roll = roll_shock([(PERP_Q, 0.0), (FUTURE_Q, 10.9 / 365)])
    margin = deribit_portfolio_margin(example_book, INDEX_USD, roll_shock_coin=roll)
    assert roll == pytest.approx(PUBLISHED_ROLL_SHOCK, rel=1e-12)
    assert margin.worst_case == pytest.approx(PUBLISHED_WORST_CASE, rel=1e-12)
    assert list(margin.standard_pnl[:12]) == pytest.approx(
        [v for v in AGGREGATED_LOSSES for _ in range(3)], rel=1e-12
    )
    assert margin.extended_pnl == (0.0,) * 8  # the published aggregated extended vector
    assert margin.delta_shock == 0.0
    # Rounded, as in REFERENCE.md.
    assert margin.worst_case == pytest.approx(0.0596859, abs=5e-8)
    assert margin.roll_shock == pytest.approx(0.0031573, abs=5e-8)
    assert margin.risk_matrix_margin == pytest.approx(0.0628431, abs=5e-8)
    assert margin.maintenance == pytest.approx(0.8 * 0.0628431, abs=0.8 * 5e-8)
    # Unrounded, as published by Deribit.
    assert margin.risk_matrix_margin == pytest.approx(PUBLISHED_RISK_MATRIX_MARGIN, abs=1e-9)
    assert margin.maintenance == pytest.approx(PUBLISHED_MAINTENANCE, abs=1e-9)
    assert margin.maintenance == pytest.approx(0.0502745050887619, rel=1e-12)
    assert margin.maintenance == DERIBIT_BTC.mm_factor * margin.risk_matrix_margin
    rounded = DERIBIT_BTC.mm_factor * (round(margin.worst_case, 9) + roll)
    assert rounded == pytest.approx(PUBLISHED_MAINTENANCE, abs=1e-15)


def test_deribit_worst_case_needs_the_short_future_too() -> None:
    """The perpetual alone loses 0.0599121 at -16%; the published 0.0596859 nets the future."""
    alone = deribit_portfolio_margin(inverse(PERP_Q), INDEX_USD)
    assert alone.worst_case == pytest.approx(0.05991206933333334, rel=1e-12)
    assert alone.worst_case - PUBLISHED_WORST_CASE == pytest.approx(0.000226197, abs=1e-9)


def test_roll_shock_sums_absolute_deltas_per_expiry() -> None:
    """Gross, not net: the net delta would give 0.0031335; the floor binds at 11 days."""
    assert roll_shock([(PERP_Q, 0.0), (FUTURE_Q, 0.03)]) == pytest.approx(0.00315725898)
    # Beyond the floor the term part applies (its form, r T, is unverified).
    assert roll_shock([(2.0, 0.5)]) == pytest.approx(2.0 * 0.075 * 0.5)


def test_extended_dampener_cuts_a_loss_toward_zero() -> None:
    """A -66% loss is scaled to the 16% edge and reduced by (0.66/0.16 - 1) x dampener / edge price.

    The dampener's formula and unit (USD here) are not published; this pins the implementation.
    """
    params = replace(DERIBIT_BTC, extended_dampener_usd=1_000.0)
    scaled = -3.6 * (1 - 0.66) * (0.16 / 0.66) / 0.84
    cut = (0.66 / 0.16 - 1.0) * 1_000.0 / (INDEX_USD * 0.84)
    assert extended_pnl(-3.6, -0.66, INDEX_USD, params) == pytest.approx(scaled + cut, rel=1e-12)
    assert extended_pnl(-3.6, -0.66, INDEX_USD) == 0.0  # 100k USD dampens it all
    assert extended_pnl(1.0, 0.5, INDEX_USD, params) >= 0.0  # gains stay gains


def test_deribit_margin_of_a_short_put_like_book_uses_the_extended_table() -> None:
    """A loss only beyond -30% is invisible to the standard table and caught by the extended one."""

    def tail_short(move: float, _vol: float) -> float:
        return -10.0 * max(0.0, -move - 0.3)

    params = replace(DERIBIT_BTC, extended_dampener_usd=0.0)
    margin = deribit_portfolio_margin(tail_short, INDEX_USD, params=params)
    assert max(abs(v) for v in margin.standard_pnl) == 0.0
    expected = 10.0 * 0.36 * (1 - 0.66) * (0.16 / 0.66) / 0.84
    assert margin.worst_case == pytest.approx(expected, rel=1e-12)


def test_deribit_margin_of_a_flat_book_is_zero() -> None:
    """No exposure, no loss, no margin."""
    margin = deribit_portfolio_margin(lambda _m, _v: 1.5, INDEX_USD)
    assert margin.worst_case == 0.0
    assert margin.maintenance == 0.0


# --- Liquidation distance ----------------------------------------------------------------------


def linear_moves(q_btc: float, price: float, wallet: float) -> LiquidationMoves:
    """Liquidation moves of a USD-M BTCUSDT position of ``q_btc`` entered at ``price``.

    The up bracket stops where the notional reaches the last cap, Binance's position limit.
    """
    hi = min(10.0, BTCUSDT[-1].notional_cap / (abs(q_btc) * price) - 1.0)
    return liquidation_move(
        lambda m: q_btc * price * (1.0 + m),
        lambda m: binance_maintenance(q_btc * price * (1.0 + m), BTCUSDT),
        wallet,
        hi=hi,
    )


def closed_form(q_btc: float, price: float, wallet: float, bracket: Bracket) -> float:
    """W + q P m = |q| P (1+m) mmr - cum, solved for m inside one tier."""
    size = abs(q_btc) * price
    return (size * bracket.mmr - bracket.maint_amount - wallet) / (
        q_btc * price - size * bracket.mmr
    )


@pytest.mark.parametrize(
    ("q_btc", "wallet", "tier"), [(1.0, 6_000.0, 1), (-1.0, 6_000.0, 1), (20.0, 40_000.0, 3)]
)
def test_liquidation_move_matches_the_closed_form(q_btc: float, wallet: float, tier: int) -> None:
    """Bisection finds the linear position's liquidation move on the loss side only."""
    moves = linear_moves(q_btc, 60_000.0, wallet)
    expected = closed_form(q_btc, 60_000.0, wallet, BTCUSDT[tier])
    found, other = (
        (moves.down_frac, moves.up_frac) if q_btc > 0 else (moves.up_frac, moves.down_frac)
    )
    assert found == pytest.approx(expected, abs=1e-10)
    assert other is None


def test_liquidation_move_of_a_long_matches_binance_liquidation_price() -> None:
    """Long 1 BTC at 60k with 6k wallet: liq price (W + cum - qP) / (q (mmr - 1)) = 54221.11."""
    liq_price = (6_000.0 + 50.0 - 60_000.0) / (0.005 - 1.0)
    assert liq_price == pytest.approx(54_221.105527638, rel=1e-12)
    assert linear_moves(1.0, 60_000.0, 6_000.0).down_frac == pytest.approx(
        liq_price / 60_000.0 - 1.0, abs=1e-10
    )


@pytest.mark.parametrize("q_btc", [1.0, -1.0, 20.0])
def test_margin_ratio_crosses_one_exactly_at_the_liquidation_move(q_btc: float) -> None:
    """At the move found the ratio is >= 1; a nanometre closer to zero it is below 1."""
    price, wallet = 60_000.0, 2_000.0 * abs(q_btc) + 4_000.0
    moves = linear_moves(q_btc, price, wallet)
    move = moves.down_frac if q_btc > 0 else moves.up_frac
    assert move is not None

    def ratio(m: float) -> float:
        balance = margin_balance(wallet, q_btc * price * m)
        return margin_ratio(binance_maintenance(q_btc * price * (1.0 + m), BTCUSDT), balance)

    assert ratio(move) >= 1.0
    assert ratio(move - math.copysign(1e-9, move)) < 1.0
    assert ratio(move) == pytest.approx(1.0, abs=1e-9)


def test_liquidation_move_of_a_deribit_portfolio_margined_perpetual() -> None:
    """Long inverse perpetual, maintenance re-run from the risk matrix at each spot: ratio = 1."""
    equity = 0.1

    def value(m: float) -> float:
        return PERP_Q * (1.0 - 1.0 / (1.0 + m))

    def maintenance(m: float) -> float:
        q_now = PERP_Q / (1.0 + m)  # same USD notional, fewer coins of delta after a rise
        book = deribit_portfolio_margin(
            inverse(q_now),
            INDEX_USD * (1.0 + m),
            roll_shock_coin=roll_shock([(q_now, 0.0)]),
        )
        return book.maintenance

    moves = liquidation_move(value, maintenance, equity)
    assert moves.up_frac is None
    assert moves.down_frac is not None
    balance = equity + value(moves.down_frac)
    assert margin_ratio(maintenance(moves.down_frac), balance) == pytest.approx(1.0, abs=1e-9)


def test_liquidation_move_of_an_account_already_liquidated() -> None:
    """Maintenance above balance at the current price is a move of zero both ways."""
    assert liquidation_move(lambda m: 0.0, lambda m: 2.0, 1.0) == LiquidationMoves(0.0, 0.0)


@pytest.mark.parametrize(("lo", "hi"), [(-1.5, 1.0), (0.0, 1.0), (-0.5, 0.0)])
def test_liquidation_move_rejects_bad_brackets(lo: float, hi: float) -> None:
    """The down bracket lies in [-1, 0) and the up bracket above 0."""
    with pytest.raises(ValueError, match="lo"):
        liquidation_move(lambda m: 0.0, lambda m: 0.0, 1.0, lo, hi)


def test_liquidation_distance_sigma() -> None:
    """|ln(1+m)| / sigma: -20% and +25% are equally far; -100% is infinitely far."""
    assert liquidation_distance_sigma(-0.2, 0.05) == pytest.approx(-math.log(0.8) / 0.05)
    assert liquidation_distance_sigma(0.25, 0.05) == pytest.approx(
        liquidation_distance_sigma(-0.2, 0.05), rel=1e-12
    )
    assert liquidation_distance_sigma(-1.0, 0.05) == math.inf
    with pytest.raises(ValueError, match="sigma_horizon"):
        liquidation_distance_sigma(-0.2, 0.0)


def test_portfolio_maintenance_of_many_rows_equals_the_scalar_one() -> None:
    """The vectorised maintenance (liquidation searches) row by row against the scalar model."""
    rng = np.random.default_rng(4)
    rows = 64
    standard = rng.normal(0.0, 0.05, (rows, 27))
    extended = rng.normal(0.0, 0.3, (rows, len(DERIBIT_BTC.extended_moves)))
    extended[::7] = 0.0  # exact zeros keep their sign rule
    index = rng.uniform(20_000.0, 120_000.0, rows)
    roll = rng.uniform(0.0, 0.01, rows)
    got = portfolio_maintenance(standard, extended, index, roll)
    for r in range(rows):
        pm = portfolio_margin_from_pnl(
            standard[r], extended[r], float(index[r]), roll_shock_coin=float(roll[r])
        )
        assert got[r] == pytest.approx(pm.maintenance, rel=1e-12, abs=1e-15)


@given(
    crossing=st.floats(0.001, 0.999),
    end=st.sampled_from([-0.99, 3.0]),
)
def test_the_vectorised_search_finds_the_same_crossing_as_bisection(
    crossing: float, end: float
) -> None:
    """One crossing at ``crossing * end``: both searches land within tol, on the liquidated side."""
    target = crossing * end

    def liquidated(x: float) -> bool:
        return abs(x) >= abs(target)

    def scan(xs: np.ndarray) -> np.ndarray:
        return np.abs(xs) >= abs(target)

    tol = 1e-7 * max(abs(end), 1.0)
    vectorised = first_crossing(liquidated, end, 40, tol, scan=scan)
    scalar = first_crossing(liquidated, end, 40, tol)
    assert vectorised is not None
    assert scalar is not None
    for found in (vectorised, scalar):
        assert liquidated(found)
        assert abs(found - target) <= tol
