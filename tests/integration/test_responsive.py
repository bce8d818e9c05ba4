"""The control plane never waits on the engine: probes, scrapes and a stop during a slow step.

A daemon whose engine step blocks for a few seconds (in its worker thread, as a pathological
batch would) still answers /healthz and /metrics within a second; /healthz turns 503 once
the loop has not turned for ``[live] stall_after`` and 200 again after; a stop requested
during the step completes within 10 s, with a checkpoint.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from service.daemon import Daemon
from service.service import Service
from tests.integration.test_live_feeds import TIMEOUT_S, eventually
from tests.integration.test_service import _start, _write_config

BLOCK_S = 4.0


@dataclass(slots=True)
class SlowDaemon(Daemon):
    """A daemon whose next snapshot, once ``slow`` is set, takes BLOCK_S in the engine step."""

    slow: threading.Event = field(default_factory=threading.Event, init=False)
    blocked: threading.Event = field(default_factory=threading.Event, init=False)

    def _on_snapshot(self, snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        if self.slow.is_set():
            self.slow.clear()
            self.blocked.set()
            time.sleep(BLOCK_S)  # in the worker thread: the event loop must not notice
            self.blocked.clear()
        Daemon._on_snapshot(self, snap, events)


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=60.0, seed=13) as simulator:
        yield simulator


async def _timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        await resp.read()
        return resp.status, time.monotonic() - started


def _slow(service: Service) -> SlowDaemon:
    assert isinstance(service.daemon, SlowDaemon)
    return service.daemon


async def test_probes_answer_and_the_stop_completes_during_a_slow_step(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    path = _write_config(tmp_path, sim.binance_url)
    path.write_text(
        path.read_text().replace('idle_snapshot = "1s"', 'idle_snapshot = "1s"\nstall_after = "2s"')
    )
    service = Service(load_config(path, environ={}), wall=sim.sim_time, daemon_factory=SlowDaemon)
    task = await _start(service)
    base = f"http://127.0.0.1:{service.port}"
    await eventually(lambda: _slow(service).latest is not None, "a first snapshot")
    _slow(service).slow.set()
    await eventually(_slow(service).blocked.is_set, "the engine step to block")
    health: list[tuple[int, float]] = []
    scrapes: list[tuple[int, float]] = []
    while _slow(service).blocked.is_set():
        health.append(await _timed_get(base + "/healthz"))
        scrapes.append(await _timed_get(base + "/metrics"))
        await asyncio.sleep(0.1)
    assert all(seconds < 1.0 for _, seconds in health + scrapes), (health, scrapes)
    assert {status for status, _ in scrapes} == {200}
    assert [status for status, _ in health][:3] == [200, 200, 200]
    assert 503 in {status for status, _ in health}, "the stalled loop was never reported"
    await eventually(lambda: _slow(service).loop_alive(time.monotonic()), "the loop to turn")
    assert (await _timed_get(base + "/healthz"))[0] == 200
    _slow(service).slow.set()
    await eventually(_slow(service).blocked.is_set, "the engine step to block again")
    started = time.monotonic()
    service.request_stop()
    async with asyncio.timeout(TIMEOUT_S):
        await task
    assert time.monotonic() - started < 10.0
    assert (tmp_path / "state" / "checkpoint.npz").exists()
