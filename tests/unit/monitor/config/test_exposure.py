"""Safe exposure: a listener other hosts can reach needs auth, or an explicit, dangerous opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.checks import is_loopback
from monitor.config.loading import load_config
from monitor.errors import ConfigError

UNIVERSE = '[universe]\nsymbols = ["BTCUSDT"]\n'


def _write(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "riskmon.toml"
    path.write_text(UNIVERSE + "[server]\n" + server)
    return path


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:9464", "127.0.0.2:9464", "localhost:9464", "LOCALHOST:0", "127.0.0.1:0"],
)
def test_loopback_without_auth_loads(tmp_path: Path, listen: str) -> None:
    """Loopback listeners need no auth: only this machine can connect."""
    config = load_config(_write(tmp_path, f'listen = "{listen}"\n'), environ={})
    assert config.server.auth == "none"
    assert not config.server.allow_unauthenticated


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:9464", ":9464", "10.1.2.3:9464", "riskmon.internal:9464", "::9464"]
)
def test_a_reachable_listener_without_auth_is_a_config_error(tmp_path: Path, listen: str) -> None:
    """The wildcard, a routable address or a name (never resolved here) without auth is refused,
    naming the key and the three ways out."""
    path = _write(tmp_path, f'listen = "{listen}"\nauth = "none"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    if listen == "::9464":  # the schema refuses it before the check: no IPv6 literal
        assert "[server] listen" in message
        return
    assert message.startswith(f"{path}: [server] listen: ")
    assert f'"{listen}" is reachable from other hosts' in message
    assert 'auth = "bearer"' in message
    assert "allow_unauthenticated = true" in message


def test_an_override_that_exposes_the_listener_names_the_variable(tmp_path: Path) -> None:
    """RISKMON_SERVER__LISTEN=0.0.0.0:... (how the split roles set their port) is checked too."""
    path = _write(tmp_path, 'listen = "127.0.0.1:9464"\n')
    with pytest.raises(ConfigError, match=r"\(from RISKMON_SERVER__LISTEN\)"):
        load_config(path, environ={"RISKMON_SERVER__LISTEN": "0.0.0.0:9464"})


@pytest.mark.parametrize(
    "server",
    [
        'listen = "0.0.0.0:9464"\nauth = "bearer"\ntoken_file = "/run/secrets/riskmon_token"\n',
        'listen = "0.0.0.0:9464"\nauth = "basic"\nbasic_user = "prom"\ntoken_env = "TOKEN"\n',
        'listen = "0.0.0.0:9464"\nallow_unauthenticated = true\n',
    ],
)
def test_auth_or_the_explicit_opt_in_allows_a_reachable_listener(
    tmp_path: Path, server: str
) -> None:
    """Bearer or basic auth, or ``allow_unauthenticated = true``, make the same listener valid."""
    config = load_config(_write(tmp_path, server), environ={})
    assert config.server.host == "0.0.0.0"


def test_the_opt_in_is_a_boolean(tmp_path: Path) -> None:
    """A string such as "yes" is not a way to opt in."""
    path = _write(tmp_path, 'listen = "0.0.0.0:9464"\nallow_unauthenticated = "yes"\n')
    with pytest.raises(ConfigError, match="allow_unauthenticated: expected a boolean"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("", False),
        ("192.168.1.10", False),
        ("::", False),
        ("localhost.example.com", False),
        ("my-host", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
