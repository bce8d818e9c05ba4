"""Drive the engine and the rules through ordered tick batches on a snapshot clock.

Pure: the caller supplies the batches and receives each snapshot with the alert events it
caused. Snapshots fall on multiples of ``interval_s`` of event time (Unix epoch aligned); the
snapshot at boundary B includes every tick with ``ts <= B``. Every boundary from the first tick
to one past the last tick yields a snapshot, also across gaps in the data, so that rule ``for``
durations run in event time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from monitor.engine import Engine
from monitor.model import AlertEvent
from monitor.rules import MetricReader, RuleEngine
from monitor.snapshot import RiskSnapshot

SnapshotSink = Callable[[RiskSnapshot, list[AlertEvent]], None]


class TickBatchLike(Protocol):
    """Columns of ticks in non-decreasing event time."""

    @property
    def ts(self) -> npt.NDArray[np.float64]: ...
    @property
    def symbol(self) -> Sequence[str] | npt.NDArray[np.str_]: ...
    @property
    def price(self) -> npt.NDArray[np.float64]: ...


class SnapshotClock:
    """Cuts an ordered tick stream at snapshot boundaries and emits snapshots and events."""

    def __init__(
        self,
        engine: Engine,
        rules: RuleEngine,
        interval_s: float,
        sink: SnapshotSink,
        extra: MetricReader | None = None,
    ) -> None:
        self._extra = extra
        self._engine = engine
        self._rules = rules
        self._interval = interval_s
        self._sink = sink
        self._next: float | None = None
        self.snapshots = 0

    def feed(self, batch: TickBatchLike) -> None:
        """Apply a batch, emitting every snapshot whose boundary the batch passes."""
        ts = np.asarray(batch.ts, dtype=np.float64)
        if len(ts) == 0:
            return
        if self._next is None:
            self._next = math.ceil(float(ts[0]) / self._interval) * self._interval
        start = 0
        while start < len(ts):
            end = int(np.searchsorted(ts, self._next, side="right"))
            end = max(end, start)
            self._engine.ingest(ts[start:end], batch.symbol[start:end], batch.price[start:end])
            if end < len(ts):
                while self._next < ts[end]:
                    self._emit(self._next)
                    self._next += self._interval
            start = end

    @property
    def next_boundary(self) -> float | None:
        """Event time of the next snapshot (None before the first tick)."""
        return self._next

    @next_boundary.setter
    def next_boundary(self, value: float | None) -> None:
        self._next = value

    def advance_to(self, ts: float) -> None:
        """Emit every snapshot whose boundary is at or before ``ts`` without new ticks.

        The live daemon calls this when feeds are quiet, so rules (e.g. on feed staleness)
        keep being evaluated.
        """
        if self._next is None:
            self._next = math.ceil(ts / self._interval) * self._interval
        while self._next <= ts:
            self._emit(self._next)
            self._next += self._interval

    def finish(self) -> None:
        """Emit the snapshot at the boundary after the last tick."""
        if self._next is not None:
            self._emit(self._next)
            self._next += self._interval

    def _emit(self, boundary: float) -> None:
        snap = self._engine.snapshot(boundary)
        self._sink(snap, self._rules.evaluate(snap, self._extra))
        self.snapshots += 1


def run(
    engine: Engine,
    rules: RuleEngine,
    batches: Iterable[TickBatchLike],
    interval_s: float,
    sink: SnapshotSink,
) -> int:
    """Replay every batch and finish; returns the number of snapshots emitted."""
    clock = SnapshotClock(engine, rules, interval_s, sink)
    for batch in batches:
        clock.feed(batch)
    clock.finish()
    return clock.snapshots
