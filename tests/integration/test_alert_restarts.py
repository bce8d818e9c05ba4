"""Alerts across restarts of a real ``riskmon run`` against the exchange simulator.

- ``kill -9`` right after a delivery and before any checkpoint, the restart restoring an older
  checkpoint: the receiver is not notified again.
- A restart with one rule added: the still-firing alert is not notified again, and the
  estimators continue warm (the same figures as before the restart).
- Sinks whose receivers echo the request path and URL back: no fragment of any secret in any
  log line, nor in ``riskmon test-alert`` output.
- A rule removed while its alert fires: the restart resolves the alert at its receivers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.redact import fragments
from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from service.service import Service
from tests.integration.test_service import (
    Process,
    _free_port,
    _get,
    _wait_http,
    _warm_snapshot,
    _write_config,
)
from tests.receivers import Receiver, Recorded, Reply, plain_ok

TIMEOUT_S = 30.0
"""Every wait in this module scales from this."""
QUIET_S = 3.0
"""How long a duplicate is given to show up."""

RULE = """
[[rules]]
name = "btc-priced"
metric = "price"
op = ">"
threshold = THRESHOLD
severity = "critical"
labels = { symbol = "BTCUSDT" }
"""
ADDED_RULE = """
[[rules]]
name = "eth-priced-high"
metric = "price"
op = ">"
threshold = 1e12
labels = { symbol = "ETHUSDT" }
"""
WEBHOOK = """
[[sinks]]
name = "hook"
type = "webhook"
url = "HOOK_URL"

[[routes]]
sinks = ["hook"]
group_wait = "0s"
"""


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=60.0, seed=3) as simulator:
        yield simulator


def _config(tmp_path: Path, sim: ExchangeSimulator, port: int, receiver: Receiver) -> Path:
    path = _write_config(tmp_path, sim.binance_url, port=port)
    text = path.read_text().replace('checkpoint_interval = "2s"', 'checkpoint_interval = "1h"')
    path.write_text(text + WEBHOOK.replace("HOOK_URL", receiver.url + "/hook"))
    return path


def _with_rule(path: Path, threshold: str, *extra: str) -> None:
    base = path.read_text().split("\n# --- rules ---\n")[0]
    path.write_text(
        base + "\n# --- rules ---\n" + RULE.replace("THRESHOLD", threshold) + "".join(extra)
    )


async def _metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        status, text = await _get(base + "/metrics")
    except OSError:
        return {}
    if status != 200:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def _sent(base: str) -> bool:
    metrics = await _metrics(base)
    return metrics.get(("riskmon_alerts_sent_total", (("sink", "hook"),)), 0.0) >= 1


async def _firing(base: str, rule: str = "btc-priced") -> bool:
    metrics = await _metrics(base)
    labels = (("rule", rule), ("rule_instance", "symbol=BTCUSDT"), ("state", "firing"))
    return metrics.get(("riskmon_rule_state", labels), 0.0) == 1.0


def _firings(receiver: Receiver) -> list[Recorded]:
    """The firings of btc-priced the webhook received (the base config has other rules)."""
    return [
        r
        for r in receiver.requests_to("/hook")
        if r.json["state"] == "firing" and r.json["rule"] == "btc-priced"
    ]


async def test_kill_9_after_a_delivery_before_a_checkpoint_does_not_notify_again(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """Checkpoint with the rule quiet; the next run fires, delivers and is killed at once;
    the third run restores the older checkpoint and must not notify again."""
    async with Receiver({"/hook": plain_ok}) as receiver:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        config = _config(tmp_path, sim, port, receiver)
        _with_rule(config, "1e12")
        quiet = Process(config, tmp_path / "quiet.log")
        await quiet.start()
        try:
            await _wait_http(base + "/api/v1/snapshot")
        finally:
            assert await quiet.stop() == 0  # writes the checkpoint: btc-priced inactive
        _with_rule(config, "1")
        first = Process(config, tmp_path / "first.log")
        await first.start()
        try:
            await _until(lambda: _sent(base), "the firing delivered")
        finally:
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
        assert len(_firings(receiver)) == 1
        second = Process(config, tmp_path / "second.log")
        await second.start()
        try:
            await _until(lambda: _firing(base), "btc-priced firing after the restart")
            ticks = json.loads((await _wait_http(base + "/api/v1/snapshot"))[1])["ticks"]
            await _until(lambda: _more_ticks(base, ticks), "new ticks evaluated")
            await asyncio.sleep(QUIET_S)
            assert len(_firings(receiver)) == 1, "notified again after the restart"
            log = (tmp_path / "second.log").read_text()
            assert "checkpoint_restored" in log
            assert "rule_states_from_outbox" in log
        finally:
            assert await second.stop() == 0
            await second.kill()


async def _more_ticks(base: str, ticks: int) -> bool:
    _, body = await _get(base + "/api/v1/snapshot")
    return int(json.loads(body)["ticks"]) > ticks


async def test_a_restart_with_one_rule_added_carries_state_and_does_not_notify_again(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """The alert fires and is delivered; SIGTERM; one rule is added; the restart carries the
    checkpoint: same figures, the alert still firing, no second notification."""
    async with Receiver({"/hook": plain_ok}) as receiver:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        config = _config(tmp_path, sim, port, receiver)
        _with_rule(config, "1")
        first = Process(config, tmp_path / "first.log")
        await first.start()
        try:
            await _until(lambda: _sent(base), "the firing delivered")
            await _warm_snapshot(base)
            sim.stall("binance", True)
            await asyncio.sleep(3.0)  # in-flight frames drain; an idle snapshot covers them
            before = json.loads((await _get(base + "/api/v1/snapshot"))[1])
        finally:
            assert await first.stop() == 0
            await first.kill()
        _with_rule(config, "1", ADDED_RULE)
        second = Process(config, tmp_path / "second.log")
        await second.start()
        try:
            after = json.loads((await _wait_http(base + "/api/v1/snapshot"))[1])
            assert after["ticks"] == before["ticks"]
            for key in ("avg_correlation", "avg_correlation_slow", "absorption_ratio"):
                assert after["market"][key] == pytest.approx(before["market"][key], rel=1e-9)
            tails = zip(
                before["portfolios"][0]["tails"], after["portfolios"][0]["tails"], strict=True
            )
            for b, a in tails:
                assert a["var"] == pytest.approx(b["var"], rel=1e-9)
            sim.stall("binance", False)
            await _until(lambda: _more_ticks(base, after["ticks"]), "new ticks evaluated")
            assert await _firing(base)
            await asyncio.sleep(QUIET_S)
            assert len(_firings(receiver)) == 1, "notified again after the restart"
            log = (tmp_path / "second.log").read_text()
            assert "checkpoint_carried" in log
            assert "eth-priced-high" in log  # named as the rule instance that starts cold
        finally:
            assert await second.stop() == 0
            await second.kill()


# --- secrets ------------------------------------------------------------------------------------

SECRETS = {
    "RISKMON_TEST_SLACK": "/services/T0ABCDEF1/B0GHIJKL2/aBcDeFgHiJkLmNoPqRsTuVwX",
    "RISKMON_TEST_DISCORD": "/api/webhooks/123456789012345678/AbC-dEf_GhIjKlMnOpQrSt",
    "RISKMON_TEST_TEAMS": "/workflows/0f1e2d3c4b5a6978/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sig=Zx9-AbCdEfGhIjKlMnOpQrSt0123",
    "RISKMON_TEST_TELEGRAM": "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "RISKMON_TEST_PAGERDUTY": "R0UT1NGKEYab12cd34ef56ab78cd90ef",
    "RISKMON_TEST_WEBHOOK": "hmac-Key-0123456789abcdef",
}
ECHO_SINKS = """
[[sinks]]
name = "slack"
type = "slack"
secret_env = "RISKMON_TEST_SLACK"

[[sinks]]
name = "discord"
type = "discord"
secret_env = "RISKMON_TEST_DISCORD"

[[sinks]]
name = "teams"
type = "teams"
secret_env = "RISKMON_TEST_TEAMS"

[[sinks]]
name = "telegram"
type = "telegram"
url = "BASE"
chat_id = "7"
secret_env = "RISKMON_TEST_TELEGRAM"

[[sinks]]
name = "pager"
type = "pagerduty"
url = "BASE"
secret_env = "RISKMON_TEST_PAGERDUTY"

[[sinks]]
name = "hook"
type = "webhook"
url = "BASE/hook"
secret_env = "RISKMON_TEST_WEBHOOK"

[[routes]]
sinks = ["slack", "discord", "teams", "telegram", "pager", "hook"]
group_wait = "0s"
"""


def _echo(code: int) -> Callable[[Recorded], Reply]:
    """A receiver or proxy that answers ``code`` and quotes the request back: path, query,
    URL and body."""

    def reply(request: Recorded) -> Reply:
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        text = f"no route for {request.method} {request.path}?{query} body={request.body.decode()}"
        return Reply(code, text.encode(), {"Content-Type": "text/plain"})

    return reply


async def test_receivers_echoing_the_path_never_put_a_secret_fragment_in_a_log_line(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        environ = {**os.environ}
        for name, value in SECRETS.items():
            is_path = value.startswith("/")
            environ[name] = receiver.url + value if is_path else value
        # Half the receivers reject (400: logged as rejected), half fail (503: retried).
        for i, path in enumerate(
            (
                "/services/T0ABCDEF1/B0GHIJKL2/aBcDeFgHiJkLmNoPqRsTuVwX",
                "/api/webhooks/123456789012345678/AbC-dEf_GhIjKlMnOpQrSt",
                "/workflows/0f1e2d3c4b5a6978/triggers/manual/paths/invoke",
                f"/bot{SECRETS['RISKMON_TEST_TELEGRAM']}/sendMessage",
                "/v2/enqueue",
                "/hook",
            )
        ):
            receiver.route(path, _echo(400 if i % 2 else 503))
        port = _free_port()
        config = _write_config(tmp_path, sim.binance_url, port=port)
        config.write_text(config.read_text() + ECHO_SINKS.replace("BASE", receiver.url))
        _with_rule(config, "1")
        proc = Process(config, tmp_path / "run.log", environ)
        await proc.start()
        try:
            await receiver.wait_for(lambda seen: len({r.path for r in seen}) >= 6, TIMEOUT_S)
            await _until(lambda: _logged(tmp_path / "run.log"), "rejections and retries logged")
        finally:
            assert await proc.stop() == 0
            await proc.kill()
        outputs = [(tmp_path / "run.log").read_text()]
        for sink in ("slack", "discord", "teams", "telegram", "pager", "hook"):
            outputs.append(await _test_alert(config, sink, environ))
    text = "\n".join(outputs)
    assert "<redacted>" in text
    for value in (environ[name] for name in SECRETS):
        for fragment in fragments(value):
            assert fragment not in text, fragment


async def _logged(log: Path) -> bool:
    text = await asyncio.to_thread(log.read_text)
    return "alert_rejected" in text and "alert_retry" in text


async def _test_alert(config: Path, sink: str, environ: dict[str, str]) -> str:
    """``riskmon test-alert --sink`` as a user runs it: its whole output."""
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "service.cli",
            "test-alert",
            "--sink",
            sink,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=environ,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, (sink, done.stdout, done.stderr)  # the echo refuses it
    return done.stdout + done.stderr


async def test_a_rule_removed_while_firing_is_resolved_at_the_restart(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """Receivers must not keep an alert open forever because its rule left the config."""
    async with Receiver({"/hook": plain_ok}) as receiver:
        config = _config(tmp_path, sim, 0, receiver)
        _with_rule(config, "1")
        await _serve_until(config, lambda: bool(_firings(receiver)))
        config.write_text(config.read_text().split("\n# --- rules ---\n")[0])
        await _serve_until(config, lambda: bool(_resolves(receiver)))
    (resolve,) = _resolves(receiver)
    assert "no longer evaluated" in resolve.json["summary"]
    assert len(_firings(receiver)) == 1


def _resolves(receiver: Receiver) -> list[Recorded]:
    return [
        r
        for r in receiver.requests_to("/hook")
        if r.json["state"] == "resolved" and r.json["rule"] == "btc-priced"
    ]


async def _serve_until(config: Path, done: Callable[[], bool]) -> None:
    """Run the service in this process until ``done()``, then stop it (a clean shutdown)."""
    service = Service(load_config(config, environ={}))
    task = asyncio.create_task(service.run())
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not done():
            assert time.monotonic() < deadline, "timed out"
            assert not task.done(), task
            await asyncio.sleep(0.1)
    finally:
        service.request_stop()
        async with asyncio.timeout(TIMEOUT_S):
            await task
