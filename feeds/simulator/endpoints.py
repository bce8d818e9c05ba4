"""Per-connection venue behaviour of the simulator, sans I/O.

An endpoint holds one connection's protocol state (subscriptions, sequence numbers, heartbeat
deadlines) and turns inputs into frames to send: a received message, a batch of ticks, or the
passing of (real) time. The asyncio server only moves the bytes; nothing here awaits or reads a
clock. ``now`` is the loop's monotonic time in real seconds (for liveness rules, which venues
apply in real time); ``sim_ts`` is the simulated exchange time (for timestamps in frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import msgspec

from feeds.simulator import wire
from feeds.simulator.market import SimTick

_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class TimerOutput:
    """Frames due at this time, and a reason to close the connection (None to keep it)."""

    frames: list[bytes]
    close_reason: str | None = None


NOTHING_DUE = TimerOutput([])


class Endpoint(Protocol):
    """One client connection as a venue sees it."""

    def on_message(self, raw: str | bytes, now: float, sim_ts: float) -> list[bytes]:
        """Frames answering a message received from the client."""
        ...

    def on_ticks(self, ticks: Sequence[SimTick], sim_ts: float) -> list[bytes]:
        """Frames for the subscribed part of a batch of new ticks."""
        ...

    def on_timer(self, now: float, sim_ts: float) -> TimerOutput:
        """Heartbeats due at ``now`` and whether the connection must be closed."""
        ...

    def subscriptions(self) -> list[str]:
        """Current subscriptions, named as the venue names them."""
        ...

    def skip_sequence(self) -> None:
        """Make the next sequenced frame skip one number (venues without sequences ignore it)."""
        ...


def _json_object(raw: str | bytes) -> dict[str, Any] | None:
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def binance_path_ok(path: str) -> bool:
    """Whether Binance would serve this request path (``/stream...`` or ``/ws...``)."""
    route = urlsplit(path).path
    return route in ("/stream", "/ws") or route.startswith("/ws/")


class BinanceEndpoint:
    """Binance spot: streams from the URL (``/stream?streams=a/b``, ``/ws/<name>``) or SUBSCRIBE.

    ``/stream`` connections get combined-stream frames ``{"stream","data"}``; ``/ws`` connections
    get raw payloads, as on the real venue.
    """

    def __init__(self, path: str) -> None:
        """Read the stream names a request path carries."""
        parts = urlsplit(path)
        self._combined = parts.path == "/stream"
        self._streams: set[str] = set()
        if self._combined:
            for value in parse_qs(parts.query).get("streams", []):
                self._streams.update(s for s in value.split("/") if s)
        elif parts.path.startswith("/ws/"):
            self._streams.update(s for s in parts.path[4:].split("/") if s)

    def on_message(self, raw: str | bytes, now: float, sim_ts: float) -> list[bytes]:
        """Answer SUBSCRIBE, UNSUBSCRIBE and LIST_SUBSCRIPTIONS."""
        request = _json_object(raw)
        if request is None:
            return [wire.binance_error(None, 3, "Invalid JSON: expected an object")]
        request_id, method, params = request.get("id"), request.get("method"), request.get("params")
        names = params if isinstance(params, list) else []
        if method == "LIST_SUBSCRIPTIONS":
            return [wire.binance_reply(request_id, sorted(self._streams))]
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not all(isinstance(n, str) for n in names):
            return [wire.binance_error(request_id, 2, f"Invalid request: method {method!r}")]
        if method == "SUBSCRIBE":
            self._streams.update(names)
        else:
            self._streams.difference_update(names)
        return [wire.binance_reply(request_id, None)]

    def on_ticks(self, ticks: Sequence[SimTick], sim_ts: float) -> list[bytes]:
        """A trade and a bookTicker frame per tick, for the subscribed streams."""
        out: list[bytes] = []
        for tick in ticks:
            trade, book = wire.binance_streams(tick.symbol)
            if trade in self._streams:
                out.append(wire.binance_frame(trade, wire.binance_trade(tick), self._combined))
            if book in self._streams:
                out.append(wire.binance_frame(book, wire.binance_book_ticker(tick), self._combined))
        return out

    def on_timer(self, now: float, sim_ts: float) -> TimerOutput:
        """Binance relies on websocket pings only."""
        return NOTHING_DUE

    def subscriptions(self) -> list[str]:
        """Stream names, e.g. ``btcusdt@trade``."""
        return sorted(self._streams)

    def skip_sequence(self) -> None:
        """Binance streams carry no connection sequence."""


COINBASE_CHANNELS = ("market_trades", "ticker", "heartbeats")


class CoinbaseEndpoint:
    """Coinbase Advanced Trade: one subscribe message per channel, sequence per connection.

    The first message of ``market_trades`` and ``ticker`` after a subscribe is a ``snapshot`` of
    the last tick of each product; heartbeats come once per second; a connection that has not
    subscribed within ``subscribe_deadline_s`` is closed, as on the real venue.
    """

    def __init__(
        self,
        products: Mapping[str, str],
        last_ticks: Mapping[str, SimTick],
        now: float,
        subscribe_deadline_s: float = 5.0,
    ) -> None:
        """``products`` maps product ids to engine symbols; ``last_ticks`` is the live view."""
        self._products = products
        self._last = last_ticks
        self._subs: dict[str, set[str]] = {ch: set() for ch in COINBASE_CHANNELS}
        self._seq = 0
        self._beats = 0
        self._next_beat = now + 1.0
        self._deadline: float | None = now + subscribe_deadline_s

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def on_message(self, raw: str | bytes, now: float, sim_ts: float) -> list[bytes]:
        """Apply a subscribe or unsubscribe message; answer with ``subscriptions`` and snapshots."""
        request = _json_object(raw)
        if request is None:
            return [wire.coinbase_error("Failed to parse message", "invalid JSON")]
        kind, channel = request.get("type"), request.get("channel")
        products = request.get("product_ids", [])
        if kind not in ("subscribe", "unsubscribe") or channel not in COINBASE_CHANNELS:
            return [wire.coinbase_error("Failed to subscribe", f"channel {channel!r}")]
        if not isinstance(products, list) or not all(
            isinstance(p, str) and p in self._products for p in products
        ):
            return [wire.coinbase_error("Failed to subscribe", f"unknown product in {products}")]
        self._deadline = None
        if kind == "unsubscribe":
            if products and channel != "heartbeats":
                self._subs[channel].difference_update(products)
            else:
                self._subs[channel].clear()
            return [self._ack(sim_ts)]
        self._subs[channel].update(products if channel != "heartbeats" else ["heartbeats"])
        return [self._ack(sim_ts), *self._snapshot(channel, products, sim_ts)]

    def _ack(self, sim_ts: float) -> bytes:
        return wire.coinbase_subscriptions(self._next_seq(), sim_ts, self._subs)

    def _snapshot(self, channel: str, products: Sequence[str], sim_ts: float) -> list[bytes]:
        ticks = [self._last[s] for p in products if (s := self._products[p]) in self._last]
        if not ticks:  # nothing traded yet: the venue never sends an empty snapshot
            return []
        if channel == "market_trades":
            return [wire.coinbase_market_trades(ticks, self._next_seq(), sim_ts, "snapshot")]
        if channel == "ticker":
            return [wire.coinbase_ticker(ticks, self._next_seq(), sim_ts, "snapshot")]
        return []

    def on_ticks(self, ticks: Sequence[SimTick], sim_ts: float) -> list[bytes]:
        """One ``market_trades`` and one ``ticker`` update per subscribed tick."""
        out: list[bytes] = []
        trades, tickers = self._subs["market_trades"], self._subs["ticker"]
        for tick in ticks:
            product = wire.coinbase_product(tick.symbol)
            if product in trades:
                out.append(wire.coinbase_market_trades([tick], self._next_seq(), sim_ts))
            if product in tickers:
                out.append(wire.coinbase_ticker([tick], self._next_seq(), sim_ts))
        return out

    def on_timer(self, now: float, sim_ts: float) -> TimerOutput:
        """A heartbeat each second when subscribed; close if no subscribe came in time."""
        if self._deadline is not None and now >= self._deadline:
            return TimerOutput([], "no subscribe message received in time")
        if now < self._next_beat:
            return NOTHING_DUE
        self._next_beat = max(self._next_beat + 1.0, now)
        if not self._subs["heartbeats"]:
            return NOTHING_DUE
        self._beats += 1
        return TimerOutput([wire.coinbase_heartbeat(self._next_seq(), self._beats, sim_ts)])

    def subscriptions(self) -> list[str]:
        """``channel:product`` pairs, e.g. ``ticker:BTC-USD`` and ``heartbeats:heartbeats``."""
        return sorted(f"{ch}:{p}" for ch, products in self._subs.items() for p in products)

    def skip_sequence(self) -> None:
        """The next message's ``sequence_num`` jumps by two: one number is missing."""
        self._seq += 1


class DeribitEndpoint:
    """Deribit JSON-RPC: public/subscribe, public/unsubscribe, set_heartbeat and public/test.

    After ``public/set_heartbeat`` (interval >= ``min_heartbeat_s``) a ``test_request`` is sent
    every interval; if no ``public/test`` arrived since the previous one, the connection is
    closed. Ticker notifications are conflated to the last tick per instrument in each batch.
    """

    def __init__(
        self,
        perpetuals: Mapping[str, str],
        option: wire.OptionSpec | None,
        min_heartbeat_s: float = 10.0,
    ) -> None:
        """``perpetuals`` maps engine symbols to perpetual instrument names."""
        self._perpetuals = perpetuals
        self._option = option
        self._min_heartbeat_s = min_heartbeat_s
        known = [*perpetuals.values(), *([option.instrument] if option else [])]
        self._known = {wire.deribit_channel(i) for i in known}
        self._channels: set[str] = set()
        self._interval: float | None = None
        self._next_test = 0.0
        self._answered = True

    def on_message(self, raw: str | bytes, now: float, sim_ts: float) -> list[bytes]:
        """Answer one JSON-RPC request."""
        request = _json_object(raw)
        if request is None:
            return [wire.deribit_error(None, -32700, "Parse error")]
        rid, method = request.get("id"), request.get("method")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            return [wire.deribit_error(rid, -32602, "Invalid params")]
        if method == "public/test":
            self._answered = True
            return [wire.deribit_result(rid, {"version": wire.DERIBIT_VERSION}, sim_ts)]
        if method in ("public/subscribe", "public/unsubscribe"):
            return [self._subscribe(rid, method, params.get("channels"), sim_ts)]
        if method == "public/set_heartbeat":
            return [self._set_heartbeat(rid, params.get("interval"), now, sim_ts)]
        if method == "public/disable_heartbeat":
            self._interval = None
            return [wire.deribit_result(rid, "ok", sim_ts)]
        return [wire.deribit_error(rid, -32601, "Method not found")]

    def _subscribe(self, rid: object, method: str, channels: object, sim_ts: float) -> bytes:
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            return wire.deribit_error(rid, -32602, "Invalid params", "channels: list of str")
        if any(c.endswith(".raw") for c in channels):
            return wire.deribit_error(
                rid, 13778, "raw_subscriptions_not_available_for_unauthorized"
            )
        if method == "public/unsubscribe":
            done = [c for c in channels if c in self._channels]
            self._channels.difference_update(done)
        else:
            done = [c for c in channels if c in self._known]
            self._channels.update(done)
        return wire.deribit_result(rid, done, sim_ts)

    def _set_heartbeat(self, rid: object, interval: object, now: float, sim_ts: float) -> bytes:
        if not isinstance(interval, int | float) or interval < self._min_heartbeat_s:
            reason = f"interval must be a number >= {self._min_heartbeat_s:g}"
            return wire.deribit_error(rid, -32602, "Invalid params", reason)
        self._interval = float(interval)
        self._next_test = now + self._interval
        self._answered = True
        return wire.deribit_result(rid, "ok", sim_ts)

    def on_ticks(self, ticks: Sequence[SimTick], sim_ts: float) -> list[bytes]:
        """Ticker notifications for the subscribed perpetuals and the option."""
        latest = {t.symbol: t for t in ticks if t.symbol in self._perpetuals}
        out: list[bytes] = []
        for symbol, tick in latest.items():
            if wire.deribit_channel(self._perpetuals[symbol]) in self._channels:
                out.append(wire.deribit_perpetual_ticker(tick))
        option = self._option
        underlying = latest.get(option.underlying) if option else None
        if option and underlying and wire.deribit_channel(option.instrument) in self._channels:
            out.append(wire.deribit_option_ticker(underlying, option))
        return out

    def on_timer(self, now: float, sim_ts: float) -> TimerOutput:
        """Send ``test_request`` each interval; close when the previous one went unanswered."""
        if self._interval is None or now < self._next_test:
            return NOTHING_DUE
        if not self._answered:
            return TimerOutput([], "test_request not answered with public/test")
        self._answered = False
        self._next_test = now + self._interval
        return TimerOutput([wire.deribit_heartbeat("test_request")])

    def subscriptions(self) -> list[str]:
        """Channel names, e.g. ``ticker.BTC-PERPETUAL.100ms``."""
        return sorted(self._channels)

    def skip_sequence(self) -> None:
        """Ticker channels carry no sequence."""
