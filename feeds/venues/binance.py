"""Binance spot and USD-M futures: combined-stream connection plans and a sans-I/O parser.

Streams are named in the URL (``/stream?streams=btcusdt@trade/btcusdt@bookTicker``), so no
subscribe frame is needed; every message then arrives wrapped as ``{"stream":..., "data":...}``.
The parser also accepts unwrapped raw-stream frames. USD-M routes streams by path: ``/public``
carries ``@bookTicker`` and depth, ``/market`` carries ``@aggTrade`` and ``@markPrice``; the root
URL accepts ``/market`` streams and then sends nothing, so root URLs are never built.

A configured URL is the host root: the documented paths (``/stream``, ``/ws``, and for USD-M the
routes ``/market``, ``/public``, ``/private``) are stripped so that they are not doubled; a URL
that names streams itself (a query, ``/ws/btcusdt@trade``) is rejected with the URL to write.
Spot carries at most 1024 streams per connection, USD-M 200 (:mod:`feeds.limits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from feeds import limits
from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.urls import split_ws_url, strip_suffixes
from feeds.venue import ConnectionPlan, VenueSpec
from feeds.venues.fields import WIRE_ERRORS, FieldReader, chunks, offered, to_json
from monitor.errors import ConfigError

SPOT_URL: Final = "wss://stream.binance.com:9443"
USDM_URL: Final = "wss://fstream.binance.com"
MAX_LIFETIME_S: Final = 23.5 * 3600.0  # the venue cuts every connection at 24 h
UNSUBSCRIBE_ID: Final = 1
SUBSCRIBE_ID: Final = 2

Route = tuple[str, str]  # (URL path before /stream, stream name suffix)

SPOT_ROUTES: Final[Mapping[PriceKind, Route]] = {
    PriceKind.TRADE: ("", "trade"),
    PriceKind.MID: ("", "bookTicker"),
}
USDM_ROUTES: Final[Mapping[PriceKind, Route]] = {
    PriceKind.TRADE: ("/market", "aggTrade"),
    PriceKind.MID: ("/public", "bookTicker"),
    PriceKind.MARK: ("/market", "markPrice@1s"),
    PriceKind.INDEX: ("/market", "markPrice@1s"),  # markPriceUpdate carries the index too
}
SPOT_PATHS: Final = ("/stream", "/ws")
USDM_PATHS: Final = ("/stream", "/ws", "/market", "/public", "/private")
_BOOK_KEYS: Final = frozenset({"u", "s", "b", "a"})
_READ: Final = FieldReader("binance")


class _TradeData(msgspec.Struct, frozen=True, gc=False):
    """The fields of a ``trade`` or ``aggTrade`` event that make a quote (others are skipped)."""

    e: Literal["trade", "aggTrade"]
    s: str
    p: str
    T: int


class _CombinedTrade(msgspec.Struct, frozen=True, gc=False):
    """A combined-stream frame carrying a trade: ``{"stream": ..., "data": {...}}``."""

    stream: str
    data: _TradeData


_TRADE_DECODER: Final = msgspec.json.Decoder(_CombinedTrade)
# What a frame that is not a well-formed trade raises on the fast path: it then takes the
# general path, which accepts or rejects it with the same result as always.
_NOT_A_PLAIN_TRADE: Final = (*WIRE_ERRORS, ValueError, OverflowError)


def stream_names(
    routes: Mapping[PriceKind, Route], instruments: Sequence[str], kind: PriceKind
) -> list[str]:
    """Lower-case stream names, e.g. ``btcusdt@bookTicker``, one per distinct instrument."""
    suffix = routes[kind][1]
    return [f"{symbol.lower()}@{suffix}" for symbol in dict.fromkeys(instruments)]


def plan_connections(
    venue: str,
    routes: Mapping[PriceKind, Route],
    url: str,
    instruments: Sequence[str],
    kind: PriceKind,
    max_streams: int = limits.BINANCE.streams_per_connection,
) -> list[ConnectionPlan]:
    """Combined-stream URLs, at most ``max_streams`` each, reconnecting before the 24 h cut.

    Args:
        venue: venue name, for error messages.
        routes: price kind -> (URL path, stream suffix).
        url: the host root, e.g. ``wss://fstream.binance.com`` (no path).
        instruments: native symbols, e.g. ``BTCUSDT``.
        kind: the price kind to subscribe.
        max_streams: the venue's streams-per-connection limit.

    Raises:
        ConfigError: the venue does not offer ``kind``.
    """
    path = offered(venue, routes, kind)[0]
    plans = []
    for chunk in chunks(list(dict.fromkeys(instruments)), max_streams):
        streams = "/".join(stream_names(routes, chunk, kind))
        plans.append(
            ConnectionPlan(
                url=f"{url.rstrip('/')}{path}/stream?streams={streams}",
                subscribe=(),
                instruments=chunk,
                max_lifetime_s=MAX_LIFETIME_S,
            )
        )
    return plans


def resubscribe_frames(
    venue: str, routes: Mapping[PriceKind, Route], instruments: Sequence[str], kind: PriceKind
) -> list[str]:
    """UNSUBSCRIBE then SUBSCRIBE frames for the streams of ``instruments`` on a live connection.

    The ids are fixed (UNSUBSCRIBE_ID, SUBSCRIBE_ID) so that the parser can tell the two acks
    apart without keeping state.
    """
    offered(venue, routes, kind)
    params = stream_names(routes, instruments, kind)
    return [
        _request("UNSUBSCRIBE", params, UNSUBSCRIBE_ID),
        _request("SUBSCRIBE", params, SUBSCRIBE_ID),
    ]


def host_root(venue: str, url: str, documented_paths: Sequence[str]) -> str:
    """The URL that plans build on: ``url`` without the documented paths it may end with.

    ``wss://stream.binance.com:9443/stream`` (the form the docs show) becomes
    ``wss://stream.binance.com:9443``, so that ``/stream?streams=...`` is not doubled; a proxy
    prefix such as ``/binance`` is kept.

    Raises:
        ConfigError: not a ws/wss URL, or a URL that names streams (a query, ``@`` in the path).
    """
    parts = split_ws_url(url)
    root = f"{parts.scheme}://{parts.netloc}"
    if parts.query or "@" in parts.path:
        kept = parts.path.split("@")[0].rsplit("/", 1)[0] if "@" in parts.path else parts.path
        suggestion = root + strip_suffixes(kept, documented_paths)
        raise ConfigError(
            f"{venue}: url {url!r} names streams; riskmon names them from the feed's symbols, "
            f'so write url = "{suggestion}"'
        )
    return root + strip_suffixes(parts.path, documented_paths)


def _request(method: str, params: list[str], request_id: int) -> str:
    return to_json({"method": method, "params": params, "id": request_id})


class BinanceParser:
    """Turns one Binance frame into quotes and status events; raises FeedParseError.

    Trades (``trade``, ``aggTrade``) give TRADE at the trade time ``T``; ``bookTicker`` gives MID
    at ``T`` (futures) or the receive time (spot frames carry no time); ``markPriceUpdate`` gives
    MARK and INDEX at the event time ``E`` (its ``T`` is the next funding time). Depth, kline and
    unknown events give ``[]``. A non-positive bid or ask (an empty book side) counts as absent;
    non-positive trade, mark and index prices are handed on (the router counts and drops them).

    Trade frames, the bulk of a trade feed, are first decoded straight into a msgspec struct
    (no dict, no per-field checks in Python); anything else, malformed frames included, takes
    the general path, so the result is the same either way. The only state is whether to try
    that fast path: it is tried while the connection carries trades.

    Args:
        venue: venue name on the quotes.
        fast_trades: try the fast path (tests turn it off to compare the two).
    """

    def __init__(self, venue: str, *, fast_trades: bool = True) -> None:
        self._venue = venue
        self._fast_trades = fast_trades
        self._try_fast = fast_trades
        self._handlers: dict[str, Callable[[dict[str, Any], float], list[FeedEvent]]] = {
            "trade": self._trade,
            "aggTrade": self._trade,
            "bookTicker": self._book_ticker,
            "markPriceUpdate": self._mark_price,
        }

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame received at ``recv_ts`` (Unix seconds)."""
        if self._try_fast:
            quotes = self._fast_trade(raw, recv_ts)
            if quotes is not None:
                return quotes
        return self._parse_message(raw, recv_ts)

    def _fast_trade(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent] | None:
        """The quote of a well-formed combined-stream trade frame, or None to parse generally."""
        try:
            data = _TRADE_DECODER.decode(raw).data
            price, ts = float(data.p), float(data.T) / 1000.0
        except _NOT_A_PLAIN_TRADE:
            return None
        if not (data.s and math.isfinite(price)):
            return None
        return [Quote(self._venue, data.s, PriceKind.TRADE, price, ts, recv_ts)]

    def _parse_message(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """The general path: any frame, decoded into dicts and checked field by field."""
        message = _READ.decode_object(raw)
        if "stream" in message and "data" in message:
            data = message["data"]
            if not isinstance(data, dict):
                raise FeedParseError(f"binance: 'data' is not an object: {data!r:.80}")
            message = data
        event = message.get("e")
        if event is None:
            return self._untyped(message, recv_ts)
        if not isinstance(event, str):
            raise FeedParseError(f"binance: event type is not a string: {event!r:.80}")
        handler = self._handlers.get(event)
        return handler(message, recv_ts) if handler else []

    def _untyped(self, message: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        """Replies to requests, errors, and spot bookTicker frames (which carry no ``e``)."""
        if "result" in message and "id" in message:
            return [self._ack(message)]
        if "code" in message or "error" in message:
            error = message.get("error", message)
            code, msg = (
                (error.get("code"), error.get("msg")) if isinstance(error, dict) else ("", error)
            )
            return [Status(self._venue, StatusKind.ERROR, detail=f"{code}: {msg}")]
        if message.keys() >= _BOOK_KEYS:
            return self._book_ticker(message, recv_ts)
        return []

    def _ack(self, message: dict[str, Any]) -> Status:
        result, request_id = message["result"], message["id"]
        if result is not None:
            return Status(
                self._venue, StatusKind.INFO, detail=f"reply {request_id!r:.40}: {result!r:.200}"
            )
        if request_id == UNSUBSCRIBE_ID:
            return Status(self._venue, StatusKind.INFO, detail=f"unsubscribed (id {request_id})")
        return Status(self._venue, StatusKind.SUBSCRIBED, detail=f"id {request_id!r:.40}")

    def _trade(self, data: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        self._try_fast = self._fast_trades
        symbol, price = _READ.text(data, "s"), _READ.traded_price(data, "p")
        ts = _READ.ms(data, "T")
        return [Quote(self._venue, symbol, PriceKind.TRADE, price, ts, recv_ts)]

    def _book_ticker(self, data: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        self._try_fast = False  # a book-ticker connection: trades are not expected
        symbol = _READ.text(data, "s")
        bid, ask = _READ.price(data, "b"), _READ.price(data, "a")
        time_key = "T" if "T" in data else "E" if "E" in data else None  # spot: neither
        ts = _READ.ms(data, time_key) if time_key else recv_ts
        if bid is None or ask is None:
            return []
        return [Quote(self._venue, symbol, PriceKind.MID, (bid + ask) / 2.0, ts, recv_ts)]

    def _mark_price(self, data: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        self._try_fast = False  # a mark-price connection: trades are not expected
        symbol, ts = _READ.text(data, "s"), _READ.ms(data, "E")
        mark, index = _READ.traded_price(data, "p"), _READ.traded_price(data, "i")
        return [
            Quote(self._venue, symbol, kind, price, ts, recv_ts)
            for kind, price in ((PriceKind.MARK, mark), (PriceKind.INDEX, index))
        ]


def _spec(
    name: str,
    url: str,
    routes: Mapping[PriceKind, Route],
    venue_limits: limits.VenueLimits,
    paths: Sequence[str],
) -> VenueSpec:
    def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
        root = host_root(name, url, paths)
        max_streams = venue_limits.streams_per_connection
        return plan_connections(name, routes, root, instruments, kind, max_streams)

    def resubscribe(instruments: Sequence[str], kind: PriceKind) -> list[str]:
        return resubscribe_frames(name, routes, instruments, kind)

    def endpoint(url: str) -> str:
        return host_root(name, url, paths)

    return VenueSpec(
        name=name,
        default_url=url,
        plan=plan,
        new_parser=lambda: BinanceParser(name),
        kinds=frozenset(routes),
        resubscribe=resubscribe,
        limits=venue_limits,
        endpoint=endpoint,
    )


BINANCE: Final = _spec("binance", SPOT_URL, SPOT_ROUTES, limits.BINANCE, SPOT_PATHS)
BINANCE_USDM: Final = _spec("binance-usdm", USDM_URL, USDM_ROUTES, limits.BINANCE_USDM, USDM_PATHS)
