"""Correlation heatmaps at the calmest and at the most correlated snapshot of a range.

The calmest snapshot has the lowest fast average correlation in range, the most correlated
the highest. Their matrices come from the ``corr:<A>:<B>`` columns of ``snapshots.parquet``
when it holds every universe pair (universes up to 30 symbols), else from
``correlations.parquet``, which holds the full matrices at the whole run's two extremes (so a
range that excludes them has no heatmap for larger universes, and says so).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from service.report.axes import new_figure
from service.report.facts import RunFacts
from service.report.load import ReplayOutput

ANNOTATE_UP_TO = 12  # symbols; beyond that the numbers would not fit in the cells


@dataclass(frozen=True, slots=True)
class Matrix:
    """A correlation matrix at one snapshot.

    Attributes:
        title: "calmest" or "most correlated".
        ts: the snapshot's time.
        avg_correlation: the universe's fast average correlation then.
        symbols: row and column order.
        values: the matrix (NaN where a pair was not ready).
    """

    title: str
    ts: dt.datetime
    avg_correlation: float
    symbols: tuple[str, ...]
    values: npt.NDArray[np.float64]


def extreme_matrices(out: ReplayOutput) -> tuple[Matrix, Matrix] | str:
    """The calmest and the most correlated snapshot's matrices, or why there are none."""
    ready = out.market.filter(pl.col("avg_correlation").is_finite())
    if ready.is_empty():
        return "no average correlation in this range (the estimators were not warm yet)"
    symbols = universe(out.run, out.market.columns)
    found = []
    for title, descending in (("calmest", False), ("most correlated", True)):
        row = ready.sort("avg_correlation", descending=descending).row(0, named=True)
        matrix = _from_columns(title, row, symbols) or _from_recorded(title, row, out)
        if matrix is None:
            return (
                f"the {title} snapshot in range ({row['ts']:%Y-%m-%d %H:%M} UTC) has no full "
                "correlation matrix: snapshots.parquet holds every pair only up to 30 symbols "
                "and correlations.parquet the whole run's extremes; widen --from/--to"
            )
        found.append(matrix)
    return found[0], found[1]


def universe(run: RunFacts | None, columns: Sequence[str]) -> tuple[str, ...]:
    """The universe from ``run.json``, else the symbols of the ``corr:`` columns in order."""
    if run is not None and run.universe:
        return tuple(run.universe)
    pairs = [c.split(":")[1:] for c in columns if c.startswith("corr:") and c.count(":") == 2]
    return tuple(dict.fromkeys(s for pair in pairs for s in pair))


def _from_columns(title: str, row: Mapping[str, Any], symbols: Sequence[str]) -> Matrix | None:
    n = len(symbols)
    if n < 2:
        return None
    matrix = np.eye(n)
    for (i, a), (j, b) in itertools.combinations(enumerate(symbols), 2):
        value = row.get(f"corr:{a}:{b}", row.get(f"corr:{b}:{a}", _ABSENT))
        if value is _ABSENT:
            return None
        matrix[i, j] = matrix[j, i] = np.nan if value is None else value
    return Matrix(title, row["ts"], float(row["avg_correlation"]), tuple(symbols), matrix)


_ABSENT = object()


def _from_recorded(title: str, row: Mapping[str, Any], out: ReplayOutput) -> Matrix | None:
    if out.correlations is None:
        return None
    cells = out.correlations.filter(pl.col("ts") == row["ts"])
    if cells.is_empty():
        return None
    symbols = tuple(dict.fromkeys(cells["a"].to_list()))
    index = {s: k for k, s in enumerate(symbols)}
    matrix = np.full((len(symbols), len(symbols)), np.nan)
    for a, b, value in cells.select("a", "b", "correlation").iter_rows():
        if b in index:
            matrix[index[a], index[b]] = np.nan if value is None else value
    return Matrix(title, row["ts"], float(row["avg_correlation"]), symbols, matrix)


def heatmap_figure(calm: Matrix, hot: Matrix) -> Figure:
    """The two matrices side by side on one colour scale (-1 to 1), one colour bar."""
    fig = new_figure(6.2)
    axes = fig.subplots(1, 2)
    norm = Normalize(vmin=-1.0, vmax=1.0)
    image = None
    for ax, matrix in zip(axes, (calm, hot), strict=True):
        image = ax.imshow(matrix.values, cmap="RdBu_r", norm=norm, interpolation="nearest")
        labels = list(matrix.symbols)
        ax.set_xticks(range(len(labels)), labels=labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels=labels, fontsize=7)
        moment = matrix.ts.strftime("%Y-%m-%d %H:%M")
        ax.set_title(
            f"{matrix.title}: {moment} UTC\naverage correlation {matrix.avg_correlation:.3f}",
            fontsize=10,
        )
        if len(labels) <= ANNOTATE_UP_TO:
            _annotate(ax, matrix.values)
    assert image is not None
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="correlation (fast)")
    return fig


def _annotate(ax: Any, values: npt.NDArray[np.float64]) -> None:
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            colour = "white" if abs(value) > 0.6 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
