"""Reconnect policy: which errors are retried, and a capped, jittered backoff.

The backoff only resets once a connection has been *healthy* (it delivered data and stayed up
for ``healthy_after_s``), not merely after a successful handshake: a server that accepts and
closes at once would otherwise make the client reconnect in a tight loop (a reconnect storm).
Nothing is ever given up for good: a permanent-looking error (HTTP 4xx on the handshake, an
invalid URL) is retried too, at the maximum delay, and logged loudly by the session.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from feeds.events import FeedParseError


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an ordinary network failure worth a normal, growing backoff.

    Parse errors are never network errors: the session counts and drops the frame instead.
    HTTP 429 and 5xx on the handshake are transient; other 4xx and invalid URLs are not (they
    are still retried, at the maximum delay).
    """
    if isinstance(exc, FeedParseError):
        return False
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return status == 429 or status >= 500
    if isinstance(exc, InvalidURI):
        return False
    return isinstance(
        exc,
        OSError
        | ConnectionClosed
        | InvalidHandshake
        | TimeoutError
        | asyncio.IncompleteReadError
        | socket.gaierror
        | ssl.SSLError
        | EOFError,
    )


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (AWS architecture blog, 2015).

    Attributes:
        initial_s: first delay ceiling.
        max_s: cap on any delay.
        factor: growth per failed attempt.
        healthy_after_s: a connection up this long with data resets the backoff.
        rand: uniform random source in [0, 1), injectable for tests.
    """

    initial_s: float = 0.5
    max_s: float = 60.0
    factor: float = 2.0
    healthy_after_s: float = 10.0
    rand: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self, transient: bool = True) -> float:
        """The delay before the next attempt; grows with each consecutive failure."""
        if not transient:
            self.attempt += 1
            return self.max_s
        ceiling = min(self.max_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        # never below a tenth of the ceiling, so a storm cannot reach zero delays
        return ceiling * (0.1 + 0.9 * self.rand())

    def connection_ended(self, uptime_s: float, received: bool) -> None:
        """Reset after a healthy connection; keep growing after one that died young."""
        if received and uptime_s >= self.healthy_after_s:
            self.attempt = 0
