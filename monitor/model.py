"""Plain values that flow between the layers: ticks in, alert events out. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Tick:
    """One price observation.

    Attributes:
        ts: event time, Unix seconds (UTC).
        symbol: engine symbol, e.g. ``BTCUSDT``.
        price: price in the portfolio's base currency per unit.
    """

    ts: float
    symbol: str
    price: float


class Severity(StrEnum):
    """How urgently a person must look."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    """The two transitions that are reported."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A rule instance changed to firing or resolved.

    Attributes:
        ts: event time of the transition, Unix seconds.
        rule: rule name from the config.
        state: firing or resolved.
        severity: configured severity.
        labels: sorted (key, value) pairs identifying the instance.
        value: metric value that caused the transition.
        threshold: threshold crossed (the resolve threshold for resolve events).
        portfolio: portfolio name for portfolio metrics, else None.
    """

    ts: float
    rule: str
    state: AlertState
    severity: Severity
    labels: tuple[tuple[str, str], ...]
    value: float
    threshold: float
    portfolio: str | None = None
