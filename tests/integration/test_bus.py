"""The split roles over a real nats-server: one feeds process, engine workers, crashes, restarts.

``riskmon run --role feeds`` on the exchange simulator publishes to JetStream (``nats-server
-js`` on 127.0.0.1, store in tmp_path); ``riskmon run --role engine`` workers consume it. The
two workers hold different portfolios, so they consume different sets of symbol subjects.

"The same ticks" for a worker is the stream restricted to its subjects, in stream order: that
is what a worker applies, whatever the timing, crashes and redeliveries. So its final snapshot
must equal, to 1e-9, that of an engine of its configuration fed those ticks in one go in this
process (read back from the stream after the run). Every wait is bounded; every process and the
server are stopped by the fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import pytest
from nats.js import api
from prometheus_client.parser import text_string_to_metric_families

from bus.publisher import TickPublisher
from bus.subscriber import TickSubscriber
from bus.wire import BusBatch, BusMessage, BusOptionMark, decode_message
from feeds.simulator import ExchangeSimulator
from monitor.config.bus import BusConfig
from monitor.config.durations import PositiveDuration
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.model import Tick
from monitor.rules import RuleState
from service.checkpoint import read_checkpoint, write_checkpoint
from service.engine_role import EngineDaemon, apply_in_stream_order
from service.http import snapshot_json
from service.roles import bus_symbols, engine_config, select
from tests.integration.test_live_feeds import TIMEOUT_S, eventually
from tests.natsserver import BINARY, NatsServer, free_port

pytestmark = pytest.mark.skipif(
    BINARY is None, reason="nats-server is not installed (Debian package nats-server; make test)"
)

STREAM = "TEST_TICKS"
IDLE_SNAPSHOT_S = 2.0
PREFIX = "riskmon.ticks"
CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 20

[risk]
distribution = "normal"

[[portfolios]]
name = "a"
positions = [
  { symbol = "BTCUSDT", quantity = 1 },
  { symbol = "ETHUSDT", quantity = 10 },
  { symbol = "SOLUSDT", quantity = 100 },
]

[[portfolios]]
name = "b"
positions = [
  { symbol = "BTCUSDT", quantity = -1 },
  { symbol = "BNBUSDT", quantity = 50 },
  { symbol = "XRPUSDT", quantity = 1000 },
]

[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
url = "BINANCE_URL"
stale_after = "5s"

[live]
snapshot_interval = "1s"
idle_snapshot = "2s"

[state]
dir = "unused: every process gets RISKMON_STATE__DIR"
checkpoint_interval = "1s"

[bus]
url = "NATS_URL"
stream = "TEST_TICKS"
reconnect_wait = "200ms"
publish_timeout = "1s"
request_timeout = "2s"
poll_interval = "50ms"
"""


class Role:
    """``riskmon run --role ...`` in a subprocess, with its own state directory and port."""

    def __init__(self, name: str, config: Path, tmp: Path, *args: str) -> None:
        self.name, self.config, self.args = name, config, args
        self.state, self.log = tmp / name, tmp / f"{name}.log"
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.env: dict[str, str] = {}  # more environment overrides, e.g. RISKMON_BUS__...

    async def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "RISKMON_STATE__DIR": str(self.state),
            "RISKMON_SERVER__LISTEN": f"127.0.0.1:{self.port}",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "service.cli", "run", "--config", str(self.config),
                *self.args, stdout=out, stderr=out, env=env,
            )  # fmt: skip

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT_S):
            return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return resp.status, await resp.text()
        except aiohttp.ClientError:
            return 0, ""

    async def metrics(self) -> dict[str, float]:
        """Every unlabelled sample by name (empty while the process is not serving)."""
        status, text = await self.get("/metrics")
        if status != 200:
            return {}
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if not sample.labels
        }

    async def snapshot(self) -> dict[str, Any] | None:
        status, text = await self.get("/api/v1/snapshot")
        return json.loads(text) if status == 200 else None


@dataclass
class Bus:
    """A nats-server, the simulator, the shared config, and every role started by the test."""

    nats: NatsServer
    sim: ExchangeSimulator
    config_path: Path
    config: Config
    tmp: Path
    roles: list[Role]

    def role(self, name: str, *args: str) -> Role:
        role = Role(name, self.config_path, self.tmp, *args)
        self.roles.append(role)
        return role


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    async with (
        NatsServer(tmp_path / "jetstream", tmp_path / "nats-server.log") as server,
        ExchangeSimulator(speed=60.0, seed=11) as sim,
    ):
        text = textwrap.dedent(CONFIG).replace("BINANCE_URL", sim.binance_url)
        path = tmp_path / "riskmon.toml"
        path.write_text(text.replace("NATS_URL", server.url))
        setup = Bus(server, sim, path, load_config(path, environ={}), tmp_path, [])
        try:
            yield setup
        finally:
            for role in setup.roles:
                await role.kill()


async def until(check: Callable[[], Awaitable[bool]], what: str, within_s: float) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for: {what}")
        await asyncio.sleep(0.2)


async def stream_messages(url: str, stream: str = STREAM) -> list[tuple[int, BusMessage]]:
    """Every message of the stream, in stream order: (stream sequence, batch or mark)."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        total = (await js.stream_info(stream)).state.messages
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE)
        sub = await js.pull_subscribe(f"{PREFIX}.>", stream=stream, config=config)
        out: list[tuple[int, BusMessage]] = []
        while len(out) < total:
            for msg in await sub.fetch(1000, timeout=5):
                out.append((msg.metadata.sequence.stream, decode_message(msg.data)))
        return out
    finally:
        await client.close()


def worker_messages(
    config: Config, portfolio: str, stream: list[tuple[int, BusMessage]]
) -> list[tuple[int, BusMessage]]:
    """The stream restricted to one worker's subjects: its symbols' ticks and marks."""
    symbols = set(bus_symbols(config, select(config, [portfolio])))
    return [(seq, message) for seq, message in stream if message.symbol in symbols]


def reference(config: Config, portfolio: str, messages: list[tuple[int, BusMessage]]) -> Any:
    """The snapshot of one engine of the worker's configuration fed its messages at once."""
    selection = select(config, [portfolio])
    daemon = EngineDaemon(engine_config(config, selection), worker=selection.worker)
    apply_in_stream_order(daemon.clock, [message for _, message in messages])
    assert daemon.latest is not None
    last_tick = max(float(m.columns()[0].max()) for _, m in messages if isinstance(m, BusBatch))
    assert daemon.latest.ts > last_tick, "no quiet-time snapshot after the last tick"
    return snapshot_json(daemon.latest)


def assert_same_figures(got: Any, want: Any, where: str = "snapshot") -> None:
    """Equal structure; numbers equal to 1e-9 (relative); the snapshot time is not compared."""
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            if key != "ts":
                assert_same_figures(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_figures(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and isinstance(got, int | float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (where, got, want)
    else:
        assert got == want, (where, got, want)


async def settle(bus: Bus, feeds: Role) -> tuple[list[tuple[int, BusMessage]], dict[str, Any]]:
    """Silence the market until the marks carry the clock, stop the feeds role (it flushes);
    the whole stream, and the feeds role's final counts from its log."""
    bus.sim.stall("binance", True)
    await asyncio.sleep(IDLE_SNAPSHOT_S + 1.0)
    assert await feeds.stop() == 0
    lines = [json.loads(line) for line in feeds.log.read_text().splitlines() if "{" in line]
    (final,) = [line for line in lines if line.get("event") == "feeds_role_stop"]
    return await stream_messages(bus.nats.url), final


async def check_worker(
    bus: Bus, worker: Role, portfolio: str, stream: list[tuple[int, BusMessage]]
) -> dict[str, Any]:
    """Wait until ``worker`` applied its part of the stream; its figures equal the reference."""
    mine = worker_messages(bus.config, portfolio, stream)
    # Every lane (symbol) has proved it complete up to its last message: the watermark.
    last = min(max(seq for seq, m in mine if m.symbol == s) for s in {m.symbol for _, m in mine})
    want = reference(bus.config, portfolio, [(seq, m) for seq, m in mine if seq <= last])

    async def caught_up() -> bool:
        m = await worker.metrics()
        return m.get("riskmon_bus_applied_sequence") == last

    await until(caught_up, f"{worker.name} to apply the stream up to {last}", 3 * TIMEOUT_S)
    got = await worker.snapshot()
    assert got is not None
    assert got["ticks"] == want["ticks"] > 1000
    assert_same_figures(got, want, f"worker {portfolio}")
    return got


async def test_killed_worker_restarts_to_the_snapshot_of_one_process(bus: Bus) -> None:
    """SIGKILL a worker mid-stream, restart it: both workers end on the one-process figures."""
    feeds = bus.role("feeds", "--role", "feeds")
    worker_a = bus.role("engine-a", "--role", "engine", "--portfolios", "a")
    worker_b = bus.role("engine-b", "--role", "engine", "--portfolios", "b")
    for role in (feeds, worker_a, worker_b):
        await role.start()
    checkpoint = worker_a.state / "checkpoint.npz"

    async def worker_a_checkpointed() -> bool:
        applied = (await worker_a.metrics()).get("riskmon_bus_applied_sequence", 0.0)
        return applied > 3000 and checkpoint.exists()

    await until(worker_a_checkpointed, "worker a to apply ticks and checkpoint", 4 * TIMEOUT_S)
    await worker_a.kill()  # SIGKILL, mid-stream
    await asyncio.sleep(1.0)  # the stream moves on without it
    await worker_a.start()
    await asyncio.sleep(2.0)
    stream, _ = await settle(bus, feeds)
    for worker, portfolio in ((worker_a, "a"), (worker_b, "b")):
        await check_worker(bus, worker, portfolio, stream)
    m = await worker_b.metrics()  # its trips: receipt at the feeds role -> its snapshots
    assert m["riskmon_bus_tick_to_snapshot_seconds_count"] > 10
    assert (
        0
        < m["riskmon_bus_tick_to_snapshot_seconds_sum"]
        / m["riskmon_bus_tick_to_snapshot_seconds_count"]
        < 2.0
    )  # one host, one clock: tens of milliseconds
    log = worker_a.log.read_text()
    assert "checkpoint_restored" in log
    assert '"after": 0,' not in log.split("checkpoint_restored", 1)[1]  # resumed, not replayed
    for worker in (worker_a, worker_b):
        assert await worker.stop() == 0


async def test_nats_restart_loses_and_doubles_no_tick(bus: Bus) -> None:
    """Stop nats-server mid-stream: the feeds role buffers and retries, JetStream de-duplicates;
    once it is back every tick is in the stream once and the worker applied each once."""
    feeds = bus.role("feeds", "--role", "feeds")
    worker = bus.role("engine-a", "--role", "engine", "--portfolios", "a")
    for role in (feeds, worker):
        await role.start()

    async def flowing() -> bool:
        return (await worker.metrics()).get("riskmon_bus_applied_sequence", 0.0) > 2000

    await until(flowing, "ticks to reach the worker", 4 * TIMEOUT_S)
    await bus.nats.stop()

    async def disconnected() -> bool:
        status, body = await worker.get("/readyz")
        m = await feeds.metrics()
        return (
            status == 503
            and "bus disconnected" in body
            and m.get("riskmon_bus_connected") == 0.0
            and m.get("riskmon_bus_buffered_ticks", 0.0) > 100
        )

    await until(disconnected, "both roles to see the bus down, the feeds role buffering", TIMEOUT_S)
    await bus.nats.start()

    async def recovered() -> bool:
        m = await feeds.metrics()
        return m.get("riskmon_bus_connected") == 1.0 and m.get("riskmon_bus_buffered_ticks") == 0

    await until(recovered, "the feeds role to reconnect and publish its buffer", 2 * TIMEOUT_S)
    assert (await feeds.metrics())["riskmon_bus_reconnects_total"] >= 1
    await asyncio.sleep(1.0)
    stream, final = await settle(bus, feeds)
    sources: dict[tuple[str, str, str], list[int]] = {}
    for _, message in stream:
        venue = message.venue if isinstance(message, BusBatch) else "mark"
        count = len(message) if isinstance(message, BusBatch) else 1
        seqs = [message.seq + i for i in range(count)]
        sources.setdefault((message.epoch, venue, message.symbol), []).extend(seqs)
    for source, seqs in sources.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"{source}: lost or doubled"
    ticks = sum(len(m) for _, m in stream if isinstance(m, BusBatch))
    assert ticks > 2 * sum(isinstance(m, BusBatch) for _, m in stream)  # batches, not ticks
    assert final["accepted"] == ticks
    assert final["published"] + final["duplicates"] == len(stream)
    assert final["dropped"] == final["unpublished"] == 0
    await check_worker(bus, worker, "a", stream)
    m = await worker.metrics()
    mine = worker_messages(bus.config, "a", stream)
    assert m["riskmon_bus_consumed_total"] == sum(
        len(x) for _, x in mine if isinstance(x, BusBatch)
    )
    assert m["riskmon_bus_reconnects_total"] >= 1
    assert await worker.stop() == 0


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with NatsServer(tmp_path / "jetstream", tmp_path / "nats-server.log") as server:
        yield server


async def _running(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.create_task(coro)


async def _cancel(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_publishes_retried_after_lost_acknowledgements_are_stored_once(
    nats_server: NatsServer,
) -> None:
    """Acknowledgements later than publish_timeout count as lost: the batches are sent again
    with the same message ids, and JetStream keeps one copy of each."""
    bus = BusConfig(
        url=nats_server.url, stream="DEDUP", publish_timeout=PositiveDuration(0.001), max_batch=10
    )
    publisher = TickPublisher(bus)
    task = await _running(publisher.run())
    try:
        for n in range(1500):
            publisher.offer("binance", Tick(1.7e9 + n, "BTCUSDT", 100.0 + n), 0.0)
        async with asyncio.timeout(3 * TIMEOUT_S):
            while publisher.buffered:
                await publisher.flush(1.0)
    finally:
        await _cancel(task)
    stats = publisher.stats
    assert stats.errors > 0  # windows timed out...
    assert stats.duplicates > 0  # ...and their stored publishes were answered as duplicates
    assert stats.published + stats.duplicates == stats.batches == 150
    client = await nats.connect(nats_server.url)
    try:
        assert (await client.jsm().stream_info("DEDUP")).state.messages == 150
    finally:
        await client.close()
    stored = await stream_messages(nats_server.url, "DEDUP")
    ticks = [m.seq + i for _, m in stored if isinstance(m, BusBatch) for i in range(len(m))]
    assert ticks == list(range(1, 1501))  # every tick once, in order


async def test_a_redelivered_batch_is_applied_once(nats_server: NatsServer) -> None:
    """A worker holds BTC's batch until ETH proves itself complete; meanwhile ack_wait expires
    and JetStream delivers it again: the copies are skipped, each tick is applied once."""
    bus = BusConfig(
        url=nats_server.url,
        stream="REDELIVER",
        ack_wait=PositiveDuration(0.5),
        poll_interval=PositiveDuration(0.02),
    )
    applied: list[BusMessage] = []
    publisher = TickPublisher(bus)
    subscriber = TickSubscriber(bus, "w", ["BTCUSDT", "ETHUSDT"], applied.extend)
    tasks = [await _running(publisher.run()), await _running(subscriber.run())]
    try:
        for n in range(50):
            publisher.offer("binance", Tick(1.7e9 + n, "BTCUSDT", 100.0 + n), 0.0)
        await eventually(lambda: subscriber.stats.duplicates >= 2, "BTC delivered again, twice")
        assert applied == []  # ETH said nothing yet: BTC's ticks wait in stream order
        publisher.mark(["BTCUSDT", "ETHUSDT"], 0.0, 1e9, every=True)
        await eventually(lambda: subscriber.stats.consumed == 50, "the ticks applied")
    finally:
        await _cancel(*tasks)
    batches = [m for m in applied if isinstance(m, BusBatch)]
    assert [m.seq + i for m in batches for i in range(len(m))] == list(range(1, 51))
    assert batches[0].columns()[1].tolist() == [100.0 + n for n in range(50)]
    assert subscriber.stats.consumed == 50
    assert subscriber.cursor().position == 2  # one batch, then BTC's mark


async def test_option_marks_reach_a_worker_outside_the_stream(nats_server: NatsServer) -> None:
    """Plain NATS, not JetStream: the worker gets the feeds role's latest option marks and
    the tick stream stores none of them."""
    bus = BusConfig(url=nats_server.url, stream="OPTIONS", poll_interval=PositiveDuration(0.02))
    got: list[BusOptionMark] = []
    publisher = TickPublisher(bus)
    subscriber = TickSubscriber(bus, "w", ["BTCUSDT"], lambda _: None, on_option=got.append)
    tasks = [await _running(subscriber.run()), await _running(publisher.run())]
    mark = BusOptionMark("deribit", "BTC-27JUN25-100000-C", 1.7e9, 0.55, 1.002)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not got and time.monotonic() < deadline:  # until the worker has subscribed
            publisher.offer_option(mark)
            await asyncio.sleep(0.05)
    finally:
        await _cancel(*tasks)
    assert got
    assert set(got) == {mark}
    assert publisher.stats.option_marks >= len(got)
    assert publisher.stats.published == 0  # nothing went to the stream


async def test_a_worker_stopped_inside_a_batch_resumes_at_its_index(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Engine steps of a few dozen ticks cut the feeds role's batches of 200. A checkpoint is
    written between two steps inside a batch (as the service does, on the event loop), then the
    worker dies without another; a new one restores it, with other step sizes: it skips the
    ticks of that batch already applied and ends on the figures of one engine fed the stream
    in one go (the same floats: the same ticks in the same order)."""
    text = CONFIG.replace("BINANCE_URL", "ws://127.0.0.1:9").replace("NATS_URL", nats_server.url)
    path = tmp_path / "riskmon.toml"
    path.write_text(textwrap.dedent(text))
    config = load_config(path, environ={})
    config = msgspec.structs.replace(
        config, bus=msgspec.structs.replace(config.bus, stream="PARTIAL", max_batch=200)
    )
    selection = select(config, ["a"])
    worker_config, symbols = engine_config(config, selection), bus_symbols(config, selection)
    publisher = TickPublisher(config.bus, epoch="e")
    publishing = await _running(publisher.run())
    rng = random.Random(3)
    t, prices = 1.7e9, dict.fromkeys(symbols, 100.0)
    try:
        for n in range(3000):
            symbol = rng.choice(symbols)
            t += rng.expovariate(20.0)
            prices[symbol] *= math.exp(rng.gauss(0.0, 1e-3))
            publisher.offer("binance", Tick(t, symbol, prices[symbol]), 0.0)
            if n in (1234, 2345):
                publisher.close_batches()  # some batches of other sizes
        publisher.mark(symbols, 60.0, 1.0, every=True)  # closes the stream: clock t + 60
        async with asyncio.timeout(TIMEOUT_S):
            assert await publisher.flush(TIMEOUT_S)
    finally:
        await _cancel(publishing)
    stream = await stream_messages(nats_server.url, "PARTIAL")
    assert max(len(m) for _, m in stream if isinstance(m, BusBatch)) == 200
    checkpoint = tmp_path / "checkpoint.npz"

    async def consume(worker: EngineDaemon, steps: int, stop_inside_after: int | None) -> None:
        stepped = asyncio.Event()
        done = 0

        def on_batch(messages: list[BusMessage]) -> None:
            nonlocal done
            worker._on_batch(messages)
            done += 1
            stepped.set()

        subscriber = TickSubscriber(
            config.bus, "w", symbols, on_batch, worker.bus_cursor(), apply_ticks=steps
        )
        worker.subscriber = subscriber
        task = await _running(subscriber.run())
        try:
            async with asyncio.timeout(3 * TIMEOUT_S):
                while True:  # like the service's checkpoint task: between two steps
                    await stepped.wait()
                    stepped.clear()
                    cursor = subscriber.cursor()
                    if stop_inside_after is not None and done >= stop_inside_after and cursor.index:
                        write_checkpoint(checkpoint, worker.capture_state())
                        return  # and die: no checkpoint at exit
                    if cursor.position == last:
                        return
        finally:
            await _cancel(task)

    mine = worker_messages(config, "a", stream)
    worker_ticks = sum(len(m) for _, m in mine if isinstance(m, BusBatch))
    last = min(max(seq for seq, m in mine if m.symbol == s) for s in symbols)
    first = EngineDaemon(worker_config, worker="w", bus_symbols=symbols)
    await consume(first, 37, stop_inside_after=20)
    saved = read_checkpoint(checkpoint)
    assert saved.bus is not None
    assert 0 < saved.bus.index < 200
    assert 0 < first.engine.ticks < worker_ticks
    second = EngineDaemon(worker_config, worker="w", bus_symbols=symbols)
    second.restore_state(saved)
    await consume(second, 53, stop_inside_after=None)
    assert second.subscriber is not None
    assert second.subscriber.stats.duplicates == 0  # the consumers restarted after the cursor
    assert second.engine.ticks == worker_ticks
    want = reference(config, "a", mine)
    assert second.latest is not None
    got = snapshot_json(second.latest)
    assert got["ticks"] == want["ticks"]
    assert_same_figures(got, want, "restored worker")


async def test_messages_held_for_stream_order_never_stall_a_catch_up(
    nats_server: NatsServer,
) -> None:
    """A quiet symbol's messages span far more of the stream than a busy one's, so the merger
    holds them, unacknowledged, until the busy lane catches up. Pulls are cut to the room
    ``max_ack_pending`` leaves: the backlog is applied in order with no timeout, no rewind."""
    bus = BusConfig(
        url=nats_server.url,
        stream="HELD",
        max_ack_pending=50,
        fetch_batch=20,
        request_timeout=PositiveDuration(1.0),
    )
    publisher = TickPublisher(bus, epoch="e")
    publishing = await _running(publisher.run())
    try:
        for n in range(2200):
            symbol = "ETHUSDT" if n % 11 == 10 else "BTCUSDT"
            publisher.offer("binance", Tick(1.7e9 + n, symbol, 100.0 + n), 0.0)
            publisher.close_batches()  # one tick per message
        publisher.mark(["BTCUSDT", "ETHUSDT"], 0.0, 1e9, every=True)
        assert await publisher.flush(TIMEOUT_S)
    finally:
        await _cancel(publishing)
    applied: list[BusMessage] = []
    held: list[int] = []

    def on_batch(messages: list[BusMessage]) -> None:
        applied.extend(messages)
        held.append(subscriber.merger.held_in(subscriber.merger.lanes[1]))  # ETH's lane

    subscriber = TickSubscriber(bus, "w", ["BTCUSDT", "ETHUSDT"], on_batch)
    consuming = await _running(subscriber.run())
    try:
        await eventually(
            lambda: subscriber.stats.consumed == 2200, "the backlog applied", 3 * TIMEOUT_S
        )
    finally:
        await _cancel(consuming)
    assert subscriber.stats.rewinds == 0
    assert 0 < max(held) <= 50  # ETH ran ahead, held up to max_ack_pending and no further
    ticks = [m.columns()[0][0] for m in applied if isinstance(m, BusBatch)]
    assert ticks == [1.7e9 + n for n in range(2200)]  # stream order


WARM_IN_SECONDS = 'min_observations = 20\npreaverage = "0.25s"'  # estimates within seconds
ALERTING = """
[[rules]]
name = "book-at-risk"
metric = "var_99"
op = ">"
threshold = 0
for = "30s"
labels = { portfolio = "a" }

[[sinks]]
name = "desk"
type = "file"
path = "SINK_PATH"

[[routes]]
sinks = ["desk"]
group_wait = "0s"
"""


async def test_a_worker_killed_between_a_firing_and_its_checkpoint_notifies_once(
    bus: Bus,
) -> None:
    """The worker fires, the sink is told, and the worker dies before its next checkpoint
    (SIGKILL; its state dir is left with the last checkpoint written before the firing). The
    restarted worker replays the stream from that checkpoint and fires again, with the same
    event times: the outbox recognises the transition as delivered, and the sink is told once."""
    sink = bus.tmp / "desk.jsonl"
    path = bus.tmp / "alerting.toml"
    text = bus.config_path.read_text().replace("min_observations = 20", WARM_IN_SECONDS)
    path.write_text(text + ALERTING.replace("SINK_PATH", str(sink)))
    feeds = Role("feeds", path, bus.tmp, "--role", "feeds")
    worker = Role("engine-a", path, bus.tmp, "--role", "engine", "--portfolios", "a")
    bus.roles += [feeds, worker]
    await feeds.start()
    await worker.start()
    checkpoint, before = worker.state / "checkpoint.npz", bus.tmp / "before-firing.npz"

    def firings() -> list[dict[str, Any]]:
        lines = sink.read_text().splitlines() if sink.exists() else []
        return [line for line in map(json.loads, lines) if line["state"] == "firing"]

    async def fired_after_a_checkpoint() -> bool:
        if firings():
            return before.exists()
        copy = bus.tmp / "copy.npz"
        with contextlib.suppress(FileNotFoundError):
            copy.write_bytes(checkpoint.read_bytes())  # written atomically: whole or absent
            if not any(s.state is RuleState.FIRING for s in read_checkpoint(copy).rules):
                copy.replace(before)
        return False

    await until(fired_after_a_checkpoint, "a checkpoint, then a rule firing", 4 * TIMEOUT_S)
    await worker.kill()
    assert not any(s.state is RuleState.FIRING for s in read_checkpoint(before).rules)
    before.replace(checkpoint)  # the worker died before checkpointing the firing
    told = firings()
    await worker.start()
    stream, _ = await settle(bus, feeds)
    alerting = Bus(bus.nats, bus.sim, path, load_config(path, environ={}), bus.tmp, bus.roles)
    await check_worker(alerting, worker, "a", stream)
    after = firings()
    assert after[: len(told)] == told  # (later firings of other alerts may follow)
    transitions = [(line["dedup_key"], line["ts"]) for line in after]
    assert len(set(transitions)) == len(transitions)  # no transition told twice
    log = worker.log.read_text().split("checkpoint_restored", 1)[1]
    suppressed = [json.loads(x) for x in log.splitlines() if '"alerts_suppressed"' in x]
    assert sum(int(line.get("already_notified", 0)) for line in suppressed) >= len(told)
    assert await worker.stop() == 0
