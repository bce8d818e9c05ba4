"""Target 5: resident memory after warm-up and after 10 million ticks through the engine.

The bench-1 path (``SnapshotClock`` -> ``Engine``, rules, a snapshot per second of event time)
for ``--assets`` symbols. Each run is a fresh process that starts from a warm engine state,
applies ``--warmup-ticks`` ticks, reads VmRSS, then applies ``--ticks`` more, reading VmRSS
every ``--sample-ticks``. The ticks cycle through a pool of ``--pool-ticks`` Poisson ticks,
shifted in time and continued in price on every cycle, so the input itself costs no memory
after warm-up.

Usage: python -m benchmarks.memory [--runs 5] [--ticks 10000000] [--assets 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO,
    Batch,
    Market,
    poisson_market,
    print_table,
    rss_bytes,
    spread,
    summary,
    temp_dir,
    verdict,
    warm_state,
    write_config,
    write_result,
)
from monitor.clock import SnapshotClock
from monitor.engine import Engine
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine

TARGET_GROWTH = 0.10
MIB = 1024.0 * 1024.0


def endless(pool: Market, names: Sequence[str], size: int) -> Iterator[Batch]:
    """Batches cycling through ``pool``: each cycle later by the pool's span, prices continued."""
    span = float(pool.ts[-1] - pool.ts[0]) + 1.0 / len(pool)
    logp = np.log(pool.price)
    drift = np.zeros(int(pool.idx.max()) + 1)
    for k in range(len(drift)):
        where = np.flatnonzero(pool.idx == k)
        if len(where):
            drift[k] = logp[where[-1]] - logp[where[0]]
    parts = [pool.part(a, a + size) for a in range(0, len(pool), size)]
    symbols = [[names[i] for i in p.idx.tolist()] for p in parts]
    cycle = 0
    while True:
        for part, syms in zip(parts, symbols, strict=True):
            yield Batch(part.ts + cycle * span, syms, part.price * np.exp(cycle * drift[part.idx]))
        cycle += 1


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process: RSS samples and throughput."""
    warm = int(args.warmup_s * args.rate)
    with temp_dir() as directory:
        config = write_config(directory, args.assets)
    market = poisson_market(args.assets, warm + args.pool_ticks, args.rate, seed=args.assets)
    state = warm_state(config, market.part(0, warm))
    engine = Engine(config)
    engine.import_state(state)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios])
    events = 0

    def sink(snap: RiskSnapshot, new: list[AlertEvent]) -> None:
        nonlocal events
        events += len(new)

    clock = SnapshotClock(engine, rules, config.live.snapshot_interval, sink)
    feed = endless(market.part(warm), config.tracked_symbols, args.batch)
    del market
    start_rss = rss_bytes()
    first = engine.ticks
    while engine.ticks - first < args.warmup_ticks:
        clock.feed(next(feed))
    warm_rss, warm_ticks = rss_bytes(), engine.ticks
    samples = [(0, warm_rss)]
    start = time.perf_counter()
    while engine.ticks - warm_ticks < args.ticks:
        clock.feed(next(feed))
        done = engine.ticks - warm_ticks
        if done // args.sample_ticks > (done - args.batch) // args.sample_ticks:
            samples.append((done, rss_bytes()))
    elapsed = time.perf_counter() - start
    end_rss = rss_bytes()
    return {
        "rss_before_warmup": start_rss,
        "rss_after_warmup": warm_rss,
        "rss_end": end_rss,
        "growth": end_rss / warm_rss - 1.0,
        "samples": samples,
        "ticks": engine.ticks - warm_ticks,
        "ticks_per_s": (engine.ticks - warm_ticks) / elapsed,
        "snapshots": clock.snapshots,
        "alert_events": events,
    }


def run_child(argv: Sequence[str]) -> dict[str, Any]:
    """One run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", *argv],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with --child, one run), print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=10_000_000, help="after warm-up")
    parser.add_argument("--warmup-ticks", type=int, default=1_000_000)
    parser.add_argument("--sample-ticks", type=int, default=1_000_000)
    parser.add_argument("--pool-ticks", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=20_000.0, help="ticks per event second")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="event seconds of state")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--child"]
    runs = [run_child(forwarded) for _ in range(args.runs)]
    growth = summary([r["growth"] for r in runs])
    rows = [
        [
            "RSS after warm-up, MiB",
            spread(summary([r["rss_after_warmup"] for r in runs]), 1 / MIB, ",.1f"),
        ],
        [
            f"RSS after {args.ticks:,} ticks, MiB",
            spread(summary([r["rss_end"] for r in runs]), 1 / MIB, ",.1f"),
        ],
        ["growth, %", spread(growth, 100.0, ".2f")],
        ["ticks/s over the run", spread(summary([r["ticks_per_s"] for r in runs]))],
    ]
    print_table(["memory, median (min-max) over runs", "value"], rows)
    ok = growth["median"] < TARGET_GROWTH and growth["max"] < TARGET_GROWTH
    text = (
        f"target 5 (RSS growth < {TARGET_GROWTH:.0%}): median {growth['median']:.2%}, "
        f"max {growth['max']:.2%} {verdict(ok)}"
    )
    print(text)
    targets = [{"target": 5, "pass": ok, "text": text}]
    params = {k: v for k, v in vars(args).items() if k != "child"}
    write_result("memory", params, {"growth": growth, "runs": runs, "targets": targets})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
