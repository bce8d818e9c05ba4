"""Alert events paired into episodes, with the peaks the replay recorded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import msgspec

from service.report.episodes import AlertRecord, Peak, pair_episodes, read_peaks
from tests.unit.service.report.outputs import T0, alert

MINUTE = dt.timedelta(minutes=1)


def _records(*events: dict[str, object]) -> list[AlertRecord]:
    return [msgspec.convert(e, AlertRecord) for e in events]


def test_firing_and_resolved_pair_per_rule_instance() -> None:
    """Interleaved instances of one rule (two portfolios) pair by labels, not by order."""
    records = _records(
        alert(T0, "var", "firing", 10.0, portfolio="a"),
        alert(T0 + MINUTE, "var", "firing", 20.0, portfolio="b"),
        alert(T0 + 2 * MINUTE, "var", "resolved", 1.0, portfolio="a"),
        alert(T0 + 5 * MINUTE, "var", "resolved", 1.0, portfolio="b"),
    )
    episodes = pair_episodes(records, {})
    assert [(e.instance, e.fired, e.resolved) for e in episodes] == [
        ("var [portfolio=a]", T0, T0 + 2 * MINUTE),
        ("var [portfolio=b]", T0 + MINUTE, T0 + 5 * MINUTE),
    ]
    assert [e.fired_value for e in episodes] == [10.0, 20.0]
    assert all(e.peak is None for e in episodes)


def test_refiring_makes_a_second_episode_and_the_last_may_still_fire() -> None:
    records = _records(
        alert(T0, "spike", "firing", 0.9),
        alert(T0 + MINUTE, "spike", "resolved", 0.1),
        alert(T0 + 3 * MINUTE, "spike", "firing", 0.95),
    )
    episodes = pair_episodes(records, {})
    assert [(e.fired, e.resolved) for e in episodes] == [
        (T0, T0 + MINUTE),
        (T0 + 3 * MINUTE, None),
    ]


def test_a_resolve_without_firing_and_a_duplicate_firing_change_nothing() -> None:
    """An output cut by hand: an orphan resolve is ignored, a repeated firing is a duplicate."""
    records = _records(
        alert(T0, "spike", "resolved", 0.1),
        alert(T0 + MINUTE, "spike", "firing", 0.9),
        alert(T0 + 2 * MINUTE, "spike", "firing", 0.95),
        alert(T0 + 4 * MINUTE, "spike", "resolved", 0.1),
    )
    episodes = pair_episodes(records, {})
    assert [(e.fired, e.resolved, e.fired_value) for e in episodes] == [
        (T0 + MINUTE, T0 + 4 * MINUTE, 0.9)
    ]


def test_peaks_join_their_episode_by_rule_labels_and_firing_time(tmp_path: Path) -> None:
    first, second = alert(T0, "spike", "firing", 0.9), alert(T0, "var", "firing", 5.0, p="x")
    peaks_file = tmp_path / "alert_peaks.jsonl"
    peak_ts = "2025-02-03T00:03:00.000000Z"
    rows = [
        {"rule": "spike", "labels": {}, "fired": first["ts"], "peak": 0.97, "peak_ts": peak_ts},
        {"rule": "var", "labels": {"p": "y"}, "fired": first["ts"], "peak": 9, "peak_ts": peak_ts},
    ]
    peaks_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    peaks = read_peaks(peaks_file)
    episodes = {e.rule: e for e in pair_episodes(_records(first, second), peaks)}
    assert episodes["spike"].peak == Peak(0.97, T0 + 3 * MINUTE)
    assert episodes["var"].peak is None  # another instance's peak (labels p=y) is not taken
    assert read_peaks(tmp_path / "absent.jsonl") == {}
