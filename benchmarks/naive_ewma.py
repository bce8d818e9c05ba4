"""The naive baseline of the replay benchmark, as a whole process: read a tick file, then a
per-tick numpy O(N^2) EWMA covariance loop.

Per tick: the previous-tick log return of the symbol that ticked (the other entries of the
return vector are zero), the event-time decay ``2 ** (-dt / halflife)``, and a full N x N
update ``cov = lam * cov + (1 - lam) * outer(r, r)``. Reading is included (polars, as riskmon
reads), so the benchmark compares two whole processes doing the same job from the same file.

Usage: python -m benchmarks.naive_ewma FILE [--halflife-s 1200]; prints the ticks and the
seconds of its own loop (the caller times the whole process).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl


def naive_ewma(
    idx: npt.NDArray[np.int64],
    ts: npt.NDArray[np.float64],
    logp: npt.NDArray[np.float64],
    n: int,
    halflife_s: float,
) -> float:
    """Run the loop over the ticks; returns its seconds (the covariance is discarded)."""
    last = np.full(n, np.nan)
    r = np.zeros(n)
    cov = np.zeros((n, n))
    t_prev = float(ts[0]) if len(ts) else 0.0
    start = time.perf_counter()
    for k, t, y in zip(idx.tolist(), ts.tolist(), logp.tolist(), strict=True):
        previous = last[k]
        last[k] = y
        r[k] = 0.0 if previous != previous else y - previous
        lam = 2.0 ** (-(t - t_prev) / halflife_s)
        cov = lam * cov + (1.0 - lam) * np.outer(r, r)
        r[k] = 0.0
        t_prev = t
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Read the file (ts, symbol, price), run the loop, print ticks and loop seconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--halflife-s", type=float, default=1200.0)
    args = parser.parse_args(argv)
    frame = pl.read_parquet(args.file, columns=["ts", "symbol", "price"]).sort(
        "ts", maintain_order=True
    )
    codes = (frame["symbol"].rank("dense") - 1).to_numpy().astype(np.int64)
    n = int(codes.max()) + 1 if len(codes) else 0
    seconds = naive_ewma(
        codes, frame["ts"].to_numpy(), np.log(frame["price"].to_numpy()), n, args.halflife_s
    )
    print(f"{len(frame)} {seconds:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
