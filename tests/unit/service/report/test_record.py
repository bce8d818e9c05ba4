"""What the replay records for its report: peaks, component VaR, correlation extremes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.risk.snapshot import MarketRisk, PortfolioRisk, RiskSnapshot, TailRisk
from monitor.rules import RuleEngine
from service.report.record import ComponentTable, CorrelationExtremes, PeakTracker

RULES = """
[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7
for = "1m"
resolve_threshold = 0.5

[[rules]]
name = "flat"
metric = "effective_bets"
op = "<"
threshold = 1.5
resolve_threshold = 2.0
"""


def _snap(base: RiskSnapshot, ts: float, avg: float | None, bets: float | None) -> RiskSnapshot:
    return dataclasses.replace(
        base, ts=ts, market=MarketRisk(avg_correlation=avg, effective_bets=bets)
    )


def test_the_peak_is_the_extreme_in_the_rules_direction_while_firing(
    make_config: Callable[..., Config],
) -> None:
    """A > rule's peak is its highest value, a < rule's its lowest; a value that is not ready
    changes nothing, and values before firing and after resolving do not count."""
    config = make_config(RULES)
    rules = RuleEngine(config.rules, ["main"])
    tracker = PeakTracker(rules, {r.name: r.op for r in config.rules})
    base = Engine(config).snapshot(0.0)
    path = [
        (0, 0.99, 3.0),  # pending only: above the threshold before firing does not count
        (60, 0.75, 1.4),  # spike fires (held 1 min); flat fires (for 0)
        (120, 0.95, 1.2),
        (180, None, None),  # not ready
        (240, 0.8, 0.9),
        (300, 0.4, 2.5),  # both resolve
        (360, 0.99, 3.0),  # spike pending again: no new episode yet
    ]
    for ts, avg, bets in path:
        snap = _snap(base, ts, avg, bets)
        tracker.add(ts, rules.evaluate(snap))
    rows = {row["rule"]: row for row in tracker.rows()}
    assert rows["spike"]["peak"] == 0.95
    assert rows["spike"]["fired"] == "1970-01-01T00:01:00.000000Z"
    assert rows["spike"]["peak_ts"] == "1970-01-01T00:02:00.000000Z"
    assert rows["flat"]["peak"] == 0.9
    assert rows["flat"]["peak_ts"] == "1970-01-01T00:04:00.000000Z"
    assert len(tracker.rows()) == 2


def test_an_episode_still_firing_at_the_end_is_reported(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(RULES)
    rules = RuleEngine(config.rules, ["main"])
    tracker = PeakTracker(rules, {r.name: r.op for r in config.rules})
    base = Engine(config).snapshot(0.0)
    for ts, avg in ((0, 0.8), (60, 0.9), (120, 0.85)):
        tracker.add(ts, rules.evaluate(_snap(base, ts, avg, 3.0)))
    (row,) = tracker.rows()  # pending at 0, firing at 60 with 0.9, never resolved
    assert (row["rule"], row["peak"]) == ("spike", 0.9)
    assert row["fired"] == row["peak_ts"] == "1970-01-01T00:01:00.000000Z"


def test_components_are_stored_per_portfolio_symbol_and_confidence(
    make_config: Callable[..., Config],
) -> None:
    """Long format: one row per symbol and snapshot; NaN and not-ready tails are null."""
    config = make_config()
    base = Engine(config).snapshot(0.0)
    table = ComponentTable([0.95, 0.99])
    ready = PortfolioRisk(
        "main",
        ("AAA", "BBB"),
        tails=(TailRisk(0.95, component_var=(1.0, 2.0)), TailRisk(0.99, component_var=(3.0, 4.0))),
    )
    table.add(dataclasses.replace(base, ts=60.0, portfolios=(ready,)))
    warming = PortfolioRisk("main", ("AAA", "BBB"), tails=(TailRisk(0.95), TailRisk(0.99)))
    table.add(dataclasses.replace(base, ts=120.0, portfolios=(warming,)))
    frame = table.to_frame()
    assert frame.columns == ["ts", "portfolio", "symbol", "component_var_95", "component_var_99"]
    assert frame["symbol"].to_list() == ["AAA", "BBB", "AAA", "BBB"]
    assert frame["component_var_95"].to_list() == [1.0, 2.0, None, None]
    assert frame["component_var_99"].to_list() == [3.0, 4.0, None, None]
    assert [t.timestamp() for t in frame["ts"].to_list()] == [60.0, 60.0, 120.0, 120.0]


def test_no_portfolio_writes_an_empty_table_with_the_columns() -> None:
    frame = ComponentTable([0.99]).to_frame()
    assert frame.is_empty()
    assert frame.columns == ["ts", "portfolio", "symbol", "component_var_99"]


def test_the_extremes_keep_the_universe_matrix_at_the_lowest_and_highest_average(
    make_config: Callable[..., Config],
) -> None:
    """Not-ready snapshots are skipped, ties keep the earlier one, and a position symbol
    outside the universe is not part of the matrix."""
    config = make_config(
        """
        [[portfolios]]
        name = "other"
        positions = [ { symbol = "DDD", quantity = 1.0 } ]
        """
    )
    base = Engine(config).snapshot(0.0)
    assert base.symbols == ("AAA", "BBB", "CCC", "DDD")
    extremes = CorrelationExtremes()
    for ts, avg in ((0, None), (60, 0.5), (120, 0.2), (180, 0.9), (240, 0.2), (300, 0.9)):
        rho = 0.0 if avg is None else avg
        matrix = np.full((4, 4), rho) + (1 - rho) * np.eye(4)
        matrix[3, :3] = matrix[:3, 3] = -0.5  # DDD: not in the universe
        snap = dataclasses.replace(
            base, ts=float(ts), correlation=matrix, market=MarketRisk(avg_correlation=avg)
        )
        extremes.add(snap)
    frame = extremes.to_frame()
    calm = frame.filter(frame["snapshot"] == "calmest")
    hot = frame.filter(frame["snapshot"] == "most_correlated")
    assert {t.timestamp() for t in calm["ts"]} == {120.0}
    assert {t.timestamp() for t in hot["ts"]} == {180.0}
    assert set(calm["a"]) == {"AAA", "BBB", "CCC"}
    assert calm.height == hot.height == 9
    off = calm.filter(calm["a"] != calm["b"])["correlation"].to_list()
    assert off == pytest.approx([0.2] * 6)
