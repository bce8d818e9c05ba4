"""One historical price file: its format, layout and column types, checked up front.

`open_history_file` reads a file's schema (the Parquet footer, or a CSV header and first rows)
and returns a `HistoryFile` whose `frame` is a lazy scan normalised to

    ts: Float64 event-time seconds (null on rows to skip), symbol: String, price: Float64,
    reason: UInt8 (0 to keep the row, else 1 + an index into `SKIP_REASONS`)

Nothing else is read, except for candle files without an explicit interval: inferring the
interval reads the open-time and symbol columns of that file once.

Layouts, detected from the column names (the first that fits wins):

- ticks: ``ts``, ``symbol``, ``price``; one tick per row.
- candles: ``open_time`` or ``ts`` (the candle's open time; ``open_time`` wins if both exist),
  ``symbol``, ``close``; one tick per candle at open time + interval, priced at the close.
- Binance klines: ``open_time``, ``close``, ``close_time`` and no ``symbol``; one tick per
  candle at close_time + 1 unit (the interval's end), the symbol taken from the file name
  before the first "-". A CSV whose first row starts with a number has no header and must have
  the 12 kline columns (`KLINE_COLUMNS`).

CSV columns are read as strings and parsed here, so a bad value deep in a file becomes a
skipped row rather than a failed read. Time columns may be Datetime (naive means UTC), Date,
integer or float epochs (unit by magnitude, see `feeds.history_columns`) or ISO-8601 strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import polars as pl

from feeds import history_columns as cols
from monitor.errors import DataError

SAMPLE_ROWS = 1_000

KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_base",
    "taker_buy_quote",
    "ignore",
)

# A row is dropped for the first of these that applies; "null" covers null and NaN, "bad" a
# value that is present but unparseable or infinite.
SKIP_REASONS = ("null_ts", "bad_ts", "null_symbol", "null_price", "bad_price")

ACCEPTED_LAYOUTS = (
    "ticks (ts, symbol, price); candles (ts or open_time, symbol, close); "
    "Binance klines (open_time, close, close_time and no symbol column, "
    "or 12 columns without a header)"
)
SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


class Layout(Enum):
    """The accepted table layouts."""

    TICKS = "ticks"
    CANDLES = "candles"
    KLINES = "Binance klines"


# Each required column is a tuple of accepted names; the first present one is used.
_REQUIRED: dict[Layout, tuple[tuple[str, ...], ...]] = {
    Layout.TICKS: (("ts",), ("symbol",), ("price",)),
    Layout.CANDLES: (("open_time", "ts"), ("symbol",), ("close",)),
    Layout.KLINES: (("open_time",), ("close_time",), ("close",)),
}


@dataclass(frozen=True, slots=True)
class HistoryFile:
    """A checked input file and its normalised lazy scan.

    Attributes:
        path: The file.
        layout: How its columns were read.
        frame: Lazy scan with columns ts, symbol, price, reason (see the module docstring).
        candle_interval_s: The candle interval used to shift open times, for candle files.
    """

    path: Path
    layout: Layout
    frame: pl.LazyFrame
    candle_interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Table:
    """A raw lazy scan of one file and its schema (CSV columns are all strings)."""

    path: Path
    scan: pl.LazyFrame
    schema: pl.Schema
    is_csv: bool

    def error(self, message: str) -> DataError:
        return DataError(f"{self.path}: {message}")

    def collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        """Run a query over this file, translating polars errors to DataError."""
        try:
            return query.collect(engine="streaming")
        except (pl.exceptions.PolarsError, OSError) as exc:
            kind = "CSV" if self.is_csv else "Parquet"
            raise self.error(f"cannot read as {kind}: {exc}") from exc

    def sample(self, name: str) -> pl.Series:
        """Return the first `SAMPLE_ROWS` values of a column."""
        return self.collect(self.scan.select(name).head(SAMPLE_ROWS)).to_series()


def open_history_file(path: Path, candle_interval_s: float | None) -> HistoryFile | None:
    """Check one file and build its normalised scan.

    Args:
        path: A .parquet, .pq, .csv or .csv.gz file.
        candle_interval_s: Candle interval for candle layouts; None infers it per file.

    Returns:
        The checked file, or None when the file is empty (it yields nothing).

    Raises:
        DataError: The file is missing, unreadable, of an unsupported kind, lacks a required
            column, or has a time or price column of an unusable type.
    """
    table = _open_table(path)
    if table is None:
        return None
    layout = _detect_layout(table)
    if layout is Layout.TICKS:
        return HistoryFile(path, layout, _ticks_frame(table))
    if layout is Layout.CANDLES:
        interval_s, frame = _candles_frame(table, candle_interval_s)
        return HistoryFile(path, layout, frame, interval_s)
    return HistoryFile(path, layout, _klines_frame(table))


def _open_table(path: Path) -> _Table | None:
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; expected one of {', '.join(SUFFIXES)}")
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise DataError(
            f"{path}: unsupported file extension {''.join(path.suffixes)!r}; "
            f"expected one of {', '.join(SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        return None
    if name.endswith((".parquet", ".pq")):
        return _open_parquet(path)
    return _open_csv(path)


def _open_parquet(path: Path) -> _Table:
    try:
        scan = pl.scan_parquet(path)
        return _Table(path, scan, scan.collect_schema(), is_csv=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from exc


def _open_csv(path: Path) -> _Table | None:
    try:
        first = pl.read_csv(path, has_header=False, n_rows=1, infer_schema=False)
        if first.is_empty() or all(value is None for value in first.row(0)):
            return None
        headerless = first[:, 0].cast(pl.Float64, strict=False).item() is not None
        if headerless and first.width != len(KLINE_COLUMNS):
            raise DataError(
                f"{path}: the first row {first.row(0)!r} is not a header and the file is not a "
                f"{len(KLINE_COLUMNS)}-column Binance kline file ({first.width} columns); "
                f"expected a header row naming the columns of one of: {ACCEPTED_LAYOUTS}"
            )
        scan = pl.scan_csv(
            path,
            has_header=not headerless,
            new_columns=list(KLINE_COLUMNS) if headerless else None,
            infer_schema=False,
        )
        return _Table(path, scan, scan.collect_schema(), is_csv=True)
    except pl.exceptions.NoDataError:
        return None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc


def _detect_layout(table: _Table) -> Layout:
    names = set(table.schema.names())
    missing = {
        layout: [alternatives for alternatives in required if names.isdisjoint(alternatives)]
        for layout, required in _REQUIRED.items()
    }
    # Dict order makes ticks win over candles and candles (with a symbol) over klines.
    best = min(missing, key=lambda layout: len(missing[layout]))
    if missing[best]:
        wanted = ", ".join(" or ".join(repr(n) for n in alts) for alts in missing[best])
        raise table.error(
            f"missing required column {wanted} for the {best.value} layout; "
            f"found columns {sorted(names)}; accepted layouts: {ACCEPTED_LAYOUTS}"
        )
    return best


def _ticks_frame(table: _Table) -> pl.LazyFrame:
    return _normalise(
        table,
        ts=_time_seconds(table, "ts"),
        ts_missing=pl.col("ts").is_null(),
        symbol=_symbol(table, "symbol"),
        price_column="price",
    )


def _candles_frame(table: _Table, candle_interval_s: float | None) -> tuple[float, pl.LazyFrame]:
    time_name = "open_time" if "open_time" in table.schema else "ts"
    open_s = _time_seconds(table, time_name)
    symbol = _symbol(table, "symbol")
    if candle_interval_s is None:
        candle_interval_s = _infer_interval_s(table, time_name, open_s, symbol)
    frame = _normalise(
        table,
        ts=open_s + candle_interval_s,
        ts_missing=pl.col(time_name).is_null(),
        symbol=symbol,
        price_column="close",
    )
    return candle_interval_s, frame


def _klines_frame(table: _Table) -> pl.LazyFrame:
    # The close time is the last unit (ms or us) of the candle; the tick sits at the end of it.
    close_time = _integer_epoch(table, "close_time")
    return _normalise(
        table,
        ts=cols.epoch_seconds(close_time + 1),
        ts_missing=pl.col("close_time").is_null(),
        symbol=pl.lit(_kline_symbol(table.path), pl.String),
        price_column="close",
    )


def _normalise(
    table: _Table, *, ts: pl.Expr, ts_missing: pl.Expr, symbol: pl.Expr, price_column: str
) -> pl.LazyFrame:
    parsed = table.scan.select(
        ts.alias("ts"),
        ts_missing.alias("ts_missing"),
        symbol.alias("symbol"),
        _price(table, price_column).alias("price"),
        pl.col(price_column).is_null().alias("price_missing"),
    )
    ts_col, symbol_col, price_col = pl.col("ts"), pl.col("symbol"), pl.col("price")
    reason = (
        pl.when(pl.col("ts_missing") | ts_col.is_nan())
        .then(1)
        .when(ts_col.is_null() | ts_col.is_infinite())
        .then(2)
        .when(symbol_col.is_null() | (symbol_col == ""))
        .then(3)
        .when(pl.col("price_missing") | price_col.is_nan())
        .then(4)
        .when(price_col.is_null() | price_col.is_infinite())
        .then(5)
        .otherwise(0)
        .cast(pl.UInt8)
    )
    return parsed.with_columns(reason.alias("reason")).select(
        # Skipped rows get a null ts so that a nulls-last sort puts them after all kept rows.
        pl.when(pl.col("reason") == 0).then(ts_col).alias("ts"),
        symbol_col,
        price_col,
        pl.col("reason"),
    )


def _time_seconds(table: _Table, name: str) -> pl.Expr:
    dtype = table.schema[name]
    if isinstance(dtype, pl.Datetime):
        return cols.datetime_seconds(name, dtype)
    if dtype == pl.Date:
        return cols.date_seconds(name)
    if dtype.is_integer() or dtype.is_float():
        return cols.epoch_seconds(pl.col(name))
    if dtype == pl.Null:
        return pl.lit(None, pl.Float64)
    if dtype == pl.String:
        sample = table.sample(name)
        kind = cols.classify_string_times(sample)
        if kind is None:
            raise table.error(
                f"column {name!r} holds values such as {sample.drop_nulls()[0]!r}, which are not "
                f"timestamps; expected {cols.TIME_EXPECTED}"
            )
        return cols.string_time_seconds(name, kind)
    raise table.error(f"column {name!r} has type {dtype}; expected {cols.TIME_EXPECTED}")


def _integer_epoch(table: _Table, name: str) -> pl.Expr:
    expected = "expected integer epoch milliseconds or microseconds"
    dtype = table.schema[name]
    if dtype.is_integer() or dtype == pl.Null:
        return pl.col(name).cast(pl.Int64)
    if table.is_csv:
        sample = table.sample(name).drop_nulls()
        if sample.is_empty() or cols.classify_string_times(sample) is cols.StringTime.INTEGER:
            return pl.col(name).cast(pl.Int64, strict=False)
        raise table.error(f"column {name!r} holds values such as {sample[0]!r}; {expected}")
    raise table.error(f"column {name!r} has type {dtype}; {expected}")


def _price(table: _Table, name: str) -> pl.Expr:
    dtype = table.schema[name]
    if dtype.is_numeric() or dtype == pl.Null:
        return pl.col(name).cast(pl.Float64)
    if table.is_csv:
        sample = table.sample(name)
        if cols.has_numbers(sample):
            return pl.col(name).cast(pl.Float64, strict=False)
        raise table.error(
            f"column {name!r} holds non-numeric values such as "
            f"{cols.first_non_numeric(sample)!r}; expected numbers"
        )
    raise table.error(f"column {name!r} has type {dtype}; expected a numeric type")


def _symbol(table: _Table, name: str) -> pl.Expr:
    dtype = table.schema[name]
    if dtype in (pl.String, pl.Null) or isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.col(name).cast(pl.String)
    raise table.error(f"column {name!r} has type {dtype}; expected strings")


def _kline_symbol(path: Path) -> str:
    symbol = path.name.split("-", 1)[0].split(".", 1)[0]
    if not symbol:
        raise DataError(
            f"{path}: cannot take the symbol from the file name; expected a name like "
            "'BTCUSDT-5m-2025-01-01.csv' for a Binance kline file without a symbol column"
        )
    return symbol


def _infer_interval_s(table: _Table, time_name: str, open_s: pl.Expr, symbol: pl.Expr) -> float:
    """Infer the candle interval: the smallest positive gap between one symbol's open times."""
    t, s = pl.col("t"), pl.col("s")
    gap = pl.when(s == s.shift()).then(t.diff())
    query = (
        table.scan.select(open_s.alias("t"), symbol.alias("s"))
        .filter(t.is_finite() & s.is_not_null())
        .sort("s", "t")
        .select(pl.len().alias("rows"), gap.filter(gap > 0).min().alias("interval_s"))
    )
    rows, interval_s = table.collect(query).row(0)
    if rows == 0:
        return 0.0  # nothing to replay, so any interval will do
    if interval_s is None:
        raise table.error(
            f"cannot infer the candle interval from column {time_name!r}: expected at least two "
            "distinct open times for one symbol; pass candle_interval_s"
        )
    return float(interval_s)
