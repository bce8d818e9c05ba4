"""`riskmon replay --send-alerts`: a replay's transitions through the configured routes.

The CLI runs as a subprocess (it configures logging for the whole process) against local
receivers; the history is generated (calm then stressed), so one rule fires and resolves and
two fire.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.alertstory import changes, story
from tests.integration.test_replay_cli import CONFIG, SYMBOLS
from tests.receivers import ACCEPTANCES, Receiver
from tests.simulate import simulate_regimes

TIMEOUT_S = 120.0
"""The whole replay subprocess, numba compilation included."""
SLACK_PATH = "/services/T0REPLAY1/B0REPLAY2/replaySecretToken0123"
EXTRA = """
[[rules]]
name = "flappy"
metric = "avg_correlation"
op = ">"
threshold = 0.3
resolve_threshold = 0.25
severity = "warning"

[[rules]]
name = "calm"
metric = "avg_correlation"
op = "<"
threshold = 0.3
resolve_threshold = 0.35
severity = "info"

[[sinks]]
name = "hook"
type = "webhook"
url = "BASE/hook"

[[sinks]]
name = "chat"
type = "slack"
url = "BASE{slack}"

[[routes]]
sinks = ["hook", "chat"]
""".replace("{slack}", SLACK_PATH)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    ticks = simulate_regimes([2.0, 1.0, 0.5], 0.9, [(3600.0, 0.1), (3600.0, 0.95)], seed=3)
    frame = pl.DataFrame(
        {"ts": ticks.ts, "symbol": [SYMBOLS[i] for i in ticks.idx], "price": np.exp(ticks.logp)}
    )
    path = tmp_path / "history.parquet"
    frame.write_parquet(path)
    return path


async def _replay(history: Path, config: Path, out: Path, *flags: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "replay", str(history), "--config", str(config),
        "--out", str(out), "--no-progress", *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(TIMEOUT_S):
        output, _ = await proc.communicate()
    text = output.decode()
    assert proc.returncode == 0, text
    return text


async def test_send_alerts_delivers_through_the_routes_and_without_it_sinks_are_unused(
    history: Path, tmp_path: Path
) -> None:
    routes = {"/hook": ACCEPTANCES["webhook"], SLACK_PATH: ACCEPTANCES["slack"]}
    async with Receiver(routes) as receiver:
        config = tmp_path / "replay.toml"
        config.write_text(textwrap.dedent(CONFIG) + EXTRA.replace("BASE", receiver.url))
        quiet = await _replay(history, config, tmp_path / "quiet")
        assert "sinks            not used (2 configured" in quiet
        assert receiver.requests == []
        sent = await _replay(history, config, tmp_path / "sent", "--send-alerts")
    hook = receiver.requests_to("/hook")
    assert changes("webhook", hook[0]) == [("spike", "fired")]  # critical first
    assert story("webhook", hook, "calm") == ["fired", "resolved"]
    assert story("webhook", hook, "flappy") == ["fired"]
    (digest,) = receiver.requests_to(SLACK_PATH)
    assert sorted(changes("slack", digest)) == [
        ("calm", "fired_and_resolved"),
        ("flappy", "fired"),
        ("spike", "fired"),
    ]
    assert "sink chat        1 messages (3 alert changes), 0 failed, 0 undelivered" in sent
    assert "sink hook        4 messages (4 alert changes), 0 failed, 0 undelivered" in sent
    assert "replaySecretToken0123" not in sent
