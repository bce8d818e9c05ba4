"""A local exchange: three websocket servers (Binance, Coinbase, Deribit) fed by a tick source.

The asyncio layer only moves bytes: venue behaviour lives in :mod:`feeds.simulator.endpoints`
and frame formats in :mod:`feeds.simulator.wire`. Simulated time runs at ``speed`` times real
time: ``sim_ts = start_ts + speed * (loop.time() - t0)``. A pump task advances the source every
``pump_interval_s`` and hands the new ticks to every connection; liveness rules (Coinbase
heartbeats, Deribit test_request) run in REAL seconds, like the venues'.

Backpressure: each connection has an outgoing queue of at most ``outbox_maxsize`` frames. When a
slow client lets it fill, the OLDEST frame is dropped and counted (``VenueStats.frames_dropped``),
so the simulator's memory stays bounded; on Coinbase this shows up as a ``sequence_num`` gap, as
it would on the real venue.

Tasks: the pump task is created by ``__aenter__`` and cancelled and awaited by ``__aexit__``,
which re-raises any error it died of (a TaskGroup spanning the two methods would break when they
run in different tasks, as async fixtures do). Each connection handler (owned by the websockets
server, closed and awaited on exit) runs its writer in its own TaskGroup. Nothing is
fire-and-forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import time
from types import TracebackType
from typing import Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from feeds.simulator import wire
from feeds.simulator.connections import Client, Outbox, VenueState, VenueStats
from feeds.simulator.endpoints import (
    BinanceEndpoint,
    CoinbaseEndpoint,
    DeribitEndpoint,
    Endpoint,
    binance_path_ok,
)
from feeds.simulator.market import MarketModel, SimTick, TickSource, default_crash_scenario

VENUES = ("binance", "coinbase", "deribit")
CLOSE_ACCEPT_AND_CLOSE = 1013  # "try again later": accepted, then closed at once
CLOSE_POLICY = 1008  # a liveness rule was broken (no subscribe, unanswered test_request)


class ExchangeSimulator:
    """Async context manager serving simulated Binance, Coinbase and Deribit on 127.0.0.1."""

    def __init__(
        self,
        source: TickSource | None = None,
        *,
        speed: float = 60.0,
        start_ts: float | None = None,
        seed: int = 1,
        pump_interval_s: float = 0.02,
        outbox_maxsize: int = 4096,
        min_heartbeat_s: float = 10.0,
        subscribe_deadline_s: float = 5.0,
        close_timeout_s: float = 2.0,
        send_buffer_bytes: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure the simulator; nothing starts before ``async with``.

        Args:
            source: tick source; default: a :class:`MarketModel` of
                :func:`default_crash_scenario` starting at ``start_ts`` with ``seed``.
            speed: simulated seconds per real second.
            start_ts: simulated start time for the default model (default: the wall clock).
            seed: seed of the default model.
            pump_interval_s: real seconds between two pump steps.
            outbox_maxsize: frames queued per connection before the oldest are dropped.
            min_heartbeat_s: smallest interval Deribit's public/set_heartbeat accepts (venue: 10).
            subscribe_deadline_s: Coinbase closes connections that do not subscribe in time.
            close_timeout_s: wait this long for a client's closing handshake, then abort (a
                client that stopped reading never completes it).
            send_buffer_bytes: kernel send buffer (SO_SNDBUF) of each accepted socket; None
                keeps the OS default (megabytes on loopback). Small values make a client that
                stops reading hit the outgoing queue quickly.
            host: interface to listen on.

        Raises:
            ValueError: a non-positive speed, pump interval or queue size.
        """
        if speed <= 0 or outbox_maxsize < 1 or pump_interval_s <= 0:
            raise ValueError("speed, pump_interval_s and outbox_maxsize must be positive")
        if source is None:
            scenario = default_crash_scenario()
            ts = time.time() if start_ts is None else start_ts
            source = MarketModel(scenario.symbols, scenario.regimes, seed, ts)
        self._source = source
        self._speed = speed
        self._pump_interval_s = pump_interval_s
        self._outbox_maxsize = outbox_maxsize
        self._host = host
        self._close_timeout_s = close_timeout_s
        self._send_buffer_bytes = send_buffer_bytes
        self._last_ticks: dict[str, SimTick] = {}
        self._t0 = 0.0
        self._pump_task: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._option = None
        if "BTCUSDT" in source.symbols:
            btc = source.start_price("BTCUSDT")
            self._option = wire.btc_option_for(source.start_ts, btc)
        self._venues = self._make_venues(min_heartbeat_s, subscribe_deadline_s)

    def _make_venues(self, min_heartbeat_s: float, deadline_s: float) -> dict[str, VenueState]:
        symbols = self._source.symbols
        products = {wire.coinbase_product(s): s for s in symbols}
        perps = {s: i for s, i in wire.DERIBIT_PERPETUALS.items() if s in symbols}
        option = self._option

        def coinbase(_: ServerConnection) -> Endpoint:
            return CoinbaseEndpoint(products, self._last_ticks, self._now(), deadline_s)

        def deribit(_: ServerConnection) -> Endpoint:
            return DeribitEndpoint(perps, option, min_heartbeat_s)

        def binance(ws: ServerConnection) -> Endpoint:
            return BinanceEndpoint(ws.request.path if ws.request else "/ws")

        factories = {"binance": binance, "coinbase": coinbase, "deribit": deribit}
        return {name: VenueState(name, factories[name]) for name in VENUES}

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the three servers and the pump."""
        await self._stack.__aenter__()
        try:
            for venue in self._venues.values():
                venue.server = await self._stack.enter_async_context(self._serve(venue))
            self._t0 = self._now()
            self._pump_task = asyncio.create_task(self._pump(), name="simulator-pump")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the pump, close every connection and wait for the handlers to finish.

        Raises:
            Exception: the error the pump task failed with, if it failed.
        """
        pump, self._pump_task = self._pump_task, None
        try:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
        finally:
            await self._stack.__aexit__(exc_type, exc, tb)

    def _serve(self, venue: VenueState) -> contextlib.AbstractAsyncContextManager[Server]:
        def process_request(ws: ServerConnection, request: Request) -> Response | None:
            if venue.reject_status is not None:
                status = http.HTTPStatus(venue.reject_status)
                return ws.respond(status, f"{status.phrase}\n")
            if venue.name == "binance" and not binance_path_ok(request.path):
                return ws.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
            return None

        async def handler(ws: ServerConnection) -> None:
            await self._handle(venue, ws)

        return serve(
            handler,
            self._host,
            0,
            process_request=process_request,
            close_timeout=self._close_timeout_s,
        )

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    @property
    def deribit_option(self) -> str | None:
        """The Deribit option instrument served (None without BTCUSDT in the source)."""
        return self._option.instrument if self._option else None

    def sim_time(self) -> float:
        """The current simulated time, Unix seconds."""
        return self._source.start_ts + self._speed * (self._now() - self._t0)

    # --- URLs ---------------------------------------------------------------------------------

    def _port(self, venue: str) -> int:
        server = self._venues[venue].server
        if server is None:
            raise RuntimeError("the simulator is not running: use `async with`")
        port: int = server.sockets[0].getsockname()[1]
        return port

    @property
    def binance_url(self) -> str:
        """``ws://HOST:PORT``; append ``/stream?streams=...``, ``/ws`` or ``/ws/<stream>``."""
        return f"ws://{self._host}:{self._port('binance')}"

    @property
    def coinbase_url(self) -> str:
        """``ws://HOST:PORT`` (any path is accepted)."""
        return f"ws://{self._host}:{self._port('coinbase')}"

    @property
    def deribit_url(self) -> str:
        """``ws://HOST:PORT/ws/api/v2``, the path of the real endpoint."""
        return f"ws://{self._host}:{self._port('deribit')}/ws/api/v2"

    # --- connections --------------------------------------------------------------------------

    async def _handle(self, venue: VenueState, ws: ServerConnection) -> None:
        venue.accepted += 1
        if venue.accept_and_close:
            await ws.close(CLOSE_ACCEPT_AND_CLOSE, "try again later")
            return
        if self._send_buffer_bytes is not None:
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        client = Client(ws, venue.make_endpoint(ws), Outbox(self._outbox_maxsize))
        venue.clients.add(client)
        try:
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(self._write(venue, client))
                await self._read(venue, client)
                writer.cancel()
        finally:
            venue.clients.discard(client)
            venue.dropped_closed += client.outbox.dropped

    async def _read(self, venue: VenueState, client: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in client.ws:
                now = self._now()
                replies = client.endpoint.on_message(raw, now, self.sim_time())
                venue.enqueue(client, replies)

    async def _write(self, venue: VenueState, client: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (frame := await client.outbox.get()) is not None:
                await client.ws.send(frame, text=True)
                venue.frames_sent += 1
            await client.ws.close(CLOSE_POLICY, client.outbox.close_request or "")

    async def _pump(self) -> None:
        while True:
            now = self._now()
            sim_ts = self.sim_time()
            ticks = self._source.events_until(sim_ts)
            for tick in ticks:
                self._last_ticks[tick.symbol] = tick
            for venue in self._venues.values():
                self._dispatch(venue, ticks, now, sim_ts)
            await asyncio.sleep(self._pump_interval_s)

    def _dispatch(self, venue: VenueState, ticks: list[SimTick], now: float, sim_ts: float) -> None:
        if venue.stalled:
            return
        if venue.silenced:
            ticks = [t for t in ticks if t.symbol not in venue.silenced]
        for client in list(venue.clients):
            frames = client.endpoint.on_ticks(ticks, sim_ts)
            timer = client.endpoint.on_timer(now, sim_ts)
            venue.enqueue(client, [*frames, *timer.frames])
            if timer.close_reason is not None:
                client.outbox.request_close(timer.close_reason)

    # --- fault injection ----------------------------------------------------------------------

    def _selected(self, venue: str | None) -> list[VenueState]:
        if venue is None:
            return list(self._venues.values())
        if venue not in self._venues:
            raise ValueError(f"unknown venue {venue!r}; expected one of {VENUES}")
        return [self._venues[venue]]

    def drop_connections(self, venue: str | None = None) -> int:
        """Abort every open connection (the client sees close code 1006); return how many."""
        dropped = 0
        for v in self._selected(venue):
            for client in list(v.clients):
                client.ws.transport.abort()
                dropped += 1
        return dropped

    def set_accept_and_close(self, venue: str, on: bool) -> None:
        """Complete new handshakes, then close at once with code 1013 (try again later)."""
        self._selected(venue)[0].accept_and_close = on

    def reject_handshakes(self, venue: str, status: int | None) -> None:
        """Answer new handshakes with HTTP ``status`` (e.g. 503); None accepts them again.

        Raises:
            ValueError: ``status`` is not an HTTP status code.
        """
        code = None if status is None else int(http.HTTPStatus(status))
        self._selected(venue)[0].reject_status = code

    def silence(self, venue: str, symbol: str, on: bool) -> None:
        """Stop (or resume) sending engine symbol ``symbol`` on ``venue``; others keep flowing."""
        silenced = self._selected(venue)[0].silenced
        if on:
            silenced.add(symbol)
        else:
            silenced.discard(symbol)

    def inject_gap(self, venue: str = "coinbase") -> None:
        """Make the next sequenced message of each connection skip one sequence number."""
        for client in self._selected(venue)[0].clients:
            client.endpoint.skip_sequence()

    def inject_malformed(self, venue: str, n: int) -> None:
        """Send ``n`` malformed frames on each connection, interleaved with the good ones."""
        for client in self._selected(venue)[0].clients:
            client.malformed_pending += n

    def stall(self, venue: str, on: bool) -> None:
        """Keep connections open but send nothing (queued frames are discarded)."""
        v = self._selected(venue)[0]
        v.stalled = on
        if on:
            for client in v.clients:
                client.outbox.clear()

    # --- observation --------------------------------------------------------------------------

    def connections(self, venue: str) -> int:
        """Connections open now."""
        return len(self._selected(venue)[0].clients)

    def subscriptions(self, venue: str) -> list[str]:
        """Subscriptions of all open connections, sorted (one entry per connection)."""
        clients = self._selected(venue)[0].clients
        return sorted(s for c in clients for s in c.endpoint.subscriptions())

    def stats(self, venue: str) -> VenueStats:
        """Counters of ``venue``."""
        return self._selected(venue)[0].stats()
