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

from alerts.alertmanager import AlertmanagerSink
from alerts.notification import Notification, Verdict
from alerts.sinks import build_sink
from monitor.config import SinkConfig
from monitor.model import AlertState
from tests.integration.test_prometheus import free_port
from tests.integration.test_receivers import send
from tests.receivers import ACCEPTANCES, Receiver, Recorded
from tests.unit.test_sinks import NOTE

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
def alertmanager_process(binary: str, webhook_url: str, tmp: Path) -> Iterator[Alertmanager]:
    """Start Alertmanager on a free loopback port; always stop it on exit."""
    config = tmp / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(webhook_url)))
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
