"""Tests for feeds.venues.fields: the field readers, timestamps and plan helpers venues share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.events import FeedParseError, PriceKind, Quote
from feeds.venues.fields import (
    FieldReader,
    chunks,
    mid_price,
    offered,
    oldest_first,
    parse_rfc3339,
    parse_rfc3339_or,
    to_json,
)
from monitor.errors import ConfigError

READ = FieldReader("venue")

# --- field readers ---------------------------------------------------------------------------


def test_decode_object() -> None:
    """A JSON object decodes to a dict, from text or bytes."""
    assert READ.decode_object('{"a":[1,"2"]}') == {"a": [1, "2"]}
    assert READ.decode_object(b'{"a":null}') == {"a": None}


@pytest.mark.parametrize("raw", [b"\xff", "not json", "[1]", "null", '"text"', "[" * 10_000])
def test_decode_object_rejects(raw: str | bytes) -> None:
    """Undecodable frames and JSON values other than objects raise FeedParseError."""
    with pytest.raises(FeedParseError, match=r"^venue: "):
        READ.decode_object(raw)


@pytest.mark.parametrize(
    ("value", "price"),
    [("1.5", 1.5), (2, 2.0), (0.25, 0.25), ("", None), ("0", None), (-1, None), ("-0.5", None)],
)
def test_price_is_none_when_empty_or_non_positive(value: object, price: float | None) -> None:
    """Decimal strings and JSON numbers are prices; empty and non-positive ones are absent."""
    assert READ.price({"p": value}, "p") == price


@pytest.mark.parametrize("value", [None, True, "abc", "nan", "inf", "1e999", 10**400, [1], {}])
def test_malformed_numbers_raise(value: object) -> None:
    """Booleans, non-numeric strings, non-finite numbers and containers are malformed."""
    with pytest.raises(FeedParseError, match=r"^venue: 'p'"):
        READ.price({"p": value}, "p")


def test_missing_price_raises() -> None:
    """A price field is required (venues where absence means "no price" say so themselves)."""
    with pytest.raises(FeedParseError):
        READ.price({}, "p")


def test_ms_text_and_nested() -> None:
    """Millisecond times become seconds; text and objects must have the right type."""
    data = {"T": "1672515782136", "s": "BTCUSDT", "d": {"x": 1}, "e": "", "n": 5}
    assert READ.ms(data, "T") == 1672515782.136
    assert READ.text(data, "s") == "BTCUSDT"
    assert READ.nested(data, "d") == {"x": 1}
    for read, key in ((READ.text, "e"), (READ.text, "n"), (READ.nested, "n"), (READ.ms, "s")):
        with pytest.raises(FeedParseError):
            read(data, key)


# --- prices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bid", "ask", "mid"),
    [(1.0, 3.0, 2.0), (2.0, 2.0, 2.0), (3.0, 1.0, None), (0.0, 1.0, None), (None, 1.0, None)],
)
def test_mid_price(bid: float | None, ask: float | None, mid: float | None) -> None:
    """A mid needs both sides, a positive bid and a book that is not crossed."""
    assert mid_price(bid, ask) == mid


def test_oldest_first() -> None:
    """Quotes come out in event-time order, ties in their given order."""
    late, early, tie = (
        Quote("v", name, PriceKind.TRADE, 1.0, ts, 9.0)
        for name, ts in (("a", 2.0), ("b", 1.0), ("c", 2.0))
    )
    assert oldest_first([late, early, tie]) == [early, late, tie]


# --- plans -----------------------------------------------------------------------------------


def test_offered() -> None:
    """A kind's entry, or a ConfigError naming the kinds the venue offers."""
    table = {PriceKind.TRADE: "trades", PriceKind.MID: "tickers"}
    assert offered("venue", table, PriceKind.MID) == "tickers"
    with pytest.raises(
        ConfigError, match="venue: price kind 'mark' is not offered; use mid, trade"
    ):
        offered("venue", table, PriceKind.MARK)


def test_chunks_and_to_json() -> None:
    """Chunks keep order and size; frames are compact JSON."""
    assert chunks([1, 2, 3, 4, 5], 2) == [(1, 2), (3, 4), (5,)]
    assert chunks([], 3) == []
    assert to_json({"op": "subscribe", "args": ("a", "b")}) == '{"op":"subscribe","args":["a","b"]}'


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2023-02-09T20:32:50.714964855Z", 1675974770.714964855),
        ("2023-02-09T20:32:50Z", 1675974770.0),
        ("2023-02-09T20:32:50.5+00:00", 1675974770.5),
        ("2023-02-09T22:32:50.5+02:00", 1675974770.5),
        ("2023-02-09T18:02:50-02:30", 1675974770.0),
        ("2016-12-31T23:59:60Z", 1483228800.0),
    ],
)
def test_parse_rfc3339(text: str, want: float) -> None:
    """Nanoseconds, no fraction, numeric offsets and a leap second all parse."""
    assert parse_rfc3339(text) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2023-02-09",
        "2023-02-09T20:32:50",
        "2023-02-09T20:32:50.Z",
        "2023-13-09T20:32:50Z",
        "2023-02-30T20:32:50Z",
        "2023-0x-09T20:32:50Z",
        "2023-02-09T24:32:50Z",
        "2023-02-09T20:32:5xZ",
        "2023-02-09T20:32:50.1_2Z",
        "2023-02-09T20:32:50+0000",
        "２０２３-02-09T20:32:50Z",
        "2023-02-09 20:32:50 +0000 UTC",
    ],
)
def test_parse_rfc3339_rejects(text: str) -> None:
    """Anything but an RFC 3339 timestamp raises FeedParseError."""
    with pytest.raises(FeedParseError):
        parse_rfc3339(text)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)))
def test_parse_rfc3339_agrees_with_datetime(moment: datetime) -> None:
    """For any microsecond UTC time, the fast parser equals datetime's answer."""
    text = moment.isoformat(timespec="microseconds") + "Z"
    assert parse_rfc3339(text) == pytest.approx(moment.replace(tzinfo=UTC).timestamp(), abs=1e-6)


def test_parse_rfc3339_or() -> None:
    """Absent or empty timestamps give the default; others must parse."""
    assert parse_rfc3339_or(None, 7.0) == parse_rfc3339_or("", 7.0) == 7.0
    assert parse_rfc3339_or("1970-01-01T00:00:01Z", 7.0) == 1.0
    with pytest.raises(FeedParseError):
        parse_rfc3339_or("1690000000.5", 7.0)
