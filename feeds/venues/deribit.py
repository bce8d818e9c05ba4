"""Deribit (JSON-RPC 2.0 over websocket) public tickers: connection plans and a sans-I/O parser.

Every connection first sends ``public/set_heartbeat``; the server then sends ``test_request``
notifications that must be answered with ``public/test`` (the parser returns that answer as a
:class:`Reply`) or it closes the connection. Tickers are subscribed on ``ticker.<name>.100ms``:
public clients cannot use ``.raw`` any more (it needs authentication). One ticker carries mark,
index, best bid/ask and last price, and for options implied volatilities and greeks.

Request ids tell the acknowledgements apart: 1 is ``set_heartbeat``, 2 and up the plan's
subscribe frames, ``_UNSUBSCRIBE_ID`` and ``_RESUBSCRIBE_ID`` the frames of :func:`resubscribe`,
and ``_TEST_ID_BASE`` and up the parser's ``public/test`` answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import msgspec

from feeds import limits
from feeds.events import (
    FeedEvent,
    FeedParseError,
    Greeks,
    OptionQuote,
    PriceKind,
    Quote,
    Reply,
    Status,
    StatusKind,
)
from feeds.venue import ConnectionPlan, Parser, VenueSpec
from feeds.venues.fields import WIRE_ERRORS, chunks, mid_price, to_json
from monitor.errors import ConfigError

VENUE = "deribit"
DEFAULT_URL = "wss://www.deribit.com/ws/api/v2"

_HEARTBEAT_INTERVAL_S = 10  # the minimum Deribit accepts
_SET_HEARTBEAT_ID = 1
_SUBSCRIBE_ID_BASE = 2
_UNSUBSCRIBE_ID = 1_000_000
_RESUBSCRIBE_ID = 1_000_001
_TEST_ID_BASE = 2_000_000
_INTERVAL = "100ms"
# Our choice, not a venue limit: bounded subscribe frames.
_CHANNELS_PER_FRAME = 100
_KINDS = frozenset({PriceKind.TRADE, PriceKind.MID, PriceKind.MARK, PriceKind.INDEX})


def _rpc(request_id: int, method: str, params: dict[str, object]) -> str:
    return to_json({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


SET_HEARTBEAT = _rpc(_SET_HEARTBEAT_ID, "public/set_heartbeat", {"interval": _HEARTBEAT_INTERVAL_S})


# --- wire types ----------------------------------------------------------------------------


class _RpcError(msgspec.Struct):
    code: int | None = None
    message: str | None = None


class _Message(msgspec.Struct):
    id: int | str | None = None
    method: str | None = None
    params: msgspec.Raw = msgspec.Raw()
    result: msgspec.Raw = msgspec.Raw()
    error: _RpcError | None = None


class _HeartbeatParams(msgspec.Struct):
    kind: str | None = msgspec.field(default=None, name="type")


class _SubscriptionParams(msgspec.Struct):
    channel: str
    data: msgspec.Raw = msgspec.Raw()


class _Greeks(msgspec.Struct):
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


class _Ticker(msgspec.Struct):
    mark_price: float
    instrument_name: str | None = None
    timestamp: int | None = None
    index_price: float | None = None
    best_bid_price: float | None = None
    best_ask_price: float | None = None
    last_price: float | None = None
    underlying_price: float | None = None
    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    greeks: _Greeks | None = None


_MESSAGE = msgspec.json.Decoder(_Message)
_HEARTBEAT_PARAMS = msgspec.json.Decoder(_HeartbeatParams)
_SUBSCRIPTION_PARAMS = msgspec.json.Decoder(_SubscriptionParams)
_TICKER = msgspec.json.Decoder(_Ticker)
_RESULT = msgspec.json.Decoder(list[str] | str | int | float | bool | dict[str, object] | None)


def _iv(value: float | None) -> float | None:
    """An implied volatility in percent; Deribit sends 0 when there is no bid or ask."""
    return value if value is not None and value > 0.0 else None


def is_option(instrument: str) -> bool:
    """True for option names such as ``BTC-27JUN25-100000-C`` (four parts ending C or P)."""
    parts = instrument.split("-")
    return len(parts) == 4 and parts[3] in ("C", "P")


# --- parser --------------------------------------------------------------------------------


class DeribitParser:
    """Parses the frames of one Deribit connection and answers its heartbeat test requests."""

    def __init__(self) -> None:
        self._test_ids = itertools.count(_TEST_ID_BASE)

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame; see :class:`feeds.venue.Parser`.

        Raises:
            FeedParseError: the frame is malformed.
        """
        try:
            message = _MESSAGE.decode(raw)
            if message.method is not None:
                return self._notification(message, recv_ts)
            if message.error is not None:
                return [_error(message)]
            if message.result:
                return _result(message.id, _RESULT.decode(message.result))
        except WIRE_ERRORS as exc:
            raise FeedParseError(f"{VENUE}: {exc}") from None
        raise FeedParseError(f"{VENUE}: neither a notification nor a response")

    def _notification(self, message: _Message, recv_ts: float) -> list[FeedEvent]:
        if not message.params:
            raise FeedParseError(f"{VENUE}: {message.method} without params")
        if message.method == "subscription":
            params = _SUBSCRIPTION_PARAMS.decode(message.params)
            if not params.channel.startswith("ticker."):
                return []  # book, trades, ...: not needed
            return _ticker(params, recv_ts)
        if message.method == "heartbeat":
            kind = _HEARTBEAT_PARAMS.decode(message.params).kind
            if kind == "test_request":
                return [Reply(_rpc(next(self._test_ids), "public/test", {}))]
            return [Status(VENUE, StatusKind.HEARTBEAT, kind or "")]
        return []


def _error(message: _Message) -> Status:
    error = message.error
    code = error.code if error is not None else None
    text = error.message if error is not None and error.message else "error"
    return Status(VENUE, StatusKind.ERROR, f"request {message.id}: {text} (code {code})")


def _result(request_id: int | str | None, result: object) -> list[FeedEvent]:
    if not isinstance(result, list):
        return []  # "ok" for set_heartbeat, {"version": ...} for public/test
    detail = ",".join(result)
    if request_id == _UNSUBSCRIBE_ID:
        return [Status(VENUE, StatusKind.INFO, f"unsubscribed {detail}")]
    return [Status(VENUE, StatusKind.SUBSCRIBED, detail)]


def _channel_instrument(channel: str) -> str:
    parts = channel.split(".")
    if len(parts) != 3 or not parts[1]:
        raise FeedParseError(f"{VENUE}: bad ticker channel {channel!r}")
    return parts[1]


def _ticker(params: _SubscriptionParams, recv_ts: float) -> list[FeedEvent]:
    # msgspec rejects JSON numbers outside the float range, so every float here is finite.
    if not params.data:
        raise FeedParseError(f"{VENUE}: {params.channel} without data")
    data = _TICKER.decode(params.data)
    name = data.instrument_name or _channel_instrument(params.channel)
    try:
        ts = data.timestamp / 1000.0 if data.timestamp is not None else recv_ts
    except OverflowError:  # an integer timestamp beyond the float range
        raise FeedParseError(f"{VENUE}: timestamp out of range in {params.channel}") from None
    prices = (
        (PriceKind.MARK, data.mark_price),
        (PriceKind.INDEX, data.index_price),
        (PriceKind.MID, mid_price(data.best_bid_price, data.best_ask_price)),
        (PriceKind.TRADE, data.last_price),
    )
    out: list[FeedEvent] = [  # non-positive marks and trades too: the router counts them
        Quote(VENUE, name, kind, price, ts, recv_ts) for kind, price in prices if price is not None
    ]
    out.append(_option_quote(data, name, ts, recv_ts))
    return out


def _option_quote(data: _Ticker, name: str, ts: float, recv_ts: float) -> OptionQuote:
    g = data.greeks if is_option(name) else None
    return OptionQuote(
        venue=VENUE,
        instrument=name,
        ts=ts,
        recv_ts=recv_ts,
        mark_price=data.mark_price,
        mark_iv=_iv(data.mark_iv),
        bid_iv=_iv(data.bid_iv),
        ask_iv=_iv(data.ask_iv),
        underlying_price=data.underlying_price,
        index_price=data.index_price,
        greeks=None if g is None else Greeks(g.delta, g.gamma, g.vega, g.theta, g.rho),
    )


# --- plans ---------------------------------------------------------------------------------


def _channels(instruments: Sequence[str]) -> list[str]:
    return [f"ticker.{name}.{_INTERVAL}" for name in dict.fromkeys(instruments)]


def _check_kind(kind: PriceKind) -> None:
    if kind not in _KINDS:
        raise ConfigError(f"{VENUE} cannot deliver {kind.value} prices")


def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
    """Connection plans for Deribit instruments: ``ticker.<name>.100ms`` carries every kind.

    Raises:
        ConfigError: ``kind`` is not one Deribit delivers.
    """
    _check_kind(kind)
    plans = []
    size = limits.DERIBIT.streams_per_connection
    for chunk in chunks(list(dict.fromkeys(instruments)), size):
        batches = chunks(_channels(chunk), _CHANNELS_PER_FRAME)
        frames = tuple(
            _rpc(_SUBSCRIBE_ID_BASE + i, "public/subscribe", {"channels": batch})
            for i, batch in enumerate(batches)
        )
        plans.append(ConnectionPlan(url, frames, chunk))
    return plans


def resubscribe(instruments: Sequence[str], kind: PriceKind) -> list[str]:
    """Unsubscribe then subscribe frames that refresh ``instruments`` on a live connection."""
    _check_kind(kind)
    params: dict[str, object] = {"channels": _channels(instruments)}
    return [
        _rpc(_UNSUBSCRIBE_ID, "public/unsubscribe", params),
        _rpc(_RESUBSCRIBE_ID, "public/subscribe", params),
    ]


def _new_parser() -> Parser:
    return DeribitParser()


DERIBIT = VenueSpec(
    name=VENUE,
    default_url=DEFAULT_URL,
    plan=plan,
    new_parser=_new_parser,
    idle_ping=None,  # set_heartbeat makes the server probe us every 10 s
    on_connect=(SET_HEARTBEAT,),
    kinds=_KINDS,
    resubscribe=resubscribe,
    limits=limits.DERIBIT,
)
