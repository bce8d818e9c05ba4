"""The trip across the bus: receipt at the feeds role to a worker's snapshot, as a histogram.

Each tick carries the wall-clock time the feeds role received it (``recv`` in
:class:`~bus.wire.BusBatch`). For every snapshot it computes, an engine worker observes its
own wall clock minus the receive time of the newest tick of the engine step that computed it:
how old the freshest input of the figures is when they appear (linger, publish, storage,
pull, stream-order merge and engine step together; in a catch-up, the backlog's age).

The two times come from two hosts' clocks: the figure assumes they agree (NTP, to a few
milliseconds). A negative difference (the engine host's clock behind) is counted as 0.
Bucket counts are kept here and read at scrape time (``riskmon_bus_tick_to_snapshot_seconds``).
"""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Iterable

from bus.wire import BusBatch, BusMessage

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LAST = struct.Struct("<d")


def newest_receipt(messages: Iterable[BusMessage]) -> float:
    """The latest receive time of the ticks of ``messages`` (NaN when none is known).

    A batch's ticks are in the order the feeds role received them, so its last is its newest.
    """
    newest = math.nan
    for message in messages:
        if isinstance(message, BusBatch) and message.recv:
            (recv,) = _LAST.unpack_from(message.recv, len(message.recv) - 8)
            if not math.isnan(recv) and (math.isnan(newest) or recv > newest):
                newest = recv
    return newest


class LatencyHistogram:
    """Cumulative bucket counts and sum of observations, in seconds."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0
        self.clamped = 0

    def observe(self, seconds: float) -> None:
        """Count one trip; a negative one (skewed clocks) as 0."""
        if math.isnan(seconds):
            return
        if seconds < 0.0:
            self.clamped += 1
            seconds = 0.0
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """(upper bound, observations at or below it) per bucket, ``+Inf`` last."""
        out, running = [], 0
        for bound, count in zip((*self.buckets, math.inf), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == math.inf else repr(bound), float(running)))
        return out
