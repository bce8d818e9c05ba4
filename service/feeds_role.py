"""``riskmon run --role feeds``: venue connections and routing, publishing ticks to the bus.

A :class:`FeedsDaemon` is a :class:`~service.daemon.Daemon` that keeps the feed connections,
the router (failover, staleness, resubscription) and the watchdog, and hands every routed tick
(with its frame's receive time) to a :class:`~bus.publisher.TickPublisher` instead of the
engine, which batches them per subject (``[bus] linger``, ``max_batch``), also marks the quiet
symbols every ``[bus] mark_interval``, and sends the latest mark IV of each option ticker
(``[bus] options_subject``). It keeps no estimator
state, so it writes no checkpoint. At shutdown it stops the feeds first and gives the
publisher ``FLUSH_S`` to publish what it still holds, closed by a mark on every symbol, so
that workers can apply everything published before it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import ClassVar

import structlog

from bus.publisher import TickPublisher
from bus.wire import BusOptionMark
from feeds.events import FeedEvent, OptionQuote
from service.daemon import Daemon, option_mark

log = structlog.get_logger("riskmon.feeds_role")

FLUSH_S = 2.0
LIVENESS_S = 10.0


@dataclass(slots=True)
class FeedsDaemon(Daemon):
    """Feeds, router and watchdog of a daemon; ticks go to JetStream."""

    publisher: TickPublisher = field(init=False)
    stateful: ClassVar[bool] = False

    def __post_init__(self) -> None:
        Daemon.__post_init__(self)
        self.publisher = TickPublisher(self.config.bus)

    def _on_events(self, venue: str, events: list[FeedEvent], mono: float) -> None:
        # The router only buffers ticks of the frame's venue: hand them over at once, each
        # with the frame's wall-clock receive time (workers can tell how old it is).
        recv = self.wall()
        self.router.on_events(venue, events, mono, recv)
        if len(self.buffer):
            ticks, _ = self.buffer.drain_columns()
            self.publisher.offer_many(venue, ticks.ts, ticks.symbol, ticks.price, mono, recv)
        for event in events:
            if isinstance(event, OptionQuote) and (mark := option_mark(event)) is not None:
                wire = BusOptionMark(venue, event.instrument, event.ts, mark.iv, mark.basis)
                self.publisher.offer_option(wire)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the feeds and the publisher until ``stop`` is set; then flush and stop."""
        log.info(
            "feeds_role_start",
            feeds=len(self.config.feeds),
            connections=len(self.connections),
            epoch=self.publisher.epoch,
        )
        async with asyncio.TaskGroup() as group:
            feeds = [group.create_task(c.run()) for c in self.connections]
            feeds.append(group.create_task(self._watchdog()))
            feeds.append(group.create_task(self._marks()))
            publishing = group.create_task(self.publisher.run())
            await stop.wait()
            for task in feeds:
                task.cancel()
            now, idle_s = time.monotonic(), float(self.config.live.idle_snapshot)
            self.publisher.mark(sorted(self.router.by_symbol), now, idle_s, every=True)
            flushed = await self.publisher.flush(FLUSH_S)
            publishing.cancel()
        stats = self.publisher.stats
        log.info(
            "feeds_role_stop",
            accepted=stats.accepted,
            published=stats.published,
            duplicates=stats.duplicates,
            dropped=stats.dropped,
            unpublished=0 if flushed else self.publisher.buffered,
        )

    async def _marks(self) -> None:
        """Mark the quiet symbols every ``[bus] mark_interval`` (see bus.wire)."""
        symbols = sorted(self.router.by_symbol)
        while True:
            await asyncio.sleep(float(self.config.bus.mark_interval))
            self.publisher.mark(symbols, time.monotonic(), float(self.config.live.idle_snapshot))

    def loop_alive(self, mono: float) -> bool:
        """Whether the publisher loop has turned recently (it wakes at least every second)."""
        return mono - self.publisher.heartbeat < LIVENESS_S

    def not_ready(self, mono: float) -> list[str]:
        """Not ready while the publisher stalls, the bus is down or a feed is stale."""
        reasons = []
        if not self.loop_alive(mono):
            reasons.append("publisher loop not turning")
        if not self.publisher.link.connected:
            reasons.append("bus disconnected")
        stalled = self.publisher.stalled_s()
        if stalled >= float(self.config.bus.publish_stall):
            reasons.append(f"publishes failing for {stalled:.0f} s (is NATS frozen?)")
        reasons.extend(self.stale_feeds(mono))
        return reasons
