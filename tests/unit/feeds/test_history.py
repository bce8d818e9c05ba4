"""Tests for feeds.history: layouts, time types, merge order, batching, skips and errors."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.history import HistorySource, IndexedTickBatch, TickBatch
from feeds.history_files import KLINE_COLUMNS
from monitor.errors import DataError
from tests.conftest import SHARED_DATA

SHARED_5M = SHARED_DATA / "market" / "binance_spot_5m_2025H1.parquet"
T0 = 1_735_689_600  # 2025-01-01 00:00:00 UTC, in seconds
FORMATS = ["parquet", "csv"]


def write(frame: pl.DataFrame, path: Path) -> Path:
    """Write a frame as Parquet or CSV (with header), chosen by the path's extension."""
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def replay(source: HistorySource) -> pl.DataFrame:
    """Collect every batch of a source into one frame of ts, symbol, price."""
    frames = [
        pl.DataFrame({"ts": b.ts, "symbol": b.symbol, "price": b.price}, strict=False)
        for b in source.batches()
    ]
    schema = {"ts": pl.Float64, "symbol": pl.String, "price": pl.Float64}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def ticks(
    ts: Sequence[object], symbols: Sequence[str | None], prices: Sequence[float | None]
) -> pl.DataFrame:
    return pl.DataFrame({"ts": ts, "symbol": symbols, "price": prices}, strict=False)


def kline_rows(open_times: Sequence[int], unit: int, closes: Sequence[float]) -> list[list[object]]:
    """Binance kline rows for 5-minute candles; `unit` is 1000 (ms) or 1_000_000 (us)."""
    rows: list[list[object]] = []
    for open_time, close in zip(open_times, closes, strict=True):
        close_time = open_time + 300 * unit - 1
        rows.append([open_time, 1.0, 2.0, 0.5, close, 10.0, close_time, 1.0, 3, 1.0, 1.0, 0])
    return rows


def write_klines(path: Path, rows: list[list[object]], *, header: bool) -> Path:
    lines = [",".join(KLINE_COLUMNS)] if header else []
    lines += [",".join(str(v) for v in row) for row in rows]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def expect_error(path: Path, *fragments: str) -> DataError:
    """Assert that building a source over `path` fails with a message naming it first."""
    with pytest.raises(DataError) as info:
        HistorySource([path])
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


# --- layouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_tick_table_yields_rows_sorted_by_ts(tmp_path: Path, fmt: str) -> None:
    """A tick table yields (ts, symbol, price) as stored, sorted by ts."""
    path = write(
        ticks([T0 + 2, T0, T0 + 1], ["ETH", "BTC", "SOL"], [3.5, 1.5, 2.5]), tmp_path / f"t.{fmt}"
    )
    out = replay(HistorySource([path]))
    assert out["ts"].to_list() == [T0, T0 + 1, T0 + 2]
    assert out["symbol"].to_list() == ["BTC", "SOL", "ETH"]
    assert out["price"].to_list() == [1.5, 2.5, 3.5]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("time_name", ["ts", "open_time"])
def test_candles_move_to_close_time_with_given_interval(
    tmp_path: Path, fmt: str, time_name: str
) -> None:
    """A candle is one tick at open time + interval with the close price."""
    frame = pl.DataFrame(
        {
            time_name: [T0, T0 + 60],
            "symbol": ["BTC", "BTC"],
            "open": [1.0, 2.0],
            "high": [3.0, 4.0],
            "low": [0.5, 1.5],
            "close": [2.0, 3.0],
            "volume": [10.0, 20.0],
        }
    )
    path = write(frame, tmp_path / f"c.{fmt}")
    out = replay(HistorySource([path], candle_interval_s=60.0))
    assert out["ts"].to_list() == [T0 + 60, T0 + 120]
    assert out["price"].to_list() == [2.0, 3.0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_candle_interval_is_smallest_gap_within_one_symbol(tmp_path: Path, fmt: str) -> None:
    """The inferred interval ignores duplicates, larger gaps and gaps between symbols."""
    frame = pl.DataFrame(
        {
            "ts": [T0, T0, T0 + 900, T0 + 1200, T0 + 60, T0 + 660],
            "symbol": ["A", "A", "A", "A", "B", "B"],
            "close": [1.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    path = write(frame, tmp_path / f"c.{fmt}")
    source = HistorySource([path])
    assert source.files[0].candle_interval_s == 300.0
    assert replay(source)["ts"].to_list() == [
        T0 + 300,
        T0 + 300,
        T0 + 360,
        T0 + 960,
        T0 + 1200,
        T0 + 1500,
    ]


def test_candle_interval_that_cannot_be_inferred_is_an_error(tmp_path: Path) -> None:
    """One open time per symbol gives no interval: the error says to pass one."""
    frame = pl.DataFrame({"ts": [T0, T0 + 60], "symbol": ["A", "B"], "close": [1.0, 2.0]})
    path = write(frame, tmp_path / "c.parquet")
    expect_error(path, "candle interval", "'ts'", "candle_interval_s")
    assert replay(HistorySource([path], candle_interval_s=300))["ts"].to_list() == [
        T0 + 300,
        T0 + 360,
    ]


@pytest.mark.parametrize(("unit", "name"), [(1000, "ms"), (1_000_000, "us")])
@pytest.mark.parametrize("header", [False, True])
def test_binance_kline_csv(tmp_path: Path, unit: int, name: str, header: bool) -> None:
    """Kline files tick at close_time + 1 unit with the close, symbol from the file name."""
    rows = kline_rows([T0 * unit, (T0 + 300) * unit], unit, [101.5, 102.5])
    path = write_klines(tmp_path / f"BTCUSDT-5m-2025-01-01-{name}.csv", rows, header=header)
    out = replay(HistorySource([path], candle_interval_s=60.0))  # ignored for klines
    assert out["ts"].to_list() == [T0 + 300, T0 + 600]
    assert out["symbol"].to_list() == ["BTCUSDT", "BTCUSDT"]
    assert out["price"].to_list() == [101.5, 102.5]


def test_binance_kline_gzip_and_mixed_units(tmp_path: Path) -> None:
    """A .csv.gz kline file reads, and units are told apart per value (ms rows, then us rows)."""
    rows = kline_rows([T0 * 1000], 1000, [1.0]) + kline_rows(
        [(T0 + 300) * 1_000_000], 1_000_000, [2.0]
    )
    path = write_klines(tmp_path / "ETHUSDT-5m-2025-01.csv.gz", rows, header=False)
    out = replay(HistorySource([path]))
    assert out.rows() == [(T0 + 300, "ETHUSDT", 1.0), (T0 + 600, "ETHUSDT", 2.0)]


# --- time column types ---------------------------------------------------------------------

_INSTANTS = [
    dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2025, 1, 2, 12, 30, 15, tzinfo=dt.UTC),
]
_SECONDS = [d.timestamp() for d in _INSTANTS]


def _time_series() -> dict[str, pl.Series]:
    aware = pl.Series(_INSTANTS)
    ints = pl.Series([int(s) for s in _SECONDS], dtype=pl.Int64)
    return {
        "datetime_ns_naive": aware.dt.replace_time_zone(None).dt.cast_time_unit("ns"),
        "datetime_ms_tokyo": aware.dt.convert_time_zone("Asia/Tokyo").dt.cast_time_unit("ms"),
        "int_s": ints,
        "int_ms": ints * 1000,
        "int_us": ints * 1_000_000,
        "int_ns": ints * 1_000_000_000,
        "float_s": ints.cast(pl.Float64),
        "float_ms": ints.cast(pl.Float64) * 1000,
        "iso_z": pl.Series(["2025-01-01T00:00:00Z", "2025-01-02T12:30:15.000Z"]),
        "iso_offset": pl.Series(["2025-01-01T01:00:00+01:00", "2025-01-02T12:30:15+00:00"]),
        "iso_naive": pl.Series(["2025-01-01 00:00:00", "2025-01-02T12:30:15"]),
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(_time_series()))
def test_time_column_types(tmp_path: Path, fmt: str, kind: str) -> None:
    """Every accepted time type becomes the same float64 UTC seconds."""
    frame = pl.DataFrame({"ts": _time_series()[kind], "symbol": ["A", "A"], "price": [1.0, 2.0]})
    path = write(frame, tmp_path / f"t.{fmt}")
    assert replay(HistorySource([path]))["ts"].to_list() == pytest.approx(_SECONDS, abs=1e-6)


def test_date_time_column_is_midnight_utc(tmp_path: Path) -> None:
    """A Date column means midnight UTC of that day."""
    frame = pl.DataFrame({"ts": [dt.date(2025, 1, 1)], "symbol": ["A"], "price": [1.0]})
    out = replay(HistorySource([write(frame, tmp_path / "t.parquet")]))
    assert out["ts"].to_list() == [T0]


# --- ordering and batching -----------------------------------------------------------------


def test_files_merge_in_event_time_and_ties_keep_file_then_row_order(tmp_path: Path) -> None:
    """Equal timestamps come out in file order, then row order; files need not be sorted."""
    first = write(
        ticks([T0 + 5, T0, T0, T0 + 5], ["a", "b", "c", "d"], [1, 2, 3, 4]), tmp_path / "1.parquet"
    )
    second = write(ticks([T0, T0 + 5, T0 + 1], ["e", "f", "g"], [5, 6, 7]), tmp_path / "2.csv")
    out = replay(HistorySource([first, second], batch_rows=2))
    assert out["symbol"].to_list() == ["b", "c", "e", "g", "a", "d", "f"]
    assert out["ts"].to_list() == [T0, T0, T0, T0 + 1, T0 + 5, T0 + 5, T0 + 5]


def test_batches_hold_batch_rows_and_ts_never_decreases(tmp_path: Path) -> None:
    """Every batch but the last holds exactly batch_rows rows; ts is sorted across batches."""
    rng = np.random.default_rng(7)
    n = 10_007
    frame = ticks((T0 + rng.integers(0, 500, n)).tolist(), ["X"] * n, rng.random(n).tolist())
    source = HistorySource([write(frame, tmp_path / "t.parquet")], batch_rows=1000)
    batches = list(source.batches())
    assert [len(b) for b in batches] == [1000] * 10 + [7]
    assert all(isinstance(b, TickBatch) and b.ts.dtype == np.float64 for b in batches)
    ts = np.concatenate([b.ts for b in batches])
    assert np.all(np.diff(ts) >= 0)
    assert source.total_rows == n


def test_layouts_and_formats_merge_together(tmp_path: Path) -> None:
    """Kline CSV, candle Parquet and tick CSV files interleave in one event-time stream."""
    klines = write_klines(
        tmp_path / "BTCUSDT-5m-2025-01-01.csv",
        kline_rows([T0 * 1000, (T0 + 300) * 1000], 1000, [100.0, 101.0]),
        header=False,
    )
    candles = write(
        pl.DataFrame({"open_time": [T0, T0 + 300], "symbol": ["ETH"] * 2, "close": [10.0, 11.0]}),
        tmp_path / "candles.parquet",
    )
    tick_file = write(ticks([T0 + 450, T0 + 300], ["SOL", "SOL"], [1.0, 2.0]), tmp_path / "t.csv")
    out = replay(HistorySource([klines, candles, tick_file]))
    assert out.rows() == [
        (T0 + 300, "BTCUSDT", 100.0),
        (T0 + 300, "ETH", 10.0),
        (T0 + 300, "SOL", 2.0),
        (T0 + 450, "SOL", 1.0),
        (T0 + 600, "BTCUSDT", 101.0),
        (T0 + 600, "ETH", 11.0),
    ]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(min_value=0, max_value=5), max_size=30),
        min_size=1,
        max_size=4,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_merge_is_a_stable_sort_over_files(offsets: list[list[int]], batch_rows: int) -> None:
    """Whatever the files, the output is the stable sort of their concatenation by ts."""
    with tempfile.TemporaryDirectory() as tmp:
        paths: list[Path] = []
        rows: list[tuple[int, str]] = []
        for f, file_offsets in enumerate(offsets):
            tags = [f"{f}:{r}" for r in range(len(file_offsets))]
            frame = ticks([T0 + o for o in file_offsets], tags, [1.0] * len(tags))
            paths.append(write(frame.cast({"ts": pl.Int64}), Path(tmp) / f"{f}.parquet"))
            rows += zip([T0 + o for o in file_offsets], tags, strict=True)
        out = replay(HistorySource(paths, batch_rows=batch_rows))
    expected = sorted(rows, key=lambda row: row[0])
    assert out.select("ts", "symbol").rows() == expected


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=9),
            st.sampled_from(["AAA", "BBB", "CCC", "", None]),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
        ),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=7),
    st.permutations(["AAA", "BBB", "DDD"]),
)
def test_indexed_batches_are_the_batches_with_each_symbol_resolved(
    rows: list[tuple[int, str | None, float]], batch_rows: int, symbols: list[str]
) -> None:
    """The same rows, order, batches and skip counts as batches(); each symbol its index in
    the list given, -1 for a symbol not in it."""
    names = tuple(symbols[:2])  # one of the file's symbols (and a missing one) left out
    with tempfile.TemporaryDirectory() as tmp:
        frame = ticks([T0 + r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        path = write(frame.cast({"ts": pl.Int64}), Path(tmp) / "t.parquet")
        plain, indexed = (
            HistorySource([path], batch_rows=batch_rows),
            HistorySource([path], batch_rows=batch_rows),
        )
        want, got = list(plain.batches()), list(indexed.indexed_batches(names))
    assert [len(b) for b in got] == [len(b) for b in want]
    for w, g in zip(want, got, strict=True):
        assert isinstance(g, IndexedTickBatch)
        assert g.idx.dtype == np.int64
        assert g.symbols == names
        np.testing.assert_array_equal(g.ts, w.ts)
        np.testing.assert_array_equal(g.price, w.price)
        assert g.idx.tolist() == [names.index(s) if s in names else -1 for s in w.symbol]
    assert (indexed.total_rows, dict(indexed.skipped)) == (plain.total_rows, dict(plain.skipped))


def test_indexed_batches_refuse_a_symbol_list_with_repeats(tmp_path: Path) -> None:
    path = write(ticks([T0], ["A"], [1.0]), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="symbols must be distinct"):
        list(HistorySource([path]).indexed_batches(["A", "B", "A"]))


# --- skipped rows --------------------------------------------------------------------------


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path: Path) -> None:
    """Null/NaN/infinite values are dropped and counted; zero and negative prices are kept."""
    nan, inf = float("nan"), float("inf")
    frame = ticks(
        [T0, None, nan, inf, T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 5, T0 + 6],
        ["A", "A", "A", "A", None, "", "A", "A", "A", "A"],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, None, nan, inf, -2.0],
    )
    source = HistorySource([write(frame, tmp_path / "t.parquet")])
    assert source.total_rows == 2
    assert dict(source.skipped) == {
        "null_ts": 2,
        "bad_ts": 1,
        "null_symbol": 2,
        "null_price": 2,
        "bad_price": 1,
    }
    out = replay(source)
    assert out.rows() == [(T0, "A", 1.0), (T0 + 6, "A", -2.0)]
    assert source.total_rows == 2


def test_unparseable_csv_values_are_counted_as_bad(tmp_path: Path) -> None:
    """In CSV, a price or time that does not parse drops its row as bad_price or bad_ts."""
    path = tmp_path / "t.csv"
    path.write_text(
        "ts,symbol,price\n1735689600,A,1.5\nsoon,A,2\n1735689601,A,n/a\n1735689602,A,\n"
    )
    source = HistorySource([path])
    assert replay(source).rows() == [(T0, "A", 1.5)]
    assert source.skipped["bad_ts"] == 1
    assert source.skipped["bad_price"] == 1
    assert source.skipped["null_price"] == 1


# --- empty files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.with_suffix(".csv").write_text(""),
        lambda p: p.with_suffix(".csv").write_text("ts,symbol,price\n"),
        lambda p: p.with_suffix(".parquet").write_bytes(b""),
        lambda p: ticks([], [], []).cast({"ts": pl.Int64}).write_parquet(p.with_suffix(".parquet")),
        lambda p: pl.DataFrame(
            schema={"ts": pl.Int64, "symbol": pl.String, "close": pl.Float64}
        ).write_parquet(p.with_suffix(".parquet")),
    ],
    ids=["zero-byte-csv", "header-only-csv", "zero-byte-parquet", "no-row-ticks", "no-row-candles"],
)
def test_empty_file_yields_nothing(tmp_path: Path, make: Callable[[Path], object]) -> None:
    """An empty file is not an error: it yields no batch."""
    make(tmp_path / "empty")
    (path,) = tmp_path.iterdir()
    source = HistorySource([path])
    assert list(source.batches()) == []
    assert source.total_rows == 0


# --- errors --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.parquet", "does not exist")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "ticks.json"
    path.write_text("{}")
    expect_error(path, "unsupported file extension '.json'", ".parquet", ".csv")


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not a parquet file at all")
    expect_error(path, "cannot read as Parquet")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_column_lists_found_columns_and_layouts(tmp_path: Path, fmt: str) -> None:
    """A missing column is named, with the columns found and the accepted layouts."""
    path = write(pl.DataFrame({"ts": [T0], "sym": ["A"], "price": [1.0]}), tmp_path / f"t.{fmt}")
    expect_error(
        path,
        "missing required column 'symbol'",
        "ticks layout",
        "['price', 'sym', 'ts']",
        "accepted layouts",
    )


def test_missing_candle_time_column(tmp_path: Path) -> None:
    path = write(
        pl.DataFrame({"time": [T0], "symbol": ["A"], "close": [1.0]}), tmp_path / "c.parquet"
    )
    expect_error(path, "missing required column 'open_time' or 'ts' for the candles layout")


def test_unusable_time_type(tmp_path: Path) -> None:
    path = write(
        pl.DataFrame({"ts": [True], "symbol": ["A"], "price": [1.0]}), tmp_path / "t.parquet"
    )
    expect_error(path, "column 'ts' has type Boolean", "expected a Datetime")


def test_csv_time_column_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ts,symbol,price\nmonday,A,1\ntuesday,A,2\n")
    expect_error(path, "column 'ts' holds values such as 'monday'", "expected a Datetime")


def test_non_numeric_price_in_parquet(tmp_path: Path) -> None:
    path = write(
        pl.DataFrame({"ts": [T0], "symbol": ["A"], "price": ["1.5"]}), tmp_path / "t.parquet"
    )
    expect_error(path, "column 'price' has type String", "expected a numeric type")


def test_non_numeric_price_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ts,symbol,price\n1735689600,A,high\n1735689601,A,low\n")
    expect_error(path, "column 'price' holds non-numeric values such as 'high'", "expected numbers")


def test_numeric_strings_in_csv_are_prices(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('ts,symbol,price\n1735689600,A,"1.25"\n')
    assert replay(HistorySource([path]))["price"].to_list() == [1.25]


def test_headerless_csv_that_is_not_a_kline_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("1735689600,A,1.0\n")
    expect_error(path, "is not a header", "12-column Binance kline")


def test_kline_close_time_must_be_integer(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m.csv"
    path.write_text(",".join(KLINE_COLUMNS) + "\n1735689600000,1,2,0,1.5,1,2025-01-01,1,1,1,1,0\n")
    expect_error(path, "column 'close_time'", "expected integer epoch")


def test_errors_come_before_any_batch(tmp_path: Path) -> None:
    """One bad file among good ones fails the constructor; nothing is replayed."""
    good = write(ticks([T0], ["A"], [1.0]), tmp_path / "good.parquet")
    missing = tmp_path / "missing.csv"
    with pytest.raises(DataError, match=re.escape(f"{missing}: file does not exist")):
        HistorySource([good, missing])


def test_single_path_string_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sequence of paths"):
        HistorySource(str(tmp_path / "t.parquet"))


# --- temporary file ------------------------------------------------------------------------


def test_temporary_file_is_removed_after_iteration(tmp_path: Path) -> None:
    """The merged file lives in workdir only while the iterator runs."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    path = write(ticks([T0, T0 + 1, T0 + 2], ["A"] * 3, [1.0] * 3), tmp_path / "t.parquet")
    source = HistorySource([path], batch_rows=1, workdir=workdir)

    iterator = source.batches()
    next(iterator)
    assert list(workdir.rglob("*.parquet"))
    list(iterator)
    assert list(workdir.iterdir()) == []

    iterator = source.batches()
    next(iterator)
    iterator.close()
    assert list(workdir.iterdir()) == []


def test_file_broken_past_the_checked_rows_fails_on_first_batch(tmp_path: Path) -> None:
    """A defect beyond the rows read up front raises DataError naming the file, and cleans up."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    good = write(ticks([T0], ["A"], [1.0]), tmp_path / "good.parquet")
    broken = tmp_path / "broken.csv"
    lines = [f"{T0 + i},A,{i}" for i in range(3000)]
    broken.write_text("ts,symbol,price\n" + "\n".join(lines) + "\n1735690000,A,1,extra\n")
    source = HistorySource([good, broken], workdir=workdir)
    with pytest.raises(DataError, match=re.escape(f"{broken}: cannot read")):
        next(source.batches())
    assert list(workdir.iterdir()) == []


# --- shared market data --------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_5M.exists(), reason=f"shared market data absent: {SHARED_5M}")
def test_shared_binance_5m_candles() -> None:
    """The H1 2025 5-minute file replays 921,008 ticks starting at the first candle's close."""
    source = HistorySource([SHARED_5M])
    count, first_ts, last_ts = 0, None, -np.inf
    for batch in source.batches():
        assert batch.ts[0] >= last_ts
        assert np.all(np.diff(batch.ts) >= 0)
        first_ts = batch.ts[0] if first_ts is None else first_ts
        last_ts = batch.ts[-1]
        count += len(batch)
    assert count == source.total_rows == 921_008
    assert first_ts == dt.datetime(2025, 1, 1, 0, 5, tzinfo=dt.UTC).timestamp()
