"""Engine throughput without I/O: asynchronous Poisson ticks, rates differing 50x.

Prints a table and writes benchmarks/results/engine_throughput.json with the median, min and
max of several runs for riskmon's estimator and for a naive baseline measured in the same run
(a Python loop that on every tick rebuilds the previous-tick return vector and does a full
N x N numpy EWMA outer-product update).

Usage: python -m benchmarks.engine_throughput [--runs 5] [--ticks 200000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.covariance import EventTimeCovariance

RESULTS = Path(__file__).parent / "results"


def poisson_ticks(
    n: int, count: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Merged ticks of n symbols whose rates span 50x, with random-walk log prices."""
    rng = np.random.default_rng(seed)
    rates = np.geomspace(50.0, 1.0, n)
    idx = rng.choice(n, size=count, p=rates / rates.sum()).astype(np.int64)
    ts = 1.7e9 + np.cumsum(rng.exponential(1.0 / rates.sum(), count))
    logp = np.log(100.0) + np.cumsum(rng.normal(0, 1e-4, count))
    return idx, ts, logp


def run_riskmon(
    n: int, idx: npt.NDArray[np.int64], ts: npt.NDArray[np.float64], logp: npt.NDArray[np.float64]
) -> float:
    """Ticks per second through the compiled estimator."""
    est = EventTimeCovariance(n, [1200.0, 86400.0])
    est.update_many(idx[:10], ts[:10], logp[:10])  # compile / load cache outside the timing
    start = time.perf_counter()
    est.update_many(idx, ts, logp)
    return len(idx) / (time.perf_counter() - start)


def run_baseline(
    n: int, idx: npt.NDArray[np.int64], ts: npt.NDArray[np.float64], logp: npt.NDArray[np.float64]
) -> float:
    """Ticks per second of the naive per-tick full-matrix EWMA update."""
    last = np.full(n, np.nan)
    prev_vec = np.zeros(n)
    cov = np.zeros((n, n))
    t_prev = ts[0]
    start = time.perf_counter()
    for k, t, y in zip(idx.tolist(), ts.tolist(), logp.tolist(), strict=True):
        last[k] = y
        vec = np.nan_to_num(last)
        r = vec - prev_vec
        prev_vec = vec
        lam = 2.0 ** (-(t - t_prev) / 1200.0)
        cov = lam * cov + (1 - lam) * np.outer(r, r)
        t_prev = t
    return len(idx) / (time.perf_counter() - start)


def main() -> int:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=200_000)
    args = parser.parse_args()
    rows = []
    for n in (10, 50, 200):
        idx, ts, logp = poisson_ticks(n, args.ticks, seed=n)
        fast = [run_riskmon(n, idx, ts, logp) for _ in range(args.runs)]
        base_ticks = min(args.ticks, 20_000)
        slow = [
            run_baseline(n, idx[:base_ticks], ts[:base_ticks], logp[:base_ticks])
            for _ in range(args.runs)
        ]
        rows.append(
            {
                "assets": n,
                "riskmon_ticks_per_s": _stats(fast),
                "baseline_ticks_per_s": _stats(slow),
                "ratio_of_medians": statistics.median(fast) / statistics.median(slow),
            }
        )
    print(f"{'assets':>6} {'riskmon ticks/s':>18} {'baseline ticks/s':>18} {'ratio':>8}")
    for r in rows:
        print(
            f"{r['assets']:>6} {r['riskmon_ticks_per_s']['median']:>18,.0f} "
            f"{r['baseline_ticks_per_s']['median']:>18,.0f} {r['ratio_of_medians']:>8.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": metadata.version("numba"),
        "runs": args.runs,
        "ticks": args.ticks,
        "results": rows,
    }
    (RESULTS / "engine_throughput.json").write_text(json.dumps(payload, indent=2))
    return 0


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


if __name__ == "__main__":
    raise SystemExit(main())
