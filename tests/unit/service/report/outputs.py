"""Replay output directories written by hand, for the report's unit tests."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

T0 = dt.datetime(2025, 2, 3, tzinfo=dt.UTC)
SYMBOLS = ("AAA", "BBB", "CCC")


def snapshot_frame(
    avg: Sequence[float | None], symbols: Sequence[str] = SYMBOLS, step_s: float = 60.0
) -> pl.DataFrame:
    """One portfolio row per snapshot; every pair's correlation equals the average."""
    n = len(avg)
    ts = [T0 + dt.timedelta(seconds=step_s * i) for i in range(n)]
    var = [None if a is None else 100.0 + 50.0 * a for a in avg]
    columns: dict[str, Any] = {
        "ts": ts,
        "portfolio": ["p"] * n,
        "avg_correlation": list(avg),
        "avg_correlation_slow": list(avg),
        "absorption_ratio": list(avg),
        "absorption_ratio_slow": list(avg),
        "absorption_ratio_shift": [0.0] * n,
        "effective_bets": [2.0] * n,
        "turbulence": [1.0] * n,
        "diversification_benefit": [None if a is None else 1.0 - a for a in avg],
        "var_99": var,
        "cvar_99": [None if v is None else 1.2 * v for v in var],
        "stressed_var_99": [None if v is None else 1.5 * v for v in var],
    }
    for a, b in itertools.combinations(symbols, 2):
        columns[f"corr:{a}:{b}"] = list(avg)
    schema = {k: pl.Float64 for k in columns}
    schema.update({"ts": pl.Datetime("us", "UTC"), "portfolio": pl.String})
    return pl.DataFrame(columns, schema=schema)


def write_output(
    directory: Path,
    snapshots: pl.DataFrame,
    alerts: Sequence[dict[str, Any]] = (),
    *,
    run: dict[str, Any] | None = None,
) -> Path:
    """A replay output directory: snapshots.parquet, alerts.jsonl and optionally run.json."""
    directory.mkdir(parents=True, exist_ok=True)
    snapshots.write_parquet(directory / "snapshots.parquet")
    (directory / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alerts))
    if run is not None:
        (directory / "run.json").write_text(json.dumps(run))
    return directory


def correlations_frame(
    ts: dt.datetime, label: str, matrix: np.ndarray[Any, Any], symbols: Sequence[str]
) -> pl.DataFrame:
    """Rows of correlations.parquet for one matrix."""
    rows = [
        {
            "ts": ts,
            "snapshot": label,
            "avg_correlation": float(np.mean(matrix[np.triu_indices(len(symbols), 1)])),
            "a": a,
            "b": b,
            "correlation": float(matrix[i, j]),
        }
        for (i, a), (j, b) in itertools.product(enumerate(symbols), enumerate(symbols))
    ]
    return pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})


def alert(ts: dt.datetime, rule: str, state: str, value: float, **labels: str) -> dict[str, Any]:
    """One alerts.jsonl record."""
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "rule": rule,
        "state": state,
        "severity": "critical",
        "value": value,
        "threshold": 0.5,
        "labels": labels,
        "portfolio": labels.get("portfolio"),
    }
