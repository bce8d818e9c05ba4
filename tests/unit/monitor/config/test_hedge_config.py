"""``hedge_with`` on portfolios and accounts, and rules on ``hedge_drift``: errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.errors import ConfigError
from tests.conftest import REPO

BASE = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]

[[portfolios]]
name = "main"
positions = [{ symbol = "SOLUSDT", quantity = 100 }]
hedge_with = HEDGE

[[portfolios]]
name = "alts"
positions = [{ symbol = "XRPUSDT", quantity = 1000 }]
"""

ACCOUNT = """
[[accounts]]
name = "perps"
collateral = [ { asset = "USDT", amount = 10000 } ]
hedge_with = HEDGE

[[accounts.positions]]
instrument = "SOLUSDT"
kind = "linear"
underlying = "SOLUSDT"
contracts = 10
entry_price = 150
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "riskmon.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'riskmon.toml'}: ")
    return message.split(": ", 1)[1]


def test_hedge_with_loads_and_defaults_to_none(tmp_path: Path) -> None:
    config = load(tmp_path, BASE.replace("HEDGE", '["BTCUSDT", "ETHUSDT"]'))
    assert config.portfolios[0].hedge_with == ("BTCUSDT", "ETHUSDT")
    assert config.portfolios[1].hedge_with is None


@pytest.mark.parametrize(
    ("hedge", "expected"),
    [
        ("[]", "[[portfolios]][0] hedge_with: expected an array of length >= 1, got []"),
        ('"BTCUSDT"', '[[portfolios]][0] hedge_with: expected an array, got "BTCUSDT"'),
        (
            '["BTCUSDT", "DOGEUSDT"]',
            '[[portfolios]][0] hedge_with[1]: "DOGEUSDT" is not priced by this config; expected '
            "a symbol of [universe] or of a position: BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT",
        ),
        (
            '["ETHUSDT", "ETHUSDT"]',
            '[[portfolios]][0] hedge_with[1]: "ETHUSDT" appears twice; expected each symbol once',
        ),
        ('["btc"]', "[[portfolios]][0] hedge_with[0]: expected a string matching"),
    ],
)
def test_bad_portfolio_hedge_with(tmp_path: Path, hedge: str, expected: str) -> None:
    assert error(tmp_path, BASE.replace("HEDGE", hedge)).startswith(expected)


@pytest.mark.parametrize(
    ("hedge", "expected"),
    [
        ("[]", "[[accounts]][0] hedge_with: expected an array of length >= 1, got []"),
        ('["ADAUSDT"]', '[[accounts]][0] hedge_with[0]: "ADAUSDT" is not priced by this config'),
        ('["SOLUSDT", "SOLUSDT"]', '[[accounts]][0] hedge_with[1]: "SOLUSDT" appears twice'),
    ],
)
def test_bad_account_hedge_with(tmp_path: Path, hedge: str, expected: str) -> None:
    text = BASE.replace("HEDGE", '["BTCUSDT"]') + ACCOUNT.replace("HEDGE", hedge)
    assert error(tmp_path, text).startswith(expected)


def test_a_symbol_priced_only_by_another_book_may_hedge(tmp_path: Path) -> None:
    """XRP is in no universe, but the other portfolio holds it: the engine prices it."""
    config = load(tmp_path, BASE.replace("HEDGE", '["XRPUSDT"]'))
    assert config.portfolios[0].hedge_with == ("XRPUSDT",)


def rule(labels: str = "") -> str:
    return f"""
[[rules]]
name = "stale-hedge"
metric = "hedge_drift"
op = ">"
threshold = 0.25
resolve_threshold = 0.1
{labels}
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            'labels = { portfolio = "alts" }',
            '[[rules]][0] labels.portfolio: portfolio "alts" has no hedge_with; expected one of: '
            "portfolio main, account perps",
        ),
        (
            'labels = { portfolio = "nope" }',
            '[[rules]][0] labels.portfolio: unknown portfolio "nope"',
        ),
        ('labels = { account = "nope" }', '[[rules]][0] labels.account: unknown account "nope"'),
        (
            'labels = { portfolio = "main", account = "perps" }',
            "[[rules]][0] labels.account: expected one of portfolio or account, not both",
        ),
        ('labels = { symbol = "BTCUSDT" }', "[[rules]][0] labels.symbol: unknown label for"),
    ],
)
def test_bad_hedge_drift_rules(tmp_path: Path, labels: str, expected: str) -> None:
    text = BASE.replace("HEDGE", '["BTCUSDT"]') + ACCOUNT.replace("HEDGE", '["BTCUSDT"]')
    assert error(tmp_path, text + rule(labels)).startswith(expected)


def test_a_hedge_drift_rule_needs_a_hedged_book(tmp_path: Path) -> None:
    text = BASE.replace("hedge_with = HEDGE\n", "") + rule()
    assert error(tmp_path, text) == (
        '[[rules]][0] metric: "hedge_drift" needs hedge_with on a [[portfolios]] or '
        "[[accounts]] entry"
    )


@pytest.mark.parametrize(
    "labels", ["", 'labels = { portfolio = "main" }', 'labels = { account = "perps" }']
)
def test_hedge_drift_rules_load(tmp_path: Path, labels: str) -> None:
    text = BASE.replace("HEDGE", '["BTCUSDT"]') + ACCOUNT.replace("HEDGE", '["BTCUSDT"]')
    (loaded,) = load(tmp_path, text + rule(labels)).rules
    assert loaded.metric == "hedge_drift"


def test_the_shipped_configs_hedge_and_the_commented_rule_loads(tmp_path: Path) -> None:
    """config/riskmon.toml hedges "main" with ETH; its commented hedge_drift rule is valid."""
    shipped = REPO / "config" / "riskmon.toml"
    assert load_config(shipped, environ={}).portfolios[0].hedge_with == ("ETHUSDT",)
    replay = load_config(REPO / "config" / "example-replay.toml", environ={})
    assert replay.portfolios[0].hedge_with == ("BTCUSDT", "ETHUSDT")
    lines = shipped.read_text().splitlines()
    start = lines.index("# [[rules]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    config = load(tmp_path, shipped.read_text() + "\n" + "\n".join(block) + "\n")
    (stale,) = [r for r in config.rules if r.metric == "hedge_drift"]
    assert stale.labels.get("portfolio") == "main"
