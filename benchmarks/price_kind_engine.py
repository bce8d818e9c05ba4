"""The engine's CPU per tick, for what a higher quote rate costs beyond parsing.

``Engine.ingest`` of ``SYMBOLS`` synthetic symbols (``benchmarks.common.poisson_market``,
``RATE_HZ`` ticks a second in all, a few quotes a second per symbol as in the recordings), warm
(``WARM_TICKS`` ingested first), timed with the process CPU clock at one tick per call (a quiet
feed wakes the engine loop for each tick) and at 100 per call; and the estimator kernel alone
(``update_many`` of every tick at once). The median of ``REPEATS`` runs, for the default
pre-averaged estimator and the tick-by-tick Hayashi-Yoshida one. Snapshots are paid per
second of event time, not per tick, and are left out.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from benchmarks.common import Market, batches, poisson_market, temp_dir, write_config
from monitor.config.durations import Duration
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.estimation.estimators import make_estimator

SYMBOLS = 10
RATE_HZ = 50.0
WARM_TICKS = 20_000
TICKS = {1: 20_000, 100: 200_000}  # ticks per call -> ticks timed
REPEATS = 5


def engine_costs() -> dict[str, Any]:
    """Microseconds of CPU per tick: ingest per batch size and kernel, per estimator."""
    market = poisson_market(SYMBOLS, WARM_TICKS + max(TICKS.values()), RATE_HZ, seed=13)
    out: dict[str, Any] = {"symbols": SYMBOLS, "rate_hz": RATE_HZ}
    with temp_dir() as directory:
        base = write_config(directory, SYMBOLS)
    for label, block in (("", 5.0), ("hy_", 0.0)):
        config = _with_preaverage(base, block)
        out[f"{label}ingest_us"] = {
            str(size): _median_us(functools.partial(_ingest, config, market, size), TICKS[size])
            for size in TICKS
        }
        timed = len(market) - WARM_TICKS
        out[f"{label}kernel_us"] = _median_us(functools.partial(_kernel, config, market), timed)
    return out


def _with_preaverage(config: Config, block_s: float) -> Config:
    estimator = msgspec.structs.replace(config.estimator, preaverage=Duration(block_s))
    return msgspec.structs.replace(config, estimator=estimator)


def _median_us(run: Callable[[], float], ticks: int) -> float:
    return statistics.median(run() / ticks * 1e6 for _ in range(REPEATS))


def _ingest(config: Config, market: Market, size: int) -> float:
    """CPU seconds of ingesting ``TICKS[size]`` ticks ``size`` at a time into a warm engine."""
    engine = Engine(config)
    warm = market.part(0, WARM_TICKS)
    engine.ingest(warm.ts, [config.tracked_symbols[i] for i in warm.idx.tolist()], warm.price)
    feed = batches(market.part(WARM_TICKS, WARM_TICKS + TICKS[size]), config.tracked_symbols, size)
    start = time.process_time()
    for batch in feed:
        engine.ingest(batch.ts, batch.symbol, batch.price)
    return time.process_time() - start


def _kernel(config: Config, market: Market) -> float:
    """CPU seconds of the estimator kernel over the ticks after the warm-up."""
    est = config.estimator
    cov = make_estimator(SYMBOLS, [est.halflife, est.slow_halflife], float(est.preaverage))
    logp = np.log(market.price)
    cov.update_many(market.idx[:WARM_TICKS], market.ts[:WARM_TICKS], logp[:WARM_TICKS])
    start = time.process_time()
    cov.update_many(market.idx[WARM_TICKS:], market.ts[WARM_TICKS:], logp[WARM_TICKS:])
    return time.process_time() - start
