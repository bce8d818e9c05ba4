"""Estimator accuracy on asynchronous ticks seen through a one-tick bid-ask book (issue #13).

Markets from ``tests/noisy_market.py``: six symbols ticking 0.3 to 20 times a second, one tick
worth 0.2 to 3.5 bp, trades at the bid or the ask; the true average correlation is 0.30 for
``--regime-h`` hours, then 0.90. Each estimator reads the trade, mid and efficient (noise-free)
log prices with a 20-minute half-life, and is scored at the end of each regime against the true
average correlation and the true volatilities, over ``--seeds`` seeds of two sets of markets:

- ``fixed``: the test suite's six books (rates 20, 8, 3, 1, 0.5, 0.3 /s; ticks 0.2, 3.5, 1, 2,
  0.5, 3.5 bp; volatilities 60-100%);
- ``random``: per seed, rates log-uniform in 0.3-20 /s (20 and 0.3 always present), ticks
  uniform in 0.2-3.5 bp, volatilities uniform in 50-100%.

Estimators: ``pre-averaged`` (``[estimator] preaverage = "5s"``, the default) and
``hayashi-yoshida`` (``"0s"``, tick by tick).

Usage: python -m benchmarks.noise_bias [--seeds 20] [--regime-h 3]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks.common import print_table, write_result
from monitor.estimation.correlation import average_correlation, correlation_from_covariance
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.estimation.estimators import make_estimator
from tests.noisy_market import NoisyMarket, bid_ask_market

HALFLIFE_S = 1200.0
ESTIMATORS = {"pre-averaged 5s": 5.0, "hayashi-yoshida": 0.0}
KINDS = ("trade", "mid", "efficient")
REGIMES = (0.30, 0.90)
CORR_TOLERANCE, VOL_TOLERANCE = 0.05, 0.10


def market(family: str, seed: int, regime_s: float) -> NoisyMarket:
    """One simulated market of the family."""
    pieces = tuple((rho, regime_s) for rho in REGIMES)
    if family == "fixed":
        return bid_ask_market(seed=seed, duration_s=2 * regime_s, regimes=pieces)
    rng = np.random.default_rng(10_000 + seed)
    rates = np.exp(rng.uniform(np.log(0.3), np.log(20.0), 6))
    rates[:2] = (20.0, 0.3)
    return bid_ask_market(
        seed=seed,
        duration_s=2 * regime_s,
        regimes=pieces,
        rates_hz=tuple(rates),
        tick_bp=tuple(rng.uniform(0.2, 3.5, 6)),
        vols=tuple(rng.uniform(0.5, 1.0, 6)),
    )


def score(
    m: NoisyMarket, prices: np.ndarray, preaverage_s: float, until: float
) -> tuple[float, float]:
    """(average correlation, largest relative volatility error) at ``until``."""
    est = make_estimator(m.n, [HALFLIFE_S], preaverage_s)
    sel = m.ts <= until
    est.update_many(m.idx[sel], m.ts[sel], prices[sel])
    est.advance_to(until)
    rate = np.array(est.view(0).rate)
    vols = np.sqrt(np.diag(rate) * SECONDS_PER_YEAR)
    return average_correlation(correlation_from_covariance(rate)), float(
        np.max(np.abs(vols / m.vol_annual - 1.0))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--regime-h", type=float, default=3.0)
    args = parser.parse_args()
    regime_s = args.regime_h * 3600.0
    errors: dict[tuple[str, str, str, float], list[tuple[float, float]]] = {}
    for family in ("fixed", "random"):
        for seed in range(args.seeds):
            m = market(family, seed, regime_s)
            for kind in KINDS:
                for name, block in ESTIMATORS.items():
                    for k, truth in enumerate(REGIMES):
                        until = m.ts[0] + (k + 1) * regime_s - 30.0
                        avg, vol_err = score(m, getattr(m, kind), block, until)
                        errors.setdefault((family, name, kind, truth), []).append(
                            (avg - truth, vol_err)
                        )
    rows, results = [], []
    for (family, name, kind, truth), values in errors.items():
        v = np.array(values)
        row: dict[str, Any] = {
            "markets": family,
            "estimator": name,
            "prices": kind,
            "true_avg_corr": truth,
            "corr_bias": float(v[:, 0].mean()),
            "corr_rmse": float(np.sqrt((v[:, 0] ** 2).mean())),
            "corr_max_abs_error": float(np.abs(v[:, 0]).max()),
            "corr_within_tolerance": int((np.abs(v[:, 0]) < CORR_TOLERANCE).sum()),
            "vol_max_error_median": float(np.median(v[:, 1])),
            "vol_max_error_worst": float(v[:, 1].max()),
            "vol_within_tolerance": int((v[:, 1] < VOL_TOLERANCE).sum()),
            "markets_scored": len(v),
        }
        results.append(row)
        rows.append(
            [
                family,
                name,
                kind,
                f"{truth:.2f}",
                f"{row['corr_bias']:+.3f}",
                f"{row['corr_rmse']:.3f}",
                f"{row['corr_max_abs_error']:.3f}",
                f"{row['corr_within_tolerance']}/{len(v)}",
                f"{100 * row['vol_max_error_median']:.1f}%",
                f"{100 * row['vol_max_error_worst']:.1f}%",
                f"{row['vol_within_tolerance']}/{len(v)}",
            ]
        )
    print_table(
        [
            "markets",
            "estimator",
            "prices",
            "truth",
            "corr bias",
            "rmse",
            "max |err|",
            "|err|<0.05",
            "worst vol err (median)",
            "(worst)",
            "<10%",
        ],
        rows,
    )
    write_result("noise_bias", {"seeds": args.seeds, "regime_h": args.regime_h}, results)


if __name__ == "__main__":
    main()
