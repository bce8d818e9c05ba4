"""Issue #20: an engine worker catching up a backlog, against in-process replay of the same
messages.

A real ``nats-server -js`` (Debian package; file storage in a temporary directory) on
127.0.0.1. The stream is written the way a live feeds role writes it: ``--ticks``
asynchronous Poisson ticks of ``--assets`` symbols (rates differing 50x, ``--rate`` ticks
per event second), each subject's ticks closed into a batch every ``[bus] linger`` of event
time (5 ms: a few ticks per message, as live), and a mark on every symbol without a tick
every ``[bus] mark_interval`` (100 ms). The quiet symbols' messages then span far more of the
stream than the busy ones': the case where stream-order merging holds messages back.

Per run, interleaved:

- catch-up: a fresh ``TickSubscriber`` with the *default* ``[bus]`` settings (one durable pull
  consumer per symbol, the merge into stream order, engine steps, acknowledgements) feeding a
  warm engine through ``apply_in_stream_order``, timed from its connection until every tick is
  applied; its rewinds (each one a stall) are counted;
- in-process: the same stream messages, read back and decoded beforehand, fed to the same warm
  engine through ``apply_in_stream_order`` in steps of 1,000 messages (what a worker computes,
  without the bus).

Goal: catch-up at no less than half of the in-process speed (ratio of medians of ``--runs``).
JSON to benchmarks/results/bus_catchup.json.

Usage: python -m benchmarks.bus_catchup [--assets 8] [--ticks 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.js import api

from benchmarks.bus_throughput import (
    STAGE_TIMEOUT_S,
    VENUE,
    WARM_SEED,
    clock_for,
    drop_stream,
    subscribe_until,
)
from benchmarks.common import (
    Market,
    poisson_market,
    print_table,
    spread,
    summary,
    temp_dir,
    verdict,
    warm_state,
    write_config,
    write_result,
)
from bus.publisher import TickPublisher
from bus.subscriber import TickSubscriber
from bus.wire import BusMessage, decode_message
from monitor.config.bus import BusConfig
from monitor.config.schema import Config
from monitor.engine import EngineState
from monitor.model import Tick
from service.engine_role import apply_in_stream_order
from service.logs import configure_logging
from tests.natsserver import BINARY, NatsServer

GOAL_RATIO = 0.5
IN_PROCESS_STEP = 1_000  # messages per apply_in_stream_order call


def with_bus(config: Config, url: str, stream: str, ticks: int) -> Config:
    """``config`` with the default ``[bus]`` on ``url`` (a buffer for every tick)."""
    bus = BusConfig(url=url, stream=stream, publish_buffer=max(ticks + 1_000, 100_000))
    return msgspec.structs.replace(config, bus=bus)


async def publish_live(config: Config, market: Market, names: Sequence[str]) -> None:
    """Publish ``market`` as a live feeds role would: batches closed every linger, marks on
    the quiet symbols every mark interval (both in event time)."""
    bus = config.bus
    linger, every = float(bus.linger), float(bus.mark_interval)
    publisher = TickPublisher(bus)
    task = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(STAGE_TIMEOUT_S):
            await publisher.link.up.wait()
            close_at = mark_at = float(market.ts[0])
            recv = time.time()
            columns = (market.idx.tolist(), market.ts.tolist(), market.price.tolist())
            for i, t, p in zip(*columns, strict=True):
                if t >= mark_at:
                    publisher.mark(names, t, 1e9)
                    mark_at, close_at = t + every, t + linger
                elif t >= close_at:
                    publisher.close_batches()
                    close_at = t + linger
                publisher.offer(VENUE, Tick(t, names[i], p), t, recv)
            publisher.mark(names, float(market.ts[-1]), 1e9, every=True)
            while publisher.buffered:
                await publisher.flush(STAGE_TIMEOUT_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def read_stream(url: str, stream: str, prefix: str) -> list[BusMessage]:
    """Every message of the stream, decoded, in stream order."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        total = (await js.stream_info(stream)).state.messages
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE)
        sub = await js.pull_subscribe(f"{prefix}.>", stream=stream, config=config)
        out: list[BusMessage] = []
        while len(out) < total:
            out.extend(decode_message(m.data) for m in await sub.fetch(5000, timeout=10))
        return out
    finally:
        await client.close()


async def catch_up(config: Config, state: EngineState, count: int) -> tuple[float, int, int]:
    """Seconds for a fresh worker to apply the ``count`` ticks of the stream; its rewinds; the
    most messages its merger held back at once."""
    _, clock = clock_for(config, state)
    held = 0

    def observe(subscriber: TickSubscriber) -> None:
        nonlocal held
        held = max(held, subscriber.merger.held)

    elapsed, subscriber = await subscribe_until(config, clock, "catchup", count, observe)
    return elapsed, subscriber.stats.rewinds, held


def in_process(config: Config, state: EngineState, messages: list[BusMessage]) -> float:
    """Seconds to apply the decoded messages to a warm engine, 1,000 messages per call."""
    _, clock = clock_for(config, state)
    start = time.perf_counter()
    for i in range(0, len(messages), IN_PROCESS_STEP):
        apply_in_stream_order(clock, messages[i : i + IN_PROCESS_STEP])
    return time.perf_counter() - start


async def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """Every run; rates in ticks (and messages) per second."""
    base = write_config(directory, args.assets)
    names = list(base.tracked_symbols)
    warm = poisson_market(args.assets, int(args.warmup_s * args.rate), args.rate, seed=WARM_SEED)
    state = warm_state(base, warm)
    market = poisson_market(args.assets, args.ticks, args.rate, seed=13)
    shift = float(warm.ts[-1]) - float(market.ts[0]) + 1.0
    market = Market(market.idx, market.ts + shift, market.price)
    gc.collect()
    gc.freeze()  # as `riskmon run` does at start, once its libraries are loaded
    rates: dict[str, list[float]] = {"catch_up": [], "in_process": []}
    rewinds: list[int] = []
    held_peaks: list[int] = []
    messages_per_run = 0
    async with NatsServer(directory / "jetstream", directory / "nats-server.log") as server:
        for run in range(args.runs + 1):  # run 0 warms up the server, the JIT and the caches
            stream = f"CATCHUP_{run}"
            config = with_bus(base, server.url, stream, args.ticks)
            await publish_live(config, market, names)
            messages = await read_stream(server.url, stream, config.bus.subject_prefix)
            t_bus, rewound, held = await catch_up(config, state, args.ticks)
            t_local = in_process(config, state, messages)
            await drop_stream(server.url, stream)
            if run == 0:
                continue
            messages_per_run = len(messages)
            rates["catch_up"].append(args.ticks / t_bus)
            rates["in_process"].append(args.ticks / t_local)
            rewinds.append(rewound)
            held_peaks.append(held)
            print(
                f"run {run}: {len(messages):,} messages; catch-up {args.ticks / t_bus:,.0f} "
                f"ticks/s ({len(messages) / t_bus:,.0f} msg/s, {rewound} rewinds, {held:,} held "
                f"at most), in-process {args.ticks / t_local:,.0f} ticks/s",
                flush=True,
            )
    ratio = statistics.median(rates["catch_up"]) / statistics.median(rates["in_process"])
    return {
        "messages": messages_per_run,
        "catch_up_ticks_per_s": summary(rates["catch_up"]),
        "catch_up_messages_per_s": summary(
            [r * messages_per_run / args.ticks for r in rates["catch_up"]]
        ),
        "in_process_ticks_per_s": summary(rates["in_process"]),
        "rewinds": rewinds,
        "held_peak": held_peaks,
        "catch_up_over_in_process": ratio,
        "targets": [
            {
                "target": "#20 catch-up",
                "goal": f">= {GOAL_RATIO}x in-process",
                "pass": ratio >= GOAL_RATIO and not any(rewinds),
            }
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=200_000, help="ticks per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=2_000.0, help="ticks per event second")
    parser.add_argument("--warmup-s", type=float, default=300.0, help="event seconds of warm state")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs: at least 3")
    if BINARY is None:
        parser.error("nats-server is not installed (Debian package nats-server; make system-deps)")
    configure_logging("warning")
    with temp_dir() as directory:
        result = asyncio.run(measure(args, directory))
    print_table(
        ["stage", "ticks/s: median (min-max)"],
        [
            ["catch-up, one engine worker, default [bus]", spread(result["catch_up_ticks_per_s"])],
            ["in-process, the same messages", spread(result["in_process_ticks_per_s"])],
        ],
    )
    print(
        f"{result['messages']:,} messages per run; catch-up "
        f"{spread(result['catch_up_messages_per_s'])} messages/s; rewinds {result['rewinds']}"
    )
    print(f"catch-up / in-process: {result['catch_up_over_in_process']:.3g}x")
    for target in result["targets"]:
        print(f"{target['target']}: {target['goal']}: {verdict(target['pass'])}")
    path = write_result("bus_catchup", vars(args), result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
