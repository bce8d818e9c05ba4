"""Kraken spot websocket **v2** public market data: connection plans and a sans-I/O parser.

v2 frames are JSON objects with prices as JSON numbers (msgspec rejects numbers outside the
float range, so every price is finite): data on ``{"channel": ...}``, request
acknowledgements on ``{"method": ...}``. The v1 API (``wss://ws.kraken.com``, JSON arrays) is a
different protocol: its array frames raise :class:`FeedParseError` here, because seeing one means
the connection points at the wrong endpoint, and a configured v1 URL is rejected up front.

``ticker`` is subscribed with ``event_trigger = "bbo"``, so the mid moves when the best bid or
offer changes (Kraken's default, ``trades``, updates it only when a trade prints); its ``last``
is not a trade print and never prices a trade symbol (``trade`` does). Frames of type
``snapshot`` (state replayed after a subscribe) give quotes marked ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from feeds import limits
from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.urls import split_ws_url, ws_url
from feeds.venue import ConnectionPlan, Parser, VenueSpec
from feeds.venues.fields import (
    WIRE_ERRORS,
    chunks,
    mid_price,
    offered,
    oldest_first,
    parse_rfc3339_or,
    to_json,
)
from monitor.errors import ConfigError

VENUE = "kraken"
DEFAULT_URL = "wss://ws.kraken.com/v2"

_CHANNELS = {PriceKind.TRADE: "trade", PriceKind.MID: "ticker"}
_PING = '{"method":"ping"}'
_V1_HOSTS = frozenset({"ws.kraken.com", "beta-ws.kraken.com"})


# --- wire types ----------------------------------------------------------------------------


class _Frame(msgspec.Struct):
    channel: str | None = None
    kind: str | None = msgspec.field(default=None, name="type")
    data: msgspec.Raw = msgspec.Raw()
    method: str | None = None
    success: bool | None = None
    error: str | None = None
    symbol: str | None = None
    result: msgspec.Raw = msgspec.Raw()


class _AckResult(msgspec.Struct):
    channel: str | None = None
    symbol: str | None = None


class _Trade(msgspec.Struct):
    symbol: str
    price: float
    timestamp: str | None = None


class _Ticker(msgspec.Struct):
    symbol: str
    bid: float | None = None
    ask: float | None = None
    timestamp: str | None = None  # newer v2 servers send it; older ones do not


class _SystemStatus(msgspec.Struct):
    system: str | None = None
    api_version: str | None = None
    version: str | None = None


_FRAME = msgspec.json.Decoder(_Frame)
_ACK_RESULT = msgspec.json.Decoder(_AckResult | None)
_TRADES = msgspec.json.Decoder(list[_Trade])
_TICKERS = msgspec.json.Decoder(list[_Ticker])
_STATUSES = msgspec.json.Decoder(list[_SystemStatus])


# --- parser --------------------------------------------------------------------------------


class KrakenParser:
    """Parses the frames of one Kraken v2 connection (stateless)."""

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame; see :class:`feeds.venue.Parser`.

        Trade quotes carry the trade's ``timestamp``; ticker (mid) quotes carry the ticker's
        ``timestamp`` when the server sends one, else ``recv_ts``. Quotes are emitted only for
        positive mid prices, but trades whatever their price (the router counts and drops
        non-positive ones); quotes are marked ``snapshot`` when the frame is one.

        Raises:
            FeedParseError: the frame is malformed, or is a v1 (JSON array) frame.
        """
        try:
            frame = _FRAME.decode(raw)
            if frame.channel is not None:
                return self._channel(frame, recv_ts)
            if frame.method is not None:
                return self._ack(frame)
        except msgspec.ValidationError as exc:
            hint = " (a JSON array: Kraken v1?)" if "got `array`" in str(exc) else ""
            raise FeedParseError(f"{VENUE}: {exc}{hint}") from None
        except WIRE_ERRORS as exc:
            raise FeedParseError(f"{VENUE}: {exc}") from None
        raise FeedParseError(f"{VENUE}: frame has neither channel nor method")

    def _channel(self, frame: _Frame, recv_ts: float) -> list[FeedEvent]:
        channel = frame.channel
        if channel == "heartbeat":
            return [Status(VENUE, StatusKind.HEARTBEAT)]
        if channel not in ("trade", "ticker", "status"):
            return []  # book, ohlc, instrument, ...: not needed
        if not frame.data:
            raise FeedParseError(f"{VENUE}: {channel} frame without data")
        replay = frame.kind == "snapshot"
        if channel == "trade":
            return _trades(_TRADES.decode(frame.data), recv_ts, replay)
        if channel == "ticker":
            return _tickers(_TICKERS.decode(frame.data), recv_ts, replay)
        return [_status(status) for status in _STATUSES.decode(frame.data)]

    def _ack(self, frame: _Frame) -> list[FeedEvent]:
        if frame.method == "pong":
            return [Status(VENUE, StatusKind.HEARTBEAT, "pong")]
        if frame.method not in ("subscribe", "unsubscribe"):
            return []
        result = _ACK_RESULT.decode(frame.result) if frame.result else None
        symbol = result.symbol if result is not None and result.symbol else frame.symbol
        channel = result.channel if result is not None and result.channel else ""
        if frame.success is not True:
            detail = frame.error or f"{frame.method} failed"
            return [Status(VENUE, StatusKind.ERROR, detail, symbol)]
        if frame.method == "unsubscribe":
            return [Status(VENUE, StatusKind.INFO, f"unsubscribed {channel}".rstrip(), symbol)]
        return [Status(VENUE, StatusKind.SUBSCRIBED, channel, symbol)]


def _trades(trades: list[_Trade], recv_ts: float, replay: bool) -> list[FeedEvent]:
    quotes: list[Quote] = []
    for trade in trades:  # non-positive prices are handed on: the router counts them
        ts = parse_rfc3339_or(trade.timestamp, recv_ts)
        kind, price = PriceKind.TRADE, trade.price
        quotes.append(Quote(VENUE, trade.symbol, kind, price, ts, recv_ts, replay))
    return oldest_first(quotes)


def _tickers(tickers: list[_Ticker], recv_ts: float, replay: bool) -> list[FeedEvent]:
    out: list[FeedEvent] = []
    for ticker in tickers:
        ts = parse_rfc3339_or(ticker.timestamp, recv_ts)
        mid = mid_price(ticker.bid, ticker.ask)
        if mid is not None:
            out.append(Quote(VENUE, ticker.symbol, PriceKind.MID, mid, ts, recv_ts, replay))
    return out


def _status(status: _SystemStatus) -> Status:
    fields = {"system": status.system, "api": status.api_version, "version": status.version}
    detail = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    return Status(VENUE, StatusKind.INFO, detail)


# --- plans ---------------------------------------------------------------------------------


def _frame(method: str, channel: str, symbols: Sequence[str]) -> str:
    params: dict[str, object] = {"channel": channel, "symbol": list(symbols)}
    if method == "subscribe" and channel == "ticker":
        params["event_trigger"] = "bbo"  # a mid that follows the book, not the trades
    return to_json({"method": method, "params": params})


def endpoint(url: str) -> str:
    """The configured URL, used as written; Kraken's v1 endpoint is refused.

    Raises:
        ConfigError: not a ws/wss URL, or the v1 root (``wss://ws.kraken.com``), which speaks
            another protocol.
    """
    parts = split_ws_url(url)
    if parts.hostname in _V1_HOSTS and parts.path.rstrip("/") == "":
        raise ConfigError(
            f"{VENUE}: url {url!r} is the v1 endpoint (another protocol); "
            f'write url = "{parts.scheme}://{parts.netloc}/v2"'
        )
    return ws_url(url)


def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
    """Connection plans for Kraken v2 symbols (e.g. ``"BTC/USD"``): ``trade`` or ``ticker``.

    Raises:
        ConfigError: ``kind`` is neither trade nor mid, or the URL is unusable.
    """
    url, channel = endpoint(url), offered(VENUE, _CHANNELS, kind)
    size = limits.KRAKEN.streams_per_connection
    return [
        ConnectionPlan(url, (_frame("subscribe", channel, chunk),), chunk)
        for chunk in chunks(list(dict.fromkeys(instruments)), size)
    ]


def resubscribe(instruments: Sequence[str], kind: PriceKind) -> list[str]:
    """Unsubscribe then subscribe frames that refresh ``instruments`` on a live connection."""
    channel, symbols = offered(VENUE, _CHANNELS, kind), list(dict.fromkeys(instruments))
    return [_frame("unsubscribe", channel, symbols), _frame("subscribe", channel, symbols)]


def _new_parser() -> Parser:
    return KrakenParser()


KRAKEN = VenueSpec(
    name=VENUE,
    default_url=DEFAULT_URL,
    plan=plan,
    new_parser=_new_parser,
    # Heartbeats arrive about once a second while subscribed; after idle_ping_s of silence an
    # application-level ping (answered by {"method":"pong"}) tells a dead link from a quiet one.
    idle_ping=_PING,
    kinds=frozenset({PriceKind.TRADE, PriceKind.MID}),
    resubscribe=resubscribe,
    limits=limits.KRAKEN,
    endpoint=endpoint,
)
