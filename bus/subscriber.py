"""An engine worker's side of the bus: its symbols' ticks, in stream order, each applied once.

One durable pull consumer per symbol (``<consumer_prefix>-<worker>-<symbol>``, filter
``<prefix>.*.<symbol>``: the symbol's ticks from every venue, and its marks). Each *round*
sends every consumer one ``no_wait`` pull, hands what arrived to a
:class:`~bus.merge.StreamMerger`, and passes what the merger releases (stream order, see
:mod:`bus.merge`) to ``on_batch``, synchronously: the worker applies the batch and the cursor
(:meth:`TickSubscriber.cursor`) moves with it, with no ``await`` in between, so a checkpoint
taken at any other moment holds state and cursor of the same instant. Then the last message
applied of each consumer is acknowledged (``AckPolicy.ALL``).

Delivery is at least once: a message delivered again (after ``ack_wait``, or after a rewind)
has a stream sequence the merger already holds or applied, and is skipped and counted.
Whenever the order could have been broken -- the connection was lost or re-established, a pull
failed, or a consumer sequence skipped a delivery -- the worker *rewinds*: it drops what it
holds and recreates every consumer at the cursor's position + 1. At start the consumers are
created at the checkpoint's position + 1 (everything the stream holds when there is none).
A worker whose pulls bring nothing pauses, from 1 ms doubling up to ``[bus] poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.manager import JetStreamManager

from bus.jetstream import (
    TRANSIENT,
    BusProtocolError,
    Link,
    Puller,
    connect_beating,
    ensure_stream,
    recreate_consumer,
    sequences,
)
from bus.merge import StreamMerger
from bus.wire import (
    BusCursor,
    BusMark,
    BusMessage,
    BusOptionMark,
    BusTick,
    decode_message,
    decode_option_mark,
    symbol_filter,
)
from feeds.backoff import Backoff
from monitor.config.bus import BusConfig

log = structlog.get_logger("riskmon.bus")

BatchSink = Callable[[list[BusMessage]], None]
"""Receives each round's released ticks and marks, in stream order."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
FIRST_IDLE_PAUSE_S = 0.001


def name_token(text: str) -> str:
    """``text`` usable in a consumer name; a checksum keeps rewritten names apart."""
    safe = _UNSAFE.sub("_", text)
    return safe if safe == text else f"{safe}-{zlib.crc32(text.encode()):08x}"


class _LostDeliveryError(Exception):
    """A consumer sequence skipped: a delivery never arrived."""


_RETRIED: tuple[type[BaseException], ...] = (*TRANSIENT, BusProtocolError, _LostDeliveryError)


@dataclass(slots=True)
class SubscriberStats:
    """Counters of an engine worker's consumption.

    Attributes:
        consumed: ticks handed to the engine.
        marks: marks handed to the engine.
        duplicates: deliveries skipped because their stream sequence was already held or applied.
        gaps: ticks missing from the feeds role's per-(venue, symbol) sequences.
        rewinds: times the consumers were recreated at the cursor.
        undecodable: payloads that are not ticks (skipped).
        position: the cursor's stream position.
    """

    consumed: int = 0
    marks: int = 0
    duplicates: int = 0
    gaps: int = 0
    rewinds: int = 0
    undecodable: int = 0
    position: int = 0


@dataclass(slots=True)
class _Lane:
    subject: str
    durable: str
    puller: Puller | None = None
    delivered: int = 0  # last consumer sequence received


@dataclass(slots=True)
class TickSubscriber:
    """Consumes the ticks of ``symbols`` and hands them to ``on_batch`` in stream order.

    Args:
        bus: the ``[bus]`` configuration.
        worker: this worker's name (part of the durable consumer names).
        symbols: engine symbols to consume.
        on_batch: applies each round's ticks and marks (see :data:`BatchSink`).
        cursor_at_start: where the worker's checkpoint left off (None: from the start of the
            stream).
        on_option: receives the option marks published under ``[bus] options_subject``
            (plain NATS, latest only; None: not subscribed).
    """

    bus: BusConfig
    worker: str
    symbols: Sequence[str]
    on_batch: BatchSink
    cursor_at_start: BusCursor | None = None
    on_option: Callable[[BusOptionMark], None] | None = None
    stats: SubscriberStats = field(default_factory=SubscriberStats)
    link: Link = field(default_factory=Link)
    heartbeat: float = field(default_factory=time.monotonic)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.1, max_s=5.0))
    merger: StreamMerger[Msg] = field(init=False)
    _lanes: list[_Lane] = field(init=False)
    _last_seq: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict, init=False)
    _set_up: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        prefix, token = self.bus.consumer_prefix, name_token(self.worker)
        self._lanes = [
            _Lane(symbol_filter(self.bus.subject_prefix, s), f"{prefix}-{token}-{name_token(s)}")
            for s in self.symbols
        ]
        cursor = self.cursor_at_start
        usable = cursor is not None and cursor.stream == self.bus.stream
        position = cursor.position if usable and cursor is not None else 0
        applied = dict(cursor.subjects) if usable and cursor is not None else {}
        self.merger = StreamMerger([lane.subject for lane in self._lanes], position, applied)
        self.stats.position = position

    def cursor(self) -> BusCursor:
        """How far the ticks handed to ``on_batch`` reach."""
        return BusCursor(self.bus.stream, self.merger.position, self.merger.applied())

    async def run(self) -> None:
        """Connect and consume until cancelled; never gives up on a lost server."""
        name = f"riskmon-engine-{self.worker}"
        client = await connect_beating(self.bus, name, self.link, self._beat)
        jsm = client.jsm(timeout=float(self.bus.request_timeout))
        try:
            if self.on_option is not None:  # nats-py subscribes again after a reconnect
                await client.subscribe(f"{self.bus.options_subject}.>", cb=self._option)
            await self._consume(client, jsm)
        finally:
            for lane in self._lanes:
                if lane.puller is not None:
                    await lane.puller.close()
            self.link.closing = True
            with contextlib.suppress(*TRANSIENT):
                async with asyncio.timeout(2.0):
                    await client.close()

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    async def _option(self, msg: Msg) -> None:
        try:
            mark = decode_option_mark(msg.data)
        except msgspec.DecodeError:
            self.stats.undecodable += 1
            return
        if self.on_option is not None:
            self.on_option(mark)

    async def _consume(self, client: NatsClient, jsm: JetStreamManager) -> None:
        rewind, seen_reconnects, pause = True, self.link.reconnects, 0.0
        while True:
            self.heartbeat = time.monotonic()
            if not self.link.connected:
                await _wait(self.link.up, 1.0)
                continue
            if rewind or seen_reconnects != self.link.reconnects:
                seen_reconnects = self.link.reconnects
                rewind = not await self._rewind(client, jsm)
                continue
            try:
                progressed = await self._round()
            except _RETRIED as exc:
                log.warning("bus_consume_failed", worker=self.worker, error=str(exc) or repr(exc))
                rewind = True
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.backoff.attempt = 0
            pause = 0.0 if progressed else min(max(2 * pause, FIRST_IDLE_PAUSE_S), self._poll())
            if pause:
                await asyncio.sleep(pause)

    def _poll(self) -> float:
        return float(self.bus.poll_interval)

    async def _rewind(self, client: NatsClient, jsm: JetStreamManager) -> bool:
        """Recreate every consumer after the cursor; False (logged) when the server failed."""
        try:
            info = await ensure_stream(jsm, self.bus)
            self._check_stream(info.state.first_seq, info.state.last_seq)
            for lane in self._lanes:
                if lane.puller is None:
                    lane.puller = Puller(client, self.bus, lane.durable)
                await lane.puller.open()
                await recreate_consumer(
                    jsm, self.bus, lane.durable, lane.subject, self.merger.position
                )
                lane.delivered = 0
        except TRANSIENT as exc:
            log.warning("bus_rewind_failed", worker=self.worker, error=str(exc) or repr(exc))
            await asyncio.sleep(self.backoff.next_delay())
            return False
        self.merger.rewind()
        self.stats.rewinds += self._set_up  # the first setup is no rewind
        self._set_up = True
        log.info("bus_consumers_ready", worker=self.worker, after=self.merger.position)
        return True

    def _check_stream(self, first: int, last: int) -> None:
        position = self.merger.position
        if last < position:
            log.warning("bus_stream_behind_cursor", stream_last=last, position=position)
            self.merger.restart(0)
        elif position and first > position + 1:
            log.warning("bus_ticks_expired", missing=first - position - 1, position=position)

    async def _round(self) -> bool:
        """One pull per consumer; hand over what is released; True when anything arrived."""
        pulls = [lane.puller.pull(self.bus.fetch_batch) for lane in self._lanes if lane.puller]
        results = await asyncio.gather(*pulls)
        arrived = 0
        for lane, (messages, _) in zip(self._lanes, results, strict=True):
            arrived += self._hold(lane, messages)
        released = self.merger.release()
        self.on_batch(self._decode(released))
        self.stats.position = self.merger.position
        await self._acknowledge(released)
        return arrived > 0

    def _hold(self, lane: _Lane, messages: list[Msg]) -> int:
        held = 0
        for msg in messages:
            stream_seq, delivery = sequences(msg)
            if delivery != lane.delivered + 1:
                raise _LostDeliveryError(
                    f"{lane.durable}: delivery {delivery} after {lane.delivered}"
                )
            lane.delivered = delivery
            if self.merger.add(lane.subject, stream_seq, msg):
                held += 1
            else:
                self.stats.duplicates += 1
        return held

    def _decode(self, released: list[tuple[int, str, Msg]]) -> list[BusMessage]:
        messages: list[BusMessage] = []
        for _, _, msg in released:
            try:
                message = decode_message(msg.data)
            except msgspec.DecodeError:
                self.stats.undecodable += 1
                continue
            if isinstance(message, BusMark):
                self.stats.marks += 1
            else:
                self.stats.consumed += 1
                self._count_gap(message)
            messages.append(message)
        return messages

    def _count_gap(self, tick: BusTick) -> None:
        key = (tick.venue, tick.symbol)
        previous = self._last_seq.get(key)
        if previous is not None and previous[0] == tick.epoch and tick.seq > previous[1] + 1:
            self.stats.gaps += tick.seq - previous[1] - 1
        if previous is None or previous[0] != tick.epoch or tick.seq > previous[1]:
            self._last_seq[key] = (tick.epoch, tick.seq)

    async def _acknowledge(self, released: list[tuple[int, str, Msg]]) -> None:
        last: dict[str, Msg] = {lane: msg for _, lane, msg in released}
        for msg in last.values():
            await msg.ack()


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
