"""Target 4: tick-to-alert latency at a fixed message rate, through the real live path.

A :mod:`benchmarks.wire_server` process paces Binance trade frames of ``--assets`` symbols at
``--rate`` messages per second (Poisson arrivals, written in bursts of about 1 ms) for
``--seconds`` per run. This process runs ``service.daemon.Daemon`` on them, from a warm engine
state, with a snapshot and the rules every second of event time.

Per message, with the benchmark's own instruments only:

- receive -> evaluated: from the moment the websocket client's ``recv()`` returned the frame to
  the end of the engine step that applied its tick (ingest, plus the snapshot and the rules when
  the batch crossed a snapshot boundary), i.e. the daemon's ``on_step`` time. The receive time
  is taken by a wrapper around the socket passed through the daemon's ``connector`` seam.
- send -> evaluated: from the server writing the frame (the two processes share
  CLOCK_MONOTONIC) to the same end; it adds the time the frame waited in the kernel and in
  the websockets client while the loop was busy, which receive -> evaluated cannot see.
- per engine step: the daemon's own ``on_step`` value (now - receive time of the oldest tick
  of the batch), one per step.

The first ``--warmup-s`` of each run is left out. Percentiles are per run; the table shows the
median (min-max) over runs.

Usage: python -m benchmarks.latency [--runs 5] [--seconds 10] [--rate 20000] [--assets 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
from benchmarks.wire_server import wait_send_times, wire_server
from feeds.session import Socket, default_connector
from monitor.config.schema import Config
from monitor.engine import EngineState
from service.daemon import Daemon
from service.logs import configure_logging

TARGET_P99_MS = 2.0
PERCENTILES = (50.0, 99.0, 99.9)
RUN_TIMEOUT_S = 300.0


class RecordingSocket:
    """A websocket that notes the monotonic time at which each frame was returned by recv()."""

    def __init__(self, sock: Socket, received: list[float]) -> None:
        self._sock = sock
        self._received = received

    async def recv(self) -> str | bytes:
        """The next frame; its receive time is appended."""
        raw = await self._sock.recv()
        self._received.append(time.monotonic())
        return raw

    async def send(self, message: str) -> None:
        """Send through the wrapped socket."""
        await self._sock.send(message)

    async def close(self) -> None:
        """Close the wrapped socket."""
        await self._sock.close()


async def one_run(config: Config, state: EngineState, count: int) -> dict[str, Any]:
    """Run a daemon until ``count`` frames have been applied; per-message times."""
    inner = default_connector()
    received: list[float] = []

    async def connector(url: str) -> Socket:
        return RecordingSocket(await inner(url), received)

    done = asyncio.Event()
    daemon = Daemon(config, connector=connector)
    daemon.engine.import_state(state)
    evaluated = np.full(count, np.nan)
    in_snapshot_step = np.zeros(count, dtype=np.bool_)
    steps: list[float] = []
    applied = snapshots = 0

    def on_step(latency_s: float) -> None:
        nonlocal applied, snapshots
        now = time.monotonic()
        upto = min(len(received), count)
        evaluated[applied:upto] = now  # every frame received so far was in this step
        in_snapshot_step[applied:upto] = daemon.snapshots != snapshots
        applied, snapshots = upto, daemon.snapshots
        steps.append(latency_s)
        if applied >= count:
            done.set()

    daemon.on_step = on_step
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await daemon.run(done)
    return {
        "received": np.asarray(received[:count]),
        "evaluated": evaluated,
        "in_snapshot_step": in_snapshot_step,
        "steps": np.asarray(steps),
        "dropped": daemon.buffer.dropped,
        "snapshots": daemon.snapshots,
    }


def _percentiles_ms(values: np.ndarray) -> dict[str, float]:
    q = np.percentile(values, PERCENTILES) * 1e3
    out = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}
    out["max"] = float(values.max() * 1e3)
    return out


def analyse(run: dict[str, Any], sent: np.ndarray, skip: int) -> dict[str, Any]:
    """Percentiles of one run, leaving out the first ``skip`` messages."""
    rec, ev = run["received"][skip:], run["evaluated"][skip:]
    snapped = run["in_snapshot_step"][skip:]
    sent = sent[skip : skip + len(rec)]
    span = rec[-1] - rec[0]
    latency = ev - rec
    slow = latency > TARGET_P99_MS / 1e3
    return {
        "receive_to_evaluated_ms": _percentiles_ms(latency),
        "receive_to_evaluated_outside_snapshot_steps_ms": _percentiles_ms(latency[~snapped]),
        "share_in_snapshot_steps": float(snapped.mean()),
        "share_over_target": float(slow.mean()),
        "share_of_slow_in_snapshot_steps": float(snapped[slow].mean()) if slow.any() else 0.0,
        "send_to_evaluated_ms": _percentiles_ms(ev - sent),
        "step_ms": _percentiles_ms(run["steps"]),
        "steps": len(run["steps"]),
        "mean_ticks_per_step": len(run["received"]) / max(len(run["steps"]), 1),
        "received_per_s": (len(rec) - 1) / span if span > 0 else float("nan"),
        "dropped": run["dropped"],
        "snapshots": run["snapshots"],
    }


async def measure(
    args: argparse.Namespace, config: Config, state: EngineState, sends: Path
) -> list[dict[str, Any]]:
    """``--runs`` runs, one connection each; the server's send log is read after each."""
    count = int(args.rate * args.seconds)
    skip = int(args.rate * args.warmup_s)
    out = []
    for number in range(args.runs):
        run = await one_run(config, state, count)
        sent = await asyncio.to_thread(wait_send_times, sends, number)
        out.append(analyse(run, sent, skip))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and PASS/FAIL, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20_000.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run, warm-up included")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="left out of each run")
    parser.add_argument("--state-s", type=float, default=60.0, help="event seconds of warm state")
    args = parser.parse_args(argv)
    configure_logging("warning")
    warm = int(args.state_s * args.rate)
    count = int(args.rate * args.seconds)
    seed = args.assets
    with temp_dir() as directory:
        sends = directory / "sends"
        sends.mkdir()
        with wire_server(
            args.assets, count, warm, args.rate, seed, pace=True, send_times=sends
        ) as port:
            config = write_config(
                directory, args.assets, feed_url=f"ws://127.0.0.1:{port}", queue_ticks=count
            )
            market = poisson_market(args.assets, warm + count, args.rate, seed)
            state = warm_state(config, market.part(0, warm))
            runs = asyncio.run(measure(args, config, state, sends))
    result = _summarise(runs)
    rows = []
    for label, key in (
        ("receive -> evaluated", "receive_to_evaluated_ms"),
        ("  outside snapshot steps", "receive_to_evaluated_outside_snapshot_steps_ms"),
        ("send -> evaluated", "send_to_evaluated_ms"),
        ("per engine step (on_step)", "step_ms"),
    ):
        rows.append(
            [label, *(spread(result[key][p], fmt=",.3f") for p in ("p50", "p99", "p99.9", "max"))]
        )
    print_table(["latency, ms: median over runs (min-max)", "p50", "p99", "p99.9", "max"], rows)
    print(
        f"received {spread(result['received_per_s'])} msg/s, "
        f"{spread(result['mean_ticks_per_step'], fmt=',.1f')} ticks per engine step, "
        f"dropped {sum(r['dropped'] for r in runs)}"
    )
    print(
        f"messages over {TARGET_P99_MS:g} ms: "
        f"{spread(result['share_over_target'], 100.0, '.2f')} %, of which in steps that took "
        f"a snapshot: {spread(result['share_of_slow_in_snapshot_steps'], 100.0, '.1f')} % "
        f"(all messages in such steps: {spread(result['share_in_snapshot_steps'], 100.0, '.2f')} %)"
    )
    p99 = result["receive_to_evaluated_ms"]["p99"]["median"]
    ok = p99 <= TARGET_P99_MS
    text = (
        f"target 4 (p99 receive -> evaluated <= {TARGET_P99_MS:g} ms): {p99:.3f} ms {verdict(ok)}"
    )
    print(text)
    targets = [{"target": 4, "pass": ok, "text": text}]
    write_result("latency", vars(args), {"summary": result, "runs": runs, "targets": targets})
    return 0


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (
        "receive_to_evaluated_ms",
        "receive_to_evaluated_outside_snapshot_steps_ms",
        "send_to_evaluated_ms",
        "step_ms",
    ):
        out[key] = {p: summary([r[key][p] for r in runs]) for p in runs[0][key]}
    for key in (
        "received_per_s",
        "mean_ticks_per_step",
        "share_in_snapshot_steps",
        "share_over_target",
        "share_of_slow_in_snapshot_steps",
    ):
        out[key] = summary([r[key] for r in runs])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
