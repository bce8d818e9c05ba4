"""Build the alert dispatcher from the config: sinks (secrets read here), routes, outbox.

Also the two ways of sending outside the daemon: ``riskmon test-alert`` (one notification
straight through one sink) and ``riskmon replay --send-alerts`` (a replay's transitions through
the configured routes), and the :class:`~alerts.redact.Redactor` of every configured secret.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from alerts.dispatcher import Delivery, Dispatcher
from alerts.file import FileSink
from alerts.notification import Notification, Outcome, Sink, Verdict
from alerts.outbox import Outbox
from alerts.redact import Redactor
from alerts.requests import send
from alerts.routing import LOG_SINK, matches
from alerts.sinks import build_sink, read_sink_secret
from monitor.config.schema import Config
from monitor.errors import ConfigError, RiskmonError
from monitor.model import AlertEvent, AlertState, Severity
from service.http import read_secret

_URL_SECRETS = frozenset({"slack", "discord", "teams"})
"""Sink types whose ``url`` (a test or proxy override) is the secret webhook URL itself."""


def build_sinks(
    config: Config, environ: Mapping[str, str] | None = None, log_file: Path | None = None
) -> dict[str, Sink | FileSink]:
    """Every configured sink, plus the embedded ``log`` JSON-lines sink (in the state dir,
    or ``log_file``)."""
    env = os.environ if environ is None else environ
    log_path = log_file or Path(config.state.dir) / config.alerts.log_file
    sinks: dict[str, Sink | FileSink] = {LOG_SINK: FileSink(LOG_SINK, log_path)}
    for sink in config.sinks:
        sinks[sink.name] = build_sink(sink, read_sink_secret(sink, env))
    return sinks


def secret_redactor(config: Config, environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor of every secret the config names: sink secrets, chat webhook URLs given as
    ``url``, and the HTTP server's token. A secret that cannot be read is left to the code
    that reads it to report."""
    env = os.environ if environ is None else environ
    secrets: list[str | None] = []
    for sink in config.sinks:
        with contextlib.suppress(ConfigError):
            secrets.append(read_sink_secret(sink, env))
        if sink.type in _URL_SECRETS:
            secrets.append(sink.url)
    with contextlib.suppress(ConfigError):
        secrets.append(read_secret(config.server, dict(env)))
    return Redactor(secrets)


def build_dispatcher(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    outbox: Path | None = None,
    log_file: Path | None = None,
    immediate: bool = False,
) -> Dispatcher:
    """The dispatcher with its durable outbox in ``[state] dir`` (or at ``outbox``)."""
    state = Path(config.state.dir)
    delivery = build_delivery(config, environ, log_file)
    return Dispatcher(
        sinks=delivery.sinks,
        routes=delivery.routes,
        outbox=Outbox(outbox or state / config.alerts.outbox),
        max_age_s=delivery.max_age_s,
        resend_s=delivery.resend_s,
        redactor=delivery.redactor,
        immediate=immediate,
        critical_wait_s=delivery.critical_wait_s,
    )


def build_delivery(
    config: Config, environ: Mapping[str, str] | None = None, log_file: Path | None = None
) -> Delivery:
    """Sinks (secrets read now), routes and timers of ``config``, for a dispatcher or a reload.

    Raises:
        ConfigError: a sink's secret cannot be read, or a required setting is missing.
    """
    return Delivery(
        sinks=build_sinks(config, environ, log_file),
        routes=config.routes,
        max_age_s=config.alerts.max_attempts_age,
        resend_s={s.name: s.resend_interval for s in config.sinks if s.type == "alertmanager"},
        redactor=secret_redactor(config, environ),
        critical_wait_s=config.alerts.critical_wait,
    )


async def send_test_alert(config: Config, sink_name: str) -> Outcome:
    """Send one synthetic info notification straight through ``sink_name`` (no outbox).

    The outcome's detail is redacted of every configured secret.
    """
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
    redactor = secret_redactor(config)
    async with aiohttp.ClientSession() as session:
        outcome = await send(sink, sink.render(note), session, redactor)
    return Outcome(outcome.verdict, outcome.retry_after_s, redactor(outcome.detail))


@dataclass(frozen=True, slots=True)
class SinkDelivery:
    """What one sink received of a replay.

    Attributes:
        messages: requests it accepted (messages, events).
        changes: alert changes it now has (a digest counts each alert it names).
        failed: changes refused or given up.
        undelivered: changes still owed when the wait ended.
    """

    messages: int
    changes: int
    failed: int
    undelivered: int


@dataclass(frozen=True, slots=True)
class ReplayDelivery:
    """What ``riskmon replay --send-alerts`` delivered, per configured sink.

    Attributes:
        sinks: per sink name.
        complete: whether everything was delivered before the deadline.
        unrouted: transitions no route matched (not sent anywhere).
    """

    sinks: Mapping[str, SinkDelivery]
    complete: bool
    unrouted: int


async def deliver_replay(
    config: Config, notes: Sequence[Notification], workdir: Path, timeout_s: float
) -> ReplayDelivery:
    """Deliver a replay's notifications through the configured routes and sinks.

    The outbox lives in ``workdir`` (a replay's deliveries are not the daemon's), every change
    is due at once (the replay knows them all: no ``group_wait``), and each alert's last episode
    is delivered in order, with the number of earlier episodes it superseded. Waits at most
    ``timeout_s`` for the receivers.

    Raises:
        RiskmonError: no ``[[sinks]]`` are configured.
    """
    if not config.sinks:
        raise RiskmonError(f"{config.source}: --send-alerts needs [[sinks]] and [[routes]]")
    dispatcher = build_dispatcher(
        config,
        outbox=workdir / "replay-outbox.sqlite",
        log_file=workdir / "replay-unrouted.jsonl",
        immediate=True,
    )
    unrouted = sum(1 for n in notes if not any(matches(r, n) for r in config.routes))
    try:
        dispatcher.submit(notes)
        complete = await dispatcher.deliver_all(timeout_s)
        delivered = {
            name: SinkDelivery(stats.sent, stats.notified, stats.failed, dispatcher.queued(name))
            for name, stats in dispatcher.stats.items()
            if name != LOG_SINK
        }
    finally:
        dispatcher.close()
    return ReplayDelivery(delivered, complete, unrouted)
