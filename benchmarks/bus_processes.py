"""The processes of ``benchmarks.bus_throughput``: engine workers and a latency listener.

Each runs in a process of its own (``multiprocessing``, spawn), as the roles do when deployed:

- :func:`worker_main`: an engine worker kept for every run of one worker count. Per task it
  builds a warm engine, its rules and snapshot clock, and a ``TickSubscriber`` of its share of
  the symbols; reports ready; starts when the parent sets ``go``; reports the
  ``time.monotonic()`` (one clock for every process of the machine) at which it had applied
  its ticks.
- :func:`listen_main`: a plain NATS subscription to the tick subjects that records, for every
  tick of every batch it receives, ``time.time() - recv``: how long after the feeds role
  accepted the tick it was stored and delivered (the latency the bus, batching included, adds).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import msgspec
import nats
import numpy as np

from benchmarks.common import poisson_market, warm_state
from bus.subscriber import TickSubscriber
from bus.wire import BusBatch, BusMessage, decode_message
from monitor.clock import SnapshotClock
from monitor.config.bus import BusConfig
from monitor.config.loading import load_config
from monitor.engine import Engine
from monitor.rules import RuleEngine
from service.engine_role import apply_in_stream_order
from service.logs import configure_logging

STAGE_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class WorkerTask:
    """One run of one worker: the stream to read, its consumer name, the ticks to expect."""

    url: str
    stream: str
    name: str
    ticks: int


@dataclass(frozen=True, slots=True)
class Market:
    """How the parent made the warm-up market (each worker rebuilds it: deterministic)."""

    assets: int
    warm_ticks: int
    rate: float
    seed: int


def worker_main(
    config_path: Path,
    symbols: list[str],
    market: Market,
    tasks: Queue[WorkerTask | None],
    results: Queue[tuple[str, Any]],
    go: Event,
) -> None:
    """Serve tasks until ``None``: consume a stream's share of ticks, report when done."""
    configure_logging("warning")
    base = load_config(config_path, environ={})
    warm = poisson_market(market.assets, market.warm_ticks, market.rate, market.seed)
    state = warm_state(base, warm)
    while (task := tasks.get()) is not None:
        bus = BusConfig(url=task.url, stream=task.stream)
        config = msgspec.structs.replace(base, bus=bus)
        engine = Engine(config)
        engine.import_state(state)
        rules = RuleEngine(config.rules, [p.name for p in config.portfolios], engine.account_names)
        clock = SnapshotClock(engine, rules, config.live.snapshot_interval, lambda *_: None)
        finish = asyncio.run(_consume(bus, task, symbols, clock, results, go))
        results.put(("done", (task.name, finish, engine.ticks - state.ticks)))


async def _consume(
    bus: BusConfig,
    task: WorkerTask,
    symbols: list[str],
    clock: SnapshotClock,
    results: Queue[tuple[str, Any]],
    go: Event,
) -> float:
    done = asyncio.Event()
    finish, applied = 0.0, 0

    def on_batch(messages: list[BusMessage]) -> None:
        nonlocal finish, applied
        apply_in_stream_order(clock, messages)
        applied += sum(len(m) for m in messages if isinstance(m, BusBatch))
        if applied >= task.ticks and not done.is_set():
            finish = time.monotonic()
            done.set()

    subscriber = TickSubscriber(bus, task.name, symbols, on_batch)
    results.put(("ready", task.name))
    await asyncio.to_thread(go.wait)
    running = asyncio.create_task(subscriber.run())
    waiting = asyncio.create_task(done.wait())
    try:
        await asyncio.wait(
            {running, waiting}, timeout=STAGE_TIMEOUT_S, return_when="FIRST_COMPLETED"
        )
        if running.done():
            running.result()  # the subscriber failed: raise its error here
        if not done.is_set():
            raise TimeoutError(f"{task.name}: {subscriber.stats} after {STAGE_TIMEOUT_S} s")
    finally:
        for pending in (running, waiting):
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
    return finish


def listen_main(url: str, subjects: str, count: int, results: Queue[tuple[str, Any]]) -> None:
    """Record the delay of ``count`` ticks; report their latencies (seconds) as a list."""
    results.put(("latencies", asyncio.run(_listen(url, subjects, count, results))))


async def _listen(
    url: str, subjects: str, count: int, results: Queue[tuple[str, Any]]
) -> list[float]:
    seen: list[np.ndarray] = []
    got = 0
    done = asyncio.Event()

    async def on_message(msg: Any) -> None:
        nonlocal got
        now = time.time()
        message = decode_message(msg.data)
        if isinstance(message, BusBatch):
            seen.append(now - message.columns()[2])
            got += len(message)
            if got >= count:
                done.set()

    client = await nats.connect(url)
    try:
        await client.subscribe(subjects, cb=on_message)
        await client.flush()
        results.put(("ready", "listener"))
        async with asyncio.timeout(STAGE_TIMEOUT_S):
            await done.wait()
    finally:
        await client.close()
    return np.concatenate(seen).tolist() if seen else []
