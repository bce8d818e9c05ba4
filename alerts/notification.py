"""What a sink is given and what it returns: a notification in, an HTTP request out.

Sinks are pure: :func:`Sink.render` turns a :class:`Notification` into the exact request the
receiving API expects, and :func:`Sink.classify` reads the API's answer. The dispatcher owns
HTTP, rate limits, retries and the durable outbox, so every sink is testable without a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from monitor.model import AlertEvent


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert transition as a person should read it.

    Attributes:
        event: the rule transition.
        dedup_key: stable per rule and label set (and portfolio); the same for the firing and
            the resolve, and for re-sends, so receivers show one logical alert.
        title: one line, e.g. "CRITICAL market-correlation-spike firing".
        summary: a sentence in a person's words with value vs threshold.
        details: figures worth showing (e.g. top correlated pairs, largest component VaR),
            as ordered (label, text) pairs.
        dashboard_url: link to the dashboard, if configured.
        source: where it comes from (host or service name) for pager payloads.
    """

    event: AlertEvent
    dedup_key: str
    title: str
    summary: str
    details: tuple[tuple[str, str], ...] = ()
    dashboard_url: str | None = None
    source: str = "riskmon"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request to send (JSON body already encoded)."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Verdict(StrEnum):
    """What to do after an answer."""

    DELIVERED = "delivered"
    RETRY = "retry"  # 429, 5xx, network error: try again later
    REJECTED = "rejected"  # other 4xx: do not retry, log loudly, count


@dataclass(frozen=True, slots=True)
class Outcome:
    """The classified answer of a receiver.

    Attributes:
        verdict: delivered, retry or rejected.
        retry_after_s: the receiver's requested wait (Retry-After, Telegram's retry_after,
            Discord's retry_after), if any.
        detail: short text for logs (never containing secrets).
    """

    verdict: Verdict
    retry_after_s: float | None = None
    detail: str = ""


class Sink(Protocol):
    """A configured destination: name, published rate limit, render and classify."""

    @property
    def name(self) -> str: ...

    @property
    def rate_per_s(self) -> float: ...

    def render(self, note: Notification) -> HttpRequest: ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome: ...


def default_classify(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """2xx delivered; 429 and 5xx retry (honouring Retry-After seconds); other 4xx rejected."""
    del body
    if 200 <= status < 300:
        return Outcome(Verdict.DELIVERED)
    retry_after = _seconds(headers.get("Retry-After") or headers.get("retry-after"))
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, retry_after, f"HTTP {status}")
    return Outcome(Verdict.REJECTED, None, f"HTTP {status}")


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
