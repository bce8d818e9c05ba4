"""Discord webhook: a one-line content plus an embed coloured by severity.

Discord asks clients not to hard-code limits but to read ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset-After``; a 429 body carries ``retry_after`` in seconds (a float) and
``global`` (https://discord.com/developers/docs/topics/rate-limits). A webhook gets 5 requests
per 2 s and a channel 30 messages per 60 s (Discord staff, discord-api-docs issue #367): the
default 0.5 msg/s is the channel limit. The request asks ``?wait=true`` so that Discord
confirms the message was saved (200 with the message) instead of answering 204 before it knows.

A success that empties the bucket (``X-RateLimit-Remaining: 0``) pauses the sink for
``X-RateLimit-Reset-After`` seconds before its next request, so a burst never collects 429s.
A digest is one embed whose description lists the alerts, at most ``DIGEST_MAX_ITEMS``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.jsonl import iso_utc
from alerts.notification import (
    Digest,
    HttpRequest,
    Notification,
    Outcome,
    Verdict,
    default_classify,
)
from alerts.text import (
    clip,
    digest_lines,
    digest_title,
    facts,
    header,
    json_object,
    json_request,
    seconds,
    webhook_url,
    with_detail,
)
from monitor.config.schema import SinkConfig
from monitor.model import AlertState, Severity

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE_PER_S = 0.5
CONTENT_MAX_CHARS = 2000
TITLE_MAX_CHARS = 256
DESCRIPTION_MAX_CHARS = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX_CHARS = 256
FIELD_VALUE_MAX_CHARS = 1024
DIGEST_MAX_ITEMS = 24  # 24 lines of DIGEST_LINE_MAX_CHARS fit a 4096-character description

COLOURS: Mapping[Severity, int] = {
    Severity.CRITICAL: 0xD32F2F,
    Severity.WARNING: 0xF9A825,
    Severity.INFO: 0x1976D2,
}
RESOLVED_COLOUR = 0x2E7D32


@dataclass(frozen=True, slots=True)
class DiscordSink:
    """Posts to one Discord webhook (the webhook URL is the secret)."""

    name: str
    url: str = field(repr=False)
    rate_per_s: float = DEFAULT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    digest_max_items: int = DIGEST_MAX_ITEMS

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> DiscordSink:
        """Build from ``config``; ``url`` overrides the secret webhook URL (tests)."""
        return cls(
            config.name,
            webhook_url(config, secret, "discord"),
            rate_per_s=config.rate_per_s or DEFAULT_RATE_PER_S,
            timeout_s=float(config.timeout),
        )

    def render(self, note: Notification) -> HttpRequest:
        """The webhook POST for ``note`` (mentions disabled: label text never pings anyone)."""
        payload = {
            "content": clip(note.title, CONTENT_MAX_CHARS),
            "embeds": [embed(note)],
            "allowed_mentions": {"parse": []},
        }
        return json_request(with_wait(self.url), payload)

    def render_digest(self, digest: Digest) -> HttpRequest:
        """The webhook POST naming every alert of ``digest`` in one embed."""
        colour = RESOLVED_COLOUR if digest.all_resolved else COLOURS[digest.severity]
        shown: dict[str, Any] = {
            "title": clip(digest_title(digest), TITLE_MAX_CHARS),
            "description": clip("\n".join(digest_lines(digest)), DESCRIPTION_MAX_CHARS),
            "color": colour,
            "footer": {"text": digest.source},
        }
        if digest.dashboard_url:
            shown["url"] = digest.dashboard_url
        payload = {
            "content": clip(digest_title(digest), CONTENT_MAX_CHARS),
            "embeds": [shown],
            "allowed_mentions": {"parse": []},
        }
        return json_request(with_wait(self.url), payload)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """2xx delivered; 429 and 5xx retry after the body's ``retry_after``; other 4xx rejected.

        A success that empties the bucket (``X-RateLimit-Remaining: 0``) carries the bucket's
        ``X-RateLimit-Reset-After`` as ``retry_after_s`` so the next send can wait for it.
        """
        outcome = with_detail(default_classify(status, headers, body), status, body, self.url)
        wait = _retry_after(outcome, headers, body)
        return replace(outcome, retry_after_s=wait) if wait is not None else outcome


def embed(note: Notification) -> dict[str, Any]:
    """The embed: title, summary, colour, facts as inline fields, dashboard link, event time."""
    event = note.event
    colour = RESOLVED_COLOUR if event.state is AlertState.RESOLVED else COLOURS[event.severity]
    shown: dict[str, Any] = {
        "title": clip(note.title, TITLE_MAX_CHARS),
        "description": clip(note.summary, DESCRIPTION_MAX_CHARS),
        "color": colour,
        "fields": [
            {
                "name": clip(label, FIELD_NAME_MAX_CHARS) or "-",
                "value": clip(text, FIELD_VALUE_MAX_CHARS) or "-",
                "inline": True,
            }
            for label, text in facts(note)[:FIELDS_MAX]
        ],
        "timestamp": iso_utc(event.ts),
        "footer": {"text": note.source},
    }
    if note.dashboard_url:
        shown["url"] = note.dashboard_url
    return shown


def with_wait(url: str) -> str:
    """``url`` with ``wait=true`` added to its query."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "wait"]
    query.append(("wait", "true"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _retry_after(outcome: Outcome, headers: Mapping[str, str], body: bytes) -> float | None:
    reset_after = seconds(header(headers, "X-RateLimit-Reset-After"))
    if outcome.verdict is Verdict.DELIVERED:
        exhausted = header(headers, "X-RateLimit-Remaining") == "0"
        return reset_after if exhausted else None
    if outcome.verdict is Verdict.REJECTED:
        return None
    from_body = seconds(json_object(body).get("retry_after"))
    if from_body is not None:
        return from_body
    return outcome.retry_after_s if outcome.retry_after_s is not None else reset_after
