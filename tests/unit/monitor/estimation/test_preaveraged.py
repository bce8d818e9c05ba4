"""The pre-averaged, noise-corrected block estimator against independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.estimation.correlation import average_correlation, correlation_from_covariance
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.estimation.preaveraged import (
    PreAveragedCovariance,
    _safely_inside,
    reindex_preaveraged_state,
)
from tests.noisy_market import NoisyMarket, bid_ask_market


def _brute_force(idx: np.ndarray, ts: np.ndarray, lp: np.ndarray, n: int, b: float, hl: float):
    """S, W and Q of one horizon straight from the definitions, tick lists and all.

    For every closed block, each symbol that ticked in it and before has the return
    ``mean(block) - mean(previous block with ticks)``; ``K = sum c_a c_b min(t_a, t_b)``.
    """
    blocks = np.floor(ts / b)
    last_set: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    s, w, q = np.zeros((n, n)), np.zeros((n, n)), np.zeros(n)
    closed = np.unique(blocks)[:-1]  # the last block is still open
    for blk in closed:
        rets = {}
        for k in range(n):
            sel = (blocks == blk) & (idx == k)
            if not sel.any():
                continue
            cur = (ts[sel], lp[sel])
            if k in last_set:
                prev = last_set[k]
                times = np.concatenate((prev[0], cur[0]))
                coef = np.concatenate(
                    (
                        np.full(len(prev[0]), -1 / len(prev[0])),
                        np.full(len(cur[0]), 1 / len(cur[0])),
                    )
                )
                rets[k] = (cur[1].mean() - prev[1].mean(), times, coef)
                q[k] += 2.0 ** ((blk + 1) * b / hl) * (1 / len(cur[0]) + 1 / len(prev[0]))
            last_set[k] = cur
        weight = 2.0 ** ((blk + 1) * b / hl)
        for x, (rx, tx, cx) in rets.items():
            for y, (ry, ty, cy) in rets.items():
                s[x, y] += weight * rx * ry
                w[x, y] += weight * float(cx @ np.minimum(tx[:, None], ty[None, :]) @ cy)
    return s, w, q


def test_sums_equal_the_definition_on_a_small_asynchronous_example() -> None:
    """S and W of the kernel equal a brute-force evaluation of the definitions (1e-9)."""
    rng = np.random.default_rng(1)
    n, m, b, hl = 3, 400, 2.0, 1e9  # no decay within the sample: plain sums
    idx = rng.choice(n, m, p=[0.6, 0.3, 0.1]).astype(np.int64)
    ts = 100.0 + np.cumsum(rng.exponential(0.2, m))
    lp = 4.0 + np.cumsum(rng.normal(0, 0.001, m))
    est = PreAveragedCovariance(n, [hl], b, compiled=False)
    est.update_many(idx, ts, lp)
    s_ref, w_ref, q_ref = _brute_force(idx, ts, lp, n, b, hl)
    state = est.state()
    scale = 2.0 ** (-(state["clock"][2]) / hl)  # the kernel stores sums relative to its anchor
    upper = np.triu(np.ones((n, n), dtype=bool))
    np.testing.assert_allclose(state["s"][0][upper], (s_ref * scale)[upper], rtol=1e-9)
    np.testing.assert_allclose(state["wk"][0][upper], (w_ref * scale)[upper], rtol=1e-9)
    np.testing.assert_allclose(state["q"][0], q_ref * scale, rtol=1e-9)


@pytest.mark.parametrize("compiled", [True, False])
def test_synchronous_data_a_block_or_more_apart_is_the_riskmetrics_recursion(
    compiled: bool,
) -> None:
    """Regular synchronous closes (candles): every entry is pandas' ewm(adjust=True)."""
    rng = np.random.default_rng(7)
    n, steps, dt, halflife = 4, 300, 60.0, 1200.0
    chol = np.linalg.cholesky(0.5 * np.eye(n) + 0.5)
    rets = rng.normal(0, 0.004, (steps, n)) @ chol.T
    logp = np.log(100.0) + np.vstack([np.zeros(n), np.cumsum(rets, axis=0)])
    est = PreAveragedCovariance(n, [halflife], 5.0, compiled=compiled)
    times = 1_700_000_000.0 + dt * np.arange(steps + 1)
    est.update_many(
        np.tile(np.arange(n, dtype=np.int64), steps + 1),
        np.repeat(times, n),
        logp.reshape(-1),
    )
    est.update(0, times[-1] + dt, float(logp[-1, 0]))  # closes the last step's block
    lam = 2.0 ** (-dt / halflife)
    view = est.view(0)
    for i in range(n):
        for j in range(n):
            products = pd.Series(rets[:, i] * rets[:, j])
            oracle = products.ewm(alpha=1 - lam, adjust=True).mean().iloc[-1]
            assert view.rate[i, j] * dt == pytest.approx(oracle, rel=1e-10, abs=0)
    assert (view.count == steps).all()


def test_compiled_kernel_equals_reference_kernel() -> None:
    """numba and pure-Python kernels agree to 1e-12 on noisy asynchronous ticks with gaps."""
    market = bid_ask_market(seed=5, duration_s=900.0)
    ts = market.ts.copy()
    ts[len(ts) // 2 :] += 7.3e6  # a gap of months: origin and anchors are rebased
    fast = PreAveragedCovariance(market.n, [60.0, 3600.0], 5.0, compiled=True)
    slow = PreAveragedCovariance(market.n, [60.0, 3600.0], 5.0, compiled=False)
    for est in (fast, slow):
        est.update_many(market.idx, ts, market.trade)
    for key, value in fast.state().items():
        np.testing.assert_allclose(value, slow.state()[key], rtol=1e-12, atol=0, err_msg=key)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**40),
    st.sampled_from([0.25, 1.0 / 3.0, 0.1, 5.0, 7.0, 30.0, 86400.0]),
    st.integers(-3, 3),
)
def test_a_tick_below_the_division_free_bound_is_in_the_open_block(
    block: int, b: float, ulps: int
) -> None:
    """The kernel skips ``floor(t / b)`` for ticks below ``_safely_inside``: any such tick,
    up to the last floats before the block's end, is in the open block by the division."""
    inside = _safely_inside(float(block), b)
    end = (block + 1) * b
    for t in (inside, math.nextafter(inside, -math.inf), end, end + ulps * math.ulp(end)):
        if t < inside:
            assert math.floor(t / b) <= block
    assert inside < end
    assert _safely_inside(math.nan, b) == -math.inf


@pytest.mark.parametrize("compiled", [True, False])
def test_ticks_on_block_edges_fall_in_the_blocks_of_the_definition(compiled: bool) -> None:
    """Ticks at, and one float either side of, 300 block ends (a block length that is not a
    binary fraction): S and W equal the brute-force definition, which divides every tick."""
    b, hl = 1.0 / 3.0, 1e9
    edges = (300 + np.arange(1, 300)) * b
    ts = np.sort(np.concatenate([np.nextafter(edges, 0), edges, np.nextafter(edges, np.inf)]))
    n = 3
    idx = (np.arange(len(ts)) * 7 % 5 % n).astype(np.int64)
    lp = 4.0 + 1e-3 * np.sin(np.arange(len(ts)))
    est = PreAveragedCovariance(n, [hl], b, compiled=compiled)
    est.update_many(idx, ts, lp)
    s_ref, w_ref, _ = _brute_force(idx, ts, lp, n, b, hl)
    state = est.state()
    assert state["clock"][0] == math.floor(ts[-1] / b)
    scale = 2.0 ** (-(state["clock"][2]) / hl)
    upper = np.triu(np.ones((n, n), dtype=bool))
    np.testing.assert_allclose(state["s"][0][upper], (s_ref * scale)[upper], rtol=1e-9)
    np.testing.assert_allclose(state["wk"][0][upper], (w_ref * scale)[upper], rtol=1e-9)


@pytest.fixture(scope="module")
def noisy() -> NoisyMarket:
    regime_s = 3 * 3600.0
    return bid_ask_market(
        seed=11, duration_s=2 * regime_s, regimes=((0.3, regime_s), (0.9, regime_s))
    )


def _read(market: NoisyMarket, prices: np.ndarray, until: float, block_s: float = 5.0):
    est = PreAveragedCovariance(market.n, [1200.0], block_s)
    sel = market.ts <= until
    est.update_many(market.idx[sel], market.ts[sel], prices[sel])
    rate = np.array(est.view(0).rate)
    vols = np.sqrt(np.diag(rate) * SECONDS_PER_YEAR)
    return average_correlation(correlation_from_covariance(rate)), vols


@pytest.mark.parametrize("kind", ["trade", "mid", "efficient"])
@pytest.mark.parametrize(("regime", "truth"), [(0, 0.30), (1, 0.90)])
def test_bid_ask_bounce_leaves_correlation_and_volatility_right(
    noisy: NoisyMarket, kind: str, regime: int, truth: float
) -> None:
    """Trades at the bid or ask of a one-tick spread (0.2-3.5 bp), 0.3-20 ticks/s, 20 min
    half-life: average correlation within 0.05 of the truth, every volatility within 10%."""
    until = noisy.ts[0] + (regime + 1) * 3 * 3600.0 - 30.0
    avg, vols = _read(noisy, getattr(noisy, kind), until)
    assert abs(avg - truth) < 0.05, (avg, truth)
    np.testing.assert_allclose(vols, noisy.vol_annual, rtol=0.10)


def test_a_gap_in_event_time_costs_one_block_close() -> None:
    """Ticks years apart close one block each; the state stays finite and small."""
    est = PreAveragedCovariance(2, [60.0], 5.0)
    t = 1.7e9
    for step in range(50):
        t += 3.0e7 if step % 10 == 0 else 1.0
        prices = np.array([math.log(100 + step), math.log(50 + step)])
        est.update_many(np.array([0, 1], dtype=np.int64), np.array([t, t]), prices)
    state = est.state()
    assert all(np.isfinite(v[np.isfinite(v) | ~np.isinf(v)]).all() for v in state.values())
    assert np.isfinite(est.view(0).rate).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.floats(0.0, 50.0), st.floats(-0.01, 0.01)),
        min_size=2,
        max_size=60,
    )
)
def test_variances_are_never_negative_whatever_the_ticks(
    ticks: list[tuple[int, float, float]],
) -> None:
    """Any ordered tick stream gives non-negative (or unknown) variances."""
    idx = np.array([k for k, _, _ in ticks], dtype=np.int64)
    ts = 1.0e9 + np.cumsum([dt for _, dt, _ in ticks])
    lp = 3.0 + np.cumsum([r for _, _, r in ticks])
    est = PreAveragedCovariance(3, [30.0, 600.0], 5.0, compiled=False)
    est.update_many(idx, ts, lp)
    for h in (0, 1):
        diag = np.diag(est.view(h).rate)
        assert not (diag < 0).any()


def test_state_reindexes_to_another_symbol_list() -> None:
    """A reload that adds a symbol keeps the common symbols' state exactly."""
    market = bid_ask_market(seed=3, duration_s=600.0)
    old = PreAveragedCovariance(market.n, [60.0], 5.0)
    old.update_many(market.idx, market.ts, market.trade)
    order = np.arange(market.n)[::-1]  # the new list reverses the old one and adds a symbol
    new = PreAveragedCovariance(market.n + 1, [60.0], 5.0)
    state = reindex_preaveraged_state(old.state(), new.state(), np.arange(market.n), order + 1)
    new.load_state(state)
    a, b = np.array(old.view(0).rate), np.array(new.view(0).rate)
    np.testing.assert_allclose(b[np.ix_(order + 1, order + 1)], a, rtol=1e-12)
    assert np.isnan(b[0]).all()
