"""Issue #17: ticks per second through the NATS JetStream bus against the in-process engine,
the latency batching adds, and how engine workers scale.

A real ``nats-server -js`` (Debian package; file storage in a temporary directory) on
127.0.0.1. Each run uses a fresh stream and the same ``--ticks`` asynchronous Poisson ticks of
``--assets`` symbols (rates differing 50x, ``--rate`` ticks per second of event time, the
engine benchmark's market). Measured per run, interleaved:

- publish: the feeds role's side. Every tick is offered to a ``TickPublisher`` one by one (as
  the router hands over a frame of one trade), batched per subject (``[bus] linger``,
  ``max_batch``) and published until JetStream has acknowledged every batch; then a mark on
  every symbol closes the stream;
- consume: an engine worker's side, started on the full stream. A ``TickSubscriber`` (one
  durable pull consumer per symbol, the merge back into stream order, engine steps of at most
  10,000 ticks, acknowledgements) feeds a warm engine, its rules and its snapshot clock
  through ``apply_in_stream_order``, timed until every tick is applied;
- in-process baseline: the engine step of ``--role all`` on the same ticks: the tick buffer's
  columns (lists of times, symbols, prices) of ``--step`` ticks at a time, made arrays and fed
  to the same warm engine's snapshot clock (``service.daemon``'s step).

The two roles run in separate processes when deployed, so the rate through the bus is the
slower of publish and consume (a pipeline); "serial" is both in one process, one after the
other. Then, on the stream of each run:

- workers: 1, 2 and 4 engine workers (``--workers``), each a process of its own with a share
  of the symbols (round-robin by tick rate), started together on the stored stream; the rate
  is all ticks over the time until the last worker applied its share.

And last, the latency: ticks offered at ``--latency-rate`` per second (a frame every
millisecond, stamped with the wall clock) for ``--latency-s`` seconds, received by a plain
NATS subscription in another process: offer -> stored and delivered, per tick, with the
default batching and with ``max_batch = 1`` (one message per tick: the bus before batches).

Medians of ``--runs`` (at least 5); JSON to benchmarks/results/bus_throughput.json.

Usage: python -m benchmarks.bus_throughput [--assets 10] [--ticks 500000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats
import numpy as np

from benchmarks.bus_processes import Market as WarmMarket
from benchmarks.bus_processes import WorkerTask, listen_main, worker_main
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
from bus.wire import BusBatch, BusMessage
from monitor.clock import SnapshotClock
from monitor.config.bus import BusConfig
from monitor.config.schema import Config
from monitor.engine import Engine, EngineState
from monitor.model import Tick
from monitor.rules import RuleEngine
from service.daemon import _Batch
from service.engine_role import apply_in_stream_order
from service.logs import configure_logging
from tests.natsserver import BINARY, NatsServer

VENUE = "binance"
STAGE_TIMEOUT_S = 300.0
GOAL_RATIO = 0.25
GOAL_P99_MS = 20.0
WARM_SEED = 5


def bus_config(config: Config, url: str, stream: str, ticks: int, **keys: Any) -> Config:
    """``config`` with a ``[bus]`` on ``url``: a fresh stream, a buffer for every tick."""
    bus = BusConfig(url=url, stream=stream, publish_buffer=max(ticks + 1_000, 100_000), **keys)
    return msgspec.structs.replace(config, bus=bus)


def clock_for(config: Config, state: EngineState) -> tuple[Engine, SnapshotClock]:
    """A warm engine with its rules and snapshot clock, as an engine worker builds them."""
    engine = Engine(config)
    engine.import_state(state)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios], engine.account_names)
    return engine, SnapshotClock(engine, rules, config.live.snapshot_interval, lambda *_: None)


async def publish(config: Config, ticks: list[Tick], names: Sequence[str]) -> float:
    """Seconds to offer and publish every tick (all acknowledged), then close with marks."""
    publisher = TickPublisher(config.bus)
    task = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(STAGE_TIMEOUT_S):
            await publisher.link.up.wait()
            start = time.perf_counter()
            now, recv = time.monotonic(), time.time()
            for tick in ticks:
                publisher.offer(VENUE, tick, now, recv)
            publisher.mark(names, now, 1e9, every=True)
            while publisher.buffered:
                await publisher.flush(STAGE_TIMEOUT_S)
            elapsed = time.perf_counter() - start
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert publisher.stats.published_ticks == len(ticks), publisher.stats
    return elapsed


async def consume(config: Config, state: EngineState, count: int) -> tuple[float, int]:
    """Seconds for an engine worker to apply ``count`` ticks from the stream; ticks applied."""
    engine, clock = clock_for(config, state)
    before = engine.ticks
    elapsed, _ = await subscribe_until(config, clock, "bench", count)
    return elapsed, engine.ticks - before


async def subscribe_until(
    config: Config,
    clock: SnapshotClock,
    durable: str,
    count: int,
    observe: Callable[[TickSubscriber], None] | None = None,
) -> tuple[float, TickSubscriber]:
    """Seconds from the subscriber's link being up to ``count`` ticks applied to ``clock`` in
    stream order, and the subscriber (its stats); ``observe`` sees it before every step."""
    done = asyncio.Event()
    applied = 0

    def on_batch(messages: list[BusMessage]) -> None:
        nonlocal applied
        if observe is not None:
            observe(subscriber)
        apply_in_stream_order(clock, messages)
        applied += sum(len(m) for m in messages if isinstance(m, BusBatch))
        if applied >= count:
            done.set()

    subscriber = TickSubscriber(config.bus, durable, config.tracked_symbols, on_batch)
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
    return elapsed, subscriber


def in_process(config: Config, state: EngineState, ticks: list[Tick], step: int) -> float:
    """Seconds for ``--role all``'s engine step to apply the ticks: drained columns, arrays,
    the snapshot clock."""
    _, clock = clock_for(config, state)
    columns = [
        ([t.ts for t in part], [t.symbol for t in part], [t.price for t in part])
        for part in (ticks[i : i + step] for i in range(0, len(ticks), step))
    ]
    start = time.perf_counter()
    for ts, symbols, prices in columns:
        clock.feed(_Batch.in_time_order(ts, symbols, prices))
    return time.perf_counter() - start


async def drop_stream(url: str, stream: str) -> None:
    client = await nats.connect(url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jsm().delete_stream(stream)
    finally:
        await client.close()


class WorkerPool:
    """``n`` engine worker processes, each with a share of the symbols, kept across runs."""

    def __init__(self, n: int, config_path: Path, names: Sequence[str], market: WarmMarket) -> None:
        context = multiprocessing.get_context("spawn")
        self.shares = [list(names[k::n]) for k in range(n)]
        self.tasks = [context.Queue() for _ in range(n)]
        self.results = context.Queue()
        self.go = context.Event()
        self.processes = [
            context.Process(
                target=worker_main,
                args=(config_path, share, market, queue, self.results, self.go),
                daemon=True,
            )
            for share, queue in zip(self.shares, self.tasks, strict=True)
        ]
        for process in self.processes:
            process.start()

    def run(self, url: str, stream: str, counts: list[int], tag: str) -> float:
        """Seconds from the start signal until every worker applied its share."""
        self.go.clear()
        for k, (queue, count) in enumerate(zip(self.tasks, counts, strict=True)):
            queue.put(WorkerTask(url, stream, f"{tag}-{k}", count))
        self._expect("ready", len(self.processes))
        start = time.monotonic()
        self.go.set()
        done = self._expect("done", len(self.processes))
        assert [d[2] for d in sorted(done)] == counts, (done, counts)
        return max(d[1] for d in done) - start

    def _expect(self, kind: str, n: int) -> list[Any]:
        got = []
        while len(got) < n:
            what, value = self.results.get(timeout=STAGE_TIMEOUT_S)
            assert what == kind, (what, value)
            got.append(value)
        return got

    def close(self) -> None:
        for queue in self.tasks:
            queue.put(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


async def paced_latencies(
    config: Config, names: Sequence[str], rate: float, seconds: float
) -> list[float]:
    """Offer ticks at ``rate`` per second for ``seconds``; their offer -> delivery delays."""
    count = int(rate * seconds)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    subjects = f"{config.bus.subject_prefix}.>"
    listener = context.Process(
        target=listen_main, args=(config.bus.url, subjects, count, results), daemon=True
    )
    listener.start()
    publisher = TickPublisher(config.bus)
    task = asyncio.create_task(publisher.run())
    rng = np.random.default_rng(1)
    symbols = [names[i] for i in rng.integers(0, len(names), count)]
    try:
        async with asyncio.timeout(STAGE_TIMEOUT_S):
            assert (await asyncio.to_thread(results.get, True, STAGE_TIMEOUT_S))[0] == "ready"
            await publisher.link.up.wait()
            start, sent = time.monotonic(), 0
            while sent < count:
                due = min(count, int((time.monotonic() - start) * rate) + 1)
                for n in range(sent, due):
                    publisher.offer(
                        VENUE, Tick(1.7e9 + n / rate, symbols[n], 100.0), 0.0, time.time()
                    )
                sent = due
                await asyncio.sleep(0.001)
            await publisher.flush(STAGE_TIMEOUT_S)
            kind, latencies = await asyncio.to_thread(results.get, True, STAGE_TIMEOUT_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.join(timeout=10)
    assert kind == "latencies"
    return list(latencies)


def _market_ticks(market: Market, names: Sequence[str]) -> list[Tick]:
    columns = (market.idx.tolist(), market.ts.tolist(), market.price.tolist())
    return [Tick(ts, names[i], price) for i, ts, price in zip(*columns, strict=True)]


async def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """Every run of every stage; rates in ticks per second, latencies in milliseconds."""
    base = write_config(directory, args.assets)
    config_path = directory / f"bench-{args.assets}.toml"
    names = list(base.tracked_symbols)
    warm_spec = WarmMarket(args.assets, int(args.warmup_s * args.rate), args.rate, WARM_SEED)
    warm = poisson_market(args.assets, warm_spec.warm_ticks, args.rate, seed=WARM_SEED)
    state = warm_state(base, warm)
    market = poisson_market(args.assets, args.ticks, args.rate, seed=11)
    shift = float(warm.ts[-1]) - float(market.ts[0]) + 1.0
    market = Market(market.idx, market.ts + shift, market.price)
    ticks = _market_ticks(market, names)
    per_symbol = np.bincount(market.idx, minlength=len(names))
    rates: dict[str, list[float]] = {"publish": [], "consume": [], "serial": [], "in_process": []}
    workers: dict[int, list[float]] = {n: [] for n in args.workers}
    latencies: dict[str, list[dict[str, float]]] = {"batched": [], "one_per_tick": []}
    pools = {n: WorkerPool(n, config_path, names, warm_spec) for n in args.workers}
    try:
        async with NatsServer(directory / "jetstream", directory / "nats-server.log") as server:
            for run in range(args.runs + 1):  # run 0 warms up the server, the JIT and the caches
                stream = f"BENCH_{run}"
                config = bus_config(base, server.url, stream, args.ticks)
                t_pub = await publish(config, ticks, names)
                t_cons, applied = await consume(config, state, args.ticks)
                t_local = in_process(config, state, ticks, args.step)
                scaled = {}
                for n, pool in pools.items():
                    counts = [
                        int(sum(per_symbol[names.index(s)] for s in share)) for share in pool.shares
                    ]
                    scaled[n] = await asyncio.to_thread(
                        pool.run, server.url, stream, counts, f"r{run}n{n}"
                    )
                await drop_stream(server.url, stream)
                if run == 0:
                    continue
                assert applied == args.ticks, (applied, args.ticks)
                rates["publish"].append(args.ticks / t_pub)
                rates["consume"].append(args.ticks / t_cons)
                rates["serial"].append(args.ticks / (t_pub + t_cons))
                rates["in_process"].append(args.ticks / t_local)
                for n, seconds in scaled.items():
                    workers[n].append(args.ticks / seconds)
                print(
                    f"run {run}: publish {args.ticks / t_pub:,.0f}/s, consume "
                    f"{args.ticks / t_cons:,.0f}/s, in-process {args.ticks / t_local:,.0f}/s; "
                    + ", ".join(f"{n} workers {args.ticks / s:,.0f}/s" for n, s in scaled.items()),
                    flush=True,
                )
            for run in range(args.runs):
                for label, keys in (("batched", {}), ("one_per_tick", {"max_batch": 1})):
                    stream = f"LATENCY_{run}_{label}"
                    config = bus_config(base, server.url, stream, args.ticks, **keys)
                    seen = await paced_latencies(config, names, args.latency_rate, args.latency_s)
                    await drop_stream(server.url, stream)
                    ms = np.asarray(seen) * 1e3
                    latencies[label].append(
                        {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}
                    )
                print(
                    f"latency run {run + 1}: p99 batched {latencies['batched'][-1]['p99']:.2f} ms, "
                    f"one message per tick {latencies['one_per_tick'][-1]['p99']:.2f} ms",
                    flush=True,
                )
    finally:
        for pool in pools.values():
            pool.close()
    pipeline = [min(p, c) for p, c in zip(rates["publish"], rates["consume"], strict=True)]
    ratio = statistics.median(pipeline) / statistics.median(rates["in_process"])
    p99 = statistics.median(x["p99"] for x in latencies["batched"])
    return {
        "publish_ticks_per_s": summary(rates["publish"]),
        "consume_ticks_per_s": summary(rates["consume"]),
        "through_bus_ticks_per_s": summary(pipeline),
        "serial_ticks_per_s": summary(rates["serial"]),
        "in_process_ticks_per_s": summary(rates["in_process"]),
        "bus_over_in_process": ratio,
        "workers_ticks_per_s": {str(n): summary(v) for n, v in workers.items()},
        "latency_ms": {
            label: {q: summary([x[q] for x in runs]) for q in ("p50", "p99")}
            for label, runs in latencies.items()
        },
        "targets": [
            {
                "target": "#17 bus",
                "goal": f">= {GOAL_RATIO}x in-process",
                "pass": ratio >= GOAL_RATIO,
            },
            {
                "target": "#17 latency",
                "goal": f"p99 <= {GOAL_P99_MS} ms",
                "pass": p99 <= GOAL_P99_MS,
            },
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=500_000, help="ticks per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20_000.0, help="ticks per event second")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="event seconds of warm state")
    parser.add_argument("--step", type=int, default=1_000, help="ticks per in-process step")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency-rate", type=float, default=20_000.0, help="ticks per second")
    parser.add_argument("--latency-s", type=float, default=3.0, help="seconds per latency run")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs: at least 5 (medians of >= 5 runs)")
    if BINARY is None:
        parser.error("nats-server is not installed (Debian package nats-server; make system-deps)")
    configure_logging("warning")
    with temp_dir() as directory:
        result = asyncio.run(measure(args, directory))
    rows = [
        ["publish (feeds role)", spread(result["publish_ticks_per_s"])],
        ["consume + engine (one engine worker)", spread(result["consume_ticks_per_s"])],
        ["through the bus (slower of the two)", spread(result["through_bus_ticks_per_s"])],
        ["both in one process, one after the other", spread(result["serial_ticks_per_s"])],
        ["in-process engine step (--role all)", spread(result["in_process_ticks_per_s"])],
    ]
    rows += [
        [f"{n} engine worker processes, all ticks", spread(v)]
        for n, v in result["workers_ticks_per_s"].items()
    ]
    print_table(["stage", "ticks/s: median (min-max)"], rows)
    print(f"through the bus / in-process: {result['bus_over_in_process']:.3g}x")
    for label, quantiles in result["latency_ms"].items():
        p50, p99 = (spread(quantiles[q], fmt=".2f") for q in ("p50", "p99"))
        print(f"offer -> delivered at {args.latency_rate:,.0f}/s, {label}: p50 {p50}, p99 {p99} ms")
    for target in result["targets"]:
        print(f"{target['target']}: {target['goal']}: {verdict(target['pass'])}")
    path = write_result("bus_throughput", vars(args), result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
