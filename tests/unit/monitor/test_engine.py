"""The engine: tick validation, readiness, snapshot consistency and portfolio figures."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.risk.tails import normal_factors
from tests.simulate import equicorrelation

T0 = 1_750_000_000.0


def _feed_synchronous(engine: Engine, steps: int, rho: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(engine.symbols)
    chol = np.linalg.cholesky(equicorrelation(n, rho))
    logp = np.log(100.0) + np.cumsum(rng.standard_normal((steps, n)) @ chol.T * 0.002, axis=0)
    for s in range(steps):
        engine.ingest(np.full(n, T0 + 60.0 * s), list(engine.symbols), np.exp(logp[s]))
    return logp


def test_figures_are_null_until_min_observations(make_config: Callable[..., Config]) -> None:
    """Nothing is reported from fewer than min_observations returns."""
    engine = Engine(make_config())
    _feed_synchronous(engine, 10, 0.5)  # 9 returns < 10
    snap = engine.snapshot(T0 + 600)
    assert snap.market.avg_correlation is None
    assert np.isnan(snap.volatility).all()
    assert snap.portfolios[0].tails[0].var is None
    assert snap.portfolios[0].value is not None  # prices are known
    engine.ingest(np.full(3, T0 + 600.0), ["AAA", "BBB", "CCC"], np.full(3, 100.0))
    snap = engine.snapshot(T0 + 600)
    assert snap.market.avg_correlation is not None


def test_bad_ticks_are_counted_and_skipped(make_config: Callable[..., Config]) -> None:
    """Non-positive, NaN, unknown and late-beyond-tolerance ticks never reach the estimator.

    Time order is per symbol: BBB's first tick, 2 s behind AAA's latest, is applied (at the
    latest time); AAA's tick 90 s behind AAA's own latest is not.
    """
    engine = Engine(make_config())
    ts = np.array([T0, T0 + 1, T0 + 2, T0 + 3, T0 + 100, T0 + 10, T0 + 98, T0 + 30])
    syms = ["AAA", "AAA", "AAA", "ZZZ", "AAA", "AAA", "BBB", "CCC"]
    prices = np.array([100.0, -1.0, np.nan, 5.0, 101.0, 102.0, 50.0, 20.0])
    venues = ["a", "b", "c", "d", "a", "e", "f", "g"]
    accepted = engine.ingest(ts, syms, prices, venues)
    assert accepted == 4  # AAA at T0 and T0+100, BBB at T0+98 and CCC at T0+30 (first ticks)
    assert engine.rejected == {
        ("b", "non_positive"): 1,
        ("c", "not_a_number"): 1,
        ("d", "unknown_symbol"): 1,
        ("e", "out_of_order"): 1,
    }
    assert engine.rejected_by_reason() == {
        "not_a_number": 1,
        "non_positive": 1,
        "clock_skew": 0,
        "out_of_order": 1,
        "outlier": 0,
        "unknown_symbol": 1,
    }
    assert engine.last_event_ts == T0 + 100
    snap = engine.snapshot(T0 + 100)
    assert snap.price[snap.index("AAA")] == 101.0
    assert snap.price[snap.index("BBB")] == 50.0


def test_snapshot_is_immutable_and_consistent(make_config: Callable[..., Config]) -> None:
    """Arrays are read-only; the correlation matrix is symmetric, unit-diagonal and PSD."""
    engine = Engine(make_config())
    _feed_synchronous(engine, 200, 0.6)
    snap = engine.snapshot(T0 + 200 * 60)
    with pytest.raises(ValueError, match="read-only"):
        snap.correlation[0, 1] = 0.0
    corr = snap.correlation
    np.testing.assert_allclose(corr, corr.T)
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert np.linalg.eigvalsh(corr)[0] > -1e-12
    cov = snap.covariance
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), snap.volatility, rtol=1e-12)


def test_portfolio_var_matches_the_closed_form(make_config: Callable[..., Config]) -> None:
    """Normal VaR/CVaR from the snapshot covariance; Euler components sum to the VaR."""
    engine = Engine(make_config())
    _feed_synchronous(engine, 300, 0.4)
    snap = engine.snapshot(T0 + 300 * 60)
    p = snap.portfolios[0]
    idx = [snap.index("AAA"), snap.index("BBB")]
    exposure = np.array([2.0, -1.0]) * snap.price[idx]
    cov_day = snap.covariance[np.ix_(idx, idx)] / 365.0
    sigma = math.sqrt(exposure @ cov_day @ exposure)
    for tail in p.tails:
        f = normal_factors(tail.confidence)
        assert tail.var == pytest.approx(f.var * sigma, rel=1e-9)
        assert tail.cvar == pytest.approx(f.es * sigma, rel=1e-9)
        assert sum(tail.component_var) == pytest.approx(tail.var, rel=1e-9)
        sd = np.sqrt(np.diag(cov_day))
        assert tail.stressed_var == pytest.approx(f.var * abs(exposure @ sd), rel=1e-9)
    assert p.value == pytest.approx(exposure.sum())
    assert p.diversification_benefit == pytest.approx(1 - p.tails[1].var / p.tails[1].stressed_var)


def test_unchanged_state_gives_the_same_figures_at_a_later_time(
    make_config: Callable[..., Config],
) -> None:
    """A symbol that stops ticking keeps its last state; a quiet market keeps its figures."""
    engine = Engine(make_config())
    _feed_synchronous(engine, 100, 0.5)
    a = engine.snapshot(T0 + 6000)
    b = engine.snapshot(T0 + 9000)
    assert b.ts == T0 + 9000
    assert b.market == a.market
    assert b.portfolios == a.portfolios


def test_reference_kernel_gives_identical_snapshots(make_config: Callable[..., Config]) -> None:
    """Compiled and pure-Python kernels agree through the whole engine."""
    fast, slow = Engine(make_config()), Engine(make_config(), compiled=False)
    _feed_synchronous(fast, 80, 0.3, seed=9)
    _feed_synchronous(slow, 80, 0.3, seed=9)
    a, b = fast.snapshot(T0 + 80 * 60), slow.snapshot(T0 + 80 * 60)
    np.testing.assert_allclose(a.covariance, b.covariance, rtol=1e-12)
    assert a.market.avg_correlation == pytest.approx(b.market.avg_correlation, rel=1e-12)


def _tick_by_tick(
    engine: Engine, ticks: list[tuple[float, str, float]], last: dict[str, float]
) -> dict[str, int]:
    """The documented rules applied one tick at a time, straight to the estimator.

    ``last``: each symbol's latest accepted time (the per-symbol order), updated in place.
    """
    skipped = dict.fromkeys(("unknown_symbol", "not_a_number", "non_positive", "out_of_order"), 0)
    cov, index = engine._cov, engine._index
    tolerance = engine.config.estimator.max_out_of_order
    for ts, symbol, price in ticks:
        if symbol not in index:
            skipped["unknown_symbol"] += 1
        elif not (math.isfinite(ts) and math.isfinite(price)):
            skipped["not_a_number"] += 1
        elif price <= 0:
            skipped["non_positive"] += 1
        elif ts < last.get(symbol, -math.inf) - tolerance:
            skipped["out_of_order"] += 1
        else:
            last[symbol] = max(last.get(symbol, -math.inf), ts)
            engine._last_ts = max(engine._last_ts, ts)
            cov.update(index[symbol], engine._last_ts, math.log(price))
            engine._price[index[symbol]] = price
            engine.ticks += 1
    return skipped


@pytest.mark.parametrize("seed", range(6))
def test_batch_ingest_equals_the_rules_applied_tick_by_tick(
    make_config: Callable[..., Config], seed: int
) -> None:
    """Ordered clean batches (the short path) and messy ones give the per-tick result exactly.

    Messy batches mix unknown symbols, NaN and infinite values, non-positive prices, repeated
    symbols and ticks late within and beyond the tolerance.
    """
    rng = np.random.default_rng(seed)
    batched, reference = Engine(make_config()), Engine(make_config())
    counts = dict.fromkeys(("unknown_symbol", "not_a_number", "non_positive", "out_of_order"), 0)
    last: dict[str, float] = {}
    now = T0
    for _ in range(40):
        size = int(rng.integers(1, 30))
        ts = now + np.cumsum(rng.exponential(0.5, size))
        symbols = list(rng.choice(["AAA", "BBB", "CCC"], size))
        prices = 100.0 * np.exp(rng.normal(0.0, 0.01, size))
        if rng.random() < 0.5:  # a messy batch
            ts = ts + rng.choice([0.0, -3.0, -20.0], size, p=[0.8, 0.1, 0.1])
            symbols = [s if rng.random() > 0.1 else "ZZZ" for s in symbols]
            prices = np.where(rng.random(size) < 0.1, rng.choice([-1.0, 0.0, np.nan]), prices)
            ts = np.where(rng.random(size) < 0.05, np.inf, ts)
        now = float(ts[np.isfinite(ts)].max(initial=now))
        accepted = batched.ingest(ts, symbols, prices)
        before = reference.ticks
        for reason, n in _tick_by_tick(
            reference, list(zip(ts.tolist(), symbols, prices.tolist(), strict=True)), last
        ).items():
            counts[reason] += n
        assert accepted == reference.ticks - before
    a, b = batched.export_state(), reference.export_state()
    rejected = {reason: n for (_, reason), n in a.rejected.items()}
    assert (a.ticks, a.last_ts, rejected) == (
        b.ticks,
        b.last_ts,
        {k: v for k, v in counts.items() if v},
    )
    np.testing.assert_array_equal(a.price, b.price)
    for key, value in a.covariance.items():
        np.testing.assert_array_equal(value, b.covariance[key], err_msg=key)
