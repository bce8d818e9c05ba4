"""A config reload swaps the dispatcher's sinks and routes while it runs: the outbox and what
each receiver was told are kept, nothing is sent twice, and firing alerts reach added sinks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.dispatcher import Delivery, Dispatcher
from alerts.file import FileSink
from alerts.notification import Notification, Sink
from alerts.outbox import Outbox
from alerts.webhook import WebhookSink
from monitor.model import AlertState, Severity
from tests.integration.test_dispatcher import TIMEOUT_S, _note, _Route, _until
from tests.receivers import Receiver, Reply, plain_ok

STALL_S = 1.5


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver({"/pager": plain_ok, "/chat": plain_ok}) as r:
        yield r


def _sinks(tmp_path: Path, receiver: Receiver, *names: str) -> dict[str, Sink | FileSink]:
    sinks: dict[str, Sink | FileSink] = {"log": FileSink("log", tmp_path / "alerts.jsonl")}
    for name in names:
        sinks[name] = WebhookSink(name, f"{receiver.url}/{name}", rate_per_s=50.0, timeout_s=5.0)
    return sinks


def _seen(receiver: Receiver, path: str) -> list[tuple[str, str]]:
    """(rule, state) of every request to ``path``, in order."""
    return [(r.json["rule"], r.json["state"]) for r in receiver.requests_to(path)]


def _resolve(note: Notification) -> Notification:
    event = note.event
    resolved = type(event)(
        time.time(), event.rule, AlertState.RESOLVED, event.severity, event.labels, 0.5, 0.7,
        event.portfolio,
    )  # fmt: skip
    return Notification(resolved, note.dedup_key, note.title, "resolved")


async def test_a_reload_waits_for_the_send_under_way_and_sends_nothing_twice(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The pager is answering slowly when the reload comes: the reload returns once that answer
    is recorded, the new worker does not send the alert again, and the counters carry on."""
    receiver.script("/pager", [Reply(200, stall_s=STALL_S)])
    routes = [_Route(("pager",))]
    dispatcher = Dispatcher(_sinks(tmp_path, receiver, "pager"), routes, Outbox(tmp_path / "o"))
    task = asyncio.create_task(dispatcher.run())
    try:
        dispatcher.submit([_note("spike")])
        await receiver.wait_for(lambda r: len(r) == 1, TIMEOUT_S)  # the send is under way
        started = time.monotonic()
        await dispatcher.reconfigure(Delivery(_sinks(tmp_path, receiver, "pager"), routes))
        assert time.monotonic() - started > STALL_S / 2  # it waited for the answer
        assert dispatcher.stats["pager"].sent == 1
        assert dispatcher.queued("pager") == 0
        await asyncio.sleep(1.0)
        assert _seen(receiver, "/pager") == [("spike", "firing")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        dispatcher.close()


async def test_added_sinks_get_what_is_firing_and_told_sinks_get_the_resolve(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Routes move critical alerts from the pager to chat: chat gets the firing alerts (the
    critical and the warning that went nowhere before) once; the pager is not told again, but
    gets the resolve of what it was told, as chat does."""
    before = [_Route(("pager",), (Severity.CRITICAL,))]
    dispatcher = Dispatcher(_sinks(tmp_path, receiver, "pager"), before, Outbox(tmp_path / "o"))
    task = asyncio.create_task(dispatcher.run())
    try:
        critical = _note("spike", severity=Severity.CRITICAL)
        warning = _note("drift", severity=Severity.WARNING)
        dispatcher.submit([critical, warning])
        await receiver.wait_for(lambda r: len(r) == 1, TIMEOUT_S)
        after = [_Route(("chat",), (Severity.CRITICAL, Severity.WARNING))]
        await dispatcher.reconfigure(Delivery(_sinks(tmp_path, receiver, "pager", "chat"), after))
        await receiver.wait_for(lambda r: len(r) == 3, TIMEOUT_S)
        assert sorted(_seen(receiver, "/chat")) == [("drift", "firing"), ("spike", "firing")]
        await dispatcher.reconfigure(Delivery(_sinks(tmp_path, receiver, "pager", "chat"), after))
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == 3  # a second reload tells nobody anything again
        dispatcher.submit([_resolve(critical)])
        await receiver.wait_for(lambda r: len(r) == 5, TIMEOUT_S)
        assert _seen(receiver, "/pager") == [("spike", "firing"), ("spike", "resolved")]
        assert _seen(receiver, "/chat")[-1] == ("spike", "resolved")
        # A receiver has the request before the sink has its answer: wait for both counters.
        await _until(lambda: dispatcher.stats["chat"].sent == 3, "chat's counter")
        await _until(lambda: dispatcher.stats["pager"].sent == 2, "the pager's counter")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        dispatcher.close()


async def test_a_removed_sink_is_sent_nothing_more_and_before_run_applies_at_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A sink the reload drops gets no more requests and leaves the metrics; a dispatcher that
    does not run yet takes the new sinks at once."""
    routes = [_Route(("pager", "chat"))]
    dispatcher = Dispatcher(
        _sinks(tmp_path, receiver, "pager", "chat"), routes, Outbox(tmp_path / "o")
    )
    await dispatcher.reconfigure(
        Delivery(_sinks(tmp_path, receiver, "pager"), [_Route(("pager",))])
    )
    assert set(dispatcher.stats) == {"log", "pager"}
    task = asyncio.create_task(dispatcher.run())
    try:
        dispatcher.submit([_note("spike")])
        await receiver.wait_for(lambda r: len(r) == 1, TIMEOUT_S)
        await asyncio.sleep(0.5)
        assert _seen(receiver, "/pager") == [("spike", "firing")]
        assert _seen(receiver, "/chat") == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        dispatcher.close()
