"""The event-time Hayashi-Yoshida EWMA estimator against independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor.estimation.covariance import EventTimeCovariance


def _feed_synchronous(est: EventTimeCovariance, prices: np.ndarray, dt: float) -> None:
    t0 = 1_700_000_000.0
    for step in range(prices.shape[0]):
        for k in range(prices.shape[1]):
            est.update(k, t0 + step * dt, math.log(prices[step, k]))


@pytest.mark.parametrize("compiled", [True, False])
def test_synchronous_regular_data_equals_riskmetrics_recursion(compiled: bool) -> None:
    """On synchronous, regularly spaced data every entry is the RiskMetrics recursion.

    After 400 steps the seeded recursion (pandas adjust=False) has forgotten its start
    (0.84**400 ~ 1e-30), and so has the normalised one the estimator uses (adjust=True).
    """
    rng = np.random.default_rng(7)
    n, steps, dt, halflife = 4, 400, 300.0, 1200.0
    chol = np.linalg.cholesky(0.5 * np.eye(n) + 0.5)
    rets = rng.normal(0, 0.004, (steps, n)) @ chol.T
    prices = 100.0 * np.exp(np.vstack([np.zeros(n), np.cumsum(rets, axis=0)]))
    est = EventTimeCovariance(n, [halflife, 4 * halflife], compiled=compiled)
    _feed_synchronous(est, prices, dt)
    logret = np.diff(np.log(prices), axis=0)
    for h, hl in enumerate((halflife, 4 * halflife)):
        lam = 2.0 ** (-dt / hl)
        view = est.view(h)
        for i in range(n):
            for j in range(n):
                products = pd.Series(logret[:, i] * logret[:, j])
                # the seeded form only once its start has decayed below the tolerance
                for adjust in (False, True) if lam**steps < 1e-12 else (True,):
                    oracle = products.ewm(alpha=1 - lam, adjust=adjust).mean().iloc[-1]
                    assert view.rate[i, j] * dt == pytest.approx(oracle, rel=1e-10, abs=0)
        assert (view.count == steps).all()


def test_every_intermediate_step_matches_the_normalised_recursion() -> None:
    """At every step, from the first, the estimate is pandas' adjust=True EWMA."""
    rng = np.random.default_rng(3)
    dt, hl = 60.0, 600.0
    lam = 2.0 ** (-dt / hl)
    prices = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (60, 2)), axis=0))
    logret = np.diff(np.log(prices), axis=0)
    oracle = pd.Series(logret[:, 0] * logret[:, 1]).ewm(alpha=1 - lam, adjust=True).mean()
    est = EventTimeCovariance(2, [hl])
    t0 = 1e9
    for step in range(prices.shape[0]):
        est.update(0, t0 + step * dt, math.log(prices[step, 0]))
        est.update(1, t0 + step * dt, math.log(prices[step, 1]))
        if step:
            assert est.view(0).rate[0, 1] * dt == pytest.approx(oracle.iloc[step - 1], rel=1e-10)


def test_hayashi_yoshida_sum_on_a_hand_worked_asynchronous_example() -> None:
    """With a very long half-life the cross entry is the plain HY sum of overlapping intervals."""
    # X ticks at 0, 2, 5 ; Y ticks at 0, 1, 3, 4, 6
    x = {0: 0.0, 2: 0.1, 5: 0.3}
    y = {0: 0.0, 1: 0.05, 3: -0.02, 4: 0.04, 6: 0.10}
    events = sorted([(t, 0, v) for t, v in x.items()] + [(t, 1, v) for t, v in y.items()])
    est = EventTimeCovariance(2, [1e12], compiled=False)
    for t, k, v in events:
        est.update(k, float(t), v)
    # X intervals (0,2] dX=0.1 overlaps Y (0,1],(1,3] -> dY sum = y3 - y0 = -0.02
    #             (2,5] dX=0.2 overlaps Y (1,3],(3,4],(4,6] -> y6 - y1 = 0.05
    hy = 0.1 * (-0.02) + 0.2 * 0.05
    state = est.state()
    assert state["cnt"][0, 1] == 2
    # without decay the rate is the HY sum over the elapsed time (0, 6]
    assert est.view(0).rate[0, 1] * 6.0 == pytest.approx(hy, rel=1e-9)
    # realised variance of X, (0.1^2 + 0.2^2), is also a rate over the elapsed time (0, 6]
    assert est.view(0).rate[0, 0] * 6.0 == pytest.approx(0.1**2 + 0.2**2, rel=1e-9)


def test_compiled_kernel_equals_reference_kernel() -> None:
    """numba and pure-Python kernels agree to 1e-12 on random asynchronous ticks."""
    rng = np.random.default_rng(11)
    n, m = 6, 5000
    idx = rng.choice(n, m, p=np.array([20, 10, 5, 2, 1, 1]) / 39).astype(np.int64)
    ts = 1.7e9 + np.cumsum(rng.exponential(0.5, m))
    ts[100:110] = ts[100]  # simultaneous ticks
    lp = rng.normal(0, 0.01, m) + 4.0
    fast = EventTimeCovariance(n, [60.0, 3600.0], compiled=True)
    slow = EventTimeCovariance(n, [60.0, 3600.0], compiled=False)
    fast.update_many(idx, ts, lp)
    slow.update_many(idx, ts, lp)
    for key, value in fast.state().items():
        np.testing.assert_allclose(value, slow.state()[key], rtol=1e-12, atol=0, err_msg=key)


def test_lazy_decay_survives_months_of_event_time() -> None:
    """Rebasing keeps weights finite over far more than 256 half-lives."""
    est = EventTimeCovariance(2, [60.0])
    rng = np.random.default_rng(5)
    t = 0.0
    for _ in range(20000):
        t += 30.0
        est.update(0, t, float(rng.normal()))
        est.update(1, t, float(rng.normal()))
    rate = est.view(0).rate
    assert np.isfinite(rate).all()
    assert rate[0, 0] > 0
