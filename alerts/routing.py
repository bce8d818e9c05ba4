"""Routing (pure): which sinks an alert goes to, and the group it joins at each.

Every route whose severity and labels match sends to its sinks; a sink named by several matching
routes takes the first one's grouping. An alert no route matches goes to the embedded ``log``
sink. The group of an alert at a sink is the route plus the values of the route's ``group_by``
labels (``rule`` and ``severity`` may be named too), as Alertmanager groups: with an empty
``group_by``, every alert of the route is one group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from alerts.notification import Notification

LOG_SINK = "log"
DEFAULT_REPEAT_S = 4 * 3600.0


class Route(Protocol):
    """What the dispatcher needs of a configured route."""

    @property
    def sinks(self) -> tuple[str, ...]: ...
    @property
    def severity(self) -> tuple[object, ...]: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def repeat_interval(self) -> float: ...
    @property
    def group_by(self) -> tuple[str, ...]: ...
    @property
    def group_wait(self) -> float: ...
    @property
    def group_interval(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A sink an alert goes to, with the group it joins there.

    Attributes:
        sink: the sink's name.
        group: the group's identity at that sink (route index and ``group_by`` values).
        group_labels: the ``group_by`` labels and their values, for digest titles.
        wait_s: the route's ``group_wait``.
        interval_s: the route's ``group_interval``.
    """

    sink: str
    group: str
    group_labels: tuple[tuple[str, str], ...] = ()
    wait_s: float = 0.0
    interval_s: float = 0.0


def matches(route: Route, note: Notification) -> bool:
    """Whether ``note`` matches the route's severities and labels."""
    return matches_alert(route, note.event.severity.value, dict(note.event.labels))


def matches_alert(route: Route, severity: str, labels: Mapping[str, str]) -> bool:
    """Whether an alert of ``severity`` with ``labels`` (a rule instance's) matches the route."""
    severities = {str(getattr(s, "value", s)) for s in route.severity}
    if severities and severity not in severities:
        return False
    return all(labels.get(k) == v for k, v in route.labels.items())


def targets(routes: Sequence[Route], note: Notification) -> list[Target]:
    """The sinks of every route matching ``note`` (the ``log`` sink when none does)."""
    found: dict[str, Target] = {}
    for index, route in enumerate(routes):
        if not matches(route, note):
            continue
        values = group_values(route.group_by, note)
        group = f"{index}|" + "|".join(v for _, v in values)
        for sink in route.sinks:
            if sink not in found:
                wait, interval = float(route.group_wait), float(route.group_interval)
                found[sink] = Target(sink, group, values, wait, interval)
    return list(found.values()) or [Target(LOG_SINK, "-")]


def group_values(group_by: Sequence[str], note: Notification) -> tuple[tuple[str, str], ...]:
    """The ``group_by`` labels of ``note`` with their values (empty when it lacks one)."""
    event = note.event
    labels = dict(event.labels) | {"rule": event.rule, "severity": event.severity.value}
    return tuple((name, labels.get(name, "")) for name in group_by)


def repeat_interval(routes: Sequence[Route], sink: str) -> float:
    """How often a still-firing alert is reminded at ``sink``: its routes' shortest interval."""
    intervals = [float(r.repeat_interval) for r in routes if sink in r.sinks]
    return min(intervals, default=DEFAULT_REPEAT_S)
