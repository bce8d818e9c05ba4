"""The durable outbox: storage of alerts, deliveries and groups; survival across reopen; the
outbox of earlier versions carried over."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from alerts.episodes import Episode, Knowledge, Told
from alerts.ledger import Ledger
from alerts.notification import Notification
from alerts.outbox import AlertRecord, DeliveryRow, Outbox
from alerts.wire import decode, encode
from monitor.model import AlertEvent, AlertState, Severity

KEY = "riskmon/spike/portfolio=main"


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


def _record(episode: Episode, note: Notification | None = None) -> AlertRecord:
    note = note or _note(ts=episode.started)
    return AlertRecord(
        KEY, "spike", (("portfolio", "main"),), Severity.CRITICAL, episode, note, None
    )


def test_encoding_round_trips_every_field() -> None:
    """What is stored is what comes back."""
    note = _note()
    assert decode(encode(note)) == note


def test_non_finite_figures_survive_storage() -> None:
    """A resolve on a NaN value (no longer computable) is stored and read back as NaN."""
    note = _note(state=AlertState.RESOLVED)
    event = note.event
    bad = Notification(
        AlertEvent(event.ts, event.rule, event.state, event.severity, event.labels,
                   math.nan, math.inf, event.portfolio),
        note.dedup_key, note.title, note.summary,
    )  # fmt: skip
    back = decode(encode(bad))
    assert math.isnan(back.event.value)
    assert math.isnan(back.event.threshold)


def test_rows_survive_closing_and_reopening(tmp_path: Path) -> None:
    """What the receivers were told and what is owed is there after a restart."""
    path = tmp_path / "state" / "o.sqlite"
    box = Outbox(path)
    with box.transaction():
        box.put_alert(_record(Episode(100.0, 160.0)), 1.0)
        told = Knowledge(Told.FIRING, 100.0)
        box.put_delivery(DeliveryRow("pager", KEY, "0|", told, 2.0, 5.0, 1, False, 3.0, 2, "x"))
        box.put_group("chat", "0|main", (("portfolio", "main"),), 30.0, 300.0)
        box.flushed("chat", "0|main", 4.0)
    box.close()
    reopened = Outbox(path)
    (record,) = reopened.alerts()
    assert record.episode == Episode(100.0, 160.0)
    assert record.firing == _note()
    assert reopened.delivery("pager", KEY) == DeliveryRow(
        "pager", KEY, "0|", Knowledge(Told.FIRING, 100.0), 2.0, 5.0, 1, False, 3.0, 2, "x"
    )
    assert reopened.queued("pager") == 1
    assert reopened.oldest("pager") == 3.0
    group = reopened.group("chat", "0|main")
    assert group is not None
    assert (group.labels, group.wait_s, group.interval_s, group.last_flush) == (
        (("portfolio", "main"),),
        30.0,
        300.0,
        4.0,
    )


def test_due_rows_come_in_rank_then_due_order(tmp_path: Path) -> None:
    """Lower rank first, then earlier due; rows not due yet wait."""
    box = Outbox(tmp_path / "o.sqlite")
    with box.transaction():
        for key, due, rank in (("a", 5.0, 3), ("b", 6.0, 0), ("c", 4.0, 3), ("d", 50.0, 0)):
            box.put_delivery(DeliveryRow("s", key, "g", due=due, rank=rank, since=1.0))
    assert [r.dedup_key for r in box.due("s", 10.0, 10)] == ["b", "c", "a"]
    assert [r.dedup_key for r in box.due("s", 10.0, 1)] == ["b"]
    assert box.next_due("s") == 4.0


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    """A batch is all or nothing."""
    box = Outbox(tmp_path / "o.sqlite")

    def failing_batch() -> None:
        with box.transaction():
            box.put_delivery(DeliveryRow("pager", KEY, "g", due=1.0, since=1.0))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert box.queued("pager") == 0


def _legacy_outbox(path: Path) -> None:
    """The tables an earlier riskmon wrote: one row per queued notification, active alerts."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT, dedup_key TEXT,"
        " state TEXT, payload BLOB, created REAL, next_attempt REAL, attempts INTEGER DEFAULT 0,"
        " last_error TEXT DEFAULT '');"
        "CREATE TABLE active (sink TEXT, dedup_key TEXT, payload BLOB, notified REAL,"
        " PRIMARY KEY (sink, dedup_key));"
    )
    delivered, waiting = _note("delivered"), _note("waiting")
    rows = [("pager", delivered), ("pager", waiting)]
    db.executemany("INSERT INTO active VALUES (?, ?, ?, 1.0)",
                   [(s, n.dedup_key, encode(n)) for s, n in rows])  # fmt: skip
    queued = [("pager", waiting), ("pager", _note("delivered", AlertState.RESOLVED, 150.0))]
    db.executemany(
        "INSERT INTO outbox (sink, dedup_key, state, payload, created, next_attempt)"
        " VALUES (?, ?, ?, ?, 1.0, 1.0)",
        [(s, n.dedup_key, n.event.state.value, encode(n)) for s, n in queued],
    )
    db.commit()
    db.close()


def test_an_earlier_outbox_is_carried_over(tmp_path: Path) -> None:
    """Active alerts whose firing was delivered are known as told; a firing still queued is
    owed; a queued resolve is owed to where its firing went. The old tables are gone."""
    path = tmp_path / "o.sqlite"
    _legacy_outbox(path)
    box = Outbox(path)
    ledger = Ledger(box, [], ("pager",), lambda _: False)
    assert ledger.carry_legacy(10.0) == 4
    delivered = box.delivery("pager", "riskmon/delivered/portfolio=main")
    waiting = box.delivery("pager", "riskmon/waiting/portfolio=main")
    assert delivered is not None
    assert waiting is not None
    assert delivered.told == Knowledge(Told.FIRING, 100.0)
    assert delivered.due == 10.0  # its resolve is owed
    assert waiting.told == Knowledge()
    assert waiting.due == 10.0  # its firing is owed
    assert ledger.carry_legacy(11.0) == 0  # once only
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert not names & {"outbox", "active"}
