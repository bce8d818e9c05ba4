"""Summarise a replay of the 2025H1 candles: calm January weeks against the 3 Feb 2025 crash.

Usage: python -m benchmarks.crash_report OUT_DIR   (OUT_DIR holds snapshots.parquet)
Prints a Markdown table for the README.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import polars as pl

UTC = dt.UTC
PERIODS: list[tuple[str, dt.datetime, dt.datetime]] = [
    ("6-12 Jan", dt.datetime(2025, 1, 6, tzinfo=UTC), dt.datetime(2025, 1, 13, tzinfo=UTC)),
    ("13-19 Jan", dt.datetime(2025, 1, 13, tzinfo=UTC), dt.datetime(2025, 1, 20, tzinfo=UTC)),
    ("20-26 Jan", dt.datetime(2025, 1, 20, tzinfo=UTC), dt.datetime(2025, 1, 27, tzinfo=UTC)),
    ("all January", dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC)),
    ("2 Feb", dt.datetime(2025, 2, 2, tzinfo=UTC), dt.datetime(2025, 2, 3, tzinfo=UTC)),
    ("3 Feb (crash)", dt.datetime(2025, 2, 3, tzinfo=UTC), dt.datetime(2025, 2, 4, tzinfo=UTC)),
    ("4 Feb", dt.datetime(2025, 2, 4, tzinfo=UTC), dt.datetime(2025, 2, 5, tzinfo=UTC)),
]


def crash_table(snapshots: pl.DataFrame) -> pl.DataFrame:
    """One row per period: means and extremes of the market and portfolio figures."""
    rows = []
    for label, start, end in PERIODS:
        part = snapshots.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        rows.append(
            part.select(
                pl.lit(label).alias("period"),
                pl.col("avg_correlation").mean().alias("avg_corr_mean"),
                pl.col("avg_correlation").max().alias("avg_corr_max"),
                pl.col("avg_correlation_slow").last().alias("avg_corr_slow_end"),
                pl.col("absorption_ratio").mean().alias("absorption_mean"),
                pl.col("absorption_ratio_shift").max().alias("ar_shift_max"),
                pl.col("effective_bets").mean().alias("effective_bets_mean"),
                pl.col("turbulence").max().alias("turbulence_max"),
                pl.col("diversification_ratio").mean().alias("div_ratio_mean"),
                pl.col("var_99").mean().alias("var_99_mean"),
                pl.col("var_99").max().alias("var_99_max"),
            )
        )
    return pl.concat(rows)


def markdown(table: pl.DataFrame) -> str:
    """The table as GitHub Markdown with 3 significant decimals."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    lines = [header, rule]
    for row in table.iter_rows():
        cells = [row[0]] + [f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}" for v in row[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the crash table of the replay in ``argv[0]``."""
    out = Path(argv[0] if argv else "out/replay-2025H1")
    print(markdown(crash_table(pl.read_parquet(out / "snapshots.parquet"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
