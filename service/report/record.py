"""What a replay records for its report, beside ``snapshots.parquet`` and ``alerts.jsonl``.

- ``components.parquet``: the Euler component VaR of every position, one row per portfolio,
  symbol and snapshot (``ts``, ``portfolio``, ``symbol``, ``component_var_D`` per confidence).
- ``correlations.parquet``: the full fast correlation matrix of the universe at the calmest
  snapshot (lowest ``avg_correlation``) and at the most correlated one (highest), one row per
  ordered pair (``ts``, ``snapshot`` = ``calmest`` | ``most_correlated``,
  ``avg_correlation``, ``a``, ``b``, ``correlation``). ``snapshots.parquet`` holds every pair
  only up to 30 symbols; this file holds the two matrices at any size.
- ``alert_peaks.jsonl``: per alert episode, the most extreme value its metric reached while
  firing (the highest for ``>``/``>=`` rules, the lowest for ``<``/``<=``) and when.

:meth:`RunRecorder.write` also writes ``run.json`` (:mod:`service.report.facts`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from alerts.jsonl import iso_utc
from monitor.model import AlertEvent, AlertState
from monitor.risk.snapshot import PortfolioRisk, RiskSnapshot
from monitor.rules import RuleEngine, RuleKey
from monitor.table import confidence_digits
from service.report.facts import RunCounts, RunFacts, write_run

FloatArray = npt.NDArray[np.float64]

COMPONENTS_FILE = "components.parquet"
CORRELATIONS_FILE = "correlations.parquet"
PEAKS_FILE = "alert_peaks.jsonl"


@dataclass(slots=True)
class _PortfolioBlock:
    """Component VaR rows of one portfolio: per snapshot, one tuple per confidence."""

    symbols: tuple[str, ...]
    ts: list[float] = field(default_factory=list)
    rows: list[tuple[tuple[float, ...], ...]] = field(default_factory=list)


class ComponentTable:
    """Accumulates the component VaR of each portfolio's positions, snapshot by snapshot.

    A snapshot costs a few tuple references (a few µs); the arrays are built once, at the end.
    """

    def __init__(self, confidences: Sequence[float]) -> None:
        self._confidences = tuple(confidences)
        self._blocks: dict[str, _PortfolioBlock] = {}

    def add(self, snap: RiskSnapshot) -> None:
        """Record every portfolio's components (NaN where the VaR is not ready)."""
        for risk in snap.portfolios:
            block = self._blocks.get(risk.name)
            if block is None:
                block = self._blocks[risk.name] = _PortfolioBlock(risk.symbols)
            missing = (math.nan,) * len(block.symbols)
            block.ts.append(snap.ts)
            block.rows.append(tuple(self._components(risk, c, missing) for c in self._confidences))

    @staticmethod
    def _components(
        risk: PortfolioRisk, confidence: float, missing: tuple[float, ...]
    ) -> tuple[float, ...]:
        tail = risk.tail(confidence)
        if tail is None or tail.component_var is None:
            return missing
        return tail.component_var

    def to_frame(self) -> pl.DataFrame:
        """Long format: one row per portfolio, snapshot and symbol; NaN stored as null."""
        digits = [confidence_digits(c) for c in self._confidences]
        frames = [self._block_frame(name, block, digits) for name, block in self._blocks.items()]
        if not frames:
            return self._block_frame("", _PortfolioBlock(()), digits)
        return pl.concat(frames)

    @staticmethod
    def _block_frame(name: str, block: _PortfolioBlock, digits: list[str]) -> pl.DataFrame:
        n_sym = len(block.symbols)
        values = np.array(block.rows, dtype=np.float64).reshape(len(block.ts), len(digits), n_sym)
        ts_us = np.round(np.asarray(block.ts, dtype=np.float64) * 1e6).astype(np.int64)
        columns: dict[str, Any] = {
            "ts": np.repeat(ts_us, n_sym),
            "portfolio": [name] * (len(block.ts) * n_sym),
            "symbol": list(block.symbols) * len(block.ts),
        }
        for k, d in enumerate(digits):
            columns[f"component_var_{d}"] = values[:, k, :].reshape(-1)
        frame = pl.DataFrame(
            columns, schema_overrides={"portfolio": pl.String, "symbol": pl.String}
        )
        return frame.with_columns(
            pl.col("ts").cast(pl.Datetime("us", "UTC")),
            *(pl.col(f"component_var_{d}").fill_nan(None) for d in digits),
        )


@dataclass(frozen=True, slots=True)
class _Matrix:
    ts: float
    avg_correlation: float
    symbols: tuple[str, ...]
    correlation: FloatArray


class CorrelationExtremes:
    """The universe correlation matrix at the lowest and the highest average correlation.

    Snapshots' arrays are read-only, so keeping a reference costs no copy. Ties keep the
    earlier snapshot.
    """

    def __init__(self) -> None:
        self.calmest: _Matrix | None = None
        self.most_correlated: _Matrix | None = None

    def add(self, snap: RiskSnapshot) -> None:
        """Keep ``snap``'s matrix when its average correlation is a new extreme."""
        avg = snap.market.avg_correlation
        if avg is None or not math.isfinite(avg):
            return
        if self.calmest is None or avg < self.calmest.avg_correlation:
            self.calmest = self._matrix(snap, avg)
        if self.most_correlated is None or avg > self.most_correlated.avg_correlation:
            self.most_correlated = self._matrix(snap, avg)

    @staticmethod
    def _matrix(snap: RiskSnapshot, avg: float) -> _Matrix:
        universe = np.asarray(snap.universe, dtype=np.int64)
        symbols = tuple(snap.symbols[i] for i in snap.universe)
        return _Matrix(snap.ts, avg, symbols, snap.correlation[np.ix_(universe, universe)])

    def to_frame(self) -> pl.DataFrame:
        """One row per ordered pair (diagonal included) of each recorded matrix."""
        parts = [("calmest", self.calmest), ("most_correlated", self.most_correlated)]
        columns: dict[str, list[Any]] = {
            k: [] for k in ("ts", "snapshot", "avg_correlation", "a", "b", "correlation")
        }
        for label, matrix in parts:
            if matrix is None:
                continue
            for i, a in enumerate(matrix.symbols):
                for j, b in enumerate(matrix.symbols):
                    value = float(matrix.correlation[i, j])
                    columns["ts"].append(round(matrix.ts * 1e6))
                    columns["snapshot"].append(label)
                    columns["avg_correlation"].append(matrix.avg_correlation)
                    columns["a"].append(a)
                    columns["b"].append(b)
                    columns["correlation"].append(value if math.isfinite(value) else None)
        schema = {
            "ts": pl.Int64,
            "snapshot": pl.String,
            "avg_correlation": pl.Float64,
            "a": pl.String,
            "b": pl.String,
            "correlation": pl.Float64,
        }
        frame = pl.DataFrame(columns, schema=schema)
        return frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


@dataclass(slots=True)
class _Episode:
    fired: float
    peak: float
    peak_ts: float


class PeakTracker:
    """The most extreme value of each firing rule instance, episode by episode.

    Reads each instance's ``last_value`` (set by :meth:`RuleEngine.evaluate` for the snapshot
    just evaluated), so every metric a rule can watch is covered, also those that are not
    columns of the replay's tables.

    Args:
        rules: the replay's rule engine (its instances are read, never changed).
        ops: rule name -> comparison operator, which says which extreme is the peak.
    """

    def __init__(self, rules: RuleEngine, ops: Mapping[str, str]) -> None:
        self._instances = {(i.rule, i.labels): i for i in rules.instances}
        self._sign = {name: 1.0 if op.startswith(">") else -1.0 for name, op in ops.items()}
        self._open: dict[RuleKey, _Episode] = {}
        self._rows: list[dict[str, Any]] = []

    def add(self, ts: float, events: Iterable[AlertEvent]) -> None:
        """Open and close episodes on ``events``, then move the open episodes' peaks."""
        for event in events:
            key = (event.rule, event.labels)
            if event.state is AlertState.FIRING:
                self._open[key] = _Episode(event.ts, event.value, event.ts)
            elif (episode := self._open.pop(key, None)) is not None:
                self._rows.append(self._row(key, episode))
        for key, episode in self._open.items():
            value = self._instances[key].last_value
            sign = self._sign.get(key[0], 1.0)
            if value is not None and sign * value > sign * episode.peak:
                episode.peak, episode.peak_ts = value, ts

    def rows(self) -> list[dict[str, Any]]:
        """Every episode, closed ones and those still firing, in order of firing."""
        still = [self._row(key, episode) for key, episode in self._open.items()]
        return sorted([*self._rows, *still], key=lambda row: (row["fired"], row["rule"]))

    @staticmethod
    def _row(key: RuleKey, episode: _Episode) -> dict[str, Any]:
        return {
            "rule": key[0],
            "labels": dict(key[1]),
            "fired": iso_utc(episode.fired),
            "peak": episode.peak,
            "peak_ts": iso_utc(episode.peak_ts),
        }


class RunRecorder:
    """Everything a replay records for its report; fed every snapshot with its events.

    Args:
        confidences: the configured VaR confidences.
        rules: the replay's rule engine.
        ops: rule name -> comparison operator.
    """

    def __init__(
        self, confidences: Sequence[float], rules: RuleEngine, ops: Mapping[str, str]
    ) -> None:
        self.components = ComponentTable(confidences)
        self.extremes = CorrelationExtremes()
        self.peaks = PeakTracker(rules, ops)
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.snapshots = 0

    def add(self, snap: RiskSnapshot, events: Sequence[AlertEvent]) -> None:
        """Record one snapshot and the alert events it caused."""
        if self.first_ts is None:
            self.first_ts = snap.ts
        self.last_ts = snap.ts
        self.snapshots += 1
        self.components.add(snap)
        self.extremes.add(snap)
        self.peaks.add(snap.ts, events)

    def counts(self, rows: int, ticks_applied: int, skipped: Mapping[str, int]) -> RunCounts:
        """The replay's counts for ``run.json``, with the snapshots seen here."""
        dropped = {reason: n for reason, n in skipped.items() if n}
        return RunCounts(self.first_ts, self.last_ts, self.snapshots, rows, ticks_applied, dropped)

    def write(self, directory: Path, facts: RunFacts) -> list[str]:
        """Write the recorded files and ``run.json`` into ``directory``; return their names."""
        self.components.to_frame().write_parquet(directory / COMPONENTS_FILE)
        self.extremes.to_frame().write_parquet(directory / CORRELATIONS_FILE)
        encoder = msgspec.json.Encoder()
        lines = b"".join(encoder.encode(row) + b"\n" for row in self.peaks.rows())
        (directory / PEAKS_FILE).write_bytes(lines)
        return [COMPONENTS_FILE, CORRELATIONS_FILE, PEAKS_FILE, write_run(directory, facts)]
