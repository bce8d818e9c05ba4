"""Event-time exponentially weighted moments of a scalar series (sampled at snapshots)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# (halflife_s, count, weight, sum x, sum x^2, sum x^3, sum x^4, last_ts): an EwmaMoments' state
MomentsTuple = tuple[float, int, float, float, float, float, float, float]


@dataclass(slots=True)
class EwmaMoments:
    """Weighted raw moments E[x^k], k = 1..4, with weights halving every ``halflife_s`` seconds.

    The weights are normalised by their sum (no seeding), so the first value is its own mean.

    Attributes:
        halflife_s: half-life in seconds of event time.
        count: number of observations so far.
    """

    halflife_s: float
    count: int = 0
    _weight: float = 0.0
    _sums: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    _last_ts: float = math.nan

    def update(self, ts: float, x: float) -> None:
        """Add observation ``x`` made at event time ``ts``."""
        d = (
            1.0
            if math.isnan(self._last_ts)
            else 2.0 ** (-max(ts - self._last_ts, 0.0) / self.halflife_s)
        )
        self._weight = d * self._weight + 1.0
        s1, s2, s3, s4 = self._sums
        self._sums = (d * s1 + x, d * s2 + x * x, d * s3 + x**3, d * s4 + x**4)
        self._last_ts = ts
        self.count += 1

    def to_tuple(self) -> MomentsTuple:
        """The complete state as plain numbers, for checkpoints."""
        return (float(self.halflife_s), self.count, self._weight, *self._sums, self._last_ts)

    @classmethod
    def from_tuple(cls, values: MomentsTuple) -> EwmaMoments:
        """The estimator whose :meth:`to_tuple` is ``values``."""
        halflife_s, count, weight, s1, s2, s3, s4, last_ts = values
        return cls(halflife_s, count, weight, (s1, s2, s3, s4), last_ts)

    def moment(self, k: int) -> float:
        """Weighted mean of x**k (k = 1..4); NaN before the first observation."""
        if self._weight == 0.0:
            return math.nan
        return self._sums[k - 1] / self._weight

    @property
    def mean(self) -> float:
        """Weighted mean."""
        return self.moment(1)

    @property
    def std(self) -> float:
        """Weighted standard deviation around the weighted mean."""
        return math.sqrt(max(self.moment(2) - self.mean**2, 0.0))
