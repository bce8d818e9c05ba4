"""An engine worker's side of the bus: its symbols' ticks, in stream order, each applied once.

One durable pull consumer per symbol (``<consumer_prefix>-<worker>-<symbol>``, filter
``<prefix>.*.<symbol>``: the symbol's tick batches from every venue, and its marks). Each
*round* sends every consumer one ``no_wait`` pull, hands what arrived to a
:class:`~bus.merge.StreamMerger`, and passes what the merger releases (stream order, see
:mod:`bus.merge`) to ``on_batch`` in *steps* of at most ``apply_ticks`` ticks (a batch may be
cut between two steps), each synchronously: the worker applies the step and the cursor
(:meth:`TickSubscriber.cursor`: stream position, and ticks applied of the next message) moves
with it, with no ``await`` in between, so a checkpoint taken at any other moment holds state
and cursor of the same instant. Between steps the event loop runs (probes, signals,
checkpoints). Then the last message applied of each consumer is acknowledged
(``AckPolicy.ALL``).

Delivery is at least once: a message delivered again (after ``ack_wait``, or after a rewind)
has a stream sequence the merger already holds or applied, and is skipped and counted; the
ticks of a message partly applied before a restart are skipped up to the cursor's index.
Whenever the order could have been broken -- the connection was lost or re-established, a pull
failed, or a consumer sequence skipped a delivery -- the worker *rewinds*: it drops what it
holds and recreates every consumer at the cursor's position + 1. At start the consumers are
created at the checkpoint's position + 1 (everything the stream holds when there is none).
A worker whose pulls bring nothing pauses, from 1 ms doubling up to ``[bus] poll_interval``.

Catch-up. The merger holds a lane's messages past the watermark, unacknowledged, and
JetStream counts them against the consumer's ``max_ack_pending``; a ``no_wait`` pull asking
for more than that leaves is not answered until acknowledgements come (which they cannot,
while the merger waits for the other lanes): it timed out and rewound, a stall of
``request_timeout`` each time. So each pull asks for at most the room left; the lane at the
watermark holds nothing once released and always has room, so the merge always moves.
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
    BusBatch,
    BusCursor,
    BusMark,
    BusMessage,
    BusOptionMark,
    decode_message,
    decode_option_mark,
    symbol_filter,
)
from feeds.backoff import Backoff
from monitor.config.bus import BusConfig

log = structlog.get_logger("riskmon.bus")

BatchSink = Callable[[list[BusMessage]], None]
"""Receives each step's batches (possibly cut) and marks, in stream order."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
FIRST_IDLE_PAUSE_S = 0.001
APPLY_TICKS = 10_000
"""Ticks an engine step applies at most (a few milliseconds): the event loop runs between."""


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
        batches: tick batches (messages) handed to the engine, a cut one once.
        marks: marks handed to the engine.
        duplicates: deliveries skipped because their stream sequence was already held or applied.
        gaps: ticks missing from the feeds role's per-(venue, symbol) sequences.
        rewinds: times the consumers were recreated at the cursor.
        undecodable: payloads that are not ticks (skipped).
        position: the cursor's stream position.
    """

    consumed: int = 0
    batches: int = 0
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
        on_batch: applies each step's ticks and marks (see :data:`BatchSink`).
        cursor_at_start: where the worker's checkpoint left off (None: from the start of the
            stream).
        on_option: receives the option marks published under ``[bus] options_subject``
            (plain NATS, latest only; None: not subscribed).
        apply_ticks: ticks per engine step at most.
        may_apply: whether the worker may apply ticks now (its leases are certain); while it
            may not, nothing is pulled or applied, and consumption resumes with a rewind.
    """

    bus: BusConfig
    worker: str
    symbols: Sequence[str]
    on_batch: BatchSink
    cursor_at_start: BusCursor | None = None
    on_option: Callable[[BusOptionMark], None] | None = None
    apply_ticks: int = APPLY_TICKS
    may_apply: Callable[[], bool] | None = None
    stats: SubscriberStats = field(default_factory=SubscriberStats)
    link: Link = field(default_factory=Link)
    heartbeat: float = field(default_factory=time.monotonic)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.1, max_s=5.0))
    merger: StreamMerger[Msg] = field(init=False)
    _lanes: list[_Lane] = field(init=False)
    _last_seq: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict, init=False)
    _set_up: bool = field(default=False, init=False)
    _position: int = field(default=0, init=False)  # the cursor: see BusCursor
    _index: int = field(default=0, init=False)
    _applied: dict[str, int] = field(default_factory=dict, init=False)
    _resume: tuple[int, int] | None = field(default=None, init=False)  # (sequence, ticks done)

    def __post_init__(self) -> None:
        if self.apply_ticks < 1:
            raise ValueError(f"apply_ticks must be at least 1, got {self.apply_ticks}")
        prefix, token = self.bus.consumer_prefix, name_token(self.worker)
        self._lanes = [
            _Lane(symbol_filter(self.bus.subject_prefix, s), f"{prefix}-{token}-{name_token(s)}")
            for s in self.symbols
        ]
        cursor = self.cursor_at_start
        if cursor is not None and cursor.stream == self.bus.stream:
            self._position, self._index = cursor.position, cursor.index
            self._applied = dict(cursor.subjects)
        if self._index:
            self._resume = (self._position + 1, self._index)
        lanes = [lane.subject for lane in self._lanes]
        self.merger = StreamMerger(lanes, self._position, self._applied)
        self._applied = self.merger.applied()
        self.stats.position = self._position

    @property
    def durables(self) -> tuple[str, ...]:
        """The names of the worker's durable consumers."""
        return tuple(lane.durable for lane in self._lanes)

    def cursor(self) -> BusCursor:
        """How far the ticks handed to ``on_batch`` reach."""
        return BusCursor(self.bus.stream, self._position, dict(self._applied), self._index)

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
            if self.may_apply is not None and not self.may_apply():
                rewind = True  # what is held may be stale when the lease comes back
                await asyncio.sleep(self._poll())
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
                await recreate_consumer(jsm, self.bus, lane.durable, lane.subject, self._position)
                lane.delivered = 0
        except TRANSIENT as exc:
            log.warning("bus_rewind_failed", worker=self.worker, error=str(exc) or repr(exc))
            await asyncio.sleep(self.backoff.next_delay())
            return False
        if self.merger.position != self._position:  # a round was cut short
            self.merger.restart(self._position)
        self.merger.rewind()
        self.stats.rewinds += self._set_up  # the first setup is no rewind
        self._set_up = True
        log.info("bus_consumers_ready", worker=self.worker, after=self._position)
        return True

    def _check_stream(self, first: int, last: int) -> None:
        position = self._position
        if last < position:
            log.warning("bus_stream_behind_cursor", stream_last=last, position=position)
            self._position, self._index, self._resume = 0, 0, None
            self.merger.restart(0)
        elif position and first > position + 1:
            log.warning("bus_ticks_expired", missing=first - position - 1, position=position)

    async def _round(self) -> bool:
        """One pull per consumer; hand over what is released; True when anything arrived."""
        results = await asyncio.gather(*(self._pull(lane) for lane in self._lanes))
        arrived = 0
        for lane, (messages, _) in zip(self._lanes, results, strict=True):
            arrived += self._hold(lane, messages)
        released = self.merger.release()
        await self._apply(self._decode(released), self.merger.position)
        await self._acknowledge(released)
        return arrived > 0

    async def _pull(self, lane: _Lane) -> tuple[list[Msg], bool]:
        """Pull what the consumer may still deliver: held messages are unacknowledged.

        The merger holds a lane's messages past the watermark without acknowledging them,
        and JetStream counts them against ``max_ack_pending``; a pull for more than the room
        left is never answered (a ``no_wait`` pull waits, silently, for acknowledgements that
        cannot come while the merger waits for the other lanes), so it is cut to the room.
        The lane at the watermark holds nothing after a release: it always has room.
        """
        room = self.bus.max_ack_pending - self.merger.held_in(lane.subject)
        if lane.puller is None or room <= 0:
            return [], False
        return await lane.puller.pull(min(self.bus.fetch_batch, room))

    async def _apply(self, released: list[tuple[int, str, BusMessage]], watermark: int) -> None:
        """Hand the released messages to ``on_batch`` in steps of at most ``apply_ticks``
        ticks, moving the cursor with each; then to the watermark."""
        step = _Step()
        room = self.apply_ticks
        for seq, lane, message in released:
            if isinstance(message, BusMark):
                step.add(message, lane, seq)
                continue
            done = self._resumed_at(seq) if self._resume is not None else 0
            batch = message.after(done) if done else message
            size = len(batch)
            while size > room:  # cut: this step ends inside the batch
                step.add(batch.head(room), None, seq, room)
                done += room
                batch = batch.after(room)
                size -= room
                self._step(step, seq - 1, done)
                step, room = _Step(), self.apply_ticks
                await asyncio.sleep(0)  # probes, signals and checkpoints between steps
            step.add(batch, lane, seq, size)
            room -= size
            if not room:
                self._step(step, seq, 0)
                step, room = _Step(), self.apply_ticks
                await asyncio.sleep(0)
        self._step(step, watermark, 0)

    def _resumed_at(self, seq: int) -> int:
        """Ticks of message ``seq`` applied before a restart (the cursor's index)."""
        if self._resume is None or seq < self._resume[0]:
            return 0
        resume_seq, done = self._resume
        self._resume = None
        return done if seq == resume_seq else 0

    def _step(self, step: _Step, position: int, index: int) -> None:
        """Apply one step and move the cursor with it, synchronously (no await between)."""
        if step.messages:
            self.on_batch(step.messages)
        self._position, self._index = position, index
        self._applied.update(step.lanes)
        self.stats.position = position
        self.stats.consumed += step.ticks
        self.stats.batches += step.batches
        self.stats.marks += step.marks

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

    def _decode(self, released: list[tuple[int, str, Msg]]) -> list[tuple[int, str, BusMessage]]:
        messages: list[tuple[int, str, BusMessage]] = []
        for seq, lane, msg in released:
            try:
                message = decode_message(msg.data)
            except msgspec.DecodeError:
                self.stats.undecodable += 1
                continue
            if isinstance(message, BusBatch):
                self._count_gap(message)
            messages.append((seq, lane, message))
        return messages

    def _count_gap(self, batch: BusBatch) -> None:
        key = (batch.venue, batch.symbol)
        previous = self._last_seq.get(key)
        last = batch.seq + len(batch) - 1
        if previous is not None and previous[0] == batch.epoch and batch.seq > previous[1] + 1:
            self.stats.gaps += batch.seq - previous[1] - 1
        if previous is None or previous[0] != batch.epoch or last > previous[1]:
            self._last_seq[key] = (batch.epoch, last)

    async def _acknowledge(self, released: list[tuple[int, str, Msg]]) -> None:
        last: dict[str, Msg] = {lane: msg for _, lane, msg in released}
        for msg in last.values():
            await msg.ack()


@dataclass(slots=True)
class _Step:
    """The messages of one engine step and what applying them completes."""

    messages: list[BusMessage] = field(default_factory=list)
    lanes: dict[str, int] = field(default_factory=dict)  # lanes whose message ends here
    ticks: int = 0
    batches: int = 0
    marks: int = 0

    def add(self, message: BusMessage, lane: str | None, seq: int, ticks: int = 0) -> None:
        """Add a mark, a batch of ``ticks`` ticks, or (``lane`` None) a batch's first part."""
        self.messages.append(message)
        if lane is not None:
            self.lanes[lane] = seq
        if isinstance(message, BusMark):
            self.marks += 1
            return
        self.ticks += ticks
        self.batches += lane is not None


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
