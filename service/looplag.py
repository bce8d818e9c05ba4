"""Event-loop lag: how late the loop runs a timer, the delay every probe and scrape also waits.

The engine's computation runs off the loop (service.daemon), so the loop should answer within
milliseconds; a lag that grows means something blocks it (a synchronous call, a numba compile
holding the GIL, a machine out of CPU), and /healthz, signals and scrapes wait that long too.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

INTERVAL_S = 0.25
WINDOW = 20
"""The gauge is the largest delay of the last ``WINDOW`` timers (5 s at 0.25 s): a spike between
two scrapes is not missed."""


class LoopLag(Collector):
    """Schedules a timer every ``interval_s`` on the running loop and records how late it ran.

    Args:
        interval_s: time between two measurements.
        window: measurements the exported maximum covers.
    """

    def __init__(self, interval_s: float = INTERVAL_S, window: int = WINDOW) -> None:
        self.interval_s = interval_s
        self._recent: deque[float] = deque(maxlen=window)

    async def run(self) -> None:
        """Measure until cancelled (on the loop's own monotonic clock)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(loop.time() - due)

    def record(self, late_s: float) -> None:
        """Add one measurement (negative values, timer granularity, count as 0)."""
        self._recent.append(max(late_s, 0.0))

    @property
    def lag_s(self) -> float:
        """The largest delay of the window; NaN before the first measurement."""
        return max(self._recent, default=math.nan)

    def collect(self) -> Iterator[Metric]:
        """``riskmon_event_loop_lag_seconds`` (absent before the first measurement)."""
        family = GaugeMetricFamily(
            "riskmon_event_loop_lag_seconds",
            "Largest delay of the event loop running a timer over the last 5 seconds.",
        )
        if not math.isnan(self.lag_s):
            family.add_metric([], self.lag_s)
        yield family
