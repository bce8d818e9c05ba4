"""Read back what a receiver was told: (rule, change) per request, for every sink type.

Chat messages are read from their text (a single notification's title, or a digest's lines),
pager and webhook events from their JSON, Alertmanager alerts from ``startsAt``/``endsAt``.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator, Sequence
from typing import Any

from tests.receivers import Recorded

SEVERITIES = "CRITICAL|WARNING|INFO"
_TITLE = re.compile(rf"^(?:{SEVERITIES}) ([\w.-]+) (firing|resolved)$")
_LINE = re.compile(rf"^(?:{SEVERITIES}) ([\w.-]+)(?: \(.*?\))?: (.*)$")
_DIGEST_TITLE = re.compile(
    rf"^(?:{SEVERITIES}) \S+: \d+ (?:firing|resolved|fired and resolved|still firing)\b"
)
_TAG = re.compile(r"<[^>]+>")
CHAT_TYPES = ("slack", "discord", "telegram", "teams")


def changes(type_: str, request: Recorded, hold_s: float = 240.0) -> list[tuple[str, str]]:
    """The (rule, change) pairs one request told, change one of ``fired``, ``resolved``,
    ``fired_and_resolved``, ``still_firing``."""
    body = request.json
    if type_ == "pagerduty":
        action = {"trigger": "fired", "resolve": "resolved"}[body["event_action"]]
        return [(body["dedup_key"].split("/")[1], action)]
    if type_ == "webhook":
        return [(body["rule"], "fired" if body["state"] == "firing" else "resolved")]
    if type_ == "alertmanager":
        return [_alertmanager(alert, hold_s) for alert in body]
    return _chat(body)


def story(type_: str, requests: Sequence[Recorded], rule: str) -> list[str]:
    """Every change told about ``rule``, in arrival order."""
    return [c for r in requests for name, c in changes(type_, r) if name == rule]


def _alertmanager(alert: dict[str, Any], hold_s: float) -> tuple[str, str]:
    starts, ends = (_time(alert[k]) for k in ("startsAt", "endsAt"))
    resolved = ends - starts < hold_s / 2  # a firing ends hold_s after its send
    return alert["labels"]["alertname"], "resolved" if resolved else "fired"


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _chat(body: Any) -> list[tuple[str, str]]:
    found: dict[tuple[str, str], None] = {}  # ordered, and Slack says everything twice
    for line in _lines(body):
        text = html.unescape(_TAG.sub("", line)).strip()
        if _DIGEST_TITLE.match(text):
            continue
        if title := _TITLE.match(text):
            change = "fired" if title[2] == "firing" else "resolved"
            found[(title[1], change)] = None
        elif entry := _LINE.match(text):
            found[(entry[1], _digest_change(entry[2]))] = None
    return list(found)


def _digest_change(tail: str) -> str:
    if tail.startswith("still firing"):
        return "still_firing"
    if tail.startswith("resolved"):
        return "resolved"
    if tail.startswith("fired "):
        return "fired_and_resolved"
    return "fired"


def _lines(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from value.splitlines()
    elif isinstance(value, dict):
        for item in value.values():
            yield from _lines(item)
    elif isinstance(value, list):
        for item in value:
            yield from _lines(item)
