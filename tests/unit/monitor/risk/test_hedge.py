"""Minimum-variance hedges on covariances where the answer is known in closed form.

Expected figures are worked out here from the test's own covariance matrices (numpy solves on
the matrices the test builds), never read back from the code under test. Estimated figures
(through the engine's estimator on simulated markets) are held to the closed forms of the true
covariance within a few percent, the sampling error of the half-life.
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
from monitor.risk.hedge import MAX_CONDITION_INDEX, NO_DATA, minimum_variance
from monitor.risk.portfolio import PortfolioModel, PortfolioState
from monitor.risk.snapshot import HedgeRisk, PortfolioRisk
from monitor.risk.tails import normal_factors, student_t_factors

MakeConfig = Callable[..., Config]
DAY = 86_400.0

BOOK = """
[universe]
symbols = ["PPP", "HH1", "HH2"]

[estimator]
halflife = "{halflife}"
slow_halflife = "{slow}"
min_observations = 10
preaverage = "0s"

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "{distribution}"

[[portfolios]]
name = "book"
positions = [{positions}]
hedge_with = [{hedges}]
"""


def book_config(
    make_config: MakeConfig,
    positions: str = '{ symbol = "PPP", quantity = 1000 }',
    hedges: str = '"HH1"',
    distribution: str = "student-t",
    halflife: str = "1d",
    slow: str = "2d",
) -> Config:
    text = BOOK.format(
        positions=positions, hedges=hedges, distribution=distribution, halflife=halflife, slow=slow
    )
    return make_config(base=text)


def model_of(config: Config) -> PortfolioModel:
    index = {s: i for i, s in enumerate(config.tracked_symbols)}
    return PortfolioModel(config.portfolios[0], index, config.risk, config.estimator)


def risk_at(config: Config, cov_day: np.ndarray, price: np.ndarray) -> PortfolioRisk:
    """The portfolio's figures with a covariance of daily log returns (all symbols ready)."""
    n = len(price)
    state = PortfolioState(0.0, price, np.log(price), cov_day / DAY, np.ones(n, bool), None)
    return model_of(config).risk(state)


def covariance(sd: list[float], corr: list[list[float]]) -> np.ndarray:
    return np.outer(sd, sd) * np.array(corr)


def hedge_of(risk: PortfolioRisk) -> HedgeRisk:
    assert risk.hedge is not None
    return risk.hedge


PRICE = np.array([50.0, 2_000.0, 300.0])


# --- closed forms, exact covariance -----------------------------------------------------------


@pytest.mark.parametrize("rho", [-0.6, 0.3, 0.8, 0.95])
def test_one_instrument_is_minus_rho_sigma_p_over_sigma_h(
    make_config: MakeConfig, rho: float
) -> None:
    """h = -rho sigma_P / sigma_H (USD), VaR ratio sqrt(1 - rho^2), effectiveness rho^2."""
    config = book_config(make_config)
    sd_p, sd_h = 0.05, 0.03
    cov = covariance([sd_p, sd_h, 0.04], [[1, rho, 0], [rho, 1, 0], [0, 0, 1]])
    risk = risk_at(config, cov, PRICE)
    hedge = hedge_of(risk)
    exposure = 1000 * PRICE[0]
    (leg,) = hedge.legs
    expected_units = -rho * sd_p * exposure / sd_h / PRICE[1]
    assert leg.symbol == "HH1"
    assert leg.held == 0.0
    assert leg.quantity == pytest.approx(expected_units, rel=1e-12)
    assert leg.trade == pytest.approx(expected_units, rel=1e-12)
    assert leg.drift is None  # nothing held: no hedge to be stale
    assert hedge.drift is None
    assert hedge.effectiveness == pytest.approx(rho**2, rel=1e-10)
    assert hedge.condition_index == pytest.approx(1.0)
    assert hedge.reason is None
    for tail, book in zip(hedge.tails, risk.tails, strict=True):
        f = student_t_factors(tail.confidence, 4.0)
        assert tail.var == pytest.approx(book.var, rel=1e-12)  # the portfolio's own VaR
        assert tail.var == pytest.approx(f.var * sd_p * exposure, rel=1e-12)
        assert tail.cvar == pytest.approx(f.es * sd_p * exposure, rel=1e-12)
        assert tail.var_hedged is not None
        assert tail.var_hedged / tail.var == pytest.approx(math.sqrt(1 - rho**2), rel=1e-10)
        assert tail.cvar_hedged == pytest.approx(f.es * sd_p * exposure * math.sqrt(1 - rho**2))


def test_two_instruments_solve_the_normal_equations(make_config: MakeConfig) -> None:
    """h = -Sigma_HH^-1 Sigma_HP in units, and the hedged variance of the regression."""
    config = book_config(make_config, hedges='"HH1", "HH2"')
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.7, 0.5], [0.7, 1, 0.4], [0.5, 0.4, 1]])
    hedge = hedge_of(risk_at(config, cov, PRICE))
    e = np.array([1000 * PRICE[0], 0.0, 0.0])
    units = np.diag(PRICE[1:]) @ cov[1:, 1:] @ np.diag(PRICE[1:])  # per unit of each hedge
    cross = np.diag(PRICE[1:]) @ cov[1:, :] @ e
    expected = -np.linalg.solve(units, cross)
    assert [leg.quantity for leg in hedge.legs] == pytest.approx(expected, rel=1e-10)
    variance = float(e @ cov @ e)
    hedged = variance - float(cross @ np.linalg.solve(units, cross))
    assert hedge.effectiveness == pytest.approx(1 - hedged / variance, rel=1e-10)
    f = student_t_factors(0.99, 4.0)
    tail = hedge.tail(0.99)
    assert tail is not None
    assert tail.var_hedged == pytest.approx(f.var * math.sqrt(hedged), rel=1e-10)


def test_cornish_fisher_books_use_normal_multipliers_before_and_after(
    make_config: MakeConfig,
) -> None:
    """The book's estimated shape is not the hedged book's: both sides of the pair are normal."""
    config = book_config(make_config, distribution="cornish-fisher")
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.6, 0], [0.6, 1, 0], [0, 0, 1]])
    hedge = hedge_of(risk_at(config, cov, PRICE))
    for tail in hedge.tails:
        f = normal_factors(tail.confidence)
        assert tail.var == pytest.approx(f.var * 0.05 * 1000 * PRICE[0], rel=1e-12)
        assert tail.var_hedged == pytest.approx(f.var * 0.05 * 1000 * PRICE[0] * 0.8, rel=1e-10)


# --- what the book holds ----------------------------------------------------------------------


def test_a_held_hedge_counts_towards_the_quantity_and_drift_measures_it(
    make_config: MakeConfig,
) -> None:
    """Holding half the minimum-variance hedge: same quantity, trade the other half, drift 0.5."""
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]])
    bare = hedge_of(risk_at(book_config(make_config), cov, PRICE)).legs[0]
    assert bare.quantity is not None
    half = bare.quantity / 2
    positions = f'{{ symbol = "PPP", quantity = 1000 }}, {{ symbol = "HH1", quantity = {half!r} }}'
    held = hedge_of(risk_at(book_config(make_config, positions=positions), cov, PRICE))
    (leg,) = held.legs
    assert leg.held == pytest.approx(half)
    assert leg.quantity == pytest.approx(bare.quantity, rel=1e-12)
    assert leg.trade == pytest.approx(bare.quantity / 2, rel=1e-12)
    assert leg.drift == pytest.approx(0.5, rel=1e-12)
    assert held.drift == pytest.approx(0.5, rel=1e-12)
    # the current book already hedges part of its risk: the trade removes less of it
    assert held.effectiveness is not None
    assert bare.quantity < 0
    assert 0.0 < held.effectiveness < 0.8**2


def test_drift_of_two_instruments_is_usd_weighted(make_config: MakeConfig) -> None:
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.7, 0.5], [0.7, 1, 0.4], [0.5, 0.4, 1]])
    hedges = '"HH1", "HH2"'
    mv = hedge_of(risk_at(book_config(make_config, hedges=hedges), cov, PRICE))
    q1, q2 = (leg.quantity for leg in mv.legs)
    assert q1 is not None
    assert q2 is not None
    positions = (
        f'{{ symbol = "PPP", quantity = 1000 }}, {{ symbol = "HH2", quantity = {2 * q2!r} }}'
    )
    held = hedge_of(risk_at(book_config(make_config, positions, hedges), cov, PRICE))
    usd = np.array([q1 * PRICE[1], q2 * PRICE[2]])
    off = np.array([-q1 * PRICE[1], q2 * PRICE[2]])  # HH1 not held, HH2 held twice over
    assert held.drift == pytest.approx(np.linalg.norm(off) / np.linalg.norm(usd), rel=1e-10)
    assert held.legs[0].drift is None
    assert held.legs[1].drift == pytest.approx(1.0, rel=1e-10)


def test_a_book_holding_only_the_hedge_instrument_closes_it(make_config: MakeConfig) -> None:
    """Nothing else to hedge: hold 0, sell what is held, no risk left, drift undefined."""
    config = book_config(make_config, positions='{ symbol = "HH1", quantity = 4 }')
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]])
    risk = risk_at(config, cov, PRICE)
    hedge = hedge_of(risk)
    (leg,) = hedge.legs
    assert (leg.held, leg.quantity, leg.trade) == (4.0, 0.0, -4.0)
    assert leg.drift is None
    assert hedge.drift is None
    assert hedge.effectiveness == 1.0
    for tail, book in zip(hedge.tails, risk.tails, strict=True):
        assert tail.var == pytest.approx(book.var, rel=1e-12)
        assert tail.var_hedged == 0.0
        assert tail.cvar_hedged == 0.0


# --- degenerate inputs ------------------------------------------------------------------------


def assert_null(hedge: HedgeRisk) -> None:
    assert all(leg.quantity is None and leg.trade is None for leg in hedge.legs)
    assert all(leg.drift is None for leg in hedge.legs)
    assert all(t.var_hedged is None and t.cvar_hedged is None for t in hedge.tails)
    assert hedge.effectiveness is None
    assert hedge.drift is None
    assert hedge.reason


@pytest.mark.parametrize("rho", [1.0, 0.99999, -1.0])
def test_a_singular_sigma_hh_gives_null_figures(make_config: MakeConfig, rho: float) -> None:
    config = book_config(make_config, hedges='"HH1", "HH2"')
    cov = covariance([0.05, 0.03, 0.03], [[1, 0.7, 0.7 * rho], [0.7, 1, rho], [0.7 * rho, rho, 1]])
    hedge = hedge_of(risk_at(config, cov, PRICE))
    assert_null(hedge)
    assert hedge.reason is not None
    assert "ill-conditioned" in hedge.reason
    assert all(t.var is not None for t in hedge.tails)  # the book itself is known


def test_the_condition_index_limit_sits_at_belsleys_30(make_config: MakeConfig) -> None:
    """Two instruments: index sqrt((1 + rho) / (1 - rho)); 30 is at rho = 899/901."""
    config = book_config(make_config, hedges='"HH1", "HH2"')
    limit = (MAX_CONDITION_INDEX**2 - 1) / (MAX_CONDITION_INDEX**2 + 1)
    for rho, solved in ((limit - 1e-4, True), (limit + 1e-4, False)):
        cov = covariance([0.05, 0.03, 0.04], [[1, 0.7, 0.6], [0.7, 1, rho], [0.6, rho, 1]])
        hedge = hedge_of(risk_at(config, cov, PRICE))
        assert hedge.condition_index == pytest.approx(math.sqrt((1 + rho) / (1 - rho)))
        assert (hedge.legs[0].quantity is not None) is solved


def test_a_hedge_instrument_without_data_gives_null_figures(make_config: MakeConfig) -> None:
    """No price, or a covariance not ready: null hedge, the portfolio's own figures intact."""
    config = book_config(make_config)
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]])
    price = PRICE.copy()
    price[1] = math.nan
    no_price = risk_at(config, cov, price)
    assert_null(hedge_of(no_price))
    assert hedge_of(no_price).reason == NO_DATA
    assert no_price.tails[-1].var is not None
    ready = np.array([True, False, True])
    state = PortfolioState(0.0, PRICE, np.log(PRICE), cov / DAY, ready, None)
    not_ready = model_of(config).risk(state)
    assert_null(hedge_of(not_ready))
    assert not_ready.tails[-1].var is not None


def test_a_flat_hedge_instrument_gives_null_figures() -> None:
    cov = np.diag([0.05**2, 0.0])
    solution = minimum_variance(cov, np.array([1e4, 0.0]), np.array([1]), np.ones(1), np.zeros(1))
    assert solution.quantity is None
    assert solution.reason is not None
    assert solution.variance == pytest.approx(0.05**2 * 1e8)


# --- properties -------------------------------------------------------------------------------


def _random_problem(
    data: st.DataObject,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = data.draw(st.integers(2, 6))
    k = data.draw(st.integers(1, n - 1))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, n + 2)) * rng.uniform(0.01, 0.1, size=(n, 1))
    cov = factors @ factors.T / (n + 2)
    exposure = rng.normal(0.0, 1e4, n)
    hedge = rng.choice(n, k, replace=False).astype(np.int64)
    price = rng.uniform(0.01, 1e5, k)
    held = rng.normal(0.0, 1.0, k) * 1e4 / price
    return cov, exposure, hedge, price, held


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_hedge_minimises_variance_and_ignores_what_is_held(data: st.DataObject) -> None:
    """No other holding of the instruments has a lower variance; the held part only moves the
    trade; effectiveness stays in [0, 1]; the horizon's scale leaves the quantity unchanged."""
    cov, exposure, hedge, price, held = _random_problem(data)
    solution = minimum_variance(cov, exposure, hedge, price, held)
    if solution.quantity is None:
        assert solution.condition_index is not None
        assert solution.condition_index > MAX_CONDITION_INDEX
        return
    assert solution.variance is not None
    assert solution.variance_hedged is not None
    assert 0.0 <= solution.variance_hedged <= solution.variance
    rest = exposure.copy()
    rest[hedge] -= held * price
    best = rest.copy()
    best[hedge] += solution.quantity * price
    scale = float(np.abs(exposure).sum())
    rng = np.random.default_rng(0)
    for _ in range(5):
        other = best.copy()
        other[hedge] += rng.normal(0.0, 0.1 * scale, len(hedge))
        assert other @ cov @ other >= best @ cov @ best * (1 - 1e-9) - 1e-12 * scale**2
    unheld = minimum_variance(cov, rest, hedge, price, np.zeros_like(held))
    assert unheld.quantity is not None
    np.testing.assert_allclose(
        unheld.quantity * price, solution.quantity * price, atol=1e-6 * scale
    )
    scaled = minimum_variance(cov * 7.5, exposure, hedge, price, held)
    assert scaled.quantity is not None
    np.testing.assert_allclose(
        scaled.quantity * price, solution.quantity * price, atol=1e-6 * scale
    )


# --- through the engine's estimator, on simulated markets -------------------------------------


def simulate(cov_day: np.ndarray, days: float, step_s: float, seed: int) -> np.ndarray:
    """Log prices of synchronous candles with the given daily covariance (rows: candles)."""
    rng = np.random.default_rng(seed)
    steps = int(days * DAY / step_s)
    chol = np.linalg.cholesky(cov_day * step_s / DAY)
    returns = rng.standard_normal((steps, len(cov_day))) @ chol.T
    return np.log(PRICE[: len(cov_day)]) + np.cumsum(returns, axis=0)


def engine_hedge(config: Config, cov_day: np.ndarray, seed: int) -> tuple[HedgeRisk, np.ndarray]:
    """Feed 20 days of one-minute candles; the hedge and the last prices."""
    engine = Engine(config)
    step = 60.0
    logp = simulate(cov_day, 20.0, step, seed)
    n = len(cov_day)
    ts = 1.7e9 + step * np.repeat(np.arange(1, len(logp) + 1), n)
    symbols = np.tile(np.array(engine.symbols[:n]), len(logp))
    engine.ingest(ts, symbols, np.exp(logp).ravel())
    snap = engine.snapshot(float(ts[-1]))
    risk = snap.portfolio("book")
    assert risk is not None
    return hedge_of(risk), np.exp(logp[-1])


@pytest.mark.parametrize("rho", [0.5, 0.85])
def test_estimated_one_instrument_hedge_is_within_a_few_percent(
    make_config: MakeConfig, rho: float
) -> None:
    """20 days of minute candles, 10-day half-life: the closed form of the true covariance."""
    config = book_config(make_config, halflife="10d", slow="20d")
    sd_p, sd_h = 0.05, 0.03
    cov = covariance([sd_p, sd_h, 0.04], [[1, rho, 0.2], [rho, 1, 0.2], [0.2, 0.2, 1]])
    hedge, last = engine_hedge(config, cov, seed=7)
    (leg,) = hedge.legs
    expected = -rho * sd_p * 1000 * last[0] / sd_h / last[1]
    assert leg.quantity == pytest.approx(expected, rel=0.05)
    tail = hedge.tail(0.99)
    assert tail is not None
    assert tail.var is not None
    assert tail.var_hedged is not None
    assert tail.var_hedged / tail.var == pytest.approx(math.sqrt(1 - rho**2), rel=0.03)


def test_estimated_two_instrument_hedge_is_within_a_few_percent(make_config: MakeConfig) -> None:
    config = book_config(make_config, hedges='"HH1", "HH2"', halflife="10d", slow="20d")
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.7, 0.5], [0.7, 1, 0.4], [0.5, 0.4, 1]])
    hedge, last = engine_hedge(config, cov, seed=11)
    e = np.array([1000 * last[0], 0.0, 0.0])
    units = np.diag(last[1:]) @ cov[1:, 1:] @ np.diag(last[1:])
    expected = -np.linalg.solve(units, np.diag(last[1:]) @ cov[1:, :] @ e)
    quantities = [leg.quantity for leg in hedge.legs]
    assert quantities == pytest.approx(expected, rel=0.05)
    variance = float(e @ cov @ e)
    hedged = variance + float(expected @ (np.diag(last[1:]) @ cov[1:, :] @ e))
    assert hedge.effectiveness == pytest.approx(1 - hedged / variance, abs=0.02)


def test_identical_hedge_instruments_through_the_engine_give_null_figures(
    make_config: MakeConfig,
) -> None:
    """Two instruments with the same price path: estimated Sigma_HH is singular."""
    config = book_config(make_config, hedges='"HH1", "HH2"', halflife="10d", slow="20d")
    engine = Engine(config)
    logp = simulate(covariance([0.05, 0.03], [[1, 0.8], [0.8, 1]]), 2.0, 60.0, seed=3)
    logp = np.column_stack([logp[:, 0], logp[:, 1], logp[:, 1]])
    ts = 1.7e9 + 60.0 * np.repeat(np.arange(1, len(logp) + 1), 3)
    engine.ingest(ts, np.tile(np.array(engine.symbols), len(logp)), np.exp(logp).ravel())
    risk = engine.snapshot(float(ts[-1])).portfolio("book")
    assert risk is not None
    assert_null(hedge_of(risk))
    assert risk.tails[-1].var is not None


def test_a_hedge_instrument_that_never_ticks_leaves_the_portfolio_figures(
    make_config: MakeConfig,
) -> None:
    config = book_config(make_config)
    engine = Engine(config)
    logp = simulate(covariance([0.05, 0.04], [[1, 0.5], [0.5, 1]]), 1.0, 60.0, seed=5)
    ts = 1.7e9 + 60.0 * np.repeat(np.arange(1, len(logp) + 1), 2)
    symbols = np.tile(np.array(["PPP", "HH2"]), len(logp))
    engine.ingest(ts, symbols, np.exp(logp).ravel())
    risk = engine.snapshot(float(ts[-1])).portfolio("book")
    assert risk is not None
    assert risk.tails[-1].var is not None
    hedge = hedge_of(risk)
    assert_null(hedge)
    assert hedge.reason == NO_DATA


def test_a_restart_from_a_checkpoint_reports_the_same_hedge(make_config: MakeConfig) -> None:
    """The hedge is a function of the estimator state: restored, it reads the same figures."""
    config = book_config(make_config, hedges='"HH1", "HH2"')
    engine = Engine(config)
    cov = covariance([0.05, 0.03, 0.04], [[1, 0.7, 0.5], [0.7, 1, 0.4], [0.5, 0.4, 1]])
    logp = simulate(cov, 1.0, 60.0, seed=9)
    ts = 1.7e9 + 60.0 * np.repeat(np.arange(1, len(logp) + 1), 3)
    engine.ingest(ts, np.tile(np.array(engine.symbols), len(logp)), np.exp(logp).ravel())
    before = engine.snapshot(float(ts[-1])).portfolio("book")
    restored = Engine(config)
    restored.import_state(engine.export_state())
    after = restored.snapshot(float(ts[-1])).portfolio("book")
    assert before is not None
    assert after is not None
    assert before.hedge is not None
    assert before.hedge.legs[0].quantity is not None
    assert after.hedge == before.hedge
