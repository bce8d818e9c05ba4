"""Asynchronous ticks of a known correlated market, observed through a one-tick bid-ask spread.

Each symbol's efficient log price is a Brownian motion (equicorrelated across symbols, in
consecutive regimes). It is observed at its own Poisson tick times. Quotes sit on a price grid:
``bid = floor(P / tick) * tick``, ``ask = bid + tick``; every tick is a trade at the bid or the
ask (a fair coin), and the mid is ``(bid + ask) / 2``. The noise is therefore the bid-ask bounce
plus the grid's rounding, as on a real one-tick book.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# six books like Binance's SOL, XRP, ADA, AVAX, DOGE and LINK: 0.3 to 20 ticks a second,
# one tick worth 0.2 to 3.5 bp of the price
RATES_HZ = (20.0, 8.0, 3.0, 1.0, 0.5, 0.3)
TICK_BP = (0.2, 3.5, 1.0, 2.0, 0.5, 3.5)
VOLS = (0.8, 0.9, 0.7, 1.0, 0.6, 0.8)


@dataclass(frozen=True)
class NoisyMarket:
    """Merged ticks (symbol index, time) and the log prices seen through the book.

    Attributes:
        efficient: the efficient log price at each tick (no noise).
        trade: log of the trade price (bid or ask).
        mid: log of the mid quote.
        vol_annual: each symbol's true annualised volatility.
    """

    n: int
    idx: IntArray
    ts: FloatArray
    efficient: FloatArray
    trade: FloatArray
    mid: FloatArray
    vol_annual: FloatArray


def bid_ask_market(
    seed: int,
    duration_s: float,
    regimes: Sequence[tuple[float, float]] | None = None,
    rates_hz: Sequence[float] = RATES_HZ,
    tick_bp: Sequence[float] = TICK_BP,
    vols: Sequence[float] = VOLS,
    t0: float = 1_700_000_000.0,
) -> NoisyMarket:
    """Simulate the market.

    Args:
        seed: random seed.
        duration_s: total length when ``regimes`` is None (one regime of correlation 0.5).
        regimes: consecutive (equicorrelation, duration_s) pieces.
        rates_hz, tick_bp, vols: per symbol: ticks a second, tick size in bp of the starting
            price, annualised volatility.
        t0: start time.
    """
    rng = np.random.default_rng(seed)
    n = len(rates_hz)
    pieces = list(regimes) if regimes is not None else [(0.5, duration_s)]
    total = sum(d for _, d in pieces)
    per = [np.sort(rng.uniform(0.0, total, rng.poisson(r * total))) for r in rates_hz]
    ts = np.concatenate(per)
    idx = np.concatenate([np.full(len(t), k, dtype=np.int64) for k, t in enumerate(per)])
    order = np.argsort(ts, kind="stable")
    ts, idx = ts[order], idx[order]
    dt = np.diff(np.concatenate(([0.0], ts)))
    sigma_s = np.asarray(vols) / np.sqrt(365 * 86400.0)
    shocks = np.empty((len(ts), n))
    start = 0.0
    for rho, duration in pieces:
        sel = (ts >= start) & (ts < start + duration)
        chol = np.linalg.cholesky(np.full((n, n), rho) + (1.0 - rho) * np.eye(n))
        shocks[sel] = rng.standard_normal((int(sel.sum()), n)) @ chol.T
        start += duration
    paths = np.cumsum(shocks * np.sqrt(dt)[:, None] * sigma_s[None, :], axis=0)
    price0 = 100.0
    tick = price0 * np.asarray(tick_bp) * 1e-4
    efficient = np.log(price0) + paths[np.arange(len(ts)), idx]
    level = np.exp(efficient)
    bid = np.floor(level / tick[idx]) * tick[idx]
    ask = bid + tick[idx]
    trade = np.where(rng.random(len(ts)) < 0.5, bid, ask)
    return NoisyMarket(
        n=n,
        idx=idx,
        ts=ts + t0,
        efficient=efficient,
        trade=np.log(trade),
        mid=np.log((bid + ask) / 2.0),
        vol_annual=np.asarray(vols, dtype=np.float64),
    )
