"""A real Alertmanager takes riskmon's firing and resolve alerts and notifies both.

Debian's ``prometheus-alertmanager`` runs on loopback with clustering off, routing everything
to a webhook receiver that is a local :class:`~tests.receivers.Receiver`. Skipped without the
binary (``apt-get install prometheus-alertmanager``). Every wait is bounded; the process is
always stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from alerts.alertmanager import AlertmanagerSink
from alerts.dispatcher import Dispatcher
from alerts.file import FileSink
from alerts.notification import Notification, Verdict
from alerts.outbox import Outbox
from alerts.sinks import build_sink
from monitor.config.durations import Duration
from monitor.config.schema import RouteConfig, SinkConfig
from monitor.model import AlertState
from tests.integration.test_prometheus import free_port
from tests.integration.test_receivers import send
from tests.receivers import ACCEPTANCES, Receiver, Recorded
from tests.unit.alerts.test_sinks import NOTE

TIMEOUT_S = 10.0
"""Start-up, each notification and the stop are each bounded by this."""

WEBHOOK_PATH = "/alertmanager-webhook"


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """Everything to one webhook receiver; short timers so a test takes seconds."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "riskmon-test",
            "group_by": ["alertname"],
            "group_wait": "200ms",
            "group_interval": "500ms",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "riskmon-test",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }
        ],
    }


@dataclasses.dataclass(frozen=True)
class Alertmanager:
    """A started Alertmanager: its process, base URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path


@contextlib.contextmanager
def alertmanager_process(
    binary: str, webhook_url: str, tmp: Path, config_data: dict[str, Any] | None = None
) -> Iterator[Alertmanager]:
    """Start Alertmanager on a free loopback port (with ``config_data``, or everything to the
    webhook); always stop it on exit."""
    config = tmp / "alertmanager.yml"
    config.write_text(yaml.safe_dump(config_data or alertmanager_config(webhook_url)))
    port = free_port()
    log_path = tmp / "alertmanager.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Alertmanager(process, f"http://127.0.0.1:{port}", log_path)
    finally:
        stop(process)


async def wait_ready(alertmanager: Alertmanager) -> None:
    """Poll ``/-/ready`` until 200; fail with Alertmanager's log on exit or after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and alertmanager.process.poll() is None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                timeout = aiohttp.ClientTimeout(total=1.0)
                url = f"{alertmanager.url}/-/ready"
                async with session.get(url, timeout=timeout) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    log = await asyncio.to_thread(alertmanager.log_path.read_text)
    pytest.fail(f"alertmanager not ready within {TIMEOUT_S:.0f} s:\n{log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after TIMEOUT_S; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT_S)


@pytest.fixture
def alertmanager_binary() -> str:
    """The Alertmanager binary, or skip with the reason."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip(
            "the prometheus-alertmanager binary is not installed "
            "(Debian: apt-get install prometheus-alertmanager)"
        )
    return binary


def notified(status: str) -> Callable[[list[Recorded]], bool]:
    """Whether a webhook notification with ``status`` has arrived."""

    def check(requests: list[Recorded]) -> bool:
        return any(r.path == WEBHOOK_PATH and r.json["status"] == status for r in requests)

    return check


def live(note: Notification, ts: float) -> Notification:
    """``note`` happening at ``ts`` (wall clock: Alertmanager compares endsAt with its now)."""
    return dataclasses.replace(note, event=dataclasses.replace(note.event, ts=ts))


def resolved(note: Notification, ts: float) -> Notification:
    """The resolve of ``note`` at ``ts``."""
    event = dataclasses.replace(note.event, ts=ts, state=AlertState.RESOLVED)
    return dataclasses.replace(note, event=event)


async def test_firing_then_resolved_reach_the_webhook_for_the_same_labels(
    alertmanager_binary: str, tmp_path: Path
) -> None:
    async with Receiver({WEBHOOK_PATH: ACCEPTANCES["webhook"]}) as receiver:
        webhook_url = receiver.url + WEBHOOK_PATH
        with alertmanager_process(alertmanager_binary, webhook_url, tmp_path) as alertmanager:
            await wait_ready(alertmanager)
            entry = SinkConfig(name="am", type="alertmanager", url=alertmanager.url)
            sink = build_sink(entry, None)
            assert isinstance(sink, AlertmanagerSink)
            # No dashboard: Alertmanager must also accept generatorURL "".
            firing = live(dataclasses.replace(NOTE, dashboard_url=None), time.time())
            async with aiohttp.ClientSession() as session:
                outcome = await send(session, sink, sink.render(firing))
                assert outcome.verdict is Verdict.DELIVERED, outcome.detail
                await receiver.wait_for(notified("firing"), TIMEOUT_S)
                outcome = await send(session, sink, sink.resend_request(firing, time.time()))
                assert outcome.verdict is Verdict.DELIVERED, outcome.detail
                resolve = resolved(firing, time.time())
                outcome = await send(session, sink, sink.render(resolve))
                assert outcome.verdict is Verdict.DELIVERED, outcome.detail
                await receiver.wait_for(notified("resolved"), TIMEOUT_S)

    (sent,) = json.loads(sink.render(firing).body)
    first = next(r.json for r in receiver.requests if r.json["status"] == "firing")
    last = next(r.json for r in receiver.requests if r.json["status"] == "resolved")
    (firing_alert,) = first["alerts"]
    (resolved_alert,) = last["alerts"]
    assert firing_alert["labels"] == resolved_alert["labels"] == sent["labels"]
    assert firing_alert["status"] == "firing"
    assert resolved_alert["status"] == "resolved"
    assert firing_alert["annotations"]["summary"] == NOTE.summary


# --- behind an outage ---------------------------------------------------------------------------

OUTAGE_S = 8.0
"""Shorter than the hold of a firing (4 x RESEND_S): Alertmanager keeps what it was told."""
RESEND_S = 5.0


class Gateway:
    """The network between riskmon and Alertmanager: forwards every request, and can go down
    (connections refused) and come back on the same port."""

    def __init__(self, target: str) -> None:
        self.target = target
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Gateway:
        self._session = aiohttp.ClientSession()
        await self._runner.setup()
        await self.up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def up(self) -> None:
        """Listen (again) on the same port."""
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()
        self.port = self._site.port

    async def down(self) -> None:
        """Refuse connections and drop the open ones."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        for connection in server.connections if server is not None else ():
            connection.force_close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as answer:
            return web.Response(status=answer.status, body=await answer.read())


def _note(rule: str, state: AlertState) -> Notification:
    firing = live(dataclasses.replace(NOTE, dashboard_url=None), time.time())
    event = dataclasses.replace(firing.event, rule=rule, state=state)
    return dataclasses.replace(firing, event=event, dedup_key=f"riskmon/{rule}")


def _notifications(receiver: Receiver, rule: str) -> list[str]:
    """The statuses of the alerts named ``rule`` in every webhook notification, in order."""
    return [
        alert["status"]
        for r in receiver.requests_to(WEBHOOK_PATH)
        for alert in r.json["alerts"]
        if alert["labels"]["alertname"] == rule
    ]


def _told(rule: str, statuses: list[str]) -> Callable[[list[Recorded]], bool]:
    def check(requests: list[Recorded]) -> bool:
        found = [
            alert["status"]
            for r in requests
            if r.path == WEBHOOK_PATH
            for alert in r.json["alerts"]
            if alert["labels"]["alertname"] == rule
        ]
        return found == statuses

    return check


async def _active_alerts(url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v2/alerts", params={"active": "true"}) as response,
    ):
        assert response.status == 200
        alerts: list[dict[str, Any]] = await response.json()
        return alerts


async def test_behind_an_outage_no_false_page_and_no_ghost_alert(
    alertmanager_binary: str, tmp_path: Path
) -> None:
    """Alertmanager unreachable while "during" fires and resolves, "before" resolves and
    "across" fires. Afterwards: nobody is paged for "during", no firing arrives after its
    resolve, and once "across" resolves no alert is left active in Alertmanager."""
    async with Receiver({WEBHOOK_PATH: ACCEPTANCES["webhook"]}) as receiver:
        with alertmanager_process(
            alertmanager_binary, receiver.url + WEBHOOK_PATH, tmp_path
        ) as alertmanager:
            await wait_ready(alertmanager)
            async with Gateway(alertmanager.url) as gateway:
                entry = SinkConfig(
                    name="am", type="alertmanager", url=gateway.url, resend_interval=RESEND_S
                )
                sink = build_sink(entry, None)
                route = RouteConfig(sinks=("am",), group_wait=Duration(0.0))
                dispatcher = Dispatcher(
                    {"log": FileSink("log", tmp_path / "log.jsonl"), "am": sink},
                    [route],
                    Outbox(tmp_path / "outbox.sqlite"),
                    resend_s={"am": RESEND_S},
                    max_backoff_s=1.0,
                )
                task = asyncio.create_task(dispatcher.run())
                try:
                    await _outage(dispatcher, gateway, receiver)
                    assert await _active_alerts(alertmanager.url) == []
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    dispatcher.close()
    assert _notifications(receiver, "during") == []  # no false page
    for rule in ("before", "across"):
        assert _notifications(receiver, rule) == ["firing", "resolved"], rule


async def _outage(dispatcher: Dispatcher, gateway: Gateway, receiver: Receiver) -> None:
    dispatcher.submit([_note("before", AlertState.FIRING)])
    await receiver.wait_for(_told("before", ["firing"]), TIMEOUT_S)
    await gateway.down()
    started = time.monotonic()
    dispatcher.submit([_note("during", AlertState.FIRING)])
    await asyncio.sleep(1.0)
    dispatcher.submit([_note("during", AlertState.RESOLVED), _note("across", AlertState.FIRING)])
    await asyncio.sleep(1.0)
    dispatcher.submit([_note("before", AlertState.RESOLVED)])
    await asyncio.sleep(OUTAGE_S - (time.monotonic() - started))
    assert dispatcher.stats["am"].retried > 0
    await gateway.up()
    await receiver.wait_for(_told("before", ["firing", "resolved"]), 3 * TIMEOUT_S)
    await receiver.wait_for(_told("across", ["firing"]), 3 * TIMEOUT_S)
    dispatcher.submit([_note("across", AlertState.RESOLVED)])
    await receiver.wait_for(_told("across", ["firing", "resolved"]), 3 * TIMEOUT_S)
    await asyncio.sleep(2.0)  # a late firing, or a page for "during", would arrive now
