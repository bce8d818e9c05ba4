"""The tick guard: what a tick must pass before it reaches the estimators. Pure, synchronous.

Every rejected tick is counted by (venue, reason), the labels of
``riskmon_ticks_rejected_total``. The reasons, in :data:`REASONS`:

- ``not_a_number``: the time or the price is NaN or infinite.
- ``non_positive``: the price is zero or negative.
- ``clock_skew``: the venue's time is ahead of the receive time by more than ``[live]
  max_clock_skew``; the tick is kept, re-stamped with the receive time (live feeds only, see
  :func:`check_receive_time`).
- ``out_of_order``: older than its symbol's last accepted tick by more than ``[estimator]
  max_out_of_order``, or (live feeds) older than its receive time by more than its feed's
  ``stale_after``.
- ``outlier``: a bad print: a suspect jump (see :class:`~monitor.config.FilterConfig`) that the
  ticks after it did not confirm.
- ``unknown_symbol``: the symbol is not tracked (live feeds: an instrument no feed names).

The bad-print filter holds a suspect tick back instead of applying it; the symbol keeps its last
good price meanwhile. The next tick of the symbol decides: near the last accepted price, the
suspects were bad prints and are dropped; near the latest suspect (and later than it), it
confirms it, and once ``confirmations`` ticks did, the suspects near the new level are applied
in order with the confirming tick; anywhere else, it is one more suspect. At most
:data:`MAX_HELD` suspects wait per symbol (the oldest is dropped beyond), so memory stays
bounded, and two ticks in a row that agree on a new level always move the symbol: nothing
freezes it. Suspects are not kept in checkpoints: after a restart the ticks that follow decide
afresh.

The common case costs one pass of a compiled kernel over the batch; a tick that needs a
decision (a late tick, a jump, a symbol with suspects waiting) is handed to Python.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

import numpy as np
import numpy.typing as npt

from monitor.config.schema import FilterConfig
from monitor.estimation.jit import compile_kernels

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NOT_A_NUMBER: Final = "not_a_number"
NON_POSITIVE: Final = "non_positive"
CLOCK_SKEW: Final = "clock_skew"
OUT_OF_ORDER: Final = "out_of_order"
OUTLIER: Final = "outlier"
UNKNOWN_SYMBOL: Final = "unknown_symbol"
REASONS: Final = (NOT_A_NUMBER, NON_POSITIVE, CLOCK_SKEW, OUT_OF_ORDER, OUTLIER, UNKNOWN_SYMBOL)
"""Every ``reason`` label value, in documentation order."""

MAX_HELD: Final = 8
"""Suspect ticks held per symbol at most."""

Venues = str | Sequence[str]
"""One venue for every tick of a batch, or one per tick."""


def check_receive_time(
    ts: float, recv_ts: float, max_skew_s: float, max_age_s: float
) -> tuple[float | None, str | None]:
    """A live tick's event time checked against the wall clock at receipt.

    Args:
        ts: the venue's event time, Unix seconds.
        recv_ts: the receive time on the same clock.
        max_skew_s: how far ahead of ``recv_ts`` the venue's time may be.
        max_age_s: how far behind ``recv_ts`` it may be (a feed's ``stale_after``).

    Returns:
        (event time to use, reason to count): ``(ts, None)`` in the usual case;
        ``(recv_ts, "clock_skew")`` for a time too far ahead, which is replaced; ``(None,
        "out_of_order")`` for one too far behind (a 1970 stamp, old messages replayed after a
        subscription), which is rejected; ``(None, "not_a_number")`` for a non-finite time.
    """
    if not math.isfinite(ts):
        return None, NOT_A_NUMBER
    if ts > recv_ts + max_skew_s:
        return recv_ts, CLOCK_SKEW
    if ts < recv_ts - max_age_s:
        return None, OUT_OF_ORDER
    return ts, None


@dataclass(slots=True)
class _Held:
    """A suspect tick waiting for the ticks after it; ``support``: ticks that agreed so far."""

    ts: float
    logp: float
    price: float
    venue: str
    support: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """The ticks to apply now, in order (released suspects before the tick that confirmed them).

    Attributes:
        idx: symbol indices.
        ts: the ticks' own event times (not necessarily increasing: a released suspect is
            older than the ticks before it; the engine applies every tick at the running
            maximum time).
        price: prices.
        logp: log prices.
    """

    idx: IntArray
    ts: FloatArray
    price: FloatArray
    logp: FloatArray

    def __len__(self) -> int:
        return len(self.idx)


def _scan(
    start: int,
    idx: IntArray,
    ts: FloatArray,
    logp: FloatArray,
    last_ts: FloatArray,
    last_logp: FloatArray,
    sigma: FloatArray,
    held: IntArray,
    streak: IntArray,
    accepted: BoolArray,
    k: float,
    min_jump: float,
    tolerance_s: float,
) -> int:
    """Accept ticks from ``start`` while they need no decision; the index of the first that does.

    A tick needs a decision when its symbol has suspects waiting, when it is older than the
    symbol's last accepted tick beyond the tolerance, or when it jumps (``k > 0``). Accepted
    ticks update ``last_ts`` (the latest accepted time), ``last_logp`` and ``streak`` in place.
    Returns ``len(idx)`` when every tick was accepted.
    """
    n = len(idx)
    for i in range(start, n):
        s = idx[i]
        t = ts[i]
        if held[s] > 0 or t < last_ts[s] - tolerance_s:
            return i
        previous = last_logp[s]
        if k > 0.0 and previous == previous:
            threshold = min_jump
            dt = t - last_ts[s]
            sd = sigma[s]
            if dt > 0.0 and sd == sd:
                threshold = max(min_jump, k * sd * math.sqrt(dt))
            if abs(logp[i] - previous) > threshold:
                return i
        accepted[i] = True
        if t > last_ts[s]:
            last_ts[s] = t
        last_logp[s] = logp[i]
        streak[s] = 0
    return n


_COMPILED_SCAN: Callable[..., int] | None = None


def _compiled_scan() -> Callable[..., int]:
    global _COMPILED_SCAN
    if _COMPILED_SCAN is None:
        _COMPILED_SCAN = cast(Callable[..., int], compile_kernels([_scan], [])[0])
    return _COMPILED_SCAN


class TickGuard:
    """Validation, per-symbol time order and the bad-print filter for one engine's symbols.

    Args:
        n_symbols: symbols tracked; ticks name them by index (-1: unknown).
        tolerance_s: ``[estimator] max_out_of_order``.
        config: the ``[filter]`` section.
        compiled: use the numba kernel (default) or the same function in Python.

    Attributes:
        last_ts: per symbol, the latest event time of an accepted tick (-inf before one).
        last_logp: per symbol, the log price of the last accepted tick (NaN before one).
        streak: per symbol, ticks rejected since the last accepted one.
        rejected: rejected ticks by (venue, reason).
    """

    def __init__(
        self, n_symbols: int, tolerance_s: float, config: FilterConfig, *, compiled: bool = True
    ) -> None:
        self._tolerance_s = float(tolerance_s)
        self._k = float(config.k)
        self._min_jump = float(config.min_jump)
        self._confirmations = int(config.confirmations)
        self._max_hold_s = float(config.max_hold)
        self.last_ts = np.full(n_symbols, -np.inf)
        self.last_logp = np.full(n_symbols, np.nan)
        self.streak = np.zeros(n_symbols, dtype=np.int64)
        self.rejected: Counter[tuple[str, str]] = Counter()
        self._held: list[list[_Held]] = [[] for _ in range(n_symbols)]
        self._held_count = np.zeros(n_symbols, dtype=np.int64)
        self._scan = _compiled_scan() if compiled else _scan

    @property
    def held(self) -> int:
        """Suspect ticks waiting, over all symbols."""
        return int(self._held_count.sum())

    def reset(self, last_ts: FloatArray, last_logp: FloatArray) -> None:
        """Continue from another engine's accepted ticks; suspects waiting are forgotten."""
        self.last_ts[:] = last_ts
        self.last_logp[:] = last_logp
        self.streak[:] = 0
        for held in self._held:
            held.clear()
        self._held_count[:] = 0

    def validate(
        self, idx: IntArray, ts: FloatArray, prices: FloatArray, venues: Venues
    ) -> BoolArray | None:
        """Count unknown symbols, non-finite values and non-positive prices; their mask.

        Returns:
            The mask of valid ticks, or None when every tick is valid (the usual case, which
            costs three vector operations).
        """
        known = idx >= 0
        finite = np.isfinite(ts) & np.isfinite(prices)
        valid = known & finite & (prices > 0)
        if len(valid) == 0 or bool(valid.all()):
            return None
        for reason, mask in (
            (UNKNOWN_SYMBOL, ~known),
            (NOT_A_NUMBER, known & ~finite),
            (NON_POSITIVE, known & finite & (prices <= 0)),
        ):
            for i in np.flatnonzero(mask).tolist():
                self.rejected[(_venue(venues, i), reason)] += 1
        np.add.at(self.streak, idx[known & ~valid], 1)
        return valid

    def admit(
        self,
        idx: IntArray,
        ts: FloatArray,
        prices: FloatArray,
        venues: Venues,
        sigma: FloatArray,
    ) -> Admitted:
        """Decide on valid ticks in order: accept, hold, release held ones, or reject.

        Args:
            idx: symbol indices (all known).
            ts: event times (finite).
            prices: prices (finite, positive).
            venues: the venue of each tick (or of all).
            sigma: per symbol, volatility per square-root second (NaN: not known yet).

        Returns:
            The ticks to apply now.
        """
        logp = np.log(prices)
        accepted = np.zeros(len(idx), dtype=np.bool_)
        released: list[tuple[int, list[_Held]]] = []  # (position, suspects applied before it)
        i = 0
        while i < len(idx):
            i = int(
                self._scan(
                    i,
                    idx,
                    ts,
                    logp,
                    self.last_ts,
                    self.last_logp,
                    sigma,
                    self._held_count,
                    self.streak,
                    accepted,
                    self._k,
                    self._min_jump,
                    self._tolerance_s,
                )
            )
            if i < len(idx):
                tick = _Held(float(ts[i]), float(logp[i]), float(prices[i]), _venue(venues, i), 0)
                s = int(idx[i])
                outcome = self._decide(s, tick, float(sigma[s]))
                if outcome is not None:
                    accepted[i] = True
                    if outcome:
                        released.append((i, outcome))
                self._held_count[s] = len(self._held[s])
                i += 1
        if not released:
            if bool(accepted.all()):  # the usual case: no copies
                return Admitted(idx, ts, prices, logp)
            return Admitted(idx[accepted], ts[accepted], prices[accepted], logp[accepted])
        return _merge(idx, ts, prices, logp, accepted, released)

    def _decide(self, s: int, tick: _Held, sigma: float) -> list[_Held] | None:
        """One tick that needs a decision: None when not applied now, else the suspects it
        releases (possibly none) to apply before it."""
        if tick.ts < self.last_ts[s] - self._tolerance_s:
            self._reject(s, tick.venue, OUT_OF_ORDER)
            return None
        held = self._held[s]
        if not held:
            if self._jumps(tick.logp - self.last_logp[s], tick.ts - self.last_ts[s], sigma):
                held.append(tick)
                return None
            self._accept(s, tick)
            return []
        if not self._jumps(tick.logp - self.last_logp[s], tick.ts - self.last_ts[s], sigma):
            self._drop(s, held)  # back at the accepted level: the suspects were bad prints
            self._accept(s, tick)
            return []
        latest = held[-1]
        agrees = tick.ts > latest.ts and not self._jumps(
            tick.logp - latest.logp, tick.ts - latest.ts, sigma
        )
        if not agrees:
            self._hold(s, tick)
            return None
        tick.support = latest.support + 1
        if tick.support < self._confirmations:
            self._hold(s, tick)
            return None
        return self._release(s, tick, sigma)

    def _release(self, s: int, tick: _Held, sigma: float) -> list[_Held]:
        """The confirmed suspects near ``tick``'s level, recent enough to apply; drop the rest."""
        applied: list[_Held] = []
        dropped: list[_Held] = []
        for suspect in self._held[s]:
            near = not self._jumps(tick.logp - suspect.logp, tick.ts - suspect.ts, sigma)
            recent = tick.ts - suspect.ts <= self._max_hold_s
            (applied if near and recent else dropped).append(suspect)
        self._drop(s, dropped)
        self._held[s].clear()
        for suspect in applied:
            self._accept(s, suspect)
        self._accept(s, tick)
        return applied

    def _jumps(self, move: float, dt: float, sigma: float) -> bool:
        """Whether a log-price move over ``dt`` seconds is a suspect jump (never when off)."""
        if self._k <= 0.0 or math.isnan(move):  # NaN: the symbol has no accepted price yet
            return False
        threshold = self._min_jump
        if dt > 0.0 and not math.isnan(sigma):
            threshold = max(self._min_jump, self._k * sigma * math.sqrt(dt))
        return abs(move) > threshold

    def _hold(self, s: int, tick: _Held) -> None:
        held = self._held[s]
        held.append(tick)
        if len(held) > MAX_HELD:
            self._drop(s, [held.pop(0)])

    def _drop(self, s: int, suspects: list[_Held]) -> None:
        for suspect in suspects:
            self._reject(s, suspect.venue, OUTLIER)
        if suspects is self._held[s]:
            suspects.clear()

    def _accept(self, s: int, tick: _Held) -> None:
        self.last_ts[s] = max(self.last_ts[s], tick.ts)
        self.last_logp[s] = tick.logp
        self.streak[s] = 0

    def _reject(self, s: int, venue: str, reason: str) -> None:
        self.rejected[(venue, reason)] += 1
        self.streak[s] += 1


def _venue(venues: Venues, i: int) -> str:
    return venues if isinstance(venues, str) else venues[i]


def _merge(
    idx: IntArray,
    ts: FloatArray,
    prices: FloatArray,
    logp: FloatArray,
    accepted: BoolArray,
    released: list[tuple[int, list[_Held]]],
) -> Admitted:
    """Accepted ticks in order, each release inserted just before the tick that confirmed it."""
    before = dict(released)
    out_idx: list[int] = []
    out_ts: list[float] = []
    out_price: list[float] = []
    out_logp: list[float] = []
    for i in np.flatnonzero(accepted).tolist():
        for suspect in before.get(i, ()):
            out_idx.append(int(idx[i]))
            out_ts.append(suspect.ts)
            out_price.append(suspect.price)
            out_logp.append(suspect.logp)
        out_idx.append(int(idx[i]))
        out_ts.append(float(ts[i]))
        out_price.append(float(prices[i]))
        out_logp.append(float(logp[i]))
    return Admitted(
        np.array(out_idx, dtype=np.int64),
        np.array(out_ts, dtype=np.float64),
        np.array(out_price, dtype=np.float64),
        np.array(out_logp, dtype=np.float64),
    )
