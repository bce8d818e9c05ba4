"""Asynchronous tick simulator with a known correlation regime, for estimator tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Ticks:
    """Merged ticks: symbol index, event time, log price; plus each symbol's true path."""

    idx: IntArray
    ts: FloatArray
    logp: FloatArray


def equicorrelation(n: int, rho: float) -> FloatArray:
    """n x n matrix with unit diagonal and rho elsewhere."""
    return np.full((n, n), rho) + (1.0 - rho) * np.eye(n)


def simulate_regimes(
    rates_hz: list[float],
    vol_annual: float,
    regimes: list[tuple[float, float]],
    seed: int,
    t0: float = 1_700_000_000.0,
) -> Ticks:
    """Poisson ticks per symbol observing correlated Brownian log prices without noise.

    Args:
        rates_hz: mean ticks per second of each symbol.
        vol_annual: annualised volatility of every symbol.
        regimes: consecutive (duration_s, equicorrelation) pieces.
        seed: random seed.
        t0: start time.
    """
    rng = np.random.default_rng(seed)
    n = len(rates_hz)
    total = sum(d for d, _ in regimes)
    per_symbol = [np.sort(rng.uniform(0, total, rng.poisson(r * total))) for r in rates_hz]
    ts = np.concatenate(per_symbol)
    idx = np.concatenate([np.full(len(t), k, dtype=np.int64) for k, t in enumerate(per_symbol)])
    order = np.argsort(ts, kind="stable")
    ts, idx = ts[order], idx[order]
    dt = np.diff(np.concatenate(([0.0], ts)))
    sigma_s = vol_annual / np.sqrt(365 * 86400.0)
    shocks = np.empty((len(ts), n))
    start = 0.0
    for duration, rho in regimes:
        sel = (ts >= start) & (ts < start + duration)
        chol = np.linalg.cholesky(equicorrelation(n, rho))
        shocks[sel] = rng.standard_normal((int(sel.sum()), n)) @ chol.T
        start += duration
    paths = np.cumsum(shocks * (sigma_s * np.sqrt(dt))[:, None], axis=0) + np.log(100.0)
    return Ticks(idx=idx, ts=ts + t0, logp=paths[np.arange(len(ts)), idx])


def previous_tick_grid(ticks: Ticks, n: int, step_s: float) -> tuple[FloatArray, FloatArray]:
    """Sample each symbol's last log price on a fixed clock: (grid times, n-column matrix)."""
    grid = np.arange(ticks.ts[0] + step_s, ticks.ts[-1], step_s)
    out = np.empty((len(grid), n))
    for k in range(n):
        sel = ticks.idx == k
        t_k, p_k = ticks.ts[sel], ticks.logp[sel]
        pos = np.searchsorted(t_k, grid, side="right") - 1
        out[:, k] = np.where(pos >= 0, p_k[np.maximum(pos, 0)], p_k[0])
    return grid, out
