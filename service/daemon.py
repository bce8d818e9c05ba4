"""Composition root of the live daemon: feeds -> router -> engine -> rules -> alert listeners.

Tasks (one ``asyncio.TaskGroup``, nothing fire-and-forget): one per feed connection, the engine
loop, and the staleness watchdog. The engine loop drains the bounded tick buffer, applies the
ticks in event time and takes a snapshot at every ``[live] snapshot_interval`` of event time
(and after ``idle_snapshot`` of wall time without ticks, so staleness rules still run).

The control plane never waits on the computation: the engine's step (ticks through the guard
and the estimators, snapshots, rules) runs in one worker thread of the daemon's own (the numba
kernels release the GIL), so HTTP probes, scrapes and signals are served by the event loop
meanwhile. Every other touch of engine state (checkpoint capture, the positions API, a reload's
carry-over) goes through :meth:`Daemon.call`, which runs it in the same thread between steps:
serialised with the steps by construction. A step is bounded (the snapshot clock's catch-up
is), so waiting for the current one is always short. Alert events a step produced are handed
to the listeners and the outbox on the event loop, in order, after the step.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
import structlog

from feeds.budget import venue_budgets
from feeds.events import FeedEvent, OptionQuote
from feeds.plans import plan_feeds
from feeds.registry import VENUES
from feeds.resubscribe import ResubscribePolicy
from feeds.router import Router, TickBuffer
from feeds.session import Connection, Connector, default_connector
from feeds.venue import VenueSpec
from feeds.watchdog import Watchdog
from monitor.clock import SnapshotClock
from monitor.config.book import AccountConfig
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.guard import REASONS
from monitor.model import AlertEvent
from monitor.risk.book import OptionMark
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine
from service.checkpoint import Checkpoint, CompatibleRestore, capture, restore, restore_compatible

log = structlog.get_logger("riskmon.daemon")

AlertListener = Callable[[AlertEvent], None]
T = TypeVar("T")


def option_mark(quote: OptionQuote) -> OptionMark | None:
    """What accounts price an option with: mark IV as a fraction and the forward's basis.

    None without a positive mark IV. The basis is ``underlying_price / index_price`` (1 when
    the ticker lacks either).
    """
    if quote.mark_iv is None or not quote.mark_iv > 0:
        return None
    basis = 1.0
    if quote.underlying_price and quote.index_price:
        basis = quote.underlying_price / quote.index_price
    return OptionMark(quote.mark_iv / 100.0, basis)


@dataclass(frozen=True, slots=True)
class _Batch:
    """The ticks of one engine step, in event-time order (a ``TickBatchLike``)."""

    ts: npt.NDArray[np.float64]
    symbol: list[str]
    price: npt.NDArray[np.float64]
    venue: list[str] | None = None

    @classmethod
    def in_time_order(
        cls,
        ts: Sequence[float],
        symbol: list[str],
        price: Sequence[float],
        venue: list[str] | None = None,
    ) -> _Batch:
        """Drained tick columns sorted by event time, stably (equal times keep arrival order).

        Ticks that arrived in time order, the usual case, are checked, not sorted.
        """
        times = np.array(ts, dtype=np.float64)
        prices = np.array(price, dtype=np.float64)
        venues = venue or None
        if len(times) > 1 and not bool((times[1:] >= times[:-1]).all()):
            order = np.argsort(times, kind="stable").tolist()
            return cls(
                times[order],
                [symbol[i] for i in order],
                prices[order],
                None if venues is None else [venues[i] for i in order],
            )
        return cls(times, symbol, prices, venues)


@dataclass(slots=True)
class Daemon:
    """The running monitor for one configuration.

    Args:
        config: validated configuration.
        listeners: called with every alert event (console, sinks).
        connector: websocket opener (injectable for tests).
        venues: venue registry (injectable for tests).
        resubscribe: backoff between resubscribe requests of a quiet instrument.
        wall: the wall clock that venue timestamps and the event clock are checked against
            (the demo passes the simulator's clock, which runs faster).
    """

    config: Config
    listeners: Sequence[AlertListener] = ()
    connector: Connector = field(default_factory=default_connector)
    venues: Mapping[str, VenueSpec] = field(default_factory=lambda: VENUES)
    resubscribe: ResubscribePolicy = field(default_factory=ResubscribePolicy)
    wall: Callable[[], float] = time.time
    engine: Engine = field(init=False)
    rules: RuleEngine = field(init=False)
    buffer: TickBuffer = field(init=False)
    router: Router = field(init=False)
    connections: list[Connection] = field(init=False)
    watchdog: Watchdog = field(init=False)
    on_step: Callable[[float], None] | None = None
    on_alerts: Callable[[list[AlertEvent], RiskSnapshot], None] | None = None
    latest: RiskSnapshot | None = field(default=None, init=False)
    latest_computed_at: float = field(default=math.nan, init=False)
    """Unix time, on this process' own clock (never the demo's faster one), at which ``latest``
    was computed: its age is meaningful whatever event time does."""
    alerts: list[AlertEvent] = field(default_factory=list, init=False)
    clock: SnapshotClock = field(init=False)
    _heartbeat: float = field(default_factory=time.monotonic, init=False)
    _owner: dict[tuple[int, str], Connection] = field(default_factory=dict, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _executor: ThreadPoolExecutor = field(init=False)
    _pending: deque[tuple[RiskSnapshot, list[AlertEvent]]] = field(
        default_factory=deque, init=False
    )
    _option_cache: dict[str, OptionMark] = field(default_factory=dict, init=False)
    stateful: ClassVar[bool] = True
    """Whether checkpoints keep this daemon's state (the feeds role has none)."""
    replays_ticks: ClassVar[bool] = False
    """Whether a restart replays the ticks after the checkpoint (an engine worker on the bus)."""
    offloaded: ClassVar[bool] = True
    """Whether engine steps run in the daemon's worker thread (the engine role steps on the
    event loop: its ticks come in bounded rounds from the bus)."""

    def __post_init__(self) -> None:
        cfg = self.config
        self.engine = Engine(cfg)
        self.rules = RuleEngine(
            cfg.rules, [p.name for p in cfg.portfolios], self.engine.account_names
        )
        self.engine.marks = self._engine_marks
        self.buffer = TickBuffer(cfg.live.queue_ticks)
        self.router = Router(
            cfg.feeds, self.buffer, time.monotonic(), float(cfg.live.max_clock_skew)
        )
        self.clock = SnapshotClock(
            self.engine,
            self.rules,
            cfg.live.snapshot_interval,
            self._on_snapshot,
            self.metric,
            venue="live",
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="riskmon-engine")
        self.connections = []
        feeds = plan_feeds(cfg.feeds, self.venues, cfg.source or "config")
        budgets = venue_budgets([feed.spec.limits for feed in feeds])  # shared per venue host
        for feed in feeds:
            for plan in feed.plans:
                budget = budgets[feed.spec.limits.group]
                conn = Connection(
                    feed.spec, plan, feed.kind, self._on_events, self.connector, budget=budget
                )
                self.connections.append(conn)
                for instrument in plan.instruments:
                    self._owner[(feed.index, instrument)] = conn
        self.watchdog = Watchdog(self.router, self._owner, self.resubscribe)

    def _on_events(self, venue: str, events: list[FeedEvent], mono: float) -> None:
        self.router.on_events(venue, events, mono, self.wall())
        if len(self.buffer):
            self._wake.set()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, serialised with the engine steps: in the engine's worker thread.

        Whatever reads or changes engine, rule or clock state while the daemon runs goes
        through here (checkpoint capture, the positions API, a reload's carry-over). If the
        caller is cancelled, a call already running still completes (it is bounded).
        """
        if not self.offloaded:
            return fn(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def run(self, stop: asyncio.Event) -> None:
        """Run every task until ``stop`` is set, then cancel them all."""
        log.info(
            "daemon_start",
            feeds=len(self.config.feeds),
            connections=len(self.connections),
            symbols=len(self.engine.symbols),
        )
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c.run()) for c in self.connections]
            tasks.append(group.create_task(self._engine_loop()))
            tasks.append(group.create_task(self._watchdog()))
            await stop.wait()
            for task in tasks:
                task.cancel()
        await self.call(_nothing)  # the step under way when stopped, if any, completes
        self._deliver()
        log.info("daemon_stop", ticks=self.engine.ticks, alerts=len(self.alerts))

    @property
    def snapshots(self) -> int:
        """Snapshots taken so far."""
        return self.clock.snapshots

    def loop_alive(self, mono: float) -> bool:
        """Whether the engine loop turned within ``[live] stall_after`` (it turns at least
        every ``idle_snapshot``, and after every step)."""
        return mono - self._heartbeat < self.config.live.stall_after

    def not_ready(self, mono: float) -> list[str]:
        """Why the daemon is not ready (empty when ready)."""
        reasons = []
        if not self.loop_alive(mono):
            reasons.append("engine loop not turning")
        if self.latest is None or self.latest.market.avg_correlation is None:
            reasons.append("estimators warming up")
        reasons.extend(self.stale_feeds(mono))
        reasons.extend(self.frozen_figures())
        return reasons

    def clock_drift(self) -> float | None:
        """Wall clock minus the latest snapshot's event time, seconds (None before one).

        Quiet feeds do not make it grow (idle snapshots advance the event clock with the
        wall clock); a backlog, an engine that stopped, or a venue clock that lags do.
        """
        latest = self.latest
        return None if latest is None else self.wall() - latest.ts

    def rejecting(self) -> list[str]:
        """Universe symbols whose last ``[live] rejected_streak`` ticks were all rejected."""
        streak, limit = self.engine.guard.streak, self.config.live.rejected_streak
        index = {s: i for i, s in enumerate(self.engine.symbols)}
        return [s for s in self.config.universe.symbols if streak[index[s]] >= limit]

    def frozen_figures(self) -> list[str]:
        """Not-ready reasons for figures that no longer follow the market, if any."""
        reasons = []
        drift, limit = self.clock_drift(), float(self.config.live.max_clock_drift)
        if drift is not None and math.isfinite(drift) and abs(drift) > limit:
            where = "behind" if drift > 0 else "ahead of"
            reasons.append(
                f"event clock {abs(drift):.0f} s {where} the wall clock (limit {limit:g} s)"
            )
        rejecting = self.rejecting()
        if rejecting:
            reasons.append("every recent tick rejected for " + ", ".join(rejecting))
        return reasons

    def rejected(self) -> dict[tuple[str, str], int]:
        """Rejected ticks by (venue, reason): the router's and the engine's, every reason
        named for every configured venue."""
        counts: dict[tuple[str, str], int] = {
            (f.venue, r): 0 for f in self.config.feeds for r in REASONS
        }
        for source in (dict(self.router.rejected), dict(self.engine.rejected)):
            for key, count in source.items():
                counts[key] = counts.get(key, 0) + count
        return counts

    def stale_feeds(self, mono: float) -> list[str]:
        """A not-ready reason naming the universe symbols without a fresh feed, if any."""
        stale = [
            symbol
            for symbol in self.config.universe.symbols
            if (src := self.router.active(symbol, mono)) is None
            or mono - src.last_seen > src.stale_after_s
        ]
        return ["no fresh feed for " + ", ".join(stale)] if stale and self.config.feeds else []

    def publish_now(self) -> None:
        """Take a snapshot at the latest event time now (after a restore) and publish it."""
        if self.engine.ticks:  # options are priced with the marks of the last step
            self.latest = self.engine.snapshot(self.engine.last_event_ts)
            self.latest_computed_at = time.time()

    def capture_state(self) -> Checkpoint:
        """Estimator, rule and clock state, for a checkpoint."""
        return capture(self.engine, self.rules, self.clock.next_boundary)

    def restore_state(self, checkpoint: Checkpoint) -> None:
        """Continue exactly where ``checkpoint``, of the same configuration, left off.

        Raises:
            CheckpointError: the checkpoint does not fit; nothing changes then.
        """
        self.clock.next_boundary = restore(checkpoint, self.engine, self.rules)
        self.publish_now()

    def carry_state(self, checkpoint: Checkpoint) -> CompatibleRestore:
        """Carry what fits of a checkpoint of another configuration (a reload)."""
        report = restore_compatible(checkpoint, self.engine, self.rules)
        self.clock.next_boundary = checkpoint.clock_next
        self.publish_now()
        return report

    async def _engine_loop(self) -> None:
        live = self.config.live
        last_tick_mono = time.monotonic()
        while True:
            self._heartbeat = time.monotonic()
            if not self._wake.is_set():  # ticks already waiting need no idle timer
                try:
                    async with asyncio.timeout(live.idle_snapshot):
                        await self._wake.wait()
                except TimeoutError:
                    if self.engine.ticks:
                        now = self.engine.last_event_ts + time.monotonic() - last_tick_mono
                        await self._step(self.clock.advance_to, now)
                    continue
            self._wake.clear()
            ticks, oldest = self.buffer.drain_columns()
            if len(ticks):
                batch = _Batch.in_time_order(ticks.ts, ticks.symbol, ticks.price, ticks.venue)
                await self._step(self.clock.feed, batch)
                last_tick_mono = time.monotonic()
                if self.on_step is not None and oldest is not None:
                    self.on_step(last_tick_mono - oldest)
            await asyncio.sleep(0)  # let feeds run between batches

    async def _step(self, step: Callable[[Any], None], arg: Any) -> None:
        """One engine step in the worker thread, then its alert events on the event loop."""
        self._option_cache = self._option_marks()  # read on the loop, where feeds write them
        try:
            await self.call(step, arg)
        finally:
            self._deliver()

    def _on_snapshot(self, snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        """Called by the snapshot clock (in the worker thread when offloaded)."""
        self.latest = snap
        self.latest_computed_at = time.time()
        if events:
            self._pending.append((snap, events))
            if not self.offloaded:
                self._deliver()

    def _deliver(self) -> None:
        """Hand the alert events of the steps so far to the outbox and the listeners."""
        while self._pending:
            snap, events = self._pending.popleft()
            self._announce(snap, events)

    def _announce(self, snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        if self.on_alerts is not None:
            self.on_alerts(events, snap)
        for event in events:
            self.alerts.append(event)
            log.info(
                "alert",
                rule=event.rule,
                state=event.state.value,
                severity=event.severity.value,
                value=event.value,
                threshold=event.threshold,
                labels=dict(event.labels),
                portfolio=event.portfolio,
            )
            for listener in self.listeners:
                listener(event)

    def replace_accounts(self, accounts: Sequence[AccountConfig]) -> None:
        """Swap the accounts (positions and collateral) at once, keeping the estimators.

        Raises:
            ConfigError: the accounts are invalid; nothing changes then.
        """
        self.engine.replace_accounts(accounts)
        self.rules.set_accounts(self.engine.account_names)
        self.publish_now()
        log.info("accounts_replaced", accounts=list(self.engine.account_names))

    def _engine_marks(self) -> dict[str, OptionMark]:
        """What the engine prices options with: the marks read before the current step."""
        return self._option_cache

    def _option_marks(self) -> dict[str, OptionMark]:
        """Mark IV and basis of every option ticker the feeds delivered."""
        marks = {}
        for name, quote in self.router.options.items():
            mark = option_mark(quote)
            if mark is not None:
                marks[name] = mark
        return marks

    def metric(self, metric: str, labels: Mapping[str, str], portfolio: str | None) -> float | None:
        """Metrics that are not part of a snapshot (feed staleness)."""
        del portfolio
        if metric == "feed_staleness_seconds":
            return self.router.staleness_metric(labels, time.monotonic())
        return None

    async def _watchdog(self) -> None:
        """Detect silent instruments once a second; resubscribe them (with backoff), report."""
        await self.watchdog.run()


def _nothing() -> None:
    """A call that only waits for the calls before it."""
