"""`riskmon demo` for a short, bounded time fires the correlation alert of the crash."""

from __future__ import annotations

import io

from monitor.config.loading import load_config
from monitor.model import AlertState
from service.demo import run_demo
from tests.conftest import REPO


async def test_demo_fires_a_correlation_alert_during_the_simulated_crash() -> None:
    """Calm lasts 30 simulated minutes (15 s at 120x); the crash drives avg correlation up."""
    config = load_config(REPO / "config" / "demo.toml", environ={})
    out = io.StringIO()
    daemon = await run_demo(config, duration_s=40.0, speed=120.0, out=out)
    fired = [
        e
        for e in daemon.alerts
        if e.rule == "market-correlation-spike" and e.state is AlertState.FIRING
    ]
    assert fired, out.getvalue()
    assert fired[0].value > 0.7
    # Deribit's test_request heartbeats were answered and nothing dropped: one socket each
    assert {c.spec.name for c in daemon.connections} == {"binance", "coinbase", "deribit"}
    assert all(c.stats.connections == 1 for c in daemon.connections)
    assert all(c.stats.parse_errors == 0 for c in daemon.connections)
    text = out.getvalue()
    assert "FIRING" in text
    assert "market-correlation-spike" in text
    assert "avg corr" in text
