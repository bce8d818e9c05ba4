"""Issue #17: the estimator kernels alone, both estimators, ticks per second of CPU.

The compiled ``update_many`` of the pre-averaged (default, 5 s blocks) and the
Hayashi-Yoshida (``preaverage = "0s"``) estimators on ``--ticks`` asynchronous Poisson ticks of
10, 50 and 200 symbols (the engine benchmark's market, 20,000 ticks per second of event time),
two half-lives (20 minutes, a day), each run from a fresh estimator. Timed with the thread's
CPU clock (the machine is shared: wall time measures the neighbours too); the two estimators
alternate, and every figure is the median of ``--runs`` runs. No target: run it on two commits
to compare kernels (benchmarks/README.md, issue #17).

Usage: python -m benchmarks.kernel_throughput [--assets 10 50 200] [--ticks 400000] [--runs 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.common import poisson_market, print_table, spread, summary, write_result
from monitor.estimation.covariance import EventTimeCovariance
from monitor.estimation.estimators import CovarianceEstimator
from monitor.estimation.preaveraged import PreAveragedCovariance

HALFLIVES_S = (1200.0, 86400.0)
BLOCK_S = 5.0


def estimators(n: int) -> dict[str, Callable[[], CovarianceEstimator]]:
    """Fresh estimators of ``n`` symbols by name."""
    return {
        "pre-averaged": lambda: PreAveragedCovariance(n, HALFLIVES_S, BLOCK_S),
        "Hayashi-Yoshida": lambda: EventTimeCovariance(n, HALFLIVES_S),
    }


def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every run at ``n`` symbols."""
    market = poisson_market(n, args.ticks, 20_000.0, seed=n)
    logp = np.log(market.price)
    make = estimators(n)
    for build in make.values():  # compile or load the kernels, untimed
        build().update_many(market.idx[:100], market.ts[:100], logp[:100])
    rates: dict[str, list[float]] = {name: [] for name in make}
    for _ in range(args.runs):
        for name, build in make.items():
            estimator = build()
            start = time.thread_time()
            estimator.update_many(market.idx, market.ts, logp)
            rates[name].append(len(market) / (time.thread_time() - start))
    return {"assets": n, **{name: summary(values) for name, values in rates.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--ticks", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs: at least 5 (medians of >= 5 runs)")
    rows = [measure(n, args) for n in args.assets]
    print_table(
        ["assets", "pre-averaged, ticks/s of CPU", "Hayashi-Yoshida, ticks/s of CPU"],
        [[r["assets"], spread(r["pre-averaged"]), spread(r["Hayashi-Yoshida"])] for r in rows],
    )
    path = write_result("kernel_throughput", vars(args), {"rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
