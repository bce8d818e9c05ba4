"""The bias an estimator leaves on a simulated pair of symbols quoted like a recorded stream.

Both symbols tick at the stream's quote rate, on the instrument's tick (in bp of a price of
100), seen through a one-tick bid-ask book (``tests/noisy_market.bid_ask_market``): a trade
stream reads the bid or the ask, a mid stream the mid of the same book. Their efficient log
prices are Brownian motions with volatility ``VOL_ANNUAL`` and correlation ``RHO``; the
estimators read the ticks with a ``HALFLIFE_S`` half-life and are scored at the end.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks.recorded_streams import noise
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.estimation.estimators import make_estimator
from tests.noisy_market import NoisyMarket, bid_ask_market

VOL_ANNUAL = 0.60  # assumed: a typical crypto volatility
RHO = 0.6
HALFLIFE_S = 1200.0
ESTIMATORS = {"5s": 5.0, "HY": 0.0}  # [estimator] preaverage: the default, and tick by tick

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Bias:
    """Errors over the seeds of one estimator on one stream's simulated pair.

    Attributes:
        vol_pct: mean of estimated / true volatility - 1, in percent (both symbols).
        vol_rmse_pct: root mean square of the same errors, in percent.
        corr: mean of estimated - true correlation.
        corr_rmse: root mean square of the correlation errors (bias and dispersion).
        noise_bp: per-tick noise std of the simulated quotes, measured as on the recordings.
        zero_share: share of zero returns in the simulated quotes.
        unestimated: markets where the estimator gave no correlation (too few ticks).
    """

    vol_pct: float
    vol_rmse_pct: float
    corr: float
    corr_rmse: float
    noise_bp: float | None
    zero_share: float | None
    unestimated: int


def pair_market(rate_hz: float, tick_bp: float, seed: int, duration_s: float) -> NoisyMarket:
    """Two symbols quoted at ``rate_hz`` on a ``tick_bp`` grid, correlation RHO."""
    return bid_ask_market(
        seed=seed,
        duration_s=duration_s,
        regimes=[(RHO, duration_s)],
        rates_hz=(rate_hz, rate_hz),
        tick_bp=(tick_bp, tick_bp),
        vols=(VOL_ANNUAL, VOL_ANNUAL),
    )


def score(
    m: NoisyMarket, log_prices: FloatArray, preaverage_s: float, end: float
) -> tuple[float, float, float]:
    """(volatility error of symbol 0, of symbol 1, correlation error) at ``end``."""
    est = make_estimator(2, [HALFLIFE_S], preaverage_s)
    est.update_many(m.idx, m.ts, log_prices)
    est.advance_to(end)
    rate = np.asarray(est.view(0).rate)
    vols = np.sqrt(np.diag(rate) * SECONDS_PER_YEAR)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN where nothing was estimated
        corr = float(rate[0, 1] / np.sqrt(rate[0, 0] * rate[1, 1]))
    return float(vols[0] / VOL_ANNUAL - 1.0), float(vols[1] / VOL_ANNUAL - 1.0), corr - RHO


def simulate(
    rate_hz: float, tick_bp: float, kind: str, seeds: int, duration_s: float
) -> dict[str, Bias]:
    """Mean biases of each estimator (``ESTIMATORS``) over ``seeds`` simulated pairs."""
    errors: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ESTIMATORS}
    noise_seen: list[tuple[float | None, float | None]] = []
    for seed in range(seeds):
        m = pair_market(rate_hz, tick_bp, seed, duration_s)
        log_prices = m.trade if kind == "trade" else m.mid
        end = float(m.ts[0]) + duration_s
        for name, block in ESTIMATORS.items():
            errors[name].append(score(m, log_prices, block, end))
        noise_bp, zero_share, _ = noise(np.exp(log_prices[m.idx == 0]).tolist())
        noise_seen.append((noise_bp, zero_share))
    return {name: _summary(values, noise_seen) for name, values in errors.items()}


def _summary(
    values: list[tuple[float, float, float]], noise_seen: list[tuple[float | None, float | None]]
) -> Bias:
    vols = np.array([v for a, b, _ in values for v in (a, b) if math.isfinite(v)])
    corrs = np.array([c for _, _, c in values if math.isfinite(c)])
    noises = [n for n, _ in noise_seen if n is not None]
    zeros = [z for _, z in noise_seen if z is not None]
    return Bias(
        vol_pct=100.0 * _mean(vols),
        vol_rmse_pct=100.0 * math.sqrt(_mean(vols**2)),
        corr=_mean(corrs),
        corr_rmse=math.sqrt(_mean(corrs**2)),
        noise_bp=statistics.fmean(noises) if noises else None,
        zero_share=statistics.fmean(zeros) if zeros else None,
        unestimated=len(values) - len(corrs),
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan
