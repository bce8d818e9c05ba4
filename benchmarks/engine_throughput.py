"""Targets 1 and 2: engine throughput without I/O, against a naive baseline in the same run.

Asynchronous Poisson ticks of 10, 50 and 200 symbols (rates differing 50x, ``--rate`` ticks per
second of event time in all) go in batches of ``--batch`` ticks through
``SnapshotClock.feed`` -> ``Engine.ingest``, with a snapshot and the rules (three rules, one
portfolio) every second of event time. Every run starts from the same warm engine state
(``--warmup-s`` of event time ingested first, as after a restart from a checkpoint).

Measured per run, interleaved so that the machine's noise hits all alike:

- riskmon: ticks per second through the clock (ingest + snapshots + rules);
- ingest only: the same ticks through ``Engine.ingest`` without snapshots (the difference is
  the snapshot cost);
- estimator kernel only: the same ticks through the configured estimator's ``update_many`` (the
  compiled per-tick kernel; the difference to ingest only is the per-batch Python work);
- baseline: a Python loop that on every tick rebuilds the previous-tick return vector and does
  a full N x N numpy EWMA outer-product update (on the first ``--baseline-ticks`` ticks).

A run is cut after ``--deadline-s`` of wall time; a cut run reports the ticks it got through
in that time, an upper bound of its rate (a snapshot was still running).

Usage: python -m benchmarks.engine_throughput [--assets 10 50 200] [--runs 5] [--ticks 500000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import (
    Batch,
    DeadlineExceededError,
    Market,
    batches,
    deadline,
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
from monitor.clock import SnapshotClock
from monitor.config.schema import Config
from monitor.engine import Engine, EngineState
from monitor.estimation.estimators import make_estimator
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine

TARGET_TICKS_PER_S = 1_000_000  # target 1, at 50 symbols
TARGET_ASSETS = 50
TARGET_RATIO = 10.0  # target 2


def run_riskmon(
    config: Config, state: EngineState, feed: Sequence[Batch], budget_s: float
) -> dict[str, Any]:
    """One run through SnapshotClock and Engine from ``state``; cut after ``budget_s``."""
    engine = Engine(config)
    engine.import_state(state)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios])
    seen = {"repaired": 0, "events": 0}

    def sink(snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        seen["repaired"] += snap.repaired
        seen["events"] += len(events)

    clock = SnapshotClock(engine, rules, config.live.snapshot_interval, sink)
    before = engine.ticks
    cut = False
    start = time.perf_counter()
    try:
        with deadline(budget_s):
            for batch in feed:
                clock.feed(batch)
    except DeadlineExceededError:
        cut = True
    elapsed = time.perf_counter() - start
    return {
        "ticks_per_s": (engine.ticks - before) / elapsed,
        "cut": cut,
        "snapshots": clock.snapshots,
        **seen,
    }


def run_ingest(config: Config, state: EngineState, feed: Sequence[Batch]) -> float:
    """Ticks per second through ``Engine.ingest`` alone (no snapshots, no rules)."""
    engine = Engine(config)
    engine.import_state(state)
    start = time.perf_counter()
    for batch in feed:
        engine.ingest(batch.ts, batch.symbol, batch.price)
    return sum(len(b.ts) for b in feed) / (time.perf_counter() - start)


def run_kernel(config: Config, state: EngineState, market: Market) -> float:
    """Ticks per second through the compiled estimator kernel alone (``update_many``)."""
    est = config.estimator
    cov = make_estimator(
        len(config.tracked_symbols), [est.halflife, est.slow_halflife], float(est.preaverage)
    )
    cov.load_state(state.covariance)
    logp = np.log(market.price)
    start = time.perf_counter()
    cov.update_many(market.idx, market.ts, logp)
    return len(market) / (time.perf_counter() - start)


def run_baseline(n: int, market: Market, halflife_s: float) -> float:
    """Ticks per second of the naive per-tick full-matrix EWMA update."""
    last = np.full(n, np.nan)
    prev_vec = np.zeros(n)
    cov = np.zeros((n, n))
    t_prev = float(market.ts[0])
    logp = np.log(market.price)
    start = time.perf_counter()
    for k, t, y in zip(market.idx.tolist(), market.ts.tolist(), logp.tolist(), strict=True):
        last[k] = y
        vec = np.nan_to_num(last)
        r = vec - prev_vec
        prev_vec = vec
        lam = 2.0 ** (-(t - t_prev) / halflife_s)
        cov = lam * cov + (1 - lam) * np.outer(r, r)
        t_prev = t
    return len(market) / (time.perf_counter() - start)


def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """All runs for ``n`` symbols."""
    warm = int(args.warmup_s * args.rate)
    market = poisson_market(n, warm + args.ticks, args.rate, seed=n)
    with temp_dir() as directory:
        config = write_config(directory, n)
    state = warm_state(config, market.part(0, warm), args.batch)
    timed = market.part(warm)
    feed = batches(timed, config.tracked_symbols, args.batch)
    run_riskmon(config, state, feed[:2], min(args.deadline_s, 2.0))  # warm caches, untimed
    runs, ingest, kernel, base = [], [], [], []
    for _ in range(args.runs):
        runs.append(run_riskmon(config, state, feed, args.deadline_s))
        ingest.append(run_ingest(config, state, feed))
        kernel.append(run_kernel(config, state, timed))
        base.append(run_baseline(n, timed.part(0, args.baseline_ticks), config.estimator.halflife))
    full = [r["ticks_per_s"] for r in runs]
    ingest_time = args.ticks / statistics.median(ingest)
    full_time = args.ticks / statistics.median(full)
    snapshots = statistics.median(r["snapshots"] for r in runs)
    cut = any(r["cut"] for r in runs)
    return {
        "assets": n,
        "riskmon_ticks_per_s": summary(full),
        "cut_runs": sum(r["cut"] for r in runs),
        "snapshots_per_run": snapshots,
        "repaired_snapshots_per_run": statistics.median(r["repaired"] for r in runs),
        "alert_events_per_run": statistics.median(r["events"] for r in runs),
        "ingest_only_ticks_per_s": summary(ingest),
        "kernel_only_ticks_per_s": summary(kernel),
        "snapshot_ms_estimate": (
            1e3 * (full_time - ingest_time) / snapshots if snapshots and not cut else None
        ),
        "baseline_ticks_per_s": summary(base),
        "ratio_of_medians": statistics.median(full) / statistics.median(base),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and PASS/FAIL, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=500_000, help="timed ticks per run")
    parser.add_argument("--rate", type=float, default=20_000.0, help="ticks per event second")
    parser.add_argument("--batch", type=int, default=1000, help="ticks per batch")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="event seconds, untimed")
    parser.add_argument("--baseline-ticks", type=int, default=20_000)
    parser.add_argument("--deadline-s", type=float, default=10.0, help="wall budget of a run")
    args = parser.parse_args(argv)
    rows = [measure(n, args) for n in args.assets]
    table = []
    for r in rows:
        cut = f" cut {r['cut_runs']}/{args.runs}" if r["cut_runs"] else ""
        bound = "<= " if r["cut_runs"] else ""
        snap_ms = r["snapshot_ms_estimate"]
        table.append(
            [
                r["assets"],
                bound + spread(r["riskmon_ticks_per_s"]) + cut,
                spread(r["ingest_only_ticks_per_s"]),
                spread(r["kernel_only_ticks_per_s"]),
                f"> {args.deadline_s * 1e3:,.0f}" if snap_ms is None else f"{snap_ms:,.1f}",
                f"{r['repaired_snapshots_per_run']:g}/{r['snapshots_per_run']:g}",
                spread(r["baseline_ticks_per_s"]),
                f"{bound}{r['ratio_of_medians']:.2g}",
            ]
        )
    print_table(
        [
            "assets",
            "riskmon ticks/s med (min-max)",
            "ingest only",
            "estimator kernel only",
            "ms/snapshot",
            "repaired",
            "baseline ticks/s",
            "ratio",
        ],
        table,
    )
    verdicts = _verdicts(rows)
    for line in verdicts:
        print(line["text"])
    write_result("engine_throughput", vars(args), {"rows": rows, "targets": verdicts})
    return 0


def _verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["assets"] == TARGET_ASSETS:
            rate = r["riskmon_ticks_per_s"]["median"]
            ok = rate >= TARGET_TICKS_PER_S and not r["cut_runs"]
            out.append(
                {
                    "target": 1,
                    "pass": ok,
                    "text": f"target 1 ({TARGET_ASSETS} assets >= {TARGET_TICKS_PER_S:,} ticks/s): "
                    f"{rate:,.0f} ticks/s {verdict(ok)}",
                }
            )
    for r in rows:
        ok = r["ratio_of_medians"] >= TARGET_RATIO
        out.append(
            {
                "target": 2,
                "assets": r["assets"],
                "pass": ok,
                "text": f"target 2 ({r['assets']} assets, riskmon/baseline >= {TARGET_RATIO:g}x): "
                f"{r['ratio_of_medians']:.1f}x {verdict(ok)}",
            }
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
