"""Bybit v5 public streams (linear and spot): subscribe frames and a sans-I/O parser.

Subscriptions are ``{"op":"subscribe","args":["publicTrade.BTCUSDT", ...]}`` with at most 10
args per frame (the spot limit, used everywhere). Linear ``tickers`` arrive as one snapshot then
deltas carrying only the fields that changed, so the parser (one per connection) keeps the last
value of each price field per symbol. Spot tickers carry no best bid/ask: spot MID comes from the
level-1 order book ``orderbook.1``, which Bybit pushes as whole snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import msgspec

from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venue import ConnectionPlan, VenueSpec
from monitor.errors import ConfigError

LINEAR_URL: Final = "wss://stream.bybit.com/v5/public/linear"
SPOT_URL: Final = "wss://stream.bybit.com/v5/public/spot"
MAX_ARGS_PER_FRAME: Final = 10
PING: Final = '{"op":"ping"}'

LINEAR_TOPICS: Final[Mapping[PriceKind, str]] = {
    PriceKind.TRADE: "publicTrade",
    PriceKind.MID: "tickers",
    PriceKind.MARK: "tickers",
    PriceKind.INDEX: "tickers",
}
SPOT_TOPICS: Final[Mapping[PriceKind, str]] = {
    PriceKind.TRADE: "publicTrade",
    PriceKind.MID: "orderbook.1",
}
_TICKER_FIELDS: Final[tuple[str, ...]] = ("bid1Price", "ask1Price", "markPrice", "indexPrice")
_MID_FIELDS: Final = frozenset({"bid1Price", "ask1Price"})


def topic_args(
    venue: str, topics: Mapping[PriceKind, str], instruments: Sequence[str], kind: PriceKind
) -> list[str]:
    """Topic names such as ``tickers.BTCUSDT``, one per distinct instrument.

    Raises:
        ConfigError: the venue does not offer ``kind``.
    """
    if kind not in topics:
        offered = ", ".join(sorted(topics))
        raise ConfigError(f"{venue}: price kind '{kind}' is not offered; use {offered}")
    return [f"{topics[kind]}.{symbol}" for symbol in dict.fromkeys(instruments)]


def op_frames(op: str, args: Sequence[str]) -> list[str]:
    """``{"op": op, "args": [...]}`` frames of at most MAX_ARGS_PER_FRAME args each."""
    return [
        msgspec.json.encode({"op": op, "args": args[start : start + MAX_ARGS_PER_FRAME]}).decode()
        for start in range(0, len(args), MAX_ARGS_PER_FRAME)
    ]


class BybitParser:
    """Turns one Bybit v5 frame into quotes and status events; raises only FeedParseError.

    ``publicTrade`` gives TRADE at each trade's ``T``. ``tickers`` gives MID (bid1Price and
    ask1Price), MARK (markPrice) and INDEX (indexPrice) at the frame's ``ts``: after merging a
    delta into the symbol's last values, a quote is emitted for each price the frame carries
    (the other side of the mid may come from earlier frames). ``orderbook.1`` gives MID. Other
    topics give ``[]``. Empty strings and non-positive prices count as absent.
    """

    def __init__(self, venue: str) -> None:
        self._venue = venue
        self._tickers: dict[str, dict[str, float | None]] = {}
        self._books: dict[str, list[float | None]] = {}

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame received at ``recv_ts`` (Unix seconds)."""
        message = _decode(raw)
        topic = message.get("topic")
        if topic is None:
            return self._control(message)
        if not isinstance(topic, str):
            raise FeedParseError(f"bybit: topic is not a string: {topic!r:.80}")
        channel = topic.partition(".")[0]
        if channel == "publicTrade":
            return self._trades(message, recv_ts)
        if channel == "tickers":
            return self._ticker(message, recv_ts)
        if topic.startswith("orderbook.1."):
            return self._top_of_book(message, recv_ts)
        return []

    def _control(self, message: dict[str, Any]) -> list[FeedEvent]:
        """Pongs, subscription replies and errors (frames without a topic)."""
        op, success, ret_msg = message.get("op"), message.get("success"), message.get("ret_msg")
        if op == "pong" or ret_msg == "pong":
            return [Status(self._venue, StatusKind.HEARTBEAT)]
        if success is False:
            return [Status(self._venue, StatusKind.ERROR, detail=f"{op}: {ret_msg}")]
        if success is True and op == "subscribe":
            return [Status(self._venue, StatusKind.SUBSCRIBED)]
        if success is True:
            return [Status(self._venue, StatusKind.INFO, detail=f"{op!r:.40} succeeded")]
        return []

    def _trades(self, message: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        trades = message.get("data")
        if not isinstance(trades, list):
            raise FeedParseError(f"bybit: trade data is not a list: {trades!r:.80}")
        quotes: list[FeedEvent] = []
        for trade in trades:
            if not isinstance(trade, dict):
                raise FeedParseError(f"bybit: trade is not an object: {trade!r:.80}")
            symbol, price, ts = _text(trade, "s"), _price(trade, "p"), _ms(trade, "T")
            if price is not None:
                quotes.append(Quote(self._venue, symbol, PriceKind.TRADE, price, ts, recv_ts))
        return quotes

    def _ticker(self, message: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        data, ts = _object(message, "data"), _frame_ts(message, recv_ts)
        symbol, update_type = _text(data, "symbol"), message.get("type")
        carried = {key: _price(data, key) for key in _TICKER_FIELDS if key in data}
        if update_type == "snapshot":
            state = self._tickers[symbol] = dict.fromkeys(_TICKER_FIELDS)
        elif update_type == "delta":
            state = self._tickers.setdefault(symbol, dict.fromkeys(_TICKER_FIELDS))
        else:
            raise FeedParseError(f"bybit: unknown tickers type {update_type!r:.40}")
        state.update(carried)
        return self._ticker_quotes(symbol, state, carried.keys(), ts, recv_ts)

    def _ticker_quotes(
        self,
        symbol: str,
        state: dict[str, float | None],
        carried: Collection[str],
        ts: float,
        recv_ts: float,
    ) -> list[FeedEvent]:
        quotes: list[FeedEvent] = []
        bid, ask = state["bid1Price"], state["ask1Price"]
        if bid is not None and ask is not None and not _MID_FIELDS.isdisjoint(carried):
            quotes.append(Quote(self._venue, symbol, PriceKind.MID, (bid + ask) / 2.0, ts, recv_ts))
        for kind, key in ((PriceKind.MARK, "markPrice"), (PriceKind.INDEX, "indexPrice")):
            price = state[key]
            if price is not None and key in carried:
                quotes.append(Quote(self._venue, symbol, kind, price, ts, recv_ts))
        return quotes

    def _top_of_book(self, message: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        data, ts = _object(message, "data"), _frame_ts(message, recv_ts)
        symbol = _text(data, "s")
        sides = (_levels(data, "b"), _levels(data, "a"))
        if message.get("type") == "snapshot":
            self._books[symbol] = [None, None]
        book = self._books.setdefault(symbol, [None, None])
        for side, levels in enumerate(sides):
            for price, size in levels:
                if size > 0.0:
                    book[side] = price
                elif book[side] == price:
                    book[side] = None
        bid, ask = book
        if bid is None or ask is None:
            return []
        return [Quote(self._venue, symbol, PriceKind.MID, (bid + ask) / 2.0, ts, recv_ts)]


def _levels(data: dict[str, Any], key: str) -> list[tuple[float | None, float]]:
    """The ``[price, size]`` levels of one book side; a size of 0 removes that price."""
    levels = data.get(key)
    if not isinstance(levels, list):
        raise FeedParseError(f"bybit: book side {key!r} is not a list: {levels!r:.80}")
    parsed = []
    for level in levels:
        if not isinstance(level, list) or len(level) < 2:
            raise FeedParseError(f"bybit: book level is not [price, size]: {level!r:.80}")
        parsed.append((_to_price(level[0], key), _to_float(level[1], key)))
    return parsed


def _decode(raw: str | bytes) -> dict[str, Any]:
    """A JSON object from a frame, or FeedParseError."""
    try:
        message = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeError, RecursionError, TypeError) as exc:
        raise FeedParseError(f"bybit: undecodable frame: {exc}") from exc
    if not isinstance(message, dict):
        raise FeedParseError(f"bybit: frame is not a JSON object: {message!r:.80}")
    return message


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise FeedParseError(f"bybit: {key!r} must be an object, got {value!r:.80}")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise FeedParseError(f"bybit: {key!r} must be a non-empty string, got {value!r:.80}")
    return value


def _to_float(value: object, what: str) -> float:
    """A finite number given as a JSON number or a decimal string; FeedParseError otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FeedParseError(f"bybit: {what!r} must be a number, got {value!r:.80}")
    try:
        number = float(value)
    except (ValueError, OverflowError) as exc:
        raise FeedParseError(f"bybit: {what!r} is not a number: {value!r:.80}") from exc
    if not math.isfinite(number):
        raise FeedParseError(f"bybit: {what!r} is not finite: {value!r:.80}")
    return number


def _to_price(value: object, what: str) -> float | None:
    """A price; None when empty or non-positive."""
    if value == "":
        return None
    price = _to_float(value, what)
    return price if price > 0.0 else None


def _price(data: dict[str, Any], key: str) -> float | None:
    return _to_price(data.get(key), key)


def _ms(data: dict[str, Any], key: str) -> float:
    """A required millisecond timestamp, as Unix seconds."""
    return _to_float(data.get(key), key) / 1000.0


def _frame_ts(message: dict[str, Any], recv_ts: float) -> float:
    """The frame's ``ts`` (milliseconds) as Unix seconds, or the receive time when absent."""
    return _ms(message, "ts") if "ts" in message else recv_ts


def _spec(name: str, url: str, topics: Mapping[PriceKind, str]) -> VenueSpec:
    def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
        args = topic_args(name, topics, instruments, kind)
        if not args:
            return []
        symbols = tuple(dict.fromkeys(instruments))
        return [
            ConnectionPlan(
                url=url, subscribe=tuple(op_frames("subscribe", args)), instruments=symbols
            )
        ]

    def resubscribe(instruments: Sequence[str], kind: PriceKind) -> list[str]:
        args = topic_args(name, topics, instruments, kind)
        return op_frames("unsubscribe", args) + op_frames("subscribe", args)

    return VenueSpec(
        name=name,
        default_url=url,
        plan=plan,
        new_parser=lambda: BybitParser(name),
        idle_ping=PING,
        idle_ping_s=20.0,
        ping_when_busy=True,
        kinds=frozenset(topics),
        resubscribe=resubscribe,
    )


BYBIT: Final = _spec("bybit", LINEAR_URL, LINEAR_TOPICS)
BYBIT_SPOT: Final = _spec("bybit-spot", SPOT_URL, SPOT_TOPICS)
