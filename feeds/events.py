"""What a venue parser returns: quotes, option quotes, status events and replies to send.

Parsers are pure: they never do I/O. A value here *tells* the session what happened (a gap, a
maintenance notice) or what to send back (a heartbeat answer); the session acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.errors import RiskmonError


class FeedParseError(RiskmonError):
    """A frame could not be understood. The session counts it and drops the frame."""


class PriceKind(StrEnum):
    """Which price a quote carries."""

    TRADE = "trade"
    MID = "mid"
    MARK = "mark"
    INDEX = "index"


@dataclass(frozen=True, slots=True)
class Quote:
    """One price observation from a venue.

    Attributes:
        venue: venue name, e.g. "binance".
        instrument: the venue's native instrument name, e.g. "BTCUSDT", "BTC-USD".
        kind: trade, mid (from best bid/ask), mark or index.
        price: the price.
        ts: exchange event time, Unix seconds (the receive time when the venue sends none).
        recv_ts: local receive time, Unix seconds.
        snapshot: replayed state that follows a (re)subscription (Coinbase and Kraken
            ``snapshot`` messages), not a live update: it never makes the instrument fresh.
    """

    venue: str
    instrument: str
    kind: PriceKind
    price: float
    ts: float
    recv_ts: float
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Greeks:
    """Option sensitivities as the venue publishes them (Deribit: in coin, vega per 1% vol)."""

    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """A derivatives ticker with mark, implied volatility and greeks (Deribit).

    Attributes:
        venue, instrument, ts, recv_ts: as for :class:`Quote`.
        mark_price: mark price (options: in coin).
        mark_iv, bid_iv, ask_iv: implied volatilities in percent (None when absent).
        underlying_price, index_price: prices of the underlying and the index.
        greeks: None for futures.
    """

    venue: str
    instrument: str
    ts: float
    recv_ts: float
    mark_price: float
    mark_iv: float | None
    bid_iv: float | None
    ask_iv: float | None
    underlying_price: float | None
    index_price: float | None
    greeks: Greeks | None


class StatusKind(StrEnum):
    """What a status event reports."""

    SUBSCRIBED = "subscribed"
    HEARTBEAT = "heartbeat"
    GAP = "gap"
    ERROR = "error"
    MAINTENANCE = "maintenance"  # the venue will disconnect soon: reconnect cleanly
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Status:
    """A non-price event. ``instrument`` is set when it concerns one instrument."""

    venue: str
    kind: StatusKind
    detail: str = ""
    instrument: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A text frame the session must send back at once (e.g. Deribit's test_request)."""

    payload: str


FeedEvent = Quote | OptionQuote | Status | Reply
