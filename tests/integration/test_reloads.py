"""Honest reloads: SIGHUP to a real `riskmon run` applies [server], [[sinks]] and [[routes]] live,
refuses what only a restart can change, and counts a reload as a success only once applied.

Every test runs the daemon as a subprocess against the local exchange simulator and changes
its config file between signals. Every wait is bounded (``TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import ssl
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feeds.simulator import ExchangeSimulator
from tests.integration.test_live_feeds import TIMEOUT_S
from tests.integration.test_service import Process, _free_port

CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 20
preaverage = "0.25s"

[[rules]]
# Fires as soon as BTC has a price: an alert that is firing while the sinks change.
name = "btc-priced"
metric = "price"
op = ">"
threshold = THRESHOLD
severity = "critical"
labels = { symbol = "BTCUSDT" }

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]
url = "BINANCE_URL"
stale_after = "5s"

[live]
snapshot_interval = "1s"
idle_snapshot = "1s"

[server]
listen = "127.0.0.1:PORT"
SERVER

[state]
dir = "STATE"
checkpoint_interval = "1m"

[alerts]
critical_wait = "0s"
"""
TOKEN = "first-token-value"
ROTATED = "rotated-token-value"


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=1.0, seed=5) as simulator:
        yield simulator


class Daemon:
    """A `riskmon run` subprocess and the config file it reloads."""

    def __init__(self, tmp_path: Path, sim: ExchangeSimulator) -> None:
        self.tmp_path, self.sim = tmp_path, sim
        self.config = tmp_path / "riskmon.toml"
        self.log = tmp_path / "run.log"
        self.token_file = tmp_path / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.process = Process(self.config, self.log)

    def write(
        self,
        port: int,
        server: str = "",
        extra: str = "",
        state: str = "state",
        threshold: float = 1.0,
    ) -> None:
        text = (
            textwrap.dedent(CONFIG)
            .replace("BINANCE_URL", self.sim.binance_url)
            .replace("PORT", str(port))
            .replace("SERVER", server)
            .replace("STATE", str(self.tmp_path / state))
            .replace("THRESHOLD", repr(threshold))
        )
        self.config.write_text(text + textwrap.dedent(extra))

    async def sighup(self) -> None:
        assert self.process.proc is not None
        self.process.proc.send_signal(signal.SIGHUP)

    def log_events(self, event: str) -> list[dict[str, object]]:
        lines = (json.loads(line) for line in self.log.read_text().splitlines() if line[:1] == "{")
        return [line for line in lines if line.get("event") == event]


@pytest.fixture
async def daemon(tmp_path: Path, sim: ExchangeSimulator) -> AsyncIterator[Daemon]:
    running = Daemon(tmp_path, sim)
    yield running
    if running.process.proc is not None and running.process.proc.returncode is None:
        assert await running.process.stop() == 0
    await running.process.kill()


async def _status(url: str, token: str | None = None) -> int | None:
    """The status of GET ``url``; None when nothing answers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 3 * TIMEOUT_S
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _metrics(
    port: int, token: str | None = None
) -> dict[str, list[tuple[dict[str, str], float]]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    return {
        f.name: [(s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


async def _reloads(port: int, token: str | None = None) -> dict[str, float]:
    samples = (await _metrics(port, token))["riskmon_config_reloads"]
    return {labels["result"]: value for labels, value in samples if "result" in labels}


async def _reloaded(
    daemon: Daemon, port: int, result: str, count: int, token: str | None = None
) -> None:
    async def counted() -> bool:
        try:
            return (await _reloads(port, token)).get(result) == count
        except (aiohttp.ClientError, AssertionError):
            return False

    await _until(counted, f"{count} reload(s) counted as {result}")


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_sighup_moves_the_listener_and_swaps_auth(daemon: Daemon) -> None:
    """A new port serves before the old one stops; bearer auth from a token file is switched on,
    its file rotated, and switched off again on the same port, keep-alive connections included."""
    first, second = _free_port(), _free_port()
    daemon.write(first)
    await daemon.process.start()
    await _until(lambda: _ok(f"http://127.0.0.1:{first}/metrics"), "the first port")

    bearer = f'auth = "bearer"\ntoken_file = "{daemon.token_file}"'
    daemon.write(second, bearer)
    await daemon.sighup()
    await _until(lambda: _ok(f"http://127.0.0.1:{second}/healthz"), "the second port")
    await _until(lambda: _gone(f"http://127.0.0.1:{first}/healthz"), "the first port closed")
    assert await _status(f"http://127.0.0.1:{second}/metrics") == 401
    assert await _status(f"http://127.0.0.1:{second}/metrics", TOKEN) == 200
    assert await _reloads(second, TOKEN) == {"success": 1.0, "failure": 0.0}
    (reloaded,) = daemon.log_events("config_reloaded")
    assert reloaded["changed"] == ["[server]"]

    # A keep-alive connection authorised with the old token must not outlive the rotation.
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{second}/metrics"
        old = {"Authorization": f"Bearer {TOKEN}"}
        async with session.get(url, headers=old) as resp:
            assert resp.status == 200
            await resp.read()
        daemon.token_file.write_text(ROTATED + "\n")
        await daemon.sighup()
        await _reloaded(daemon, second, "success", 2, ROTATED)
        async with session.get(url, headers=old) as resp:
            assert resp.status == 401
    assert await _status(f"http://127.0.0.1:{second}/metrics", ROTATED) == 200

    daemon.write(second)  # auth = "none" on the same port
    await daemon.sighup()
    await _reloaded(daemon, second, "success", 3)
    assert await _status(f"http://127.0.0.1:{second}/metrics") == 200
    text = daemon.log.read_text()
    assert TOKEN not in text
    assert ROTATED not in text


async def _ok(url: str) -> bool:
    return await _status(url) == 200


async def _gone(url: str) -> bool:
    return await _status(url) is None


async def test_sighup_refuses_restart_only_changes_and_unbindable_addresses(
    daemon: Daemon,
) -> None:
    """Each refusal is logged with its reason and counted as a failure, and nothing of that
    file is applied (its rule threshold neither); a good file afterwards is applied."""
    port = _free_port()
    daemon.write(port)
    await daemon.process.start()
    await _until(lambda: _ok(f"http://127.0.0.1:{port}/metrics"), "the daemon")

    daemon.write(port, state="elsewhere", threshold=2.0)
    await daemon.sighup()
    await _reloaded(daemon, port, "failure", 1)
    (refused,) = daemon.log_events("config_reload_rejected")
    assert "only a restart can change [state] dir" in str(refused["error"])

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        daemon.write(busy, threshold=3.0)
        await daemon.sighup()
        await _reloaded(daemon, port, "failure", 2)
    second = daemon.log_events("config_reload_rejected")[-1]
    assert "cannot listen there" in str(second["error"])
    metrics = await _metrics(port)
    assert metrics["riskmon_config_last_reload_success"][0][1] == 0.0
    assert [v for _, v in metrics["riskmon_alert_threshold"]] == [1.0]  # nothing applied
    assert await _ok(f"http://127.0.0.1:{port}/healthz")
    assert daemon.log_events("config_reloaded") == []

    daemon.write(port, threshold=4.0)
    await daemon.sighup()
    await _reloaded(daemon, port, "success", 1)
    metrics = await _metrics(port)
    assert metrics["riskmon_config_last_reload_success"][0][1] == 1.0
    assert [v for _, v in metrics["riskmon_alert_threshold"]] == [4.0]


SINKS = """
[[sinks]]
name = "first"
type = "file"
path = "FIRST"
ROUTES
"""


async def test_sighup_swaps_sinks_and_routes_keeping_what_each_sink_was_told(
    daemon: Daemon,
) -> None:
    """A sink the new routes add gets the alert already firing, once; the sink that was told
    gets nothing again, and both get the resolve (neither is left with an open alert)."""
    port = _free_port()
    first, second = daemon.tmp_path / "first.jsonl", daemon.tmp_path / "second.jsonl"
    one_sink = SINKS.replace("FIRST", str(first)).replace(
        "ROUTES", '[[routes]]\nseverity = ["critical"]\nsinks = ["first"]'
    )
    daemon.write(port, extra=one_sink)
    await daemon.process.start()
    await _until(lambda: _has(first, 1), "the firing at the first sink")

    two_sinks = SINKS.replace("FIRST", str(first)).replace(
        "ROUTES",
        f'[[sinks]]\nname = "second"\ntype = "file"\npath = "{second}"\n'
        '[[routes]]\nseverity = ["critical"]\nsinks = ["second"]',
    )
    daemon.write(port, extra=two_sinks)
    await daemon.sighup()
    await _until(lambda: _has(second, 1), "the firing at the added sink")
    await daemon.sighup()  # the same file again: nobody is told twice
    await _reloaded(daemon, port, "success", 2)
    await asyncio.sleep(2.0)
    assert [(r["rule"], r["state"]) for r in _lines(second)] == [("btc-priced", "firing")]
    assert [(r["rule"], r["state"]) for r in _lines(first)] == [("btc-priced", "firing")]
    metrics = await _metrics(port)
    sinks = {labels["sink"] for labels, _ in metrics["riskmon_alerts_sent"]}
    assert sinks == {"first", "second", "log"}

    daemon.write(port, extra=two_sinks, threshold=1e12)  # the alert resolves
    await daemon.sighup()
    await _until(lambda: _has(second, 2), "the resolve at the added sink")
    await _until(lambda: _has(first, 2), "the resolve at the sink that was told")
    assert [r["state"] for r in _lines(second)] == ["firing", "resolved"]
    assert [r["state"] for r in _lines(first)] == ["firing", "resolved"]


async def _has(path: Path, count: int) -> bool:
    return len(_lines(path)) >= count


async def test_sighup_turns_tls_on_at_the_same_port(daemon: Daemon) -> None:
    """With tls_cert/tls_key added, the same port answers HTTPS (verified against that
    certificate) and no longer plain HTTP; a key that cannot be read is refused."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = daemon.tmp_path / "cert.pem", daemon.tmp_path / "key.pem"
    make = await asyncio.create_subprocess_exec(
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
        "-out", str(cert), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(60):
        assert await make.wait() == 0
    port = _free_port()
    daemon.write(port)
    await daemon.process.start()
    await _until(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), "plain HTTP")

    daemon.write(port, f'tls_cert = "{cert}"\ntls_key = "{daemon.tmp_path / "missing.pem"}"')
    await daemon.sighup()
    await _until(lambda: _failures(port, "http"), "the unreadable key refused")
    assert await _ok(f"http://127.0.0.1:{port}/healthz")

    daemon.write(port, f'tls_cert = "{cert}"\ntls_key = "{key}"')
    await daemon.sighup()
    context = ssl.create_default_context(cafile=str(cert))

    async def https() -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"https://127.0.0.1:{port}/healthz", ssl=context) as resp,
            ):
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    await _until(https, "HTTPS on the same port")
    assert await _status(f"http://127.0.0.1:{port}/healthz") != 200


async def _failures(port: int, scheme: str) -> bool:
    """Whether one reload failure is counted (read over ``scheme``)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{scheme}://127.0.0.1:{port}/metrics") as resp,
        ):
            text = await resp.text()
    except aiohttp.ClientError:
        return False
    for family in text_string_to_metric_families(text):
        if family.name == "riskmon_config_reloads":
            return any(
                s.labels.get("result") == "failure" and s.value == 1.0 for s in family.samples
            )
    return False
