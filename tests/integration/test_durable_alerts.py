"""Kill the daemon while a sink is down with an alert queued; restart; the alert arrives once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from feeds.simulator import ExchangeSimulator
from tests.integration.test_service import Process, _free_port, _get, _write_config
from tests.receivers import Receiver, plain_ok

TIMEOUT_S = 30.0
RULE_AND_SINK = """
[[rules]]
name = "btc-priced"
metric = "price"
op = ">"
threshold = 1
severity = "critical"
labels = { symbol = "BTCUSDT" }

[[sinks]]
name = "hook"
type = "webhook"
url = "HOOK_URL"

[[routes]]
sinks = ["hook"]
severity = ["critical"]
"""


async def _metric(base: str, name: str, sink: str) -> float | None:
    try:
        status, text = await _get(base + "/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("sink") == sink:
                return sample.value
    return None


async def _until_metric(base: str, name: str, sink: str, minimum: float) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while (value := await _metric(base, name, sink)) is None or value < minimum:
        assert time.monotonic() < deadline, f"{name}{{sink={sink}}} never reached {minimum}"
        await asyncio.sleep(0.2)


async def test_alert_queued_while_the_sink_is_down_survives_a_kill(tmp_path: Path) -> None:
    """SIGKILL with the alert in the outbox, restart, sink back: exactly one delivery."""
    async with Receiver({"/hook": plain_ok}) as receiver, ExchangeSimulator(seed=3) as sim:
        await receiver.down()
        port = _free_port()
        config = _write_config(tmp_path, sim.binance_url, port=port)
        config.write_text(
            config.read_text() + RULE_AND_SINK.replace("HOOK_URL", receiver.url + "/hook")
        )
        base = f"http://127.0.0.1:{port}"
        first = Process(config, tmp_path / "first.log")
        await first.start()
        try:
            await _until_metric(base, "riskmon_alerts_queued", "hook", 1)
            await _until_metric(base, "riskmon_alerts_retried_total", "hook", 1)
        finally:
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
        second = Process(config, tmp_path / "second.log")
        await second.start()
        try:
            await _until_metric(base, "riskmon_alerts_queued", "hook", 1)
            await receiver.up()
            await receiver.wait_for(lambda r: len(r) >= 1, TIMEOUT_S)
            await _until_metric(base, "riskmon_alerts_sent_total", "hook", 1)
            await asyncio.sleep(2.0)  # a duplicate would arrive now
            keys = [
                r.json["dedup_key"]
                for r in receiver.requests_to("/hook")
                if r.json["state"] == "firing"
            ]
            assert keys == ["riskmon/btc-priced/symbol=BTCUSDT"]
        finally:
            assert await second.stop() == 0
            await second.kill()
