"""A pure, deterministic market model: Poisson tick times and correlated geometric Brownian motion.

Everything here runs in SIMULATED time (Unix seconds): no asyncio, no wall clock. A seeded
``numpy`` generator makes a run reproducible, and ticks are generated in fixed-size blocks, so the
sequence does not depend on how often :meth:`MarketModel.events_until` is called.

Model:
    * Each symbol ticks as a Poisson process at its own rate. The merged process is drawn as one
      Poisson process of the summed rate whose ticks are assigned to symbols with probability
      proportional to their rates (the superposition theorem makes the two equivalent).
    * Log prices of all symbols move jointly: over a step of length ``dt`` inside one regime the
      increment is ``N(mu dt, Sigma dt)`` with ``mu = drift_annual / year`` for every symbol and
      ``Sigma = sigma^2 C`` (``C`` the equicorrelation matrix of the regime,
      ``sigma = vol_annual / sqrt(year)``). Steps run between consecutive merged tick times and are
      split at regime boundaries, so the simulation is exact at tick times. After the last regime
      ends, the last regime continues.
    * ``drift_annual`` is the drift of the LOG price (the expected log return per year).
    * A tick carries the symbol's model price, a best bid and ask ``spread_bps`` apart around it, a
      lognormal trade size around ``typical_size`` and a fair-coin aggressor side.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

SECONDS_PER_YEAR = 365.0 * 86400.0
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One simulated instrument, named as the engine names it (e.g. ``BTCUSDT``).

    Attributes:
        name: engine symbol, ``<BASE>USDT``.
        start_price: price at the model's start time.
        tick_rate_hz: mean ticks per SIMULATED second.
        spread_bps: distance between best bid and best ask, in basis points of the price.
        price_decimals: decimals the venues quote the price with.
        typical_size: median trade size in base units.
    """

    name: str
    start_price: float
    tick_rate_hz: float
    spread_bps: float = 1.0
    price_decimals: int = 2
    typical_size: float = 1.0


@dataclass(frozen=True, slots=True)
class Regime:
    """A period of constant dynamics, lasting ``duration_s`` SIMULATED seconds.

    Attributes:
        duration_s: length of the regime in simulated seconds.
        correlation: equicorrelation of log returns between every pair of symbols.
        vol_annual: annualised volatility of every symbol's log price.
        drift_annual: annualised drift of every symbol's log price.
        name: label for logs and documentation.
    """

    duration_s: float
    correlation: float
    vol_annual: float
    drift_annual: float
    name: str = ""


@dataclass(frozen=True, slots=True)
class SimTick:
    """One simulated trade with the top of book around it.

    Attributes:
        ts: simulated event time, Unix seconds.
        symbol: engine symbol, e.g. ``BTCUSDT``.
        price: trade price (the model price, unrounded).
        bid, ask: best bid and ask around ``price`` (unrounded).
        size: trade size in base units.
        taker_buy: True when the aggressor bought.
        trade_id: per-symbol trade counter, starting at 1.
        price_decimals: decimals the venues quote this symbol with.
        vol_annual: volatility of the regime at ``ts`` (used as the option implied vol).
    """

    ts: float
    symbol: str
    price: float
    bid: float
    ask: float
    size: float
    taker_buy: bool
    trade_id: int
    price_decimals: int
    vol_annual: float


@dataclass(frozen=True, slots=True)
class Scenario:
    """Symbols and the regime schedule of a simulation."""

    symbols: tuple[SymbolSpec, ...]
    regimes: tuple[Regime, ...]


class TickSource(Protocol):
    """What the exchange simulator needs from a source of ticks."""

    @property
    def start_ts(self) -> float:
        """Simulated time at which the source starts, Unix seconds."""
        ...

    @property
    def symbols(self) -> tuple[str, ...]:
        """Engine symbols the source can produce."""
        ...

    def start_price(self, symbol: str) -> float:
        """The first price of ``symbol``."""
        ...

    def events_until(self, sim_ts: float) -> list[SimTick]:
        """Ticks with time <= ``sim_ts`` not returned before, in time order."""
        ...


CRASH_LOG_RETURN = math.log(0.85)
"""The crash regime's drift takes log prices down by ln(0.85): a 15% fall over 30 minutes.

Steeper drifts swamp the diffusion over the slow symbols' tick intervals, and a zero-mean
covariance then reads the common trend as a correlation of 1.00, which looks broken on screen.
"""


def default_crash_scenario() -> Scenario:
    """Five USDT pairs through calm, crash and recovery (all in SIMULATED time).

    Symbols (start price, ticks per simulated second): BTCUSDT 95,000 at 10 Hz, ETHUSDT 3,300 at
    5 Hz, SOLUSDT 180 at 3 Hz, BNBUSDT 650 at 2 Hz, XRPUSDT 2.30 at 1 Hz (a 10x spread of rates;
    with wider spreads the zero-mean estimator reads the crash's trend as a correlation of 1).

    Regimes:
        calm: 30 min, correlation 0.25, vol 50%/yr, no drift.
        crash: 30 min, correlation 0.95, vol 250%/yr, drift ln(0.85) per 30 min (prices -15%).
        recovery: correlation 0.5, vol 80%/yr, no drift; lasts for ever.

    At the simulator's default speed (60x) calm and crash last 30 real seconds each.
    """
    symbols = (
        SymbolSpec("BTCUSDT", 95_000.0, 10.0, typical_size=0.01),
        SymbolSpec("ETHUSDT", 3_300.0, 5.0, typical_size=0.3),
        SymbolSpec("SOLUSDT", 180.0, 3.0, typical_size=5.0),
        SymbolSpec("BNBUSDT", 650.0, 2.0, typical_size=1.5),
        SymbolSpec("XRPUSDT", 2.30, 1.0, price_decimals=4, typical_size=400.0),
    )
    crash_drift = CRASH_LOG_RETURN / 1800.0 * SECONDS_PER_YEAR
    regimes = (
        Regime(1800.0, 0.25, 0.5, 0.0, "calm"),
        Regime(1800.0, 0.95, 2.5, crash_drift, "crash"),
        Regime(3600.0, 0.5, 0.8, 0.0, "recovery"),
    )
    return Scenario(symbols, regimes)


def equicorrelation(n: int, rho: float) -> FloatArray:
    """The n x n matrix with unit diagonal and ``rho`` elsewhere."""
    return np.full((n, n), rho) + (1.0 - rho) * np.eye(n)


class MarketModel:
    """Deterministic tick generator; see the module docstring for the dynamics."""

    def __init__(
        self,
        symbols: Sequence[SymbolSpec],
        regimes: Sequence[Regime],
        seed: int,
        start_ts: float,
        block_size: int = 512,
    ) -> None:
        """Validate the scenario and precompute the per-regime Cholesky factors.

        Raises:
            ValueError: no symbols or regimes, a non-positive rate, price or duration, or a
                correlation that does not give a positive definite matrix.
        """
        _validate(symbols, regimes)
        self._specs = tuple(symbols)
        self._regimes = tuple(regimes)
        self._start_ts = start_ts
        self._rng = np.random.default_rng(seed)
        self._block_size = block_size
        rates = np.array([s.tick_rate_hz for s in symbols])
        self._total_rate = float(rates.sum())
        self._probs = rates / self._total_rate
        n = len(symbols)
        self._chols = [np.linalg.cholesky(equicorrelation(n, r.correlation)) for r in regimes]
        self._ends = start_ts + np.cumsum([r.duration_s for r in regimes])
        self._vols = np.array([r.vol_annual for r in regimes])
        self._t = start_ts
        self._logp = np.log([s.start_price for s in symbols])
        self._trade_ids = [0] * n
        self._buffer: deque[SimTick] = deque()

    @property
    def start_ts(self) -> float:
        """Simulated start time, Unix seconds."""
        return self._start_ts

    @property
    def symbols(self) -> tuple[str, ...]:
        """Engine symbols, in the order given."""
        return tuple(s.name for s in self._specs)

    def start_price(self, symbol: str) -> float:
        """The configured start price of ``symbol``."""
        return next(s.start_price for s in self._specs if s.name == symbol)

    def regime_at(self, sim_ts: float) -> Regime:
        """The regime in force at simulated time ``sim_ts`` (the last one after the schedule)."""
        return self._regimes[int(self._regime_index(np.array([sim_ts]))[0])]

    def events_until(self, sim_ts: float) -> list[SimTick]:
        """Every tick with time <= ``sim_ts`` not returned by an earlier call, in time order."""
        out: list[SimTick] = []
        while True:
            if not self._buffer:
                self._buffer.extend(self._next_block())
            if self._buffer[0].ts > sim_ts:
                return out
            out.append(self._buffer.popleft())

    def _regime_index(self, ts: FloatArray) -> npt.NDArray[np.intp]:
        return np.searchsorted(self._ends[:-1], ts, side="right")

    def _next_block(self) -> list[SimTick]:
        k = self._block_size
        rng = self._rng
        times = self._t + np.cumsum(rng.exponential(1.0 / self._total_rate, k))
        which = rng.choice(len(self._specs), size=k, p=self._probs)
        size_factor = rng.lognormal(0.0, 0.7, k)
        taker_buy = rng.random(k) < 0.5
        logp = self._advance(times)
        prices = np.exp(logp[np.arange(k), which])
        vols = self._vols[self._regime_index(times)]
        return [
            self._tick(t, i, p, f, b, v)
            for t, i, p, f, b, v in zip(
                times.tolist(),
                which.tolist(),
                prices.tolist(),
                size_factor.tolist(),
                taker_buy.tolist(),
                vols.tolist(),
                strict=True,
            )
        ]

    def _advance(self, times: FloatArray) -> FloatArray:
        """Log prices of every symbol at ``times``, moving the model's state to ``times[-1]``."""
        ends = self._ends[:-1]
        inner = ends[(ends > self._t) & (ends < times[-1])]
        grid = np.concatenate((times, inner))
        order = np.argsort(grid, kind="stable")
        grid = grid[order]
        starts = np.concatenate(([self._t], grid[:-1]))
        dt = grid - starts
        z = self._rng.standard_normal((len(grid), len(self._specs)))
        steps = np.empty_like(z)
        regime_of = self._regime_index(starts)
        for r in np.unique(regime_of).tolist():
            sel = regime_of == r
            steps[sel] = self._steps(r, z[sel], dt[sel])
        path = self._logp + np.cumsum(steps, axis=0)
        self._t = float(grid[-1])
        self._logp = path[-1]
        is_tick = order < len(times)
        return path[is_tick]

    def _steps(self, regime: int, z: FloatArray, dt: FloatArray) -> FloatArray:
        spec = self._regimes[regime]
        mu = spec.drift_annual / SECONDS_PER_YEAR
        sigma = spec.vol_annual / math.sqrt(SECONDS_PER_YEAR)
        shocks = z @ self._chols[regime].T
        result: FloatArray = mu * dt[:, None] + sigma * np.sqrt(dt)[:, None] * shocks
        return result

    def _tick(
        self, ts: float, i: int, price: float, size_factor: float, buy: bool, vol: float
    ) -> SimTick:
        spec = self._specs[i]
        self._trade_ids[i] += 1
        half = price * spec.spread_bps / 20_000.0
        return SimTick(
            ts=ts,
            symbol=spec.name,
            price=price,
            bid=price - half,
            ask=price + half,
            size=spec.typical_size * size_factor,
            taker_buy=buy,
            trade_id=self._trade_ids[i],
            price_decimals=spec.price_decimals,
            vol_annual=vol,
        )


class ReplaySource:
    """Serve recorded :class:`SimTick` values instead of the model (held in memory, sorted)."""

    def __init__(self, ticks: Iterable[SimTick]) -> None:
        """Materialise and sort ``ticks`` by time.

        Raises:
            ValueError: ``ticks`` is empty.
        """
        self._ticks = sorted(ticks, key=lambda t: t.ts)
        if not self._ticks:
            raise ValueError("ReplaySource needs at least one tick")
        self._pos = 0
        first: dict[str, float] = {}
        for tick in self._ticks:
            first.setdefault(tick.symbol, tick.price)
        self._first = first

    @property
    def start_ts(self) -> float:
        """Time of the first tick."""
        return self._ticks[0].ts

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols in order of first appearance."""
        return tuple(self._first)

    def start_price(self, symbol: str) -> float:
        """The first recorded price of ``symbol``."""
        return self._first[symbol]

    def events_until(self, sim_ts: float) -> list[SimTick]:
        """Recorded ticks with time <= ``sim_ts`` not returned before."""
        end = self._pos
        while end < len(self._ticks) and self._ticks[end].ts <= sim_ts:
            end += 1
        out = self._ticks[self._pos : end]
        self._pos = end
        return out


def _validate(symbols: Sequence[SymbolSpec], regimes: Sequence[Regime]) -> None:
    if not symbols or not regimes:
        raise ValueError("MarketModel needs at least one symbol and one regime")
    for s in symbols:
        if s.tick_rate_hz <= 0 or s.start_price <= 0:
            raise ValueError(f"{s.name}: tick_rate_hz and start_price must be positive")
    n = len(symbols)
    lowest = -1.0 / (n - 1) if n > 1 else -1.0
    for r in regimes:
        if r.duration_s <= 0 or r.vol_annual < 0:
            raise ValueError(f"regime {r.name!r}: duration_s must be > 0 and vol_annual >= 0")
        if n > 1 and not lowest < r.correlation < 1.0:
            raise ValueError(
                f"regime {r.name!r}: correlation {r.correlation} must lie in ({lowest:.3f}, 1)"
            )
