"""Full-revaluation stress scenarios for a derivatives book (pure; prices from options.py).

- A grid like Deribit's portfolio margin: underlying moves from -16% to +16% in 9 steps, each
  with implied volatility up, unchanged and down (multiplied by ``1 + vol_up``, 1 and
  ``1 + vol_down``), plus extended moves under vol up; the worst loss per underlying and for the
  portfolio (every underlying moving by the same percentage at once).
- Diversification failure: every underlying moves by ``k`` of its own horizon sigmas in the
  same direction at once (correlation 1), with vol up; the worse of the two directions.
- Historical shocks: configured percentage moves per underlying.

Positions (``Leg``):
- ``linear``: ``quantity`` units of the underlying (spot, USDT/USDC-margined perps and futures);
  P&L ``q (S' - S)``.
- ``inverse``: ``quantity`` USD of coin-margined contracts (contracts x contract size) opened
  at ``entry``; P&L in coin ``q (1/entry - 1/S')``, in USD times ``S'``. The P&L of a scenario is
  measured against the current price: ``q (1/S - 1/S') S'``.
- ``option``: ``quantity`` options on one unit of the underlying; USD value from Black-76 on
  the forward (inverse Deribit options and linear USDC options have the same USD value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from monitor.risk.options import black76_array

FloatArray = npt.NDArray[np.float64]

GRID_MOVES = tuple(np.linspace(-0.16, 0.16, 9).tolist())
EXTENDED_MOVES = (-0.66, -0.33, 0.5, 1.0)
VOL_UP, VOL_DOWN = 0.5, -0.25


@dataclass(frozen=True, slots=True)
class Leg:
    """One position on one underlying (see the module docstring for units)."""

    underlying: str
    kind: Literal["linear", "inverse", "option"]
    quantity: float
    strike: float = 0.0
    t_years: float = 0.0
    is_call: bool = True
    vol: float = 0.0


def leg_pnl(leg: Leg, spot: float, moves: FloatArray, vol_mult: float) -> FloatArray:
    """USD P&L of ``leg`` when the underlying moves from ``spot`` by each of ``moves``."""
    shocked = spot * (1.0 + moves)
    if leg.kind == "linear":
        return leg.quantity * (shocked - spot)
    if leg.kind == "inverse":
        return leg.quantity * (1.0 / spot - 1.0 / shocked) * shocked
    now = black76_array(np.array([spot]), leg.strike, leg.t_years, leg.vol, leg.is_call).price
    after = black76_array(shocked, leg.strike, leg.t_years, leg.vol * vol_mult, leg.is_call).price
    return leg.quantity * (after - now)


@dataclass(frozen=True, slots=True)
class Grid:
    """P&L (USD) of one underlying's legs over the scenarios.

    Attributes:
        moves: underlying moves, fractions.
        vol_mults: implied-volatility multipliers (up, unchanged, down).
        pnl: ``len(moves) x len(vol_mults)`` P&L.
        extended: P&L of the extended moves under vol up.
    """

    moves: tuple[float, ...]
    vol_mults: tuple[float, ...]
    pnl: FloatArray
    extended: FloatArray

    @property
    def worst_loss(self) -> float:
        """The largest loss over all scenarios (0 when every scenario gains)."""
        return max(0.0, -float(min(self.pnl.min(), self.extended.min(initial=np.inf))))


def stress_grid(legs: Sequence[Leg], spot: float) -> Grid:
    """The scenario grid of the legs of one underlying."""
    moves = np.asarray(GRID_MOVES)
    mults = (1.0 + VOL_UP, 1.0, 1.0 + VOL_DOWN)
    pnl = np.zeros((len(moves), len(mults)))
    extended = np.zeros(len(EXTENDED_MOVES))
    for leg in legs:
        for j, mult in enumerate(mults):
            pnl[:, j] += leg_pnl(leg, spot, moves, mult)
        extended += leg_pnl(leg, spot, np.asarray(EXTENDED_MOVES), mults[0])
    return Grid(GRID_MOVES, mults, pnl, extended)


def portfolio_grid(legs: Sequence[Leg], spots: Mapping[str, float]) -> tuple[dict[str, Grid], Grid]:
    """Per-underlying grids and their sum (every underlying moving by the same percentage)."""
    grids = {
        u: stress_grid([leg for leg in legs if leg.underlying == u], s) for u, s in spots.items()
    }
    total = Grid(
        GRID_MOVES,
        (1.0 + VOL_UP, 1.0, 1.0 + VOL_DOWN),
        sum((g.pnl for g in grids.values()), np.zeros((len(GRID_MOVES), 3))),
        sum((g.extended for g in grids.values()), np.zeros(len(EXTENDED_MOVES))),
    )
    return grids, total


def scenario_pnl(
    legs: Sequence[Leg],
    spots: Mapping[str, float],
    moves: Mapping[str, float],
    vol_mult: float = 1.0,
) -> float:
    """USD P&L when each underlying moves by ``moves[u]`` (missing: 0) at once."""
    total = 0.0
    for leg in legs:
        move = np.array([moves.get(leg.underlying, 0.0)])
        total += float(leg_pnl(leg, spots[leg.underlying], move, vol_mult)[0])
    return total


def diversification_failure(
    legs: Sequence[Leg],
    spots: Mapping[str, float],
    sigmas: Mapping[str, float],
    k: float,
) -> float:
    """Loss (USD, >= 0) when every underlying moves k of its horizon sigmas the same way."""
    down = {u: float(np.expm1(-k * s)) for u, s in sigmas.items()}
    up = {u: float(np.expm1(k * s)) for u, s in sigmas.items()}
    worst = min(
        scenario_pnl(legs, spots, down, 1.0 + VOL_UP), scenario_pnl(legs, spots, up, 1.0 + VOL_UP)
    )
    return max(0.0, -worst)


@dataclass(frozen=True, slots=True)
class StressSummary:
    """An account's headline stress figures (see :func:`summarise`)."""

    loss: float
    uncapped: float
    ratio: float | None


def summarise(weighted_pnl: Sequence[float], equity: float, capped: bool) -> StressSummary:
    """Worst loss over scenario P&Ls (each already times its coverage), capped and as a ratio.

    What an account can lose is its equity: a margined account is liquidated before it goes
    below zero, and the deficit of a gap through the liquidation price falls on the venue's
    insurance fund, not on the account. ``capped`` accounts (margined) report at most their
    equity and a ratio in [0, 1] (1 with no equity left). A cash account has no liquidation:
    its loss is not capped, and its ratio exceeds 1 when a scenario takes more than it has.

    Args:
        weighted_pnl: equity change per scenario times its coverage, USD.
        equity: the account's equity now, USD.
        capped: whether the account's loss stops at its equity.
    """
    uncapped = max(0.0, -min(weighted_pnl, default=0.0))
    if equity <= 0.0:
        return StressSummary(0.0 if capped else uncapped, uncapped, 1.0 if capped else None)
    loss = min(uncapped, equity) if capped else uncapped
    return StressSummary(loss, uncapped, loss / equity)
