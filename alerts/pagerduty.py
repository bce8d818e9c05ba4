"""PagerDuty Events API v2: ``trigger`` on firing, ``resolve`` on resolve, one ``dedup_key``.

``POST https://events.pagerduty.com/v2/enqueue`` answers 202 when the event is accepted, 400
when it is invalid (do not retry), 429 when throttled and 5xx on PagerDuty's failures (retry)
(developer.pagerduty.com, "Events API v2 Overview"). ``payload.summary`` is limited to 1024
characters and ``dedup_key`` to 255. PagerDuty quotes 120 events per minute per integration
key, hence the default 2 events/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.jsonl import iso_utc
from alerts.notification import HttpRequest, Notification, Outcome, default_classify
from alerts.text import clip, json_request, with_detail
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError
from monitor.model import AlertState, Severity

DEFAULT_BASE_URL = "https://events.pagerduty.com"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE_PER_S = 2.0
SUMMARY_MAX_CHARS = 1024

SEVERITIES: Mapping[Severity, str] = {
    Severity.CRITICAL: "critical",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}


@dataclass(frozen=True, slots=True)
class PagerDutySink:
    """Sends events to one PagerDuty integration (the routing key is the secret)."""

    name: str
    routing_key: str = field(repr=False)
    rate_per_s: float = DEFAULT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    base_url: str = DEFAULT_BASE_URL

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> PagerDutySink:
        """Build from ``config``; ``url`` overrides the Events API host (tests)."""
        if not secret:
            raise ConfigError(f"sink {config.name!r} (pagerduty): no routing key; set secret_env")
        base = (config.url or DEFAULT_BASE_URL).rstrip("/")
        return cls(
            config.name,
            secret,
            rate_per_s=config.rate_per_s or DEFAULT_RATE_PER_S,
            timeout_s=float(config.timeout),
            base_url=base,
        )

    def render(self, note: Notification) -> HttpRequest:
        """A ``trigger`` event for a firing note, a ``resolve`` event for a resolved one."""
        event: dict[str, Any] = {"routing_key": self.routing_key, "dedup_key": note.dedup_key}
        if note.event.state is AlertState.RESOLVED:
            event["event_action"] = "resolve"
        else:
            event |= trigger(note)
        return json_request(f"{self.base_url}/v2/enqueue", event)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """202 delivered; 429 and 5xx retry; 400 rejected."""
        return with_detail(default_classify(status, headers, body), status, body, self.routing_key)


def trigger(note: Notification) -> dict[str, Any]:
    """The trigger fields: payload (PD-CEF) and a link to the dashboard."""
    event = note.event
    custom: dict[str, Any] = {label: text for label, text in note.details}
    custom |= {
        "rule": event.rule,
        "value": event.value,
        "threshold": event.threshold,
        "labels": dict(event.labels),
    }
    if event.portfolio is not None:
        custom["portfolio"] = event.portfolio
    fields: dict[str, Any] = {
        "event_action": "trigger",
        "payload": {
            "summary": clip(f"{note.title}: {note.summary}", SUMMARY_MAX_CHARS),
            "source": note.source,
            "severity": SEVERITIES[event.severity],
            "timestamp": iso_utc(event.ts),
            "class": event.rule,
            "custom_details": custom,
        },
    }
    if note.dashboard_url:
        fields["links"] = [{"href": note.dashboard_url, "text": "Dashboard"}]
    return fields
