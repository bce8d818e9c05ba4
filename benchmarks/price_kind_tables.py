"""The rows of the price-kind benchmark and its tables (fixed-width or markdown)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.common import print_table
from benchmarks.price_kind_bias import Bias
from benchmarks.recorded_streams import Book, StreamStats


@dataclass(frozen=True)
class Row:
    """One (venue, instrument, kind): recorded figures, CPU shares and simulated bias.

    ``cpu_pct`` counts the engine at one tick per call (upper bound), ``cpu_pct_batched`` at
    100 per call; ``bias`` is None when the stream was not simulated (``skipped`` says why).
    """

    stream: StreamStats
    book: Book
    cpu_pct: float
    cpu_pct_batched: float
    bias: dict[str, Bias] | None
    skipped: str = ""


@dataclass(frozen=True)
class Recommendation:
    """The price kind a venue's shipped defaults should use, and why."""

    venue: str
    kind: str
    reason: str


COST_HEADERS = [
    "venue",
    "instrument",
    "kind",
    "frames/s",
    "quotes/s",
    "parse us/frame",
    "CPU % of a core",
    "(batched)",
    "tick bp",
    "noise bp",
    "zero returns",
]
BIAS_HEADERS = [
    "venue",
    "instrument",
    "kind",
    "quotes/s",
    "tick bp",
    "noise bp: recorded",
    "simulated",
    "vol bias % (5s)",
    "corr bias (5s)",
    "corr RMSE (5s)",
    "vol bias % (HY)",
    "corr bias (HY)",
]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def _tick(book: Book) -> str:
    return _num(book.tick_bp, ".3g") + ("*" if book.source == "decimals" else "")


def cost_cells(row: Row) -> list[str]:
    """What one stream carries and costs."""
    s = row.stream
    return [
        s.venue,
        s.instrument,
        s.kind,
        f"{s.frames_per_s:.2f}",
        f"{s.quotes_per_s:.2f}",
        _num(s.parse_us, ".1f"),
        f"{row.cpu_pct:.4f}",
        f"{row.cpu_pct_batched:.4f}",
        _tick(row.book),
        _num(s.noise_bp, ".2f"),
        _num(s.zero_share, ".2f"),
    ]


def bias_cells(row: Row) -> list[str]:
    """The bias the estimators leave on one stream's simulated pair."""
    s = row.stream
    head = [s.venue, s.instrument, s.kind, f"{s.quotes_per_s:.2f}", _tick(row.book)]
    head.append(_num(s.noise_bp, ".2f"))
    if row.bias is None:
        return [*head, f"not simulated: {row.skipped}", "", "", "", "", ""]
    five, hy = row.bias["5s"], row.bias["HY"]
    return [
        *head,
        _num(five.noise_bp, ".2f"),
        f"{five.vol_pct:+.1f}",
        f"{five.corr:+.3f}",
        f"{five.corr_rmse:.3f}",
        f"{hy.vol_pct:+.1f}",
        f"{hy.corr:+.3f}",
    ]


def print_markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A GitHub-flavoured markdown table."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for cells in rows:
        print("| " + " | ".join(str(c) for c in cells) + " |")


def print_tables(
    rows: Sequence[Row],
    recommendations: Sequence[Recommendation],
    spans: Mapping[str, float],
    not_measured: Mapping[str, str],
    engine: Mapping[str, Any],
    *,
    markdown: bool,
) -> None:
    """Cost, bias, recommendation and engine tables."""
    emit = print_markdown if markdown else print_table
    emit(COST_HEADERS, [cost_cells(r) for r in rows])
    print()
    emit(BIAS_HEADERS, [bias_cells(r) for r in rows if r.stream.frames_per_s > 0])
    print()
    venue_rows = [[r.venue, f"{spans[r.venue]:.1f}", r.kind, r.reason] for r in recommendations]
    venue_rows += [[venue, "-", "-", why] for venue, why in not_measured.items()]
    emit(["venue", "recorded s", "price", "why"], venue_rows)
    print()
    engine_rows = [
        [f"Engine.ingest, {n} tick(s) per call", f"{us:.2f}", f"{engine['hy_ingest_us'][n]:.2f}"]
        for n, us in engine["ingest_us"].items()
    ]
    engine_rows.append(
        ["estimator kernel alone", f"{engine['kernel_us']:.3f}", f"{engine['hy_kernel_us']:.3f}"]
    )
    title = f"engine CPU per tick, us ({engine['symbols']} symbols)"
    emit([title, "preaverage 5s", "Hayashi-Yoshida (0s)"], engine_rows)
