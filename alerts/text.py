"""What every sink says, and the small encoding helpers they share.

All chat and pager sinks show the same facts in the same order (:func:`facts`), and the plain-text
form of a notification (:func:`summary_lines`) is made here once, so a Slack fallback, a Telegram
message and an Alertmanager description never disagree. The same holds for digests: one title
(:func:`digest_title`) and one line per alert (:func:`digest_line`) for every chat sink.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

import msgspec

from alerts.notification import Change, Digest, DigestEntry, HttpRequest, Notification, Outcome
from alerts.redact import Redactor
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
DETAIL_MAX_CHARS = 200
"""Longest answer excerpt kept in :attr:`Outcome.detail`."""
DIGEST_LINE_MAX_CHARS = 160
"""Longest line of a digest: each chat sink's ``digest_max_items`` lines fit its message."""


def format_number(value: float) -> str:
    """A figure as a person reads it: 4 significant digits, thousands separated from 10,000."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def human_time(ts: float) -> str:
    """Unix seconds as ``2025-03-01 12:00:05 UTC``."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def facts(note: Notification) -> tuple[tuple[str, str], ...]:
    """The (label, text) pairs every sink shows, in order: figures, time, labels, details."""
    event = note.event
    labels = dict(event.labels)
    shown: list[tuple[str, str]] = [
        ("Value", format_number(event.value)),
        ("Threshold", format_number(event.threshold)),
        ("Time", human_time(event.ts)),
        *labels.items(),
    ]
    if event.portfolio is not None and "portfolio" not in labels:
        shown.append(("portfolio", event.portfolio))
    return (*shown, *note.details)


def summary_lines(note: Notification) -> tuple[str, ...]:
    """The notification as plain-text lines: title, summary, one line per fact, dashboard."""
    lines = [note.title, note.summary, *(f"{label}: {text}" for label, text in facts(note))]
    if note.dashboard_url:
        lines.append(f"Dashboard: {note.dashboard_url}")
    return tuple(lines)


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape_markup(text: str, max_chars: int | None = None) -> str:
    """Escape ``&``, ``<`` and ``>`` (Slack mrkdwn and Telegram HTML both treat them as markup).

    With ``max_chars``, the escaped text is cut to that length with an ellipsis, never inside
    an entity.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if max_chars is None or len(escaped) <= max_chars:
        return escaped
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = _ENTITIES.get(char, char)
        if used + len(piece) > max_chars - 1:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + "…"


def json_request(url: str, payload: Any, headers: Mapping[str, str] | None = None) -> HttpRequest:
    """A POST of ``payload`` encoded as JSON."""
    return HttpRequest(
        "POST", url, msgspec.json.encode(payload), {**JSON_HEADERS, **(headers or {})}
    )


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` decoded as a JSON object; an empty dict when it is not one."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def seconds(value: Any) -> float | None:
    """A non-negative number of seconds from a header or JSON value, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (a plain dict in tests, a CIMultiDict live)."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def answer_detail(status: int, text: str, secret: str | None) -> str:
    """``HTTP <status>: <text>`` for logs: one line, at most DETAIL_MAX_CHARS, with every
    fragment of the secret masked (also when the receiver echoes only the request path)."""
    line = redactor_for(secret)(" ".join(text.split()))
    return clip(f"HTTP {status}: {line}" if line else f"HTTP {status}", DETAIL_MAX_CHARS)


@functools.lru_cache(maxsize=64)
def redactor_for(secret: str | None) -> Redactor:
    """The redactor of one sink's secret (cached: sinks quote answers on every failure)."""
    return Redactor((secret,))


def with_detail(outcome: Outcome, status: int, body: bytes, secret: str | None) -> Outcome:
    """``outcome`` whose detail quotes the answer body (never the secret)."""
    text = body.decode("utf-8", errors="replace")
    return dataclasses.replace(outcome, detail=answer_detail(status, text, secret))


def webhook_url(config: SinkConfig, secret: str | None, kind: str) -> str:
    """The webhook URL of a chat sink: ``url`` (tests, proxies) or the secret itself.

    Raises:
        ConfigError: no URL, or one without an http(s) scheme and host (the message never
            quotes the URL: it is the secret).
    """
    url = config.url or secret
    if not url:
        raise ConfigError(f"sink {config.name!r} ({kind}): no webhook URL; set secret_env")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        where = _secret_source(config)
        raise ConfigError(
            f"sink {config.name!r} ({kind}): the webhook URL from {where} is not a full URL; "
            "expected https://host/path (copy the whole URL, scheme included)"
        )
    return url.strip()


def _secret_source(config: SinkConfig) -> str:
    if config.url:
        return "url"
    if config.secret_env is not None:
        return f"secret_env {config.secret_env}"
    if config.secret_file is not None:
        return f"secret_file {config.secret_file}"
    return "secret"


# --- digests ------------------------------------------------------------------------------------

_DIGEST_WORDS: Mapping[Change, str] = {
    Change.FIRED: "firing",
    Change.RESOLVED: "resolved",
    Change.FIRED_AND_RESOLVED: "fired and resolved",
    Change.STILL_FIRING: "still firing",
}


def digest_title(digest: Digest) -> str:
    """``CRITICAL riskmon: 38 firing, 2 resolved [portfolio=main]``: counts by change."""
    counts = {change: 0 for change in _DIGEST_WORDS}
    for entry in digest.entries:
        counts[entry.change] += 1
    parts = ", ".join(f"{n} {_DIGEST_WORDS[c]}" for c, n in counts.items() if n)
    group = " [" + ", ".join(f"{k}={v}" for k, v in digest.group) + "]" if digest.group else ""
    return f"{digest.severity.value.upper()} {digest.source}: {parts}{group}"


def digest_line(entry: DigestEntry) -> str:
    """One alert of a digest in a line: severity, rule, labels, figures and times."""
    event = entry.note.event
    labels = ", ".join(f"{k}={v}" for k, v in event.labels)
    head = f"{event.severity.value.upper()} {event.rule}" + (f" ({labels})" if labels else "")
    figures = f"{format_number(event.value)} (threshold {format_number(event.threshold)})"
    fired = human_time(entry.fired_at) if entry.fired_at is not None else "unknown"
    resolved = human_time(entry.resolved_at if entry.resolved_at is not None else event.ts)
    tail = {
        Change.FIRED: f"{figures}, fired {fired}",
        Change.RESOLVED: f"resolved {resolved} at {figures}, fired {fired}",
        Change.FIRED_AND_RESOLVED: f"fired {fired}, resolved {resolved}",
        Change.STILL_FIRING: f"still firing since {fired}, last {figures}",
    }[entry.change]
    if entry.superseded:
        tail += f" (+{entry.superseded} earlier episodes)"
    return clip(f"{head}: {tail}", DIGEST_LINE_MAX_CHARS)


def digest_lines(digest: Digest) -> tuple[str, ...]:
    """Every entry's line, then the count of changes still to come."""
    lines = [digest_line(entry) for entry in digest.entries]
    if digest.more:
        lines.append(f"{digest.more} more changes follow.")
    return tuple(lines)


def with_fired_at(resolved: Notification, fired_at: float | None) -> Notification:
    """A resolve that also says when its alert fired (when riskmon knows)."""
    if fired_at is None:
        return resolved
    details = (("Fired at", human_time(fired_at)), *resolved.details)
    return dataclasses.replace(resolved, details=details)
