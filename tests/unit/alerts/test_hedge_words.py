"""Notifications of hedged books say what to trade: "sell 12.8 ETHUSDT perp: VaR 99% ..."."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from alerts import notify
from alerts.hedge_words import delta_words, quantity_words, suggestion
from alerts.text import summary_lines
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.model import AlertEvent, AlertState, Severity
from monitor.risk.snapshot import DeltaHedge, HedgeLeg, HedgeRisk, HedgeTail, RiskSnapshot

HEDGE = HedgeRisk(
    legs=(HedgeLeg("ETHUSDT", held=0.0, quantity=-12.8, trade=-12.8),),
    tails=(
        HedgeTail(0.95, var=29_000.0, var_hedged=17_300.0),
        HedgeTail(0.99, var=41_000.0, var_hedged=24_500.0),
    ),
)

BASE = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

[[portfolios]]
name = "main"
positions = [{ symbol = "BTCUSDT", quantity = 1 }]
hedge_with = ["ETHUSDT"]

[[accounts]]
name = "perps"
collateral = [ { asset = "USDT", amount = 10000 } ]
hedge_with = ["BTCUSDT", "ETHUSDT"]

[[accounts.positions]]
instrument = "BTCUSDT"
kind = "linear"
underlying = "BTCUSDT"
contracts = 1
entry_price = 100000

[[rules]]
name = "var-limit"
metric = "var_99"
op = ">"
threshold = 30000
resolve_threshold = 25000

[[rules]]
name = "stale"
metric = "hedge_drift"
op = ">"
threshold = 0.5
resolve_threshold = 0.2
"""


def test_the_issue_example_reads_as_written() -> None:
    assert suggestion(HEDGE) == "sell 12.8 ETHUSDT perp: VaR 99% 41,000 -> 24,500"


def test_several_legs_buy_and_sell() -> None:
    hedge = dataclasses.replace(
        HEDGE,
        legs=(
            HedgeLeg("BTCUSDT", held=0.107, quantity=-0.908, trade=-1.015),
            HedgeLeg("ETHUSDT", held=3.0, quantity=5.5, trade=2.5),
            HedgeLeg("PEPEUSDT", held=0.0, quantity=-12_345_678.9, trade=-12_345_678.9),
        ),
    )
    assert suggestion(hedge) == (
        "sell 1.01 BTCUSDT perp, buy 2.5 ETHUSDT perp, sell 12,345,679 PEPEUSDT perp: "
        "VaR 99% 41,000 -> 24,500"
    )
    assert quantity_words(-0.000123456) == "0.000123"


def test_a_null_hedge_says_why() -> None:
    hedge = HedgeRisk(legs=(HedgeLeg("ETHUSDT", 0.0),), reason="ill-conditioned: index 45 > 30")
    assert suggestion(hedge) == "none: ill-conditioned: index 45 > 30"


def test_option_books_say_delta_var_and_the_vega_cost() -> None:
    delta = DeltaHedge("BTCUSD", 1.25, -1.25, vega=-1_234.0, vol_of_vol=1.0, iv_shock=0.0537,
                       vega_cost=3_456.0)  # fmt: skip
    hedge = dataclasses.replace(HEDGE, delta=(delta,))
    assert suggestion(hedge, linearised=True).endswith("delta VaR 99% 41,000 -> 24,500")
    assert delta_words(delta) == (
        "sell 1.25 BTCUSD perp; vega -1,234 per vol point, a 1-sigma vol-of-vol move "
        "(IV x1.054) costs 3,456"
    )


def _event(rule: str, portfolio: str | None, labels: dict[str, str]) -> AlertEvent:
    return AlertEvent(
        ts=1.7e9,
        rule=rule,
        state=AlertState.FIRING,
        severity=Severity.WARNING,
        labels=tuple(sorted(labels.items())),
        value=0.8,
        threshold=0.5,
        portfolio=portfolio,
    )


def _snap(config: Config) -> RiskSnapshot:
    snap = Engine(config).snapshot(1.7e9)
    portfolios = tuple(dataclasses.replace(p, hedge=HEDGE) for p in snap.portfolios)
    return dataclasses.replace(snap, portfolios=portfolios)


def test_portfolio_and_account_notifications_carry_the_suggestion(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(base=BASE)
    rules = {r.name: r for r in config.rules}
    snap = _snap(config)
    note = notify.build(_event("var-limit", "main", {"portfolio": "main"}), rules, snap)
    assert ("hedge (portfolio main)", "sell 12.8 ETHUSDT perp: VaR 99% 41,000 -> 24,500") in (
        note.details
    )
    assert "hedge (portfolio main): sell 12.8 ETHUSDT perp" in "\n".join(summary_lines(note))
    account = notify.build(_event("stale", None, {"account": "perps"}), rules, snap)
    assert account.summary.startswith("The hedge drift (account=perps) is 0.8")
    (line,) = [text for label, text in account.details if label == "hedge (account perps)"]
    assert line.startswith("none: missing data")  # the engine has no prices yet


def test_books_without_hedge_with_get_no_hedge_line(make_config: Callable[..., Config]) -> None:
    config = make_config()
    rules = {r.name: r for r in config.rules}
    snap = Engine(config).snapshot(0.0)
    note = notify.build(_event("x", "main", {"portfolio": "main"}), rules, snap)
    assert not [label for label, _ in note.details if label.startswith("hedge")]
