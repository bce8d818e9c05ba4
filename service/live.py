"""``riskmon run`` and ``riskmon demo``: start the daemon, stop it on a signal or a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import msgspec

from monitor.config.schema import Config
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from service.daemon import AlertListener, Daemon
from service.service import Service


async def run_service(
    config: Config,
    *,
    config_path: Path | None = None,
    duration_s: float | None = None,
    listeners: tuple[AlertListener, ...] = (),
    on_tick: Callable[[Daemon], None] | None = None,
    wall: Callable[[], float] = time.time,
) -> Service:
    """Run the service until SIGTERM/SIGINT (or ``duration_s``); returns it stopped.

    ``wall``: the clock venue times are checked against (the demo's simulator runs faster).
    """
    service = Service(config, config_path=config_path, listeners=listeners, wall=wall)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(service.run(duration_s))
        if on_tick is not None:
            group.create_task(_every(task, 5.0, lambda: _show(service, on_tick)))
    return service


def _show(service: Service, on_tick: Callable[[Daemon], None]) -> None:
    if service.daemon is not None:
        on_tick(service.daemon)


async def _every(task: asyncio.Task[None], seconds: float, action: Callable[[], None]) -> None:
    while not task.done():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.shield(task)
        if not task.done():
            action()


def with_urls(config: Config, urls: dict[str, str]) -> Config:
    """The config with each feed of a venue in ``urls`` pointed at that URL."""
    feeds = tuple(
        msgspec.structs.replace(f, url=urls[f.venue]) if f.venue in urls else f
        for f in config.feeds
    )
    return msgspec.structs.replace(config, feeds=feeds)


def console_alert(out: TextIO = sys.stdout) -> AlertListener:
    """Print each firing and resolved alert as one line."""

    def show(event: AlertEvent) -> None:
        when = dt.datetime.fromtimestamp(event.ts, tz=dt.UTC).strftime("%H:%M:%S")
        where = f" [{event.portfolio}]" if event.portfolio else ""
        labels = ",".join(f"{k}={v}" for k, v in event.labels if k != "portfolio")
        head = f"{when} {event.state.value.upper():<8} {event.severity.value:<8} {event.rule}"
        tail = f": {event.value:.4g} (threshold {event.threshold:.4g})"
        print(f"{head}{where}{' ' + labels if labels else ''}{tail}", file=out, flush=True)

    return show


def status_line(snap: RiskSnapshot | None, ticks: int) -> str:
    """A one-line view of the latest snapshot for the console."""
    if snap is None:
        return f"ticks {ticks:,}: waiting for data"
    m = snap.market

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    parts = [
        f"ticks {ticks:,}",
        f"avg corr {fmt(m.avg_correlation)} (slow {fmt(m.avg_correlation_slow)})",
        f"absorption {fmt(m.absorption_ratio)}",
    ]
    for p in snap.portfolios:
        var = p.tails[-1].var if p.tails else None
        parts.append(
            f"{p.name} VaR{int(p.tails[-1].confidence * 100)} "
            f"{'n/a' if var is None else f'{var:,.0f}'}"
        )
    return " | ".join(parts)
