"""Delivery bookkeeping on the outbox: rule transitions in, work per sink out, outcomes back.

:meth:`Ledger.record` turns transitions into episodes (:mod:`alerts.episodes`) and schedules,
for every sink the alert is routed to, the change that sink is owed. :meth:`Ledger.pick` hands a
sink its most urgent work: one alert (pager, Alertmanager, webhook, file sinks), or up to a
digest's worth of one group (chat sinks). :meth:`Ledger.delivered`, :meth:`Ledger.failed` and
:meth:`Ledger.give_up` write the outcome in one transaction each, right after the receiver
answered: what the receiver now has is durable before anything else happens.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from alerts import routing
from alerts.episodes import (
    Episode,
    Knowledge,
    Suppressed,
    Told,
    change_for,
    flush_at,
    missed,
    next_episode,
    rank,
)
from alerts.notification import Change, DigestEntry, Notification
from alerts.outbox import AlertRecord, DeliveryRow, GroupRow, Outbox
from monitor.model import AlertState, Severity


@dataclass(frozen=True, slots=True)
class Item:
    """One alert's change owed to one sink."""

    row: DeliveryRow
    record: AlertRecord
    change: Change

    @property
    def dedup_key(self) -> str:
        """The alert."""
        return self.row.dedup_key

    @property
    def rule(self) -> str:
        """The alert's rule, for logs."""
        return self.record.rule

    def entry(self) -> DigestEntry:
        """The item as a digest entry."""
        episode, record = self.record.episode, self.record
        ended = self.change in (Change.RESOLVED, Change.FIRED_AND_RESOLVED)
        note = record.resolved if ended and record.resolved is not None else record.firing
        assert note is not None  # an alert has a firing or a resolve
        fired_at = episode.started if record.firing is not None else None
        resolved_at = episode.ended if ended else None
        return DigestEntry(self.change, note, fired_at, resolved_at, self.row.superseded)


@dataclass(frozen=True, slots=True)
class Work:
    """What a sink sends next: one alert, or up to a digest of one group."""

    sink: str
    items: tuple[Item, ...]
    group: GroupRow | None = None
    more: int = 0


@dataclass(slots=True)
class Recorded:
    """What :meth:`Ledger.record` did: the sinks now owed something, and what it ignored."""

    woken: set[str] = field(default_factory=set)
    suppressed: Counter[str] = field(default_factory=Counter)


class Ledger:
    """The outbox's bookkeeping for a set of sinks and routes.

    Args:
        outbox: the durable tables.
        routes: configured routes, in order.
        sinks: names of the configured sinks (rows of other sinks are left alone).
        grouped: whether a sink takes digests (its changes wait for their group's flush).
        immediate: every change is due at once, whatever ``group_wait`` (replays).
        critical_wait_s: the longest a critical firing waits for its group.
    """

    def __init__(
        self,
        outbox: Outbox,
        routes: Sequence[routing.Route],
        sinks: Collection[str],
        grouped: Callable[[str], bool],
        immediate: bool = False,
        critical_wait_s: float = 5.0,
    ) -> None:
        self.outbox, self.routes, self.sinks = outbox, routes, sinks
        self._grouped, self._immediate = grouped, immediate
        self._critical_wait_s = critical_wait_s

    def record(self, notes: Iterable[Notification], now: float) -> Recorded:
        """Apply rule transitions in one transaction; schedule what each sink is owed."""
        result = Recorded()
        with self.outbox.transaction():
            for note in notes:
                suppressed = self._record(note, now, result.woken)
                if suppressed is not None:
                    result.suppressed[suppressed.value] += 1
        return result

    def _record(self, note: Notification, now: float, woken: set[str]) -> Suppressed | None:
        key, event = note.dedup_key, note.event
        current = self.outbox.alert(key)
        episode = next_episode(current.episode if current else None, event.state, event.ts)
        if isinstance(episode, Suppressed):
            return episode
        firing = event.state is AlertState.FIRING
        record = AlertRecord(
            key, event.rule, event.labels, event.severity, episode,
            note if firing else (current.firing if current else None),
            None if firing else note,
        )  # fmt: skip
        self.outbox.put_alert(record, now)
        previous = current.episode if current is not None and firing else None
        rows = {row.sink: row for row in self.outbox.deliveries_of(key)}
        for target in routing.targets(self.routes, note) if firing or not rows else ():
            if target.sink in self.sinks:
                self._join(target, rows)
        for row in rows.values():
            if row.sink in self.sinks:
                superseded = row.superseded + int(missed(row.told, previous))
                self._schedule(dataclasses.replace(row, superseded=superseded), record, now)
                woken.add(row.sink)
        return None

    def route_active(self, now: float) -> set[str]:
        """Owe every alert still firing to the sinks the routes send it to and that have
        never heard of it (routes or sinks changed by a reload); returns those sinks.

        A sink that already has a row keeps it: what it was told decides what it is owed.
        """
        woken: set[str] = set()
        with self.outbox.transaction():
            for record in self.outbox.alerts():
                if not record.episode.firing or record.firing is None:
                    continue
                rows = {row.sink: row for row in self.outbox.deliveries_of(record.dedup_key)}
                for target in routing.targets(self.routes, record.firing):
                    if target.sink in self.sinks and target.sink not in rows:
                        self._join(target, rows)
                        self._schedule(rows[target.sink], record, now)
                        woken.add(target.sink)
        return woken

    def _join(self, target: routing.Target, rows: dict[str, DeliveryRow]) -> None:
        row = rows.get(target.sink) or DeliveryRow(target.sink, "", target.group)
        rows[target.sink] = dataclasses.replace(row, group=target.group)
        if self._grouped(target.sink):
            self.outbox.put_group(
                target.sink, target.group, target.group_labels, target.wait_s, target.interval_s
            )

    def _schedule(self, row: DeliveryRow, record: AlertRecord, now: float) -> None:
        """Store ``row`` owing what ``record``'s episode needs (or nothing)."""
        row = dataclasses.replace(row, dedup_key=record.dedup_key)
        change = change_for(row.told, record.episode)
        if change is None:
            self.outbox.put_delivery(dataclasses.replace(row, due=None, since=None, remind=False))
            return
        due = self._due_at(row, record.severity, change, now)
        if row.attempts and row.due is not None:
            due = max(due, row.due)  # a failing receiver keeps its backoff
        pending = row.due is not None and row.since is not None
        self.outbox.put_delivery(
            dataclasses.replace(
                row,
                due=due,
                rank=rank(record.severity, change),
                remind=False,
                since=row.since if pending else now,
                attempts=row.attempts if pending else 0,
            )
        )

    def _due_at(self, row: DeliveryRow, severity: Severity, change: Change, now: float) -> float:
        if self._immediate or not self._grouped(row.sink):
            return now
        group = self.outbox.group(row.sink, row.group)
        if group is None:
            return now
        urgent = change is Change.FIRED and severity is Severity.CRITICAL
        return flush_at(
            now,
            wait_s=group.wait_s,
            interval_s=group.interval_s,
            last_flush=group.last_flush,
            scheduled=group.scheduled,
            urgent_wait_s=self._critical_wait_s if urgent else None,
        )

    def pick(self, sink: str, now: float, limit: int = 1) -> Work | None:
        """The most urgent due work of ``sink``: its top alert, and with ``limit`` > 1 up to
        ``limit`` due alerts of the same group, in send order. None when nothing is due."""
        with self.outbox.transaction():
            while head := self.outbox.due(sink, now, 1):
                group = head[0].group
                rows = self.outbox.due(sink, now, limit, group) if limit > 1 else head
                items = tuple(self._items(rows))
                if items:
                    more = self.outbox.queued_in(sink, group) - len(items) if limit > 1 else 0
                    return Work(sink, items, self.outbox.group(sink, group), max(more, 0))
        return None

    def _items(self, rows: Sequence[DeliveryRow]) -> Iterable[Item]:
        for row in rows:
            record = self.outbox.alert(row.dedup_key)
            change = None if record is None else owed(row, record.episode)
            if record is None or change is None:  # settled meanwhile: nothing to send
                self.outbox.put_delivery(dataclasses.replace(row, due=None, since=None))
            else:
                yield Item(row, record, change)

    def delivered(self, work: Work, sent: Mapping[str, Change], now: float) -> None:
        """The receiver accepted ``work``; ``sent`` is the change sent per dedup key."""
        with self.outbox.transaction():
            if work.group is not None:
                self.outbox.flushed(work.sink, work.items[0].row.group, now)
            for item in work.items:
                told = Knowledge.after(sent[item.dedup_key], item.record.episode)
                row = dataclasses.replace(
                    item.row, told=told, notified=now, due=None, since=None, remind=False,
                    attempts=0, last_error="", superseded=0,
                )  # fmt: skip
                current = self.outbox.alert(item.dedup_key) or item.record
                self._schedule(row, current, now)

    def failed(self, work: Work, at: float, error: str) -> None:
        """The receiver failed ``work``: try again at ``at``."""
        with self.outbox.transaction():
            for item in work.items:
                attempts = item.row.attempts + 1
                self.outbox.put_delivery(
                    dataclasses.replace(item.row, due=at, attempts=attempts, last_error=error)
                )

    def give_up(self, items: Iterable[Item], reason: str) -> None:
        """Stop trying ``items`` (refused, or too old): the receiver keeps what it had."""
        with self.outbox.transaction():
            for item in items:
                self.outbox.put_delivery(
                    dataclasses.replace(
                        item.row, due=None, since=None, remind=False, attempts=0,
                        last_error=reason,
                    )
                )  # fmt: skip

    def expired(self, sink: str, before: float) -> list[Item]:
        """Changes owed to ``sink`` since before ``before``."""
        with self.outbox.transaction():
            return list(self._items(self.outbox.expired(sink, before)))

    def remind(self, sink: str, now: float, every_s: float) -> int:
        """Make reminders due for alerts still firing that ``sink`` last heard of ``every_s``
        ago or more; returns how many."""
        with self.outbox.transaction():
            return self.outbox.schedule_reminders(sink, now, now - every_s)

    def carry_legacy(self, now: float) -> int:
        """Carry over the outbox of an earlier riskmon; returns the notifications it held.

        An active alert whose firing was no longer queued had been delivered: the receiver is
        told firing. Queued resolves are recorded as transitions.
        """
        queued, active = self.outbox.legacy()
        if not queued and not active:
            return 0
        waiting = {(s, n.dedup_key) for s, n in queued if n.event.state is AlertState.FIRING}
        with self.outbox.transaction():
            for sink, note in active:
                self._carry_active(sink, note, (sink, note.dedup_key) not in waiting, now)
            for _, note in queued:
                if note.event.state is AlertState.RESOLVED:
                    self._record(note, now, set())
            self.outbox.drop_legacy()
        return len(queued) + len(active)

    def _carry_active(self, sink: str, note: Notification, told: bool, now: float) -> None:
        event = note.event
        record = self.outbox.alert(note.dedup_key) or AlertRecord(
            note.dedup_key, event.rule, event.labels, event.severity, Episode(event.ts), note, None
        )
        self.outbox.put_alert(record, now)
        group = next((t.group for t in routing.targets(self.routes, note) if t.sink == sink), "-")
        knowledge = Knowledge(Told.FIRING, record.episode.started) if told else Knowledge()
        row = DeliveryRow(sink, note.dedup_key, group, knowledge, now if told else None)
        self._schedule(row, record, now)


def owed(row: DeliveryRow, episode: Episode) -> Change | None:
    """What ``row``'s receiver is owed of ``episode``: a change, a reminder, or nothing."""
    change = change_for(row.told, episode)
    if change is None and row.remind and row.told.state is Told.FIRING and episode.firing:
        return Change.STILL_FIRING
    return change
