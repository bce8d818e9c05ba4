"""The daemon against the local exchange simulator on loopback: flow, faults and recovery.

Every wait is bounded by TIMEOUT_S; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from feeds.events import PriceKind
from feeds.registry import VENUES
from feeds.session import Connection
from feeds.simulator import ExchangeSimulator
from feeds.venue import ConnectionPlan, VenueSpec
from monitor.config.loading import load_config
from monitor.config.schema import Config
from service.daemon import Daemon
from service.live import with_urls

TIMEOUT_S = 10.0

CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 20
preaverage = "0.25s"  # a short pre-averaging block: the test warms up in seconds

[[rules]]
name = "eth-binance-stale"
metric = "feed_staleness_seconds"
op = ">"
threshold = 2
severity = "warning"
labels = { venue = "binance", symbol = "ETHUSDT" }

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
stale_after = "2s"

[[feeds]]
venue = "coinbase"
symbols = ["BTC-USD", "ETH-USD"]
stale_after = "2s"
aliases = { "BTC-USD" = "BTCUSDT", "ETH-USD" = "ETHUSDT" }

[live]
snapshot_interval = "10s"
idle_snapshot = "1s"
queue_ticks = QUEUE
"""


async def eventually(check: Callable[[], bool], what: str, within_s: float = TIMEOUT_S) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for: {what}")
        await asyncio.sleep(0.05)


def _config(tmp_path: Path, queue: int = 100_000) -> Config:
    path = tmp_path / "live.toml"
    path.write_text(textwrap.dedent(CONFIG).replace("QUEUE", str(queue)))
    return load_config(path, environ={})


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=60.0, seed=7) as simulator:
        yield simulator


class Running:
    """A daemon running in the background of a test."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def connection(self, venue: str) -> Connection:
        return next(c for c in self.daemon.connections if c.spec.name == venue)


@pytest.fixture
async def running(sim: ExchangeSimulator, tmp_path: Path) -> AsyncIterator[Running]:
    urls = {"binance": sim.binance_url, "coinbase": sim.coinbase_url}
    run = Running(Daemon(with_urls(_config(tmp_path), urls), wall=sim.sim_time))
    run.task = asyncio.create_task(run.daemon.run(run.stop))
    yield run
    run.stop.set()
    async with asyncio.timeout(TIMEOUT_S):
        await run.task


async def test_ticks_flow_into_the_engine(running: Running) -> None:
    """Binance trades reach the engine with simulator prices; coinbase stands by."""
    engine = running.daemon.engine
    await eventually(lambda: engine.ticks > 500, "500 ticks applied")
    snap = engine.snapshot(engine.last_event_ts)
    btc = snap.price[snap.index("BTCUSDT")]
    assert 50_000 < btc < 150_000
    assert running.daemon.router.standby["BTCUSDT"] > 0
    await eventually(lambda: running.daemon.latest is not None, "a snapshot")


async def test_dropped_connection_resumes_and_resubscribes(
    running: Running, sim: ExchangeSimulator
) -> None:
    """After the server drops every socket the client reconnects, resubscribes, ticks resume."""
    conn = running.connection("binance")
    await eventually(lambda: conn.stats.messages > 100, "binance messages")
    assert sim.drop_connections("binance") >= 1
    await eventually(lambda: conn.stats.connections >= 2, "a second connection")
    await eventually(lambda: sim.connections("binance") == 1, "one live binance socket")
    assert sim.subscriptions("binance")
    before = conn.stats.messages
    await eventually(lambda: conn.stats.messages > before + 100, "messages after reconnect")


async def test_accept_then_close_backs_off_without_a_storm(
    running: Running, sim: ExchangeSimulator
) -> None:
    """A server that accepts and closes at once sees a few, spreading attempts, not a storm."""
    conn = running.connection("binance")
    await eventually(lambda: conn.stats.connections >= 1, "first connection")
    sim.set_accept_and_close("binance", True)
    sim.drop_connections("binance")
    start = sim.stats("binance").accepted
    await asyncio.sleep(4.0)
    attempts = sim.stats("binance").accepted - start
    assert 2 <= attempts <= 9, attempts  # 0.5 s doubling with jitter: a storm would be 100s
    assert conn.backoff.attempt >= 2
    sim.set_accept_and_close("binance", False)
    before = conn.stats.messages
    await eventually(
        lambda: conn.stats.messages > before + 50,
        "data after the storm ended",
        within_s=3 * TIMEOUT_S,
    )


async def test_one_silent_symbol_is_detected_while_others_flow(
    running: Running, sim: ExchangeSimulator
) -> None:
    """ETHUSDT goes silent on Binance: stale, resubscribed, the rule fires, Coinbase stands in."""
    daemon = running.daemon
    await eventually(lambda: daemon.engine.ticks > 200, "ticks")
    sim.silence("binance", "ETHUSDT", True)
    eth = next(s for s in daemon.router.sources[("binance", "ETHUSDT")])
    await eventually(lambda: eth.stale, "ETHUSDT marked stale")
    btc = daemon.router.sources[("binance", "BTCUSDT")][0]
    assert not btc.stale
    assert time.monotonic() - btc.last_seen < 1.0
    await eventually(
        lambda: running.connection("binance").stats.resubscribes >= 1, "a resubscribe request sent"
    )
    active = daemon.router.active("ETHUSDT", time.monotonic())
    assert active is not None
    assert active.venue == "coinbase"
    await eventually(
        lambda: any(e.rule == "eth-binance-stale" for e in daemon.alerts), "staleness alert"
    )
    sim.silence("binance", "ETHUSDT", False)
    await eventually(
        lambda: not eth.stale and eth.last_seen > time.monotonic() - 1, "ETHUSDT fresh again"
    )


async def test_sequence_gap_is_detected(running: Running, sim: ExchangeSimulator) -> None:
    """A skipped Coinbase sequence_num is counted as a gap."""
    conn = running.connection("coinbase")
    await eventually(lambda: conn.stats.messages > 20, "coinbase messages")
    sim.inject_gap("coinbase")
    await eventually(lambda: conn.stats.gaps >= 1, "gap detected")
    assert conn.stats.connections == 1


async def test_malformed_frames_are_counted_and_the_connection_lives(
    running: Running, sim: ExchangeSimulator
) -> None:
    """Bad frames are parse errors, dropped one by one; no reconnect."""
    conn = running.connection("binance")
    await eventually(lambda: conn.stats.messages > 50, "binance messages")
    sim.inject_malformed("binance", 5)
    await eventually(lambda: conn.stats.parse_errors >= 5, "5 parse errors")
    before = conn.stats.messages
    await eventually(lambda: conn.stats.messages > before + 50, "messages keep flowing")
    assert conn.stats.connections == 1


async def test_a_stalled_engine_keeps_memory_bounded(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """With the engine not draining at all, the tick buffer stays at its bound and counts drops."""
    urls = {"binance": sim.binance_url, "coinbase": sim.coinbase_url}
    daemon = Daemon(with_urls(_config(tmp_path, queue=200), urls), wall=sim.sim_time)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c.run()) for c in daemon.connections]
        await eventually(lambda: daemon.buffer.dropped > 1000, "drops at the bound")
        assert len(daemon.buffer) <= 200
        for task in tasks:
            task.cancel()


async def test_connection_is_rotated_before_its_lifetime_without_a_gap(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """With a 1 s lifetime the socket is replaced: the new one delivers before the old closes."""

    def short_lived(spec: VenueSpec) -> VenueSpec:
        def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
            return [
                dataclasses.replace(p, max_lifetime_s=1.0)
                for p in spec.plan(url, instruments, kind)
            ]

        return dataclasses.replace(spec, plan=plan)

    venues = {**VENUES, "binance": short_lived(VENUES["binance"])}
    config = with_urls(
        _config(tmp_path), {"binance": sim.binance_url, "coinbase": sim.coinbase_url}
    )
    daemon = Daemon(config, venues=venues)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    conn = next(c for c in daemon.connections if c.spec.name == "binance")
    await eventually(lambda: conn.stats.connections >= 3, "two rotations")
    assert conn.stats.reconnects == 0  # rotations are not reconnects
    src = daemon.router.sources[("binance", "BTCUSDT")][0]
    await eventually(lambda: time.monotonic() - src.last_seen < 1.0, "ticks after rotations")
    stop.set()
    async with asyncio.timeout(TIMEOUT_S):
        await task
