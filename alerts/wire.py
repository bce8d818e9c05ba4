"""The storage form of a notification: JSON, with non-finite figures stored as null.

msgspec writes NaN and infinities as ``null``; a resolve on a figure that can no longer be
computed (NaN) must still be stored and read back, so the figures are optional on the wire.
"""

from __future__ import annotations

import math

import msgspec

from alerts.notification import Notification
from monitor.model import AlertEvent, AlertState, Severity


class _Wire(msgspec.Struct):
    """Storage form of a notification (NaN and infinite figures are stored as null)."""

    ts: float
    rule: str
    state: str
    severity: str
    labels: list[tuple[str, str]]
    value: float | None
    threshold: float | None
    portfolio: str | None
    dedup_key: str
    title: str
    summary: str
    details: list[tuple[str, str]]
    dashboard_url: str | None
    source: str


def encode(note: Notification) -> bytes:
    """Serialise a notification."""
    e = note.event
    return msgspec.json.encode(
        _Wire(
            e.ts,
            e.rule,
            e.state.value,
            e.severity.value,
            list(e.labels),
            e.value if math.isfinite(e.value) else None,
            e.threshold if math.isfinite(e.threshold) else None,
            e.portfolio,
            note.dedup_key,
            note.title,
            note.summary,
            list(note.details),
            note.dashboard_url,
            note.source,
        )
    )


def decode(raw: bytes) -> Notification:
    """Rebuild a notification."""
    w = msgspec.json.decode(raw, type=_Wire)
    labels = tuple((k, v) for k, v in w.labels)
    value = math.nan if w.value is None else w.value
    threshold = math.nan if w.threshold is None else w.threshold
    event = AlertEvent(
        w.ts, w.rule, AlertState(w.state), Severity(w.severity), labels, value, threshold,
        w.portfolio,
    )  # fmt: skip
    details = tuple((k, v) for k, v in w.details)
    return Notification(event, w.dedup_key, w.title, w.summary, details, w.dashboard_url, w.source)
