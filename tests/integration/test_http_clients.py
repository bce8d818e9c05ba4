"""Hostile clients cannot fill the log with errors: garbage over a raw socket is answered 400,
logged as access-level lines without traceback, and counted; the daemon keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feeds.simulator import ExchangeSimulator
from tests.integration.test_live_feeds import TIMEOUT_S
from tests.integration.test_service import Process, _free_port, _wait_http

TOKEN = "client-test-token"
CONFIG = """
[universe]
symbols = ["BTCUSDT"]

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT"]
url = "BINANCE_URL"

[server]
listen = "127.0.0.1:PORT"
auth = "bearer"
token_env = "RISKMON_TEST_TOKEN"

[state]
dir = "STATE"
"""

GARBAGE: tuple[bytes, ...] = (
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS ClientHello
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"POST /api/v1/positions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    + TOKEN.encode()
    + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
)
# Authorised headers first, so the handler is reading the body when its bad chunk arrives.
LATE_BAD_BODY = (
    b"POST /api/v1/positions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    + TOKEN.encode()
    + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"zz\r\n{}\r\n0\r\n\r\n",
)


# Well-formed requests a handler refuses: (method, path, with the token, body, status).
CLIENT_ERRORS: tuple[tuple[str, str, bool, bytes | None, int], ...] = (
    ("GET", "/metrics", False, None, 401),
    ("GET", "/api/v1/snapshot?token=guess", False, None, 401),
    ("GET", "/nowhere", True, None, 404),
    ("DELETE", "/metrics", True, None, 405),
    ("POST", "/api/v1/positions", True, b"{not json", 422),
)


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=1.0, seed=3) as simulator:
        yield simulator


async def _send_raw(port: int, *parts: bytes, wait_s: float = TIMEOUT_S) -> bytes:
    """Send ``parts`` on a fresh connection, a moment apart; what came back before the server
    closed, or within ``wait_s`` (then the client hangs up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(0.3)
            writer.write(part)
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                return await reader.read(65536)
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_garbage_requests_are_client_errors_not_server_errors(
    tmp_path: Path, sim: ExchangeSimulator
) -> None:
    """Every malformed request gets a 4xx; the log has no ERROR record and no traceback; the
    refusals are counted in riskmon_http_bad_requests_total, the 4xx answers of handlers (bad
    token, unknown path, wrong method, invalid JSON) in riskmon_http_client_errors_total, each
    an INFO line; /metrics still answers."""
    port = _free_port()
    config = tmp_path / "riskmon.toml"
    config.write_text(
        textwrap.dedent(CONFIG)
        .replace("BINANCE_URL", sim.binance_url)
        .replace("PORT", str(port))
        .replace("STATE", str(tmp_path / "state"))
    )
    log = tmp_path / "run.log"
    process = Process(config, log, {**os.environ, "RISKMON_TEST_TOKEN": TOKEN})
    await process.start()
    try:
        await _wait_http(f"http://127.0.0.1:{port}/healthz")
        for payload in GARBAGE:
            answer = await _send_raw(port, payload)
            status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.") else b""
            assert status.startswith(b"4"), (payload[:40], answer[:200])
        # The handler waits for a body the parser gave up on; the client hangs up.
        await _send_raw(port, *LATE_BAD_BODY, wait_s=1.0)
        await _send_raw(port, LATE_BAD_BODY[0], wait_s=0.5)  # hangs up before any body
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for method, path, auth, body, status in CLIENT_ERRORS:
                sent = headers if auth else {}
                async with session.request(method, base + path, headers=sent, data=body) as resp:
                    assert resp.status == status, (method, path)
            async with session.get(f"{base}/metrics", headers=headers) as resp:
                assert resp.status == 200
                text = await resp.text()
    finally:
        assert await process.stop() == 0
        await process.kill()
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "riskmon_http_bad_requests"
    ]
    counted = sum(s.value for s in family.samples if s.name.endswith("_total"))
    reasons = {s.labels["reason"]: s.value for s in family.samples}
    assert counted >= len(GARBAGE) + 2
    assert sum(v for r, v in reasons.items() if "Connection" in r) == 2  # the hang-ups
    records = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
    assert records, "the daemon logged nothing"
    assert [r for r in records if r.get("level") in {"error", "critical"}] == []
    assert "Traceback" not in log.read_text()
    bad = [r for r in records if r.get("event") == "http_bad_request"]
    assert len(bad) == counted
    assert {r["level"] for r in bad} == {"info"}
    refused = [r for r in records if r.get("event") == "http_client_error"]
    assert sorted(r["status"] for r in refused) == sorted(c[-1] for c in CLIENT_ERRORS)
    assert {r["level"] for r in refused} == {"info"}
    assert all("?" not in r["path"] for r in refused)  # never a query string (tokens)
    (answered,) = [
        f for f in text_string_to_metric_families(text) if f.name == "riskmon_http_client_errors"
    ]
    codes = {s.labels["code"]: s.value for s in answered.samples if s.name.endswith("_total")}
    assert codes == {"401": 2.0, "404": 1.0, "405": 1.0, "422": 1.0}
