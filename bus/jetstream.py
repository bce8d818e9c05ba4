"""NATS JetStream plumbing shared by the feeds role and the engine workers (nats-py).

- :func:`connect`: a client that reconnects forever (``max_reconnect_attempts=-1``, which also
  keeps the first connection attempt going until a server answers) and reports its state in
  a :class:`Link`.
- :func:`ensure_stream`: create the tick stream from ``[bus]``, or update it to match.
- :func:`recreate_consumer`: a durable pull consumer of one subject filter, starting right
  after a given stream sequence (deleted first: a consumer's start cannot be moved).
- :class:`Puller`: pull requests sent by hand, because ``no_wait`` pulls answer with a status
  (404 "No Messages", or 408 after a partial batch) that says the consumer had nothing more,
  which :mod:`bus.merge` needs; nats-py's ``fetch`` turns both into a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.manager import JetStreamManager

from bus.wire import stream_subjects
from monitor.config.bus import BusConfig

log = structlog.get_logger("riskmon.bus")

STATUS = "Status"
DRAINED = frozenset({"404", "408"})  # no messages / request expired after a partial batch
HEARTBEAT = "100"
STREAM_IN_USE = 10058  # JetStream err_code: "stream name already in use" (other config)
ERROR_LOG_EVERY_S = 30.0
PULL_PENDING_MSGS = 1_000_000  # the real bound is the batch size: one pull in flight
PULL_PENDING_BYTES = 1 << 30

TRANSIENT: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, TimeoutError)
"""Errors of an unreachable or restarting server: retried, never fatal."""


class BusProtocolError(Exception):
    """JetStream answered a pull with a status that needs the consumers recreated."""


@dataclass(slots=True)
class Link:
    """State of one NatsClient connection, updated by the client's callbacks.

    Attributes:
        connected: whether the connection is up now.
        reconnects: connections re-established after a loss.
        up: set while connected.
        errors: connection errors reported by the client.
        closing: set by the owner before it closes the connection (nothing to report then).
    """

    connected: bool = False
    reconnects: int = 0
    errors: int = 0
    closing: bool = False
    up: asyncio.Event = field(default_factory=asyncio.Event)
    _logged_error_at: float = -1e18

    def set(self, connected: bool) -> None:
        """Record a connection change."""
        self.connected = connected
        if connected:
            self.up.set()
        else:
            self.up.clear()

    def error(self, exc: Exception, name: str) -> None:
        """Count a client error; log it at most every ``ERROR_LOG_EVERY_S`` seconds."""
        self.errors += 1
        now = time.monotonic()
        if now - self._logged_error_at >= ERROR_LOG_EVERY_S:
            self._logged_error_at = now
            log.warning("bus_error", client=name, error=str(exc) or type(exc).__name__)


async def connect(bus: BusConfig, name: str, link: Link) -> NatsClient:
    """Connect to ``[bus] url``, retrying until a server answers.

    Args:
        bus: the bus configuration.
        name: client name shown by the server (role and worker).
        link: receives the connection's state changes.
    """

    async def disconnected() -> None:
        link.set(False)
        if not link.closing:
            log.warning("bus_disconnected", client=name)

    async def reconnected() -> None:
        link.reconnects += 1
        link.set(True)
        log.info("bus_reconnected", client=name, reconnects=link.reconnects)

    async def error(exc: Exception) -> None:
        link.error(exc, name)

    async def closed() -> None:
        link.set(False)

    client = await nats.connect(
        servers=bus.servers,
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=bus.reconnect_wait,
        connect_timeout=max(1, round(bus.request_timeout)),
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        closed_cb=closed,
    )
    link.set(True)
    server = client.connected_url.netloc if client.connected_url else ""
    log.info("bus_connected", client=name, server=server)
    return client


async def connect_beating(
    bus: BusConfig, name: str, link: Link, beat: Callable[[], None], every_s: float = 1.0
) -> NatsClient:
    """:func:`connect`, calling ``beat`` every ``every_s`` while no server answers yet.

    The caller's loop counts as alive while it waits for a server (its liveness probe stays
    green; readiness says the bus is disconnected).
    """
    connecting = asyncio.create_task(connect(bus, name, link))
    try:
        while not connecting.done():
            beat()
            await asyncio.wait({connecting}, timeout=every_s)
    except BaseException:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, *TRANSIENT):
            await connecting
        raise
    return connecting.result()


def stream_config(bus: BusConfig) -> api.StreamConfig:
    """The tick stream as ``[bus]`` describes it."""
    return api.StreamConfig(
        name=bus.stream,
        description="riskmon ticks, one subject per venue and symbol",
        subjects=stream_subjects(bus.subject_prefix),
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        max_age=float(bus.max_age),
        max_bytes=bus.max_bytes,
        storage=api.StorageType.FILE if bus.storage == "file" else api.StorageType.MEMORY,
        num_replicas=bus.replicas,
        duplicate_window=float(bus.duplicate_window),
    )


async def ensure_stream(jsm: JetStreamManager, bus: BusConfig) -> api.StreamInfo:
    """Create the tick stream, or update an existing one to ``[bus]``'s limits."""
    config = stream_config(bus)
    try:
        return await jsm.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != STREAM_IN_USE:
            raise
    info = await jsm.update_stream(config)
    log.info("bus_stream_updated", stream=bus.stream)
    return info


async def recreate_consumer(
    jsm: JetStreamManager, bus: BusConfig, durable: str, subject: str, after: int
) -> None:
    """(Re)create durable pull consumer ``durable`` of ``subject`` from sequence ``after + 1``.

    ``after = 0`` delivers everything the stream holds. Acknowledgements are cumulative
    (``AckPolicy.ALL``): the worker acknowledges the last tick it applied of each pull.
    JetStream removes the consumer ``[bus] consumer_inactive`` after its last pull, so a
    worker that is gone (or re-sharded, or renamed) leaves no consumer behind.
    """
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await jsm.delete_consumer(bus.stream, durable)
    start = (
        {"deliver_policy": api.DeliverPolicy.ALL}
        if after <= 0
        else {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": after + 1}
    )
    config = api.ConsumerConfig(
        durable_name=durable,
        description=f"riskmon engine worker: {subject}",
        filter_subject=subject,
        ack_policy=api.AckPolicy.ALL,
        ack_wait=float(bus.ack_wait),
        max_ack_pending=bus.max_ack_pending,
        replay_policy=api.ReplayPolicy.INSTANT,
        inactive_threshold=float(bus.consumer_inactive),
        **start,
    )
    await jsm.add_consumer(bus.stream, config, timeout=float(bus.request_timeout))


class Puller:
    """Pull requests to one durable consumer, answered on this puller's own inbox.

    One request is in flight at a time, so every status answers the request just sent. The
    answers are collected by a subscription callback (no task per message).
    """

    def __init__(self, client: NatsClient, bus: BusConfig, durable: str) -> None:
        self._client = client
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{bus.stream}.{durable}"
        self._timeout = float(bus.request_timeout)
        self._inbox = ""
        self._sub: Subscription | None = None
        self._messages: list[Msg] = []
        self._batch = 0
        self._answer: asyncio.Future[bool] | None = None

    async def open(self) -> None:
        """Subscribe a fresh inbox (a late answer to an abandoned request cannot reach it)."""
        await self.close()
        self._inbox = self._client.new_inbox()
        self._sub = await self._client.subscribe(
            self._inbox,
            cb=self._on_message,
            pending_msgs_limit=PULL_PENDING_MSGS,
            pending_bytes_limit=PULL_PENDING_BYTES,
        )

    async def close(self) -> None:
        """Drop the inbox subscription."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(*TRANSIENT):
                await sub.unsubscribe()

    async def pull(self, batch: int) -> tuple[list[Msg], bool]:
        """Up to ``batch`` messages, and whether the consumer said it had nothing more.

        Raises:
            TimeoutError: no complete answer within ``request_timeout``.
            BusProtocolError: a status that is not "no more messages" (consumer deleted...).
        """
        if self._sub is None:
            await self.open()
        self._messages, self._batch = [], batch
        self._answer = asyncio.get_running_loop().create_future()
        request = json.dumps({"batch": batch, "no_wait": True}).encode()
        await self._client.publish(self._api, request, reply=self._inbox)
        async with asyncio.timeout(self._timeout):
            drained = await self._answer
        return self._messages, drained

    async def _on_message(self, msg: Msg) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return  # no request waiting: a late answer, dropped (the caller rewinds)
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:
            self._messages.append(msg)
            if len(self._messages) >= self._batch:
                answer.set_result(False)
        elif status in DRAINED:
            answer.set_result(True)
        elif status != HEARTBEAT:
            description = (msg.headers or {}).get("Description", "")
            if status == "409" and "MaxAckPending" in description:
                answer.set_result(False)  # delivery paused until the held ones are acknowledged
            else:
                answer.set_exception(BusProtocolError(f"pull answered {status} {description}"))


def sequences(msg: Msg) -> tuple[int, int]:
    """(stream sequence, consumer delivery sequence) of a JetStream delivery.

    Read from the acknowledgement subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream
    seq>.<consumer seq>.<time>.<pending>``, or the newer form with domain and account hash
    after ``$JS.ACK`` and a random token at the end.

    Raises:
        BusProtocolError: not a JetStream delivery.
    """
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[6])
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[8])
    raise BusProtocolError(f"not a JetStream delivery: reply subject {msg.reply!r}")
