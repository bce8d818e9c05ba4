"""Alerts in a storm, on local receivers for every sink: outages, bursts, rate-limit headers.

- Receivers fail for OUTAGE_S (half refuse connections, half answer 503) while alerts fire and
  resolve; every sink then gets each firing before its resolve, or the documented coalesced
  form, and nothing twice.
- A burst of BURST transitions, then one critical: the critical reaches every chat sink within
  CRITICAL_WITHIN_S, and the burst arrives as digests no faster than each sink's rate.
- A Discord bucket that announces its exhaustion on successes is never overrun (no 429).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from alerts.dispatcher import Dispatcher
from alerts.file import FileSink
from alerts.notification import DigestSink, Notification, Sink
from alerts.notify import dedup_key
from alerts.outbox import Outbox
from monitor.config.durations import Duration, PositiveDuration
from monitor.config.schema import RouteConfig
from monitor.model import AlertEvent, AlertState, Severity
from tests.alertstory import CHAT_TYPES, changes, story
from tests.integration.test_receivers import SINKS, sink_for
from tests.receivers import ACCEPTANCES, Receiver, Recorded, Reply, json_reply, status

OUTAGE_S = 20.0
"""How long the receivers fail (the issue's scenario)."""
TIMEOUT_S = 30.0
"""Every other wait scales from this."""
BURST = 160
CRITICAL_WITHIN_S = 30.0
PATHS = {type_: path for type_, path, _ in SINKS}
ON_DOWN_RECEIVER = ("slack", "telegram", "pagerduty", "alertmanager")


def _route(
    sinks: Sequence[str], wait_s: float, interval_s: float, group_by: tuple[str, ...] = ()
) -> RouteConfig:
    return RouteConfig(
        sinks=tuple(sinks),
        group_by=group_by,
        group_wait=Duration(wait_s),
        group_interval=PositiveDuration(interval_s),
    )


def _note(rule: str, state: AlertState, severity: Severity = Severity.WARNING) -> Notification:
    event = AlertEvent(time.time(), rule, state, severity, (("symbol", "BTCUSDT"),), 2.0, 1.0)
    title = f"{severity.value.upper()} {rule} {state.value}"
    return Notification(event, dedup_key(event), title, f"{rule} is {state.value}")


def _dispatcher(
    tmp_path: Path, sinks: dict[str, Sink], routes: Sequence[RouteConfig]
) -> Dispatcher:
    every: dict[str, Sink | FileSink] = {"log": FileSink("log", tmp_path / "log.jsonl")}
    every.update(sinks)
    return Dispatcher(every, routes, Outbox(tmp_path / "outbox.sqlite"), max_backoff_s=2.0)


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    """Two receivers: one that will go down, one that will answer 503."""
    async with Receiver() as down, Receiver() as failing:
        yield down, failing


@contextlib.asynccontextmanager
async def _running(dispatcher: Dispatcher) -> AsyncIterator[None]:
    task = asyncio.create_task(dispatcher.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        dispatcher.close()


async def _until_told(
    receiver: Receiver,
    type_: str,
    rule: str,
    wanted: list[str],
    refused: set[int] | None = None,
) -> None:
    """Wait until the requests ``receiver`` accepted tell ``wanted`` about ``rule``."""

    def accepted(seen: list[Recorded]) -> list[Recorded]:
        return [r for r in seen if r.path == PATHS[type_] and id(r) not in (refused or ())]

    try:
        await receiver.wait_for(
            lambda seen: story(type_, accepted(seen), rule) == wanted, TIMEOUT_S
        )
    except TimeoutError:
        got = story(type_, accepted(receiver.requests), rule)
        pytest.fail(f"{type_} never told {rule} {wanted}; told {got}")


async def test_an_outage_during_fire_and_resolve_keeps_every_sinks_story_in_order(
    receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    """Receivers fail for 20 s while "before" resolves, "during" fires and resolves and
    "across" fires; after recovery every sink has the right story, each firing first."""
    down, failing = receivers
    where = {t: down if t in ON_DOWN_RECEIVER else failing for t in PATHS}
    sinks = {
        t: dataclasses.replace(sink_for(where[t], t, fields), rate_per_s=20.0)
        for t, _, fields in SINKS
    }
    for type_, path in PATHS.items():
        where[type_].route(path, ACCEPTANCES[type_])
    refused: set[int] = set()

    def refuse(request: Recorded) -> Reply:
        refused.add(id(request))
        return status(503)

    dispatcher = _dispatcher(tmp_path, sinks, [_route(list(PATHS), 0.5, 1.0)])
    async with _running(dispatcher):
        dispatcher.submit([_note("before", AlertState.FIRING)])
        for type_ in PATHS:
            await _until_told(where[type_], type_, "before", ["fired"])
        await down.down()
        for type_ in PATHS:
            if where[type_] is failing:
                failing.route(PATHS[type_], refuse)
        outage_started = time.monotonic()
        dispatcher.submit([_note("during", AlertState.FIRING)])
        await asyncio.sleep(1.0)
        dispatcher.submit([_note("across", AlertState.FIRING)])
        await asyncio.sleep(1.0)
        dispatcher.submit([_note("during", AlertState.RESOLVED)])
        dispatcher.submit([_note("before", AlertState.RESOLVED)])
        await asyncio.sleep(OUTAGE_S - (time.monotonic() - outage_started))
        assert all(dispatcher.stats[t].retried for t in PATHS), "nothing was attempted"
        await down.up()
        for type_ in PATHS:
            where[type_].route(PATHS[type_], ACCEPTANCES[type_])
        for type_ in PATHS:
            await _until_told(where[type_], type_, "across", ["fired"], refused)
        dispatcher.submit([_note("across", AlertState.RESOLVED)])
        for type_ in PATHS:
            await _until_told(where[type_], type_, "across", ["fired", "resolved"], refused)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
    for type_ in PATHS:
        requests = where[type_].requests_to(PATHS[type_])
        accepted = [r for r in requests if id(r) not in refused]
        episode = ["fired", "resolved"]
        coalesced = {"pagerduty": episode, "webhook": episode, "alertmanager": ["resolved"]}
        assert story(type_, accepted, "before") == episode, type_
        assert story(type_, accepted, "during") == coalesced.get(type_, ["fired_and_resolved"])
        assert story(type_, accepted, "across") == episode, type_


async def test_a_burst_then_a_critical_arrives_fast_and_the_burst_as_paced_digests(
    tmp_path: Path,
) -> None:
    """160 warnings at once, a critical 5 s later: the critical reaches every chat sink within
    30 s; the warnings arrive as a few digests naming each, no faster than the sink's rate."""
    async with Receiver({PATHS[t]: ACCEPTANCES[t] for t in CHAT_TYPES}) as receiver:
        sinks = {t: sink_for(receiver, t, f) for t, _, f in SINKS if t in CHAT_TYPES}
        sinks["telegram"] = dataclasses.replace(sinks["telegram"], rate_per_s=1.0)  # a chat
        dispatcher = _dispatcher(tmp_path, sinks, [_route(CHAT_TYPES, 1.0, 5.0)])
        loop = asyncio.get_running_loop()
        async with _running(dispatcher):
            dispatcher.submit([_note(f"burst-{n:03}", AlertState.FIRING) for n in range(BURST)])
            await asyncio.sleep(5.0)
            fired_at = loop.time()
            dispatcher.submit([_note("crash", AlertState.FIRING, Severity.CRITICAL)])
            for type_ in CHAT_TYPES:
                await _until_told(receiver, type_, "crash", ["fired"])
            reached = {
                t: next(r.arrived for r in receiver.requests_to(PATHS[t]) if _names(t, r, "crash"))
                for t in CHAT_TYPES
            }
            for type_ in CHAT_TYPES:
                await _until_told(receiver, type_, f"burst-{BURST - 1:03}", ["fired"])
    for type_, sink in sinks.items():
        assert reached[type_] - fired_at < CRITICAL_WITHIN_S, (type_, reached[type_] - fired_at)
        requests = receiver.requests_to(PATHS[type_])
        told = [change for r in requests for change in changes(type_, r)]
        assert sorted(told) == sorted(
            [(f"burst-{n:03}", "fired") for n in range(BURST)] + [("crash", "fired")]
        ), type_
        assert isinstance(sink, DigestSink)
        assert len(requests) <= math.ceil((BURST + 1) / sink.digest_max_items) + 1, type_
        gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(requests)]
        assert min(gaps) >= 0.9 / sink.rate_per_s, (type_, min(gaps))


def _names(type_: str, request: Recorded, rule: str) -> bool:
    return any(name == rule for name, _ in changes(type_, request))


class _DiscordBucket:
    """Discord's per-webhook bucket: LIMIT requests per WINDOW_S, announced on every answer
    (``X-RateLimit-Remaining``, ``X-RateLimit-Reset-After``); a request over it gets 429."""

    LIMIT, WINDOW_S = 3, 1.5

    def __init__(self) -> None:
        self.resets_at, self.left, self.limited = 0.0, self.LIMIT, 0

    def __call__(self, request: Recorded) -> Reply:
        now = request.arrived
        if now >= self.resets_at:
            self.resets_at, self.left = now + self.WINDOW_S, self.LIMIT
        reset_after = f"{self.resets_at - now:.3f}"
        if self.left == 0:
            self.limited += 1
            body = {"message": "You are being rate limited.", "retry_after": float(reset_after)}
            return json_reply(429, body, {"Retry-After": reset_after, "X-RateLimit-Remaining": "0"})
        self.left -= 1
        headers = {"X-RateLimit-Remaining": str(self.left), "X-RateLimit-Reset-After": reset_after}
        reply = ACCEPTANCES["discord"](request)
        return dataclasses.replace(reply, headers={**reply.headers, **headers})


async def test_discord_pauses_when_a_success_empties_its_bucket(tmp_path: Path) -> None:
    """Sent at 20/s against a bucket of 3 per 1.5 s: the headers on the successes pause the
    sink, every message arrives, and the bucket never answers 429."""
    bucket = _DiscordBucket()
    async with Receiver({PATHS["discord"]: bucket}) as receiver:
        (fields,) = [f for t, _, f in SINKS if t == "discord"]
        sink = dataclasses.replace(sink_for(receiver, "discord", fields), rate_per_s=20.0)
        route = _route(["discord"], 0.0, 0.1, group_by=("rule",))  # one message per alert
        dispatcher = _dispatcher(tmp_path, {"discord": sink}, [route])
        async with _running(dispatcher):
            dispatcher.submit([_note(f"alert-{n}", AlertState.FIRING) for n in range(10)])
            await receiver.wait_for(lambda seen: len(seen) >= 10, TIMEOUT_S)
            await asyncio.sleep(0.5)
        assert bucket.limited == 0
        assert dispatcher.stats["discord"].sent == 10
        assert dispatcher.stats["discord"].rate_limited >= 3
