"""Telegram Bot API ``sendMessage`` with HTML formatting.

The bot token is the secret: it is part of the request URL and nowhere else (not in the repr,
not in :attr:`Outcome.detail`). Telegram's Bot FAQ asks bots to "avoid sending more than one
message per second" in a chat and not more than 20 messages per minute to the same group
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this): the default
rate is 1 msg/s for a private chat and 20/min for a group or channel (a negative ``chat_id`` or
an ``@channel`` name). A 429 answers ``{"ok": false, "parameters": {"retry_after": N}}``.

``link_preview_options`` is the Bot API 7.0 form of ``disable_web_page_preview``, which is still
accepted; both are sent so older self-hosted Bot API servers also skip the preview. The Bot API
sends no rate-limit headers on success. A digest is one message listing the alerts, at most
``DIGEST_MAX_ITEMS``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from alerts.notification import (
    Digest,
    HttpRequest,
    Notification,
    Outcome,
    Verdict,
    default_classify,
)
from alerts.text import (
    answer_detail,
    digest_lines,
    digest_title,
    escape_markup,
    facts,
    json_object,
    json_request,
    seconds,
)
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError

DEFAULT_BASE_URL = "https://api.telegram.org"
DEFAULT_TIMEOUT_S = 10.0
CHAT_RATE_PER_S = 1.0
GROUP_RATE_PER_S = 20 / 60
TEXT_MAX_CHARS = 4096
TITLE_MAX_CHARS = 256
SUMMARY_MAX_CHARS = 2048
FACT_MAX_CHARS = 256
DIGEST_MAX_ITEMS = 20  # 20 escaped lines of DIGEST_LINE_MAX_CHARS fit 4096 characters
DIGEST_LINE_MAX_CHARS = 190  # a line once escaped


@dataclass(frozen=True, slots=True)
class TelegramSink:
    """Sends to one Telegram chat through one bot."""

    name: str
    token: str = field(repr=False)
    chat_id: str
    rate_per_s: float = CHAT_RATE_PER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    base_url: str = DEFAULT_BASE_URL
    digest_max_items: int = DIGEST_MAX_ITEMS

    @classmethod
    def from_config(cls, config: SinkConfig, secret: str | None) -> TelegramSink:
        """Build from ``config``; the secret is the bot token, ``url`` overrides the API host."""
        if not secret:
            raise ConfigError(f"sink {config.name!r} (telegram): no bot token; set secret_env")
        if not config.chat_id:
            raise ConfigError(f"sink {config.name!r} (telegram): chat_id is required")
        rate = config.rate_per_s or default_rate(config.chat_id)
        base = (config.url or DEFAULT_BASE_URL).rstrip("/")
        return cls(
            config.name,
            secret,
            config.chat_id,
            rate_per_s=rate,
            timeout_s=float(config.timeout),
            base_url=base,
        )

    def render(self, note: Notification) -> HttpRequest:
        """The ``sendMessage`` POST for ``note``."""
        return self._send_message(message_html(note))

    def render_digest(self, digest: Digest) -> HttpRequest:
        """The ``sendMessage`` POST naming every alert of ``digest``."""
        return self._send_message(digest_html(digest))

    def _send_message(self, text: str) -> HttpRequest:
        payload = {
            "chat_id": self.chat_id,
            "text": text,
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
            "link_preview_options": {"is_disabled": True},
        }
        return json_request(f"{self.base_url}/bot{self.token}/sendMessage", payload)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """``ok: true`` delivered; 429 and 5xx retry after ``parameters.retry_after``."""
        answer = json_object(body)
        outcome = default_classify(status, headers, body)
        if outcome.verdict is Verdict.DELIVERED and answer.get("ok") is False:
            outcome = Outcome(Verdict.REJECTED)
        parameters = answer.get("parameters")
        wait = seconds(parameters.get("retry_after")) if isinstance(parameters, dict) else None
        text = str(answer.get("description") or "")
        return replace(
            outcome,
            retry_after_s=wait if wait is not None else outcome.retry_after_s,
            detail=answer_detail(status, text, self.token),
        )


def default_rate(chat_id: str) -> float:
    """1 msg/s for a private chat; 20 msg/min for a group or channel."""
    return GROUP_RATE_PER_S if chat_id.startswith(("-", "@")) else CHAT_RATE_PER_S


def message_html(note: Notification) -> str:
    """The message in Telegram's HTML subset; every text is escaped, trailing facts dropped
    when the message would exceed Telegram's 4096 characters."""
    head = [
        f"<b>{escape_markup(note.title, TITLE_MAX_CHARS)}</b>",
        escape_markup(note.summary, SUMMARY_MAX_CHARS),
        "",
    ]
    lines = [
        f"<b>{escape_markup(k, FACT_MAX_CHARS)}</b>: {escape_markup(v, FACT_MAX_CHARS)}"
        for k, v in facts(note)
    ]
    tail = []
    if note.dashboard_url:
        tail.append(f'<a href="{html.escape(note.dashboard_url, quote=True)}">Dashboard</a>')
    while lines and len("\n".join(head + lines + tail)) > TEXT_MAX_CHARS:
        lines.pop()
    text = "\n".join(head + lines + tail)
    return text if len(text) <= TEXT_MAX_CHARS else "\n".join(head)


def digest_html(digest: Digest) -> str:
    """The digest in Telegram's HTML subset: a bold title, then one escaped line per alert."""
    head = f"<b>{escape_markup(digest_title(digest), TITLE_MAX_CHARS)}</b>"
    lines = [escape_markup(line, DIGEST_LINE_MAX_CHARS) for line in digest_lines(digest)]
    if digest.dashboard_url:
        lines.append(f'<a href="{html.escape(digest.dashboard_url, quote=True)}">Dashboard</a>')
    while lines and len("\n".join([head, *lines])) > TEXT_MAX_CHARS:
        lines.pop(-2 if digest.dashboard_url and len(lines) > 1 else -1)
    return "\n".join([head, *lines])
