"""Request budgets: how long until ``n`` more requests fit a venue's sliding-window limits.

Pure and clock-free: every call takes ``now`` (the loop's monotonic seconds), so the same
budget works on the real loop, on an accelerated test loop and in unit tests. Memory is bounded:
a window of ``count`` requests keeps the times of its last ``count`` requests only (older ones
can never decide whether a new request fits).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from feeds.limits import VenueLimits, Window

MARGIN_S = 0.05
"""Extra wait after the oldest request leaves a window: the venue counts arrival times, which
jitter with the network, so two requests sent exactly one window apart could arrive closer."""
_EPSILON_S = 1e-9


class RequestBudget:
    """Sliding windows of request times; a request fits when it fits every window.

    Args:
        windows: the limits; none means unlimited.
    """

    def __init__(self, windows: Sequence[Window] = ()) -> None:
        self._windows = tuple(windows)
        self._times = [deque[float](maxlen=w.count) for w in self._windows]

    @property
    def capacity(self) -> int | None:
        """The most requests that can ever be sent at once (None: unlimited)."""
        return min((w.count for w in self._windows), default=None)

    def wait_s(self, n: int, now: float) -> float:
        """Seconds from ``now`` until ``n`` more requests fit (0.0: they fit now).

        Raises:
            ValueError: ``n`` exceeds a window's count, so it can never fit at once.
        """
        wait = 0.0
        for window, times in zip(self._windows, self._times, strict=True):
            if n > window.count:
                limit = f"{window.count} per {window.seconds} s"
                raise ValueError(f"{n} requests can never fit {limit}")
            excess = len(times) + n - window.count
            if excess > 0:  # the excess-th oldest request must have left the window
                wait = max(wait, times[excess - 1] + window.seconds + MARGIN_S - now)
        # a wait of a few ulps is float noise from the caller's now + wait: it fits
        return wait if wait > _EPSILON_S else 0.0

    def spend(self, n: int, now: float) -> None:
        """Record ``n`` requests sent at ``now``."""
        for times in self._times:
            times.extend([now] * n)

    def used(self, now: float) -> list[int]:
        """Requests inside each window at ``now`` (for tests and diagnostics)."""
        return [
            sum(1 for t in times if t > now - w.seconds)
            for w, times in zip(self._windows, self._times, strict=True)
        ]


@dataclass(slots=True)
class VenueBudget:
    """The per-IP budgets of one venue group, shared by all its connections."""

    limits: VenueLimits
    requests: RequestBudget = field(init=False)
    connects: RequestBudget = field(init=False)

    def __post_init__(self) -> None:
        self.requests = RequestBudget(self.limits.requests_per_ip)
        self.connects = RequestBudget(self.limits.connects_per_ip)


def venue_budgets(limits: Sequence[VenueLimits]) -> dict[str, VenueBudget]:
    """One shared budget per venue group (e.g. Bybit linear and spot share one host)."""
    budgets: dict[str, VenueBudget] = {}
    for item in limits:
        budgets.setdefault(item.group, VenueBudget(item))
    return budgets
