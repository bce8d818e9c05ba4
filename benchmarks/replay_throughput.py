"""Issue #17: a whole ``riskmon replay`` process against the naive loop, on the same file.

For each size of ``--ticks`` (5M, the target, and 1M), ``--assets`` asynchronous Poisson ticks
(the engine benchmark's market: rates 50x apart, ``--rate`` ticks per second of event time,
one common factor) are written as a Parquet tick file (ts, symbol, price) in a temporary
directory, with the engine benchmark's configuration (three rules, one portfolio; the replay's
default snapshot interval of one minute). Then, per run, interleaved:

- riskmon: ``python -m service.cli replay FILE --config ... --out ... --no-progress`` in a
  child process, wall clock from spawn to exit: start-up (imports, numba's cache), reading,
  sorting, the engine and snapshots, writing the outputs. The replay's own elapsed-time figure
  (its summary) is recorded beside it.
- naive: ``python -m benchmarks.naive_ewma FILE``, a child process reading the same file with
  polars and running the per-tick numpy O(N^2) EWMA loop.

Reading and start-up are included for both. Both children get the caller's environment as a
user would have it: the BLAS thread limits ``benchmarks/__init__`` sets for in-process
benchmarks are left out. An untimed riskmon run first fills numba's cache and the page cache.
Ratios are ratios of medians; JSON to benchmarks/results/replay_throughput.json.

Usage: python -m benchmarks.replay_throughput [--assets 50] [--ticks 5000000 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks import DEFAULTED
from benchmarks.common import (
    REPO,
    poisson_market,
    print_table,
    spread,
    summary,
    symbol_names,
    temp_dir,
    verdict,
    write_config,
    write_result,
)

GOAL_RATIO = 10.0
GOAL_TICKS = 5_000_000
HALFLIFE_S = 1200.0  # the benchmark config's fast half-life, for the naive loop


def write_market(path: Path, assets: int, ticks: int, rate: float, seed: int) -> None:
    """The synthetic market as a Parquet tick file (ts, symbol, price)."""
    market = poisson_market(assets, ticks, rate, seed)
    symbols = np.asarray(symbol_names(assets))[market.idx]
    frame = pl.DataFrame({"ts": market.ts, "symbol": symbols, "price": market.price})
    frame.write_parquet(path)


def child_env() -> dict[str, str]:
    """This process's environment without the thread limits set for in-process benchmarks."""
    return {k: v for k, v in os.environ.items() if k not in DEFAULTED}


def run_riskmon(data: Path, config: Path, out: Path) -> tuple[float, float]:
    """Wall seconds of a whole ``riskmon replay`` process, and the replay's own elapsed."""
    command = [sys.executable, "-m", "service.cli", "replay", str(data)]
    command += ["--config", str(config), "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"riskmon replay failed ({done.returncode}): {done.stderr[-2000:]}")
    elapsed = next(
        float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("elapsed")
    )
    return wall, elapsed


def run_naive(data: Path) -> tuple[float, int]:
    """Wall seconds of a whole naive process, and the ticks it looped over."""
    command = [sys.executable, "-m", "benchmarks.naive_ewma", str(data)]
    command += ["--halflife-s", str(HALFLIFE_S)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"naive loop failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, int(done.stdout.split()[0])


def measure(ticks: int, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """Every run at one size; rates in ticks per second."""
    data = directory / f"ticks-{ticks}.parquet"
    write_market(data, args.assets, ticks, args.rate, seed=ticks % 1000 + args.assets)
    write_config(directory, args.assets)
    config = directory / f"bench-{args.assets}.toml"
    out = directory / "out"
    run_riskmon(data, config, out)  # untimed: numba's cache, the page cache
    wall, own, naive = [], [], []
    for run in range(args.runs):
        seconds, elapsed = run_riskmon(data, config, out)
        wall.append(ticks / seconds)
        own.append(ticks / elapsed)
        naive_s, looped = run_naive(data)
        assert looped == ticks, (looped, ticks)
        naive.append(ticks / naive_s)
        print(
            f"{ticks:,} ticks, run {run + 1}: riskmon {wall[-1]:,.0f}/s whole "
            f"({seconds:.2f} s; replay's own {own[-1]:,.0f}/s), naive {naive[-1]:,.0f}/s "
            f"({naive_s:.1f} s)",
            flush=True,
        )
    ratio = statistics.median(wall) / statistics.median(naive)
    return {
        "ticks": ticks,
        "riskmon_ticks_per_s": summary(wall),
        "riskmon_seconds": summary([ticks / w for w in wall]),
        "replay_own_ticks_per_s": summary(own),
        "naive_ticks_per_s": summary(naive),
        "ratio_of_medians": ratio,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--ticks", type=int, nargs="+", default=[GOAL_TICKS, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20_000.0, help="ticks per event second")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs: at least 5 (medians of >= 5 runs)")
    with temp_dir() as directory:
        rows = [measure(ticks, args, directory) for ticks in args.ticks]
    targets = [
        {
            "target": "#17 replay",
            "ticks": r["ticks"],
            "goal": f">= {GOAL_RATIO:g}x the naive loop",
            "pass": r["ratio_of_medians"] >= GOAL_RATIO,
        }
        for r in rows
        if r["ticks"] == GOAL_TICKS and args.assets == 50
    ]
    print_table(
        ["ticks", "riskmon whole process, ticks/s", "replay's own figure", "naive loop", "ratio"],
        [
            [
                r["ticks"],
                spread(r["riskmon_ticks_per_s"]),
                spread(r["replay_own_ticks_per_s"]),
                spread(r["naive_ticks_per_s"]),
                f"{r['ratio_of_medians']:.2f}x",
            ]
            for r in rows
        ],
    )
    for t in targets:
        print(f"{t['ticks']:,} ticks: {t['goal']}: {verdict(t['pass'])}")
    path = write_result("replay_throughput", vars(args), {"rows": rows, "targets": targets})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
