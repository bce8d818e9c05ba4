"""Generic JSON webhook: the notification as one JSON object, optionally HMAC-signed.

With a secret configured, ``X-Riskmon-Signature: sha256=<hex>`` carries the HMAC-SHA256 of the
exact body bytes under that key, so the receiver can verify origin and integrity. The receiver
is your own service: the default rate is 10 requests/s.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from alerts.jsonl import alert_record
from alerts.notification import HttpRequest, Notification, Outcome, default_classify
from alerts.text import JSON_HEADERS, with_detail
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE_PER_S = 10.0
SIGNATURE_HEADER = "X-Riskmon-Signature"


@dataclass(frozen=True, slots=True)
class WebhookSink:
    """POSTs the notification JSON to one URL, signed when a secret is set."""

    name: str
    url: str
    secret: str | None = field(default=None, repr=False)
    rate_per_s: float = DEFAULT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> WebhookSink:
        """Build from ``config``: ``url`` is required; the secret, if any, is the HMAC key."""
        if not config.url:
            raise ConfigError(f"sink {config.name!r} (webhook): url is required")
        return cls(
            config.name,
            config.url,
            secret or None,
            rate_per_s=config.rate_per_s or DEFAULT_RATE_PER_S,
            timeout_s=float(config.timeout),
        )

    def render(self, note: Notification) -> HttpRequest:
        """The POST of :func:`notification_record` (signed when a secret is set)."""
        body = msgspec.json.encode(notification_record(note))
        headers = dict(JSON_HEADERS)
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return HttpRequest("POST", self.url, body, headers)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """2xx delivered; 429 and 5xx retry after Retry-After; other 4xx rejected."""
        return with_detail(default_classify(status, headers, body), status, body, self.secret)


def notification_record(note: Notification) -> dict[str, Any]:
    """The JSON object of a notification (also the line the file sink writes)."""
    return {
        **alert_record(note.event),
        "dedup_key": note.dedup_key,
        "title": note.title,
        "summary": note.summary,
        "details": [{"label": label, "text": text} for label, text in note.details],
        "dashboard_url": note.dashboard_url,
    }


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body under secret>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
