"""Pure helpers the venue modules share: field readers, timestamps, mids and plan building.

Venues that decode frames into plain dicts (Binance, Bybit, OKX) read fields through a
:class:`FieldReader`; venues that decode into msgspec structs (Coinbase, Kraken, Deribit) let
msgspec check types and translate :data:`WIRE_ERRORS`. Every malformed value raises
:class:`~feeds.events.FeedParseError`; a missing price kind in a plan raises ``ConfigError``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec

from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote
from monitor.errors import ConfigError

T = TypeVar("T")

WIRE_ERRORS: Final = (msgspec.MsgspecError, RecursionError, UnicodeError)
"""What decoding a malformed frame into msgspec structs raises: translate it to FeedParseError."""


# --- fields of dict frames -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldReader:
    """Reads and checks the fields of JSON frames decoded into dicts; errors name ``venue``.

    Numbers may be JSON numbers or decimal strings; booleans, non-finite values and other types
    are malformed. A price that is empty or non-positive (an empty side of the book) is None.
    """

    venue: str

    def decode_object(self, raw: str | bytes) -> dict[str, Any]:
        """A JSON object from a frame, or FeedParseError."""
        try:
            message = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeError, RecursionError, TypeError) as exc:
            raise FeedParseError(f"{self.venue}: undecodable frame: {exc}") from exc
        if not isinstance(message, dict):
            raise FeedParseError(f"{self.venue}: frame is not a JSON object: {message!r:.80}")
        return message

    def nested(self, data: Mapping[str, Any], key: str) -> dict[str, Any]:
        """A required nested JSON object."""
        value = data.get(key)
        if not isinstance(value, dict):
            raise FeedParseError(f"{self.venue}: {key!r} must be an object, got {value!r:.80}")
        return value

    def text(self, data: Mapping[str, Any], key: str) -> str:
        """A required non-empty string."""
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise FeedParseError(
                f"{self.venue}: {key!r} must be a non-empty string, got {value!r:.80}"
            )
        return value

    def to_number(self, value: object, what: str) -> float:
        """A finite number given as a JSON number or a decimal string; ``what`` names it."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FeedParseError(f"{self.venue}: {what!r} must be a number, got {value!r:.80}")
        try:
            number = float(value)
        except (ValueError, OverflowError) as exc:
            raise FeedParseError(f"{self.venue}: {what!r} is not a number: {value!r:.80}") from exc
        if not math.isfinite(number):
            raise FeedParseError(f"{self.venue}: {what!r} is not finite: {value!r:.80}")
        return number

    def to_price(self, value: object, what: str) -> float | None:
        """A price; None when empty or non-positive."""
        if value == "":
            return None
        price = self.to_number(value, what)
        return price if price > 0.0 else None

    def price(self, data: Mapping[str, Any], key: str) -> float | None:
        """A required price field; None when empty or non-positive."""
        return self.to_price(data.get(key), key)

    def traded_price(self, data: Mapping[str, Any], key: str) -> float:
        """A required trade (or mark) price as sent, zero and negative values included.

        Unlike a book side, a trade has no "empty" price: a non-positive one is a bad value,
        handed on so that the router counts it (``non_positive``) instead of it vanishing.
        """
        return self.to_number(data.get(key), key)

    def ms(self, data: Mapping[str, Any], key: str) -> float:
        """A required millisecond timestamp, as Unix seconds."""
        return self.to_number(data.get(key), key) / 1000.0


# --- prices ----------------------------------------------------------------------------------


def mid_price(bid: float | None, ask: float | None) -> float | None:
    """The mid of a best bid and ask; None unless both are present and ``0 < bid <= ask``."""
    if bid is None or ask is None or not 0.0 < bid <= ask:
        return None
    return (bid + ask) / 2.0


def oldest_first(quotes: Iterable[Quote]) -> list[FeedEvent]:
    """Quotes in event-time order (trade snapshots list the newest first)."""
    ordered = sorted(quotes, key=lambda quote: quote.ts)
    return list(ordered)  # as list[FeedEvent], which list[Quote] is not (lists are invariant)


# --- timestamps ------------------------------------------------------------------------------

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=64)
def _midnight_s(date: str) -> float:
    """Unix seconds of 00:00 UTC on ``YYYY-MM-DD`` (cached: frames share a handful of dates)."""
    if len(date) != 10 or date[4] != "-" or date[7] != "-":
        raise FeedParseError(f"bad date {date!r}")
    year, month, day = date[0:4], date[5:7], date[8:10]
    if not _all_digits(year, month, day):
        raise FeedParseError(f"bad date {date!r}")
    try:
        ordinal = _dt.date(int(year), int(month), int(day)).toordinal()
    except ValueError as exc:
        raise FeedParseError(f"bad date {date!r}") from exc
    return float((ordinal - _EPOCH_ORDINAL) * 86400)


def _all_digits(*parts: str) -> bool:
    return all(part.isascii() and part.isdigit() for part in parts)


def _offset_s(text: str) -> tuple[str, float]:
    """Split an RFC 3339 time into (clock, UTC offset in seconds)."""
    if text[-1:] in ("Z", "z"):
        return text[:-1], 0.0
    sign, hours, colon, minutes = text[-6:-5], text[-5:-3], text[-3:-2], text[-2:]
    if sign not in ("+", "-") or colon != ":" or not _all_digits(hours, minutes):
        raise FeedParseError(f"timestamp {text!r} has no UTC offset")
    offset = int(hours) * 3600.0 + int(minutes) * 60.0
    return text[:-6], offset if sign == "+" else -offset


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 / ISO-8601 UTC timestamp into Unix seconds.

    Accepts any number of fractional digits (Coinbase sends nanoseconds, e.g.
    ``"2023-02-09T20:32:50.714964855Z"``) and a ``Z`` or ``+HH:MM`` offset.

    Args:
        text: the timestamp.

    Returns:
        Unix seconds as a float (sub-microsecond digits are kept as far as a float allows).

    Raises:
        FeedParseError: the text is not such a timestamp.
    """
    if len(text) < 20 or text[10] not in ("T", "t", " "):
        raise FeedParseError(f"bad timestamp {text!r}")
    clock, offset = _offset_s(text[11:])
    hms, dot, fraction = clock.partition(".")
    if len(hms) != 8 or hms[2] != ":" or hms[5] != ":" or (dot and not fraction):
        raise FeedParseError(f"bad timestamp {text!r}")
    hour, minute, second = hms[0:2], hms[3:5], hms[6:8]
    if not _all_digits(hour, minute, second) or (fraction and not _all_digits(fraction)):
        raise FeedParseError(f"bad timestamp {text!r}")
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 60:  # 60: a leap second
        raise FeedParseError(f"bad timestamp {text!r}")
    frac_s = float("0." + fraction[:12]) if fraction else 0.0
    return _midnight_s(text[:10]) + h * 3600 + m * 60 + s + frac_s - offset


def parse_rfc3339_or(text: str | None, default: float) -> float:
    """An optional RFC 3339 timestamp as Unix seconds; ``default`` when absent or empty."""
    return parse_rfc3339(text) if text else default


# --- plans -----------------------------------------------------------------------------------


def offered(venue: str, table: Mapping[PriceKind, T], kind: PriceKind) -> T:
    """The venue's entry for ``kind`` (a channel, topic, route), or ConfigError.

    Raises:
        ConfigError: the venue does not offer ``kind``; the message names the kinds it offers.
    """
    try:
        return table[kind]
    except KeyError:
        kinds = ", ".join(sorted(table))
        raise ConfigError(f"{venue}: price kind '{kind}' is not offered; use {kinds}") from None


def chunks(items: Sequence[T], size: int) -> list[tuple[T, ...]]:
    """``items`` in order, in tuples of at most ``size`` (venue limits per frame or socket)."""
    return [tuple(items[start : start + size]) for start in range(0, len(items), size)]


def to_json(message: object) -> str:
    """A frame to send: ``message`` as compact JSON text."""
    return msgspec.json.encode(message).decode()
