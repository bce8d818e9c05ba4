"""Coinbase Advanced Trade public market data: connection plans and a sans-I/O parser.

One subscribe frame per channel (``market_trades`` for trade prices, ``ticker`` for best bid/ask)
plus, always, the ``heartbeats`` channel: Coinbase closes channels of quiet products after
60-90 s without updates, and heartbeats (one a second) keep the connection alive.

``sequence_num`` counts frames per *connection* across all channels, so the parser (one per
connection) reports a jump as ``Status(GAP)``: the session decides how to resync.

After each subscribe Coinbase replays state as events of type ``snapshot`` (recent trades, the
current ticker): their quotes are marked ``snapshot`` so that they never make a quiet product
look fresh. A trade symbol is priced by ``market_trades`` only: the ticker's ``price`` (the last
trade, repeated on every ticker update) is not a trade print.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from feeds import limits
from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venue import ConnectionPlan, Parser, VenueSpec
from feeds.venues.fields import (
    WIRE_ERRORS,
    FieldReader,
    chunks,
    mid_price,
    offered,
    oldest_first,
    parse_rfc3339,
    parse_rfc3339_or,
    to_json,
)

VENUE = "coinbase"
DEFAULT_URL = "wss://advanced-trade-ws.coinbase.com"

_CHANNELS = {PriceKind.TRADE: "market_trades", PriceKind.MID: "ticker"}
_HEARTBEATS = "heartbeats"
_SNAPSHOT = "snapshot"
# Unauthenticated clients may send 8 messages per second per IP; leave room for other connections.
_SUBSCRIBE_RATE_HZ = 4.0
_READ = FieldReader(VENUE)


# --- wire types (decoded lazily: level2 and candles frames never get past the envelope) -------


class _Envelope(msgspec.Struct):
    channel: str | None = None
    kind: str | None = msgspec.field(default=None, name="type")
    message: str | None = None
    sequence_num: int | None = None
    timestamp: str | None = None
    events: msgspec.Raw = msgspec.Raw()


class _Trade(msgspec.Struct):
    product_id: str
    price: str
    time: str | None = None


class _TradesEvent(msgspec.Struct):
    kind: str | None = msgspec.field(default=None, name="type")
    trades: list[_Trade] = msgspec.field(default_factory=list)


class _Ticker(msgspec.Struct):
    product_id: str
    best_bid: str | None = None
    best_ask: str | None = None


class _TickerEvent(msgspec.Struct):
    kind: str | None = msgspec.field(default=None, name="type")
    tickers: list[_Ticker] = msgspec.field(default_factory=list)


class _HeartbeatEvent(msgspec.Struct):
    heartbeat_counter: int | str | None = None


class _SubscriptionsEvent(msgspec.Struct):
    subscriptions: dict[str, list[str]] = msgspec.field(default_factory=dict)


_TRADES_EVENTS = msgspec.json.Decoder(list[_TradesEvent])
_TICKER_EVENTS = msgspec.json.Decoder(list[_TickerEvent])
_HEARTBEAT_EVENTS = msgspec.json.Decoder(list[_HeartbeatEvent])
_SUBSCRIPTIONS_EVENTS = msgspec.json.Decoder(list[_SubscriptionsEvent])
_ENVELOPE = msgspec.json.Decoder(_Envelope)


def _price(text: str | None, field: str) -> float | None:
    """A decimal string as a price; None when absent, empty or non-positive."""
    return None if text is None else _READ.to_price(text, field)


# --- parser --------------------------------------------------------------------------------


class CoinbaseParser:
    """Parses the frames of one Coinbase Advanced Trade connection (tracks ``sequence_num``)."""

    def __init__(self) -> None:
        self._last_seq: int | None = None

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame; see :class:`feeds.venue.Parser`.

        Mids need a positive bid and ask; trades are handed on whatever their price (the
        router counts and drops non-positive ones) and come out in event-time order. A
        sequence jump puts ``Status(GAP, "expected N got M")`` before the frame's events. A frame
        that fails to parse does not advance the sequence, so the next frame reports it as a gap.

        Raises:
            FeedParseError: the frame is malformed.
        """
        try:
            envelope = _ENVELOPE.decode(raw)
            events = self._events(envelope, recv_ts)
        except WIRE_ERRORS as exc:
            raise FeedParseError(f"{VENUE}: {exc}") from None
        return self._sequence(envelope.sequence_num) + events

    def _sequence(self, seq: int | None) -> list[FeedEvent]:
        if seq is None:
            return []
        last, self._last_seq = self._last_seq, seq
        if last is None or seq == last + 1:
            return []
        return [Status(VENUE, StatusKind.GAP, f"expected {last + 1} got {seq}")]

    def _events(self, envelope: _Envelope, recv_ts: float) -> list[FeedEvent]:
        channel = envelope.channel
        if channel is None:
            if envelope.kind == "error":
                return [Status(VENUE, StatusKind.ERROR, envelope.message or "error")]
            raise FeedParseError(f"{VENUE}: frame has neither channel nor type error")
        if channel not in ("market_trades", "ticker", _HEARTBEATS, "subscriptions"):
            return []  # l2_data, candles, status, ...: not needed
        if not envelope.events:
            raise FeedParseError(f"{VENUE}: {channel} frame without events")
        if channel == "market_trades":
            return self._trades(envelope, recv_ts)
        if channel == "ticker":
            return self._tickers(envelope, recv_ts)
        if channel == _HEARTBEATS:
            beats = _HEARTBEAT_EVENTS.decode(envelope.events)
            detail = f"counter={beats[-1].heartbeat_counter}" if beats else ""
            return [Status(VENUE, StatusKind.HEARTBEAT, detail)]
        return [_subscribed(_SUBSCRIPTIONS_EVENTS.decode(envelope.events))]

    def _trades(self, envelope: _Envelope, recv_ts: float) -> list[FeedEvent]:
        quotes: list[Quote] = []
        for event in _TRADES_EVENTS.decode(envelope.events):
            replay = event.kind == _SNAPSHOT
            for trade in event.trades:
                if not trade.price:
                    continue  # an empty price: no trade to report
                price = _READ.to_number(trade.price, "price")  # non-positive: counted later
                ts = parse_rfc3339(trade.time) if trade.time else _frame_ts(envelope, recv_ts)
                kind, product = PriceKind.TRADE, trade.product_id
                quotes.append(Quote(VENUE, product, kind, price, ts, recv_ts, replay))
        return oldest_first(quotes)

    def _tickers(self, envelope: _Envelope, recv_ts: float) -> list[FeedEvent]:
        """MID quotes from best bid and ask (the ticker's ``price`` is left to market_trades)."""
        out: list[FeedEvent] = []
        ts = _frame_ts(envelope, recv_ts)
        for event in _TICKER_EVENTS.decode(envelope.events):
            replay = event.kind == _SNAPSHOT
            for ticker in event.tickers:
                bid = _price(ticker.best_bid, "best_bid")
                mid = mid_price(bid, _price(ticker.best_ask, "best_ask"))
                if mid is not None:
                    product, kind = ticker.product_id, PriceKind.MID
                    out.append(Quote(VENUE, product, kind, mid, ts, recv_ts, replay))
        return out


def _frame_ts(envelope: _Envelope, recv_ts: float) -> float:
    return parse_rfc3339_or(envelope.timestamp, recv_ts)


def _subscribed(events: list[_SubscriptionsEvent]) -> Status:
    current: dict[str, list[str]] = {}
    for event in events:
        current.update(event.subscriptions)
    detail = "; ".join(f"{name}={','.join(ids)}" for name, ids in sorted(current.items()))
    return Status(VENUE, StatusKind.SUBSCRIBED, detail)


# --- plans ---------------------------------------------------------------------------------


def _frame(kind: str, product_ids: Sequence[str], channel: str) -> str:
    return to_json({"type": kind, "product_ids": list(product_ids), "channel": channel})


def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
    """Connection plans for Coinbase products (e.g. ``"BTC-USD"``).

    Each connection subscribes ``heartbeats`` and then the channel for ``kind``.

    Raises:
        ConfigError: ``kind`` is neither trade nor mid.
    """
    channel = offered(VENUE, _CHANNELS, kind)
    plans = []
    size = limits.COINBASE.streams_per_connection
    for chunk in chunks(list(dict.fromkeys(instruments)), size):
        frames = (_frame("subscribe", chunk, _HEARTBEATS), _frame("subscribe", chunk, channel))
        plans.append(ConnectionPlan(url, frames, chunk, subscribe_rate_hz=_SUBSCRIBE_RATE_HZ))
    return plans


def resubscribe(instruments: Sequence[str], kind: PriceKind) -> list[str]:
    """Unsubscribe then subscribe frames that refresh ``instruments`` on a live connection."""
    channel, products = offered(VENUE, _CHANNELS, kind), list(dict.fromkeys(instruments))
    return [_frame("unsubscribe", products, channel), _frame("subscribe", products, channel)]


def _new_parser() -> Parser:
    return CoinbaseParser()


COINBASE = VenueSpec(
    name=VENUE,
    default_url=DEFAULT_URL,
    plan=plan,
    new_parser=_new_parser,
    idle_ping=None,  # the heartbeats channel sends a frame every second
    kinds=frozenset({PriceKind.TRADE, PriceKind.MID}),
    resubscribe=resubscribe,
    limits=limits.COINBASE,
)
