"""Microsoft Teams through a Workflows webhook: one Adaptive Card 1.4 attachment.

Office 365 connectors are retired; a channel's "Post to a channel when a webhook request is
received" workflow takes ``{"type": "message", "attachments": [card]}`` and answers 202.
Microsoft publishes no per-workflow rate; its limits for channel webhooks are at most 4 requests
in 1 s and 60 in 30 s (learn.microsoft.com, "Rate limiting for connectors"), so the default
1 msg/s stays well inside the burst limit. 429 and 5xx are retried after their Retry-After;
no rate-limit headers are published for successes. A digest is one card with a line per alert,
at most ``DIGEST_MAX_ITEMS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.notification import Digest, HttpRequest, Notification, Outcome, default_classify
from alerts.text import digest_lines, digest_title, facts, json_request, webhook_url, with_detail
from monitor.config.schema import SinkConfig
from monitor.model import AlertState, Severity

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE_PER_S = 1.0
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
DIGEST_MAX_ITEMS = 40

COLOURS: Mapping[Severity, str] = {
    Severity.CRITICAL: "Attention",
    Severity.WARNING: "Warning",
    Severity.INFO: "Accent",
}
RESOLVED_COLOUR = "Good"


@dataclass(frozen=True, slots=True)
class TeamsSink:
    """Posts to one Teams Workflows webhook (the webhook URL is the secret)."""

    name: str
    url: str = field(repr=False)
    rate_per_s: float = DEFAULT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    digest_max_items: int = DIGEST_MAX_ITEMS

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> TeamsSink:
        """Build from ``config``; ``url`` overrides the secret webhook URL (tests)."""
        return cls(
            config.name,
            webhook_url(config, secret, "teams"),
            rate_per_s=config.rate_per_s or DEFAULT_RATE_PER_S,
            timeout_s=float(config.timeout),
        )

    def render(self, note: Notification) -> HttpRequest:
        """The webhook POST for ``note``."""
        attachment = {"contentType": CARD_CONTENT_TYPE, "content": card(note)}
        return json_request(self.url, {"type": "message", "attachments": [attachment]})

    def render_digest(self, digest: Digest) -> HttpRequest:
        """The webhook POST naming every alert of ``digest`` in one card."""
        attachment = {"contentType": CARD_CONTENT_TYPE, "content": digest_card(digest)}
        return json_request(self.url, {"type": "message", "attachments": [attachment]})

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """2xx (202) delivered; 429 and 5xx retry after Retry-After; other 4xx rejected."""
        return with_detail(default_classify(status, headers, body), status, body, self.url)


def card(note: Notification) -> dict[str, Any]:
    """The Adaptive Card: title, summary, facts, and a button to the dashboard."""
    event = note.event
    colour = RESOLVED_COLOUR if event.state is AlertState.RESOLVED else COLOURS[event.severity]
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": note.title,
                "weight": "Bolder",
                "size": "Medium",
                "color": colour,
                "wrap": True,
            },
            {"type": "TextBlock", "text": note.summary, "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(note)]},
        ],
        "msteams": {"width": "Full"},
    }
    if note.dashboard_url:
        open_url = {"type": "Action.OpenUrl", "title": "Dashboard", "url": note.dashboard_url}
        content["actions"] = [open_url]
    return content


def digest_card(digest: Digest) -> dict[str, Any]:
    """The Adaptive Card of a digest: title, one text block per alert, dashboard button."""
    colour = RESOLVED_COLOUR if digest.all_resolved else COLOURS[digest.severity]
    title = {
        "type": "TextBlock",
        "text": digest_title(digest),
        "weight": "Bolder",
        "size": "Medium",
        "color": colour,
        "wrap": True,
    }
    lines = [
        {"type": "TextBlock", "text": line, "wrap": True, "spacing": "Small"}
        for line in digest_lines(digest)
    ]
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [title, *lines],
        "msteams": {"width": "Full"},
    }
    if digest.dashboard_url:
        open_url = {"type": "Action.OpenUrl", "title": "Dashboard", "url": digest.dashboard_url}
        content["actions"] = [open_url]
    return content
