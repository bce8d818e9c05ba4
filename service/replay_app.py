"""Composition root: wires sources (feeds), the engine, the rules and sinks (alerts) together.

The only module besides the CLI that imports from both ``feeds`` and ``alerts``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alerts import notify
from alerts.jsonl import JsonlAlertWriter
from alerts.notification import Notification
from feeds.history import HistorySource
from monitor.clock import SnapshotClock, TickBatchLike
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.errors import DataError
from monitor.model import AlertEvent, AlertState
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine
from monitor.table import AccountTable, SnapshotTable, reported_pairs
from service.alerting import ReplayDelivery, deliver_replay
from service.report.facts import run_facts
from service.report.record import RunRecorder


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a replay did, for the closing summary.

    Attributes:
        rows: input rows read (after the reader's own drops).
        accepted: ticks the engine applied.
        skipped: rows dropped, by reason (reader and engine).
        snapshots: snapshot times emitted.
        gap_boundaries: snapshot boundaries skipped inside gaps in event time (a gap yields
            at most ``monitor.clock.MAX_CATCH_UP`` snapshots).
        alerts: alert events by state.
        elapsed_s: wall-clock seconds.
        out_dir: where the outputs are.
        first_alerts: the first firing events, for the summary.
        sinks_configured: ``[[sinks]]`` in the configuration.
        delivery: what the sinks received (``--send-alerts``), or None when not sent.
    """

    rows: int
    accepted: int
    skipped: dict[str, int]
    snapshots: int
    alerts: dict[str, int]
    elapsed_s: float
    out_dir: Path
    first_alerts: list[AlertEvent] = field(default_factory=list)
    sinks_configured: int = 0
    delivery: ReplayDelivery | None = None
    gap_boundaries: int = 0

    @property
    def ticks_per_second(self) -> float:
        """Accepted ticks per wall-clock second."""
        return self.accepted / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def replay(
    config: Config,
    data: Sequence[Path],
    out_dir: Path,
    *,
    progress: bool = False,
    candle_interval_s: float | None = None,
    send_alerts_s: float | None = None,
) -> ReplaySummary:
    """Replay historical files through the engine; write snapshots.parquet and alerts.jsonl.

    ``alerts.jsonl`` is written also when no rule fires (then empty). With ``[[accounts]]``
    configured, ``accounts.parquet`` holds their margin and stress rows. Ticks pass the same
    guard as in the daemon (``monitor.guard``: validation, per-symbol time order, the
    ``[filter]`` bad-print filter); its rejections are counted under the venue ``replay``.
    With ``send_alerts_s``, the alert events also go through the configured routes and sinks
    (:func:`~service.alerting.deliver_replay`), waiting at most that many seconds.

    Outputs are written to a temporary directory and moved into ``out_dir`` only when the
    replay has completed, so a failure leaves nothing partial behind.

    Raises:
        DataError: a file is missing, unreadable, or lacks a required column.
    """
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".riskmon-replay-", dir=out_dir.parent) as tmp:
        work = Path(tmp)
        source = HistorySource(data, candle_interval_s=candle_interval_s, workdir=work)
        engine = Engine(config)
        rules = RuleEngine(config.rules, [p.name for p in config.portfolios], engine.account_names)
        table = SnapshotTable(
            reported_pairs(config.universe.symbols, config.universe.watch_pairs),
            config.risk.confidence,
        )
        accounts = AccountTable(config.risk.confidence)
        ops = {rule.name: rule.op for rule in config.rules}
        recorder = RunRecorder(config.risk.confidence, rules, ops)  # for `riskmon report`
        states: Counter[str] = Counter()
        first: list[AlertEvent] = []
        notes: list[Notification] = []
        rules_by_name = {rule.name: rule for rule in config.rules}
        (work / "alerts.jsonl").touch()  # the file exists when no rule fires
        with JsonlAlertWriter(work / "alerts.jsonl") as writer:

            def sink(snap: RiskSnapshot, events: list[AlertEvent]) -> None:
                table.add(snap)
                accounts.add(snap)
                recorder.add(snap, events)
                if send_alerts_s is not None:
                    url = config.server.dashboard_url
                    notes.extend(notify.build(e, rules_by_name, snap, url) for e in events)
                for event in events:
                    writer.write(event)
                    states[event.state.value] += 1
                    if len(first) < 20 and event.state is AlertState.FIRING:
                        first.append(event)

            batches = _with_progress(source.batches(), source.total_rows, progress)
            clock = SnapshotClock(engine, rules, config.replay.snapshot_interval, sink)
            for batch in batches:
                clock.feed(batch)
            clock.finish()
        table.to_frame().write_parquet(work / "snapshots.parquet")
        outputs = ["snapshots.parquet", "alerts.jsonl"]
        if config.accounts:
            accounts.to_frame().write_parquet(work / "accounts.parquet")
            outputs.append("accounts.parquet")
        skipped = Counter(dict(source.skipped))
        skipped.update({k: v for k, v in engine.rejected_by_reason().items() if v})
        outputs += recorder.write(
            work,
            run_facts(
                config,
                data,
                out_dir,
                recorder.counts(source.total_rows, engine.ticks, skipped),
                candle_interval_s=candle_interval_s,
            ),
        )
        delivery = None
        if send_alerts_s is not None:
            delivery = asyncio.run(deliver_replay(config, notes, work, send_alerts_s))
        _publish(work, out_dir, outputs)
    return ReplaySummary(
        rows=source.total_rows,
        accepted=engine.ticks,
        skipped={k: v for k, v in skipped.items() if v},
        snapshots=clock.snapshots,
        alerts=dict(states),
        elapsed_s=time.perf_counter() - started,
        out_dir=out_dir,
        first_alerts=first,
        sinks_configured=len(config.sinks),
        delivery=delivery,
        gap_boundaries=clock.skipped,
    )


def _publish(work: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Move finished outputs into place, each with an atomic rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: output path exists and is not a directory")
    for name in names:
        shutil.move(str(work / name), str(out_dir / name))


def _with_progress(
    batches: Iterator[TickBatchLike], total: int, enabled: bool
) -> Iterator[TickBatchLike]:
    """Show a progress bar of rows replayed on a terminal."""
    if not enabled:
        yield from batches
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="tick", unit_scale=True, desc="replay", leave=False) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch.ts))
