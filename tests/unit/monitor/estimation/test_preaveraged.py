"""The pre-averaged, noise-corrected block estimator against independent oracles."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.estimation.correlation import average_correlation, correlation_from_covariance
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.estimation.preaveraged import PreAveragedCovariance, reindex_preaveraged_state
from tests.conftest import BASE_TOML
from tests.noisy_market import NoisyMarket, bid_ask_market


def _brute_force(idx: np.ndarray, ts: np.ndarray, lp: np.ndarray, n: int, b: float, hl: float):
    """S, W and Q of one horizon straight from the definitions, tick lists and all.

    Blocks are ``(k b, (k+1) b]``. At every closed block, each symbol that ticked in it and
    before has the return ``mean(block) - mean(previous block with ticks)``, with its price
    coefficients. Pairs: two returns closing in the same block, and a return closing in a
    block with each other symbol's latest earlier return whose tick span overlaps it
    (``last tick of the earlier one's newer set > first tick of this one's older set``).
    ``K = sum c_a c_b min(t_a, t_b)``.
    """
    blocks = np.ceil(ts / b) - 1  # (k b, (k + 1) b]
    last_set: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    latest: dict[int, tuple[float, np.ndarray, np.ndarray, float, float]] = {}
    s, w, q = np.zeros((n, n)), np.zeros((n, n)), np.zeros(n)  # same-block pairs
    s1, w1 = np.zeros((n, n)), np.zeros((n, n))  # lagged pairs

    def kernel(tx, cx, ty, cy):  # type: ignore[no-untyped-def]
        return float(cx @ np.minimum(tx[:, None], ty[None, :]) @ cy)

    for blk in np.unique(blocks)[:-1]:  # the last block is still open
        weight = 2.0 ** ((blk + 1) * b / hl)
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
                rets[k] = (cur[1].mean() - prev[1].mean(), times, coef, prev[0][0], cur[0][-1])
                q[k] += weight * (1 / len(cur[0]) + 1 / len(prev[0]))
            last_set[k] = cur
        for x, (rx, tx, cx, first_x, _) in rets.items():
            for y, (ry, ty, cy, _, _) in rets.items():
                s[x, y] += weight * rx * ry
                w[x, y] += weight * kernel(tx, cx, ty, cy)
            for y, (ry, ty, cy, _, end_y) in latest.items():
                if y != x and end_y > first_x:
                    for a, c in ((x, y), (y, x)):
                        s1[a, c] += weight * rx * ry
                        w1[a, c] += weight * kernel(tx, cx, ty, cy)
        latest.update(rets)
    return s, w, q, s1, w1


def test_sums_equal_the_definition_on_a_small_asynchronous_example() -> None:
    """S and W of the kernel equal a brute-force evaluation of the definitions (1e-9)."""
    rng = np.random.default_rng(1)
    n, m, b, hl = 3, 400, 2.0, 1e9  # no decay within the sample: plain sums
    idx = rng.choice(n, m, p=[0.6, 0.3, 0.1]).astype(np.int64)
    ts = 100.0 + np.cumsum(rng.exponential(0.2, m))
    lp = 4.0 + np.cumsum(rng.normal(0, 0.001, m))
    est = PreAveragedCovariance(n, [hl], b, compiled=False)
    est.update_many(idx, ts, lp)
    s_ref, w_ref, q_ref, s1_ref, w1_ref = _brute_force(idx, ts, lp, n, b, hl)
    state = est.state()
    scale = 2.0 ** (-(state["clock"][2]) / hl)  # the kernel stores sums relative to its anchor
    upper = np.triu(np.ones((n, n), dtype=bool))
    np.testing.assert_allclose(state["s"][0][upper], (s_ref * scale)[upper], rtol=1e-9)
    np.testing.assert_allclose(state["wk"][0][upper], (w_ref * scale)[upper], rtol=1e-9)
    lower = np.tril(np.ones((n, n), dtype=bool), -1)  # lagged pairs below the diagonal
    np.testing.assert_allclose(state["s"][0][lower], (s1_ref * scale)[lower], rtol=1e-9)
    np.testing.assert_allclose(state["wk"][0][lower], (w1_ref * scale)[lower], rtol=1e-9)
    assert (w1_ref[lower] > 0).any()
    np.testing.assert_allclose(state["noise"][0, 0], q_ref * scale, rtol=1e-9)


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
    est.advance_to(times[-1])  # a snapshot at the last close includes it (blocks end on it)
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


def test_a_snapshot_at_a_candle_close_includes_that_candle(
    make_config: Callable[..., Config],
) -> None:
    """Candles replayed at their close times: each snapshot's covariance is the RiskMetrics
    recursion of the returns up to and including the candle closing at the snapshot's time
    (no block of lag)."""
    config = make_config(
        '[estimator]\nhalflife = "1h"\nslow_halflife = "6h"\nmin_observations = 2\n',
        base=BASE_TOML.replace('[estimator]\nhalflife = "10m"\nslow_halflife = "2h"\n'
                               "min_observations = 10\n", ""),
    )  # fmt: skip
    engine = Engine(config)
    rng = np.random.default_rng(4)
    n, steps, dt = len(engine.symbols), 40, 300.0
    logp = np.log(100.0) + np.cumsum(rng.normal(0, 0.003, (steps, n)), axis=0)
    rets = np.diff(logp, axis=0)
    lam = 2.0 ** (-dt / 3600.0)
    t0 = 1_738_540_800.0
    for step in range(steps):
        ts = np.full(n, t0 + dt * step)
        engine.ingest(ts, list(engine.symbols), np.exp(logp[step]))
        if step < 2:
            continue
        snap = engine.snapshot(t0 + dt * step)
        oracle = pd.Series(rets[:step, 0] ** 2).ewm(alpha=1 - lam, adjust=True).mean().iloc[-1]
        assert snap.covariance[0, 0] / SECONDS_PER_YEAR * dt == pytest.approx(oracle, rel=1e-9)


def test_symbols_that_never_share_a_block_still_get_a_correlation() -> None:
    """Two symbols updating every 10 s, 3 s apart, so never in the same 5 s block: their
    returns pair with each other's overlapping ones, and the correlation is the true one."""
    rng = np.random.default_rng(8)
    seconds, rho, sigma = 30_000, 0.6, 0.0003
    shocks = rng.standard_normal((seconds, 2)) @ np.linalg.cholesky([[1, rho], [rho, 1]]).T
    paths = np.cumsum(shocks * sigma, axis=0)  # correlated Brownian motions on a 1 s grid
    t0 = 1_700_000_000.0
    at_x = np.arange(0, seconds - 3, 10)
    ts = np.empty(2 * len(at_x))
    ts[0::2], ts[1::2] = t0 + at_x, t0 + at_x + 3.0
    lp = np.empty(2 * len(at_x))
    lp[0::2], lp[1::2] = paths[at_x, 0], paths[at_x + 3, 1]
    est = PreAveragedCovariance(2, [1e9], 5.0)
    est.update_many(np.tile(np.array([0, 1], dtype=np.int64), len(at_x)), ts, lp)
    view = est.view(0)
    assert view.count[0, 1] > len(at_x)  # every return of one pairs with two of the other
    corr = view.rate[0, 1] / math.sqrt(view.rate[0, 0] * view.rate[1, 1])
    assert corr == pytest.approx(rho, abs=0.05)
    assert view.rate[0, 0] == pytest.approx(sigma**2, rel=0.1)
