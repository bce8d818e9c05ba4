"""The service on loopback: HTTP endpoints, auth, metrics conventions, lifecycle.

The daemon runs in this process (endpoints) or as a real `riskmon run` subprocess (signals),
against the local exchange simulator. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from service.service import Service
from tests.integration.test_live_feeds import TIMEOUT_S, eventually

BLOCK_S = 0.25  # [estimator] preaverage of the config these tests write

CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
watch_pairs = [["BTCUSDT", "ETHUSDT"]]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 20
preaverage = "0.25s"  # a short pre-averaging block: the test warms up in seconds

[risk]
distribution = "normal"

[[portfolios]]
name = "book"
positions = [ { symbol = "BTCUSDT", quantity = 1 }, { symbol = "ETHUSDT", quantity = 10 } ]

[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7
severity = "critical"

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
url = "BINANCE_URL"
stale_after = "5s"

[live]
# one simulated second: after the feed stalls, the next idle snapshot covers every tick
snapshot_interval = "1s"
idle_snapshot = "1s"

[server]
listen = "127.0.0.1:PORT"
AUTH

[state]
dir = "STATE"
checkpoint_interval = "2s"
"""
SECRET = "s3cret-token-value"
ALLOWED_LABELS = {
    "symbol",
    "horizon",
    "a",
    "b",
    "portfolio",
    "account",
    "scenario",
    "direction",
    "confidence",
    "venue",
    "connection",
    "reason",
    "rule",
    "rule_instance",
    "state",
    "sink",
    "severity",
    "result",
    "code",
    "version",
    "python",
    "le",
}


def _write_config(tmp_path: Path, sim_url: str, port: int = 0, auth: str = "") -> Path:
    text = (
        textwrap.dedent(CONFIG)
        .replace("BINANCE_URL", sim_url)
        .replace("PORT", str(port))
        .replace("STATE", str(tmp_path / "state"))
        .replace("AUTH", auth)
    )
    path = tmp_path / "riskmon.toml"
    path.write_text(text)
    return path


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=60.0, seed=11) as simulator:
        yield simulator


async def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def _start(service: Service) -> asyncio.Task[None]:
    task = asyncio.create_task(service.run())
    await eventually(lambda: service.port is not None, "http server bound")
    return task


async def test_endpoints_serve_metrics_health_readiness_and_json(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """/metrics, /healthz, /readyz, /api/v1/snapshot and /api/v1/correlation on loopback."""
    config = load_config(_write_config(tmp_path, sim.binance_url), environ={})
    service = Service(config, wall=sim.sim_time)
    task = await _start(service)
    base = f"http://127.0.0.1:{service.port}"
    status, _ = await _get(base + "/healthz")
    assert status == 200
    ready: list[int] = []

    async def poll_ready() -> bool:
        ready.append((await _get(base + "/readyz"))[0])
        return ready[-1] == 200

    deadline = time.monotonic() + 3 * TIMEOUT_S
    while not await poll_ready():
        assert time.monotonic() < deadline, "never ready"
        await asyncio.sleep(0.2)
    assert ready[0] == 503 or len(ready) == 1
    status, text = await _get(base + "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "riskmon_price",
        "riskmon_average_correlation",
        "riskmon_portfolio_var",
        "riskmon_feed_staleness_seconds",
        "riskmon_tick_to_snapshot_latency_seconds",
        "riskmon_rule_state",
        "riskmon_build_info",
        "riskmon_ticks",
    ):
        assert name in families, name
    btc = [s.value for s in families["riskmon_price"].samples if s.labels["symbol"] == "BTCUSDT"]
    assert 50_000 < btc[0] < 150_000
    status, body = await _get(base + "/api/v1/snapshot")
    snapshot = json.loads(body)
    assert status == 200
    assert snapshot["market"]["avg_correlation"] is not None
    assert snapshot["portfolios"][0]["tails"][0]["var"] > 0
    status, body = await _get(base + "/api/v1/correlation")
    corr = json.loads(body)
    assert corr["symbols"][0] == "BTCUSDT"
    assert corr["matrix"][0][0] == pytest.approx(1.0)
    service.request_stop()
    async with asyncio.timeout(TIMEOUT_S):
        await task
    assert (tmp_path / "state" / "checkpoint.npz").exists()


async def test_metric_names_and_labels_follow_the_conventions(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """riskmon_ prefix, _total counters, base units, bounded label names, watch-list pairs only."""
    config = load_config(_write_config(tmp_path, sim.binance_url), environ={})
    service = Service(config, wall=sim.sim_time)
    task = await _start(service)
    await eventually(
        lambda: (
            service.daemon is not None
            and service.daemon.latest is not None
            and service.daemon.latest.market.avg_correlation is not None
        ),
        "warm estimators",
        within_s=3 * TIMEOUT_S,
    )
    _, text = await _get(f"http://127.0.0.1:{service.port}/metrics")
    service.request_stop()
    async with asyncio.timeout(TIMEOUT_S):
        await task
    families = list(text_string_to_metric_families(text))
    names = {family.name for family in families}
    # client_python's process, platform and GC collectors keep their standard names.
    standard = {"process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds"}
    assert standard | {"python_info", "riskmon_event_loop_lag_seconds"} <= names
    for family in families:
        if family.name.startswith(("process_", "python_")):
            continue
        assert family.name.startswith("riskmon_"), family.name
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (family.name, sample.labels)
            assert math.isfinite(sample.value) or sample.name.endswith("_bucket")
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "gauge":
            assert not family.name.endswith("_total"), family.name
        if "timestamp" in family.name or "latency" in family.name or "staleness" in family.name:
            assert family.name.endswith("_seconds"), family.name
    pairs = {
        (s.labels["a"], s.labels["b"])
        for f in text_string_to_metric_families(text)
        if f.name == "riskmon_correlation"
        for s in f.samples
    }
    assert pairs == {("BTCUSDT", "ETHUSDT")}


async def test_bearer_auth_protects_metrics_and_api_but_not_probes(
    sim: ExchangeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """401 without the token, 200 with it; the secret appears in no response or log."""
    auth = 'auth = "bearer"\ntoken_env = "RISKMON_TEST_TOKEN"'
    path = _write_config(tmp_path, sim.binance_url, auth=auth)
    os.environ["RISKMON_TEST_TOKEN"] = SECRET
    try:
        service = Service(load_config(path, environ={}), wall=sim.sim_time)
        task = await _start(service)
        base = f"http://127.0.0.1:{service.port}"
        assert (await _get(base + "/metrics"))[0] == 401
        assert (await _get(base + "/api/v1/snapshot"))[0] == 401
        assert (await _get(base + "/metrics", token="wrong"))[0] == 401
        status, text = await _get(base + "/metrics", token=SECRET)
        assert status == 200
        assert SECRET not in text
        assert (await _get(base + "/healthz"))[0] == 200
        service.request_stop()
        async with asyncio.timeout(TIMEOUT_S):
            await task
    finally:
        del os.environ["RISKMON_TEST_TOKEN"]
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


class Process:
    """`riskmon run` as a subprocess with its log captured."""

    def __init__(self, config: Path, log: Path, environ: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self.environ = dict(os.environ) if environ is None else environ
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        handle = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli",
            "run",
            "--config",
            str(self.config),
            stdout=handle,
            stderr=handle,
            env={**self.environ, "PYTHONUNBUFFERED": "1"},
        )
        handle.close()

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        async with asyncio.timeout(10.0):
            return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_http(url: str) -> tuple[int, str]:
    deadline = time.monotonic() + 3 * TIMEOUT_S
    while True:
        try:
            status, body = await _get(url)
            if status == 200:
                return status, body
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer 200 in time")
        await asyncio.sleep(0.2)


async def _warm_snapshot(base: str) -> dict[str, object]:
    deadline = time.monotonic() + 4 * TIMEOUT_S
    while True:
        _, body = await _wait_http(base + "/api/v1/snapshot")
        snap = json.loads(body)
        if (
            snap["market"]["avg_correlation"] is not None
            and snap["portfolios"][0]["tails"][0]["var"]
        ):
            return snap
        if time.monotonic() > deadline:
            pytest.fail("estimators never warmed up")
        await asyncio.sleep(0.3)


async def _settled_snapshot(base: str) -> dict[str, object]:
    """The snapshot once event time has passed the last tick's pre-averaging block.

    The estimator takes a block into its figures when the block ends, so a snapshot read
    sooner may still change once more without a new tick.
    """
    deadline = time.monotonic() + 4 * TIMEOUT_S
    while True:
        _, body = await _get(base + "/api/v1/snapshot")
        snap = json.loads(body)
        last_tick = max(s["last_tick_ts"] or 0.0 for s in snap["symbols"].values())
        if snap["ts"] >= (math.floor(last_tick / BLOCK_S) + 1) * BLOCK_S:
            return snap
        if time.monotonic() > deadline:
            pytest.fail("event time never passed the last tick's block")
        await asyncio.sleep(0.3)


async def test_sigterm_checkpoint_restart_gives_the_same_figures(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """Stall the feed, SIGTERM (exit 0 within 10 s), restart: figures equal within 1e-9."""
    port = _free_port()
    config = _write_config(tmp_path, sim.binance_url, port=port)
    base = f"http://127.0.0.1:{port}"
    first = Process(config, tmp_path / "first.log")
    await first.start()
    try:
        await _warm_snapshot(base)
        sim.stall("binance", True)
        await asyncio.sleep(3.0)  # in-flight frames drain
        before = await _settled_snapshot(base)
        started = time.monotonic()
        assert await first.stop() == 0
        assert time.monotonic() - started < 10.0
    finally:
        await first.kill()
    second = Process(config, tmp_path / "second.log")
    await second.start()
    try:
        _, body = await _wait_http(base + "/api/v1/snapshot")
        after = json.loads(body)
        assert after["ticks"] == before["ticks"]
        for key in ("avg_correlation", "avg_correlation_slow", "absorption_ratio"):
            assert after["market"][key] == pytest.approx(before["market"][key], rel=1e-9)
        for b, a in zip(
            before["portfolios"][0]["tails"], after["portfolios"][0]["tails"], strict=True
        ):
            assert a["var"] == pytest.approx(b["var"], rel=1e-9)
            assert a["cvar"] == pytest.approx(b["cvar"], rel=1e-9)
        assert "checkpoint_restored" in (tmp_path / "second.log").read_text()
    finally:
        assert await second.stop() == 0
        await second.kill()


async def test_corrupt_checkpoint_starts_cold_and_logs_an_error(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """Garbage in the checkpoint file: a logged error, a cold start, and the daemon serves."""
    port = _free_port()
    config = _write_config(tmp_path, sim.binance_url, port=port)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a checkpoint")
    proc = Process(config, tmp_path / "run.log")
    await proc.start()
    try:
        _, text = await _wait_http(f"http://127.0.0.1:{port}/metrics")
        restored = [
            f
            for f in text_string_to_metric_families(text)
            if f.name == "riskmon_checkpoint_restored"
        ]
        assert restored[0].samples[0].value == 0.0
        assert "checkpoint_unusable_starting_cold" in (tmp_path / "run.log").read_text()
    finally:
        assert await proc.stop() == 0
        await proc.kill()


async def test_sighup_with_a_bad_config_keeps_the_old_one(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """The reload is rejected, logged and counted; the daemon keeps serving the old config."""
    port = _free_port()
    config = _write_config(tmp_path, sim.binance_url, port=port)
    proc = Process(config, tmp_path / "run.log")
    await proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_http(base + "/healthz")
        good = config.read_text()
        config.write_text(good.replace('halflife = "10m"', 'halflife = "ten minutes"'))
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            _, text = await _wait_http(base + "/metrics")
            reloads = {
                s.labels["result"]: s.value
                for f in text_string_to_metric_families(text)
                if f.name == "riskmon_config_reloads"
                for s in f.samples
            }
            if reloads.get("failure"):
                break
            assert time.monotonic() < deadline, "reload failure never counted"
            await asyncio.sleep(0.2)
        assert "config_reload_rejected" in (tmp_path / "run.log").read_text()
        assert (await _get(base + "/healthz"))[0] == 200
        config.write_text(good.replace("threshold = 0.7", "threshold = 0.8"))
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT_S
        while "config_reloaded" not in (tmp_path / "run.log").read_text():
            assert time.monotonic() < deadline, "valid reload never happened"
            await asyncio.sleep(0.2)
        assert (await _get(base + "/healthz"))[0] == 200
    finally:
        assert await proc.stop() == 0
        await proc.kill()


async def test_tls_serves_https_with_the_configured_certificate(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """With tls_cert/tls_key the endpoint speaks HTTPS and verifies against that certificate."""
    import shutil
    import ssl

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    make_cert = await asyncio.create_subprocess_exec(
        openssl, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    async with asyncio.timeout(60):
        assert await make_cert.wait() == 0
    tls = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    config = load_config(_write_config(tmp_path, sim.binance_url, auth=tls), environ={})
    service = Service(config, wall=sim.sim_time)
    task = await _start(service)
    context = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{service.port}/healthz"
        async with session.get(url, ssl=context) as resp:
            assert resp.status == 200
    service.request_stop()
    async with asyncio.timeout(TIMEOUT_S):
        await task
