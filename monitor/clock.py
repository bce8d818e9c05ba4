"""Drive the engine and the rules through ordered tick batches on a snapshot clock.

Pure: the caller supplies the batches and receives each snapshot with the alert events it
caused. Snapshots fall on multiples of ``interval_s`` of event time (Unix epoch aligned); the
snapshot at boundary B includes every tick with ``ts <= B``. Every boundary from the first tick
to one past the last tick yields a snapshot, also across gaps in the data, so that rule ``for``
durations run in event time; but one gap yields at most ``max_catch_up`` snapshots (default
:data:`MAX_CATCH_UP`): beyond that the clock emits the first ``max_catch_up - 1`` boundaries,
then only the last boundary before the new data, and counts the boundaries it skipped. The
state does not change across a gap (no ticks), so the skipped snapshots would all show the
figures of the last one before the gap: rules see the gap begin and end, and a ``for`` duration
that elapses inside it fires at its end. So no timestamp, however wrong (a 1970 first tick, a
year-2100 one), makes the clock do more than a bounded amount of work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final, Protocol, cast

import numpy as np
import numpy.typing as npt

from monitor.engine import Engine, ValidTicks
from monitor.guard import Venues
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import MetricReader, RuleEngine

SnapshotSink = Callable[[RiskSnapshot, list[AlertEvent]], None]

MAX_CATCH_UP: Final = 1000
"""Snapshots one gap in event time yields at most (5-minute candles: 3.5 days; 1 s: 17 min)."""


class TickBatchLike(Protocol):
    """Columns of ticks in non-decreasing event time.

    A batch may also carry a ``venue`` column (one venue name per tick), which labels what the
    engine rejects; without it every tick is labelled with the clock's ``venue``.
    """

    @property
    def ts(self) -> npt.NDArray[np.float64]: ...
    @property
    def symbol(self) -> Sequence[str] | npt.NDArray[np.str_]: ...
    @property
    def price(self) -> npt.NDArray[np.float64]: ...


class IndexedBatchLike(Protocol):
    """Columns of ticks in non-decreasing event time, symbols as indices into ``symbols``.

    What a reader that resolved the symbols already hands over (-1: a symbol not in
    ``symbols``); like :class:`TickBatchLike`, it may carry a ``venue`` column.
    """

    @property
    def ts(self) -> npt.NDArray[np.float64]: ...
    @property
    def idx(self) -> npt.NDArray[np.int64]: ...
    @property
    def symbols(self) -> tuple[str, ...]: ...
    @property
    def price(self) -> npt.NDArray[np.float64]: ...


class SnapshotClock:
    """Cuts an ordered tick stream at snapshot boundaries and emits snapshots and events.

    Args:
        engine: receives the ticks and takes the snapshots.
        rules: evaluated on every snapshot.
        interval_s: event time between two snapshots.
        sink: receives every snapshot with its alert events.
        extra: metrics that are not part of a snapshot (feed staleness).
        venue: the venue label of ticks of batches without a ``venue`` column.
        max_catch_up: snapshots one gap yields at most (at least 2).

    Attributes:
        snapshots: snapshots emitted.
        skipped: boundaries skipped by the bounded catch-up.
    """

    def __init__(
        self,
        engine: Engine,
        rules: RuleEngine,
        interval_s: float,
        sink: SnapshotSink,
        extra: MetricReader | None = None,
        *,
        venue: str = "replay",
        max_catch_up: int = MAX_CATCH_UP,
    ) -> None:
        if max_catch_up < 2:
            raise ValueError(f"max_catch_up must be at least 2, got {max_catch_up}")
        self._extra = extra
        self._engine = engine
        self._rules = rules
        self._interval = interval_s
        self._sink = sink
        self._venue = venue
        self._max_catch_up = max_catch_up
        self._next: float | None = None
        self.snapshots = 0
        self.skipped = 0

    def feed(self, batch: TickBatchLike | IndexedBatchLike) -> None:
        """Apply a batch, emitting the snapshots of the boundaries the batch passes.

        Invalid ticks (unknown symbol, NaN, non-positive price) are counted and never move the
        clock; the first valid tick anchors it. A batch out of time order is applied in its
        order, the ticks behind the clock as late ones.
        """
        valid = self._valid(batch)
        times = valid.ts
        if len(times) == 0:
            return
        if self._next is None:
            self._next = math.ceil(float(times[0]) / self._interval) * self._interval
        start = 0
        while start < len(times):
            if times[start] > self._next:
                self._catch_up(float(times[start]), inclusive=False)
                continue
            end = int(np.searchsorted(times, self._next, side="right"))
            end = max(end, start + 1)  # a batch out of order still makes progress
            self._engine.apply(valid.cut(start, end))
            start = end

    def _valid(self, batch: TickBatchLike | IndexedBatchLike) -> ValidTicks:
        column = getattr(batch, "venue", None)
        venues: Venues = self._venue if column is None else column
        idx = getattr(batch, "idx", None)
        if idx is None:
            ticks = cast(TickBatchLike, batch)
            return self._engine.valid_ticks(ticks.ts, ticks.symbol, ticks.price, venues)
        indexed = cast(IndexedBatchLike, batch)
        return self._engine.valid_indexed(idx, indexed.symbols, batch.ts, batch.price, venues)

    @property
    def next_boundary(self) -> float | None:
        """Event time of the next snapshot (None before the first tick)."""
        return self._next

    @next_boundary.setter
    def next_boundary(self, value: float | None) -> None:
        self._next = value

    def advance_to(self, ts: float) -> None:
        """Emit the snapshots of the boundaries at or before ``ts`` without new ticks.

        The live daemon calls this when feeds are quiet, so rules (e.g. on feed staleness)
        keep being evaluated. At most ``max_catch_up`` snapshots, as for a gap between ticks.
        """
        if not math.isfinite(ts):
            return
        if self._next is None:
            self._next = math.ceil(ts / self._interval) * self._interval
        self._catch_up(ts, inclusive=True)

    def finish(self) -> None:
        """Emit the snapshot at the boundary after the last tick."""
        if self._next is not None:
            self._emit(self._next)
            self._next += self._interval

    def _catch_up(self, t: float, *, inclusive: bool) -> None:
        """Emit the boundaries before ``t`` (or at it), at most ``max_catch_up`` of them."""
        assert self._next is not None
        emitted = 0
        while self._due(self._next, t, inclusive):
            if emitted == self._max_catch_up - 1:
                self._skip_to_last(t, inclusive)
            elif emitted == self._max_catch_up:
                # only for times so large that adding the interval no longer changes them
                self._next = t if not inclusive else math.nextafter(t, math.inf)
                self.skipped += 1
                return
            self._emit(self._next)
            self._next += self._interval
            emitted += 1

    @staticmethod
    def _due(boundary: float, t: float, inclusive: bool) -> bool:
        return boundary < t or (inclusive and boundary == t)

    def _skip_to_last(self, t: float, inclusive: bool) -> None:
        """Move the next boundary to the last one due before ``t``, counting those skipped."""
        assert self._next is not None
        step, first = self._interval, self._next
        last = first + step * math.floor((t - first) / step)
        for _ in range(2):  # rounding may leave ``last`` one step off
            if not self._due(last, t, inclusive) and last - step >= first:
                last -= step
            elif self._due(last + step, t, inclusive):
                last += step
        skipped = round((last - first) / step)
        if skipped > 0:
            self.skipped += skipped
            self._next = last

    def _emit(self, boundary: float) -> None:
        snap = self._engine.snapshot(boundary)
        self._sink(snap, self._rules.evaluate(snap, self._extra))
        self.snapshots += 1
