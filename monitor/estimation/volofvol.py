"""Volatility of implied volatility per option, from the feed's mark IVs, in event time.

The option VaR (:mod:`monitor.risk.optionvar`) shocks implied volatilities by ``w = vol-of-vol x
sqrt(horizon)``. The vol-of-vol of each option is estimated here from the mark IVs the engine
sees at its snapshots: per instrument, an event-time EWMA of squared log IV changes over the
EWMA of the time they took (a variance *rate*, as the covariance estimator's),

    S = d S + (ln IV_t - ln IV_s)^2,   T = d T + (t - s),   d = 2^(-(t - s) / halflife),

annualised as ``sqrt(S / T x 365 days)``. The half-life is the estimator's ``slow_halflife``.

- A sample is taken at most once per :data:`SAMPLE_S` of event time: the live daemon snapshots
  every second and a replay every minute, and a finer grid would mostly measure how the venue
  rounds and refreshes its marks (Deribit quotes ``mark_iv`` to 0.01 vol points).
- A change beyond :data:`MAX_LOG_CHANGE` between two samples is clipped: a mark IV that doubles
  or halves within one sample is a bad print, and one print must not set a day's vol-of-vol.
- An instrument is published once it has ``min_observations`` changes; until then, and for
  options the feed does not mark, the configured ``[risk] vol_of_vol`` stands.
- Instruments without a sample for :data:`FORGET_HALFLIVES` half-lives (expired, unsubscribed)
  are forgotten, so the state stays bounded over months.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from monitor.risk.book import OptionMark
from monitor.risk.options import SECONDS_PER_YEAR

SAMPLE_S = 60.0
MAX_LOG_CHANGE = math.log(2.0)
FORGET_HALFLIVES = 8.0

IvState = tuple[float, float, float, float, int]
"""``(last sample time, last log IV, S, T, changes)`` of one instrument."""


class IvHistory:
    """EWMA variance rates of log mark IV per option instrument.

    Args:
        halflife_s: event-time half-life of the EWMA.
        min_observations: changes before an instrument's estimate is published.
    """

    def __init__(self, halflife_s: float, min_observations: int) -> None:
        self._halflife = halflife_s
        self._min_obs = min_observations
        self._state: dict[str, IvState] = {}

    def update(self, ts: float, marks: Mapping[str, OptionMark]) -> None:
        """Take a sample of every marked option due one at event time ``ts``."""
        for name, mark in marks.items():
            if not (mark.iv > 0.0 and math.isfinite(mark.iv)):
                continue
            old = self._state.get(name)
            log_iv = math.log(mark.iv)
            if old is None:
                self._state[name] = (ts, log_iv, 0.0, 0.0, 0)
            elif ts - old[0] >= SAMPLE_S:
                self._state[name] = self._step(old, ts, log_iv)
        horizon = FORGET_HALFLIVES * self._halflife
        for name in [n for n, s in self._state.items() if ts - s[0] > horizon]:
            del self._state[name]

    def _step(self, old: IvState, ts: float, log_iv: float) -> IvState:
        last_ts, last_log, s, t, count = old
        dt = ts - last_ts
        change = min(max(log_iv - last_log, -MAX_LOG_CHANGE), MAX_LOG_CHANGE)
        decay = 2.0 ** (-dt / self._halflife)
        return (ts, log_iv, decay * s + change * change, decay * t + dt, count + 1)

    def annual_variance(self) -> dict[str, float]:
        """Annualised variance of log IV of each instrument with enough changes."""
        return {
            name: s / t * SECONDS_PER_YEAR
            for name, (_, _, s, t, count) in self._state.items()
            if count >= self._min_obs and t > 0.0
        }

    def export_state(self) -> dict[str, IvState]:
        """A copy of the per-instrument state, for checkpoints."""
        return dict(self._state)

    def import_state(self, state: Mapping[str, IvState]) -> None:
        """Continue from :meth:`export_state` of an equally configured history."""
        self._state = {name: tuple(v) for name, v in state.items()}  # type: ignore[misc]
