"""``riskmon check-config`` refuses a listener other hosts can reach without auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main


def test_check_config_exits_2_on_an_exposed_listener(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exposure is a user error (exit 2) naming the key; with auth the same file passes."""
    path = tmp_path / "riskmon.toml"
    path.write_text('[universe]\nsymbols = ["BTCUSDT"]\n[server]\nlisten = "0.0.0.0:9464"\n')
    assert main(["check-config", str(path)]) == 2
    assert "[server] listen" in capsys.readouterr().err
    path.write_text(path.read_text() + 'auth = "bearer"\ntoken_env = "RISKMON_TOKEN"\n')
    assert main(["check-config", str(path)]) == 0
