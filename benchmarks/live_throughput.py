"""Target 3: ticks per second through the real live path, against a bare receive loop.

A :mod:`benchmarks.wire_server` process streams ``--count`` Binance trade frames of ``--assets``
symbols at full speed on 127.0.0.1 (event time advances ``--rate`` messages per second, so the
engine takes a snapshot every ``--rate`` messages). This process, measured alone, receives them:

- riskmon: ``service.daemon.Daemon`` with a Binance feed pointed at the server, i.e.
  ``feeds.session.Connection`` (``BINANCE`` parser) -> ``Router`` -> ``TickBuffer`` -> engine
  loop -> ``SnapshotClock`` -> ``Engine`` and rules. The engine starts from a warm state (as
  after a restart from a checkpoint); the clock runs from the socket being open to the last
  tick being applied by the engine.
- bare: the same websockets client (``feeds.session.default_connector``) in a loop that only
  decodes each frame's JSON (msgspec, the decoder riskmon's parser uses), from the socket being
  open to the last frame decoded.

Runs alternate between the two; CPU seconds of this process are reported beside wall time.

Usage: python -m benchmarks.live_throughput [--runs 5] [--count 200000] [--assets 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from benchmarks.common import (
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
from benchmarks.stages import stage_costs
from benchmarks.wire_server import trade_messages, wire_server
from feeds.session import Socket, default_connector
from monitor.config.schema import Config
from monitor.engine import EngineState
from service.daemon import Daemon
from service.logs import configure_logging

TARGET_SHARE = 0.5
RUN_TIMEOUT_S = 120.0


async def bare_run(url: str, count: int) -> dict[str, float]:
    """Receive and decode ``count`` frames with nothing else per frame."""
    decode = msgspec.json.decode
    sock = await default_connector()(url)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            decode(await sock.recv())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await sock.close()
    return {"ticks_per_s": count / wall, "ticks_per_cpu_s": count / cpu}


async def riskmon_run(config: Config, state: EngineState, count: int) -> dict[str, float]:
    """Run a daemon until its engine has applied ``count`` ticks; then stop it."""
    inner = default_connector()
    opened: list[tuple[float, float]] = []

    async def connector(url: str) -> Socket:
        sock = await inner(url)
        opened.append((time.perf_counter(), time.process_time()))
        return sock

    done = asyncio.Event()
    daemon = Daemon(config, connector=connector)
    daemon.engine.import_state(state)
    first = daemon.engine.ticks
    finished: list[tuple[float, float]] = []
    steps = 0

    def on_step(latency_s: float) -> None:
        nonlocal steps
        del latency_s
        steps += 1
        if daemon.engine.ticks - first >= count and not finished:
            finished.append((time.perf_counter(), time.process_time()))
            done.set()

    daemon.on_step = on_step
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await daemon.run(done)
    (start, cpu0), (end, cpu1) = opened[0], finished[0]
    skipped = sum(daemon.rejected().values())
    return {
        "ticks_per_s": count / (end - start),
        "ticks_per_cpu_s": count / (cpu1 - cpu0),
        "snapshots": daemon.snapshots,
        "ticks_per_step": count / steps,
        "dropped": daemon.buffer.dropped,
        "skipped": skipped,
        "connections": sum(c.stats.connections for c in daemon.connections),
    }


async def measure(
    args: argparse.Namespace, url: str, config: Config, state: EngineState
) -> dict[str, Any]:
    """Warm-up round, then ``--runs`` alternating rounds."""
    await bare_run(url, args.count)
    await riskmon_run(config, state, args.count)
    bare, riskmon = [], []
    for _ in range(args.runs):
        bare.append(await bare_run(url, args.count))
        riskmon.append(await riskmon_run(config, state, args.count))
    share = statistics.median(r["ticks_per_s"] for r in riskmon) / statistics.median(
        b["ticks_per_s"] for b in bare
    )
    return {
        "riskmon_ticks_per_s": summary([r["ticks_per_s"] for r in riskmon]),
        "riskmon_ticks_per_cpu_s": summary([r["ticks_per_cpu_s"] for r in riskmon]),
        "bare_ticks_per_s": summary([b["ticks_per_s"] for b in bare]),
        "bare_ticks_per_cpu_s": summary([b["ticks_per_cpu_s"] for b in bare]),
        "ratio_of_medians": share,
        "snapshots_per_run": statistics.median(r["snapshots"] for r in riskmon),
        "ticks_per_engine_step": statistics.median(r["ticks_per_step"] for r in riskmon),
        "dropped_ticks": sum(r["dropped"] for r in riskmon),
        "skipped_ticks": sum(r["skipped"] for r in riskmon),
        "reconnects": sum(r["connections"] - 1 for r in riskmon),
    }


async def riskmon_only(args: argparse.Namespace, config: Config, state: EngineState) -> None:
    """``--runs`` riskmon runs and nothing else, for profilers."""
    for _ in range(args.runs):
        await riskmon_run(config, state, args.count)


def print_stages(result: dict[str, Any]) -> None:
    """The per-stage CPU costs beside the measured per-message CPU of both paths."""
    stages = result["stage_cpu_us_per_message"]
    bare_us = 1e6 / result["bare_ticks_per_cpu_s"]["median"]
    riskmon_us = 1e6 / result["riskmon_ticks_per_cpu_s"]["median"]
    rows = [
        ["bare loop, measured (median run)", f"{bare_us:.2f}"],
        [
            "  of which websockets receive (bare - decode)",
            f"{bare_us - stages['JSON decode (msgspec)']:.2f}",
        ],
        ["riskmon daemon, measured (median run)", f"{riskmon_us:.2f}"],
        *([f"  {name}", f"{us:.2f}"] for name, us in stages.items()),
    ]
    steps = result["ticks_per_engine_step"]
    print(f"CPU per message; stages measured alone (full speed: {steps:,.0f} ticks per step)")
    print_table(["stage", "us per message"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and PASS/FAIL, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=200_000, help="messages per run")
    parser.add_argument("--rate", type=float, default=20_000.0, help="messages per event second")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="event seconds of warm state")
    parser.add_argument("--stage-messages", type=int, default=50_000, help="per stage pass")
    parser.add_argument(
        "--small-batch", type=int, default=25, help="engine batch of the stage costs (paced)"
    )
    parser.add_argument(
        "--riskmon-only", action="store_true", help="only riskmon runs, no results (profiling)"
    )
    args = parser.parse_args(argv)
    configure_logging("warning")
    warm = int(args.warmup_s * args.rate)
    seed = args.assets
    with (
        temp_dir() as directory,
        wire_server(args.assets, args.count, warm, args.rate, seed) as port,
    ):
        config = write_config(
            directory,
            args.assets,
            feed_url=f"ws://127.0.0.1:{port}",
            queue_ticks=args.count,
        )
        market = poisson_market(args.assets, warm + args.count, args.rate, seed)
        state = warm_state(config, market.part(0, warm))
        if args.riskmon_only:
            asyncio.run(riskmon_only(args, config, state))
            return 0
        result = asyncio.run(measure(args, f"ws://127.0.0.1:{port}/stream", config, state))
        messages = trade_messages(
            market.part(warm, warm + args.stage_messages), config.tracked_symbols
        )
        sizes = (args.small_batch, round(result["ticks_per_engine_step"]))
        result["stage_cpu_us_per_message"] = stage_costs(config, state, messages, sizes)
    print_table(
        ["path", "ticks/s med (min-max)", "ticks per CPU second"],
        [
            [
                "bare receive + JSON",
                spread(result["bare_ticks_per_s"]),
                spread(result["bare_ticks_per_cpu_s"]),
            ],
            [
                "riskmon daemon",
                spread(result["riskmon_ticks_per_s"]),
                spread(result["riskmon_ticks_per_cpu_s"]),
            ],
        ],
    )
    print_stages(result)
    ok = result["ratio_of_medians"] >= TARGET_SHARE and not result["dropped_ticks"]
    text = (
        f"target 3 (riskmon >= {TARGET_SHARE:g} x bare loop): "
        f"{result['ratio_of_medians']:.2f} x {verdict(ok)} "
        f"(dropped {result['dropped_ticks']}, skipped {result['skipped_ticks']}, "
        f"reconnects {result['reconnects']})"
    )
    print(text)
    targets = [{"target": 3, "pass": ok, "text": text}]
    write_result("live_throughput", vars(args), {**result, "targets": targets})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
