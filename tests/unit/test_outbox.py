"""The durable outbox: queueing, dedup, retries, active alerts, survival across reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.notification import Notification
from alerts.outbox import Outbox, decode, encode
from monitor.model import AlertEvent, AlertState, Severity


def _note(
    rule: str = "spike", state: AlertState = AlertState.FIRING, ts: float = 100.0
) -> Notification:
    event = AlertEvent(
        ts, rule, state, Severity.CRITICAL, (("portfolio", "main"),), 0.9, 0.7, "main"
    )
    return Notification(
        event,
        f"riskmon/{rule}/portfolio=main",
        f"CRITICAL {rule}",
        "Average correlation is 0.9",
        (("pairs", "BTC/ETH 0.95"),),
        "http://dash",
        "riskmon",
    )


def test_encoding_round_trips_every_field() -> None:
    """What is stored is what comes back."""
    note = _note()
    assert decode(encode(note)) == note


def test_the_same_alert_and_state_is_not_queued_twice(tmp_path: Path) -> None:
    """A firing waiting for a sink coalesces with a second firing; its resolve queues."""
    box = Outbox(tmp_path / "o.sqlite")
    assert box.enqueue("pager", _note(), 1.0)
    assert not box.enqueue("pager", _note(ts=200.0), 2.0)
    assert box.enqueue("pager", _note(state=AlertState.RESOLVED), 3.0)
    assert box.enqueue("chat", _note(), 1.0)
    assert box.queued("pager") == 2
    assert [p.note.event.state for p in box.due("pager", 10.0)] == [
        AlertState.FIRING,
        AlertState.RESOLVED,
    ]


def test_retry_reschedules_and_delivered_removes(tmp_path: Path) -> None:
    """A retried row is not due before its time; delivered rows are gone."""
    box = Outbox(tmp_path / "o.sqlite")
    box.enqueue("pager", _note(), 1.0)
    (item,) = box.due("pager", 1.0)
    box.retry(item, 50.0, "HTTP 500")
    assert box.due("pager", 49.0) == []
    assert box.next_attempt("pager") == 50.0
    (again,) = box.due("pager", 50.0)
    assert again.attempts == 1
    box.delivered(again)
    assert box.queued("pager") == 0
    assert box.oldest("pager") is None


def test_rows_survive_closing_and_reopening(tmp_path: Path) -> None:
    """What was queued before a crash is there after a restart."""
    path = tmp_path / "state" / "o.sqlite"
    box = Outbox(path)
    box.enqueue("pager", _note(), 1.0)
    box.activate("pager", _note(), 1.0)
    box.close()
    reopened = Outbox(path)
    assert reopened.queued("pager") == 1
    assert reopened.oldest("pager") == 1.0
    assert [n.dedup_key for n, _ in reopened.active("pager")] == ["riskmon/spike/portfolio=main"]


def test_resolve_finds_where_the_firing_went(tmp_path: Path) -> None:
    """deactivate returns the sinks that got the firing and forgets the alert."""
    box = Outbox(tmp_path / "o.sqlite")
    box.activate("pager", _note(), 1.0)
    box.activate("chat", _note(), 1.0)
    assert sorted(box.deactivate("riskmon/spike/portfolio=main")) == ["chat", "pager"]
    assert box.active("pager") == []


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    """A batch is all or nothing."""
    box = Outbox(tmp_path / "o.sqlite")

    def failing_batch() -> None:
        with box.transaction():
            box.enqueue("pager", _note(), 1.0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert box.queued("pager") == 0
