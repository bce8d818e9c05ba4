"""`riskmon run` against seven fake venues that send absurd but well-formed data (issue #12).

Every venue protocol riskmon speaks gets one scripted local server (``tests/fake_venues.py``,
each venue's real wire format) with six instruments, one per misbehaviour: a trade stamped in
2100, a first trade stamped 1970, a trade 300 s ahead, a 1000x print never confirmed, a -30%
fall that later trades confirm, a negative and a zero price. The daemon runs as a subprocess:

- /healthz answers 200 within 1 s all the time;
- /readyz is ready once the storm has passed, while the venues still send;
- once the venues stop, every symbol shows the last good price its venue sent;
- /metrics counts each rejection by venue and reason;
- SIGTERM exits 0 within 10 s with a checkpoint, also in the middle of the storm, and the
  restarted daemon ends on the last good prices too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_venues import SCENARIOS, FakeVenue, Script, engine_symbol, native
from tests.integration.test_service import Process, _free_port

VENUES = ("binance", "binance-usdm", "coinbase", "kraken", "okx", "bybit", "deribit")
DEADLINE_S = 60.0  # start-up of a subprocess on a loaded 2-core machine included
HEALTH_LIMIT_S = 1.0
STOP_LIMIT_S = 10.0


def _feed(venue: str, url: str) -> str:
    natives = [native(venue, s) for s in SCENARIOS]
    aliases = ", ".join(f'"{native(venue, s)}" = "{engine_symbol(venue, s)}"' for s in SCENARIOS)
    return f"""
[[feeds]]
venue = "{venue}"
symbols = {json.dumps(natives)}
price = "{"mark" if venue == "deribit" else "trade"}"
url = "{url}"
stale_after = "3s"
aliases = {{ {aliases} }}
"""


def _write_config(tmp: Path, urls: dict[str, str], port: int) -> Path:
    symbols = [engine_symbol(v, s) for v in VENUES for s in SCENARIOS]
    text = f"""
[universe]
symbols = {json.dumps(symbols)}

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 5
preaverage = "0.5s"  # a short pre-averaging block: the test warms up in seconds

[live]
snapshot_interval = "1s"
idle_snapshot = "1s"
stall_after = "5s"

[server]
listen = "127.0.0.1:{port}"

[state]
dir = "{tmp / "state"}"
checkpoint_interval = "1s"
""" + "".join(_feed(v, urls[v]) for v in VENUES)
    path = tmp / "riskmon.toml"
    path.write_text(text)
    return path


@dataclass
class Storm:
    """Seven fake venues and the daemon that watches them."""

    tmp: Path
    scripts: dict[str, Script]
    config: Path
    port: int
    health: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last_good(self) -> dict[str, float]:
        """Engine symbol -> the last good price its venue sent."""
        return {
            engine_symbol(v, s): script.last_good[native(v, s)]
            for v, script in self.scripts.items()
            for s in SCENARIOS
        }

    def rounds(self) -> int:
        """Rounds every venue has sent at least."""
        return min(s.sent for s in self.scripts.values())

    async def get(self, path: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=10.0)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.base + path) as resp,
        ):
            return resp.status, await resp.text()

    async def watch_health(self) -> None:
        """Poll /healthz every 0.1 s from the first answer on; record status and latency."""
        while True:
            started = time.monotonic()
            try:
                status, _ = await self.get("/healthz")
            except aiohttp.ClientConnectionError:
                if self.health:  # it answered before: a refused connection is a failure
                    self.health.append((0, time.monotonic() - started))
                await asyncio.sleep(0.1)
                continue
            self.health.append((status, time.monotonic() - started))
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def storm(tmp: Path) -> AsyncIterator[Storm]:
    scripts = {venue: Script(venue, seed=n + 1) for n, venue in enumerate(VENUES)}
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for venue, script in scripts.items():
            urls[venue] = (await stack.enter_async_context(FakeVenue(script))).url
        port = _free_port()
        yield Storm(tmp, scripts, _write_config(tmp, urls, port), port)


async def until(check: Callable[[], bool], what: str, within_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for: {what}")
        await asyncio.sleep(0.05)


async def settled_prices(run: Storm) -> dict[str, object]:
    """The snapshot once every symbol shows its venue's last good price (or fail)."""
    want = run.last_good()
    deadline = time.monotonic() + DEADLINE_S / 2
    while True:
        status, body = await run.get("/api/v1/snapshot")
        got = json.loads(body)["symbols"] if status == 200 else {}
        wrong = {
            s: (got.get(s, {}).get("price"), p)
            for s, p in want.items()
            if got.get(s, {}).get("price") != pytest.approx(p, rel=1e-9)
        }
        if not wrong:
            return dict(json.loads(body))
        if time.monotonic() > deadline:
            pytest.fail(f"prices never settled on the last good ones: {wrong}")
        await asyncio.sleep(0.2)


def rejected(metrics: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["venue"], s.labels["reason"]): s.value
        for f in text_string_to_metric_families(metrics)
        if f.name == "riskmon_ticks_rejected"
        for s in f.samples
    }


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass
class Observed:
    """What one daemon run through the whole storm showed."""

    health: list[tuple[int, float]]
    ready: list[tuple[int, str]]
    snapshot: dict[str, object]
    metrics: str
    exit_code: int
    stop_s: float
    checkpoint: bool
    last_good: dict[str, float]


async def _whole_storm(tmp: Path) -> Observed:
    async with storm(tmp) as run:
        daemon = Process(run.config, tmp / "daemon.log")
        await daemon.start()
        watcher = asyncio.create_task(run.watch_health())
        try:
            await until(lambda: run.rounds() > 40, "the venues to send past the anomalies")
            ready: list[tuple[int, str]] = []
            while run.rounds() < 75 and not (ready and ready[-1][0] == 200):
                ready.append(await run.get("/readyz"))
                await asyncio.sleep(0.2)
            await until(lambda: all(s.done for s in run.scripts.values()), "the scripts' end")
            snapshot = await settled_prices(run)
            _, metrics = await run.get("/metrics")
            await _cancel(watcher)  # the daemon stops serving from here on
            started = time.monotonic()
            code = await daemon.stop()
            stop_s = time.monotonic() - started
        finally:
            await _cancel(watcher)
            await daemon.kill()
        return Observed(
            run.health,
            ready,
            snapshot,
            metrics,
            code,
            stop_s,
            (tmp / "state" / "checkpoint.npz").exists(),
            run.last_good(),
        )


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    """One daemon through the whole storm (run once for the tests below)."""
    return asyncio.run(_whole_storm(tmp_path_factory.mktemp("storm")))


def test_healthz_answers_within_a_second_throughout(observed: Observed) -> None:
    """From the first answer to SIGTERM: every /healthz is 200 and under a second."""
    assert len(observed.health) > 50
    slow = [(status, s) for status, s in observed.health if status != 200 or s >= HEALTH_LIMIT_S]
    assert not slow, slow


def test_ready_once_the_storm_has_passed(observed: Observed) -> None:
    """After the anomalies, with the venues still sending, /readyz says ready."""
    assert observed.ready
    assert observed.ready[-1][0] == 200, observed.ready[-5:]


def test_figures_keep_moving_and_equal_the_last_good_prices(observed: Observed) -> None:
    """Every symbol of every venue, each misbehaviour included, shows its last good price
    (asserted while waiting); its last tick is recent and the event clock near the wall."""
    snap = observed.snapshot
    symbols = snap["symbols"]
    assert isinstance(symbols, dict)
    assert set(observed.last_good) <= set(symbols)
    ts = snap["ts"]
    assert isinstance(ts, float)
    assert abs(time.time() - ts) < DEADLINE_S
    for symbol in observed.last_good:
        assert ts - symbols[symbol]["last_tick_ts"] < 10.0, symbol


@pytest.mark.parametrize("venue", VENUES)
def test_each_rejection_is_counted_by_venue_and_reason(observed: Observed, venue: str) -> None:
    """Two re-stamped times (2100, +300 s), the 1970 tick, the 1000x print, -1 and 0."""
    counts = {
        reason: n for (where, reason), n in rejected(observed.metrics).items() if where == venue
    }
    assert counts == {
        "clock_skew": 2.0,
        "out_of_order": 1.0,
        "outlier": 1.0,
        "non_positive": 2.0,
        "not_a_number": 0.0,
        "unknown_symbol": 0.0,
    }


def test_nothing_is_held_and_the_clock_follows_the_wall(observed: Observed) -> None:
    """No suspect waits at the end; the event clock drift gauge is small."""
    values = {
        s.name: s.value
        for f in text_string_to_metric_families(observed.metrics)
        for s in f.samples
        if not s.labels
    }
    assert values["riskmon_ticks_held"] == 0.0
    assert abs(values["riskmon_event_clock_drift_seconds"]) < 10.0


def test_sigterm_exits_0_within_10_s_with_a_checkpoint(observed: Observed) -> None:
    assert observed.exit_code == 0
    assert observed.stop_s < STOP_LIMIT_S
    assert observed.checkpoint


async def test_sigterm_in_the_middle_of_the_storm_and_restart(tmp_path: Path) -> None:
    """SIGTERM right after the anomalies (suspects held): exit 0 within 10 s; the restarted
    daemon restores the checkpoint, takes the rest of the storm, ends on the last good prices."""
    async with storm(tmp_path) as run:
        first = Process(run.config, tmp_path / "first.log")
        await first.start()
        try:
            await until(lambda: run.rounds() > 31, "the venues to send the anomalies")
            started = time.monotonic()
            assert await first.stop() == 0
            assert time.monotonic() - started < STOP_LIMIT_S
        finally:
            await first.kill()
        assert (tmp_path / "state" / "checkpoint.npz").exists()
        second = Process(run.config, tmp_path / "second.log")
        await second.start()
        watcher = asyncio.create_task(run.watch_health())
        try:
            await until(lambda: all(s.done for s in run.scripts.values()), "the scripts' end")
            await settled_prices(run)
            assert "checkpoint_restored" in (tmp_path / "second.log").read_text()
            await _cancel(watcher)
            assert await second.stop() == 0
        finally:
            await _cancel(watcher)
            await second.kill()
        assert all(status == 200 and s < HEALTH_LIMIT_S for status, s in run.health)
