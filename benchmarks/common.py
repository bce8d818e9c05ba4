"""What every benchmark shares: synthetic markets, configs, statistics, the JSON record.

Results are written to ``benchmarks/results/<name>.json`` with the machine, the library versions
and, for every figure, the median, min and max of the runs. The machine is shared and noisy,
so every comparison is against a baseline measured in the same process run, and ratios are
ratios of medians.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.engine import Engine, EngineState

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
EPOCH_TS = 1.7e9  # event time of the first synthetic tick (Unix seconds)
VOL_FACTOR = 0.8e-4  # common factor, log-price sd per sqrt(second) (about 45 %/year)
VOL_IDIO = 0.6e-4  # idiosyncratic part: true pairwise correlation 0.64

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def symbol_names(n: int) -> list[str]:
    """``n`` engine symbols in Binance's style: ``S000USDT``, ``S001USDT``, ..."""
    return [f"S{i:03d}USDT" for i in range(n)]


def tick_rates(n: int, total_per_s: float) -> FloatArray:
    """Poisson rates of ``n`` symbols, spanning 50x (or 1x for one symbol), summing to the total."""
    rates = np.geomspace(50.0, 1.0, n)
    return np.asarray(rates / rates.sum() * total_per_s, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Market:
    """Merged asynchronous ticks: symbol index, event time and price, in event-time order."""

    idx: IntArray
    ts: FloatArray
    price: FloatArray

    def __len__(self) -> int:
        return len(self.idx)

    def part(self, start: int, stop: int | None = None) -> Market:
        """Ticks ``start`` to ``stop`` (views)."""
        return Market(self.idx[start:stop], self.ts[start:stop], self.price[start:stop])


def poisson_market(n: int, count: int, total_per_s: float, seed: int) -> Market:
    """``count`` merged Poisson ticks of ``n`` symbols with rates differing 50x.

    Log prices follow one common Brownian factor plus an idiosyncratic Brownian motion per
    symbol, each observed only when the symbol ticks (true correlation 0.64).
    """
    rng = np.random.default_rng(seed)
    rates = tick_rates(n, total_per_s)
    idx = rng.choice(n, size=count, p=rates / rates.sum()).astype(np.int64)
    ts = EPOCH_TS + np.cumsum(rng.exponential(1.0 / total_per_s, count))
    factor = np.cumsum(rng.normal(0.0, VOL_FACTOR, count) * np.sqrt(np.diff(ts, prepend=ts[0])))
    logp = np.log(100.0) + factor
    for k in range(n):
        where = np.flatnonzero(idx == k)
        dt = np.diff(ts[where], prepend=ts[where[0]] if len(where) else 0.0)
        logp[where] += np.cumsum(rng.normal(0.0, VOL_IDIO, len(where)) * np.sqrt(dt))
    return Market(idx, ts, np.exp(logp))


@dataclass(frozen=True, slots=True)
class Batch:
    """Columns of ticks as :class:`monitor.clock.TickBatchLike` (what the daemon builds)."""

    ts: FloatArray
    symbol: list[str]
    price: FloatArray


def batches(market: Market, names: Sequence[str], size: int) -> list[Batch]:
    """The market cut into batches of ``size`` ticks, symbols as lists of strings."""
    out = []
    for start in range(0, len(market), size):
        part = slice(start, start + size)
        out.append(
            Batch(
                market.ts[part].copy(),
                [names[i] for i in market.idx[part].tolist()],
                market.price[part].copy(),
            )
        )
    return out


def write_config(
    directory: Path,
    n: int,
    *,
    feed_url: str | None = None,
    snapshot_interval: str = "1s",
    queue_ticks: int = 100_000,
    positions: int = 10,
) -> Config:
    """A config over ``n`` synthetic symbols, written as TOML to ``directory`` and loaded.

    Rules: average correlation, the portfolio's 99 % VaR and one pair's correlation; one
    portfolio over the first ``positions`` symbols; a Binance feed at ``feed_url`` if given.
    """
    names = symbol_names(n)
    quoted = ", ".join(f'"{s}"' for s in names)
    held = ",\n".join(f'  {{ symbol = "{s}", quantity = 10 }}' for s in names[:positions])
    pair = f'["{names[0]}", "{names[min(1, n - 1)]}"]'
    # The synthetic ticks are stamped from EPOCH_TS (2023) on: a stale_after of ten years
    # lets the router's check of venue times against the wall clock pass them.
    feed = (
        f'\n[[feeds]]\nvenue = "binance"\nsymbols = [{quoted}]\nprice = "trade"\n'
        f'url = "{feed_url}"\nstale_after = "3650d"\n'
        if feed_url
        else ""
    )
    text = f"""
[universe]
symbols = [{quoted}]
watch_pairs = [{pair}]

[estimator]
halflife = "20m"
slow_halflife = "24h"
min_observations = 30

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "student-t"
dof = 4

[[portfolios]]
name = "book"
positions = [
{held}
]

[[rules]]
name = "correlation-spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7
for = "5m"
resolve_threshold = 0.6
severity = "critical"

[[rules]]
name = "book-var"
metric = "var_99"
op = ">"
threshold = 50
resolve_threshold = 40
labels = {{ portfolio = "book" }}

[[rules]]
name = "pair-decorrelation"
metric = "correlation"
op = "<"
threshold = 0.3
resolve_threshold = 0.4
labels = {{ a = "{names[0]}", b = "{names[min(1, n - 1)]}" }}

[live]
snapshot_interval = "{snapshot_interval}"
idle_snapshot = "5s"
queue_ticks = {queue_ticks}

[server]
listen = "127.0.0.1:0"

[state]
dir = "{directory / "state"}"
{feed}"""
    path = directory / f"bench-{n}.toml"
    path.write_text(text)
    return load_config(path, environ={})


def warm_state(config: Config, market: Market, batch_ticks: int = 1000) -> EngineState:
    """Engine state after ingesting ``market`` without snapshots, for engines to start from.

    Every measured engine starts warm, as a daemon restarted from a checkpoint does: the
    estimators have seen ``market`` and their correlation matrix is (at up to about 50 symbols)
    positive semi-definite, so no snapshot needs a repair that only a cold start pays.
    """
    engine = Engine(config)
    for b in batches(market, config.tracked_symbols, batch_ticks):
        engine.ingest(b.ts, b.symbol, b.price)
    return engine.export_state()


class DeadlineExceededError(Exception):
    """The wall-clock budget of a measurement ran out."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`DeadlineExceededError` in the main thread after ``seconds`` of wall time.

    SIGALRM interrupts long pure-Python work such as the nearest-correlation repair, so a
    measurement that would take minutes is cut at its budget (and reported as a bound).
    """

    def fire(signum: int, frame: object) -> None:
        raise DeadlineExceededError(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def temp_dir() -> Iterator[Path]:
    """A temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="riskmon-bench-") as name:
        yield Path(name)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the number of runs."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def environment() -> dict[str, Any]:
    """Machine, Python and library versions, thread limits and the load when measured."""
    versions: dict[str, str | None] = {}
    for package in ("numpy", "numba", "websockets", "msgspec", "prometheus-client", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": _git("rev-parse", "HEAD"),
        "product_code_modified": bool(_git("status", "--porcelain", "--", *PRODUCT_DIRS)),
        "threads": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        "load_average": os.getloadavg(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PRODUCT_DIRS = ("monitor", "feeds", "alerts")


def _git(*args: str) -> str | None:
    """Output of a git command in the repository, or None without git."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_result(name: str, parameters: dict[str, Any], results: Any) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the environment; returns the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, **environment(), "parameters": parameters, "results": results}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a fixed-width table (right-aligned columns)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def spread(values: dict[str, Any], scale: float = 1.0, fmt: str = ",.0f") -> str:
    """``median (min-max)`` of a :func:`summary`, scaled."""
    med, lo, hi = (values[k] * scale for k in ("median", "min", "max"))
    return f"{med:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"
