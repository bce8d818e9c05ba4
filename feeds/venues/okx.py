"""OKX v5 public channels: subscribe frames and a sans-I/O parser.

Subscriptions are ``{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}, ...]}``.
OKX drops a connection that stays silent for 30 s, so the session sends the plain text ``ping``
when idle and OKX answers ``pong``. About 30 s before a service upgrade OKX sends a ``notice``
with code 64008, reported as MAINTENANCE so that the session reconnects cleanly.

OKX allows 480 subscribe/unsubscribe requests per hour per connection (:mod:`feeds.limits`), so
instruments are spread over connections of at most 200, each with its own request budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from feeds import limits
from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venue import ConnectionPlan, VenueSpec
from feeds.venues.fields import FieldReader, chunks, offered, to_json

PUBLIC_URL: Final = "wss://ws.okx.com:8443/ws/v5/public"
MAX_ARGS_PER_FRAME: Final = 100  # keeps a frame far below OKX's 64 KB limit on args
MAINTENANCE_CODE: Final = "64008"

CHANNELS: Final[Mapping[PriceKind, str]] = {
    PriceKind.TRADE: "trades",
    PriceKind.MID: "tickers",
}
_READ: Final = FieldReader("okx")


def channel_args(instruments: Sequence[str], kind: PriceKind) -> list[dict[str, str]]:
    """``{"channel": ..., "instId": ...}`` args, one per distinct instrument.

    Raises:
        ConfigError: ``kind`` is not offered (OKX here gives trades and mids).
    """
    channel = offered("okx", CHANNELS, kind)
    return [{"channel": channel, "instId": inst} for inst in dict.fromkeys(instruments)]


def op_frames(op: str, args: Sequence[dict[str, str]]) -> list[str]:
    """``{"op": op, "args": [...]}`` frames of at most MAX_ARGS_PER_FRAME args each."""
    return [to_json({"op": op, "args": chunk}) for chunk in chunks(args, MAX_ARGS_PER_FRAME)]


def plan(url: str, instruments: Sequence[str], kind: PriceKind) -> list[ConnectionPlan]:
    """Connections of at most ``streams_per_connection`` instruments of ``kind`` each."""
    offered("okx", CHANNELS, kind)
    size = limits.OKX.streams_per_connection
    return [
        ConnectionPlan(
            url=url,
            subscribe=tuple(op_frames("subscribe", channel_args(chunk, kind))),
            instruments=chunk,
        )
        for chunk in chunks(list(dict.fromkeys(instruments)), size)
    ]


def resubscribe(instruments: Sequence[str], kind: PriceKind) -> list[str]:
    """Unsubscribe then subscribe frames refreshing ``instruments`` on a live connection."""
    args = channel_args(instruments, kind)
    return op_frames("unsubscribe", args) + op_frames("subscribe", args)


class OkxParser:
    """Turns one OKX frame into quotes and status events; raises only FeedParseError.

    ``trades`` gives TRADE (``px`` at ``ts``). ``tickers`` gives MID from ``bidPx``/``askPx`` at
    the ticker's ``ts`` (its ``last`` is not a trade print: trade symbols are priced by
    ``trades``); OKX sends ``""`` for a missing price, which means no quote. Other channels
    (books, ...) give ``[]``.
    """

    def __init__(self, venue: str = "okx") -> None:
        self._venue = venue

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame received at ``recv_ts`` (Unix seconds)."""
        if raw == ("pong" if isinstance(raw, str) else b"pong"):
            return [Status(self._venue, StatusKind.HEARTBEAT)]
        message = _READ.decode_object(raw)
        if "event" in message:
            return [self._event(message)]
        arg = message.get("arg")
        if arg is None:
            return []
        if not isinstance(arg, dict):
            raise FeedParseError(f"okx: 'arg' is not an object: {arg!r:.80}")
        channel = arg.get("channel")
        if channel == "tickers":
            return [quote for item in _items(message) for quote in self._ticker(item, recv_ts)]
        if channel == "trades":
            return [self._trade(item, recv_ts) for item in _items(message)]
        return []

    def _event(self, message: dict[str, Any]) -> Status:
        """Replies to subscribe requests, errors and notices."""
        event, code, msg = message["event"], message.get("code"), message.get("msg")
        if not isinstance(event, str):
            raise FeedParseError(f"okx: event is not a string: {event!r:.80}")
        if event == "subscribe":
            return Status(self._venue, StatusKind.SUBSCRIBED, instrument=_arg_instrument(message))
        if event == "error" or event.endswith("-error"):
            return Status(self._venue, StatusKind.ERROR, detail=f"{code}: {msg}")
        if event == "notice" and code == MAINTENANCE_CODE:
            return Status(self._venue, StatusKind.MAINTENANCE, detail=f"{code}: {msg}")
        return Status(self._venue, StatusKind.INFO, detail=f"{event}: {code}: {msg}")

    def _ticker(self, item: dict[str, Any], recv_ts: float) -> list[Quote]:
        inst, ts = _READ.text(item, "instId"), _READ.ms(item, "ts")
        bid, ask = _price(item, "bidPx"), _price(item, "askPx")
        if bid is None or ask is None:
            return []
        return [Quote(self._venue, inst, PriceKind.MID, (bid + ask) / 2.0, ts, recv_ts)]

    def _trade(self, item: dict[str, Any], recv_ts: float) -> Quote:
        if "px" not in item:
            raise FeedParseError(f"okx: trade without a price: {item!r:.80}")
        price = _READ.traded_price(item, "px")  # non-positive: handed on, counted by the router
        inst, ts = _READ.text(item, "instId"), _READ.ms(item, "ts")
        return Quote(self._venue, inst, PriceKind.TRADE, price, ts, recv_ts)


def _arg_instrument(message: dict[str, Any]) -> str | None:
    arg = message.get("arg")
    inst = arg.get("instId") if isinstance(arg, dict) else None
    return inst if isinstance(inst, str) else None


def _items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a push frame's ``data`` list."""
    data = message.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise FeedParseError(f"okx: 'data' is not a list of objects: {data!r:.80}")
    return data


def _price(item: dict[str, Any], key: str) -> float | None:
    """A price; None when empty or non-positive, and also when absent (OKX's "no price")."""
    return _READ.price(item, key) if key in item else None


OKX: Final = VenueSpec(
    name="okx",
    default_url=PUBLIC_URL,
    plan=plan,
    new_parser=OkxParser,
    idle_ping="ping",
    idle_ping_s=20.0,
    kinds=frozenset(CHANNELS),
    resubscribe=resubscribe,
    limits=limits.OKX,
)
