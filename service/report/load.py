"""Read and check a replay's output directory, cut to a time range.

A replay output is a directory with ``snapshots.parquet`` (the columns of
:mod:`monitor.table`) and ``alerts.jsonl``; ``accounts.parquet`` and the files the replay
records for its report (:mod:`service.report.record`, ``run.json``) are used when present.
Every problem is a :class:`~monitor.errors.DataError` naming the file and what is wrong.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from monitor.errors import DataError
from service.report.episodes import Episode, pair_episodes, parse_utc, read_alerts, read_peaks
from service.report.facts import RUN_FILE, RunFacts, read_run
from service.report.record import COMPONENTS_FILE, CORRELATIONS_FILE, PEAKS_FILE

SNAPSHOTS_FILE = "snapshots.parquet"
ALERTS_FILE = "alerts.jsonl"
ACCOUNTS_FILE = "accounts.parquet"
MARKET_FIGURES = (
    "avg_correlation",
    "avg_correlation_slow",
    "absorption_ratio",
    "absorption_ratio_shift",
    "effective_bets",
)
REQUIRED_COLUMNS = ("ts", "portfolio", *MARKET_FIGURES)


@dataclass(frozen=True, slots=True)
class ReplayOutput:
    """A replay's outputs within the requested time range.

    Attributes:
        directory: the replay's output directory.
        snapshots: rows of ``snapshots.parquet`` in range (one per portfolio and snapshot).
        market: one row per snapshot time (the market figures), sorted by time.
        accounts: rows of ``accounts.parquet`` in range, or None without accounts.
        components: rows of ``components.parquet`` in range, or None when not recorded.
        correlations: ``correlations.parquet`` (whole run), or None when not recorded.
        episodes: alert episodes that were firing at some time in range.
        run: the content of ``run.json``, or None when not recorded.
        start, end: first and last snapshot time in range.
        replay_start, replay_end: first and last snapshot time of the whole replay.
        files: names and sizes of the files read.
    """

    directory: Path
    snapshots: pl.DataFrame
    market: pl.DataFrame
    accounts: pl.DataFrame | None
    components: pl.DataFrame | None
    correlations: pl.DataFrame | None
    episodes: list[Episode]
    run: RunFacts | None
    start: dt.datetime
    end: dt.datetime
    replay_start: dt.datetime
    replay_end: dt.datetime
    files: dict[str, int]


def parse_time(text: str, option: str) -> dt.datetime:
    """A ``--from``/``--to`` value: ISO 8601 (naive means UTC) or Unix seconds.

    Raises:
        DataError: neither; the message names ``option``.
    """
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and abs(seconds) < 1e11:
            return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    try:
        return parse_utc(text, option)
    except DataError:
        expected = "an ISO 8601 time (2025-02-03, 2025-02-03T12:00Z) or Unix seconds"
        raise DataError(f"{option}: expected {expected}, got {text!r}") from None


def load_replay(
    directory: Path, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> ReplayOutput:
    """Read the replay output in ``directory``, keeping snapshots with ``start <= ts < end``.

    Raises:
        DataError: the directory is missing or not a replay output, a file is unreadable or
            lacks a column, or no snapshot falls in the range.
    """
    _check_directory(directory)
    if start is not None and end is not None and start >= end:
        raise DataError(f"empty time range: --from {_show(start)} is not before --to {_show(end)}")
    every = _read_snapshots(directory / SNAPSHOTS_FILE)
    snapshots = _in_range(every, start, end)
    if snapshots.is_empty():
        raise DataError(
            f"{directory}: no snapshot between {_show(start, 'the start')} and "
            f"{_show(end, 'the end')}; "
            f"the replay covers {_show(every['ts'].min())} to {_show(every['ts'].max())}"
        )
    first, last = _bounds(snapshots)
    peaks = read_peaks(directory / PEAKS_FILE)
    records = read_alerts(directory / ALERTS_FILE)
    episodes = pair_episodes(records, peaks, str(directory / ALERTS_FILE))
    return ReplayOutput(
        directory=directory,
        snapshots=snapshots,
        market=snapshots.unique("ts", keep="first", maintain_order=True).sort("ts"),
        accounts=_optional_table(directory / ACCOUNTS_FILE, ("ts", "account"), start, end),
        components=_optional_table(
            directory / COMPONENTS_FILE, ("ts", "portfolio", "symbol"), start, end
        ),
        correlations=_optional_table(
            directory / CORRELATIONS_FILE, ("ts", "snapshot", "a", "b", "correlation")
        ),
        episodes=[e for e in episodes if e.overlaps(first, last)],
        run=read_run(directory / RUN_FILE),
        start=first,
        end=last,
        replay_start=_bounds(every)[0],
        replay_end=_bounds(every)[1],
        files={p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()},
    )


def _check_directory(directory: Path) -> None:
    if not directory.exists():
        raise DataError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected a `riskmon replay --out` one)")
    missing = [n for n in (SNAPSHOTS_FILE, ALERTS_FILE) if not (directory / n).is_file()]
    if missing:
        raise DataError(
            f"{directory}: not a replay output: no {' or '.join(missing)} "
            "(`riskmon replay ... --out DIR` writes them)"
        )


def _read_snapshots(path: Path) -> pl.DataFrame:
    frame = _read_parquet(path, REQUIRED_COLUMNS)
    if frame.is_empty():
        raise DataError(f"{path}: holds no snapshots")
    return frame


def _read_parquet(path: Path, required: tuple[str, ...]) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable Parquet file ({first_line})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: not a riskmon replay output: missing column(s) {', '.join(missing)}"
        )
    if not isinstance(frame.schema["ts"], pl.Datetime):
        raise DataError(f"{path}: column ts is {frame.schema['ts']}, expected a UTC datetime")
    ts = pl.col("ts")
    if frame.schema["ts"].time_zone is None:
        return frame.with_columns(ts.dt.replace_time_zone("UTC"))
    return frame.with_columns(ts.dt.convert_time_zone("UTC"))


def _optional_table(
    path: Path,
    required: tuple[str, ...],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pl.DataFrame | None:
    if not path.exists():
        return None
    return _in_range(_read_parquet(path, required), start, end)


def _in_range(
    frame: pl.DataFrame, start: dt.datetime | None, end: dt.datetime | None
) -> pl.DataFrame:
    if start is not None:
        frame = frame.filter(pl.col("ts") >= start)
    if end is not None:
        frame = frame.filter(pl.col("ts") < end)
    return frame


def _bounds(frame: pl.DataFrame) -> tuple[dt.datetime, dt.datetime]:
    first, last = frame["ts"].min(), frame["ts"].max()
    assert isinstance(first, dt.datetime)
    assert isinstance(last, dt.datetime)
    return first, last


def _show(moment: object, absent: str = "") -> str:
    if isinstance(moment, dt.datetime):
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return absent if moment is None else str(moment)
