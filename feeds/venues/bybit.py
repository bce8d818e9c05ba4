"""Bybit v5 public streams (linear and spot): subscribe frames and a sans-I/O parser.

Subscriptions are ``{"op":"subscribe","args":["publicTrade.BTCUSDT", ...]}`` with at most 10
args per frame (the spot limit, used everywhere). Linear ``tickers`` arrive as one snapshot then
deltas carrying only the fields that changed, so the parser (one per connection) keeps the last
value of each price field per symbol. Spot tickers carry no best bid/ask: spot MID comes from the
level-1 order book ``orderbook.1``, which Bybit pushes as whole snapshots.

Bybit's ``type: snapshot`` is not a replay marker (every ``publicTrade`` and ``orderbook.1``
message carries it), so Bybit quotes are never marked ``snapshot``: the router's event-time rule
alone decides freshness. Connections carry at most 200 topics (:mod:`feeds.limits`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from feeds import limits
from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venue import ConnectionPlan, VenueSpec
from feeds.venues.fields import FieldReader, chunks, offered, to_json

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
_READ: Final = FieldReader("bybit")


def topic_args(
    venue: str, topics: Mapping[PriceKind, str], instruments: Sequence[str], kind: PriceKind
) -> list[str]:
    """Topic names such as ``tickers.BTCUSDT``, one per distinct instrument.

    Raises:
        ConfigError: the venue does not offer ``kind``.
    """
    topic = offered(venue, topics, kind)
    return [f"{topic}.{symbol}" for symbol in dict.fromkeys(instruments)]


def op_frames(op: str, args: Sequence[str]) -> list[str]:
    """``{"op": op, "args": [...]}`` frames of at most MAX_ARGS_PER_FRAME args each."""
    return [to_json({"op": op, "args": chunk}) for chunk in chunks(args, MAX_ARGS_PER_FRAME)]


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
        message = _READ.decode_object(raw)
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
            symbol, price = _READ.text(trade, "s"), _READ.traded_price(trade, "p")
            ts = _READ.ms(trade, "T")
            quotes.append(Quote(self._venue, symbol, PriceKind.TRADE, price, ts, recv_ts))
        return quotes

    def _ticker(self, message: dict[str, Any], recv_ts: float) -> list[FeedEvent]:
        data, ts = _READ.nested(message, "data"), _frame_ts(message, recv_ts)
        symbol, update_type = _READ.text(data, "symbol"), message.get("type")
        carried = {key: _READ.price(data, key) for key in _TICKER_FIELDS if key in data}
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
        data, ts = _READ.nested(message, "data"), _frame_ts(message, recv_ts)
        symbol = _READ.text(data, "s")
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
        parsed.append((_READ.to_price(level[0], key), _READ.to_number(level[1], key)))
    return parsed


def _frame_ts(message: dict[str, Any], recv_ts: float) -> float:
    """The frame's ``ts`` (milliseconds) as Unix seconds, or the receive time when absent."""
    return _READ.ms(message, "ts") if "ts" in message else recv_ts


def _spec(name: str, url: str, topics: Mapping[PriceKind, str]) -> VenueSpec:
    def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
        offered(name, topics, kind)
        size = limits.BYBIT.streams_per_connection
        return [
            ConnectionPlan(
                url=url,
                subscribe=tuple(op_frames("subscribe", topic_args(name, topics, chunk, kind))),
                instruments=chunk,
            )
            for chunk in chunks(list(dict.fromkeys(instruments)), size)
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
        limits=limits.BYBIT,  # one host: linear and spot share the per-IP connection budget
    )


BYBIT: Final = _spec("bybit", LINEAR_URL, LINEAR_TOPICS)
BYBIT_SPOT: Final = _spec("bybit-spot", SPOT_URL, SPOT_TOPICS)
