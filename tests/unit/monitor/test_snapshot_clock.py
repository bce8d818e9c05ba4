"""The snapshot clock: no timestamp, however wrong, makes one batch do unbounded work."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import MAX_CATCH_UP, SnapshotClock
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine
from tests.conftest import BASE_TOML
from tests.unit.monitor.test_guard import _config

T0 = 1_750_000_000.0
YEAR_2100 = 4_102_444_800.0
BOUND = 5  # a small catch-up bound, so that the property below is tight


class CountingEngine(Engine):
    """An engine that counts the snapshots it computes afresh (the expensive ones)."""

    computed = 0

    def _compute(self, ts: float) -> RiskSnapshot:
        self.computed += 1
        return super()._compute(ts)


class Batch:
    def __init__(self, ts: list[float], symbol: list[str], price: list[float]) -> None:
        self.ts = np.array(ts, dtype=np.float64)
        self.symbol = symbol
        self.price = np.array(price, dtype=np.float64)


def _clock(config: Config, bound: int = BOUND) -> tuple[SnapshotClock, CountingEngine]:
    engine = CountingEngine(config)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios])
    seen: list[float] = []

    def sink(snap: RiskSnapshot, events: list[AlertEvent]) -> None:
        seen.append(snap.ts)

    return SnapshotClock(engine, rules, 60.0, sink, max_catch_up=bound), engine


_times = st.one_of(
    st.floats(T0, T0 + 3600.0),
    st.floats(-1e12, 1e13),  # 1970 and before, year 2100 and beyond
    st.sampled_from([0.0, YEAR_2100, T0 + 300.0, T0 - 86400.0, math.nan, math.inf, -math.inf]),
)
_ticks = st.lists(
    st.tuples(_times, st.sampled_from(["AAA", "BBB", "ZZZ"]), st.sampled_from([100.0, -1.0, 0.0])),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ticks, min_size=1, max_size=6), st.booleans())
def test_work_per_batch_is_bounded_whatever_the_timestamps(
    batches: list[list[tuple[float, str, float]]], in_order: bool
) -> None:
    """Per batch: at most BOUND snapshots per tick, and at most one fresh computation per tick
    plus one: the pre-averaging block that held the ticks before the batch closes at a
    boundary after the first one it emits, which changes the estimate once more.

    Timestamps from any epoch, NaN and infinite, unsorted or sorted, prices valid or not.
    """
    clock, engine = _clock(_config(BASE_TOML))
    for ticks in batches:
        if in_order:
            ticks = sorted(ticks, key=lambda t: (math.isnan(t[0]), t[0]))
        before, computed = clock.snapshots, engine.computed
        clock.feed(Batch(*map(list, zip(*ticks, strict=True))))  # type: ignore[arg-type]
        assert clock.snapshots - before <= BOUND * len(ticks)
        assert engine.computed - computed <= len(ticks) + 1
    before = clock.snapshots
    clock.advance_to(YEAR_2100 * 10)
    assert clock.snapshots - before <= BOUND


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 60.0 * 3 * BOUND), min_size=2, max_size=40))
def test_gaps_within_the_bound_yield_every_boundary(offsets: list[float]) -> None:
    """Without a gap longer than the bound, the clock emits what an unbounded one does."""
    offsets = sorted(offsets)
    bounded, _ = _clock(_config(BASE_TOML))
    unbounded, _ = _clock(_config(BASE_TOML), bound=10**9)
    ts = [T0 + x for x in offsets]
    gaps = np.diff([math.ceil(ts[0] / 60.0) * 60.0, *ts])
    for clock in (bounded, unbounded):
        for i in range(0, len(ts), 7):
            part = ts[i : i + 7]
            clock.feed(Batch(part, ["AAA"] * len(part), [100.0] * len(part)))
        clock.finish()
    if gaps.max(initial=0.0) <= 60.0 * (BOUND - 1):
        assert bounded.snapshots == unbounded.snapshots
        assert bounded.skipped == 0
    assert bounded.snapshots + bounded.skipped == unbounded.snapshots


def test_a_year_2100_tick_in_a_replay_costs_a_bounded_number_of_snapshots(
    make_config: Callable[..., Config],
) -> None:
    """The default bound: a 75-year jump gives MAX_CATCH_UP snapshots and counts the rest."""
    engine = Engine(make_config())
    rules = RuleEngine((), ["main"])
    times: list[float] = []
    clock = SnapshotClock(engine, rules, 60.0, lambda snap, events: times.append(snap.ts))
    start = math.ceil(T0 / 60.0) * 60.0 + 1.0  # two ticks within one interval, then the jump
    clock.feed(Batch([start, start + 30, YEAR_2100], ["AAA", "BBB", "AAA"], [100.0, 50.0, 101.0]))
    assert clock.snapshots == MAX_CATCH_UP
    assert times[-1] < YEAR_2100 <= times[-1] + 60.0  # the last boundary before the tick
    assert times[0] == start + 59.0
    assert clock.skipped == round((times[-1] - times[0]) / 60.0) - (MAX_CATCH_UP - 1)
    clock.finish()
    snap = engine.snapshot(YEAR_2100 + 60)
    assert snap.price[snap.index("AAA")] == 101.0


def test_invalid_ticks_do_not_anchor_or_move_the_clock(make_config: Callable[..., Config]) -> None:
    """A NaN time, a non-positive price or an unknown symbol is counted, not timed."""
    clock, _ = _clock(make_config())
    clock.feed(Batch([1.0, math.nan, T0], ["ZZZ", "AAA", "AAA"], [1.0, 100.0, -5.0]))
    assert clock.next_boundary is None
    clock.feed(Batch([T0, T0 + 1e9], ["AAA", "AAA"], [100.0, 0.0]))
    assert clock.next_boundary == math.ceil(T0 / 60.0) * 60.0
    assert clock.snapshots == 0


def test_the_bound_must_leave_room_for_the_first_boundary(
    make_config: Callable[..., Config],
) -> None:
    """max_catch_up below 2 would skip the snapshot that holds the ticks before a gap."""
    engine = Engine(make_config())
    with pytest.raises(ValueError, match="at least 2"):
        SnapshotClock(engine, RuleEngine((), ["main"]), 60.0, lambda s, e: None, max_catch_up=1)


class IndexedBatch:
    def __init__(self, batch: Batch, names: tuple[str, ...]) -> None:
        self.ts, self.price, self.symbols = batch.ts, batch.price, names
        self.idx = np.array([names.index(s) if s in names else -1 for s in batch.symbol])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_ticks, min_size=1, max_size=5),
    st.permutations(["AAA", "BBB", "CCC", "YYY"]),
    st.booleans(),
)
def test_a_batch_of_symbol_indices_is_the_batch_of_their_names(
    batches: list[list[tuple[float, str, float]]], order: list[str], name_zzz: bool
) -> None:
    """Indices into any symbol list (in another order, with names the engine does not track,
    an unknown symbol as -1 or as a name) leave the engine and the clock where names do."""
    by_name, engine = _clock(_config(BASE_TOML))
    by_index, indexed_engine = _clock(_config(BASE_TOML))
    names = (*order, "ZZZ") if name_zzz else tuple(order)  # ZZZ is not tracked
    for ticks in batches:
        ticks = sorted(ticks, key=lambda t: (math.isnan(t[0]), t[0]))
        batch = Batch(*map(list, zip(*ticks, strict=True)))  # type: ignore[arg-type]
        by_name.feed(batch)
        by_index.feed(IndexedBatch(batch, names))
    assert (by_index.snapshots, by_index.skipped) == (by_name.snapshots, by_name.skipped)
    a, b = engine.export_state(), indexed_engine.export_state()
    assert (a.ticks, dict(a.rejected)) == (b.ticks, dict(b.rejected))
    for name in a.covariance:
        np.testing.assert_array_equal(a.covariance[name], b.covariance[name])
    np.testing.assert_array_equal(a.price, b.price)
