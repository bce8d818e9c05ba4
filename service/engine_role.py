"""``riskmon run --role engine``: the daemon without feed connections, fed from the bus.

An :class:`EngineDaemon` is a :class:`~service.daemon.Daemon` whose engine loop is replaced by
a :class:`~bus.subscriber.TickSubscriber`: each round's ticks, in stream order, go through
:func:`apply_in_stream_order` into the same snapshot clock, engine and rules as in the
single-process daemon. Checkpoints carry the subscriber's cursor, captured in the same
synchronous step as the engine state, so a restart replays exactly the ticks after it.

Ownership: before it touches a consumer, a worker takes the lease of each of its portfolios
(:mod:`bus.lease`); it applies ticks, and so alerts, only while its leases are certain.

Determinism: what a worker applies is the stream order of its subjects, ticks and marks (whose
clock drives the quiet-time snapshots), and :func:`apply_in_stream_order` gives the same
result however they are cut into batches, so a worker that crashes, restores its checkpoint
and replays, ends in the state of an engine fed the same stream messages in one go. After a
restore no snapshot is taken before new ticks arrive (the all-in-one daemon takes one at the
last tick's time, which advances the interval figures once more than an uninterrupted run
would).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import structlog

from bus.lease import MARKET_KEY, Leases, LeaseValue, lease_key, process_identity
from bus.subscriber import TickSubscriber
from bus.wire import BusBatch, BusCursor, BusMessage, BusOptionMark
from monitor.clock import SnapshotClock
from monitor.errors import CheckpointError
from monitor.model import AlertEvent
from monitor.risk.book import OptionMark
from monitor.risk.snapshot import RiskSnapshot
from service.bus_latency import LatencyHistogram, newest_receipt
from service.checkpoint import Checkpoint, CompatibleRestore, capture, restore, restore_compatible
from service.daemon import Daemon

log = structlog.get_logger("riskmon.engine_role")

HEARTBEAT_S = 1.0
SILENT_BUS_S = 5.0  # the feeds role marks every quiet symbol every [bus] mark_interval


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Ticks as the columns :meth:`SnapshotClock.feed` takes, symbols as indices into
    ``symbols`` (a :class:`~monitor.clock.IndexedBatchLike`)."""

    ts: npt.NDArray[np.float64]
    idx: npt.NDArray[np.int64]
    symbols: tuple[str, ...]
    price: npt.NDArray[np.float64]
    venue: str | list[str]


def apply_in_stream_order(clock: SnapshotClock, messages: Iterable[BusMessage]) -> None:
    """Apply tick batches and marks to ``clock`` in the order given, as if tick by tick.

    :meth:`SnapshotClock.feed` expects non-decreasing event times; ticks of several venues and
    symbols are not, so the sequence is cut where event time goes back and each run is fed
    alone. Before a tick with time t every snapshot boundary before t is emitted; a tick older
    than the boundary already emitted is ingested as late (the engine's ``max_out_of_order``).
    A mark with a clock emits the boundaries up to it (the feed was quiet). The result does not
    depend on how the caller cuts the sequence into calls, nor a batch into parts.
    """
    run: list[BusBatch] = []
    for message in messages:
        if isinstance(message, BusBatch):
            if len(message):
                run.append(message)
        elif message.clock is not None:
            _feed(clock, run)
            run = []
            clock.advance_to(message.clock)
    _feed(clock, run)


def _feed(clock: SnapshotClock, run: list[BusBatch]) -> None:
    """Feed consecutive batches as columns, cut where event time goes back."""
    if not run:
        return
    columns = [batch.columns() for batch in run]
    ts = np.concatenate([c[0] for c in columns])
    price = np.concatenate([c[1] for c in columns])
    names = tuple(dict.fromkeys(batch.symbol for batch in run))
    codes = np.array([names.index(batch.symbol) for batch in run], dtype=np.int64)
    idx = np.repeat(codes, [len(batch) for batch in run])
    venues = {batch.venue for batch in run}
    venue: str | list[str] = (
        venues.pop() if len(venues) == 1 else [b.venue for b in run for _ in range(len(b))]
    )
    cuts = [0, *(np.flatnonzero(ts[1:] < ts[:-1]) + 1).tolist(), len(ts)]
    for start, end in itertools.pairwise(cuts):
        part = venue if isinstance(venue, str) else venue[start:end]
        clock.feed(TickColumns(ts[start:end], idx[start:end], names, price[start:end], part))


@dataclass(slots=True)
class EngineDaemon(Daemon):
    """The engine, rules and alerts of a daemon, fed from the tick stream.

    Its engine steps run on the event loop, in the subscriber's rounds (``offloaded`` is
    False): each step is bounded (at most ``bus.subscriber.APPLY_TICKS`` ticks, cutting a
    batch if need be, and the snapshot clock's catch-up), the loop runs between two steps,
    and the checkpoint's stream cursor (position, and ticks of the next batch) is read in
    the same synchronous step as the engine state.

    Args:
        worker: this worker's name: its durable consumers are named after it, so two
            running workers must not share one.
        bus_symbols: the symbols consumed (tracked symbols that a ``[[feeds]]`` entry prices).
    """

    worker: str = "engine"
    bus_symbols: tuple[str, ...] = ()
    replays_ticks: ClassVar[bool] = True
    subscriber: TickSubscriber | None = field(default=None, init=False)
    _cursor: BusCursor | None = field(default=None, init=False)
    _last_batch: float = field(default_factory=time.monotonic, init=False)
    _marks: dict[str, OptionMark] = field(default_factory=dict, init=False)
    offloaded: ClassVar[bool] = False
    leases: Leases | None = field(default=None, init=False)
    trip: LatencyHistogram = field(default_factory=LatencyHistogram, init=False)
    _step_receipt: float = field(default=math.nan, init=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Take the leases of the worker's portfolios, then consume the bus until ``stop``.

        Raises:
            LeaseHeldError: another worker kept one of the portfolios for ``[bus] lease_wait``.
            LeaseLostError: another worker took one over (the process stops).
        """
        self.subscriber = TickSubscriber(
            self.config.bus,
            self.worker,
            self.bus_symbols,
            self._on_batch,
            self._cursor,
            on_option=self._on_option,
            may_apply=self._leased,
        )
        self.leases = Leases(self.config.bus, self.lease_keys(), self._lease_value())
        log.info(
            "engine_worker_start",
            worker=self.worker,
            symbols=list(self.bus_symbols),
            portfolios=[p.name for p in self.config.portfolios],
            after=self.subscriber.cursor().position,
        )
        async with asyncio.TaskGroup() as group:
            taken = asyncio.Event()
            tasks = [group.create_task(self.leases.run(taken)), group.create_task(self._beat())]
            await _first(taken.wait(), stop.wait())
            if not stop.is_set():
                tasks.append(group.create_task(self.subscriber.run()))
                await stop.wait()
            for task in tasks:
                task.cancel()
        log.info("engine_worker_stop", ticks=self.engine.ticks, alerts=len(self.alerts))

    def lease_keys(self) -> list[str]:
        """The lease keys of the worker: one per portfolio (the market's without any)."""
        names = [p.name for p in self.config.portfolios]
        return [lease_key(n) for n in names] if names else [MARKET_KEY]

    def _lease_value(self) -> LeaseValue:
        assert self.subscriber is not None
        owner = f"{socket.gethostname()}:{Path(self.config.state.dir).resolve()}"
        return LeaseValue(self.worker, owner, process_identity(), self.subscriber.durables)

    def _leased(self) -> bool:
        return self.leases is not None and self.leases.valid()

    def bus_cursor(self) -> BusCursor:
        """How far the applied ticks reach in the stream."""
        if self.subscriber is not None:
            return self.subscriber.cursor()
        return self._cursor or BusCursor(self.config.bus.stream, 0)

    def _on_option(self, mark: BusOptionMark) -> None:
        self._marks[mark.instrument] = OptionMark(mark.iv, mark.basis)

    def _option_marks(self) -> dict[str, OptionMark]:
        """The option marks the feeds role sent (the worker has no feeds of its own)."""
        return dict(self._marks)

    def _engine_marks(self) -> dict[str, OptionMark]:
        """Steps run on the event loop here, where the marks arrive: read them directly."""
        return self._option_marks()

    def _on_batch(self, messages: list[BusMessage]) -> None:
        if not messages:
            return
        started = self._last_batch = time.monotonic()
        self._step_receipt = newest_receipt(messages)
        apply_in_stream_order(self.clock, messages)
        if self.on_step is not None:
            self.on_step(time.monotonic() - started)

    def _on_snapshot(self, snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        """The daemon's, and the trip across the bus of the step's newest tick."""
        Daemon._on_snapshot(self, snap, events)
        if not math.isnan(self._step_receipt):  # a step of marks only: no trip to measure
            self.trip.observe(time.time() - self._step_receipt)

    async def _beat(self) -> None:
        """Liveness: the loop turns. Quiet-time snapshots come with the marks' clock."""
        while True:
            self._heartbeat = time.monotonic()
            await asyncio.sleep(HEARTBEAT_S)

    def not_ready(self, mono: float) -> list[str]:
        """The daemon's reasons, a lost bus connection, and a silent bus (no feeds role)."""
        reasons = Daemon.not_ready(self, mono)
        if self.subscriber is None or not self.subscriber.link.connected:
            reasons.append("bus disconnected")
        if not self._leased():
            reasons.append("portfolio leases not held (see riskmon bus status)")
        silent_s = mono - self._last_batch
        if silent_s > max(SILENT_BUS_S, 20 * float(self.config.bus.mark_interval)):
            reasons.append(f"nothing from the bus for {silent_s:.0f} s (is a feeds role running?)")
        return reasons

    def capture_state(self) -> Checkpoint:
        """Engine, rules, clock and the stream cursor of the same instant."""
        return capture(self.engine, self.rules, self.clock.next_boundary, self.bus_cursor())

    def restore_state(self, checkpoint: Checkpoint) -> None:
        """Continue from ``checkpoint``: its state, and the stream after its cursor.

        Raises:
            CheckpointError: no cursor of this stream (e.g. written by ``--role all``), or the
                checkpoint does not fit the configuration; nothing changes then.
        """
        cursor = checkpoint.bus
        if cursor is None or cursor.stream != self.config.bus.stream:
            where = "no bus cursor" if cursor is None else f"a cursor of stream {cursor.stream}"
            raise CheckpointError(
                f"checkpoint has {where}, not of stream {self.config.bus.stream}: its state "
                "cannot be matched to the ticks still to come"
            )
        self.clock.next_boundary = restore(checkpoint, self.engine, self.rules)
        self._cursor = cursor

    def carry_state(self, checkpoint: Checkpoint) -> CompatibleRestore:
        """Carry state and cursor across a reload."""
        report = restore_compatible(checkpoint, self.engine, self.rules)
        self.clock.next_boundary = checkpoint.clock_next
        self._cursor = checkpoint.bus
        return report


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
