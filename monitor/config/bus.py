"""``[bus]``: NATS JetStream between ``riskmon run --role feeds`` and ``--role engine`` workers.

Only the split roles read this section; ``--role all`` (the default) never connects to NATS.
:func:`bus_problems` holds the checks that span several keys; :mod:`monitor.config.checks`
reports them like every other section's, naming the key and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from monitor.config.durations import Duration, PositiveDuration, format_duration, parse_duration

NATS_URLS_PATTERN = r"^(nats|tls)://[^\s,]+(,(nats|tls)://[^\s,]+)*$"
STREAM_NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
SUBJECT_PREFIX_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"

GIB = 1024**3
MAX_BATCH = 10_000  # 240 kB of columns: well under NATS's default 1 MB payload limit


def _seconds(text: str) -> PositiveDuration:
    return PositiveDuration(parse_duration(text))


class BusConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[bus]``: where ticks travel between the feeds role and the engine workers.

    Attributes:
        url: NATS server URL, or several separated by commas (a cluster).
        stream: JetStream stream holding the ticks (created or updated by both roles).
        subject_prefix: ticks go to ``<prefix>.<venue>.<symbol>``, one subject per symbol.
        storage: "file" (survives a server restart) or "memory".
        replicas: copies of the stream in a NATS cluster (1 to 5).
        max_age: ticks older than this are removed from the stream: how far back a worker
            without a checkpoint warms up, and how long a stopped worker can catch up.
        max_bytes: size limit of the stream; the oldest ticks go first.
        duplicate_window: JetStream drops a publish whose ``Nats-Msg-Id`` it stored within
            this window, so a publish retried after a lost acknowledgement is stored once.
        ack_wait: a delivered tick not acknowledged within this is delivered again.
        max_ack_pending: delivered, unacknowledged messages per consumer before delivery
            pauses; it also bounds the messages a worker holds back per consumer to merge
            its symbols into stream order (a worker never pulls beyond it).
        fetch_batch: messages asked for per pull request of an engine worker.
        poll_interval: longest pause between two pulls of a worker whose subjects are idle.
        mark_interval: the feeds role marks every symbol that had no tick for this long; a
            worker holds a tick until each of its symbols has a tick or mark at least as late
            in the stream, so this bounds the delay a quiet symbol adds.
        linger: the feeds role publishes each subject's ticks as one message (a batch) this
            long after the first of them (the delay batching adds, at most).
        max_batch: a batch is published as soon as it holds this many ticks.
        publish_buffer: ticks the feeds role holds while NATS is unreachable (at least
            ``max_batch``); when full the oldest messages are dropped and their ticks counted
            (``riskmon_bus_buffer_dropped_total``).
        publish_window: publishes awaiting their acknowledgement at once.
        publish_timeout: an acknowledgement not received within this is a failed publish,
            retried with the same message id.
        request_timeout: JetStream API requests and pulls.
        reconnect_wait: pause between two connection attempts to the same server.
        consumer_prefix: durable consumer names start with it.
        lease_bucket: NATS KV bucket of the workers' leases, one per portfolio (``riskmon bus
            status`` lists the holders).
        lease_ttl: a lease not renewed for this long expires (a worker renews every third of
            it and stops applying ticks, and so alerting, once its lease is not certain).
        lease_wait: how long a worker whose portfolio another worker holds waits for it,
            logging the holder, before it exits (code 2); "0s": exit at once.
        consumer_inactive: JetStream removes a worker's durable consumer this long after
            its last pull (a worker gone, re-sharded or renamed leaves none behind); a worker
            recreates its consumers at its checkpoint at start, so nothing depends on them.
        publish_stall: the feeds role reports not ready (``/readyz``, and a log line) once
            its publishes have failed, or had no answer, for this long.
        options_subject: option marks (mark IV and basis of each option ticker) go to
            ``<options_subject>.<venue>.<instrument>`` as plain NATS messages, outside the
            stream: only the latest matters, and engine workers price options with it.
    """

    url: Annotated[str, Meta(pattern=NATS_URLS_PATTERN)] = "nats://127.0.0.1:4222"
    stream: Annotated[str, Meta(pattern=STREAM_NAME_PATTERN)] = "RISKMON_TICKS"
    subject_prefix: Annotated[str, Meta(pattern=SUBJECT_PREFIX_PATTERN)] = "riskmon.ticks"
    storage: Literal["file", "memory"] = "file"
    replicas: Annotated[int, Meta(ge=1, le=5)] = 1
    max_age: PositiveDuration = _seconds("1h")
    max_bytes: Annotated[int, Meta(ge=1024)] = GIB
    duplicate_window: PositiveDuration = _seconds("2m")
    ack_wait: PositiveDuration = _seconds("30s")
    max_ack_pending: Annotated[int, Meta(ge=1)] = 10_000
    fetch_batch: Annotated[int, Meta(ge=1, le=10_000)] = 5_000
    poll_interval: PositiveDuration = _seconds("50ms")
    mark_interval: PositiveDuration = _seconds("100ms")
    linger: PositiveDuration = _seconds("5ms")
    max_batch: Annotated[int, Meta(ge=1, le=MAX_BATCH)] = 1_000
    publish_buffer: Annotated[int, Meta(ge=100)] = 100_000
    publish_window: Annotated[int, Meta(ge=1, le=10_000)] = 500
    publish_timeout: PositiveDuration = _seconds("2s")
    request_timeout: PositiveDuration = _seconds("5s")
    reconnect_wait: PositiveDuration = _seconds("1s")
    consumer_prefix: Annotated[str, Meta(pattern=STREAM_NAME_PATTERN)] = "riskmon"
    options_subject: Annotated[str, Meta(pattern=SUBJECT_PREFIX_PATTERN)] = "riskmon.options"
    lease_bucket: Annotated[str, Meta(pattern=STREAM_NAME_PATTERN)] = "riskmon_leases"
    lease_ttl: PositiveDuration = _seconds("10s")
    lease_wait: Duration = _seconds("30s")
    consumer_inactive: PositiveDuration = _seconds("1h")
    publish_stall: PositiveDuration = _seconds("10s")

    @property
    def servers(self) -> list[str]:
        """The server URLs."""
        return self.url.split(",")


def bus_problems(bus: BusConfig) -> Iterator[tuple[str, str]]:
    """(key, what was expected) for every cross-key problem of ``[bus]``."""
    if bus.duplicate_window > bus.max_age:
        yield (
            "duplicate_window",
            f'expected a duration no longer than max_age ("{format_duration(bus.max_age)}"), '
            f'got "{format_duration(bus.duplicate_window)}"',
        )
    if bus.lease_ttl < 2 * bus.request_timeout:  # renewed every third: one may time out
        yield (
            "lease_ttl",
            f'expected at least twice request_timeout ("{format_duration(bus.request_timeout)}"), '
            f'got "{format_duration(bus.lease_ttl)}"',
        )
    if bus.fetch_batch > bus.max_ack_pending:
        yield (
            "fetch_batch",
            f"expected at most max_ack_pending ({bus.max_ack_pending}), got {bus.fetch_batch}",
        )
    if bus.publish_buffer < bus.max_batch:
        yield (
            "publish_buffer",
            f"expected at least max_batch ({bus.max_batch}), got {bus.publish_buffer}",
        )
    ticks, options = bus.subject_prefix + ".", bus.options_subject + "."
    if ticks.startswith(options) or options.startswith(ticks):
        yield (
            "options_subject",
            f'expected subjects outside the tick stream\'s "{bus.subject_prefix}.>", '
            f'got "{bus.options_subject}"',
        )
