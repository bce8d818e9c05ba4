"""Build the alert dispatcher from the config: sinks (secrets read here), routes, outbox."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from alerts.dispatcher import Dispatcher, send
from alerts.file import FileSink
from alerts.notification import Notification, Outcome, Sink, Verdict
from alerts.outbox import Outbox
from alerts.sinks import build_sink, read_sink_secret
from monitor.config import Config
from monitor.errors import ConfigError
from monitor.model import AlertEvent, AlertState, Severity


def build_sinks(
    config: Config, environ: Mapping[str, str] | None = None
) -> dict[str, Sink | FileSink]:
    """Every configured sink, plus the embedded ``log`` JSON-lines sink in the state dir."""
    env = os.environ if environ is None else environ
    state = Path(config.state.dir)
    sinks: dict[str, Sink | FileSink] = {"log": FileSink("log", state / config.alerts.log_file)}
    for sink in config.sinks:
        sinks[sink.name] = build_sink(sink, read_sink_secret(sink, env))
    return sinks


def build_dispatcher(config: Config, environ: Mapping[str, str] | None = None) -> Dispatcher:
    """The dispatcher with its durable outbox in ``[state] dir``."""
    state = Path(config.state.dir)
    return Dispatcher(
        sinks=build_sinks(config, environ),
        routes=config.routes,
        outbox=Outbox(state / config.alerts.outbox),
        max_age_s=config.alerts.max_attempts_age,
        resend_s={s.name: s.resend_interval for s in config.sinks if s.type == "alertmanager"},
    )


async def send_test_alert(config: Config, sink_name: str) -> Outcome:
    """Send one synthetic info notification straight through ``sink_name`` (no outbox)."""
    sinks = build_sinks(config)
    if sink_name not in sinks:
        raise ConfigError(
            f"{config.source}: no sink {sink_name!r}; configured: {', '.join(sorted(sinks))}"
        )
    event = AlertEvent(
        time.time(),
        "riskmon-test-alert",
        AlertState.FIRING,
        Severity.INFO,
        (("test", "true"),),
        1.0,
        0.0,
    )
    note = Notification(
        event,
        "riskmon/riskmon-test-alert/test=true",
        "INFO riskmon-test-alert firing",
        "This is a test notification from riskmon: the sink works.",
        dashboard_url=config.server.dashboard_url,
    )
    sink = sinks[sink_name]
    if isinstance(sink, FileSink):
        sink.write(note)
        return Outcome(Verdict.DELIVERED, None, str(sink.path))
    async with aiohttp.ClientSession() as session:
        return await send(sink, sink.render(note), session)
