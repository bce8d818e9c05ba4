"""Slack incoming webhook: a plain-text fallback plus Block Kit blocks.

Slack allows "no more than one message per second" per app, with short bursts over that, and
answers 429 with a Retry-After header when the limit is exceeded
(https://api.slack.com/docs/rate-limits); incoming webhooks send no rate-limit headers on
success. A success is ``200 ok``; errors are 4xx with a short text code (``invalid_payload``,
``channel_is_archived``) and 5xx for Slack's own failures.

A digest is a header, one section per ``DIGEST_LINES_PER_SECTION`` alert lines (a section holds
3000 characters), and a context line; at most ``DIGEST_MAX_ITEMS`` alerts per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.notification import Digest, HttpRequest, Notification, Outcome, default_classify
from alerts.text import (
    clip,
    digest_lines,
    digest_title,
    escape_markup,
    facts,
    human_time,
    json_request,
    summary_lines,
    webhook_url,
    with_detail,
)
from monitor.config.schema import SinkConfig

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE_PER_S = 1.0
HEADER_MAX_CHARS = 150
SECTION_MAX_CHARS = 3000
FIELDS_MAX = 10
FIELD_LABEL_MAX_CHARS = 100
FIELD_VALUE_MAX_CHARS = 1800
DIGEST_MAX_ITEMS = 40
DIGEST_LINES_PER_SECTION = 10


@dataclass(frozen=True, slots=True)
class SlackSink:
    """Posts to one Slack incoming webhook (the webhook URL is the secret)."""

    name: str
    url: str = field(repr=False)
    rate_per_s: float = DEFAULT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    digest_max_items: int = DIGEST_MAX_ITEMS

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> SlackSink:
        """Build from ``config``; ``url`` overrides the secret webhook URL (tests)."""
        return cls(
            config.name,
            webhook_url(config, secret, "slack"),
            rate_per_s=config.rate_per_s or DEFAULT_RATE_PER_S,
            timeout_s=float(config.timeout),
        )

    def render(self, note: Notification) -> HttpRequest:
        """The webhook POST for ``note``."""
        fallback = escape_markup("\n".join(summary_lines(note)), SECTION_MAX_CHARS)
        return json_request(self.url, {"text": fallback, "blocks": blocks(note)})

    def render_digest(self, digest: Digest) -> HttpRequest:
        """The webhook POST naming every alert of ``digest``."""
        title, lines = digest_title(digest), digest_lines(digest)
        fallback = escape_markup("\n".join((title, *lines)), SECTION_MAX_CHARS)
        return json_request(self.url, {"text": fallback, "blocks": digest_blocks(digest)})

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """200 delivered; 429 and 5xx retry after Retry-After; other 4xx rejected."""
        return with_detail(default_classify(status, headers, body), status, body, self.url)


def blocks(note: Notification) -> list[dict[str, Any]]:
    """Header, summary section, facts as fields, context with source, time and dashboard."""
    header = {"type": "plain_text", "text": clip(note.title, HEADER_MAX_CHARS)}
    summary = {"type": "mrkdwn", "text": escape_markup(note.summary, SECTION_MAX_CHARS)}
    fields = [
        {
            "type": "mrkdwn",
            "text": f"*{escape_markup(label, FIELD_LABEL_MAX_CHARS)}*\n"
            + escape_markup(text, FIELD_VALUE_MAX_CHARS),
        }
        for label, text in facts(note)[:FIELDS_MAX]
    ]
    context = f"{escape_markup(note.source)} · {human_time(note.event.ts)}"
    if note.dashboard_url:
        context += f" · <{escape_markup(note.dashboard_url)}|Dashboard>"
    return [
        {"type": "header", "text": header},
        {"type": "section", "text": summary},
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]


def digest_blocks(digest: Digest) -> list[dict[str, Any]]:
    """Header, the alert lines in sections of ``DIGEST_LINES_PER_SECTION``, context."""
    header = {"type": "plain_text", "text": clip(digest_title(digest), HEADER_MAX_CHARS)}
    lines = [escape_markup(line) for line in digest_lines(digest)]
    sections = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": clip("\n".join(lines[i : i + DIGEST_LINES_PER_SECTION]), SECTION_MAX_CHARS),
            },
        }
        for i in range(0, len(lines), DIGEST_LINES_PER_SECTION)
    ]
    context = escape_markup(digest.source)
    if digest.dashboard_url:
        context += f" · <{escape_markup(digest.dashboard_url)}|Dashboard>"
    return [
        {"type": "header", "text": header},
        *sections,
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
