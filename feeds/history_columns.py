"""Polars expressions that turn raw time and price columns into Float64 seconds and prices.

Everything here is pure: functions take a column expression (and, for string columns, a small
sample of values) and return an expression or a verdict; nothing reads a file.

Epoch numbers carry no unit, so the unit is detected **per value** by magnitude: above 1e17 is
nanoseconds, above 1e14 microseconds, above 1e11 milliseconds, anything else seconds. For
timestamps between 1973 and 5138 these ranges do not overlap, so per-value detection agrees with
per-file detection on every realistic file, and it also reads files that mix units (for example
Binance kline files from 2024, in milliseconds, concatenated with files from 2025, in
microseconds). The same rule applies to float columns, which catches integer milliseconds that a
missing value turned into floats.
"""

from __future__ import annotations

from enum import Enum

import polars as pl

NS_ABOVE = 1e17
US_ABOVE = 1e14
MS_ABOVE = 1e11

TIME_EXPECTED = "a Datetime, a Date, an integer or float epoch, or ISO-8601 strings"

# Separators are normalised to a space first, so these cover "T" and " ", optional fractional
# seconds, "Z" or numeric offsets, and bare dates. Values without an offset are UTC.
_ISO_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M%#z",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_PER_SECOND = {"ns": 1e9, "us": 1e6, "ms": 1e3}
_SECONDS_PER_DAY = 86_400.0


class StringTime(Enum):
    """How a column of strings holds its timestamps, decided from a sample of values."""

    INTEGER = "integer"
    FLOAT = "float"
    ISO = "iso"


def epoch_seconds(value: pl.Expr) -> pl.Expr:
    """Convert numeric epoch values to Float64 seconds, detecting the unit per value.

    Args:
        value: Integers or floats in seconds, ms, us or ns since 1970-01-01 UTC.

    Returns:
        A Float64 expression in seconds; null stays null and NaN stays NaN.
    """
    seconds = value.cast(pl.Float64)
    magnitude = seconds.abs()
    return (
        pl.when(magnitude > NS_ABOVE)
        .then(seconds / 1e9)
        .when(magnitude > US_ABOVE)
        .then(seconds / 1e6)
        .when(magnitude > MS_ABOVE)
        .then(seconds / 1e3)
        .otherwise(seconds)
    )


def datetime_seconds(name: str, dtype: pl.Datetime) -> pl.Expr:
    """Convert a Datetime column (any unit; naive means UTC) to Float64 epoch seconds."""
    unit = dtype.time_unit or "us"
    return pl.col(name).dt.epoch(unit).cast(pl.Float64) / _PER_SECOND[unit]


def date_seconds(name: str) -> pl.Expr:
    """Convert a Date column to Float64 epoch seconds at midnight UTC."""
    return pl.col(name).cast(pl.Int32).cast(pl.Float64) * _SECONDS_PER_DAY


def iso_seconds(name: str) -> pl.Expr:
    """Parse ISO-8601 strings to Float64 epoch seconds; unparseable values become null."""
    text = pl.col(name).str.strip_chars().str.replace("T", " ", literal=True)
    parsed = pl.coalesce(
        [
            text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
            for fmt in _ISO_FORMATS
        ]
    )
    return parsed.dt.epoch("us").cast(pl.Float64) / 1e6


def string_time_seconds(name: str, kind: StringTime) -> pl.Expr:
    """Convert a string time column of the given kind to Float64 epoch seconds."""
    if kind is StringTime.ISO:
        return iso_seconds(name)
    target = pl.Int64 if kind is StringTime.INTEGER else pl.Float64
    return epoch_seconds(pl.col(name).cast(target, strict=False))


def classify_string_times(sample: pl.Series) -> StringTime | None:
    """Decide how a string column holds timestamps from a sample of its values.

    Args:
        sample: The first values of the column, as strings.

    Returns:
        INTEGER if every value is an integer, FLOAT if some are numbers, ISO if some parse as
        ISO-8601, FLOAT for a sample without values, and None if no value is a timestamp.
    """
    values = sample.drop_nulls()
    if values.is_empty():
        return StringTime.FLOAT
    if values.cast(pl.Int64, strict=False).null_count() == 0:
        return StringTime.INTEGER
    if values.cast(pl.Float64, strict=False).null_count() < values.len():
        return StringTime.FLOAT
    parsed = values.to_frame("v").select(iso_seconds("v")).to_series()
    return StringTime.ISO if parsed.null_count() < values.len() else None


def has_numbers(sample: pl.Series) -> bool:
    """Tell whether a string sample holds numbers: true if it is empty or any value parses."""
    values = sample.drop_nulls()
    return values.is_empty() or values.cast(pl.Float64, strict=False).null_count() < values.len()


def first_non_numeric(sample: pl.Series) -> str:
    """Return the first value of a string sample that does not parse as a number, or ''."""
    values = sample.drop_nulls()
    bad = values.filter(values.cast(pl.Float64, strict=False).is_null())
    return str(bad[0]) if bad.len() else ""
