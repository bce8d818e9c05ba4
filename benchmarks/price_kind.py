"""Price kind chosen on evidence (issue #13): what trade and mid prices cost and give, per venue.

For each venue riskmon speaks that has a recording in ``../shared/data/recorded``, per
instrument and price kind (trade, mid), from the recorded frames
(:mod:`benchmarks.recorded_streams`): frames and quotes per second, parse CPU per frame, the
relative tick size and the noise in the quotes. Then:

- the engine's CPU per tick (:mod:`benchmarks.price_kind_engine`), so that the CPU share of a
  stream counts parse and engine: ``parse us x frames/s + engine us x quotes/s``, with the
  engine at one tick per ``Engine.ingest`` (a quiet feed wakes the engine loop for each tick:
  the upper bound) and at 100 per call (a busy feed: the lower bound);
- the bias left after the estimator (:mod:`benchmarks.price_kind_bias`): a pair of symbols
  simulated with the stream's quote rate and the instrument's tick through a one-tick book,
  an assumed ``VOL_ANNUAL`` volatility and correlation ``RHO``, ``--hours`` of event time, a
  ``HALFLIFE_S`` half-life, ``--seeds`` seeds; the mean volatility and correlation biases
  and the correlation RMSE at the end, with the default pre-averaged estimator
  (``preaverage = "5s"``) and, for comparison, tick-by-tick Hayashi-Yoshida (``"0s"``);
- per venue, the price kind the shipped defaults should use (:func:`recommend`).

The recordings are short (11 to 43 s) and from quiet markets: the rates are those of quiet
markets, and a busy market multiplies them (the CPU per quote is what carries over). Streams
with fewer than ``MIN_QUOTES`` recorded quotes are not simulated.

Usage: python -m benchmarks.price_kind [--seeds 20] [--hours 2] [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.common import write_result
from benchmarks.price_kind_bias import ESTIMATORS, HALFLIFE_S, RHO, VOL_ANNUAL, simulate
from benchmarks.price_kind_engine import engine_costs
from benchmarks.price_kind_tables import Recommendation, Row, print_tables
from benchmarks.recorded_streams import (
    NOT_MEASURED,
    RECORDINGS,
    Book,
    StreamStats,
    measure_recording,
    recorded_path,
    recordings_present,
)

MIN_QUOTES = 5
BIAS_SLACK_CORR = 0.01  # mid is "no less accurate" within this much correlation RMSE ...
BIAS_SLACK_VOL_PCT = 1.0  # ... and this many percentage points of volatility RMSE
MAX_COST_RATIO = 10.0  # mid is "far more expensive" beyond this multiple of trade's CPU


def build_rows(
    seeds: int, duration_s: float, engine_us: tuple[float, float]
) -> tuple[list[Row], dict[str, float]]:
    """Rows of every measured stream and the recorded span of each venue.

    ``engine_us``: engine CPU per tick at one tick per call and at 100 per call.
    """
    rows, spans = [], {}
    for recording in RECORDINGS:
        stats, books, span = measure_recording(recording)
        spans[recording.venue] = span
        for s in stats:
            rows.append(_row(s, books[s.instrument], seeds, duration_s, engine_us))
    return rows, spans


def _row(
    s: StreamStats, book: Book, seeds: int, duration_s: float, engine_us: tuple[float, float]
) -> Row:
    parse = (s.parse_us or 0.0) * s.frames_per_s
    cpu = [(parse + us * s.quotes_per_s) / 1e6 * 100.0 for us in engine_us]
    quotes = round(s.quotes_per_s * s.duration_s)
    if quotes < MIN_QUOTES or book.tick_bp is None:
        why = f"{quotes} quotes recorded" if quotes < MIN_QUOTES else "tick unknown"
        return Row(s, book, cpu[0], cpu[1], None, why)
    bias = simulate(s.quotes_per_s, book.tick_bp, s.kind, seeds, duration_s)
    return Row(s, book, cpu[0], cpu[1], bias)


def recommend(venue: str, rows: list[Row]) -> Recommendation:
    """Mid where it is no less accurate than trade and not far more expensive; trade otherwise.

    Cost: the summed CPU shares (upper bound) of the venue's instruments with both streams
    recorded; mid must cost at most ``MAX_COST_RATIO`` times trade's. Accuracy: over the
    instruments whose two streams were both simulated, the mean correlation and volatility
    RMSE (bias and dispersion) of the default estimator; mid must be within ``BIAS_SLACK_*``
    of trade. Trade where mid was not recorded or the two cannot be compared.
    """
    recorded = _paired(rows, lambda row: row.stream.frames_per_s > 0)
    if not recorded:
        return Recommendation(venue, "trade", "mid not recorded")
    cost = {k: sum(pair[k].cpu_pct for pair in recorded) for k in ("trade", "mid")}
    ratio = cost["mid"] / cost["trade"] if cost["trade"] > 0 else math.inf
    if ratio > MAX_COST_RATIO:
        return Recommendation(venue, "trade", f"mid costs {ratio:.0f}x trade's CPU")
    simulated = _paired(rows, lambda row: row.bias is not None)
    if not simulated:
        return Recommendation(venue, "trade", "too few quotes to compare accuracy")
    (t_corr, t_vol), (m_corr, m_vol) = (
        _accuracy([pair[k] for pair in simulated]) for k in ("trade", "mid")
    )
    detail = (
        f"{len(simulated)} instrument(s): corr RMSE mid {m_corr:.3f} vs trade {t_corr:.3f}, "
        f"vol RMSE {m_vol:.1f}% vs {t_vol:.1f}%; mid CPU {ratio:.1f}x trade's"
    )
    if m_corr <= t_corr + BIAS_SLACK_CORR and m_vol <= t_vol + BIAS_SLACK_VOL_PCT:
        return Recommendation(venue, "mid", detail)
    return Recommendation(venue, "trade", f"mid less accurate: {detail}")


def _paired(rows: list[Row], keep: Callable[[Row], bool]) -> list[dict[str, Row]]:
    """Per instrument with both kinds kept: {kind: row}."""
    by_instrument: dict[str, dict[str, Row]] = {}
    for row in rows:
        if keep(row):
            by_instrument.setdefault(row.stream.instrument, {})[row.stream.kind] = row
    return [pair for pair in by_instrument.values() if len(pair) == 2]


def _accuracy(rows: list[Row]) -> tuple[float, float]:
    """(mean correlation RMSE, mean volatility RMSE %) of the default estimator."""
    biases = [row.bias["5s"] for row in rows if row.bias is not None]
    return (
        statistics.fmean(b.corr_rmse for b in biases),
        statistics.fmean(b.vol_rmse_pct for b in biases),
    )


def to_json(row: Row) -> dict[str, Any]:
    """One row as plain JSON values."""
    return {
        **dataclasses.asdict(row.stream),
        "book_tick_bp": row.book.tick_bp,
        "book_tick_source": row.book.source,
        "cpu_pct_of_core": row.cpu_pct,
        "cpu_pct_of_core_batched": row.cpu_pct_batched,
        "bias": {k: dataclasses.asdict(b) for k, b in row.bias.items()} if row.bias else None,
        "skipped": row.skipped,
    }


def main() -> None:
    """Measure, print the tables and write ``benchmarks/results/price_kind.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="simulated markets per stream")
    parser.add_argument("--hours", type=float, default=2.0, help="event time per market")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args()
    if not recordings_present():
        print(f"price_kind: skipped, the recordings are absent ({recorded_path()})")
        return
    engine = engine_costs()
    engine_us = (engine["ingest_us"]["1"], engine["ingest_us"]["100"])
    rows, spans = build_rows(args.seeds, args.hours * 3600.0, engine_us)
    recommendations = [recommend(v, [r for r in rows if r.stream.venue == v]) for v in spans]
    print_tables(rows, recommendations, spans, NOT_MEASURED, engine, markdown=args.markdown)
    parameters = {
        "seeds": args.seeds,
        "hours": args.hours,
        "vol_annual": VOL_ANNUAL,
        "correlation": RHO,
        "halflife_s": HALFLIFE_S,
        "estimators": ESTIMATORS,
        "min_quotes": MIN_QUOTES,
        "max_cost_ratio": MAX_COST_RATIO,
        "slack": {"corr_rmse": BIAS_SLACK_CORR, "vol_rmse_pct": BIAS_SLACK_VOL_PCT},
    }
    results = {
        "streams": [to_json(r) for r in rows],
        "recorded_s": spans,
        "engine": engine,
        "recommendations": [dataclasses.asdict(r) for r in recommendations],
        "not_measured": NOT_MEASURED,
        "notes": {r.venue: r.note for r in RECORDINGS if r.note},
    }
    print(f"\nwrote {write_result('price_kind', parameters, results)}")


if __name__ == "__main__":
    main()
