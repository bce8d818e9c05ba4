"""The trip across the bus: newest receipt of a step, the histogram, the lock of a state dir."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bus.wire import BusBatch, BusMark
from service.bus_latency import LatencyHistogram, newest_receipt
from service.statelock import StateDirLock, StateDirLockedError


def _batch(recv: list[float]) -> BusBatch:
    n = len(recv)
    return BusBatch.of("binance", "BTCUSDT", "e", 1, [1.0] * n, [100.0] * n, recv)


def test_the_newest_receipt_is_the_latest_known_last_tick_of_the_step() -> None:
    """Each batch's last tick is its newest; unknown (NaN) receipts and marks are skipped."""
    step = [
        _batch([10.0, 12.0]),
        BusMark("BTCUSDT", 1, "e"),
        _batch([11.0, 11.5]),
        _batch([math.nan]),
    ]
    assert newest_receipt(step) == 12.0
    assert math.isnan(newest_receipt([BusMark("BTCUSDT", 1, "e"), _batch([math.nan])]))


def test_the_histogram_counts_le_buckets_and_clamps_skewed_clocks() -> None:
    """An observation on a bound counts in that bucket; a negative one (the engine host's
    clock behind the feeds host's) counts as 0 and is tallied; NaN is ignored."""
    trip = LatencyHistogram((0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0, -0.2, math.nan):
        trip.observe(seconds)
    assert trip.cumulative() == [("0.01", 3.0), ("0.1", 4.0), ("+Inf", 5.0)]
    assert trip.total == pytest.approx(0.005 + 0.01 + 0.05 + 3.0)
    assert trip.clamped == 1


def test_a_state_dir_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    """The second claimant fails at once, naming the first; after release it succeeds."""
    first = StateDirLock(tmp_path / "state", "engine")
    first.acquire()
    second = StateDirLock(tmp_path / "state", "feeds")
    with pytest.raises(StateDirLockedError, match=r"in use by pid \d+ on .* \(role engine\)"):
        second.acquire()
    first.release()
    with second:
        assert "(role feeds)" in (tmp_path / "state" / "riskmon.lock").read_text()
