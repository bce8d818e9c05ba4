"""`riskmon test-alert --sink NAME` sends one notification through the configured sink."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from service.cli import main
from tests.receivers import Receiver, plain_ok, status

CONFIG = """
[universe]
symbols = ["BTCUSDT"]

[state]
dir = "STATE"

[[sinks]]
name = "hook"
type = "webhook"
url = "URL"
secret_env = "RISKMON_TEST_HOOK_KEY"
"""


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "riskmon.toml"
    text = textwrap.dedent(CONFIG).replace("URL", url).replace("STATE", str(tmp_path / "s"))
    path.write_text(text)
    return path


async def test_test_alert_reaches_the_sink_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0, one signed request with the test rule; the secret is not printed."""
    monkeypatch.setenv("RISKMON_TEST_HOOK_KEY", "hmac-key-123")
    async with Receiver({"/hook": plain_ok}) as receiver:
        config = _config(tmp_path, receiver.url + "/hook")
        code = await asyncio.to_thread(
            main, ["test-alert", "--sink", "hook", "--config", str(config)]
        )
        assert code == 0
        (request,) = receiver.requests_to("/hook")
        assert request.json["rule"] == "riskmon-test-alert"
        assert request.headers["X-Riskmon-Signature"].startswith("sha256=")
    out = capsys.readouterr()
    assert "delivered" in out.out
    assert "hmac-key-123" not in out.out + out.err


async def test_test_alert_reports_a_refusing_sink_and_an_unknown_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 from the receiver and a sink name not in the config both exit 2."""
    monkeypatch.setenv("RISKMON_TEST_HOOK_KEY", "k")
    async with Receiver({"/hook": plain_ok}) as receiver:
        receiver.script("/hook", [status(400)])
        config = _config(tmp_path, receiver.url + "/hook")
        args = ["test-alert", "--sink", "hook", "--config", str(config)]
        assert await asyncio.to_thread(main, args) == 2
        assert "rejected" in capsys.readouterr().out
        args = ["test-alert", "--sink", "nope", "--config", str(config)]
        assert await asyncio.to_thread(main, args) == 2
        assert "no sink 'nope'" in capsys.readouterr().err
