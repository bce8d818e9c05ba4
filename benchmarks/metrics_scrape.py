"""Target 6: time and size of a ``/metrics`` scrape with 200 symbols.

The service's registry is built as ``service.service`` builds it: ``make_registry`` over a
``RiskCollector`` reading a daemon (200 symbols in the universe, one portfolio holding all of
them, a Binance feed of the 200 instruments, the alert dispatcher with its SQLite outbox).
The daemon's engine is fed synchronous ticks (every symbol once per second for ``--seconds``),
so that its snapshot needs no correlation repair and is quick to build; one snapshot is then
taken and the rules evaluated through the daemon's clock, which sets ``daemon.latest``.

Timed: ``prometheus_client.generate_latest(registry)``, what the ``/metrics`` handler calls, on
the event loop. Baseline in the same run: ``generate_latest`` of a registry that replays the
same metric families, already built (the text exposition alone); the difference is the
collector's own cost.

Usage: python -m benchmarks.metrics_scrape [--symbols 200] [--runs 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from benchmarks.common import (
    EPOCH_TS,
    VOL_FACTOR,
    VOL_IDIO,
    print_table,
    spread,
    summary,
    temp_dir,
    verdict,
    write_config,
    write_result,
)
from monitor.config.schema import Config
from service.alerting import build_dispatcher
from service.daemon import Daemon
from service.logs import configure_logging
from service.metrics import RiskCollector, ServiceStats, make_registry

TARGET_MS = 20.0


class Replay(Collector):
    """Yields metric families collected once before."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        """The stored families."""
        return iter(self._families)


def synchronous_daemon(config: Config, seconds: int, seed: int = 7) -> Daemon:
    """A daemon whose engine saw every symbol tick once per second, with a latest snapshot."""
    daemon = Daemon(config)
    n = len(daemon.engine.symbols)
    rng = np.random.default_rng(seed)
    factor = np.cumsum(rng.normal(0.0, VOL_FACTOR, seconds))
    idio = np.cumsum(rng.normal(0.0, VOL_IDIO, (seconds, n)), axis=0)
    logp = math.log(100.0) + factor[:, None] + idio
    ts = np.repeat(EPOCH_TS + np.arange(seconds, dtype=np.float64), n)
    symbols = list(daemon.engine.symbols) * seconds
    daemon.engine.ingest(ts, symbols, np.exp(logp).ravel())
    daemon.clock.advance_to(float(ts[-1]) + 1.0)  # one snapshot, rules evaluated
    return daemon


def timed(registry: CollectorRegistry, runs: int) -> tuple[list[float], bytes]:
    """Wall times of ``runs`` scrapes (after one untimed) and the last body."""
    body = generate_latest(registry)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        body = generate_latest(registry)
        times.append(time.perf_counter() - start)
    return times, body


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and PASS/FAIL, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=600, help="synchronous ticks per symbol")
    args = parser.parse_args(argv)
    configure_logging("warning")
    with temp_dir() as directory:
        config = write_config(
            directory, args.symbols, feed_url="ws://127.0.0.1:9", positions=args.symbols
        )
        daemon = synchronous_daemon(config, args.seconds)
        dispatcher = build_dispatcher(config)
        stats = ServiceStats(dispatcher=dispatcher)
        try:
            collector = RiskCollector(lambda: daemon, stats, time.monotonic, time.time)
            registry, _ = make_registry(collector)
            floor = CollectorRegistry(auto_describe=False)
            floor.register(Replay(list(registry.collect())))
            riskmon, floor_times = [], []
            for _ in range(args.runs // 10 or 1):  # interleaved blocks of ten
                t, body = timed(registry, 10)
                riskmon += t
                floor_times += timed(floor, 10)[0]
        finally:
            dispatcher.close()
    result = _result(daemon, riskmon, floor_times, body)
    print_table(
        ["/metrics scrape", "ms, median (min-max)", "bytes", "series"],
        [
            [
                "riskmon generate_latest",
                spread(result["riskmon_ms"], fmt=",.2f"),
                result["bytes"],
                result["series"],
            ],
            ["same families, prebuilt", spread(result["exposition_only_ms"], fmt=",.2f"), "", ""],
        ],
    )
    ms = result["riskmon_ms"]["median"]
    ok = ms < TARGET_MS
    text = (
        f"target 6 (/metrics with {args.symbols} symbols < {TARGET_MS:g} ms): "
        f"{ms:.2f} ms {verdict(ok)}"
    )
    print(text)
    targets = [{"target": 6, "pass": ok, "text": text}]
    write_result("metrics_scrape", vars(args), {**result, "targets": targets})
    return 0


def _result(
    daemon: Daemon, riskmon: list[float], floor: list[float], body: bytes
) -> dict[str, Any]:
    lines = body.decode().splitlines()
    snap = daemon.latest
    return {
        "riskmon_ms": summary([t * 1e3 for t in riskmon]),
        "exposition_only_ms": summary([t * 1e3 for t in floor]),
        "ratio_of_medians": statistics.median(riskmon) / statistics.median(floor),
        "bytes": len(body),
        "series": sum(1 for line in lines if line and not line.startswith("#")),
        "snapshot_repaired": None if snap is None else snap.repaired,
        "avg_correlation": None if snap is None else snap.market.avg_correlation,
    }


if __name__ == "__main__":
    raise SystemExit(main())
