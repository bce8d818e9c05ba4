"""Portfolio figures on hand-built covariances where closed forms are known."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.risk.portfolio import PortfolioModel, PortfolioState
from monitor.risk.tails import normal_factors, student_t_factors
from tests.simulate import equicorrelation

EQUAL_BOOK = """
[universe]
symbols = ["S0", "S1", "S2", "S3", "S4"]

[estimator]
min_observations = 5

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "{distribution}"

[[portfolios]]
name = "equal"
positions = [
  {{ symbol = "S0", quantity = 10 }}, {{ symbol = "S1", quantity = 10 }},
  {{ symbol = "S2", quantity = 10 }}, {{ symbol = "S3", quantity = 10 }},
  {{ symbol = "S4", quantity = 10 }},
]
"""


def _state(n: int, rho: float, sigma_s: float, price: float) -> PortfolioState:
    cov = equicorrelation(n, rho) * sigma_s**2
    prices = np.full(n, price)
    return PortfolioState(0.0, prices, np.log(prices), cov, np.ones(n, dtype=bool), None)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("distribution", ["normal", "student-t"])
def test_equal_book_on_equicorrelated_market(
    make_config: Callable[..., Config], rho: float, distribution: str
) -> None:
    """DR = sqrt(n / (1 + (n-1) rho)); benefit = 1 - 1/DR; VaR, CVaR and components."""
    config = make_config(base=EQUAL_BOOK.format(distribution=distribution))
    index = {s: i for i, s in enumerate(config.tracked_symbols)}
    model = PortfolioModel(config.portfolios[0], index, config.risk, config.estimator)
    n, sigma_s, price = 5, 1e-4, 100.0
    risk = model.risk(_state(n, rho, sigma_s, price))
    dr = math.sqrt(n / (1 + (n - 1) * rho))
    assert risk.value == pytest.approx(n * 10 * price)
    assert risk.diversification_ratio == pytest.approx(dr, rel=1e-12)
    assert risk.diversification_benefit == pytest.approx(1 - 1 / dr, rel=1e-12)
    sigma_year = sigma_s * math.sqrt(SECONDS_PER_YEAR)
    assert risk.volatility == pytest.approx(sigma_year / dr, rel=1e-12)
    sigma_day = 10 * price * sigma_s * math.sqrt(86400 * (n + n * (n - 1) * rho))
    for tail in risk.tails:
        f = (
            normal_factors(tail.confidence)
            if distribution == "normal"
            else student_t_factors(tail.confidence, 4.0)
        )
        assert tail.var == pytest.approx(f.var * sigma_day, rel=1e-12)
        assert tail.cvar == pytest.approx(f.es * sigma_day, rel=1e-12)
        assert tail.stressed_var == pytest.approx(f.var * sigma_day * dr, rel=1e-12)
        assert tail.component_var == pytest.approx([tail.var / n] * n, rel=1e-12)


def test_cornish_fisher_is_null_until_the_shape_is_estimated(
    make_config: Callable[..., Config],
) -> None:
    """Without enough snapshot intervals the CF figures are not ready."""
    config = make_config(base=EQUAL_BOOK.format(distribution="cornish-fisher"))
    index = {s: i for i, s in enumerate(config.tracked_symbols)}
    model = PortfolioModel(config.portfolios[0], index, config.risk, config.estimator)
    risk = model.risk(_state(5, 0.5, 1e-4, 100.0))
    assert risk.value is not None
    assert risk.diversification_ratio is not None
    assert all(t.var is None and t.cvar is None for t in risk.tails)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # the fixture only writes an immutable config file
@given(
    seed=st.integers(0, 2**32 - 1),
    rates=st.lists(st.floats(0.05, 5.0), min_size=3, max_size=3),
)
def test_engine_correlation_is_always_a_valid_matrix(
    make_config: Callable[..., Config], seed: int, rates: list[float]
) -> None:
    """Random asynchronous streams: symmetric, unit diagonal, PSD, entries in [-1, 1]."""
    engine = Engine(make_config())
    rng = np.random.default_rng(seed)
    total = 400.0
    times = [np.sort(rng.uniform(0, total, rng.poisson(r * total) + 12)) for r in rates]
    ts = np.concatenate(times)
    idx = np.concatenate([np.full(len(t), k) for k, t in enumerate(times)])
    order = np.argsort(ts, kind="stable")
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(ts))))
    engine.ingest(1e9 + ts[order], [engine.symbols[i] for i in idx[order]], prices)
    corr = engine.snapshot(1e9 + total).correlation
    ready = ~np.isnan(np.diag(corr))
    sub = corr[np.ix_(ready, ready)]
    np.testing.assert_array_equal(sub, sub.T)
    np.testing.assert_array_equal(np.diag(sub), 1.0)
    assert (np.abs(sub) <= 1).all()
    if sub.size:
        assert np.linalg.eigvalsh(sub)[0] >= -1e-10
