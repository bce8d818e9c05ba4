"""riskmon watched as an operator watches it: a real Prometheus (Debian 2.42) with the shipped
rules, a real Alertmanager with the shipped routing, and the dashboard's queries as Grafana
sends them.

- `riskmon demo` (the simulator's calm, then its crash) is scraped every second; every target
  of every dashboard panel returns data once the demo is warm, its multi-value variables
  written ``(a|b)`` as Grafana writes them; the bus and role panels aside (single process).
- `riskmon run` with an Alertmanager sink of its own for critical rules, and Prometheus
  forwarding riskmon's rule states: Alertmanager holds each riskmon alert once.

Skipped without the prometheus and prometheus-alertmanager binaries (``make system-deps``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from feeds.simulator import ExchangeSimulator
from tests.grafana import dashboard_variables, interpolate, variable_label
from tests.integration.test_alertmanager import alertmanager_process, wait_ready
from tests.integration.test_prometheus import (
    STARTUP_TIMEOUT_S,
    free_port,
    http_json,
    query,
    run_prometheus,
    wait_until,
)
from tests.integration.test_service import Process
from tests.unit.deploy.test_deploy import DEPLOY, RULES_DIR, dashboard, dashboard_panels

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
WARM_S = 5 * STARTUP_TIMEOUT_S
"""Every dashboard target has data within this (crash, alerts, checkpoints included)."""
DEMO_S = 2 * WARM_S
"""The demo's --duration: longer than the module's tests, which stop it when done."""
SPEED = 120.0
ASIDE_ROW = "Roles and bus"
"""The row of the split roles: no data in single-process mode."""


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.skip(
        f"{names[0]} is not installed (Debian packages prometheus, prometheus-alertmanager)"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@dataclass(frozen=True)
class Demo:
    """`riskmon demo` and the Prometheus scraping it."""

    prometheus: str
    log: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`riskmon demo` on a free port, scraped every second by Prometheus with the shipped rules."""
    binary = _binary("prometheus")
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    config = tmp / "demo.toml"
    text = DEMO_CONFIG.read_text()
    config.write_text(text.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'))
    log = tmp / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "demo", "--config", str(config),
             "--duration", f"{DEMO_S:.0f}s", "--speed", f"{SPEED:g}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        rules = [str(RULES_DIR / "*.yml")]
        with run_prometheus([f"127.0.0.1:{port}"], binary=binary, rule_files=rules) as base_url:
            yield Demo(base_url, log)
    finally:
        _stop(process)


def _values(base_url: str, expr: str) -> list[float]:
    answer = query(base_url, expr)
    assert answer["status"] == "success", answer
    return [float(r["value"][1]) for r in answer["data"]["result"]]


def _label_values(base_url: str, variable: dict[str, Any]) -> list[str]:
    """What Grafana lists for a ``label_values(metric, label)`` variable."""
    metric, label = variable_label(variable)
    match = urllib.parse.urlencode({"match[]": metric})
    _, body = http_json(f"{base_url}/api/v1/label/{label}/values?{match}")
    values: list[str] = body["data"]
    return values


def _has_data(base_url: str, expr: str, instant: bool) -> bool:
    """Whether the query returns a series, as Grafana runs it (range panels over 2 minutes)."""
    if instant:
        answer = query(base_url, expr)
    else:
        now = time.time()
        params = {"query": expr, "start": f"{now - 120:.3f}", "end": f"{now:.3f}", "step": "5"}
        _, answer = http_json(f"{base_url}/api/v1/query_range?{urllib.parse.urlencode(params)}")
    assert answer["status"] == "success", (expr, answer)
    return bool(answer["data"]["result"])


def _targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, target) of every panel outside the split roles' row."""
    found: list[tuple[str, dict[str, Any]]] = []
    row = ""
    for panel in dashboard_panels(board):
        if panel["type"] == "row":
            row = panel["title"]
            continue
        if not row.startswith(ASIDE_ROW):
            found.extend((f"{panel['title']!r} {t['refId']}", t) for t in panel["targets"])
    return found


def test_prometheus_scrapes_the_demo_with_plausible_values(demo: Demo) -> None:
    """The core series arrive with values that make sense for the simulated market."""
    base_url = demo.prometheus
    wait_until(
        lambda: bool(_values(base_url, 'riskmon_average_correlation{horizon="fast"}')),
        WARM_S, "the average correlation scraped",
    )  # fmt: skip
    assert _values(base_url, 'up{job="riskmon"}') == [1.0]
    (btc,) = _values(base_url, 'riskmon_price{symbol="BTCUSDT"}')
    assert 50_000 < btc < 150_000
    (avg,) = _values(base_url, 'riskmon_average_correlation{horizon="fast"}')
    assert -1.0 <= avg <= 1.0
    vols = _values(base_url, 'riskmon_volatility_ratio{horizon="fast"}')
    assert len(vols) == 5
    assert all(0.01 < v < 20.0 for v in vols)
    assert _values(base_url, 'riskmon_feed_connected{venue="binance"}') == [1.0]
    assert max(_values(base_url, "riskmon_feed_staleness_seconds")) < 30.0
    states = query(base_url, "riskmon_alert_state")["data"]["result"]
    assert {r["metric"]["rule"] for r in states} >= {"market-correlation-spike", "demo-book-var-99"}
    var = [r for r in states if r["metric"]["rule"] == "demo-book-var-99"]
    assert var[0]["metric"]["portfolio"] == "demo-book"
    assert var[0]["metric"]["severity"] == "warning"
    (threshold,) = _values(base_url, 'riskmon_alert_threshold{rule="demo-book-var-99"}')
    assert threshold == 40_000  # config/demo.toml, the one place it is written
    (ratio,) = _values(base_url, 'riskmon_account_margin_ratio{account="demo-perps"}')
    assert 0.0 < ratio < 1.0
    (rss,) = _values(base_url, 'process_resident_memory_bytes{job="riskmon"}')
    assert 50e6 < rss < 4e9
    (lag,) = _values(base_url, "riskmon_event_loop_lag_seconds")
    assert 0.0 <= lag < 5.0


def test_every_dashboard_target_returns_data_with_grafana_s_variables(demo: Demo) -> None:
    """Grafana's variables are listed from Prometheus, "All" selected and interpolated as
    Grafana does; every target of every panel then returns data (the split roles' row
    aside), and the snapshot age is a few seconds, not minus hours."""
    base_url, board = demo.prometheus, dashboard()
    wait_until(lambda: bool(_values(base_url, "riskmon_alert_state")), WARM_S, "riskmon scraped")
    wait_until(
        lambda: len(_label_values(base_url, _variable(board, "confidence"))) == 2,
        WARM_S, "both confidence levels",
    )  # fmt: skip
    targets = _targets(board)
    assert len(targets) > 50
    empty: list[str] = []

    def every_target_has_data() -> bool:
        values = {v["name"]: _label_values(base_url, v) for v in _query_variables(board)}
        variables = dashboard_variables(board, values)
        empty[:] = [
            f"{where}: {expr}"
            for where, target in targets
            if not _has_data(base_url, expr := interpolate(target["expr"], variables),
                             bool(target.get("instant")))
        ]  # fmt: skip
        return not empty

    deadline = time.monotonic() + WARM_S
    while not every_target_has_data():
        assert time.monotonic() < deadline, "targets without data:\n" + "\n".join(empty)
        time.sleep(2.0)
    confidence = dashboard_variables(board, {n: ["x"] for n in ("portfolio", "account")} | {
        "confidence": _label_values(base_url, _variable(board, "confidence"))
    })  # fmt: skip
    written = interpolate('confidence=~"$confidence"', confidence)
    assert written == 'confidence=~"(0\\\\.95|0\\\\.99)"'
    (age,) = _values(base_url, "time() - riskmon_snapshot_computed_timestamp_seconds")
    assert 0.0 <= age < 30.0
    (event_age,) = _values(base_url, "time() - riskmon_snapshot_timestamp_seconds")
    assert event_age < -60.0  # event time runs ahead in the demo: the old panel's negative age


def _query_variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in board["templating"]["list"] if v["type"] == "query"]


def _variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [v for v in _query_variables(board) if v["name"] == name]
    return found


# --- one alert, one notification -------------------------------------------------------------

RUN_CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 20
preaverage = "0.25s"

[[portfolios]]
name = "book"
positions = [ { symbol = "BTCUSDT", quantity = 1 } ]

[[rules]]
# critical: riskmon's own alertmanager sink delivers it
name = "btc-priced"
metric = "price"
op = ">"
threshold = 1
severity = "critical"
labels = { symbol = "BTCUSDT" }

[[rules]]
# warning: not routed to Alertmanager by riskmon, so Prometheus forwards it
name = "book-value"
metric = "portfolio_value"
op = ">"
threshold = 1
severity = "warning"

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]
url = "BINANCE_URL"

[live]
snapshot_interval = "1s"
idle_snapshot = "1s"

[server]
listen = "127.0.0.1:PORT"

[state]
dir = "STATE"

[[sinks]]
name = "am"
type = "alertmanager"
url = "ALERTMANAGER"
resend_interval = "5s"

[[routes]]
severity = ["critical"]
sinks = ["am"]
"""


def _alertmanager_config() -> dict[str, Any]:
    """The shipped routing tree and inhibitions, receivers without integrations, short timers."""
    shipped = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    shipped.pop("templates", None)
    shipped["receivers"] = [{"name": r["name"]} for r in shipped["receivers"]]
    shipped["route"].update(group_wait="1s", group_interval="1s")
    for route in shipped["route"]["routes"]:
        route.update(group_wait="1s", group_interval="1s")
    return dict(shipped)


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(speed=1.0, seed=9) as simulator:
        yield simulator


async def _alerts(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v2/alerts") as resp:
        assert resp.status == 200
        alerts: list[dict[str, Any]] = await resp.json()
        return alerts


async def test_alertmanager_holds_each_riskmon_alert_once(
    tmp_path: Path, sim: ExchangeSimulator
) -> None:
    """riskmon's alertmanager sink delivers its critical rule; Prometheus forwards the warning
    one from riskmon_alert_state and leaves the critical one to the sink: Alertmanager holds
    one alert per rule instance, routed by the rule's severity as riskmon routes it."""
    prometheus = _binary("prometheus")
    manager_binary = _binary("prometheus-alertmanager", "alertmanager")
    with alertmanager_process(
        manager_binary, "http://127.0.0.1:9/unused", tmp_path, _alertmanager_config()
    ) as manager:
        await wait_ready(manager)
        port = free_port()
        config = tmp_path / "riskmon.toml"
        config.write_text(
            textwrap.dedent(RUN_CONFIG)
            .replace("BINANCE_URL", sim.binance_url)
            .replace("PORT", str(port))
            .replace("STATE", str(tmp_path / "state"))
            .replace("ALERTMANAGER", manager.url)
        )
        riskmon = Process(config, tmp_path / "run.log", dict(os.environ))
        await riskmon.start()
        prometheus_cm = run_prometheus(
            [f"127.0.0.1:{port}"],
            binary=prometheus,
            rule_files=[str(RULES_DIR / "riskmon-rules.yml")],
            alertmanager=manager.url.removeprefix("http://"),
        )
        base_url = await asyncio.to_thread(prometheus_cm.__enter__)
        try:
            seen = await _collect_alerts(manager.url)
            forwarded = await asyncio.to_thread(
                query, base_url, 'ALERTS{alertname="RiskmonRuleFiring"}'
            )
        finally:
            await asyncio.to_thread(prometheus_cm.__exit__, None, None, None)
            assert await riskmon.stop() == 0
            await riskmon.kill()
    identities = {_identity(alert) for alerts in seen for alert in alerts}
    assert identities == {
        ("riskmon sink", "btc-priced", "critical", ("pager",)),
        ("prometheus", "book-value", "warning", ("chat",)),
    }
    assert max(len(alerts) for alerts in seen) == 2  # never a third: no rule twice at once
    rules = {r["metric"]["rule"] for r in forwarded["data"]["result"]}
    assert rules == {"book-value"}


async def _collect_alerts(url: str) -> list[list[dict[str, Any]]]:
    """Alertmanager's alerts, polled until both paths delivered and a few seconds after."""
    seen: list[list[dict[str, Any]]] = []
    deadline = time.monotonic() + 3 * STARTUP_TIMEOUT_S
    both_since: float | None = None
    while time.monotonic() < deadline:
        alerts = await _alerts(url)
        seen.append(alerts)
        names = {a["labels"]["alertname"] for a in alerts}
        if {"btc-priced", "RiskmonRuleFiring"} <= names:
            both_since = both_since or time.monotonic()
            if time.monotonic() - both_since > 5.0:  # a few evaluations and re-sends later
                return seen
        await asyncio.sleep(0.5)
    pytest.fail(f"Alertmanager never held both alerts: {json.dumps(seen[-1:])[:2000]}")


def _identity(alert: dict[str, Any]) -> tuple[str, str, str, tuple[str, ...]]:
    labels = alert["labels"]
    receivers = tuple(sorted(r["name"] for r in alert["receivers"]))
    if labels["alertname"] == "RiskmonRuleFiring":
        return ("prometheus", labels["rule"], labels["severity"], receivers)
    return ("riskmon sink", labels["alertname"], labels["severity"], receivers)
