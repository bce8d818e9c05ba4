"""Closed forms for the matrix measures and the tail multipliers, and repair properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from statsmodels.stats.correlation_tools import corr_nearest
from statsmodels.tools.sm_exceptions import IterationLimitWarning

from monitor.estimation.correlation import (
    absorption_ratio,
    average_correlation,
    effective_bets,
    repair_correlation,
)
from monitor.risk.tails import (
    cornish_fisher_factors,
    cornish_fisher_z,
    normal_density,
    normal_factors,
    normal_quantile,
    student_t_density,
    student_t_factors,
    student_t_quantile,
)
from tests.simulate import equicorrelation


@pytest.mark.parametrize(("n", "rho"), [(5, 0.0), (10, 0.3), (19, 0.7), (20, 0.95), (3, -0.2)])
def test_absorption_ratio_of_equicorrelated_matrix(n: int, rho: float) -> None:
    """AR_k = (1 + (n-1) rho + (k-1)(1-rho)) / n with k = ceil(n/5)."""
    k = math.ceil(n / 5)
    expected = (1 + (n - 1) * rho + (k - 1) * (1 - rho)) / n
    if rho < 0:  # the top eigenvalues are then the (1 - rho) ones
        expected = k * (1 - rho) / n
    assert absorption_ratio(equicorrelation(n, rho)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "rho"), [(4, 0.0), (10, 0.5), (19, 0.9)])
def test_average_correlation_and_effective_bets_of_equicorrelated_matrix(
    n: int, rho: float
) -> None:
    """Average is rho; effective bets is exp(entropy) of eigenvalues {1+(n-1)rho, 1-rho x n-1}."""
    corr = equicorrelation(n, rho)
    assert average_correlation(corr) == pytest.approx(rho, abs=1e-15)
    p = np.array([1 + (n - 1) * rho] + [1 - rho] * (n - 1)) / n
    p = p[p > 0]
    assert effective_bets(corr) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-10)
    assert effective_bets(np.eye(n)) == pytest.approx(n)


@pytest.mark.parametrize(("n", "rho"), [(2, 0.5), (10, 0.2), (19, 0.8)])
def test_diversification_ratio_of_equal_weights_equicorrelated(n: int, rho: float) -> None:
    """DR = sqrt(n / (1 + (n-1) rho)) for equal weights and equal vols."""
    sigma = 0.03
    cov = equicorrelation(n, rho) * sigma**2
    w = np.full(n, 1.0 / n)
    dr = (w @ np.sqrt(np.diag(cov))) / math.sqrt(w @ cov @ w)
    assert dr == pytest.approx(math.sqrt(n / (1 + (n - 1) * rho)), rel=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.975, 0.99, 0.999])
def test_normal_var_and_es_against_scipy(confidence: float) -> None:
    """z_a and phi(z_a)/(1-a), ES checked by integrating the normal tail."""
    f = normal_factors(confidence)
    assert f.var == pytest.approx(stats.norm.ppf(confidence), rel=1e-12)
    tail = stats.norm.expect(lambda x: x, lb=f.var) / (1 - confidence)
    assert f.es == pytest.approx(tail, rel=1e-8)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
@pytest.mark.parametrize("dof", [3.0, 4.0, 8.0, 30.0])
def test_student_t_var_and_es_against_scipy(confidence: float, dof: float) -> None:
    """Unit-variance Student-t quantile and tail mean from scipy's distribution."""
    f = student_t_factors(confidence, dof)
    scale = math.sqrt((dof - 2) / dof)
    dist = stats.t(dof, scale=scale)
    assert dist.var() == pytest.approx(1.0)
    assert f.var == pytest.approx(dist.ppf(confidence), rel=1e-10)
    tail = dist.expect(lambda x: x, lb=f.var) / (1 - confidence)
    assert f.es == pytest.approx(tail, rel=1e-7)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1e-6, 1 - 1e-6),
    st.floats(-40.0, 40.0),
    st.floats(2.0001, 1e4),
)
def test_quantiles_and_densities_are_scipy_stats_to_the_bit(p: float, x: float, dof: float) -> None:
    """Computed from scipy.special (scipy.stats costs half a second to import) as scipy.stats
    computes them: the very same floats, so no figure moves."""
    assert normal_quantile(p) == float(stats.norm.ppf(p))
    assert normal_density(x) == float(stats.norm.pdf(x))
    assert student_t_quantile(p, dof) == float(stats.t.ppf(p, dof))
    assert student_t_density(x, dof) == float(stats.t.pdf(x, dof))


def test_published_reference_values() -> None:
    """99%: normal 2.326348 / 2.665214; t(4) unit variance 2.649492 / 3.691510."""
    assert normal_factors(0.99).var == pytest.approx(2.326348, abs=1e-6)
    assert normal_factors(0.99).es == pytest.approx(2.665214, abs=1e-6)
    assert student_t_factors(0.99, 4).var == pytest.approx(2.649492, abs=1e-6)
    assert student_t_factors(0.99, 4).es == pytest.approx(3.691510, abs=1e-6)


@pytest.mark.parametrize(("skew", "kurt"), [(0.0, 0.0), (-0.8, 4.0), (0.5, 1.0)])
def test_cornish_fisher_es_equals_the_integral_of_the_expansion(skew: float, kurt: float) -> None:
    """Closed-form modified ES equals the numerical tail average of the CF quantile."""
    a = 0.99
    f = cornish_fisher_factors(a, skew, kurt)
    numeric, _ = integrate.quad(
        lambda u: cornish_fisher_z(stats.norm.ppf(u), skew, kurt), a, 1, limit=200
    )
    assert f.es == pytest.approx(numeric / (1 - a), rel=1e-8)
    if skew == kurt == 0.0:
        assert f.var == pytest.approx(normal_factors(a).var)
        assert f.es == pytest.approx(normal_factors(a).es)


def _noisy_correlation(n: int, seed: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (n, n))
    base = np.corrcoef(rng.standard_normal((n, n + 2)))
    m = np.clip(base + noise * (a + a.T) / 2, -1, 1)
    np.fill_diagonal(m, 1.0)
    return m


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 25),
    seed=st.integers(0, 2**32 - 1),
    noise=st.floats(0.0, 1.0),
)
def test_repaired_matrix_is_a_valid_correlation_matrix(n: int, seed: int, noise: float) -> None:
    """Symmetric, unit diagonal, entries in [-1, 1], eigenvalues >= 0 (to rounding)."""
    fixed, _ = repair_correlation(_noisy_correlation(n, seed, noise))
    np.testing.assert_array_equal(fixed, fixed.T)
    np.testing.assert_array_equal(np.diag(fixed), 1.0)
    assert (np.abs(fixed) <= 1.0).all()
    assert np.linalg.eigvalsh(fixed)[0] >= -1e-10


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 15), seed=st.integers(0, 2**32 - 1))
def test_valid_matrix_is_left_unchanged(n: int, seed: int) -> None:
    """A PSD correlation matrix needs no repair."""
    corr = _noisy_correlation(n, seed, 0.0)
    fixed, repaired = repair_correlation(corr)
    assert not repaired
    np.testing.assert_allclose(fixed, corr, atol=1e-15)


def _higham_to_convergence(sym: np.ndarray, iterations: int) -> np.ndarray:
    """Higham's alternating projections (statsmodels) run far past convergence: the reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IterationLimitWarning)
        return np.asarray(corr_nearest(sym, threshold=0.0, n_fact=iterations / sym.shape[0]))


def _assert_is_the_nearest(corr: np.ndarray, iterations: int) -> None:
    sym = 0.5 * (corr + corr.T)
    fixed, repaired = repair_correlation(corr)
    reference = _higham_to_convergence(sym, iterations)
    assert repaired
    assert np.linalg.norm(fixed - sym) <= np.linalg.norm(reference - sym) + 1e-9
    np.testing.assert_allclose(fixed, reference, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 25), seed=st.integers(0, 2**32 - 1), noise=st.floats(0.2, 1.0))
def test_repair_is_the_nearest_correlation_matrix(n: int, seed: int, noise: float) -> None:
    """The Newton repair finds the matrix Higham's projections converge to (it is unique).

    Same Frobenius distance to the input (not more than 1e-9 above) and the same entries to
    1e-7, against 2,000 alternating projections; a repair that only clipped eigenvalues would
    be farther away.
    """
    corr = _noisy_correlation(n, seed, noise)
    if np.linalg.eigvalsh(corr)[0] >= 0.0:
        return  # nothing to repair
    _assert_is_the_nearest(corr, 2000)


def test_repair_of_a_large_indefinite_matrix_is_the_nearest() -> None:
    """At 120 symbols with dozens of negative eigenvalues the repair is still the nearest."""
    corr = _noisy_correlation(120, 7, 0.4)
    assert (np.linalg.eigvalsh(corr) < 0).sum() > 20
    _assert_is_the_nearest(corr, 600)
