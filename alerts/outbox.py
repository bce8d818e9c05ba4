"""The durable outbox: what riskmon knows of every alert and what each sink has been told.

Everything the dispatcher decides is in SQLite before anyone tries to send it, and what a
receiver has been told is written in the same transaction as the rest of the delivery
bookkeeping, right after the receiver accepted it. After a crash (``kill -9`` included) or a
restart, delivery resumes from there: nothing queued is lost, and nothing a receiver already has
is sent again.

The database runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives a
crash of the process (the case that matters here) at a fraction of a full fsync per alert; an
operating-system crash may lose the last transactions. The tables:

- ``alerts``: per dedup key, the current episode (fire time, resolve time) with the firing and
  resolve notifications: the alert state of the rules as receivers should know it. At start it
  is laid over rule states restored from an older checkpoint.
- ``deliveries``: per (sink, dedup key), what the receiver has been told (nothing, firing of
  an episode, resolved of an episode), when, and when the next send is due (NULL: nothing to
  send), with its priority rank, attempts and the last error.
- ``groups``: per (sink, group), the group's labels, ``group_wait``, ``group_interval`` and
  the time of its last notification.

Every method takes the outbox's lock, so the engine may submit from a worker thread while the
delivery workers run on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.episodes import Episode, Knowledge, Told
from alerts.notification import SEVERITY_ORDER, Notification
from alerts.wire import decode, encode
from monitor.model import Severity

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    dedup_key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    severity INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    firing BLOB,
    resolved BLOB,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    sink TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    grp TEXT NOT NULL,
    told TEXT NOT NULL DEFAULT 'none',
    told_started REAL,
    told_ended REAL,
    notified REAL,
    due REAL,
    rank INTEGER NOT NULL DEFAULT 0,
    remind INTEGER NOT NULL DEFAULT 0,
    since REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    superseded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sink, dedup_key)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, due);
CREATE INDEX IF NOT EXISTS deliveries_group ON deliveries (sink, grp, due);
CREATE TABLE IF NOT EXISTS groups (
    sink TEXT NOT NULL,
    grp TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '[]',
    wait REAL NOT NULL DEFAULT 0,
    interval REAL NOT NULL DEFAULT 0,
    last_flush REAL,
    PRIMARY KEY (sink, grp)
);
"""
_LEGACY_TABLES = ("outbox", "active")
_DELIVERY_COLUMNS = (
    "sink, dedup_key, grp, told, told_started, told_ended, notified, due, rank, remind, since,"
    " attempts, last_error, superseded"
)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """What riskmon knows of one alert: its current episode and notifications.

    Attributes:
        dedup_key: the alert's identity.
        rule: rule name.
        labels: the rule instance's labels (with the rule name, its identity in the rules).
        severity: the alert's severity.
        episode: the current episode.
        firing: the episode's firing notification (None when the firing was never seen).
        resolved: the episode's resolve notification, once resolved.
    """

    dedup_key: str
    rule: str
    labels: tuple[tuple[str, str], ...]
    severity: Severity
    episode: Episode
    firing: Notification | None
    resolved: Notification | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """What one sink has been told of one alert, and what it is owed.

    Attributes:
        sink: the sink's name.
        dedup_key: the alert.
        group: the alert's group at that sink.
        told: what the receiver has been told.
        notified: wall time of the last message about the alert (reminders count from it).
        due: wall time of the next send; None when nothing is owed.
        rank: send order within the sink, lowest first.
        remind: whether what is owed is a reminder of a still-firing alert.
        since: wall time the undelivered change appeared (its age, for ``max_age``).
        attempts: failed attempts of the change owed.
        last_error: the last failure.
        superseded: episodes that came and went without the receiver hearing of them.
    """

    sink: str
    dedup_key: str
    group: str
    told: Knowledge = field(default_factory=Knowledge)
    notified: float | None = None
    due: float | None = None
    rank: int = 0
    remind: bool = False
    since: float | None = None
    attempts: int = 0
    last_error: str = ""
    superseded: int = 0


@dataclass(frozen=True, slots=True)
class GroupRow:
    """An alert group at one sink: labels, timers, last notification, next flush."""

    labels: tuple[tuple[str, str], ...]
    wait_s: float
    interval_s: float
    last_flush: float | None
    scheduled: float | None


class Outbox:
    """The SQLite tables of alerts, deliveries and groups.

    Args:
        path: database file (created with its directory), or ":memory:" for tests.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for everything inside (a burst of alerts costs one transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- alerts --------------------------------------------------------------------------------

    def alert(self, dedup_key: str) -> AlertRecord | None:
        """The alert of ``dedup_key``, if riskmon has seen it."""
        with self._lock:
            row = self._db.execute(
                "SELECT dedup_key, rule, labels, severity, started, ended, firing, resolved"
                " FROM alerts WHERE dedup_key=?",
                (dedup_key,),
            ).fetchone()
        return None if row is None else _alert(row)

    def alerts(self) -> list[AlertRecord]:
        """Every alert riskmon has seen."""
        with self._lock:
            rows = self._db.execute(
                "SELECT dedup_key, rule, labels, severity, started, ended, firing, resolved"
                " FROM alerts ORDER BY dedup_key"
            ).fetchall()
        return [_alert(row) for row in rows]

    def put_alert(self, record: AlertRecord, now: float) -> None:
        """Insert or replace the alert of ``record.dedup_key``."""
        firing = None if record.firing is None else encode(record.firing)
        resolved = None if record.resolved is None else encode(record.resolved)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO alerts (dedup_key, rule, labels, severity, started,"
                " ended, firing, resolved, updated) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    record.dedup_key,
                    record.rule,
                    json.dumps(record.labels),
                    SEVERITY_ORDER.index(record.severity),
                    record.episode.started,
                    record.episode.ended,
                    firing,
                    resolved,
                    now,
                ),
            )

    # --- deliveries ----------------------------------------------------------------------------

    def delivery(self, sink: str, dedup_key: str) -> DeliveryRow | None:
        """What ``sink`` has been told of ``dedup_key``, if it was ever routed there."""
        rows = self._deliveries("sink=? AND dedup_key=?", (sink, dedup_key))
        return rows[0] if rows else None

    def deliveries_of(self, dedup_key: str) -> list[DeliveryRow]:
        """Every sink's row of one alert."""
        return self._deliveries("dedup_key=? ORDER BY sink", (dedup_key,))

    def due(self, sink: str, now: float, limit: int, group: str | None = None) -> list[DeliveryRow]:
        """Rows of ``sink`` (of ``group``) due by ``now``, in send order."""
        where = "sink=? AND due IS NOT NULL AND due<=?"
        args: tuple[object, ...] = (sink, now)
        if group is not None:
            where, args = where + " AND grp=?", (*args, group)
        return self._deliveries(where + " ORDER BY rank, due, rowid LIMIT ?", (*args, limit))

    def expired(self, sink: str, before: float) -> list[DeliveryRow]:
        """Rows of ``sink`` owed a change that appeared before ``before``."""
        return self._deliveries("sink=? AND due IS NOT NULL AND since<?", (sink, before))

    def put_delivery(self, row: DeliveryRow) -> None:
        """Insert or replace one row."""
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO deliveries ({_DELIVERY_COLUMNS})"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.sink,
                    row.dedup_key,
                    row.group,
                    row.told.state.value,
                    row.told.started,
                    row.told.ended,
                    row.notified,
                    row.due,
                    row.rank,
                    int(row.remind),
                    row.since,
                    row.attempts,
                    row.last_error,
                    row.superseded,
                ),
            )

    def schedule_reminders(self, sink: str, now: float, notified_before: float) -> int:
        """Make reminders due for the still-firing alerts ``sink`` was last told of before
        ``notified_before``; returns how many."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE deliveries SET due=?, since=?, remind=1, attempts=0,"
                " rank=(SELECT severity FROM alerts a WHERE a.dedup_key=deliveries.dedup_key)"
                f" * {len(SEVERITY_ORDER)} + 2"
                " WHERE sink=? AND due IS NULL AND told='firing' AND notified<=?"
                " AND dedup_key IN (SELECT dedup_key FROM alerts WHERE ended IS NULL)",
                (now, now, sink, notified_before),
            )
        return cursor.rowcount

    def queued(self, sink: str) -> int:
        """Changes owed to ``sink``."""
        query = "SELECT COUNT(*) FROM deliveries WHERE sink=? AND due IS NOT NULL"
        return int(self._scalar(query, (sink,)) or 0)

    def queued_in(self, sink: str, group: str) -> int:
        """Changes owed to ``sink`` in one group."""
        query = "SELECT COUNT(*) FROM deliveries WHERE sink=? AND grp=? AND due IS NOT NULL"
        return int(self._scalar(query, (sink, group)) or 0)

    def oldest(self, sink: str) -> float | None:
        """Wall time the oldest change owed to ``sink`` appeared."""
        query = "SELECT MIN(since) FROM deliveries WHERE sink=? AND due IS NOT NULL"
        return self._scalar(query, (sink,))

    def next_due(self, sink: str) -> float | None:
        """When the next send to ``sink`` is due."""
        return self._scalar("SELECT MIN(due) FROM deliveries WHERE sink=?", (sink,))

    # --- groups --------------------------------------------------------------------------------

    def group(self, sink: str, group: str) -> GroupRow | None:
        """The group's settings, last notification and scheduled flush."""
        with self._lock:
            row = self._db.execute(
                "SELECT labels, wait, interval, last_flush FROM groups WHERE sink=? AND grp=?",
                (sink, group),
            ).fetchone()
            scheduled = self._scalar(
                "SELECT MIN(due) FROM deliveries WHERE sink=? AND grp=? AND remind=0",
                (sink, group),
            )
        if row is None:
            return None
        labels = tuple((k, v) for k, v in json.loads(row[0]))
        return GroupRow(labels, float(row[1]), float(row[2]), row[3], scheduled)

    def put_group(
        self, sink: str, group: str, labels: tuple[tuple[str, str], ...], wait_s: float,
        interval_s: float,
    ) -> None:  # fmt: skip
        """Create the group, or update its labels and timers (its last flush is kept)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO groups (sink, grp, labels, wait, interval) VALUES (?,?,?,?,?)"
                " ON CONFLICT (sink, grp) DO UPDATE SET labels=excluded.labels,"
                " wait=excluded.wait, interval=excluded.interval",
                (sink, group, json.dumps(labels), wait_s, interval_s),
            )

    def flushed(self, sink: str, group: str, now: float) -> None:
        """Record a notification of the group."""
        with self._lock:
            self._db.execute(
                "UPDATE groups SET last_flush=? WHERE sink=? AND grp=?", (now, sink, group)
            )

    # --- the outbox of earlier versions --------------------------------------------------------

    def legacy(self) -> tuple[list[tuple[str, Notification]], list[tuple[str, Notification]]]:
        """The queued and the active notifications of an outbox written by an earlier riskmon
        (one row per notification), each as (sink, notification); empty lists otherwise."""
        with self._lock:
            tables = {
                r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if not tables & set(_LEGACY_TABLES):
                return [], []
            queued = active = []
            if "outbox" in tables:
                rows = self._db.execute("SELECT sink, payload FROM outbox ORDER BY id")
                queued = [(r[0], decode(r[1])) for r in rows]
            if "active" in tables:
                rows = self._db.execute("SELECT sink, payload FROM active ORDER BY sink")
                active = [(r[0], decode(r[1])) for r in rows]
        return queued, active

    def drop_legacy(self) -> None:
        """Remove the tables of an earlier riskmon (after :meth:`legacy` was carried over)."""
        with self._lock:
            for table in _LEGACY_TABLES:
                self._db.execute(f"DROP TABLE IF EXISTS {table}")

    # --- helpers -------------------------------------------------------------------------------

    def _deliveries(self, where: str, args: tuple[object, ...]) -> list[DeliveryRow]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE {where}", args
            ).fetchall()
        return [_delivery(row) for row in rows]

    def _scalar(self, query: str, args: tuple[object, ...]) -> float | None:
        with self._lock:
            row = self._db.execute(query, args).fetchone()
        return None if row is None or row[0] is None else float(row[0])


def _alert(row: tuple[Any, ...]) -> AlertRecord:
    key, rule, labels, severity, started, ended, firing, resolved = row
    return AlertRecord(
        str(key),
        str(rule),
        tuple((str(k), str(v)) for k, v in json.loads(labels)),
        SEVERITY_ORDER[int(severity)],
        Episode(float(started), _float(ended)),
        None if firing is None else decode(bytes(firing)),
        None if resolved is None else decode(bytes(resolved)),
    )


def _delivery(row: tuple[Any, ...]) -> DeliveryRow:
    (sink, key, group, told, started, ended, notified, due, rank, remind, since, attempts,
     error, superseded) = row  # fmt: skip
    return DeliveryRow(
        str(sink),
        str(key),
        str(group),
        Knowledge(Told(told), _float(started), _float(ended)),
        _float(notified),
        _float(due),
        int(rank),
        bool(remind),
        _float(since),
        int(attempts),
        str(error),
        int(superseded),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
