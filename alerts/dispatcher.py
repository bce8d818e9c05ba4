"""Routing and delivery: notifications go through the outbox to each sink at its own pace.

``submit`` is synchronous and quick (one SQLite transaction per batch), so the engine loop is
never held up by a slow receiver. One worker per sink takes due notifications from the outbox
and sends them no faster than the sink's rate limit:

- 2xx: delivered and removed.
- 429 and 5xx, timeouts and network errors: retried with capped, jittered backoff; a
  ``Retry-After`` (or the API's own retry_after) pauses the whole sink that long.
- other 4xx: not retried, logged loudly and counted as failed.
- older than ``max_age_s``: given up and counted.

Routing: every route whose severity and labels match sends to its sinks (the embedded ``log``
sink when none matches). A resolve goes where the firing went. A still-firing alert is
notified again after the route's ``repeat_interval`` (Alertmanager sinks re-send their active
alerts every ``resend_interval`` as Alertmanager expects).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import structlog

from alerts.file import FileSink
from alerts.notification import HttpRequest, Notification, Outcome, Sink, Verdict
from alerts.outbox import Outbox, Pending
from monitor.model import AlertState

log = structlog.get_logger("riskmon.alerts")

MAX_BACKOFF_S = 300.0


class Route(Protocol):
    """What the dispatcher needs of a configured route."""

    @property
    def sinks(self) -> tuple[str, ...]: ...
    @property
    def severity(self) -> tuple[object, ...]: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def repeat_interval(self) -> float: ...


@dataclass(slots=True)
class SinkStats:
    """Delivery counters of one sink (queue length and age come from the outbox)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0


@dataclass(slots=True)
class Dispatcher:
    """Routes notifications into the outbox and runs one delivery worker per sink.

    Args:
        sinks: configured sinks by name (the ``log`` file sink included).
        routes: configured routes, in order.
        outbox: the durable queue.
        max_age_s: undelivered notifications older than this are given up.
        resend_s: per sink, the re-send interval of active alerts (Alertmanager).
        clock: wall clock (Unix seconds), injectable.
    """

    sinks: Mapping[str, Sink | FileSink]
    routes: Sequence[Route]
    outbox: Outbox
    max_age_s: float = 86400.0
    resend_s: Mapping[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    stats: dict[str, SinkStats] = field(init=False)
    _wake: dict[str, asyncio.Event] = field(init=False)
    _paused_until: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.stats = {name: SinkStats() for name in self.sinks}
        self._wake = {name: asyncio.Event() for name in self.sinks}

    def targets(self, note: Notification) -> list[str]:
        """Sinks of every route matching the notification (``log`` when none does)."""
        labels = dict(note.event.labels)
        names: list[str] = []
        for route in self.routes:
            severities = {str(getattr(s, "value", s)) for s in route.severity}
            if severities and note.event.severity.value not in severities:
                continue
            if any(labels.get(k) != v for k, v in route.labels.items()):
                continue
            names.extend(n for n in route.sinks if n not in names)
        return names or ["log"]

    def submit(self, notes: Iterable[Notification]) -> None:
        """Queue notifications durably (one transaction); returns at once."""
        now = self.clock()
        woken: set[str] = set()
        with self.outbox.transaction():
            for note in notes:
                if note.event.state is AlertState.FIRING:
                    sinks = self.targets(note)
                    for sink in sinks:
                        self.outbox.activate(sink, note, now)
                else:
                    sinks = self.outbox.deactivate(note.dedup_key) or self.targets(note)
                for sink in sinks:
                    if sink in self.sinks:
                        self.outbox.enqueue(sink, note, now)
                        woken.add(sink)
        for sink in woken:
            self._wake[sink].set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
            for name in self.sinks:
                group.create_task(self._worker(name, session))
            group.create_task(self._reminders())

    async def flush(self, deadline_s: float) -> None:
        """Try to deliver everything due within ``deadline_s`` (at shutdown)."""
        async with aiohttp.ClientSession() as session:
            try:
                async with asyncio.timeout(deadline_s):
                    for name in self.sinks:
                        while await self._deliver_due(name, session):
                            pass
            except TimeoutError:
                log.warning(
                    "alerts_flush_incomplete",
                    queued={n: self.outbox.queued(n) for n in self.sinks if self.outbox.queued(n)},
                )

    async def _worker(self, name: str, session: aiohttp.ClientSession) -> None:
        while True:
            if not await self._deliver_due(name, session):
                await self._sleep_until_due(name)

    async def _sleep_until_due(self, name: str) -> None:
        now = self.clock()
        due = self.outbox.next_attempt(name)
        wait = 1.0 if due is None else min(max(due - now, 0.01), 1.0)
        wait = max(wait, self._paused_until.get(name, 0.0) - now)
        event = self._wake[name]
        try:
            async with asyncio.timeout(wait):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()

    async def _deliver_due(self, name: str, session: aiohttp.ClientSession) -> bool:
        """Send the due notifications of one sink at its rate; whether any was due."""
        items = self.outbox.due(name, self.clock())
        if not items:
            return False
        sink = self.sinks[name]
        gap = 0.0 if isinstance(sink, FileSink) else 1.0 / sink.rate_per_s
        for item in items:
            pause = self._paused_until.get(name, 0.0) - self.clock()
            if pause > 0:
                await asyncio.sleep(pause)
            if self.clock() - item.created > self.max_age_s:
                self._give_up(name, item, "too old")
                continue
            started = time.monotonic()
            outcome = await self._send(sink, item, session)
            self._settle(name, item, outcome)
            await asyncio.sleep(max(gap - (time.monotonic() - started), 0.0))
        return True

    async def _send(
        self, sink: Sink | FileSink, item: Pending, session: aiohttp.ClientSession
    ) -> Outcome:
        if isinstance(sink, FileSink):
            sink.write(item.note)
            return Outcome(Verdict.DELIVERED)
        return await send(sink, _request_for(sink, item, self.clock()), session)

    def _settle(self, name: str, item: Pending, outcome: Outcome) -> None:
        stats = self.stats[name]
        if outcome.verdict is Verdict.DELIVERED:
            self.outbox.delivered(item)
            stats.sent += 1
            return
        if outcome.verdict is Verdict.REJECTED:
            log.error("alert_rejected", sink=name, rule=item.note.event.rule, detail=outcome.detail)
            self._give_up(name, item, outcome.detail)
            return
        stats.retried += 1
        delay = min(MAX_BACKOFF_S, 2.0 ** min(item.attempts, 10)) * (0.5 + 0.5 * random.random())
        if outcome.retry_after_s is not None:
            delay = max(delay, outcome.retry_after_s)
            self._paused_until[name] = self.clock() + outcome.retry_after_s
        self.outbox.retry(item, self.clock() + delay, outcome.detail)
        log.warning(
            "alert_retry",
            sink=name,
            rule=item.note.event.rule,
            detail=outcome.detail,
            attempts=item.attempts + 1,
            in_s=round(delay, 1),
        )

    def _give_up(self, name: str, item: Pending, why: str) -> None:
        self.outbox.drop(item)
        self.stats[name].failed += 1
        log.error("alert_given_up", sink=name, rule=item.note.event.rule, reason=why)

    async def _reminders(self) -> None:
        """Re-queue active alerts whose repeat or re-send interval has passed."""
        while True:
            await asyncio.sleep(1.0)
            now = self.clock()
            batch: list[tuple[str, Notification]] = []
            for name in self.sinks:
                every = self.resend_s.get(name) or self._repeat(name)
                for note, notified in self.outbox.active(name):
                    if now - notified >= every:
                        batch.append((name, note))
            if batch:
                with self.outbox.transaction():
                    for name, note in batch:
                        self.outbox.touch(name, note.dedup_key, now)
                        self.outbox.enqueue(name, note, now)
                for name in {n for n, _ in batch}:
                    self._wake[name].set()

    def _repeat(self, name: str) -> float:
        intervals = [float(r.repeat_interval) for r in self.routes if name in r.sinks]
        return min(intervals, default=4 * 3600.0)

    def close(self) -> None:
        """Close the file sinks and the outbox."""
        for sink in self.sinks.values():
            if isinstance(sink, FileSink):
                sink.close()
        self.outbox.close()

    def queued(self, name: str) -> int:
        """Notifications waiting for ``name``."""
        return self.outbox.queued(name)


def _request_for(sink: Sink, item: Pending, now: float) -> HttpRequest:
    """A re-send of an active Alertmanager alert carries a fresh endsAt."""
    resend = getattr(sink, "resend_request", None)
    if resend is not None and item.note.event.state is AlertState.FIRING and item.attempts == 0:
        request: HttpRequest = resend(item.note, now)
        return request
    return sink.render(item.note)


async def send(sink: Sink, request: HttpRequest, session: aiohttp.ClientSession) -> Outcome:
    """POST one rendered request and classify the answer; network failures are retryable."""
    timeout = aiohttp.ClientTimeout(total=float(getattr(sink, "timeout_s", 10.0)))
    try:
        async with session.request(
            request.method,
            request.url,
            data=request.body,
            headers=dict(request.headers),
            timeout=timeout,
        ) as resp:
            return sink.classify(resp.status, resp.headers, await resp.read())
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Outcome(Verdict.RETRY, None, type(exc).__name__)
