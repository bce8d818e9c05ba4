"""Replay of historical prices: files merged in event-time order and yielded in batches.

`HistorySource` accepts tick tables, candle tables and Binance kline files, in Parquet or CSV
(see `feeds.history_files` for the layouts). Every file is checked when the source is built, so
a bad file fails before the first batch. `batches()` then streams all files through polars:
each is normalised to (ts, symbol, price), they are concatenated in the order given, stably
sorted on ts and written to a temporary Parquet file, which is read back in batches of
`batch_rows` and removed when the iterator is exhausted or closed. The merge runs on the polars
streaming engine, and reading back holds one batch at a time.

`indexed_batches(symbols)` yields the same rows with each symbol resolved, by polars, to its
index in the given list (-1 for a symbol not in it): an engine then needs no Python string per
tick, and the merged file holds small integers instead of strings.

Rows with a null or NaN time, symbol or price, or an unparseable or infinite time or price, are
dropped and counted in `skipped`. Non-positive prices and out-of-order ticks are kept: the
replay engine handles them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

from feeds.history_files import SKIP_REASONS, HistoryFile, open_history_file
from monitor.errors import DataError

__all__ = ["HistorySource", "IndexedTickBatch", "TickBatch"]

_MERGED_NAME = "merged.parquet"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TickBatch:
    """A run of ticks in event-time order, as parallel columns.

    Attributes:
        ts: Event time, float64 Unix seconds, non-decreasing within and across batches.
        symbol: Instrument symbol of each row.
        price: Price of each row, float64 (may be zero or negative; never NaN or infinite).

    The arrays may be read-only views of polars memory; copy them before writing.
    """

    ts: npt.NDArray[np.float64]
    symbol: list[str]
    price: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass(frozen=True, slots=True)
class IndexedTickBatch:
    """A run of ticks in event-time order whose symbols are indices into ``symbols``.

    Attributes:
        ts: Event time, float64 Unix seconds, non-decreasing within and across batches.
        idx: Index of each row's symbol in ``symbols``, int64; -1 for a symbol not in it.
        price: Price of each row, float64 (may be zero or negative; never NaN or infinite).
        symbols: The symbol list the indices refer to (the one given to ``indexed_batches``).

    The arrays may be read-only views of polars memory; copy them before writing.
    """

    ts: npt.NDArray[np.float64]
    idx: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    symbols: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.idx)


@dataclass(frozen=True, slots=True)
class _Counts:
    rows: int
    skipped: Mapping[str, int]

    @classmethod
    def of(cls, frame: pl.LazyFrame | None) -> _Counts:
        """Count the rows of a normalised frame (or of nothing) by skip reason."""
        by_code: dict[int, int] = {}
        if frame is not None:
            counts = frame.group_by("reason").len().collect(engine="streaming")
            by_code = dict(zip(counts["reason"], counts["len"], strict=True))
        skipped = {name: by_code.get(code, 0) for code, name in enumerate(SKIP_REASONS, 1)}
        return cls(rows=by_code.get(0, 0), skipped=MappingProxyType(skipped))


class HistorySource:
    """Historical prices from files, replayed in event-time order.

    Example::

        source = HistorySource(["BTCUSDT-5m-2025-01-01.csv", "ticks.parquet"])
        for batch in source.batches():
            engine.on_ticks(batch.ts, batch.symbol, batch.price)
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        batch_rows: int = 100_000,
        candle_interval_s: float | None = None,
        workdir: Path | None = None,
    ) -> None:
        """Check every file up front, reading only schemas and the first rows.

        Args:
            paths: Input files, merged in event time; ties keep this order, then row order.
            batch_rows: Rows per batch (the last batch may be shorter).
            candle_interval_s: Interval of candle tables, used to move each candle to its close
                time. None infers it per file as the smallest positive gap between consecutive
                distinct open times of one symbol, which reads that file's open-time and
                symbol columns once. Binance kline files ignore it: they carry a close time.
            workdir: Existing directory for the temporary merged file; default: the system
                temporary directory.

        Raises:
            DataError: A file is missing, unreadable, of an unsupported kind, lacks a required
                column, has an unusable time or price column, or is a candle table whose
                interval cannot be inferred. The message starts with the file's path.
            ValueError: An argument is out of range.
            TypeError: `paths` is a single path rather than a sequence of paths.
        """
        if isinstance(paths, str):
            raise TypeError("paths must be a sequence of paths, not a single path")
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
        if candle_interval_s is not None and not 0 < candle_interval_s < float("inf"):
            raise ValueError(f"candle_interval_s must be positive, got {candle_interval_s}")
        if workdir is not None and not workdir.is_dir():
            raise ValueError(f"workdir {workdir} is not an existing directory")
        self._batch_rows = batch_rows
        self._workdir = workdir
        opened = (open_history_file(Path(path), candle_interval_s) for path in paths)
        self._files: tuple[HistoryFile, ...] = tuple(f for f in opened if f is not None)
        self._counts: _Counts | None = None

    @property
    def files(self) -> tuple[HistoryFile, ...]:
        """The non-empty input files, in the order given, with their detected layouts."""
        return self._files

    @property
    def total_rows(self) -> int:
        """Number of rows `batches()` yields: input rows minus the skipped ones.

        Known for free once `batches()` has started; before that, the first access counts
        them with one streaming pass over the time, symbol and price columns of every file.
        """
        return self._ensure_counts().rows

    @property
    def skipped(self) -> Mapping[str, int]:
        """Rows dropped by the reader, by reason; every reason is present, possibly with 0.

        Reasons: null_ts, bad_ts, null_symbol, null_price, bad_price ("null" is null or NaN,
        "bad" is present but unparseable or infinite); a row counts under its first reason.
        Computed like `total_rows`.
        """
        return self._ensure_counts().skipped

    def batches(self) -> Generator[TickBatch, None, None]:
        """Yield all rows in event-time order, `batch_rows` at a time.

        The merge and sort run on the first `next()`; the temporary file is removed when the
        generator is exhausted, closed (`close()`) or garbage-collected. Each call starts a new
        replay.

        Raises:
            DataError: A file turned out to be unreadable past the rows checked up front.
        """
        for frame in self._sorted_frames(pl.col("symbol")):
            yield TickBatch(
                ts=frame["ts"].to_numpy(),
                symbol=frame["symbol"].to_list(),
                price=frame["price"].to_numpy(),
            )

    def indexed_batches(self, symbols: Sequence[str]) -> Generator[IndexedTickBatch, None, None]:
        """Yield all rows in event-time order, each symbol as its index in ``symbols``.

        The rows, their order, the batches and the clean-up are those of :meth:`batches`;
        symbols not in ``symbols`` get the index -1.

        Raises:
            DataError: A file turned out to be unreadable past the rows checked up front.
            ValueError: ``symbols`` repeats a name.
        """
        names = tuple(symbols)
        if len(set(names)) != len(names):
            raise ValueError(f"symbols must be distinct, got {list(names)}")
        for frame in self._sorted_frames(_symbol_index(names)):
            yield IndexedTickBatch(
                ts=frame["ts"].to_numpy(),
                idx=frame["symbol"].to_numpy().astype(np.int64, copy=False),
                price=frame["price"].to_numpy(),
                symbols=names,
            )

    def _sorted_frames(self, symbol: pl.Expr) -> Iterator[pl.DataFrame]:
        """The kept rows in event-time order, `batch_rows` at a time, with ``symbol`` as the
        symbol column; the merged file lives in a temporary directory while they are read."""
        if not self._files:
            self._counts = _Counts.of(None)
            return
        with tempfile.TemporaryDirectory(prefix="riskmon-history-", dir=self._workdir) as tmp:
            merged = Path(tmp) / _MERGED_NAME
            self._run(
                lambda: (
                    self._merged()
                    .with_columns(symbol.alias("symbol"))
                    .sort("ts", maintain_order=True, nulls_last=True)
                    .sink_parquet(merged, row_group_size=self._batch_rows, compression="lz4")
                )
            )
            counts = _Counts.of(pl.scan_parquet(merged))
            self._counts = counts
            yield from _read_frames(merged, counts.rows, self._batch_rows)

    def _merged(self) -> pl.LazyFrame:
        return pl.concat([f.frame for f in self._files], how="vertical")

    def _ensure_counts(self) -> _Counts:
        if self._counts is None:
            merged = self._merged() if self._files else None
            self._counts = self._run(lambda: _Counts.of(merged))
        return self._counts

    def _run(self, action: Callable[[], _T]) -> _T:
        """Run a polars action over all files, naming the failing file in any error."""
        try:
            return action()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataError(f"{self._culprit()}: cannot read: {exc}") from exc

    def _culprit(self) -> str:
        """Find which file breaks a full read (slow; only used to word an error)."""
        for file in self._files:
            try:
                file.frame.select(pl.col("reason").max()).collect(engine="streaming")
            except (pl.exceptions.PolarsError, OSError):
                return str(file.path)
        return ", ".join(str(f.path) for f in self._files)


def _read_frames(path: Path, rows: int, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Yield the first `rows` rows of a merged file (the kept ones), `batch_rows` at a time."""
    scan = pl.scan_parquet(path).select("ts", "symbol", "price")
    for offset in range(0, rows, batch_rows):
        yield scan.slice(offset, min(batch_rows, rows - offset)).collect()


def _symbol_index(names: tuple[str, ...]) -> pl.Expr:
    """Each row's symbol as its index in ``names`` (Int32), -1 when absent (or null)."""
    if not names:
        return pl.lit(-1, pl.Int32)
    code = pl.col("symbol").cast(pl.Enum(list(names)), strict=False).to_physical()
    return code.cast(pl.Int32).fill_null(-1)
