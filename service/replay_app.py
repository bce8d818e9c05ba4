"""``riskmon replay``: historical files through the engine, rules and alert outputs.

Two threads share the work: a reader thread (:class:`~feeds.readahead.ReadAhead`) merges and
sorts the files and decodes them into batches of symbol indices, prices and times (polars,
which releases the GIL), while this thread applies the batches before them to the engine (numba
kernels, which release it too). The reader starts first; the engine's libraries are imported
(:mod:`service.replay_run`) and numba's cached kernels loaded while it merges. The engine sees
the same batches in the same order either way, so a replay with the reader thread writes the
same outputs as one without (``read_ahead=0``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from feeds.history import HistorySource, IndexedTickBatch
from feeds.readahead import ReadAhead
from monitor.config.schema import Config
from monitor.errors import DataError
from monitor.model import AlertEvent
from service.report.facts import run_facts

if TYPE_CHECKING:
    from service.alerting import ReplayDelivery

BATCH_ROWS = 100_000
READ_AHEAD_BATCHES = 4
"""Batches (of ``BATCH_ROWS`` rows) the reader thread holds ready at most."""


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
    read_ahead: int = READ_AHEAD_BATCHES,
    batch_rows: int = BATCH_ROWS,
) -> ReplaySummary:
    """Replay historical files through the engine; write snapshots.parquet and alerts.jsonl.

    ``alerts.jsonl`` is written also when no rule fires (then empty). With ``[[accounts]]``
    configured, ``accounts.parquet`` holds their margin and stress rows. Ticks pass the same
    guard as in the daemon (``monitor.guard``: validation, per-symbol time order, the
    ``[filter]`` bad-print filter); its rejections are counted under the venue ``replay``.
    With ``send_alerts_s``, the alert events also go through the configured routes and sinks
    (:func:`~service.alerting.deliver_replay`), waiting at most that many seconds.
    ``read_ahead`` batches of ``batch_rows`` rows are read ahead in a thread of their own (0:
    read in this thread).

    Outputs are written to a temporary directory and moved into ``out_dir`` only when the
    replay has completed, so a failure leaves nothing partial behind.

    Raises:
        DataError: a file is missing, unreadable, or lacks a required column.
    """
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".riskmon-replay-", dir=out_dir.parent) as tmp:
        work = Path(tmp)
        source = HistorySource(
            data, batch_rows=batch_rows, candle_interval_s=candle_interval_s, workdir=work
        )
        total = source.total_rows if progress else 0  # counted before the reader starts
        batches = source.indexed_batches(config.tracked_symbols)
        with _reader(batches, read_ahead) as ahead:
            # Imported now, while the reader merges the files (see the module docstring).
            from service.replay_run import run_engine

            feed = _with_progress(iter(ahead), total) if progress else ahead
            run = run_engine(config, feed, work, notify=send_alerts_s is not None)
        delivery = None
        if send_alerts_s is not None:
            from service.alerting import deliver_replay

            notes = run.outputs.notes
            delivery = asyncio.run(deliver_replay(config, notes, work, send_alerts_s))
        skipped = Counter(dict(source.skipped))
        skipped.update({k: v for k, v in run.engine.rejected_by_reason().items() if v})
        counts = run.outputs.recorder.counts(source.total_rows, run.engine.ticks, skipped)
        facts = run_facts(config, data, out_dir, counts, candle_interval_s=candle_interval_s)
        _publish(work, out_dir, [*run.files, *run.outputs.recorder.write(work, facts)])
    return ReplaySummary(
        rows=source.total_rows,
        accepted=run.engine.ticks,
        skipped={k: v for k, v in skipped.items() if v},
        snapshots=run.clock.snapshots,
        alerts=dict(run.outputs.states),
        elapsed_s=time.perf_counter() - started,
        out_dir=out_dir,
        first_alerts=run.outputs.first,
        sinks_configured=len(config.sinks),
        delivery=delivery,
        gap_boundaries=run.clock.skipped,
    )


def _reader(
    batches: Iterator[IndexedTickBatch], depth: int
) -> AbstractContextManager[Iterable[IndexedTickBatch]]:
    """The batches read ahead in a thread of their own, or (``depth`` 0) as they are."""
    return (
        ReadAhead(batches, depth, name="riskmon-replay-reader") if depth else nullcontext(batches)
    )


def _publish(work: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Move finished outputs into place, each with an atomic rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: output path exists and is not a directory")
    for name in names:
        shutil.move(str(work / name), str(out_dir / name))


def _with_progress(batches: Iterator[IndexedTickBatch], total: int) -> Iterator[IndexedTickBatch]:
    """Show a progress bar of rows replayed on a terminal."""
    from tqdm import tqdm

    with tqdm(total=total, unit="tick", unit_scale=True, desc="replay", leave=False) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch.ts))
