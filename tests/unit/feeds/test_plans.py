"""Connection plans as the venues document them: URLs checked and normalised, streams split.

``riskmon check-config`` runs the same planning as the daemon, so a URL the venue cannot use
fails there (exit 2, the [[feeds]] entry named, what to write) instead of at 3 am.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from feeds.events import PriceKind
from feeds.plans import plan_feeds
from feeds.registry import VENUES
from feeds.venues.binance import BINANCE, BINANCE_USDM
from monitor.config.loading import load_config
from monitor.errors import ConfigError
from service.cli import main

SPOT_ROOT = "wss://stream.binance.com:9443"


@pytest.mark.parametrize(
    "url",
    [
        SPOT_ROOT,
        SPOT_ROOT + "/",
        SPOT_ROOT + "/stream",  # the form Binance's docs show
        SPOT_ROOT + "/stream/",
        SPOT_ROOT + "/ws",
    ],
)
def test_binance_spot_paths_are_not_doubled(url: str) -> None:
    """Every documented form connects to /stream?streams=..., never /stream/stream."""
    [plan] = BINANCE.plan(url, ["BTCUSDT"], PriceKind.TRADE)
    assert plan.url == SPOT_ROOT + "/stream?streams=btcusdt@trade"
    assert BINANCE.endpoint(url) == SPOT_ROOT


@pytest.mark.parametrize(
    "url",
    [
        "wss://fstream.binance.com",
        "wss://fstream.binance.com/stream",
        "wss://fstream.binance.com/ws",
        "wss://fstream.binance.com/market/stream",
        "wss://fstream.binance.com/public/ws/",
        "wss://fstream.binance.com/public",
    ],
)
def test_binance_usdm_routes_come_from_the_price_kind(url: str) -> None:
    """USD-M: the route is chosen by the kind, whatever route the URL carried."""
    [mark] = BINANCE_USDM.plan(url, ["BTCUSDT"], PriceKind.MARK)
    [mid] = BINANCE_USDM.plan(url, ["BTCUSDT"], PriceKind.MID)
    assert mark.url == "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s"
    assert mid.url == "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker"


def test_a_proxy_prefix_is_kept() -> None:
    """Only documented suffixes are stripped: a proxy path in front stays."""
    [plan] = BINANCE.plan("ws://10.0.0.1:8080/binance/stream", ["BTCUSDT"], PriceKind.TRADE)
    assert plan.url == "ws://10.0.0.1:8080/binance/stream?streams=btcusdt@trade"


@pytest.mark.parametrize(
    ("url", "write"),
    [
        (SPOT_ROOT + "/ws/btcusdt@trade", SPOT_ROOT),
        (SPOT_ROOT + "/stream?streams=btcusdt@trade", SPOT_ROOT),
        ("wss://fstream.binance.com/market/ws/btcusdt@aggTrade", "wss://fstream.binance.com"),
    ],
)
def test_binance_urls_that_name_streams_are_rejected_with_what_to_write(
    url: str, write: str
) -> None:
    """Streams come from the feed's symbols: a URL naming its own is refused, with the fix."""
    with pytest.raises(ConfigError, match=f'write url = "{write}"'):
        BINANCE_USDM.endpoint(url) if "fstream" in url else BINANCE.endpoint(url)


@pytest.mark.parametrize(
    "url", ["https://stream.binance.com", "http://x", "wss://", "ws:///path", "wss://h:99999"]
)
@pytest.mark.parametrize("venue", sorted(VENUES))
def test_every_venue_refuses_urls_that_are_not_websocket_urls(venue: str, url: str) -> None:
    """ws:// or wss:// with a host (and a valid port), for every venue."""
    with pytest.raises(ConfigError, match="url"):
        VENUES[venue].endpoint(url)


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_every_venue_splits_connections_at_its_documented_stream_limit(venue: str) -> None:
    """Twice the limit plus one instrument: three connections, none above the limit, every
    instrument exactly once, in order."""
    spec = VENUES[venue]
    kind = sorted(spec.kinds)[0]
    limit = spec.limits.streams_per_connection
    names = [f"S{i}-X" for i in range(2 * limit + 1)]
    plans = spec.plan(spec.endpoint(spec.default_url), names, kind)
    assert [len(p.instruments) for p in plans] == [limit, limit, 1]
    assert [n for p in plans for n in p.instruments] == names


def test_binance_usdm_carries_at_most_200_streams_per_connection() -> None:
    """250 USD-M streams (the issue's case) are two connections, 200 and 50."""
    names = [f"S{i}USDT" for i in range(250)]
    plans = BINANCE_USDM.plan(BINANCE_USDM.default_url, names, PriceKind.MARK)
    assert [len(p.url.split("?streams=")[1].split("/")) for p in plans] == [200, 50]


CONFIG = """
[universe]
symbols = ["BTCUSDT"]

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT"]
url = "URL"
"""


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "riskmon.toml"
    path.write_text(textwrap.dedent(CONFIG).replace("URL", url))
    return path


def test_check_config_notes_a_normalised_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented form passes, and check-config says which URL the daemon will use."""
    assert main(["check-config", str(_config(tmp_path, SPOT_ROOT + "/stream"))]) == 0
    out = capsys.readouterr().out
    assert "ok (" in out
    assert "1 feed connections" in out
    assert f'url "{SPOT_ROOT}/stream" is used as "{SPOT_ROOT}"' in out


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (SPOT_ROOT + "/ws/btcusdt@trade", f'write url = "{SPOT_ROOT}"'),
        ("wss://", "has no host"),
        ("wss://h/#x", "fragment"),
    ],
)
def test_check_config_rejects_unusable_urls_naming_the_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    """Exit 2; the message names the file, the [[feeds]] entry and what is wrong."""
    path = _config(tmp_path, url)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: [[feeds]][0] url:" in err
    assert message in err


def test_check_config_rejects_a_scheme_other_than_ws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """https:// fails at load already (the schema), with exit 2."""
    assert main(["check-config", str(_config(tmp_path, "https://stream.binance.com"))]) == 2
    assert "url" in capsys.readouterr().err


def test_the_daemon_plans_what_check_config_checked(tmp_path: Path) -> None:
    """plan_feeds is what both use: the documented URL gives one combined-stream connection."""
    config = load_config(_config(tmp_path, SPOT_ROOT + "/stream/"), environ={})
    [feed] = plan_feeds(config.feeds, VENUES, config.source)
    [plan] = feed.plans
    assert plan.url == SPOT_ROOT + "/stream?streams=btcusdt@trade"
    assert feed.note(config.feeds[0]) is not None
    assert json.dumps(plan.instruments) == '["BTCUSDT"]'
