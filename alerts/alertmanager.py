"""Prometheus Alertmanager API v2: ``POST {url}/api/v2/alerts`` with a list of one alert.

Labels are the alert's identity, so the firing, every re-send and the resolve carry the same
label set. Alertmanager considers an alert resolved once its ``endsAt`` has passed, and expects
clients to re-send active alerts (every 30 s to 3 min, prometheus.io "Sending alerts"). Like
Prometheus, which sends ``endsAt = now + 4 x`` its resend interval, a firing alert here ends
``ENDS_AFTER_RESENDS`` re-send intervals after it was sent: three lost re-sends do not resolve
it, and if riskmon stops, Alertmanager resolves it on its own within four intervals. A resolve
sends ``endsAt`` = the event time.

A firing is sent as of the moment it is sent (:meth:`AlertmanagerSink.render_firing`): a
firing delivered late, after an outage, is still active for ``hold_s``. A resolve is sent with
the episode's real ``startsAt`` and ``endsAt`` (:meth:`AlertmanagerSink.render_episode`), and
so is an episode that fired and resolved while Alertmanager was unreachable: Alertmanager then
records an alert that has already ended and, having notified nobody of its firing, notifies
nobody of its resolve (no false page). A resolve whose firing riskmon never saw sends
``startsAt = endsAt``. Alertmanager publishes no rate limit (it is your own server): the
default is 10 alerts/s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from alerts.jsonl import iso_utc
from alerts.notification import HttpRequest, Notification, Outcome, default_classify
from alerts.text import json_request, summary_lines, with_detail
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError
from monitor.model import AlertState

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE_PER_S = 10.0
DEFAULT_RESEND_INTERVAL_S = 60.0
ENDS_AFTER_RESENDS = 4
_INVALID_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class AlertmanagerSink:
    """Posts alerts to one Alertmanager."""

    name: str
    url: str
    rate_per_s: float = DEFAULT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    resend_interval_s: float = DEFAULT_RESEND_INTERVAL_S

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> AlertmanagerSink:
        """Build from ``config``: ``url`` is Alertmanager's base URL; no secret is used."""
        del secret
        if not config.url:
            raise ConfigError(f"sink {config.name!r} (alertmanager): url is required")
        rate = config.rate_per_s or DEFAULT_RATE_PER_S
        return cls(
            config.name,
            config.url.rstrip("/"),
            rate_per_s=rate,
            timeout_s=float(config.timeout),
            resend_interval_s=float(config.resend_interval),
        )

    @property
    def hold_s(self) -> float:
        """How long after a send a firing alert stays active in Alertmanager without a re-send."""
        return ENDS_AFTER_RESENDS * self.resend_interval_s

    def render(self, note: Notification) -> HttpRequest:
        """The alert as of its event time: firing until ``ts + hold_s``, or resolved at ``ts``."""
        ts = note.event.ts
        if note.event.state is AlertState.RESOLVED:
            return self._request(note, starts_at=ts, ends_at=ts)
        return self._request(note, starts_at=ts, ends_at=ts + self.hold_s)

    def resend_request(self, note: Notification, now: float) -> HttpRequest:
        """The still-firing alert of ``note`` re-sent at ``now`` (Unix seconds, from the caller's
        clock): same labels and ``startsAt``, ``endsAt = now + hold_s``. A resolved note is
        rendered as is."""
        if note.event.state is AlertState.RESOLVED:
            return self.render(note)
        return self._request(note, starts_at=note.event.ts, ends_at=now + self.hold_s)

    def render_firing(self, note: Notification, now: float) -> HttpRequest:
        """The firing of ``note`` sent at ``now``: active until ``now + hold_s``."""
        return self.resend_request(note, now)

    def render_episode(self, firing: Notification, resolved: Notification) -> HttpRequest:
        """One alert from its firing to its resolve: ``startsAt`` and ``endsAt`` of the two
        event times, annotated with the resolve's words."""
        return self._request(resolved, starts_at=firing.event.ts, ends_at=resolved.event.ts)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """200 delivered; 400 (invalid alert) rejected; 5xx retry."""
        return with_detail(default_classify(status, headers, body), status, body, None)

    def _request(self, note: Notification, *, starts_at: float, ends_at: float) -> HttpRequest:
        alert = {
            "labels": alert_labels(note),
            "annotations": alert_annotations(note),
            "startsAt": iso_utc(starts_at),
            "endsAt": iso_utc(ends_at),
            "generatorURL": note.dashboard_url or "",
        }
        return json_request(f"{self.url}/api/v2/alerts", [alert])


def alert_labels(note: Notification) -> dict[str, str]:
    """The identity: the event's labels, ``portfolio``, ``alertname`` and ``severity``.

    Label names are made valid for Alertmanager (``[A-Za-z_][A-Za-z0-9_]*``).
    """
    event = note.event
    labels = {label_name(k): v for k, v in event.labels}
    if event.portfolio is not None:
        labels["portfolio"] = event.portfolio
    return labels | {"alertname": event.rule, "severity": event.severity.value}


def alert_annotations(note: Notification) -> dict[str, str]:
    """Summary, the full text as description, and the dashboard link when there is one."""
    shown = {"summary": note.summary, "description": "\n".join(summary_lines(note)[1:])}
    if note.dashboard_url:
        shown["dashboard"] = note.dashboard_url
    return shown


def label_name(name: str) -> str:
    """``name`` with every character Alertmanager refuses replaced by ``_``."""
    cleaned = _INVALID_LABEL_CHARS.sub("_", name)
    return f"_{cleaned}" if not cleaned or cleaned[0].isdigit() else cleaned
