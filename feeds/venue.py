"""The contract between a venue's pure protocol module and the one session layer.

A venue module provides a :class:`VenueSpec`: how to open connections for a set of native
instruments (URLs and subscribe frames, split to respect the venue's limits), what to send when
the connection is idle, and a factory of per-connection :class:`Parser` objects. Parsers are
stateful only where the protocol is (e.g. Coinbase's per-connection ``sequence_num``) and never
do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from feeds.events import FeedEvent, PriceKind
from feeds.limits import UNLIMITED, VenueLimits
from feeds.urls import ws_url


class Parser(Protocol):
    """Turns one received frame into events. Raises only ``FeedParseError``."""

    def parse(self, raw: str | bytes, recv_ts: float) -> list[FeedEvent]:
        """Parse one frame received at local time ``recv_ts`` (Unix seconds)."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """One websocket connection: where to connect and what to send once connected.

    Attributes:
        url: websocket URL (may already carry the stream names, e.g. Binance combined streams).
        subscribe: text frames to send after connecting, in order.
        subscribe_rate_hz: at most this many subscribe frames per second (venue limit).
        instruments: native instruments this connection carries (for staleness and resubscribe).
        max_lifetime_s: reconnect before the venue cuts the connection (Binance: 24 h).
    """

    url: str
    subscribe: tuple[str, ...]
    instruments: tuple[str, ...]
    subscribe_rate_hz: float = 5.0
    max_lifetime_s: float | None = None


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """Everything the session needs to know about one venue.

    Attributes:
        name: config name, e.g. "binance", "binance-usdm".
        default_url: the public endpoint (the config may override it).
        plan: (url, instruments, price kind) -> connection plans.
        new_parser: a fresh parser for one connection.
        idle_ping: text frame to send when nothing was received for ``idle_ping_s`` (OKX
            "ping", Bybit {"op":"ping"}); None when protocol-level pings suffice.
        idle_ping_s: idle interval before ``idle_ping`` is sent.
        ping_when_busy: send ``idle_ping`` every ``idle_ping_s`` even while data flows (Bybit
            asks for a ping every 20 s regardless of traffic).
        on_connect: extra frames to send first on every connection (e.g. Deribit
            ``public/set_heartbeat``).
        kinds: price kinds the venue can deliver.
        resubscribe: (instruments, price kind) -> frames that refresh those subscriptions on a
            live connection (unsubscribe then subscribe), used when one instrument goes silent.
        limits: documented stream, request and connection limits (:mod:`feeds.limits`).
        endpoint: checks a configured URL and returns the one ``plan`` builds on; raises
            ``ConfigError`` saying what to write (a doubled path, a scheme other than ws/wss).
    """

    name: str
    default_url: str
    plan: Callable[[str, Sequence[str], PriceKind], list[ConnectionPlan]]
    new_parser: Callable[[], Parser]
    idle_ping: str | None = None
    idle_ping_s: float = 20.0
    ping_when_busy: bool = False
    on_connect: tuple[str, ...] = ()
    kinds: frozenset[PriceKind] = field(
        default_factory=lambda: frozenset({PriceKind.TRADE, PriceKind.MID})
    )
    resubscribe: Callable[[Sequence[str], PriceKind], list[str]] | None = None
    limits: VenueLimits = UNLIMITED
    endpoint: Callable[[str], str] = ws_url
