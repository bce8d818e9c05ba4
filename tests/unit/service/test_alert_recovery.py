"""After a restart: rule states follow what receivers were told; orphaned alerts resolve."""

from __future__ import annotations

import math

from alerts import notify
from alerts.episodes import Episode
from alerts.notification import Notification
from alerts.outbox import AlertRecord
from monitor.config.schema import Labels, RuleConfig
from monitor.model import AlertEvent, AlertState, Severity
from monitor.rules import RuleEngine, RuleState
from service.alert_recovery import align_rules, orphans

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _rules() -> RuleEngine:
    specs = [
        RuleConfig(
            name=f"{s.lower()}-high",
            metric="price",
            op=">",
            threshold=100.0,
            resolve_threshold=90.0,
            labels=Labels((("symbol", s),)),
        )
        for s in SYMBOLS
    ]
    return RuleEngine(specs, [])


def _record(symbol: str, episode: Episode, rule: str | None = None) -> AlertRecord:
    name = rule or f"{symbol.lower()}-high"
    labels = (("symbol", symbol),)
    event = AlertEvent(
        episode.started, name, AlertState.FIRING, Severity.WARNING, labels, 120.0, 100.0
    )
    note = notify.build(event, {}, None)
    return AlertRecord(note.dedup_key, name, labels, Severity.WARNING, episode, note, None)


def test_rules_take_the_outboxs_state_where_they_disagree() -> None:
    """Firing in the outbox but not in the checkpoint: firing since its fire time. Resolved
    in the outbox but firing in the checkpoint: inactive. Agreeing instances are untouched."""
    rules = _rules()
    btc, eth, sol = rules.instances
    eth.state, eth.fired_at, eth.since = RuleState.FIRING, 50.0, 50.0
    sol.state, sol.since = RuleState.PENDING, 70.0
    records = [
        _record("BTCUSDT", Episode(100.0)),
        _record("ETHUSDT", Episode(50.0, 80.0)),
        _record("SOLUSDT", Episode(10.0, 20.0)),
    ]
    changed = align_rules(rules, records)
    assert sorted(changed) == [("btcusdt-high", (("symbol", "BTCUSDT"),)),
                               ("ethusdt-high", (("symbol", "ETHUSDT"),))]  # fmt: skip
    assert (btc.state, btc.since, btc.fired_at) == (RuleState.FIRING, 100.0, 100.0)
    assert (eth.state, eth.since, eth.fired_at) == (RuleState.INACTIVE, None, None)
    assert (sol.state, sol.since) == (RuleState.PENDING, 70.0)
    assert btc.step(200.0, 95.0) is None  # still above the resolve threshold: no new firing
    resolved = btc.step(201.0, 80.0)
    assert resolved is not None
    assert resolved.state is AlertState.RESOLVED


def test_firing_alerts_without_a_rule_instance_are_orphans() -> None:
    rules = _rules()
    gone = _record("DOGEUSDT", Episode(10.0), rule="doge-high")
    over = _record("DOGEUSDT", Episode(10.0, 20.0), rule="doge-high")
    kept = _record("BTCUSDT", Episode(10.0))
    assert orphans(rules, [gone, over, kept]) == [gone]


def test_an_orphan_resolves_in_words_with_its_firing_figures() -> None:
    firing = _record("DOGEUSDT", Episode(1_740_830_405.0), rule="doge-high").firing
    assert isinstance(firing, Notification)
    resolved = notify.retirement(firing, 1_740_830_500.0)
    assert resolved.event.state is AlertState.RESOLVED
    assert resolved.event.ts == 1_740_830_500.0
    assert resolved.dedup_key == firing.dedup_key
    assert resolved.title == "WARNING doge-high resolved"
    assert "no longer evaluated" in resolved.summary
    assert "2025-03-01 12:00:05 UTC" in resolved.summary


def test_summaries_write_figures_as_people_read_them() -> None:
    event = AlertEvent(0.0, "btc", AlertState.FIRING, Severity.WARNING, (("symbol", "BTCUSDT"),),
                       94997.1, 1.0)  # fmt: skip
    assert "is 94,997, above the limit 1." in notify.build(event, {}, None).summary
    nan = AlertEvent(0.0, "btc", AlertState.RESOLVED, Severity.WARNING, (), math.nan, 0.5)
    assert "back at nan (resolve threshold 0.5)" in notify.build(nan, {}, None).summary
