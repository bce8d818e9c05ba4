"""CPU per message of each stage of the live path, each measured alone (for target 3 and 4).

Profilers that sample an asyncio loop disturb it; these costs are measured in isolation with
the process CPU clock, on the frames the wire server sends, so that their sum can be held
against the per-message CPU of the whole daemon:

- JSON decode: ``msgspec.json.decode`` of each message (the bare loop does this too);
- Binance parser: ``BINANCE.new_parser().parse`` (decode included) -> ``Quote`` events;
- session loop: ``Connection.run`` over an in-memory socket with a parser that returns no
  events and a sink that does nothing, i.e. the session's own work per frame (receive
  rounds, liveness bookkeeping, counters) plus one ``await`` of the in-memory ``recv()``;
- router: ``Router.on_events`` -> ``TickBuffer.append``;
- engine step: what the daemon's engine loop does with drained ticks (time order, arrays,
  ``SnapshotClock.feed``), per tick, at two batch sizes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import msgspec

from feeds.events import FeedEvent, PriceKind
from feeds.router import Router, TickBuffer, TickColumns
from feeds.session import Connection
from feeds.venues.binance import BINANCE
from monitor.config.schema import Config
from monitor.engine import EngineState
from service.daemon import Daemon, _Batch


def _cpu_us(action: Callable[[], object], count: int) -> float:
    start = time.process_time()
    action()
    return (time.process_time() - start) / count * 1e6


class _MemorySocket:
    """Hands out the frames, then waits forever (the session then sits in ``recv()``)."""

    def __init__(self, frames: Sequence[str], done: asyncio.Event) -> None:
        self._frames: Iterator[str] = iter(frames)
        self._done = done

    async def recv(self) -> str:
        for frame in self._frames:
            return frame
        self._done.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: str) -> None:
        del message

    async def close(self) -> None:
        pass


class _NullParser:
    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        del raw, recv_ts
        return []


async def _session(messages: Sequence[str]) -> None:
    done = asyncio.Event()

    async def connector(url: str) -> _MemorySocket:
        del url
        return _MemorySocket(messages, done)

    spec = dataclasses.replace(BINANCE, new_parser=_NullParser)
    plan = BINANCE.plan("ws://memory", ["S000USDT"], PriceKind.TRADE)[0]
    conn = Connection(spec, plan, PriceKind.TRADE, lambda v, e, m: None, connector=connector)
    task = asyncio.create_task(conn.run())
    await done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _engine_steps(daemon: Daemon, ticks: TickColumns, size: int) -> None:
    for a in range(0, len(ticks), size):
        b = a + size
        daemon.clock.feed(_Batch.in_time_order(ticks.ts[a:b], ticks.symbol[a:b], ticks.price[a:b]))


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
    out["session loop (in-memory socket)"] = _cpu_us(lambda: asyncio.run(_session(messages)), count)
    buffer = TickBuffer(count)
    router = Router(config.feeds, buffer, time.monotonic())
    out["router + tick buffer"] = _cpu_us(lambda: _route(router, events), count)
    ticks, _ = buffer.drain_columns()
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
