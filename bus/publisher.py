"""The feeds role's side of the bus: ticks are published to JetStream in batches, at least once.

:meth:`TickPublisher.offer` (synchronous, on the tick path) gives the tick its per-(venue,
symbol) sequence and adds it to its subject's open batch. A batch is closed -- encoded once
(see :mod:`bus.wire`), given its message id and queued -- when it holds ``[bus] max_batch``
ticks, or ``[bus] linger`` after the first tick any open batch received (all open batches close
together: one message per subject per linger). :meth:`TickPublisher.mark`, called every
``[bus] mark_interval``, closes the open batches and queues a mark for each symbol that had no
tick since the last call (the watermarks engine workers order their symbols by).
:meth:`TickPublisher.run` sends windows of up to ``[bus] publish_window`` publishes and waits
for their acknowledgements:

- acknowledged: done (``published``, or ``duplicates`` when JetStream had already stored that
  message id, i.e. an earlier attempt was stored but its acknowledgement was lost);
- not acknowledged within ``publish_timeout``, or refused: put back at the front of the
  queue, in order, and sent again with the *same* message id after a capped, jittered
  backoff, so JetStream stores it once. A failed window halves the next one, a successful one
  doubles it (up to ``publish_window``). Nothing is sent while the connection is down.

Backpressure: the open batches and the queue hold at most ``[bus] publish_buffer`` ticks;
beyond that the oldest queued messages are dropped and their ticks counted (``dropped``),
which only coarsens the sampling of their symbols, as in the in-process tick buffer. Every
tick accepted is therefore either in the stream exactly once (in a batch counted in
``published + duplicates`` of this run), still buffered, or counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.manager import JetStreamManager

from bus.jetstream import STATUS, TRANSIENT, Link, connect_beating, ensure_stream
from bus.wire import (
    MSG_ID_HEADER,
    BusBatch,
    BusMark,
    BusMessage,
    BusOptionMark,
    encode_message,
    encode_option_mark,
    mark_subject,
    message_id,
    option_subject,
    tick_subject,
)
from feeds.backoff import Backoff
from monitor.config.bus import BusConfig
from monitor.model import Tick

log = structlog.get_logger("riskmon.bus")

IDLE_WAKE_S = 1.0  # the loop turns at least this often (liveness heartbeat)


def new_epoch() -> str:
    """A token for this process run: start time (hex seconds) and 24 random bits."""
    return f"{int(time.time()):x}{secrets.token_hex(3)}"


@dataclass(slots=True)
class PublisherStats:
    """Counters of the feeds role's publishing.

    Attributes:
        accepted: ticks given a sequence and buffered.
        batches: batches closed (each one message).
        marks: marks buffered (for symbols without a tick during ``mark_interval``).
        published: messages (batches and marks) JetStream acknowledged as newly stored.
        published_ticks: ticks in the batches JetStream acknowledged as newly stored.
        duplicates: re-sent messages JetStream had already stored (same message id).
        errors: publish windows that failed (timeouts, refusals, lost connection).
        dropped: ticks dropped with the oldest messages of the full buffer.
        option_marks: option marks sent (plain NATS, outside the stream; latest only).
    """

    accepted: int = 0
    batches: int = 0
    marks: int = 0
    published: int = 0
    published_ticks: int = 0
    duplicates: int = 0
    errors: int = 0
    dropped: int = 0
    option_marks: int = 0


@dataclass(frozen=True, slots=True)
class _Outgoing:
    subject: str
    payload: bytes
    msg_id: str
    ticks: int  # what it counts against the buffer: its ticks, or 1 for a mark
    batch: bool = True


@dataclass(slots=True)
class _Open:
    """One subject's batch being filled."""

    venue: str
    symbol: str
    subject: str
    seq: int  # the first tick's sequence
    ts: list[float] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    recv: list[float] = field(default_factory=list)


@dataclass(slots=True)
class TickPublisher:
    """Batches ticks, adds marks, and publishes both to the tick stream.

    Args:
        bus: the ``[bus]`` configuration.
        epoch: token of this run, part of every message id (default: :func:`new_epoch`).
        backoff: delays between failed windows.
        clock: the monotonic clock that times the linger.
    """

    bus: BusConfig
    epoch: str = field(default_factory=new_epoch)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.05, max_s=2.0))
    clock: Callable[[], float] = time.monotonic
    stats: PublisherStats = field(default_factory=PublisherStats)
    link: Link = field(default_factory=Link)
    heartbeat: float = field(default_factory=time.monotonic)
    _queue: deque[_Outgoing] = field(default_factory=deque)
    _queued_ticks: int = 0
    _open: dict[str, dict[str, _Open]] = field(default_factory=dict)  # by venue, then symbol
    _close_at: float = math.inf
    _seq: dict[tuple[str, str], int] = field(default_factory=dict)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _empty: asyncio.Event = field(default_factory=asyncio.Event)
    _stream_ok: bool = False
    _inflight: int = 0
    _width: int = 0  # publishes per window: halved after a failure, doubled after a success
    _mark_seq: dict[str, int] = field(default_factory=dict)
    _ticked: set[str] = field(default_factory=set)
    _latest_ts: float | None = None
    _latest_mono: float = 0.0
    _options: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    _limit: int = 0  # [bus] max_batch, read once
    _settled_at: float | None = None  # last time nothing was owed, or a window was stored
    _stall_logged: bool = False

    def __post_init__(self) -> None:
        self._limit = self.bus.max_batch

    @property
    def buffered(self) -> int:
        """Ticks and marks waiting to be published or acknowledged (or re-sent)."""
        return self._open_count() + self._queued_ticks + self._inflight

    def stalled_s(self) -> float:
        """How long messages have waited with no publish stored (0: nothing owed)."""
        if not self._queue and not self._inflight:
            return 0.0
        settled = self._settled_at
        return 0.0 if settled is None else max(0.0, self.clock() - settled)

    def _watch_stall(self) -> None:
        """Log once when publishes have failed for ``[bus] publish_stall``, once when they
        succeed again."""
        stalled = self.stalled_s()
        if not self._queue and not self._inflight:
            self._settled_at = self.clock()
        if stalled >= float(self.bus.publish_stall) and not self._stall_logged:
            self._stall_logged = True
            log.error(
                "bus_publish_stalled", stalled_s=round(stalled, 1), buffered=self.buffered,
                connected=self.link.connected, errors=self.stats.errors,
            )  # fmt: skip
        elif stalled == 0.0 and self._stall_logged:
            self._stall_logged = False
            log.info("bus_publish_recovered", errors=self.stats.errors)

    def _open_count(self) -> int:
        return sum(len(b.ts) for batches in self._open.values() for b in batches.values())

    def offer(self, venue: str, tick: Tick, mono: float, recv: float = math.nan) -> None:
        """Give ``tick`` (priced by ``venue``, received at ``mono``, at wall-clock ``recv``)
        its sequence and add it to its subject's open batch."""
        batches = self._open.get(venue)
        if batches is None:
            batches = self._open[venue] = {}
        batch = batches.get(tick.symbol)
        if batch is None:
            batch = batches[tick.symbol] = self._new_batch(venue, tick.symbol)
        batch.ts.append(tick.ts)
        batch.price.append(tick.price)
        batch.recv.append(recv)
        self.stats.accepted += 1
        self._latest_mono = mono
        if len(batch.ts) >= self._limit:
            self._close(batch)
            self._trim()

    def offer_many(
        self,
        venue: str,
        ts: Sequence[float],
        symbols: Sequence[str],
        prices: Sequence[float],
        mono: float,
        recv: float = math.nan,
    ) -> None:
        """:meth:`offer` for columns of ticks of one venue, all received at ``mono`` and
        ``recv`` (one frame's, as the router drains them)."""
        batches = self._open.get(venue)
        if batches is None:
            batches = self._open[venue] = {}
        limit = self._limit
        for t, symbol, price in zip(ts, symbols, prices, strict=True):
            batch = batches.get(symbol)
            if batch is None:
                batch = batches[symbol] = self._new_batch(venue, symbol)
            batch.ts.append(t)
            batch.price.append(price)
            batch.recv.append(recv)
            if len(batch.ts) >= limit:
                self._close(batch)
                self._trim()
        self.stats.accepted += len(ts)
        self._latest_mono = mono

    def _new_batch(self, venue: str, symbol: str) -> _Open:
        """Open a batch for a subject; the first open one starts the linger."""
        if self._close_at == math.inf:
            self._close_at = self.clock() + float(self.bus.linger)
            self._ready.set()  # the loop learns when to close
        self._ticked.add(symbol)
        subject = tick_subject(self.bus.subject_prefix, venue, symbol)
        return _Open(venue, symbol, subject, self._seq.get((venue, symbol), 0) + 1)

    def close_due(self) -> bool:
        """Close the open batches once their linger has passed; whether it had."""
        if not self._open or self.clock() < self._close_at:
            return False
        self.close_batches()
        return True

    def close_batches(self) -> None:
        """Close every open batch now (queued for publishing, in subject order of arrival)."""
        for batches in list(self._open.values()):
            for batch in list(batches.values()):
                self._close(batch)
        self._trim()

    def _close(self, batch: _Open) -> None:
        venue, symbol, n = batch.venue, batch.symbol, len(batch.ts)
        batches = self._open[venue]
        del batches[symbol]
        if not batches:
            del self._open[venue]
        self._seq[(venue, symbol)] = batch.seq + n - 1
        if self._latest_ts is None or max(batch.ts) > self._latest_ts:
            self._latest_ts = max(batch.ts)
        wire = BusBatch.of(venue, symbol, self.epoch, batch.seq, batch.ts, batch.price, batch.recv)
        self._queue.append(_Outgoing(batch.subject, encode_message(wire), message_id(wire), n))
        self._queued_ticks += n
        self.stats.batches += 1
        if not self._open:
            self._close_at = math.inf
        self._ready.set()

    def mark(
        self, symbols: Iterable[str], mono: float, idle_after_s: float, every: bool = False
    ) -> None:
        """Close the open batches; queue a mark for every symbol of ``symbols`` without a
        tick since the last call.

        Once no tick at all came for ``idle_after_s``, every symbol is marked, with the
        event-time clock: the last tick's time plus the silence since. ``every`` marks every
        symbol (at shutdown, so that workers can apply everything published before).
        """
        self.close_batches()
        clock = None
        if self._latest_ts is not None and mono - self._latest_mono >= idle_after_s:
            clock = self._latest_ts + (mono - self._latest_mono)
        for symbol in symbols:
            if symbol in self._ticked and clock is None and not every:
                continue
            seq = self._mark_seq.get(symbol, 0) + 1
            self._mark_seq[symbol] = seq
            wire = BusMark(symbol, seq, self.epoch, clock)
            self._append(mark_subject(self.bus.subject_prefix, symbol), wire)
            self.stats.marks += 1
        self._ticked.clear()

    def offer_option(self, mark: BusOptionMark) -> None:
        """Keep ``mark`` to send: only the latest of each option goes out (no retries)."""
        subject = option_subject(self.bus.options_subject, mark.venue, mark.instrument)
        self._options[mark.instrument] = (subject, encode_option_mark(mark))
        self._ready.set()

    async def _send_options(self, client: NatsClient) -> None:
        """Publish the pending option marks; on a refusal keep the unsent for the next turn."""
        items = list(self._options.items())
        self._options = {}
        for i, (_, (subject, payload)) in enumerate(items):
            try:
                await client.publish(subject, payload)
            except TRANSIENT:
                for name, item in items[i:]:
                    self._options.setdefault(name, item)  # a mark offered meanwhile is newer
                return
            self.stats.option_marks += 1

    def _append(self, subject: str, message: BusMessage) -> None:
        payload = encode_message(message)
        self._queue.append(_Outgoing(subject, payload, message_id(message), 1, batch=False))
        self._queued_ticks += 1
        self._trim()
        self._ready.set()

    def _trim(self) -> None:
        """Drop the oldest queued messages while more than ``publish_buffer`` ticks wait (a
        window in flight is not counted: its ticks are sent, or put back if it fails)."""
        while self._open_count() + self._queued_ticks > self.bus.publish_buffer and self._queue:
            dropped = self._queue.popleft()
            self._queued_ticks -= dropped.ticks
            self.stats.dropped += dropped.ticks

    async def run(self) -> None:
        """Connect, make sure the stream exists, and publish until cancelled."""
        name = f"riskmon-feeds-{self.epoch}"
        client = await connect_beating(self.bus, name, self.link, self._beat)
        try:
            jsm = client.jsm(timeout=float(self.bus.request_timeout))
            acks = AckInbox(client)
            await acks.open()
            while True:
                await self._turn(client, jsm, acks)
        finally:
            await _close(client, self.link)

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    async def flush(self, within_s: float) -> bool:
        """Close the open batches and wait until everything is published (at shutdown);
        False when time ran out."""
        self.close_batches()
        if self.buffered:
            self._empty.clear()
            await _wait(self._empty, within_s)
        return not self.buffered

    async def _turn(self, client: NatsClient, jsm: JetStreamManager, acks: AckInbox) -> None:
        self.heartbeat = time.monotonic()
        self._watch_stall()
        if self._options and self.link.connected:
            await self._send_options(client)
        self.close_due()
        if not self._queue:
            if not self._open:
                self._empty.set()
            self._ready.clear()  # set again by a full batch, or the first tick of a batch
            await _wait(self._ready, min(IDLE_WAKE_S, max(0.0, self._close_at - self.clock())))
        elif not self.link.connected:
            await _wait(self.link.up, IDLE_WAKE_S)
        elif not self._stream_ok:
            await self._ensure_stream(jsm)
        else:
            await self._send_window(client, acks)

    async def _ensure_stream(self, jsm: JetStreamManager) -> None:
        try:
            await ensure_stream(jsm, self.bus)
        except TRANSIENT as exc:
            log.warning("bus_stream_unavailable", stream=self.bus.stream, error=str(exc))
            await asyncio.sleep(self.backoff.next_delay())
            return
        self._stream_ok = True

    async def _send_window(self, client: NatsClient, acks: AckInbox) -> None:
        width = min(len(self._queue), self._width or self.bus.publish_window)
        window = [self._queue.popleft() for _ in range(width)]
        sent = sum(item.ticks for item in window)
        self._queued_ticks -= sent
        self._inflight = sent
        reply = acks.start(len(window))
        try:
            for k, item in enumerate(window):
                headers = {MSG_ID_HEADER: item.msg_id}
                await client.publish(
                    item.subject, item.payload, reply=f"{reply}{k}", headers=headers
                )
        except TRANSIENT as exc:
            log.debug("bus_publish_refused", error=str(exc))
        outcomes = await acks.wait(float(self.bus.publish_timeout))
        self._inflight = 0
        failed = [item for item, outcome in zip(window, outcomes, strict=True) if outcome is None]
        self.stats.published += outcomes.count(Stored.NEW)
        self.stats.published_ticks += sum(
            item.ticks
            for item, outcome in zip(window, outcomes, strict=True)
            if outcome is Stored.NEW and item.batch
        )
        self.stats.duplicates += outcomes.count(Stored.DUPLICATE)
        if failed:
            self.stats.errors += 1
            self._width = max(1, width // 2)
            self._stream_ok = False  # the stream may be gone: check before the next window
            self._queue.extendleft(reversed(failed))
            self._queued_ticks += sum(item.ticks for item in failed)
            self._trim()
            await asyncio.sleep(self.backoff.next_delay())
        else:
            self._settled_at = self.clock()
            if self._width:
                self._width = min(self.bus.publish_window, 2 * self._width)
            self.backoff.attempt = 0


class Stored(enum.Enum):
    """What JetStream answered to one publish."""

    NEW = "new"
    DUPLICATE = "duplicate"


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, object] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


class AckInbox:
    """The acknowledgements of one window of publishes, on one subscription.

    Publish ``k`` of window ``w`` asks for its answer on ``<inbox>.<w>.<k>``; answers to an
    earlier window (late, after its timeout) are ignored. Cheaper than nats-py's
    ``publish_async`` (a future per message and the acknowledgement parsed with ``json``).
    """

    def __init__(self, client: NatsClient) -> None:
        self._client = client
        self._inbox = ""
        self._window = 0
        self._outcomes: list[Stored | None] = []
        self._answered: list[bool] = []
        self._missing = 0
        self._done: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """Subscribe the inbox."""
        self._inbox = self._client.new_inbox()
        await self._client.subscribe(f"{self._inbox}.>", cb=self._on_answer)

    def start(self, size: int) -> str:
        """Begin a window of ``size`` publishes; the reply subject prefix (append ``k``)."""
        self._window += 1
        self._outcomes = [None] * size
        self._answered = [False] * size
        self._missing = size
        self._done = asyncio.get_running_loop().create_future()
        if size == 0:
            self._done.set_result(None)
        return f"{self._inbox}.{self._window}."

    async def wait(self, timeout_s: float) -> list[Stored | None]:
        """Each publish's outcome, in order; None: refused or unanswered within ``timeout_s``."""
        assert self._done is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._done)
        return list(self._outcomes)

    async def _on_answer(self, msg: Msg) -> None:
        window, _, index = msg.subject[len(self._inbox) + 1 :].partition(".")
        if window != str(self._window) or self._done is None or self._done.done():
            return
        k = int(index)
        if self._answered[k]:
            return
        self._answered[k] = True
        self._outcomes[k] = _outcome(msg)
        self._missing -= 1
        if self._missing == 0:
            self._done.set_result(None)


def _outcome(msg: Msg) -> Stored | None:
    if msg.headers and msg.headers.get(STATUS):
        return None  # 503: no stream listens on the subject (not yet created, or deleted)
    try:
        ack = _ack_decoder.decode(msg.data)
    except msgspec.DecodeError:
        return None
    if ack.error is not None or ack.seq <= 0:
        return None
    return Stored.DUPLICATE if ack.duplicate else Stored.NEW


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


async def _close(client: NatsClient, link: Link) -> None:
    link.closing = True
    with contextlib.suppress(*TRANSIENT):
        async with asyncio.timeout(2.0):
            await client.close()
