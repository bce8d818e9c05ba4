"""A quiet symbol for ten minutes of accelerated time, against local venues on loopback.

The real session, router and watchdog run on an accelerated event loop (``accelerated.py``)
against small venues speaking Coinbase's and OKX's wire protocols. They check that a quiet
instrument is resubscribed on a growing backoff (not every 30 s for ever), that the requests
stay within the venue's request budget, that the snapshot Coinbase replays after each
resubscribe does not make the instrument fresh, and that a real new trade does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import random
import textwrap
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from feeds.events import PriceKind
from feeds.limits import VenueLimits, Window
from feeds.resubscribe import ResubscribePolicy
from feeds.router import Router, Source, TickBuffer
from feeds.session import Connection, Socket
from feeds.simulator import ExchangeSimulator, SimTick, wire
from feeds.simulator.endpoints import CoinbaseEndpoint
from feeds.venue import VenueSpec
from feeds.venues.bybit import BYBIT
from feeds.venues.coinbase import COINBASE
from feeds.venues.okx import OKX
from feeds.watchdog import Watchdog
from monitor.config.loading import load_config
from monitor.config.schema import Config
from tests.integration.accelerated import SCALE, run_accelerated, until
from tests.integration.test_live_feeds import TIMEOUT_S
from tests.integration.test_service import Process, _free_port, _get, _wait_http

QUIET_S = 600.0
"""Ten minutes of silence, in loop seconds."""
SLACK_S = SCALE / 2
"""How late (loop seconds) a request may come on a loaded machine: half a real second."""
STALE_AFTER_S = 30.0
NO_JITTER = ResubscribePolicy(rand=lambda: 0.5)


def _config(tmp_path: Path, venue: str, symbols: list[str]) -> Config:
    aliases = ", ".join(f'"{s}" = "{s.replace("-", "")}"' for s in symbols)
    text = f"""
    [universe]
    symbols = {json.dumps([s.replace("-", "") for s in symbols])}

    [[feeds]]
    venue = "{venue}"
    symbols = {json.dumps(symbols)}
    stale_after = "{STALE_AFTER_S:g}s"
    aliases = {{ {aliases} }}
    """
    path = tmp_path / "quiet.toml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, environ={})


async def _connect(url: str) -> Socket:
    """websockets' client with timeouts scaled to the accelerated loop and no keepalive pings."""
    return await ws_connect(url, open_timeout=10 * SCALE, ping_interval=None, close_timeout=SCALE)


def _tick(symbol: str, price: float, trade_id: int) -> SimTick:
    bid, ask = price * (1 - 1e-4), price * (1 + 1e-4)
    return SimTick(time.time(), symbol, price, bid, ask, 0.1, True, trade_id, 2, 0.5)


@dataclasses.dataclass
class Request:
    """A subscribe or unsubscribe request as the venue received it (loop time)."""

    at: float
    op: str
    instruments: tuple[str, ...]


class FakeCoinbase:
    """Coinbase Advanced Trade on 127.0.0.1: the simulator's sans-I/O endpoint, scripted trades.

    ``last`` is what a subscribe's snapshot replays (the last trade of each product), exactly
    as the venue does; a trade is sent as a live ``update`` at the next pump (each loop second,
    with the heartbeat).
    """

    def __init__(self) -> None:
        self.last: dict[str, SimTick] = {}
        self.requests: list[Request] = []
        self._pending: list[SimTick] = []
        self._endpoints: list[tuple[ServerConnection, CoinbaseEndpoint]] = []
        self._ids = iter(range(1, 10**9))

    def trade(self, symbol: str, price: float) -> None:
        """A trade now (wall-clock time), sent at the next pump and kept for snapshots."""
        tick = _tick(symbol, price, next(self._ids))
        self.last[symbol] = tick
        self._pending.append(tick)

    async def handler(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        products = {wire.coinbase_product(s): s for s in ("BTCUSDT", "ETHUSDT")}
        endpoint = CoinbaseEndpoint(products, self.last, loop.time(), subscribe_deadline_s=1e9)
        self._endpoints.append((ws, endpoint))
        async for raw in ws:
            message = json.loads(raw)
            if message.get("channel") == "market_trades":
                ids = tuple(message["product_ids"])
                self.requests.append(Request(loop.time(), message["type"], ids))
            for frame in endpoint.on_message(raw, loop.time(), time.time()):
                await ws.send(frame, text=True)

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            ticks, self._pending = self._pending, []
            for ws, endpoint in list(self._endpoints):
                frames = endpoint.on_ticks(ticks, time.time())
                frames += endpoint.on_timer(loop.time(), time.time()).frames
                with contextlib.suppress(Exception):
                    for frame in frames:
                        await ws.send(frame, text=True)

    def resubscribes(self, product: str) -> list[Request]:
        """Subscribe requests for ``product`` after the first (the connection's own)."""
        subscribes = [r for r in self.requests if r.op == "subscribe" and product in r.instruments]
        return subscribes[1:]


@contextlib.asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run the coroutines as tasks for the duration of the block, then cancel them."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c) for c in coroutines]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()


def _gaps(times: list[float]) -> Iterator[float]:
    return (b - a for a, b in itertools.pairwise(times))


def test_a_quiet_symbol_is_retried_on_a_growing_backoff_and_snapshots_do_not_refresh_it(
    tmp_path: Path,
) -> None:
    """ETH-USD trades once, then stays quiet for 10 minutes while BTC-USD trades every second.

    - ETH is resubscribed at about 0, 3, 9, 21, 45, 93, 189, 381 s of silence: 8 requests,
      each an unsubscribe then a subscribe, each gap at least the backoff (the old code sent
      one every 30 s: 20);
    - every resubscribe brings Coinbase's snapshot of the old ETH trade: ETH stays stale, the
      replays are counted and kept out of the engine;
    - BTC stays fresh throughout; the budget (8 messages/s per IP) is never exceeded;
    - a real new ETH trade makes ETH fresh at once and the resubscribes stop.
    """
    config = _config(tmp_path, "coinbase", ["BTC-USD", "ETH-USD"])

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        venue = FakeCoinbase()
        router = Router(config.feeds, TickBuffer(100_000), loop.time())
        async with serve(venue.handler, "127.0.0.1", 0, ping_interval=None) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            [plan] = COINBASE.plan(url, ["BTC-USD", "ETH-USD"], PriceKind.TRADE)
            conn = Connection(
                COINBASE,
                plan,
                PriceKind.TRADE,
                router.on_events,
                _connect,
                dead_after_s=QUIET_S * 2,
            )
            owners = {(0, "BTC-USD"): conn, (0, "ETH-USD"): conn}
            watchdog = Watchdog(router, owners, NO_JITTER, clock=loop.time)
            async with running(venue.pump(), conn.run(), watchdog.run(), _btc_trades(venue)):
                await _quiet_then_trade(venue, router, conn)

    run_accelerated(scenario)


async def _btc_trades(venue: FakeCoinbase) -> None:
    price = 60_000.0
    while True:
        price *= 1.0 + random.gauss(0.0, 1e-4)
        venue.trade("BTCUSDT", price)
        await asyncio.sleep(1.0)


def _source(router: Router, instrument: str) -> Source:
    [src] = router.sources[("coinbase", instrument)]
    return src


async def _quiet_then_trade(venue: FakeCoinbase, router: Router, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    eth, btc = _source(router, "ETH-USD"), _source(router, "BTC-USD")
    await until(lambda: conn.stats.connected, "subscribed", 60.0)
    venue.trade("ETHUSDT", 3000.0)
    await until(lambda: eth.routed == 1 and not eth.stale, "the one live ETH trade", 60.0)
    last_live = eth.last_seen
    await until(lambda: bool(venue.resubscribes("ETH-USD")), "the first ETH resubscribe", 90.0)
    first = venue.resubscribes("ETH-USD")[0].at
    samples: list[tuple[bool, bool]] = []  # (ETH stale, BTC stale) every 5 s of the silence
    while loop.time() < first + QUIET_S:
        await asyncio.sleep(5.0)
        samples.append((eth.stale, btc.stale))
    requests = [r.at for r in venue.resubscribes("ETH-USD") if r.at <= first + QUIET_S]
    backoff = [NO_JITTER.delay_s(n) for n in range(len(requests))]
    assert len(requests) == 8, requests  # 0, 3, 9, 21, 45, 93, 189, 381 s
    for gap, delay in zip(_gaps(requests), backoff, strict=False):
        assert delay - 1.5 <= gap <= delay + SLACK_S, (requests, backoff)
    unsubscribes = [r for r in venue.requests if r.op == "unsubscribe"]
    assert [r.instruments for r in unsubscribes] == [("ETH-USD",)] * len(unsubscribes)
    assert len(unsubscribes) >= len(requests)
    # the snapshots replayed the old trade: never fresh, never routed, counted
    assert len(samples) > QUIET_S / 10.0
    assert set(samples) == {(True, False)}
    assert (eth.last_seen, eth.routed) == (last_live, 1)
    assert eth.replayed >= len(requests)
    assert btc.routed > QUIET_S / 2
    assert not btc.stale
    assert _max_per_second(venue.requests) <= 8  # Coinbase: 8 messages per second per IP
    # a real new trade: fresh at once, and the backoff stops asking
    venue.trade("ETHUSDT", 2990.0)
    await until(lambda: not eth.stale and eth.routed == 2, "the new ETH trade", 10.0)
    settled = len(venue.resubscribes("ETH-USD"))
    for _ in range(3):
        venue.trade("ETHUSDT", 2991.0)
        await asyncio.sleep(20.0)
    assert len(venue.resubscribes("ETH-USD")) <= settled + 1  # one may have been in flight


def _max_per_second(requests: list[Request]) -> int:
    times = sorted(r.at for r in requests)
    return max((sum(1 for t in times if s <= t < s + 1.0) for s in times), default=0)


# --- the budget binds: many quiet instruments on one OKX connection ------------------------


class FakeOkx:
    """OKX v5 public on 127.0.0.1: acknowledges subscribe ops, answers ping; never trades."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.connections = 0

    async def handler(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        self.connections += 1
        async for raw in ws:
            if raw == "ping":
                await ws.send("pong")
                continue
            message = json.loads(raw)
            args = tuple(a["instId"] for a in message["args"])
            self.requests.append(Request(loop.time(), message["op"], args))
            for arg in message["args"]:
                await ws.send(json.dumps({"event": message["op"], "arg": arg}))


TIGHT = Window(4, 60.0)
"""Two resubscribe pairs a minute: far below what 20 quiet instruments would ask."""


def test_many_quiet_instruments_stay_within_the_request_budget(tmp_path: Path) -> None:
    """20 OKX instruments never trade for 10 minutes, on a budget of 4 requests a minute.

    Unbudgeted, their jittered backoffs would send about 320 frames; with the budget the
    venue never sees more than 4 in any minute, pending instruments are merged into the next
    request (so every instrument is still retried), and the connection is never cut.
    """
    names = [f"C{i}-USDT" for i in range(20)]
    config = _config(tmp_path, "okx", names)
    tight = dataclasses.replace(OKX, limits=VenueLimits("okx-test", 200, (TIGHT,)))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        venue = FakeOkx()
        router = Router(config.feeds, TickBuffer(1000), loop.time())
        policy = ResubscribePolicy(rand=random.Random(5).random)
        async with serve(venue.handler, "127.0.0.1", 0, ping_interval=None) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            [plan] = tight.plan(url, names, PriceKind.TRADE)
            conn = Connection(tight, plan, PriceKind.TRADE, router.on_events, _connect)
            owners = {(0, name): conn for name in names}
            watchdog = Watchdog(router, owners, policy, clock=loop.time)
            pending = []
            async with running(conn.run(), watchdog.run()):
                end = loop.time() + STALE_AFTER_S + QUIET_S
                while loop.time() < end:
                    await asyncio.sleep(5.0)
                    pending.append(conn.stats.resubscribe_pending)
            _check_budget(venue, tight, names, max(pending))
            assert venue.connections == 1

    run_accelerated(scenario)


def _check_budget(venue: FakeOkx, spec: VenueSpec, names: list[str], most_pending: int) -> None:
    times = [r.at for r in venue.requests]
    for start in times:
        inside = sum(1 for t in times if start <= t < start + TIGHT.seconds)
        assert inside <= TIGHT.count, (start, times)
    assert spec.limits.requests_per_connection == (TIGHT,)
    subscribes = [r for r in venue.requests if r.op == "subscribe"][1:]  # after the first
    assert 5 <= len(subscribes) <= 22  # at most 4 frames a minute, half of them subscribes
    for name in names:
        assert sum(name in r.instruments for r in subscribes) >= 4, name
    assert most_pending >= 2  # the budget held requests back, to be merged


# --- the whole daemon, as a process, while one symbol stays quiet ---------------------------

DAEMON_CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

# BTC ticks at 10 Hz and ETH at 5 Hz in the simulator: neither is ever 3 s quiet by chance
[[feeds]]
venue = "coinbase"
symbols = ["BTC-USD", "ETH-USD"]
url = "URL"
stale_after = "3s"
aliases = { "BTC-USD" = "BTCUSDT", "ETH-USD" = "ETHUSDT" }

[live]
snapshot_interval = "1s"
idle_snapshot = "1s"

[server]
listen = "127.0.0.1:PORT"

[state]
dir = "STATE"
"""


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric, keyed by their sorted labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_the_daemon_stays_responsive_and_backs_off_while_a_symbol_is_quiet(
    tmp_path: Path,
) -> None:
    """`riskmon run` on the simulator's Coinbase; ETH-USD goes quiet for 16 s.

    /healthz answers within a second throughout; BTC keeps moving; ETH is stale and was
    resubscribed on the backoff (about 3 times: at staleness, +3 s, +6 s, not once a second
    and not once and for all), each request within the budget (none pending); when ETH
    trades again it is fresh; SIGTERM exits 0 within 10 s.
    """
    async with ExchangeSimulator(speed=1.0, seed=3) as sim:
        port = _free_port()
        text = (
            textwrap.dedent(DAEMON_CONFIG)
            .replace("URL", sim.coinbase_url)
            .replace("PORT", str(port))
            .replace("STATE", str(tmp_path / "state"))
        )
        config = tmp_path / "riskmon.toml"
        config.write_text(text)
        daemon = Process(config, tmp_path / "daemon.log")
        base = f"http://127.0.0.1:{port}"
        await daemon.start()
        try:
            await _wait_http(base + "/healthz")
            await _until_metric(base, "ETHUSDT")
            first = await _until_snapshot(base)
            sim.silence("coinbase", "ETHUSDT", True)
            slowest = await _probe_health(base, seconds=16.0)
            assert slowest < 1.0
            metrics = await _until_sent(base)
            later = json.loads((await _get(base + "/api/v1/snapshot"))[1])
            _check_quiet(metrics, first, later)
            sim.silence("coinbase", "ETHUSDT", False)
            await _until_fresh(base, "ETH-USD")
            started = time.monotonic()
            assert await daemon.stop() == 0
            assert time.monotonic() - started < 10.0
        finally:
            await daemon.kill()


async def _until_metric(base: str, symbol: str) -> None:
    deadline = time.monotonic() + 3 * TIMEOUT_S
    while time.monotonic() < deadline:
        metrics = (await _get(base + "/metrics"))[1]
        routed = _samples(metrics, "riskmon_ticks_total")
        if routed.get((("symbol", symbol), ("venue", "coinbase")), 0.0) > 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {symbol} tick reached the engine")


async def _until_snapshot(base: str) -> dict[str, Any]:
    deadline = time.monotonic() + 3 * TIMEOUT_S
    while time.monotonic() < deadline:
        status, body = await _get(base + "/api/v1/snapshot")
        if status == 200 and "ticks" in (snapshot := json.loads(body)):
            return dict(snapshot)
        await asyncio.sleep(0.2)
    raise AssertionError("no snapshot published")


async def _until_sent(base: str) -> str:
    """/metrics once no resubscription waits: one the watchdog asked for during the scrape
    is sent at the feed's next round; one held back by the request budget would stay."""
    deadline = time.monotonic() + 5.0
    while True:
        metrics = (await _get(base + "/metrics"))[1]
        pending = _samples(metrics, "riskmon_feed_resubscribe_pending")[(("venue", "coinbase"),)]
        if pending == 0 or time.monotonic() > deadline:
            return metrics
        await asyncio.sleep(0.1)


async def _probe_health(base: str, seconds: float) -> float:
    """GET /healthz every 0.25 s for ``seconds``; the slowest answer (each must be 200)."""
    slowest, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        status, _ = await _get(base + "/healthz")
        slowest = max(slowest, time.monotonic() - started)
        assert status == 200
        await asyncio.sleep(0.25)
    return slowest


def _check_quiet(metrics: str, first: dict[str, Any], later: dict[str, Any]) -> None:
    coinbase = (("venue", "coinbase"),)
    resubscribes = _samples(metrics, "riskmon_feed_resubscribes_total")[coinbase]
    # ~0, 3, 9 s into the staleness, next at ~21 s (a loaded machine may reach the fourth);
    # once a second would be 16
    assert 2 <= resubscribes <= 4, resubscribes
    assert _samples(metrics, "riskmon_feed_resubscribe_pending")[coinbase] == 0
    requests = _samples(metrics, "riskmon_feed_requests_total")[coinbase]
    assert requests == 2 + 2 * resubscribes  # heartbeats + market_trades, then pairs
    staleness = _samples(metrics, "riskmon_feed_staleness_seconds")
    assert staleness[(("symbol", "ETH-USD"), ("venue", "coinbase"))] > 10.0
    assert staleness[(("symbol", "BTC-USD"), ("venue", "coinbase"))] < 2.0
    assert later["ticks"] > first["ticks"]
    btc = (first["symbols"]["BTCUSDT"]["price"], later["symbols"]["BTCUSDT"]["price"])
    assert btc[0] != btc[1]
    assert later["symbols"]["ETHUSDT"]["price"] > 0


async def _until_fresh(base: str, instrument: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    key = (("symbol", instrument), ("venue", "coinbase"))
    while time.monotonic() < deadline:
        metrics = (await _get(base + "/metrics"))[1]
        if _samples(metrics, "riskmon_feed_staleness_seconds")[key] < 1.0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{instrument} never fresh again")


# --- held-back resubscriptions are split to fit the budget, and none is lost ----------------


class RecordingSocket:
    """A socket that records what is sent (with the loop time) and receives nothing."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self._closed = asyncio.Event()

    async def recv(self) -> str:
        await self._closed.wait()
        raise ConnectionError("closed")

    async def send(self, message: str) -> None:
        frame = json.loads(message)
        if frame.get("op") != "ping":  # Bybit's keepalive, not a request
            self.sent.append((asyncio.get_running_loop().time(), frame))

    async def close(self) -> None:
        self._closed.set()


def _refreshed(sock: RecordingSocket) -> int:
    """Topics subscribed again after the connection's own subscribe."""
    return len({a for _, f in sock.sent[3:] if f["op"] == "subscribe" for a in f["args"]})


def test_pending_resubscriptions_are_split_to_fit_and_all_sent_in_time() -> None:
    """30 Bybit topics pending at once need 6 frames (10 args each); 8 frames a minute are
    allowed and the subscribe took 3: the first 15 go at once (4 frames), the rest as the
    window frees up, halves that fit, until every topic was refreshed; never above the limit."""
    window = Window(8, 60.0)
    spec = dataclasses.replace(BYBIT, limits=VenueLimits("bybit-test", 200, (window,)))
    names = [f"S{i:02d}USDT" for i in range(30)]
    [plan] = spec.plan("ws://venue.invalid", names, PriceKind.TRADE)
    sock = RecordingSocket()

    async def connector(url: str) -> Socket:
        return sock

    async def scenario() -> tuple[list[int], int]:
        conn = Connection(spec, plan, PriceKind.TRADE, lambda v, e, m: None, connector)
        conn.dead_after_s = 1e9
        async with running(conn.run()):
            await until(lambda: conn.stats.connected, "connected", 10.0)
            conn.request_resubscribe(names)
            await asyncio.sleep(5.0)
            pending_after_first = conn.stats.resubscribe_pending
            await until(lambda: _refreshed(sock) == len(names), "every topic refreshed", 400.0)
            assert conn.stats.resubscribe_pending == 0
        return [len(frame["args"]) for _, frame in sock.sent], pending_after_first

    args, pending_after_first = run_accelerated(scenario)
    assert args[:3] == [10, 10, 10]  # the connection's own subscribe
    assert args[3:7] == [10, 5, 10, 5]  # 15 topics: unsubscribe and subscribe, 10 args a frame
    assert pending_after_first == 15
    times = [t for t, _ in sock.sent]
    for start in times:
        assert sum(1 for t in times if start <= t < start + window.seconds) <= window.count
    refreshed = {a for _, f in sock.sent[3:] if f["op"] == "subscribe" for a in f["args"]}
    assert refreshed == {f"publicTrade.{name}" for name in names}
