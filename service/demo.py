"""``riskmon demo``: the daemon against the bundled exchange simulator, offline.

The simulator (``feeds.simulator``) serves Binance spot, Coinbase Advanced Trade and Deribit on
127.0.0.1 with their real wire protocols, driven by a market that goes from calm to a crash in
which correlations converge toward 1. The daemon connects to it like to the real venues.
"""

from __future__ import annotations

import sys
import tempfile
from typing import TextIO

import msgspec

from feeds.simulator import ExchangeSimulator
from monitor.config.schema import Config
from monitor.model import AlertState
from service.daemon import Daemon
from service.live import console_alert, run_service, status_line, with_urls


async def run_demo(
    config: Config, *, duration_s: float, speed: float = 60.0, out: TextIO = sys.stdout
) -> Daemon:
    """Start the simulator, run the daemon against it for ``duration_s``, print as it goes."""
    with tempfile.TemporaryDirectory(prefix="riskmon-demo-") as state:
        return await _run(config, duration_s, speed, out, state)


async def _run(config: Config, duration_s: float, speed: float, out: TextIO, state: str) -> Daemon:
    # a fresh state directory: a previous demo's simulated clock is ahead of this one's
    config = msgspec.structs.replace(config, state=msgspec.structs.replace(config.state, dir=state))
    async with ExchangeSimulator(speed=speed) as sim:
        urls = {
            "binance": sim.binance_url,
            "coinbase": sim.coinbase_url,
            "deribit": sim.deribit_url,
        }
        print(
            f"riskmon demo: simulator on {', '.join(urls.values())}; market time runs "
            f"{speed:g}x: calm, then a crash after ~{1800 / speed:.0f} s",
            file=out,
        )

        def show(daemon: Daemon) -> None:
            print(status_line(daemon.latest, daemon.engine.ticks), file=out, flush=True)

        service = await run_service(
            with_urls(config, urls),
            duration_s=duration_s,
            listeners=(console_alert(out),),
            on_tick=show,
            wall=sim.sim_time,  # market time runs `speed` times faster than the wall clock
        )
    daemon = service.daemon
    assert daemon is not None
    fired = sum(e.state is AlertState.FIRING for e in daemon.alerts)
    resolved = len(daemon.alerts) - fired
    print(
        f"riskmon demo: {daemon.engine.ticks:,} ticks, {fired} alerts fired, {resolved} resolved",
        file=out,
    )
    return daemon
