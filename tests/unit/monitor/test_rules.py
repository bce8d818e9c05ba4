"""Rule state machine: for-durations, hysteresis, labels, per-portfolio instances."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.model import AlertState, Severity
from monitor.risk.snapshot import MarketRisk, RiskSnapshot
from monitor.rules import RuleEngine, RuleState

RULE = """
[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7
for = "5m"
resolve_threshold = 0.6
severity = "critical"
"""


def _snap(base: RiskSnapshot, ts: float, avg: float | None) -> RiskSnapshot:
    return dataclasses.replace(base, ts=ts, market=MarketRisk(avg_correlation=avg))


def _base(config: Config) -> RiskSnapshot:
    return Engine(config).snapshot(0.0)


def test_fires_only_after_holding_for_the_duration(make_config: Callable[..., Config]) -> None:
    """Pending at the first breach, firing once 5 minutes of event time have passed."""
    config = make_config(RULE)
    rules, base = RuleEngine(config.rules, ["main"]), _base(config)
    assert rules.evaluate(_snap(base, 0, 0.75)) == []
    assert rules.instances[0].state is RuleState.PENDING
    assert rules.evaluate(_snap(base, 240, 0.8)) == []
    (event,) = rules.evaluate(_snap(base, 300, 0.72))
    assert (event.state, event.ts, event.value, event.threshold) == (
        AlertState.FIRING,
        300,
        0.72,
        0.7,
    )
    assert event.severity is Severity.CRITICAL
    assert rules.evaluate(_snap(base, 360, 0.9)) == []  # no repeat while firing


def test_a_dip_before_the_duration_resets_pending(make_config: Callable[..., Config]) -> None:
    """The condition must hold without interruption."""
    config = make_config(RULE)
    rules, base = RuleEngine(config.rules, ["main"]), _base(config)
    rules.evaluate(_snap(base, 0, 0.75))
    rules.evaluate(_snap(base, 200, 0.69))
    assert rules.instances[0].state is RuleState.INACTIVE
    assert rules.evaluate(_snap(base, 300, 0.75)) == []
    assert rules.evaluate(_snap(base, 599, 0.75)) == []
    assert [e.state for e in rules.evaluate(_snap(base, 600, 0.75))] == [AlertState.FIRING]


def test_hysteresis_resolves_below_the_resolve_threshold(
    make_config: Callable[..., Config],
) -> None:
    """Firing survives values between 0.6 and 0.7 and resolves at or below 0.6."""
    config = make_config(RULE)
    rules, base = RuleEngine(config.rules, ["main"]), _base(config)
    rules.evaluate(_snap(base, 0, 0.8))
    rules.evaluate(_snap(base, 300, 0.8))
    assert rules.evaluate(_snap(base, 400, 0.65)) == []
    assert rules.evaluate(_snap(base, 450, None)) == []  # not ready: no change
    (event,) = rules.evaluate(_snap(base, 500, 0.6))
    assert (event.state, event.threshold, event.value) == (AlertState.RESOLVED, 0.6, 0.6)
    assert rules.instances[0].state is RuleState.INACTIVE


def test_zero_duration_fires_at_once_and_below_rules_work(
    make_config: Callable[..., Config],
) -> None:
    """A de-peg style rule: price < 0.99 with no duration fires at the first breach."""
    config = make_config(
        """
        [[rules]]
        name = "depeg"
        metric = "price"
        op = "<"
        threshold = 0.99
        resolve_threshold = 0.995
        labels = { symbol = "CCC" }
        """
    )
    engine = Engine(config)
    rules = RuleEngine(config.rules, ["main"])
    engine.on_tick(100.0, "CCC", 1.0)
    assert rules.evaluate(engine.snapshot(100.0)) == []
    engine.on_tick(160.0, "CCC", 0.98)
    (event,) = rules.evaluate(engine.snapshot(160.0))
    assert event.labels == (("symbol", "CCC"),)
    assert event.state is AlertState.FIRING
    engine.on_tick(200.0, "CCC", 0.993)
    assert rules.evaluate(engine.snapshot(200.0)) == []
    engine.on_tick(220.0, "CCC", 0.996)
    assert [e.state for e in rules.evaluate(engine.snapshot(220.0))] == [AlertState.RESOLVED]


def test_portfolio_rule_runs_per_portfolio(make_config: Callable[..., Config]) -> None:
    """A VaR rule without a portfolio label gets an instance per portfolio, labelled."""
    config = make_config(
        """
        [[portfolios]]
        name = "hedge"
        positions = [ { symbol = "CCC", quantity = 10.0 } ]

        [[rules]]
        name = "var-limit"
        metric = "var_99"
        op = ">"
        threshold = 1.0
        """
    )
    engine = Engine(config)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios])
    assert [i.portfolio for i in rules.instances] == ["main", "hedge"]
    rng = np.random.default_rng(0)
    for step in range(40):
        prices = 100 * np.exp(rng.normal(0, 0.01, 3))
        engine.ingest(np.full(3, 60.0 * step), ["AAA", "BBB", "CCC"], prices)
    events = rules.evaluate(engine.snapshot(2400.0))
    assert sorted(e.portfolio or "" for e in events) == ["hedge", "main"]
    assert all(("portfolio", e.portfolio) in e.labels for e in events)
