"""The event-loop lag gauge: the largest timer delay of the recent window."""

from __future__ import annotations

import math

from service.looplag import LoopLag


def _exported(lag: LoopLag) -> list[float]:
    (family,) = lag.collect()
    assert family.name == "riskmon_event_loop_lag_seconds"
    return [sample.value for sample in family.samples]


def test_absent_before_the_first_measurement() -> None:
    lag = LoopLag()
    assert math.isnan(lag.lag_s)
    assert _exported(lag) == []


def test_the_largest_delay_of_the_window_is_exported_then_forgotten() -> None:
    """A 2 s stall shows until it leaves the window of the last ``window`` measurements;
    timers that ran early (clock granularity) count as 0."""
    lag = LoopLag(window=4)
    for late in (0.001, 2.0, 0.003, -0.0005):
        lag.record(late)
    assert _exported(lag) == [2.0]
    lag.record(0.002)  # the window is now 2.0, 0.003, 0, 0.002
    assert _exported(lag) == [2.0]
    lag.record(0.002)
    assert _exported(lag) == [0.003]
    lag.record(-0.01)
    assert lag.lag_s == 0.002
