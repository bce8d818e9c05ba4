"""The tick guard: per-symbol time order and the bad-print filter, checked through the engine.

The filter's promise is checked as equalities of engine states: a bad print that is never
confirmed leaves the engine exactly as if it had never been sent, and a real move that later
ticks confirm leaves it exactly as without the filter.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.guard import MAX_HELD, check_receive_time

T0 = 1_750_000_000.0
FILTER_OFF = "[filter]\nk = 0\n"

Ticks = list[tuple[float, str, float]]


def _walk(n: int, seed: int, start: float = T0, step_s: float = 1.0) -> Ticks:
    """AAA, BBB and CCC in turn, random walks of 0.1% steps around 100."""
    rng = np.random.default_rng(seed)
    logp = np.log(100.0) + np.cumsum(rng.normal(0.0, 0.001, (n, 3)), axis=0)
    out: Ticks = []
    for i in range(n):
        for k, symbol in enumerate(("AAA", "BBB", "CCC")):
            out.append((start + i * step_s + k * 0.1, symbol, float(math.exp(logp[i, k]))))
    return out


def _feed(engine: Engine, ticks: Ticks, venue: str = "v") -> None:
    """One tick per call, as a slow live feed delivers them."""
    for ts, symbol, price in ticks:
        engine.ingest(np.array([ts]), [symbol], np.array([price]), venue)


def _same_state(a: Engine, b: Engine) -> None:
    sa, sb = a.export_state(), b.export_state()
    assert sa.ticks == sb.ticks
    np.testing.assert_array_equal(sa.price, sb.price)
    for name, value in sa.covariance.items():
        np.testing.assert_array_equal(value, sb.covariance[name], err_msg=name)


def _snapshot_after(ticks: Ticks, engine: Engine) -> None:
    """Take a snapshot, so that the filter knows each symbol's volatility, and keep feeding."""
    _feed(engine, ticks)
    engine.snapshot(ticks[-1][0])


def test_receive_time_check() -> None:
    """Ahead beyond the skew: re-stamped; behind beyond the age: rejected; else unchanged."""
    assert check_receive_time(100.0, 100.5, 2.0, 30.0) == (100.0, None)
    assert check_receive_time(101.9, 100.0, 2.0, 30.0) == (101.9, None)
    assert check_receive_time(4_102_444_800.0, 100.0, 2.0, 30.0) == (100.0, "clock_skew")
    assert check_receive_time(0.0, 1_750_000_000.0, 2.0, 30.0) == (None, "out_of_order")
    assert check_receive_time(math.nan, 100.0, 2.0, 30.0) == (None, "not_a_number")


def test_a_bad_print_never_confirmed_leaves_no_trace(make_config: Callable[..., Config]) -> None:
    """A 1000x print, then ordinary ticks: the state is the one without the print; counted."""
    before, after = _walk(60, 1), _walk(60, 2, start=T0 + 61)
    bad = (T0 + 60.5, "AAA", before[-3][2] * 1000.0)
    filtered, clean = Engine(make_config()), Engine(make_config())
    for engine, ticks in ((filtered, [*before, bad, *after]), (clean, [*before, *after])):
        _snapshot_after(before, engine)
        _feed(engine, ticks[len(before) :])
    _same_state(filtered, clean)
    assert filtered.rejected == {("v", "outlier"): 1}
    assert filtered.guard.held == 0
    snap = filtered.snapshot(T0 + 200)
    assert snap.price[snap.index("AAA")] == after[-3][2]  # the last good price


def test_the_symbol_keeps_its_last_good_price_while_a_print_is_held(
    make_config: Callable[..., Config],
) -> None:
    """While a suspect waits for the next tick, the symbol shows its last accepted price."""
    engine = Engine(make_config())
    ticks = _walk(40, 3)
    _feed(engine, ticks)
    last_good = ticks[-3][2]
    assert not engine.on_tick(T0 + 50, "AAA", last_good * 1000.0, "v")
    assert engine.guard.held == 1
    snap = engine.snapshot(T0 + 50)
    assert snap.price[snap.index("AAA")] == last_good


@pytest.mark.parametrize("steps", [1, 10])
def test_a_confirmed_fall_of_30_percent_passes_untouched(
    make_config: Callable[..., Config], steps: int
) -> None:
    """-30% at once (held, then confirmed) or in ten steps (never suspect): the engine ends
    exactly where the filter-off engine does."""
    calm = _walk(60, 4)
    level = calm[-3][2]
    fall: Ticks = []
    for i in range(steps):
        fall.append((T0 + 61 + i * 10.0, "AAA", level * (1 - 0.3 * (i + 1) / steps)))
    after = [(T0 + 200 + i, "AAA", level * 0.7 * (1 + 0.001 * i)) for i in range(5)]
    on, off = Engine(make_config()), Engine(make_config(FILTER_OFF))
    for engine in (on, off):
        _snapshot_after(calm, engine)
        _feed(engine, [*fall, *after])
    _same_state(on, off)
    assert dict(on.rejected) == {}
    snap = on.snapshot(T0 + 300)
    assert snap.price[snap.index("AAA")] == after[-1][2]


def test_a_print_repeated_at_the_same_time_does_not_confirm_itself(
    make_config: Callable[..., Config],
) -> None:
    """A duplicated message (same time, same price) is no second opinion."""
    engine = Engine(make_config())
    _feed(engine, _walk(30, 5))
    good = float(engine.snapshot(T0 + 40).price[0])
    _feed(engine, [(T0 + 40, "AAA", good * 1000.0), (T0 + 40, "AAA", good * 1000.0)])
    assert engine.guard.held == 2
    _feed(engine, [(T0 + 41, "AAA", good)])
    assert engine.rejected == {("v", "outlier"): 2}
    assert engine.guard.held == 0


def test_confirmations_are_counted(make_config: Callable[..., Config]) -> None:
    """With ``confirmations = 2`` one agreeing tick is not enough; two are."""
    engine = Engine(make_config("[filter]\nconfirmations = 2\n"))
    _feed(engine, _walk(30, 6))
    good = float(engine.snapshot(T0 + 40).price[0])
    _feed(engine, [(T0 + 40, "AAA", good * 2), (T0 + 41, "AAA", good * 2.01)])
    assert engine.guard.held == 2
    before = engine.ticks
    _feed(engine, [(T0 + 42, "AAA", good * 2.02)])
    assert engine.ticks == before + 3
    assert engine.guard.held == 0
    assert float(engine.snapshot(T0 + 43).price[0]) == good * 2.02


def test_garbage_is_held_within_bounds_and_never_moves_the_symbol(
    make_config: Callable[..., Config],
) -> None:
    """Prices that never agree with each other: at most MAX_HELD wait, all are dropped."""
    engine = Engine(make_config())
    _feed(engine, _walk(30, 7))
    good = float(engine.snapshot(T0 + 40).price[0])
    rng = np.random.default_rng(7)
    for i in range(50):
        factor = float(rng.choice([1e-3, 1e3])) * (2.0 ** (i % 7))
        _feed(engine, [(T0 + 40 + i, "AAA", good * factor)])
        assert engine.guard.held <= MAX_HELD
    assert float(engine.snapshot(T0 + 100).price[0]) == good
    assert engine.guard.streak[0] == 50 - engine.guard.held
    assert engine.rejected[("v", "outlier")] == 50 - engine.guard.held


def test_a_new_level_is_reached_even_after_a_long_hold(make_config: Callable[..., Config]) -> None:
    """A suspect older than max_hold is dropped, but still confirms the tick that agrees."""
    engine = Engine(make_config('[filter]\nmax_hold = "10s"\n'))
    _feed(engine, _walk(30, 8))
    good = float(engine.snapshot(T0 + 40).price[0])
    _feed(engine, [(T0 + 40, "AAA", good * 3), (T0 + 100, "AAA", good * 3.01)])
    assert engine.rejected == {("v", "outlier"): 1}
    assert float(engine.snapshot(T0 + 101).price[0]) == good * 3.01


def test_the_filter_off_applies_every_valid_tick(make_config: Callable[..., Config]) -> None:
    """``k = 0``: a 1000x print is applied at once."""
    engine = Engine(make_config(FILTER_OFF))
    _feed(engine, _walk(30, 9))
    assert engine.on_tick(T0 + 40, "AAA", 1e6, "v")
    assert float(engine.snapshot(T0 + 40).price[0]) == 1e6


def test_a_lagging_venue_is_applied_late_not_refused(make_config: Callable[..., Config]) -> None:
    """Time order is per symbol: ticks 20 s behind other symbols are applied (at the latest
    time); a tick behind its own symbol's last beyond the tolerance is refused."""
    engine = Engine(make_config())
    _feed(engine, [(T0 + 20 + i, "AAA", 100.0 + i * 0.01) for i in range(10)])
    _feed(engine, [(T0 + i, "BBB", 50.0 + i * 0.01) for i in range(10)], venue="slow")
    assert engine.ticks == 20
    _feed(engine, [(T0 - 10, "BBB", 50.0)], venue="slow")
    assert engine.rejected == {("slow", "out_of_order"): 1}
    assert engine.last_event_ts == T0 + 29


_tick = st.tuples(
    st.floats(0.0, 300.0),  # seconds after T0
    st.sampled_from(["AAA", "BBB", "CCC"]),
    st.sampled_from([1.0, 1.001, 0.999, 1.5, 0.7, 1000.0, 0.001, 1.002]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_tick, min_size=1, max_size=25), min_size=1, max_size=12))
def test_compiled_and_python_guards_decide_alike(batches: list[Ticks]) -> None:
    """Jumps, late ticks and holds in any order: the numba kernel and Python agree exactly."""
    from tests.conftest import BASE_TOML

    config = _config(BASE_TOML)
    fast, slow = Engine(config), Engine(config, compiled=False)
    for engine in (fast, slow):
        _feed(engine, _walk(20, 10, start=T0 - 100))
        engine.snapshot(T0 - 50)
    for batch in batches:
        ts = np.array([T0 + t for t, _, _ in batch])
        symbols = [s for _, s, _ in batch]
        prices = np.array([100.0 * f for _, _, f in batch])
        assert fast.ingest(ts, symbols, prices) == slow.ingest(ts, symbols, prices)
    _same_state(fast, slow)
    assert fast.rejected == slow.rejected
    assert fast.guard.held == slow.guard.held


def _config(text: str) -> Config:
    import tempfile
    import textwrap
    from pathlib import Path

    from monitor.config.loading import load_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "riskmon.toml"
        path.write_text(textwrap.dedent(text))
        return load_config(path, environ={})
