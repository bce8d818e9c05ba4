"""Exclusive ownership of portfolios among engine workers: leases in a NATS KV bucket.

Two workers that run the same portfolio would both send its alerts, and two workers of the
same name would delete each other's consumers. So before it touches a consumer, a worker
takes a *lease* on each of its portfolios: key ``portfolio.<name>`` in the KV bucket ``[bus]
lease_bucket``, whose entries expire ``[bus] lease_ttl`` after their last write (the bucket's
``max_age``). The value (:class:`LeaseValue`) names the worker, its owner (host and ``[state]
dir``), its process and its durable consumers (read by ``riskmon bus status`` and ``prune``).

- Taking: ``create`` succeeds only on an absent (or expired, or released) key. A key held by
  the same *owner* is taken over at once: that owner's ``[state] dir`` is locked by this
  process (:mod:`service.statelock`), so the holder is a previous run of this worker that died
  without releasing it. Held by another owner, the worker waits, logging the holder, and gives
  up with :class:`LeaseHeldError` after ``[bus] lease_wait`` (0: at once).
- Keeping: every third of the TTL, each key is updated on the revision last written
  (compare-and-set). A lease is *valid* until a TTL after the last renewal *sent* that
  succeeded; while it is not (NATS unreachable, frozen) the worker applies nothing and so
  sends no alert. Renewals that fail for a transient reason are retried; once NATS answers
  again, a key still ours, or expired and free, is taken again. A key another owner holds by
  then means the portfolio moved: :class:`LeaseLostError`, and the process stops (a
  supervisor restarts it as a claimant).
- Releasing: at a clean stop the keys are deleted, so a successor starts without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from bus.jetstream import TRANSIENT, Link, connect_beating
from monitor.config.bus import BusConfig
from monitor.errors import RiskmonError

log = structlog.get_logger("riskmon.bus")

KEY_PREFIX = "portfolio."
MARKET_KEY = "market"  # the lease of a worker without portfolios (it runs the market rules)
HELD_LOG_EVERY_S = 5.0


class LeaseHeldError(RiskmonError):
    """Another worker holds a portfolio's lease (after ``[bus] lease_wait``)."""


class LeaseLostError(RiskmonError):
    """Another worker took a portfolio's lease while this one could not renew it."""


class LeaseValue(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What a lease says of its holder.

    Attributes:
        worker: the worker's name (its consumers' names are built from it).
        owner: host and ``[state] dir``: the same owner is the same worker restarted.
        process: host, pid and start time of the holding process.
        consumers: the durable consumers the worker uses.
    """

    worker: str
    owner: str
    process: str
    consumers: tuple[str, ...] = ()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LeaseValue)


def decode_lease(data: bytes) -> LeaseValue | None:
    """The lease in a KV value; None when it is not one."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        return None


def lease_key(portfolio: str) -> str:
    """The KV key of a portfolio's lease (characters outside NATS key tokens as ``_``)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in portfolio)
    return KEY_PREFIX + safe


async def lease_bucket(js: JetStreamContext, bus: BusConfig) -> KeyValue:
    """The lease bucket, created with ``[bus] lease_ttl`` as its entries' lifetime."""
    try:
        return await js.key_value(bus.lease_bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    config = api.KeyValueConfig(
        bucket=bus.lease_bucket,
        description="riskmon engine workers: one lease per portfolio",
        history=1,
        ttl=float(bus.lease_ttl),
        storage=api.StorageType.FILE if bus.storage == "file" else api.StorageType.MEMORY,
        replicas=bus.replicas,
    )
    return await js.create_key_value(config)


def process_identity() -> str:
    """Host, pid and start time of this process."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"{socket.gethostname()} pid {os.getpid()} since {started}"


@dataclass(slots=True)
class Leases:
    """The leases of one worker's portfolios.

    Args:
        bus: the ``[bus]`` configuration.
        portfolios: the worker's portfolios.
        value: what the leases say of this worker.
        clock: monotonic seconds (injected in tests).
    """

    bus: BusConfig
    portfolios: Sequence[str]
    value: LeaseValue
    clock: Callable[[], float] = time.monotonic
    link: Link = field(default_factory=Link)
    valid_until: float = -1e18
    renewals: int = 0
    failures: int = 0
    _revisions: dict[str, int] = field(default_factory=dict)
    _payload: bytes = b""

    def __post_init__(self) -> None:
        self._payload = _encoder.encode(self.value)

    @property
    def keys(self) -> list[str]:
        """The KV keys of the worker's portfolios."""
        return [lease_key(p) for p in self.portfolios]

    def valid(self) -> bool:
        """Whether every lease is certainly still ours (renewed less than a TTL ago)."""
        return self.clock() < self.valid_until

    async def run(self, taken: asyncio.Event) -> None:
        """Connect, take every lease (waiting at most ``lease_wait``), set ``taken``, then
        renew until cancelled; release at the end.

        Raises:
            LeaseHeldError: another worker kept a lease for ``lease_wait``.
            LeaseLostError: another worker took a lease over.
        """
        name = f"riskmon-lease-{self.value.worker}"
        client = await connect_beating(self.bus, name, self.link, lambda: None)
        try:
            js = client.jetstream(timeout=float(self.bus.request_timeout))
            kv = await self._bucket(js)
            await self._take_all(kv)
            taken.set()
            await self._keep(kv)
        finally:
            await self._release(client, js)

    async def _bucket(self, js: JetStreamContext) -> KeyValue:
        while True:
            try:
                return await lease_bucket(js, self.bus)
            except TRANSIENT as exc:
                log.warning("bus_lease_bucket_unavailable", error=str(exc) or repr(exc))
                await asyncio.sleep(float(self.bus.reconnect_wait))

    async def _take_all(self, kv: KeyValue) -> None:
        """Take every key, waiting for holders at most ``lease_wait``."""
        deadline = self.clock() + float(self.bus.lease_wait)
        logged_at = -1e18
        while True:
            sent = self.clock()
            try:
                holders = [h for key in self.keys if (h := await self._take(kv, key)) is not None]
            except TRANSIENT as exc:
                self.failures += 1
                log.warning("bus_lease_unavailable", error=str(exc) or repr(exc))
                holders = []
                await asyncio.sleep(float(self.bus.reconnect_wait))
                continue
            if not holders:
                self.valid_until = sent + float(self.bus.lease_ttl)
                log.info("bus_leases_taken", worker=self.value.worker, keys=self.keys)
                return
            who = "; ".join(f"{key} by {_describe(v)}" for key, v in holders)
            if self.clock() >= deadline:
                raise LeaseHeldError(
                    f"engine worker {self.value.worker}: held by another worker: {who} "
                    f"(waited {format(float(self.bus.lease_wait), 'g')} s, [bus] lease_wait); "
                    "one worker per portfolio: stop the other one, or choose other portfolios"
                )
            if self.clock() - logged_at >= HELD_LOG_EVERY_S:
                logged_at = self.clock()
                log.warning("bus_lease_held", worker=self.value.worker, held=who)
            await asyncio.sleep(min(1.0, float(self.bus.lease_ttl) / 4))

    async def _take(self, kv: KeyValue, key: str) -> tuple[str, LeaseValue | None] | None:
        """Take ``key``; None when ours now, else (key, its holder)."""
        try:
            self._revisions[key] = await kv.create(key, self._payload)
            return None
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(key)
        except nats.js.errors.NotFoundError:
            return (key, None)  # expired or released in between: the next attempt takes it
        holder = decode_lease(entry.value or b"")
        if holder is not None and holder.owner == self.value.owner and entry.revision:
            try:  # a previous run of this very worker (its state dir is locked by us)
                self._revisions[key] = await kv.update(key, self._payload, last=entry.revision)
                return None
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
        return (key, holder)

    async def _keep(self, kv: KeyValue) -> None:
        """Renew every third of the TTL; retake after an outage; raise when lost."""
        ttl = float(self.bus.lease_ttl)
        while True:
            await asyncio.sleep(ttl / 3)
            sent = self.clock()
            try:
                for key in self.keys:
                    await self._renew(kv, key)
            except TRANSIENT as exc:
                self.failures += 1
                if not self.valid():
                    log.warning("bus_lease_expired", worker=self.value.worker, error=str(exc))
                continue
            was_valid = self.valid()
            self.valid_until = sent + ttl
            self.renewals += 1
            if not was_valid:
                log.info("bus_leases_retaken", worker=self.value.worker)

    async def _renew(self, kv: KeyValue, key: str) -> None:
        try:
            self._revisions[key] = await kv.update(key, self._payload, last=self._revisions[key])
        except nats.js.errors.KeyWrongLastSequenceError:
            holder = await self._take(kv, key)  # expired (free again), or taken by another
            if holder is not None:
                self.valid_until = -1e18
                raise LeaseLostError(
                    f"engine worker {self.value.worker}: {key} was taken over by "
                    f"{_describe(holder[1])} while this worker could not renew it"
                ) from None

    async def _release(self, client: NatsClient, js: JetStreamContext) -> None:
        """Delete our keys (on their revision: never another worker's) and disconnect."""
        self.valid_until = -1e18
        self.link.closing = True
        with contextlib.suppress(*TRANSIENT, nats.js.errors.Error):
            async with asyncio.timeout(2.0):
                kv = await js.key_value(self.bus.lease_bucket)
                for key, revision in self._revisions.items():
                    await kv.delete(key, last=revision)
        with contextlib.suppress(*TRANSIENT):
            async with asyncio.timeout(2.0):
                await client.close()


def _describe(holder: LeaseValue | None) -> str:
    if holder is None:
        return "a worker that is going away"
    return f"worker {holder.worker} ({holder.process}, state {holder.owner})"
