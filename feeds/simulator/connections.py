"""Connection bookkeeping of the simulator: bounded outgoing queues and per-venue state.

Backpressure policy: each connection's :class:`Outbox` holds at most ``maxsize`` frames; when a
slow client lets it fill, the OLDEST frame is dropped and counted, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection

from feeds.simulator import wire
from feeds.simulator.endpoints import Endpoint


@dataclass(frozen=True, slots=True)
class VenueStats:
    """Counters of one venue since the simulator started.

    Attributes:
        accepted: websocket handshakes completed.
        open: connections open now.
        frames_sent: frames written to sockets.
        frames_dropped: frames dropped from full outgoing queues (oldest first).
        malformed_sent: malformed frames queued by :meth:`ExchangeSimulator.inject_malformed`.
        max_queued: the largest outgoing queue length seen.
    """

    accepted: int
    open: int
    frames_sent: int
    frames_dropped: int
    malformed_sent: int
    max_queued: int


class Outbox:
    """Bounded frame queue: when full, the oldest frame is dropped and counted."""

    def __init__(self, maxsize: int) -> None:
        """An empty queue of at most ``maxsize`` frames."""
        self._frames: deque[bytes] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.high_water = 0
        self.close_request: str | None = None

    def put(self, frame: bytes) -> None:
        """Append a frame, dropping (and counting) the oldest one when full."""
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self.high_water = max(self.high_water, len(self._frames))
        self._ready.set()

    def clear(self) -> None:
        """Discard every queued frame (a stalled venue sends nothing)."""
        self._frames.clear()

    def request_close(self, reason: str) -> None:
        """Ask the writer to close the connection instead of sending more frames."""
        self.close_request = reason
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next frame, or None when the connection must be closed."""
        while not self._frames and self.close_request is None:
            self._ready.clear()
            await self._ready.wait()
        return None if self.close_request is not None else self._frames.popleft()


@dataclass(eq=False)
class Client:
    """One open connection: its socket, its venue endpoint and its outgoing queue."""

    ws: ServerConnection
    endpoint: Endpoint
    outbox: Outbox
    malformed_pending: int = 0


@dataclass(eq=False)
class VenueState:
    """One venue's server, connections, fault switches and counters."""

    name: str
    make_endpoint: Callable[[ServerConnection], Endpoint]
    server: Server | None = None
    clients: set[Client] = field(default_factory=set)
    silenced: set[str] = field(default_factory=set)
    stalled: bool = False
    accept_and_close: bool = False
    reject_status: int | None = None
    accepted: int = 0
    frames_sent: int = 0
    dropped_closed: int = 0
    malformed_sent: int = 0
    high_water: int = 0

    def enqueue(self, client: Client, frames: Sequence[bytes]) -> None:
        """Queue frames, interleaving any pending malformed ones; nothing while stalled."""
        if self.stalled:
            return
        for frame in frames:
            client.outbox.put(frame)
            self._maybe_malformed(client)
        if not frames:
            self._maybe_malformed(client)
        self.high_water = max(self.high_water, client.outbox.high_water)

    def _maybe_malformed(self, client: Client) -> None:
        if client.malformed_pending > 0:
            client.malformed_pending -= 1
            client.outbox.put(wire.malformed_frame(self.name, self.malformed_sent))
            self.malformed_sent += 1

    def stats(self) -> VenueStats:
        """A snapshot of the counters."""
        live_drops = sum(c.outbox.dropped for c in self.clients)
        return VenueStats(
            accepted=self.accepted,
            open=len(self.clients),
            frames_sent=self.frames_sent,
            frames_dropped=self.dropped_closed + live_drops,
            malformed_sent=self.malformed_sent,
            max_queued=self.high_water,
        )
