"""``riskmon bus status`` and ``riskmon bus prune``: what is on the bus, who owns it.

- status: the tick stream (messages, sequences, bytes, retention), the lease of every
  portfolio (worker, process, state dir), and every durable consumer of the stream with its
  owner, its backlog (messages of its subject not yet delivered), its deliveries awaiting
  acknowledgement, and how far it has acknowledged.
- prune: the consumers named with ``[bus] consumer_prefix`` that no lease lists: left by a
  worker that was re-sharded, renamed or removed (JetStream also removes them after ``[bus]
  consumer_inactive``). A dry run unless ``--yes``; it says what it removed. A worker whose
  consumer is pruned while it runs without its lease recreates it at its cursor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import api

from bus.jetstream import TRANSIENT
from bus.lease import LeaseValue, decode_lease, lease_bucket
from monitor.config.bus import BusConfig
from monitor.errors import RiskmonError


@dataclass(frozen=True, slots=True)
class ConsumerRow:
    """One durable consumer of the tick stream.

    Attributes:
        name: its durable name.
        subject: its filter subject.
        owner: the worker whose lease lists it; "" when none does.
        pending: messages of its subject not yet delivered (its backlog).
        ack_pending: deliveries awaiting acknowledgement.
        acked: the stream sequence acknowledged so far.
    """

    name: str
    subject: str
    owner: str
    pending: int
    ack_pending: int
    acked: int


@dataclass(frozen=True, slots=True)
class BusReport:
    """The stream, the leases and the consumers, as read at one moment."""

    stream: api.StreamInfo
    leases: dict[str, LeaseValue]
    consumers: list[ConsumerRow]

    def orphans(self, prefix: str) -> list[str]:
        """Consumers named with ``prefix`` that no lease lists."""
        return [c.name for c in self.consumers if not c.owner and c.name.startswith(prefix + "-")]


@contextlib.asynccontextmanager
async def _client(bus: BusConfig) -> AsyncIterator[NatsClient]:
    try:
        client = await nats.connect(
            servers=bus.servers,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=max(1, round(bus.request_timeout)),
        )
    except TRANSIENT as exc:  # NoServersError is a nats.errors.Error
        raise RiskmonError(
            f"[bus] url {bus.url}: cannot connect ({exc or type(exc).__name__})"
        ) from None
    try:
        yield client
    finally:
        with contextlib.suppress(*TRANSIENT):
            await client.close()


async def read_report(bus: BusConfig) -> BusReport:
    """Stream, leases and consumers of ``[bus]``.

    Raises:
        RiskmonError: NATS is unreachable, or the stream does not exist.
    """
    async with _client(bus) as client:
        jsm = client.jsm(timeout=float(bus.request_timeout))
        try:
            stream = await jsm.stream_info(bus.stream)
        except nats.js.errors.NotFoundError:
            raise RiskmonError(f"[bus] stream {bus.stream}: no such stream on {bus.url}") from None
        leases = await _leases(client, bus)
        owners = {name: lease.worker for lease in leases.values() for name in lease.consumers}
        infos = await jsm.consumers_info(bus.stream)
        rows = [
            ConsumerRow(
                name=info.name,
                subject=(info.config.filter_subject or "") if info.config else "",
                owner=owners.get(info.name, ""),
                pending=info.num_pending or 0,
                ack_pending=info.num_ack_pending or 0,
                acked=(info.ack_floor.stream_seq or 0) if info.ack_floor else 0,
            )
            for info in infos
        ]
        return BusReport(stream, leases, sorted(rows, key=lambda r: (r.owner == "", r.name)))


async def _leases(client: NatsClient, bus: BusConfig) -> dict[str, LeaseValue]:
    kv = await lease_bucket(client.jetstream(timeout=float(bus.request_timeout)), bus)
    try:
        keys = await kv.keys()
    except nats.js.errors.NoKeysError:
        return {}
    out = {}
    for key in keys:
        with contextlib.suppress(nats.js.errors.NotFoundError):  # expired, or released
            entry = await kv.get(key)
            lease = decode_lease(entry.value or b"")
            if lease is not None:
                out[key] = lease
    return out


async def prune(bus: BusConfig, names: list[str]) -> list[str]:
    """Delete the consumers ``names`` of the stream; the names deleted (gone ones skipped)."""
    removed = []
    async with _client(bus) as client:
        jsm = client.jsm(timeout=float(bus.request_timeout))
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await jsm.delete_consumer(bus.stream, name)
                removed.append(name)
    return removed


def format_report(report: BusReport, bus: BusConfig) -> list[str]:
    """The report as lines of text."""
    state = report.stream.state
    lines = [
        f"stream {bus.stream}: {state.messages:,} messages, sequences {state.first_seq:,} to "
        f"{state.last_seq:,}, {state.bytes:,} bytes (max_age {float(bus.max_age):g} s)",
        f"leases ({bus.lease_bucket}): {len(report.leases)}",
    ]
    for key, lease in sorted(report.leases.items()):
        lines.append(f"  {key}: worker {lease.worker}, {lease.process}, state {lease.owner}")
    lines.append(f"consumers: {len(report.consumers)}")
    lines.append(f"  {'name':<48} {'owner':<16} {'pending':>9} {'ack pending':>11} {'acked':>10}")
    for row in report.consumers:
        owner = row.owner or "ORPHAN"
        lines.append(
            f"  {row.name:<48} {owner:<16} {row.pending:>9,} {row.ack_pending:>11,} "
            f"{row.acked:>10,}"
        )
    orphans = report.orphans(bus.consumer_prefix)
    if orphans:
        lines.append(f"{len(orphans)} orphan consumers (no lease lists them): riskmon bus prune")
    return lines
