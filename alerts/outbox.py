"""The durable outbox: every notification is in SQLite before anyone tries to send it.

A notification fired while a sink is down, or just before a crash, is still in the outbox after
a restart and is delivered then: delivery is at-least-once, and dedup keys (PagerDuty's
``dedup_key``, Alertmanager's label set) make receivers show one logical alert. A notification
already waiting for the same sink, alert and state is not queued twice.

The database runs in WAL mode with ``synchronous=NORMAL``: a committed row survives a crash of
the process (the case that matters here) at a fraction of a full fsync per alert. The tables:

- ``outbox``: one row per (sink, notification) waiting for delivery, with its next attempt.
- ``active``: firing alerts per sink, so resolves go where the firing went and Alertmanager
  re-sends survive a restart.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from alerts.notification import Notification
from monitor.model import AlertEvent, AlertState, Severity

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    state TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, next_attempt);
CREATE TABLE IF NOT EXISTS active (
    sink TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    payload BLOB NOT NULL,
    notified REAL NOT NULL,
    PRIMARY KEY (sink, dedup_key)
);
"""


class _Wire(msgspec.Struct):
    """Storage form of a notification."""

    ts: float
    rule: str
    state: str
    severity: str
    labels: list[tuple[str, str]]
    value: float
    threshold: float
    portfolio: str | None
    dedup_key: str
    title: str
    summary: str
    details: list[tuple[str, str]]
    dashboard_url: str | None
    source: str


def encode(note: Notification) -> bytes:
    """Serialise a notification."""
    e = note.event
    return msgspec.json.encode(
        _Wire(
            e.ts,
            e.rule,
            e.state.value,
            e.severity.value,
            list(e.labels),
            e.value,
            e.threshold,
            e.portfolio,
            note.dedup_key,
            note.title,
            note.summary,
            list(note.details),
            note.dashboard_url,
            note.source,
        )
    )


def decode(raw: bytes) -> Notification:
    """Rebuild a notification."""
    w = msgspec.json.decode(raw, type=_Wire)
    labels = tuple((k, v) for k, v in w.labels)
    event = AlertEvent(
        w.ts, w.rule, AlertState(w.state), Severity(w.severity), labels, w.value, w.threshold,
        w.portfolio,
    )  # fmt: skip
    details = tuple((k, v) for k, v in w.details)
    return Notification(event, w.dedup_key, w.title, w.summary, details, w.dashboard_url, w.source)


@dataclass(frozen=True, slots=True)
class Pending:
    """A queued notification for one sink."""

    id: int
    sink: str
    note: Notification
    created: float
    attempts: int


class Outbox:
    """SQLite-backed queue of notifications per sink.

    Args:
        path: database file (created with its directory), or ":memory:" for tests.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (a burst of alerts costs one transaction)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def enqueue(self, sink: str, note: Notification, now: float) -> bool:
        """Queue ``note`` for ``sink`` unless the same alert and state is already waiting."""
        state = note.event.state.value
        waiting = self._db.execute(
            "SELECT 1 FROM outbox WHERE sink=? AND dedup_key=? AND state=?",
            (sink, note.dedup_key, state),
        ).fetchone()
        if waiting:
            return False
        self._db.execute(
            "INSERT INTO outbox (sink, dedup_key, state, payload, created, next_attempt)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (sink, note.dedup_key, state, encode(note), now, now),
        )
        return True

    def due(self, sink: str, now: float, limit: int = 50) -> list[Pending]:
        """Notifications of ``sink`` whose next attempt has come, oldest first."""
        rows = self._db.execute(
            "SELECT id, payload, created, attempts FROM outbox WHERE sink=? AND next_attempt<=?"
            " ORDER BY id LIMIT ?",
            (sink, now, limit),
        ).fetchall()
        return [Pending(r[0], sink, decode(r[1]), r[2], r[3]) for r in rows]

    def next_attempt(self, sink: str) -> float | None:
        """When the earliest queued notification of ``sink`` is due."""
        row = self._db.execute(
            "SELECT MIN(next_attempt) FROM outbox WHERE sink=?", (sink,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def delivered(self, item: Pending) -> None:
        """Remove a delivered notification."""
        self._db.execute("DELETE FROM outbox WHERE id=?", (item.id,))

    def retry(self, item: Pending, at: float, error: str) -> None:
        """Schedule another attempt."""
        self._db.execute(
            "UPDATE outbox SET next_attempt=?, attempts=attempts+1, last_error=? WHERE id=?",
            (at, error, item.id),
        )

    def drop(self, item: Pending) -> None:
        """Give a notification up (refused by the receiver, or too old)."""
        self._db.execute("DELETE FROM outbox WHERE id=?", (item.id,))

    def queued(self, sink: str) -> int:
        """Notifications waiting for ``sink``."""
        row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sink=?", (sink,)).fetchone()
        return int(row[0])

    def oldest(self, sink: str) -> float | None:
        """Creation time of the oldest waiting notification of ``sink``."""
        row = self._db.execute("SELECT MIN(created) FROM outbox WHERE sink=?", (sink,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def activate(self, sink: str, note: Notification, now: float) -> None:
        """Remember a firing alert sent to ``sink``."""
        self._db.execute(
            "INSERT OR REPLACE INTO active (sink, dedup_key, payload, notified) VALUES (?,?,?,?)",
            (sink, note.dedup_key, encode(note), now),
        )

    def deactivate(self, dedup_key: str) -> list[str]:
        """Forget a resolved alert; returns the sinks its firing went to."""
        sinks = [
            r[0]
            for r in self._db.execute("SELECT sink FROM active WHERE dedup_key=?", (dedup_key,))
        ]
        self._db.execute("DELETE FROM active WHERE dedup_key=?", (dedup_key,))
        return sinks

    def active(self, sink: str) -> list[tuple[Notification, float]]:
        """Firing alerts of ``sink`` with when they were last notified."""
        return [
            (decode(r[0]), float(r[1]))
            for r in self._db.execute(
                "SELECT payload, notified FROM active WHERE sink=? ORDER BY dedup_key", (sink,)
            )
        ]

    def touch(self, sink: str, dedup_key: str, now: float) -> None:
        """Record a re-notification of an active alert."""
        self._db.execute(
            "UPDATE active SET notified=? WHERE sink=? AND dedup_key=?", (now, sink, dedup_key)
        )
