"""Routing and delivery: alert changes go through the outbox to each sink at its own pace.

``submit`` is synchronous and quick (one SQLite transaction per batch) and may be called from
any thread, so the engine is never held up by a slow receiver. One worker per sink takes its
most urgent due work from the outbox (:mod:`alerts.ledger`) and sends it no faster than the
sink's rate limit, critical before warning before info, new firings before resolves before
reminders, whatever the queue holds.

What each receiver gets (per alert, a resolve is never delivered before its firing):

- Chat sinks (Slack, Discord, Telegram, Teams) group changes per route as Alertmanager does
  (``group_by``, ``group_wait``, ``group_interval``; a critical firing waits at most
  ``critical_wait_s``): one change alone is the full message; several are a digest naming each
  alert, at most the sink's ``digest_max_items`` per message. An episode that fired and
  resolved while the sink waited is one line, "fired at X, resolved at Y".
- PagerDuty, the generic webhook and the file sinks get one event per alert, at once: an
  episode that fired and resolved while waiting is its trigger then its resolve, in order.
- Alertmanager gets one alert per alert (it groups and deduplicates itself); a firing ends
  ``hold_s`` after each send and is re-sent every ``resend_interval``; an episode that fired
  and resolved while waiting is one alert with its real ``startsAt`` and ``endsAt``, which
  Alertmanager records without notifying anyone.

Answers:

- 2xx: delivered; a success that spends the receiver's budget (Discord's
  ``X-RateLimit-Remaining: 0``) pauses the sink for the announced reset.
- 429 and 5xx, timeouts and network errors: retried with capped, jittered backoff, per alert
  and per sink (a dead receiver is not hammered); a ``Retry-After`` (or the API's own
  ``retry_after``) pauses the whole sink that long.
- other 4xx: not retried, logged loudly and counted as failed.
- a change undelivered for ``max_age_s``: given up and counted.

A still-firing alert is reminded after the route's ``repeat_interval`` (Alertmanager sinks
re-send their active alerts every ``resend_interval``). Logged answers and errors go through
the :class:`~alerts.redact.Redactor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
import structlog

from alerts.file import FileSink
from alerts.ledger import Item, Ledger, Work
from alerts.notification import Change, DigestSink, Notification, Outcome, Sink, Verdict
from alerts.outbox import Outbox
from alerts.redact import Redactor
from alerts.requests import chat_request, event_request, send, write
from alerts.routing import Route, repeat_interval

log = structlog.get_logger("riskmon.alerts")

MAX_BACKOFF_S = 300.0
REMINDER_CHECK_S = 1.0
MAX_UNSAVED = 10_000
"""Transitions kept in memory while the outbox cannot be written (disk full); the oldest beyond
are lost, and logged."""
STORAGE_RETRY_S = 1.0


@dataclass(slots=True)
class SinkStats:
    """Delivery counters of one sink (queue length and age come from the outbox).

    Attributes:
        sent: requests (messages, events) the receiver accepted.
        notified: alert changes the receiver now has (a digest counts every alert it names).
        failed: alert changes refused or given up.
        retried: requests to be retried.
        rate_limited: pauses the receiver asked for (429, or its rate-limit headers).
    """

    sent: int = 0
    notified: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a config reload changes in a running dispatcher (:meth:`Dispatcher.reconfigure`).

    Attributes:
        sinks: the sinks by name (the ``log`` file sink included).
        routes: the routes, in order.
        max_age_s: changes undelivered this long are given up.
        resend_s: per sink, the re-send interval of active alerts (Alertmanager).
        redactor: masks secrets in what is logged.
        critical_wait_s: the longest a critical firing waits for its group at a chat sink.
    """

    sinks: Mapping[str, Sink | FileSink]
    routes: Sequence[Route]
    max_age_s: float = 86400.0
    resend_s: Mapping[str, float] = field(default_factory=dict)
    redactor: Redactor = field(default_factory=Redactor)
    critical_wait_s: float = 5.0


@dataclass(slots=True)
class Dispatcher:
    """Routes notifications into the outbox and runs one delivery worker per sink.

    Args:
        sinks: configured sinks by name (the ``log`` file sink included).
        routes: configured routes, in order.
        outbox: the durable tables.
        max_age_s: changes undelivered this long are given up.
        resend_s: per sink, the re-send interval of active alerts (Alertmanager).
        clock: wall clock (Unix seconds), injectable.
        redactor: masks secrets in what is logged.
        max_backoff_s: longest wait between attempts.
        immediate: ignore ``group_wait`` and ``group_interval`` (a replay knows every change
            at once).
        critical_wait_s: the longest a critical firing waits for its group at a chat sink.
    """

    sinks: Mapping[str, Sink | FileSink]
    routes: Sequence[Route]
    outbox: Outbox
    max_age_s: float = 86400.0
    resend_s: Mapping[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    redactor: Redactor = field(default_factory=Redactor)
    max_backoff_s: float = MAX_BACKOFF_S
    immediate: bool = False
    critical_wait_s: float = 5.0
    stats: dict[str, SinkStats] = field(init=False)
    suppressed: Counter[str] = field(default_factory=Counter, init=False)
    ledger: Ledger = field(init=False)
    _wake: dict[str, asyncio.Event] = field(init=False)
    _paused_until: dict[str, float] = field(default_factory=dict, init=False)
    _failures: Counter[str] = field(default_factory=Counter, init=False)
    _settled: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _unsaved: list[Notification] = field(default_factory=list, init=False)
    _unsaved_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _running: bool = field(default=False, init=False)
    _retire: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _pending: tuple[Delivery, asyncio.Event] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.stats = {name: SinkStats() for name in self.sinks}
        self._wake = {name: asyncio.Event() for name in self.sinks}
        self.ledger = self._ledger()
        carried = self.ledger.carry_legacy(self.clock())
        if carried:
            log.info("alerts_outbox_upgraded", notifications=carried)

    def _ledger(self) -> Ledger:
        grouped = {name for name, sink in self.sinks.items() if isinstance(sink, DigestSink)}
        return Ledger(
            self.outbox, self.routes, tuple(self.sinks), grouped.__contains__, self.immediate,
            self.critical_wait_s,
        )  # fmt: skip

    def submit(self, notes: Iterable[Notification]) -> None:
        """Record rule transitions durably (one transaction) and wake the sinks they concern.

        Quick and thread-safe. A transition a receiver already has (a re-emission after a
        restart) or that is older than the alert's current episode is counted and ignored.
        When the outbox cannot be written, the transitions wait in memory (at most
        ``MAX_UNSAVED``) and are recorded, in order, once it can.
        """
        with self._unsaved_lock:
            batch = [*self._unsaved, *notes]
            if not batch:
                return
            try:
                result = self.ledger.record(batch, self.clock())
            except sqlite3.Error as exc:  # disk full, file gone: keep them, try again
                self._unsaved = batch[-MAX_UNSAVED:]
                lost = len(batch) - len(self._unsaved)
                log.error(
                    "alerts_outbox_unwritable", error=str(exc), waiting=len(self._unsaved),
                    lost=lost,
                )  # fmt: skip
                return
            self._unsaved = []
        if result.suppressed:
            self.suppressed.update(result.suppressed)
            log.info("alerts_suppressed", **dict(result.suppressed))
        self._wake_up(result.woken)

    async def run(self) -> None:
        """Deliver until cancelled; :meth:`reconfigure` swaps sinks and routes in between."""
        self._loop = asyncio.get_running_loop()
        self._running = True
        try:
            async with aiohttp.ClientSession() as session:
                while True:
                    self._retire.clear()
                    self._wake_up(self.sinks)  # changes left from before a restart or reload
                    async with asyncio.TaskGroup() as group:
                        for name in self.sinks:
                            group.create_task(self._worker(name, session))
                        reminders = group.create_task(self._reminders())
                        await self._retire.wait()
                        reminders.cancel()  # the workers return after the send under way
                    self._apply_pending()
        finally:
            self._running = False

    async def reconfigure(self, delivery: Delivery) -> None:
        """Deliver to ``delivery``'s sinks along its routes from now on (a config reload).

        The outbox is kept, and with it what every receiver has been told and what it is owed:
        a sink kept under the same name carries on where it was (its counters too), a removed
        one is no longer sent to (its rows stay, should it come back), and alerts still firing
        are sent to the sinks the new routes add for them. The workers finish the send under
        way first, so nothing is sent twice; returns once the new sinks are in place.
        """
        if not self._running:
            self._apply(delivery)
            return
        done = asyncio.Event()
        self._pending = (delivery, done)
        self._retire.set()
        for event in self._wake.values():
            event.set()
        await done.wait()

    def _apply_pending(self) -> None:
        if self._pending is not None:
            (delivery, done), self._pending = self._pending, None
            self._apply(delivery)
            done.set()

    def _apply(self, delivery: Delivery) -> None:
        for name, sink in self.sinks.items():
            if isinstance(sink, FileSink) and delivery.sinks.get(name) is not sink:
                sink.close()
        self.sinks, self.routes = delivery.sinks, delivery.routes
        self.max_age_s, self.resend_s = delivery.max_age_s, delivery.resend_s
        self.redactor, self.critical_wait_s = delivery.redactor, delivery.critical_wait_s
        self.stats = {name: self.stats.get(name) or SinkStats() for name in self.sinks}
        self._wake = {name: self._wake.get(name) or asyncio.Event() for name in self.sinks}
        self.ledger = self._ledger()
        try:
            woken = self.ledger.route_active(self.clock())
        except sqlite3.Error as exc:  # the new routes apply from the next transition on
            log.error("alerts_outbox_error", error=str(exc), during="reconfigure")
            woken = set()
        log.info("alerts_reconfigured", sinks=sorted(self.sinks), routes=len(self.routes),
                 firing_routed=len(woken))  # fmt: skip
        self._wake_up(woken)

    async def flush(self, deadline_s: float) -> None:
        """Try to deliver everything due within ``deadline_s`` (at shutdown)."""
        self._retire.clear()
        async with aiohttp.ClientSession() as session:
            try:
                async with asyncio.timeout(deadline_s):
                    for name in self.sinks:
                        while await self._deliver_next(name, session):
                            pass
            except TimeoutError:
                queued = {n: q for n in self.sinks if (q := self.outbox.queued(n))}
                log.warning("alerts_flush_incomplete", queued=queued)

    async def deliver_all(self, timeout_s: float) -> bool:
        """Run the workers until nothing is owed to any sink (True) or ``timeout_s`` passed."""
        task = asyncio.create_task(self.run())
        try:
            async with asyncio.timeout(timeout_s):
                while any(self.outbox.queued(name) for name in self.sinks):
                    self._settled.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(REMINDER_CHECK_S):
                            await self._settled.wait()
            return True
        except TimeoutError:
            return False
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def close(self) -> None:
        """Close the file sinks and the outbox."""
        for sink in self.sinks.values():
            if isinstance(sink, FileSink):
                sink.close()
        self.outbox.close()

    def queued(self, name: str) -> int:
        """Changes owed to ``name``."""
        return self.outbox.queued(name)

    # --- workers -------------------------------------------------------------------------------

    async def _worker(self, name: str, session: aiohttp.ClientSession) -> None:
        while not self._retire.is_set():
            try:
                if not await self._deliver_next(name, session):
                    await self._sleep_until_due(name)
            except sqlite3.Error as exc:  # the outbox is unusable for now: never a dead worker
                log.error("alerts_outbox_error", sink=name, error=str(exc))
                await asyncio.sleep(STORAGE_RETRY_S)

    async def _sleep_until_due(self, name: str) -> None:
        now = self.clock()
        due = self.outbox.next_due(name)
        wait = 1.0 if due is None else min(max(due - now, 0.01), 1.0)
        wait = max(wait, self._paused_until.get(name, 0.0) - now)
        event = self._wake[name]
        try:
            async with asyncio.timeout(wait):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()

    async def _deliver_next(self, name: str, session: aiohttp.ClientSession) -> bool:
        """Send the most urgent due work of one sink at its rate; whether there was any."""
        pause = self._paused_until.get(name, 0.0) - self.clock()
        if pause > 0 and await self._nap(pause):
            return False  # a reload retires the worker
        sink = self.sinks[name]
        now = self.clock()
        self._expire(name, now)
        limit = sink.digest_max_items if isinstance(sink, DigestSink) else 1
        work = self.ledger.pick(name, now, limit)
        if work is None:
            return False
        started = time.monotonic()
        outcome, sent = await self._send(sink, work, session, now)
        self._settle(name, work, sent, outcome)
        gap = 0.0 if isinstance(sink, FileSink) else 1.0 / sink.rate_per_s
        await self._nap(max(gap - (time.monotonic() - started), 0.0))
        return True

    async def _nap(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless a reload retires the workers first (then True)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._retire.wait()
        return self._retire.is_set()

    async def _send(
        self, sink: Sink | FileSink, work: Work, session: aiohttp.ClientSession, now: float
    ) -> tuple[Outcome, dict[str, Change]]:
        if isinstance(sink, FileSink):
            return write(sink, work.items[0])
        if isinstance(sink, DigestSink):
            request = chat_request(sink, work)
            sent = {item.dedup_key: item.change for item in work.items}
        else:
            request, change = event_request(sink, work.items[0], now)
            sent = {work.items[0].dedup_key: change}
        return await send(sink, request, session, self.redactor), sent

    def _settle(self, name: str, work: Work, sent: dict[str, Change], outcome: Outcome) -> None:
        stats, now = self.stats[name], self.clock()
        rules = sorted({item.rule for item in work.items})
        self._settled.set()
        if outcome.verdict is Verdict.DELIVERED:
            self.ledger.delivered(work, sent, now)
            stats.sent += 1
            stats.notified += len(work.items)
            self._failures[name] = 0
            if outcome.retry_after_s:
                self._pause(name, outcome.retry_after_s, "rate-limit headers")
            return
        detail = self.redactor(outcome.detail)
        if outcome.verdict is Verdict.REJECTED:
            log.error("alert_rejected", sink=name, rules=rules, detail=detail)
            self._give_up(name, work.items, detail)
            return
        stats.retried += 1
        self._failures[name] += 1
        attempts = max(item.row.attempts for item in work.items)
        delay = self._backoff(attempts)
        if outcome.retry_after_s is not None:
            delay = max(delay, outcome.retry_after_s)
            self._pause(name, outcome.retry_after_s, detail)
        else:  # the receiver itself is failing: every alert of the sink waits
            self._paused_until[name] = now + self._backoff(self._failures[name] - 1)
        self.ledger.failed(work, now + delay, detail)
        log.warning(
            "alert_retry", sink=name, rules=rules, detail=detail, attempts=attempts + 1,
            in_s=round(delay, 1),
        )  # fmt: skip

    def _backoff(self, attempts: int) -> float:
        base = min(self.max_backoff_s, 2.0 ** min(attempts, 16))
        return base * (0.5 + 0.5 * random.random())

    def _pause(self, name: str, seconds: float, why: str) -> None:
        self._paused_until[name] = max(self._paused_until.get(name, 0.0), self.clock() + seconds)
        self.stats[name].rate_limited += 1
        log.info("sink_paused", sink=name, seconds=round(seconds, 2), why=why)

    def _expire(self, name: str, now: float) -> None:
        items = self.ledger.expired(name, now - self.max_age_s)
        if items:
            self._give_up(name, items, f"undelivered for more than {self.max_age_s:g} s")

    def _give_up(self, name: str, items: Sequence[Item], why: str) -> None:
        self.ledger.give_up(items, why)
        self.stats[name].failed += len(items)
        rules = sorted({item.rule for item in items})
        log.error("alert_given_up", sink=name, rules=rules, changes=len(items), reason=why)

    async def _reminders(self) -> None:
        """Make reminders due for active alerts whose repeat or re-send interval has passed."""
        while True:
            await asyncio.sleep(REMINDER_CHECK_S)
            if self._unsaved:
                self.submit(())
            now = self.clock()
            try:
                due = [
                    name
                    for name in self.sinks
                    if self.ledger.remind(
                        name, now, self.resend_s.get(name) or repeat_interval(self.routes, name)
                    )
                ]
            except sqlite3.Error as exc:
                log.error("alerts_outbox_error", error=str(exc))
                continue
            self._wake_up(due)

    def _wake_up(self, names: Iterable[str]) -> None:
        """Wake the workers of ``names``, from the loop's thread or any other."""
        loop, wanted = self._loop, tuple(names)
        if loop is None or not wanted:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._set(wanted)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._set, wanted)

    def _set(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._wake[name].set()
