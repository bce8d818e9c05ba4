"""Compile the engine's numba kernels before the event loop starts.

numba compiles a kernel at its first call and holds the GIL while it does: a cold compile in
the engine's worker thread would stall the event loop (health checks, signals, scrapes) for
seconds. The daemon entry points call :func:`warm_kernels` first, so the first engine step
finds them compiled; with numba's on-disk cache warm (``cache=True``) this only loads them.
A replay calls :func:`load_kernels` while its reader thread merges the files.
"""

from __future__ import annotations

import time

import numpy as np
import structlog

from monitor.config.schema import Config
from monitor.engine import Engine

log = structlog.get_logger("riskmon.warmup")


def load_kernels(config: Config) -> float:
    """Run every kernel the engine of ``config`` uses once on two ticks; returns the seconds."""
    started = time.perf_counter()
    engine = Engine(config)
    if engine.symbols:
        symbol = engine.symbols[0]
        t0 = 1_700_000_000.0
        engine.ingest(np.array([t0, t0 + 1.0]), [symbol, symbol], np.array([100.0, 100.1]))
        engine.snapshot(t0 + 3600.0)  # past any pre-averaging block: the close kernel runs too
    return time.perf_counter() - started


def warm_kernels(config: Config) -> float:
    """:func:`load_kernels`, logged (``kernels_ready``); returns the seconds."""
    elapsed = load_kernels(config)
    log.info("kernels_ready", seconds=round(elapsed, 3))
    return elapsed
