"""What a sink is given and what it returns: a notification in, an HTTP request out.

Sinks are pure: :func:`Sink.render` turns a :class:`Notification` into the exact request the
receiving API expects, and :func:`Sink.classify` reads the API's answer. The dispatcher owns
HTTP, rate limits, retries and the durable outbox, so every sink is testable without a socket.

Chat sinks (:class:`DigestSink`) also render a :class:`Digest`: the changes of one alert group
in one message. Sinks whose API takes an alert's whole life at once (:class:`EpisodeSink`,
Alertmanager) render a firing and its resolve as one request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from monitor.model import AlertEvent, Severity


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


class Change(StrEnum):
    """What a message tells a receiver about one alert."""

    FIRED = "fired"
    RESOLVED = "resolved"  # the receiver had the firing
    FIRED_AND_RESOLVED = "fired_and_resolved"  # the whole episode happened while it waited
    STILL_FIRING = "still_firing"  # a reminder (repeat or re-send interval)


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One alert in a digest.

    Attributes:
        change: what happened to it.
        note: the notification to show: the resolve for resolved changes, else the firing.
        fired_at: the episode's fire time (None when riskmon never saw the firing).
        resolved_at: the resolve time, for resolved changes.
        superseded: earlier episodes of this alert that came and went while it waited.
    """

    change: Change
    note: Notification
    fired_at: float | None
    resolved_at: float | None = None
    superseded: int = 0

    @property
    def severity(self) -> Severity:
        """The alert's severity."""
        return self.note.event.severity


@dataclass(frozen=True, slots=True)
class Digest:
    """The changes of one alert group for one chat message, most urgent first.

    Attributes:
        entries: the alerts it names (at most the sink's ``digest_max_items``).
        group: the group's labels (the route's ``group_by``), for the title.
        more: changes of the same group still waiting after this message.
        dashboard_url: link to the dashboard, if configured.
        source: where it comes from.
    """

    entries: tuple[DigestEntry, ...]
    group: tuple[tuple[str, str], ...] = ()
    more: int = 0
    dashboard_url: str | None = None
    source: str = "riskmon"

    @property
    def severity(self) -> Severity:
        """The most urgent severity among the entries."""
        return min((e.severity for e in self.entries), key=SEVERITY_ORDER.index)

    @property
    def all_resolved(self) -> bool:
        """Whether every entry is a resolve (chat sinks colour it green)."""
        ended = (Change.RESOLVED, Change.FIRED_AND_RESOLVED)
        return all(e.change in ended for e in self.entries)


SEVERITY_ORDER: tuple[Severity, ...] = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
"""Most urgent first: the order in which each sink sends."""


class Sink(Protocol):
    """A configured destination: name, published rate limit, render and classify."""

    @property
    def name(self) -> str: ...

    @property
    def rate_per_s(self) -> float: ...

    def render(self, note: Notification) -> HttpRequest: ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome: ...


@runtime_checkable
class DigestSink(Sink, Protocol):
    """A chat sink: a burst of changes becomes a few digests naming each alert."""

    @property
    def digest_max_items(self) -> int: ...

    def render_digest(self, digest: Digest) -> HttpRequest: ...


@runtime_checkable
class EpisodeSink(Sink, Protocol):
    """A sink whose API takes an alert's state at send time and a whole episode at once."""

    def render_firing(self, note: Notification, now: float) -> HttpRequest: ...

    def render_episode(self, firing: Notification, resolved: Notification) -> HttpRequest: ...


def default_classify(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """2xx delivered; 429 and 5xx retry (honouring Retry-After seconds); other 4xx rejected.

    A success that says the receiver's budget is spent (:func:`exhausted_for`) carries the
    wait in ``retry_after_s``: the dispatcher pauses the sink that long before its next send.
    """
    del body
    if 200 <= status < 300:
        return Outcome(Verdict.DELIVERED, exhausted_for(headers))
    retry_after = _seconds(_header(headers, "Retry-After"))
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, retry_after, f"HTTP {status}")
    return Outcome(Verdict.REJECTED, None, f"HTTP {status}")


def exhausted_for(headers: Mapping[str, str]) -> float | None:
    """Seconds until the receiver takes requests again, when a success says none are left.

    Reads Discord's ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset-After`` and the IETF
    draft's ``RateLimit-Remaining`` / ``RateLimit-Reset`` (delta seconds, as PagerDuty's REST
    API sends them). None while requests remain or when the headers are absent.
    """
    for remaining, reset in (
        ("X-RateLimit-Remaining", "X-RateLimit-Reset-After"),
        ("RateLimit-Remaining", "RateLimit-Reset"),
    ):
        left = _header(headers, remaining)
        if left is not None and left.strip() == "0":
            return _seconds(_header(headers, reset))
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (a plain dict in tests, a CIMultiDict live)."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
