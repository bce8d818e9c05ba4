"""Stress grids on a hand-checkable book; diversification failure; historical shocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.risk.options import black76
from monitor.risk.stress import (
    GRID_MOVES,
    Leg,
    diversification_failure,
    portfolio_grid,
    scenario_pnl,
    stress_grid,
)

SPOT_BTC, SPOT_ETH = 50_000.0, 3_000.0


def test_linear_and_inverse_legs_by_hand() -> None:
    """2 ETH lose 2 x 3000 x 16% = 960; a 10,000 USD inverse perp loses exactly 1,600 USD."""
    eth = stress_grid([Leg("ETH", "linear", 2.0)], SPOT_ETH)
    assert eth.pnl[0, 1] == pytest.approx(-960.0)
    assert eth.pnl[-1, 1] == pytest.approx(960.0)
    assert eth.worst_loss == pytest.approx(2 * 3000 * 0.66)  # the extended -66% move
    perp = stress_grid([Leg("BTC", "inverse", 10_000.0)], SPOT_BTC)
    assert perp.pnl[0, 1] == pytest.approx(-1_600.0)
    assert perp.pnl[4].tolist() == [0.0, 0.0, 0.0]  # no move, no P&L, whatever the vol
    assert GRID_MOVES[0] == -0.16
    assert len(GRID_MOVES) == 9


def test_short_call_loses_most_on_the_way_up_with_vol_up() -> None:
    """A short ATM call: revaluation matches Black-76 directly in the worst cell."""
    leg = Leg("BTC", "option", -1.0, strike=50_000.0, t_years=30 / 365, is_call=True, vol=0.6)
    grid = stress_grid([leg], SPOT_BTC)
    worst = np.unravel_index(np.argmin(grid.pnl), grid.pnl.shape)
    assert GRID_MOVES[worst[0]] == 0.16
    assert worst[1] == 0  # vol up
    now = black76(SPOT_BTC, 50_000.0, 30 / 365, 0.6, True).price
    after = black76(SPOT_BTC * 1.16, 50_000.0, 30 / 365, 0.9, True).price
    assert grid.pnl[worst] == pytest.approx(-(after - now), rel=1e-12)
    hedged = stress_grid([leg, Leg("BTC", "linear", 0.5)], SPOT_BTC)
    assert hedged.worst_loss < grid.worst_loss


def test_portfolio_grid_sums_underlyings_and_failure_moves_everything_together() -> None:
    """Long BTC and long ETH: the portfolio's worst grid loss is the sum; k-sigma all down."""
    legs = [Leg("BTC", "linear", 1.0), Leg("ETH", "linear", 10.0)]
    grids, total = portfolio_grid(legs, {"BTC": SPOT_BTC, "ETH": SPOT_ETH})
    assert total.pnl[0, 1] == pytest.approx(grids["BTC"].pnl[0, 1] + grids["ETH"].pnl[0, 1])
    sigmas = {"BTC": 0.04, "ETH": 0.05}
    loss = diversification_failure(legs, {"BTC": SPOT_BTC, "ETH": SPOT_ETH}, sigmas, k=3.0)
    expected = SPOT_BTC * -math.expm1(-0.12) + 10 * SPOT_ETH * -math.expm1(-0.15)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_historical_shock_applies_per_asset_moves() -> None:
    """A 12 Mar 2020-style shock: BTC -39%, ETH -43% at once."""
    legs = [Leg("BTC", "linear", 1.0), Leg("ETH", "linear", -10.0)]
    pnl = scenario_pnl(legs, {"BTC": SPOT_BTC, "ETH": SPOT_ETH}, {"BTC": -0.39, "ETH": -0.43})
    assert pnl == pytest.approx(-0.39 * SPOT_BTC + 0.43 * 10 * SPOT_ETH)
