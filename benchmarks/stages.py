"""CPU per message of each stage of the live path, each measured alone (for target 3 and 4).

Profilers that sample an asyncio loop disturb it; these costs are measured in isolation with
the process CPU clock, on the frames the wire server sends, so that their sum can be held
against the per-message CPU of the whole daemon:

- JSON decode: ``msgspec.json.decode`` of each message (the bare loop does this too);
- Binance parser: ``BINANCE.new_parser().parse`` (decode included) -> ``Quote`` events;
- ``asyncio.timeout``: entering and leaving the timeout that ``Connection._pump`` wraps
  around every ``recv()``;
- router: ``Router.on_events`` -> ``Tick`` -> ``TickBuffer.push``;
- engine step: what the daemon's engine loop does with a drained batch (sort, build the
  columns, ``SnapshotClock.feed``), per tick, at two batch sizes.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections.abc import Callable, Sequence

import msgspec
import numpy as np

from benchmarks.common import Batch
from feeds.events import FeedEvent
from feeds.router import Router, TickBuffer
from feeds.venues.binance import BINANCE
from monitor.config import Config
from monitor.daemon import Daemon
from monitor.engine import EngineState
from monitor.model import Tick


def _cpu_us(action: Callable[[], object], count: int) -> float:
    start = time.process_time()
    action()
    return (time.process_time() - start) / count * 1e6


async def _timeouts(count: int) -> None:
    for _ in range(count):
        async with asyncio.timeout(1.0):  # noqa: ASYNC100 - the context's own cost is measured
            pass


def _engine_steps(daemon: Daemon, ticks: list[Tick], size: int) -> None:
    for start in range(0, len(ticks), size):
        part = sorted(ticks[start : start + size], key=lambda t: t.ts)
        daemon.clock.feed(
            Batch(
                np.array([t.ts for t in part]),
                [t.symbol for t in part],
                np.array([t.price for t in part]),
            )
        )


def stage_costs(
    config: Config,
    state: EngineState,
    messages: Sequence[str],
    batch_sizes: Sequence[int],
    repeats: int = 5,
) -> dict[str, float]:
    """Microseconds of CPU per message for each stage: the median of ``repeats`` passes."""
    passes = [_one_pass(config, state, messages, batch_sizes) for _ in range(repeats)]
    return {name: statistics.median(p[name] for p in passes) for name in passes[0]}


def _one_pass(
    config: Config, state: EngineState, messages: Sequence[str], batch_sizes: Sequence[int]
) -> dict[str, float]:
    count = len(messages)
    decode = msgspec.json.decode
    parser = BINANCE.new_parser()
    out = {"JSON decode (msgspec)": _cpu_us(lambda: [decode(m) for m in messages], count)}
    events: list[list[FeedEvent]] = []
    out["Binance parser, decode included"] = _cpu_us(
        lambda: events.extend(parser.parse(m, 0.0) for m in messages), count
    )
    out["asyncio.timeout around recv()"] = _cpu_us(lambda: asyncio.run(_timeouts(count)), count)
    buffer = TickBuffer(count)
    router = Router(config.feeds, buffer, time.monotonic())
    out["router + tick buffer"] = _cpu_us(lambda: _route(router, events), count)
    ticks, _ = buffer.drain()
    for size in batch_sizes:
        daemon = Daemon(config)
        daemon.engine.import_state(state)
        out[f"engine step, batches of {size}"] = _cpu_us(
            functools.partial(_engine_steps, daemon, ticks, size), len(ticks)
        )
    return out


def _route(router: Router, events: list[list[FeedEvent]]) -> None:
    for frame_events in events:
        router.on_events("binance", frame_events, time.monotonic())
