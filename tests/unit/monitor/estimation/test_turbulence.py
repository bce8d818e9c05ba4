"""Turbulence is a distance: chi-square on Gaussian data, never negative, None when unresolved."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.config.loading import load_config
from monitor.engine import Engine
from monitor.estimation.correlation import (
    TURBULENCE_EIGEN_FLOOR,
    repair_correlation,
    turbulence,
)
from tests.simulate import equicorrelation, simulate_regimes


def _covariance(n: int, rho: float, seed: int) -> np.ndarray:
    """Equicorrelated covariance with volatilities spread over three orders of magnitude."""
    sd = np.geomspace(1e-4, 1e-1, n)[np.random.default_rng(seed).permutation(n)]
    return np.asarray(equicorrelation(n, rho) * np.outer(sd, sd))


@pytest.mark.parametrize(("n", "rho"), [(8, 0.6), (19, 0.9), (3, 0.0)])
def test_turbulence_of_gaussian_returns_is_chi_square_with_n_dof(n: int, rho: float) -> None:
    """Draws from the covariance itself: median near the chi-square median, mean N, KS test."""
    cov = _covariance(n, rho, seed=n)
    draws = np.random.default_rng(n).multivariate_normal(np.zeros(n), cov, size=20_000)
    values = np.array([turbulence(r, cov) for r in draws], dtype=float)
    assert np.median(values) == pytest.approx(stats.chi2.median(n), rel=0.04)
    assert values.mean() == pytest.approx(n, rel=0.03)
    assert stats.kstest(values, "chi2", args=(n,)).pvalue > 0.001


def test_turbulence_does_not_depend_on_the_units_of_each_asset() -> None:
    cov = _covariance(6, 0.5, seed=1)
    r = np.random.default_rng(1).multivariate_normal(np.zeros(6), cov)
    scale = np.array([1.0, 1e3, 1e-3, 7.0, 0.5, 1e5])
    value = turbulence(r, cov)
    assert value is not None
    assert turbulence(r * scale, cov * np.outer(scale, scale)) == pytest.approx(value, rel=1e-9)


def test_a_duplicate_asset_adds_nothing_when_it_moves_with_its_twin() -> None:
    """Singular covariance (asset 4 = asset 0): the floored direction carries no return."""
    cov = _covariance(4, 0.3, seed=2)
    r = np.random.default_rng(2).multivariate_normal(np.zeros(4), cov)
    twin = np.zeros((5, 4))
    twin[:4] = np.eye(4)
    twin[4, 0] = 1.0
    expected = turbulence(r, cov)
    assert expected is not None
    assert turbulence(twin @ r, twin @ cov @ twin.T) == pytest.approx(expected, rel=1e-9)


def test_turbulence_is_none_when_the_matrix_resolves_too_few_directions() -> None:
    """Rank one (every correlation 1), a zero variance, or NaN: nothing can be said."""
    sd = np.array([0.01, 0.02, 0.03, 0.04])
    r = np.array([0.01, -0.02, 0.03, 0.0])
    assert turbulence(r, np.outer(sd, sd)) is None
    cov = np.diag(sd**2)
    cov[2, 2] = 0.0
    assert turbulence(r, cov) is None
    assert turbulence(np.array([np.nan, 0.0, 0.0, 0.0]), np.diag(sd**2)) is None
    assert turbulence(r, np.diag(sd**2)) == pytest.approx(float(np.sum((r / sd) ** 2)))


@st.composite
def near_singular(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A repaired noisy low-rank correlation estimate, scaled, and an arbitrary return vector."""
    n = draw(st.integers(2, 12))
    rank = draw(st.integers(1, n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n, rank))
    corr = factors @ factors.T
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    noise = draw(st.floats(0.0, 0.5))
    bump = rng.uniform(-noise, noise, (n, n))
    fixed, _ = repair_correlation(corr + 0.5 * (bump + bump.T))
    sd = 10.0 ** rng.uniform(-6, 1, n)
    big = draw(st.floats(1e-8, 1e3))
    return rng.standard_normal(n) * sd * big, fixed * np.outer(sd, sd)


@settings(max_examples=300, deadline=None)
@given(near_singular())
def test_turbulence_of_near_singular_inputs_is_never_negative(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    returns, cov = case
    value = turbulence(returns, cov)
    assert value is None or (math.isfinite(value) and value >= 0.0)
    if value is not None:  # bounded by the floor: no division by rounding noise
        z = returns / np.sqrt(np.diag(cov))
        assert value <= float(z @ z) / TURBULENCE_EIGEN_FLOOR * (1 + 1e-9)


def test_engine_turbulence_on_asynchronous_ticks_is_never_negative(tmp_path: Path) -> None:
    """The issue's case: 8 assets ticking 0.3 to 20 a second, correlation 0.9, repairs happen.

    Before, ``np.linalg.solve`` on the repaired (singular) covariance gave values to -1e17.
    """
    symbols = [f"S{i}" for i in range(8)]
    path = tmp_path / "riskmon.toml"
    path.write_text(
        f"""
[universe]
symbols = {symbols!r}
[estimator]
halflife = "20m"
slow_halflife = "2h"
min_observations = 30
[risk]
confidence = [0.99]
""".replace("'", '"')
    )
    engine = Engine(load_config(path, environ={}))
    ticks = simulate_regimes([0.3, 0.5, 1, 2, 5, 10, 15, 20], 0.6, [(2400.0, 0.9)], seed=3)
    names = np.array(symbols)[ticks.idx]
    ends = np.searchsorted(ticks.ts, np.arange(ticks.ts[0] + 10.0, ticks.ts[-1], 10.0))
    values, repaired = [], 0
    for start, end in zip(np.concatenate(([0], ends[:-1])), ends, strict=True):
        engine.ingest(ticks.ts[start:end], names[start:end], np.exp(ticks.logp[start:end]))
        snap = engine.snapshot(float(ticks.ts[end - 1]))
        if snap.market.turbulence is not None:
            values.append(snap.market.turbulence)
            repaired += snap.repaired
    assert repaired > 20  # the case that went negative is exercised
    assert len(values) > 150
    assert min(values) >= 0.0
