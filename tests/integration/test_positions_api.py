"""``/api/v1/positions`` on a running service: authenticated, validated, atomic, persistent."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from service.service import Service
from tests.integration.test_live_feeds import TIMEOUT_S, eventually
from tests.integration.test_service import SECRET, _start, _write_config

ACCOUNT = """
[[accounts]]
name = "perps"
margin = "binance-usdm"
brackets = [[50000, 0.004], [250000, 0.005], [1000000, 0.01], [10000000, 0.025]]
collateral = [ { asset = "USDT", amount = 20000 } ]

[[accounts.positions]]
instrument = "BTCUSDT"
kind = "linear"
underlying = "BTCUSDT"
contracts = 1
entry_price = 60000
"""
NEW_BOOK = {
    "accounts": [
        {
            "name": "book",
            "margin": "bybit-unified",
            "brackets": [[2000000, 0.005]],
            "collateral": [{"asset": "USDC", "amount": 50000, "haircut": 0.02}],
            "positions": [
                {
                    "instrument": "ETHUSDT",
                    "kind": "linear",
                    "underlying": "ETHUSDT",
                    "contracts": -5,
                    "entry_price": 3000,
                }
            ],
        }
    ]
}
AUTH = 'auth = "bearer"\ntoken_env = "RISKMON_TEST_TOKEN"'


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=60.0, seed=5) as simulator:
        yield simulator


@pytest.fixture
def token() -> Iterator[str]:
    os.environ["RISKMON_TEST_TOKEN"] = SECRET
    yield SECRET
    del os.environ["RISKMON_TEST_TOKEN"]


def _config(tmp_path: Path, sim: ExchangeSimulator, auth: str) -> Path:
    path = _write_config(tmp_path, sim.binance_url, auth=auth)
    path.write_text(path.read_text() + ACCOUNT)
    return path


async def _call(
    method: str, url: str, body: object = None, token: str | None = SECRET
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def _stop(service: Service, task: asyncio.Task[None]) -> None:
    service.request_stop()
    async with asyncio.timeout(TIMEOUT_S):
        await task


async def test_positions_are_replaced_atomically_and_survive_a_restart(
    sim: ExchangeSimulator, tmp_path: Path, token: str
) -> None:
    path = _config(tmp_path, sim, AUTH)
    service = Service(load_config(path, environ={}), wall=sim.sim_time)
    task = await _start(service)
    url = f"http://127.0.0.1:{service.port}/api/v1/positions"
    assert service.daemon is not None
    daemon = service.daemon
    await eventually(lambda: daemon.engine.ticks > 200, "ticks flowing")
    status, body = await _call("GET", url)
    assert status == 200
    assert [a["name"] for a in body["accounts"]] == ["perps"]  # type: ignore[union-attr]

    assert (await _call("POST", url, NEW_BOOK, token=None))[0] == 401
    status, body = await _call("POST", url, b"{not json")
    assert status == 422
    assert "request body" in str(body["error"])
    unknown = json.loads(
        json.dumps(NEW_BOOK).replace('"underlying": "ETHUSDT"', '"underlying": "DOGEUSDT"')
    )
    status, body = await _call("POST", url, unknown)
    assert status == 422
    assert "DOGEUSDT not tracked" in str(body["error"])
    assert daemon.engine.account_names == ("perps",)  # a refused body changes nothing

    engine, ticks_before = daemon.engine, daemon.engine.ticks
    status, body = await _call("POST", url, NEW_BOOK)
    assert status == 200
    assert body["accounts"] == ["book"]
    assert daemon.engine is engine  # same estimators, not rebuilt
    assert engine.ticks >= ticks_before
    await eventually(
        lambda: daemon.latest is not None and daemon.latest.account("book") is not None,
        "a snapshot with the new account",
    )
    saved = tmp_path / "state" / "positions.json"
    assert json.loads(saved.read_text())["accounts"][0]["name"] == "book"
    await _stop(service, task)

    restarted = Service(load_config(path, environ={}), wall=sim.sim_time)
    task = await _start(restarted)
    url = f"http://127.0.0.1:{restarted.port}/api/v1/positions"
    assert restarted.daemon is not None
    assert restarted.daemon.engine.account_names == ("book",)
    assert restarted.daemon.engine.ticks > 0  # the checkpoint came back as well
    status, body = await _call("DELETE", url)
    assert status == 200
    assert body["accounts"] == ["perps"]
    assert not saved.exists()
    await _stop(restarted, task)


async def test_changing_positions_needs_auth_configured(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    service = Service(load_config(_config(tmp_path, sim, ""), environ={}), wall=sim.sim_time)
    task = await _start(service)
    url = f"http://127.0.0.1:{service.port}/api/v1/positions"
    status, body = await _call("POST", url, NEW_BOOK, token=None)
    assert status == 403
    assert "auth" in str(body["error"])
    assert (await _call("GET", url, token=None))[0] == 200
    await _stop(service, task)
