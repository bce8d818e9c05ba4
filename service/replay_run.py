"""The engine side of ``riskmon replay``: engine, rules, snapshot tables and the alert file.

Kept apart from :mod:`service.replay_app` so that its libraries (numba, scipy, the risk models)
are imported only once the reader thread is already merging the files: the imports and the
loading of numba's cached kernels then run beside the reader instead of before it.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alerts.jsonl import JsonlAlertWriter
from alerts.notification import Notification
from monitor.clock import IndexedBatchLike, SnapshotClock, TickBatchLike
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.model import AlertEvent, AlertState
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine
from monitor.table import AccountTable, SnapshotTable, reported_pairs
from service.report.record import RunRecorder
from service.warmup import load_kernels

FIRST_ALERTS = 20


@dataclass(slots=True)
class ReplayOutputs:
    """Receives every snapshot and its alert events (a :data:`monitor.clock.SnapshotSink`).

    Attributes:
        snapshots: one row per portfolio per snapshot.
        accounts: one row per account per snapshot.
        writer: alerts.jsonl.
        recorder: what ``riskmon report`` reads beyond the tables (:mod:`service.report.record`).
        notify: also word each event as a notification (``--send-alerts``).
        states: alert events by state.
        first: the first firing events, for the summary.
        notes: the notifications, when ``notify``.
    """

    config: Config
    snapshots: SnapshotTable
    accounts: AccountTable
    writer: JsonlAlertWriter
    recorder: RunRecorder
    notify: bool = False
    states: Counter[str] = field(default_factory=Counter)
    first: list[AlertEvent] = field(default_factory=list)
    notes: list[Notification] = field(default_factory=list)

    def __call__(self, snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        self.snapshots.add(snap)
        self.accounts.add(snap)
        self.recorder.add(snap, events)
        if self.notify and events:
            from alerts import notify as wording  # only --send-alerts words notifications

            rules = {rule.name: rule for rule in self.config.rules}
            url = self.config.server.dashboard_url
            self.notes.extend(wording.build(e, rules, snap, url) for e in events)
        for event in events:
            self.writer.write(event)
            self.states[event.state.value] += 1
            if len(self.first) < FIRST_ALERTS and event.state is AlertState.FIRING:
                self.first.append(event)


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """What the engine side produced.

    Attributes:
        engine: the engine after the last tick (its counters and rejections).
        clock: the snapshot clock (snapshots emitted, boundaries skipped in gaps).
        outputs: alert counts, first alerts and notifications.
        files: the files written into the work directory.
    """

    engine: Engine
    clock: SnapshotClock
    outputs: ReplayOutputs
    files: tuple[str, ...]


def run_engine(
    config: Config,
    batches: Iterable[TickBatchLike | IndexedBatchLike],
    work: Path,
    *,
    notify: bool = False,
) -> ReplayRun:
    """Apply every batch; write snapshots.parquet, alerts.jsonl (and accounts.parquet) to ``work``.

    The engine's kernels are loaded before the first batch is awaited, so that numba's cache
    loads while the reader still merges the files.
    """
    engine = Engine(config)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios], engine.account_names)
    pairs = reported_pairs(config.universe.symbols, config.universe.watch_pairs)
    (work / "alerts.jsonl").touch()  # the file exists when no rule fires
    with JsonlAlertWriter(work / "alerts.jsonl") as writer:
        outputs = ReplayOutputs(
            config,
            SnapshotTable(pairs, config.risk.confidence),
            AccountTable(config.risk.confidence),
            writer,
            RunRecorder(
                config.risk.confidence, rules, {rule.name: rule.op for rule in config.rules}
            ),
            notify,
        )
        clock = SnapshotClock(engine, rules, config.replay.snapshot_interval, outputs)
        load_kernels(config)
        # The libraries' objects (numba's type system, scipy) live until the process ends:
        # keep the collector from walking them again at every full collection.
        gc.freeze()
        for batch in batches:
            clock.feed(batch)
        clock.finish()
    outputs.snapshots.to_frame().write_parquet(work / "snapshots.parquet")
    files = ["snapshots.parquet", "alerts.jsonl"]
    if config.accounts:
        outputs.accounts.to_frame().write_parquet(work / "accounts.parquet")
        files.append("accounts.parquet")
    return ReplayRun(engine, clock, outputs, tuple(files))
