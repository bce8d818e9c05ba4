"""The one session layer: owns a websocket per connection plan, for every venue.

Venue knowledge stays in the :class:`~feeds.venue.VenueSpec`; this module only moves frames.
A :class:`Connection` runs forever: connect, send the venue's greeting and subscribe frames at
the venue's rate, receive and hand frames to the parser, answer what the parser asks it to
answer, ping when idle, refresh subscriptions on request, replace itself before the venue's
connection lifetime runs out (opening the new socket first, so there is no gap), and reconnect
with a capped, jittered backoff that does not reset on a connection that dies young.

Every frame the session sends (greeting, subscribe, unsubscribe) and every socket it opens is
first checked against the venue's request budget (:mod:`feeds.budget`, figures in
:mod:`feeds.limits`): opening a socket or sending an initial subscription waits for room;
resubscriptions, which happen on a live socket, are held back (the instruments stay pending,
merged with later ones) rather than stall the receive loop.

Overflow policy: nothing is queued here. Parsed events go synchronously to the sink (the
router), which owns the one bounded tick buffer of the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from websockets.asyncio.client import connect as ws_connect

from feeds.backoff import Backoff, is_transient
from feeds.budget import RequestBudget, VenueBudget
from feeds.events import FeedEvent, FeedParseError, PriceKind, Reply, Status, StatusKind
from feeds.venue import ConnectionPlan, Parser, VenueSpec

log = structlog.get_logger("riskmon.feeds")

EventSink = Callable[[str, list[FeedEvent], float], None]
"""(venue, events, monotonic receive time) -> None; must not block."""


class Socket(Protocol):
    """The part of a websockets client connection the session uses."""

    async def recv(self) -> str | bytes: ...
    async def send(self, message: str) -> None: ...
    async def close(self) -> None: ...


Connector = Callable[[str], Awaitable[Socket]]


def default_connector(max_size: int = 1 << 20, open_timeout_s: float = 10.0) -> Connector:
    """websockets' client with a bounded message size and handshake timeout."""

    async def open_socket(url: str) -> Socket:
        return await ws_connect(
            url,
            max_size=max_size,
            open_timeout=open_timeout_s,
            ping_interval=20.0,
            ping_timeout=20.0,
            max_queue=64,
            close_timeout=1.0,
        )

    return open_socket


@dataclass(slots=True)
class FeedStats:
    """Counters of one connection, read by the metrics collector."""

    venue: str
    url: str
    connected: bool = False
    connections: int = 0
    reconnects: int = 0
    messages: int = 0
    parse_errors: int = 0
    gaps: int = 0
    venue_errors: int = 0
    resubscribes: int = 0
    requests: int = 0
    resubscribe_pending: int = 0
    last_error: str = ""


class _RestartError(Exception):
    """The connection must be replaced (maintenance notice, dead connection)."""


_ACTIONABLE = (Reply, Status)
"""Events the session acts on itself (send a reply, count a gap, restart); quotes only flow."""


@dataclass(slots=True)
class Connection:
    """One connection plan of one venue, kept alive until cancelled.

    Args:
        spec: the venue's protocol description.
        plan: URL, subscribe frames and instruments of this connection.
        kind: the price kind the instruments are subscribed for.
        sink: receives parsed events.
        connector: opens a socket (injectable for tests).
        backoff: reconnect policy.
        dead_after_s: no frame at all for this long (pings answered or not) restarts the socket.
        budget: the per-IP budgets of the venue, shared by its connections (the daemon passes
            one per venue group); a private one when None.
    """

    spec: VenueSpec
    plan: ConnectionPlan
    kind: PriceKind
    sink: EventSink
    connector: Connector = field(default_factory=default_connector)
    backoff: Backoff = field(default_factory=Backoff)
    dead_after_s: float = 60.0
    budget: VenueBudget | None = None
    stats: FeedStats = field(init=False)
    _resubscribe: set[str] = field(default_factory=set, init=False)
    _got_frame: bool = field(default=False, init=False)
    _last_frame: float = field(default=0.0, init=False)
    _shared: VenueBudget = field(init=False)
    _requests: RequestBudget = field(init=False)

    def __post_init__(self) -> None:
        self.stats = FeedStats(self.spec.name, self.plan.url)
        self._shared = self.budget or VenueBudget(self.spec.limits)
        self._requests = RequestBudget(self.spec.limits.requests_per_connection)

    def request_resubscribe(self, instruments: Sequence[str]) -> None:
        """Ask for the subscriptions of ``instruments`` to be refreshed on the live socket.

        The request is sent when the venue's request budget has room; until then the
        instruments stay pending (``stats.resubscribe_pending``).
        """
        self._resubscribe.update(i for i in instruments if i in self.plan.instruments)
        self.stats.resubscribe_pending = len(self._resubscribe)

    async def run(self) -> None:
        """Connect, pump and reconnect forever (until cancelled)."""
        loop = asyncio.get_running_loop()
        while True:
            started, transient = loop.time(), True
            self._got_frame = False
            try:
                sock, parser = await self._open()
                await self._pump(sock, parser, started)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except _RestartError as exc:
                log.info("feed_restart", venue=self.spec.name, reason=str(exc))
            except Exception as exc:  # classified: transient errors back off, others wait long
                transient = is_transient(exc)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                level = log.warning if transient else log.error
                level(
                    "feed_disconnected",
                    venue=self.spec.name,
                    url=self.plan.url,
                    error=self.stats.last_error,
                    exc_info=not transient,
                )
            finally:
                self.stats.connected = False
            self.backoff.connection_ended(loop.time() - started, self._got_frame)
            delay = self.backoff.next_delay(transient)
            self.stats.reconnects += 1
            await asyncio.sleep(delay)

    async def _open(self) -> tuple[Socket, Parser]:
        await self._wait_for(self._shared.connects)
        self._shared.connects.spend(1, asyncio.get_running_loop().time())
        sock = await self.connector(self.plan.url)
        # a new socket: a fresh per-connection budget, and its subscribe covers every instrument
        self._requests = RequestBudget(self.spec.limits.requests_per_connection)
        self._resubscribe.clear()
        self.stats.resubscribe_pending = 0
        try:
            await self._send_paced(sock, self.spec.on_connect, paced=False)
            await self._send_paced(sock, self.plan.subscribe)
        except BaseException:
            await sock.close()
            raise
        self.stats.connections += 1
        self.stats.connected = True
        log.info(
            "feed_connected",
            venue=self.spec.name,
            url=self.plan.url,
            instruments=len(self.plan.instruments),
        )
        return sock, self.spec.new_parser()

    async def _send_paced(self, sock: Socket, frames: Sequence[str], paced: bool = True) -> None:
        """Send frames no faster than the venue's subscribe rate, each within the budget."""
        gap = 1.0 / self.plan.subscribe_rate_hz
        loop = asyncio.get_running_loop()
        for n, frame in enumerate(frames):
            if n and paced:
                await asyncio.sleep(gap)
            await self._wait_for(self._requests, self._shared.requests)
            # no await between the check and the spend: connections sharing a budget
            # cannot both take its last slot
            self._spend(1, loop.time())
            await sock.send(frame)

    async def _wait_for(self, *budgets: RequestBudget) -> None:
        """Sleep until one more request fits every budget."""
        loop = asyncio.get_running_loop()
        while (wait := max(b.wait_s(1, loop.time()) for b in budgets)) > 0.0:
            if wait > 1.0:
                log.info("feed_budget_wait", venue=self.spec.name, wait_s=round(wait, 1))
            await asyncio.sleep(wait)

    def _spend(self, n: int, now: float) -> None:
        self._requests.spend(n, now)
        self._shared.requests.spend(n, now)
        self.stats.requests += n

    async def _pump(self, sock: Socket, parser: Parser, opened: float) -> None:
        """Receive until the socket fails or must be replaced (always ends with an exception).

        Liveness costs one deadline per check interval (a second at most), not one per frame:
        frames are received in rounds, each under a single ``asyncio.timeout`` that expires at
        the round's end, and a round also ends by itself when a frame arrives after that time.
        An expired round checks the silence (dead connection, idle ping); between rounds, with
        no receive pending, the connection pings when busy, rotates and resubscribes.
        """
        loop = asyncio.get_running_loop()
        check_s = min(self.spec.idle_ping_s, 1.0)
        self._last_frame = last_ping = loop.time()
        try:
            while True:
                ping = self.spec.idle_ping if self.spec.ping_when_busy else None
                if ping and loop.time() - last_ping >= self.spec.idle_ping_s:
                    await sock.send(ping)
                    last_ping = loop.time()
                if self.plan.max_lifetime_s and loop.time() - opened > self.plan.max_lifetime_s:
                    sock, parser, opened = await self._replace(sock)
                await self._flush_resubscribe(sock)
                try:
                    async with asyncio.timeout(check_s):
                        pending = await self._receive(sock, parser, loop.time() + check_s)
                except TimeoutError:
                    await self._idle(sock, loop.time())
                    continue
                if pending is not None:
                    await self._act(sock, *pending)
        finally:
            await sock.close()

    async def _receive(
        self, sock: Socket, parser: Parser, due: float
    ) -> tuple[list[FeedEvent], float] | None:
        """Receive frames and hand their events to the sink until a frame arrives at ``due``.

        The hot path: nothing here awaits but ``recv()``, so the round's deadline can only
        interrupt a receive (which websockets makes safe to cancel). A frame whose events ask
        for I/O or a restart (a reply, a status) ends the round and is returned, with its
        monotonic receive time, for :meth:`_act` to handle outside the deadline.
        """
        clock = asyncio.get_running_loop().time
        sink, venue = self.sink, self.spec.name
        while True:
            raw = await sock.recv()
            mono = self._last_frame = clock()
            self._got_frame = True
            events = self._parse(parser, raw)
            if events is not None:
                for event in events:
                    if isinstance(event, _ACTIONABLE):
                        return events, mono
                sink(venue, events, mono)
            if mono >= due:
                return None

    async def _idle(self, sock: Socket, now: float) -> None:
        """No frame ended the round: restart a dead connection, or ping an idle one."""
        idle = now - self._last_frame
        if idle > self.dead_after_s:
            raise _RestartError(f"no frame for {idle:.0f} s")
        if self.spec.idle_ping and idle >= self.spec.idle_ping_s:
            await sock.send(self.spec.idle_ping)
            self._last_frame = asyncio.get_running_loop().time()  # one ping per idle interval

    def _parse(self, parser: Parser, raw: str | bytes) -> list[FeedEvent] | None:
        """The frame's events, or None for a frame that does not parse (counted, logged)."""
        self.stats.messages += 1
        try:
            return parser.parse(raw, time.time())
        except FeedParseError as exc:
            self.stats.parse_errors += 1
            if self.stats.parse_errors <= 10 or self.stats.parse_errors % 1000 == 0:
                log.warning(
                    "feed_parse_error",
                    venue=self.spec.name,
                    error=str(exc),
                    total=self.stats.parse_errors,
                )
            return None

    async def _handle(self, sock: Socket, parser: Parser, raw: str | bytes, mono: float) -> None:
        events = self._parse(parser, raw)
        if events is not None:
            await self._act(sock, events, mono)

    async def _act(self, sock: Socket, events: list[FeedEvent], mono: float) -> None:
        """Send the replies a frame asks for, note its statuses, route it; restart if told."""
        restart = None
        for event in events:
            if isinstance(event, Reply):
                await sock.send(event.payload)
            elif isinstance(event, Status):
                restart = self._status(event) or restart
        self.sink(self.spec.name, events, mono)
        if restart:
            raise _RestartError(restart)

    def _status(self, event: Status) -> str | None:
        if event.kind is StatusKind.GAP:
            self.stats.gaps += 1
            log.warning("feed_gap", venue=self.spec.name, detail=event.detail)
        elif event.kind is StatusKind.ERROR:
            self.stats.venue_errors += 1
            log.warning("feed_venue_error", venue=self.spec.name, detail=event.detail)
        elif event.kind is StatusKind.MAINTENANCE:
            return f"maintenance notice: {event.detail}"
        return None

    async def _flush_resubscribe(self, sock: Socket) -> None:
        """Send the pending resubscriptions that the budget has room for now; keep the rest."""
        if not self._resubscribe or self.spec.resubscribe is None:
            self._resubscribe.clear()
            self.stats.resubscribe_pending = 0
            return
        batch = self._affordable(sorted(self._resubscribe))
        if batch is None:
            return  # no room: try again next round, with whatever else went quiet meanwhile
        instruments, frames = batch
        self._resubscribe.difference_update(instruments)
        self.stats.resubscribe_pending = len(self._resubscribe)
        self.stats.resubscribes += 1
        log.info("feed_resubscribe", venue=self.spec.name, instruments=instruments)
        await self._send_paced(sock, frames)

    def _affordable(self, instruments: list[str]) -> tuple[list[str], list[str]] | None:
        """The largest leading half-split of ``instruments`` whose frames fit the budget now."""
        assert self.spec.resubscribe is not None
        now = asyncio.get_running_loop().time()
        budgets = (self._requests, self._shared.requests)
        capacity = min((c for b in budgets if (c := b.capacity) is not None), default=None)
        while instruments:
            frames = self.spec.resubscribe(instruments, self.kind)
            fits = capacity is None or len(frames) <= capacity
            if fits and max(b.wait_s(len(frames), now) for b in budgets) == 0.0:
                return instruments, frames
            if len(instruments) == 1:
                return None
            instruments = instruments[: len(instruments) // 2]
        return None

    async def _replace(self, old: Socket) -> tuple[Socket, Parser, float]:
        """Open the successor first, wait for its first frame, then close the old socket."""
        loop = asyncio.get_running_loop()
        sock, parser = await self._open()
        async with asyncio.timeout(self.dead_after_s):
            first = await sock.recv()
        await old.close()
        log.info("feed_rotated", venue=self.spec.name, url=self.plan.url)
        await self._handle(sock, parser, first, loop.time())
        return sock, parser, loop.time()
