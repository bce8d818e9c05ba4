"""Delivery through the durable outbox to local receivers: retries, rate limits, routing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from alerts.dispatcher import Dispatcher
from alerts.file import FileSink
from alerts.notification import Notification
from alerts.notify import dedup_key
from alerts.outbox import Outbox
from alerts.webhook import WebhookSink
from monitor.model import AlertEvent, AlertState, Severity
from tests.receivers import Receiver, plain_ok, stall, status

TIMEOUT_S = 15.0


class _Route:
    def __init__(
        self,
        sinks: tuple[str, ...],
        severity: tuple[Severity, ...] = (),
        labels: dict[str, str] | None = None,
        repeat_interval: float = 3600.0,
    ) -> None:
        self.sinks, self.severity = sinks, severity
        self.labels = labels or {}
        self.repeat_interval = repeat_interval
        self.group_by: tuple[str, ...] = ()
        self.group_wait, self.group_interval = 0.0, 1.0


def _note(
    rule: str, state: AlertState = AlertState.FIRING, severity: Severity = Severity.CRITICAL
) -> Notification:
    event = AlertEvent(
        time.time(), rule, state, severity, (("portfolio", "main"),), 0.9, 0.7, "main"
    )
    return Notification(event, dedup_key(event), f"{severity.value} {rule}", "summary")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver({"/hook": plain_ok, "/pager": plain_ok, "/chat": plain_ok}) as r:
        yield r


def _dispatcher(
    tmp_path: Path, receiver: Receiver, rate: float = 50.0, routes: list[_Route] | None = None
) -> Dispatcher:
    sinks = {
        "log": FileSink("log", tmp_path / "alerts.jsonl"),
        "hook": WebhookSink("hook", receiver.url + "/hook", rate_per_s=rate, timeout_s=0.5),
        "pager": WebhookSink("pager", receiver.url + "/pager", rate_per_s=rate),
        "chat": WebhookSink("chat", receiver.url + "/chat", rate_per_s=rate),
    }
    return Dispatcher(sinks, routes or [_Route(("hook",))], Outbox(tmp_path / "o.sqlite"))


async def _running(dispatcher: Dispatcher) -> asyncio.Task[None]:
    return asyncio.create_task(dispatcher.run())


async def _stop(task: asyncio.Task[None], dispatcher: Dispatcher) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    dispatcher.close()


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_retry_after_5xx_and_timeout_are_retried_400_is_not(
    tmp_path: Path, receiver: Receiver
) -> None:
    """429 waits its Retry-After, 500 and a timeout are retried, 400 is given up and counted."""
    receiver.script("/hook", [status(429, retry_after=1.0), status(500), stall(2.0)])
    dispatcher = _dispatcher(tmp_path, receiver)
    task = await _running(dispatcher)
    dispatcher.submit([_note("spike")])
    await receiver.wait_for(lambda r: len([x for x in r if x.path == "/hook"]) >= 4, TIMEOUT_S)
    hooks = receiver.requests_to("/hook")
    assert hooks[1].arrived - hooks[0].arrived >= 0.95  # Retry-After honoured
    await _until(lambda: dispatcher.stats["hook"].sent == 1, "delivery after retries")
    assert dispatcher.stats["hook"].retried == 3
    assert dispatcher.queued("hook") == 0
    receiver.script("/hook", [status(400)])
    dispatcher.submit([_note("other")])
    await receiver.wait_for(lambda r: len([x for x in r if x.path == "/hook"]) >= 5, TIMEOUT_S)
    await _until(lambda: dispatcher.stats["hook"].failed == 1, "the 400 counted as failed")
    assert dispatcher.queued("hook") == 0
    await asyncio.sleep(0.5)
    assert len(receiver.requests_to("/hook")) == 5  # the 400 was not retried
    await _stop(task, dispatcher)


async def test_routes_by_severity_and_resolves_go_where_the_firing_went(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Critical to the pager, warning to chat; unmatched to the log file; resolve follows."""
    routes = [_Route(("pager",), (Severity.CRITICAL,)), _Route(("chat",), (Severity.WARNING,))]
    dispatcher = _dispatcher(tmp_path, receiver, routes=routes)
    task = await _running(dispatcher)
    dispatcher.submit(
        [
            _note("a", severity=Severity.CRITICAL),
            _note("b", severity=Severity.WARNING),
            _note("c", severity=Severity.INFO),
        ]
    )
    await receiver.wait_for(lambda r: len(r) >= 2, TIMEOUT_S)
    assert [r.json["rule"] for r in receiver.requests_to("/pager")] == ["a"]
    assert [r.json["rule"] for r in receiver.requests_to("/chat")] == ["b"]
    dispatcher.submit([_note("a", AlertState.RESOLVED, severity=Severity.CRITICAL)])
    await receiver.wait_for(lambda r: len(r) >= 3, TIMEOUT_S)
    resolved = receiver.requests_to("/pager")[-1].json
    assert (resolved["rule"], resolved["state"]) == ("a", "resolved")
    assert resolved["dedup_key"] == receiver.requests_to("/pager")[0].json["dedup_key"]
    await asyncio.sleep(0.3)
    assert '"rule":"c"' in (tmp_path / "alerts.jsonl").read_text().replace(" ", "")
    await _stop(task, dispatcher)


async def test_a_burst_of_1000_transitions_keeps_the_loop_free_and_the_rate_limit(
    tmp_path: Path, receiver: Receiver
) -> None:
    """submit() returns quickly, the loop keeps turning, no 1 s window exceeds the rate."""
    rate = 200.0
    dispatcher = _dispatcher(tmp_path, receiver, rate=rate)
    task = await _running(dispatcher)
    lags: list[float] = []

    async def ticker() -> None:  # stands in for the tick path on the same loop
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    dispatcher.submit([_note(f"rule-{n}") for n in range(1000)])
    submit_s = time.monotonic() - started
    await receiver.wait_for(lambda r: len(r) >= 1000, 3 * TIMEOUT_S)
    await _until(lambda: dispatcher.queued("hook") == 0, "an empty outbox")
    ticking.cancel()
    await _stop(task, dispatcher)
    arrivals = sorted(r.arrived for r in receiver.requests_to("/hook"))
    assert len(arrivals) == 1000
    window = max(
        sum(1 for t in arrivals[i:] if t < arrivals[i] + 1.0) for i in range(len(arrivals))
    )
    assert window <= rate * 1.05 + 1, window
    assert submit_s < 1.0, submit_s  # one SQLite transaction, not 1000 HTTP calls
    assert max(lags) < 0.5, max(lags)  # generous: a blocking sender would stall for seconds


async def test_submit_from_another_thread_while_the_workers_run(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The engine may run in a worker thread: its submissions land and wake the sink."""
    dispatcher = _dispatcher(tmp_path, receiver)
    task = await _running(dispatcher)
    await asyncio.gather(
        *(asyncio.to_thread(dispatcher.submit, [_note(f"threaded-{n}")]) for n in range(20))
    )
    await receiver.wait_for(lambda r: len(r) >= 20, TIMEOUT_S)
    assert sorted(r.json["rule"] for r in receiver.requests_to("/hook")) == sorted(
        f"threaded-{n}" for n in range(20)
    )
    await _stop(task, dispatcher)


class _FlakyOutbox(Outbox):
    """An outbox whose writes fail while ``broken`` (a full disk)."""

    broken = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self.broken:
            raise sqlite3.OperationalError("database or disk is full")
        with super().transaction():
            yield


async def test_an_unwritable_outbox_keeps_transitions_in_order_until_it_heals(
    tmp_path: Path, receiver: Receiver
) -> None:
    """submit never raises into the engine; workers survive; the firing and its resolve are
    recorded once the disk has room again, and arrive in order."""
    box = _FlakyOutbox(tmp_path / "o.sqlite")
    sinks = {
        "log": FileSink("log", tmp_path / "alerts.jsonl"),
        "hook": WebhookSink("hook", receiver.url + "/hook", rate_per_s=50.0),
    }
    dispatcher = Dispatcher(sinks, [_Route(("hook",))], box)
    task = await _running(dispatcher)
    box.broken = True
    dispatcher.submit([_note("full")])
    dispatcher.submit([_note("full", AlertState.RESOLVED)])
    await asyncio.sleep(1.5)  # the workers keep failing to read, and keep running
    assert receiver.requests == []
    assert not task.done()
    box.broken = False
    await receiver.wait_for(lambda r: len(r) >= 2, TIMEOUT_S)
    assert [r.json["state"] for r in receiver.requests_to("/hook")] == ["firing", "resolved"]
    await _stop(task, dispatcher)
