"""Ticks per second through the NATS JetStream bus (issue #8), against the in-process engine.

A real ``nats-server -js`` (Debian package; file storage in a temporary directory) on
127.0.0.1. Each run uses a fresh stream and the same ``--ticks`` asynchronous Poisson ticks of
``--assets`` symbols (rates differing 50x, ``--rate`` ticks per second of event time, the
engine benchmark's market), measured in three stages, interleaved across runs:

- publish: the feeds role's side. Every tick is offered to a ``TickPublisher`` (sequence,
  message id, JSON payload) and published until JetStream has acknowledged all of them, in
  windows of ``[bus] publish_window``; then a mark on every symbol closes the stream;
- consume: an engine worker's side, started on the full stream. A ``TickSubscriber`` (one
  durable pull consumer per symbol, the merge back into stream order, acknowledgements) feeds
  an engine, its rules and its snapshot clock through ``apply_in_stream_order``, timed until
  every tick is applied;
- in-process baseline: the same ticks through ``apply_in_stream_order`` into the same engine,
  no bus: what ``--role all`` pays for the engine step.

Every engine starts from the same warm state (``--warmup-s`` of event time, as after a
restore). The two roles run in separate processes when deployed, so the rate through the bus
is the slower of publish and consume (a pipeline); "serial" is both in one process, one after
the other. Medians of ``--runs`` (at least 5) runs; JSON to benchmarks/results/bus_throughput.json.

Usage: python -m benchmarks.bus_throughput [--assets 10] [--ticks 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats

from benchmarks.common import (
    Market,
    poisson_market,
    print_table,
    spread,
    summary,
    temp_dir,
    warm_state,
    write_config,
    write_result,
)
from bus.publisher import TickPublisher
from bus.subscriber import TickSubscriber
from bus.wire import BusMessage, BusTick
from monitor.clock import SnapshotClock
from monitor.config.bus import BusConfig
from monitor.config.schema import Config
from monitor.engine import Engine, EngineState
from monitor.model import Tick
from monitor.rules import RuleEngine
from service.engine_role import apply_in_stream_order
from service.logs import configure_logging
from tests.natsserver import BINARY, NatsServer

VENUE = "binance"
STAGE_TIMEOUT_S = 300.0


def bus_config(config: Config, url: str, stream: str, ticks: int) -> Config:
    """``config`` with a ``[bus]`` on ``url``: a fresh stream, a buffer for every tick."""
    bus = BusConfig(url=url, stream=stream, publish_buffer=max(ticks + 1_000, 100_000))
    return msgspec.structs.replace(config, bus=bus)


def clock_for(config: Config, state: EngineState) -> tuple[Engine, SnapshotClock]:
    """A warm engine with its rules and snapshot clock, as an engine worker builds them."""
    engine = Engine(config)
    engine.import_state(state)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios], engine.account_names)
    return engine, SnapshotClock(engine, rules, config.live.snapshot_interval, lambda *_: None)


async def publish(config: Config, market: Market, names: Sequence[str]) -> float:
    """Seconds to offer and publish every tick (all acknowledged), then close with marks."""
    publisher = TickPublisher(config.bus)
    task = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(STAGE_TIMEOUT_S):
            await publisher.link.up.wait()
            start = time.perf_counter()
            now = time.monotonic()
            columns = (market.idx.tolist(), market.ts.tolist(), market.price.tolist())
            for i, ts, price in zip(*columns, strict=True):
                publisher.offer(VENUE, Tick(ts, names[i], price), now)
            publisher.mark(names, now, 1e9, every=True)
            while publisher.buffered:
                await publisher.flush(STAGE_TIMEOUT_S)
            elapsed = time.perf_counter() - start
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert publisher.stats.published == len(market) + len(names), publisher.stats
    return elapsed


async def consume(config: Config, state: EngineState, count: int) -> tuple[float, int]:
    """Seconds for an engine worker to apply ``count`` ticks from the stream; ticks applied."""
    engine, clock = clock_for(config, state)
    before = engine.ticks

    done = asyncio.Event()

    def on_batch(messages: list[BusMessage]) -> None:
        apply_in_stream_order(clock, messages)
        if subscriber.stats.consumed >= count:
            done.set()

    subscriber = TickSubscriber(config.bus, "bench", config.tracked_symbols, on_batch)
    task = asyncio.create_task(subscriber.run())
    try:
        async with asyncio.timeout(STAGE_TIMEOUT_S):
            await subscriber.link.up.wait()
            start = time.perf_counter()
            await done.wait()
            elapsed = time.perf_counter() - start
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return elapsed, engine.ticks - before


def in_process(config: Config, state: EngineState, ticks: list[BusTick]) -> float:
    """Seconds to apply the ticks to a warm engine without a bus."""
    _, clock = clock_for(config, state)
    start = time.perf_counter()
    apply_in_stream_order(clock, ticks)
    return time.perf_counter() - start


async def drop_stream(url: str, stream: str) -> None:
    client = await nats.connect(url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jsm().delete_stream(stream)
    finally:
        await client.close()


async def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """Every run of the three stages; rates in ticks per second."""
    base = write_config(directory, args.assets)
    names = list(base.tracked_symbols)
    warm = poisson_market(args.assets, int(args.warmup_s * args.rate), args.rate, seed=5)
    state = warm_state(base, warm)
    market = poisson_market(args.assets, args.ticks, args.rate, seed=11)
    shift = float(warm.ts[-1]) - float(market.ts[0]) + 1.0
    market = Market(market.idx, market.ts + shift, market.price)
    ticks = [
        BusTick(VENUE, names[i], ts, price, n + 1, "bench")
        for n, (i, ts, price) in enumerate(
            zip(market.idx.tolist(), market.ts.tolist(), market.price.tolist(), strict=True)
        )
    ]
    rates: dict[str, list[float]] = {"publish": [], "consume": [], "serial": [], "in_process": []}
    async with NatsServer(directory / "jetstream", directory / "nats-server.log") as server:
        for run in range(args.runs + 1):  # run 0 warms up the server, the JIT and the caches
            stream = f"BENCH_{run}"
            config = bus_config(base, server.url, stream, args.ticks)
            t_pub = await publish(config, market, names)
            t_cons, applied = await consume(config, state, args.ticks)
            t_local = in_process(config, state, ticks)
            await drop_stream(server.url, stream)
            if run == 0:
                continue
            assert applied == args.ticks, (applied, args.ticks)
            rates["publish"].append(args.ticks / t_pub)
            rates["consume"].append(args.ticks / t_cons)
            rates["serial"].append(args.ticks / (t_pub + t_cons))
            rates["in_process"].append(args.ticks / t_local)
            print(
                f"run {run}: publish {args.ticks / t_pub:,.0f}/s, consume "
                f"{args.ticks / t_cons:,.0f}/s, in-process {args.ticks / t_local:,.0f}/s",
                flush=True,
            )
    pipeline = [min(p, c) for p, c in zip(rates["publish"], rates["consume"], strict=True)]
    return {
        "publish_ticks_per_s": summary(rates["publish"]),
        "consume_ticks_per_s": summary(rates["consume"]),
        "through_bus_ticks_per_s": summary(pipeline),
        "serial_ticks_per_s": summary(rates["serial"]),
        "in_process_ticks_per_s": summary(rates["in_process"]),
        "bus_over_in_process": statistics.median(pipeline) / statistics.median(rates["in_process"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=100_000, help="ticks per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20_000.0, help="ticks per event second")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="event seconds of warm state")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs: at least 5 (medians of >= 5 runs)")
    if BINARY is None:
        parser.error("nats-server is not installed (Debian package nats-server; make system-deps)")
    configure_logging("warning")
    with temp_dir() as directory:
        result = asyncio.run(measure(args, directory))
    print_table(
        ["stage", "ticks/s: median (min-max)"],
        [
            ["publish (feeds role)", spread(result["publish_ticks_per_s"])],
            ["consume + engine (engine worker)", spread(result["consume_ticks_per_s"])],
            ["through the bus (slower of the two)", spread(result["through_bus_ticks_per_s"])],
            ["both in one process, one after the other", spread(result["serial_ticks_per_s"])],
            ["in-process engine, no bus (--role all)", spread(result["in_process_ticks_per_s"])],
        ],
    )
    print(f"through the bus / in-process: {result['bus_over_in_process']:.3g}x")
    path = write_result("bus_throughput", vars(args), result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
