"""Full-revaluation Monte Carlo VaR and ES of a book with options, over the risk horizon.

Delta-gamma Cornish-Fisher breaks down at the skews hedged option books have, and leaves theta
and vega out; the VaR an account with options reports comes from here instead. For each of
``[risk] option_paths`` scenarios (drawn by :mod:`monitor.risk.montecarlo`):

- the risk symbols' prices move by the simulated log returns over the horizon, from the live
  (fast) repaired covariance;
- the implied volatility of every option on an underlying is multiplied by ``exp(y)``, that
  underlying's simulated log IV change (a parallel relative shift of its smile, as the stress
  grid's IV multipliers), correlated with its return by ``[risk] spot_vol_correlation``;
- the clock moves by the horizon (time decay): options reprice with their expiry nearer, and
  those expiring within the horizon are worth their intrinsic value at the simulated price.
  Simplification: such an option settles on the price at the end of the horizon, not at its
  expiry, which overstates its spread by the move between the two.

The book (:class:`~monitor.risk.book.Book`) revalues every scenario row in one vectorised pass, at
the marks' basis and IV; the loss of a path is the equity now minus the equity after it, and
VaR and ES are its empirical quantile and tail mean
(:func:`~monitor.risk.montecarlo.empirical_tails`: >= 0, monotone in confidence, ES >= VaR).

Vol-of-vol of an underlying: the square root of the mean annualised variance of log mark IV of
the book's options on it, where the engine has estimated it
(:mod:`monitor.estimation.volofvol`), else ``[risk] vol_of_vol``. The horizon standard
deviation of log IV is that times ``sqrt(h / 1y)``.

Accuracy and cost: with 8192 Sobol points the 99% VaR of the books in
``tests/unit/monitor/risk/test_optionvar.py`` is within 3% of an independent pseudo-random
Monte Carlo of 400,000 paths (a plain Monte Carlo with 8192 paths would have a standard error
of about 2% of the VaR); ``benchmarks/option_var.py`` measures the cost per account and snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from monitor.config.book import AccountConfig
from monitor.config.schema import RiskConfig
from monitor.risk.book import Book, OptionMark
from monitor.risk.montecarlo import (
    SEED,
    empirical_tails,
    simulate,
    standard_draws,
    student_t_mixing,
)
from monitor.risk.options import SECONDS_PER_YEAR
from monitor.risk.snapshot import TailRisk

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class OptionVar:
    """The Monte Carlo VaR of one account's book, compiled against its risk symbols.

    The scenario rows hold only the account's own symbols (its book is compiled against them),
    not the engine's whole universe: 8192 rows of 200 prices would be 13 MB a snapshot.

    Args:
        account: the account.
        symbols: the engine's tracked symbols, in order.
        risk_idx: engine columns of the account's risk symbols (every option's underlying
            among them), in the order of the horizon covariance passed to :meth:`tails`.
        risk: horizon, confidence levels, distribution, paths and IV-shock settings.
        seed: Sobol scrambling seed (others measure the Monte Carlo error).
    """

    def __init__(
        self,
        account: AccountConfig,
        symbols: Sequence[str],
        risk_idx: IntArray,
        risk: RiskConfig,
        seed: int = SEED,
    ) -> None:
        own = list(dict.fromkeys(account.symbols()))
        engine = {s: i for i, s in enumerate(symbols)}
        self._columns = np.array([engine[s] for s in own], dtype=np.int64)
        self._book = Book(account, {s: i for i, s in enumerate(own)})
        self._risk_cols = np.array([own.index(symbols[int(u)]) for u in risk_idx], np.int64)
        position = {int(u): j for j, u in enumerate(self._risk_cols)}
        self._option_col = np.array([position[int(u)] for u in self._book.option_index], np.int64)
        self._draws = standard_draws(risk.option_paths, 2 * len(risk_idx) + 1, seed)
        student = risk.distribution == "student-t"
        self._mix = student_t_mixing(self._draws, risk.dof) if student else None
        self._risk = risk

    def vol_of_vol(self, iv_variance: Mapping[str, float]) -> FloatArray:
        """Annualised vol-of-vol per risk symbol (the configured one where not estimated)."""
        out = np.full(len(self._risk_cols), self._risk.vol_of_vol)
        estimates: dict[int, list[float]] = {}
        for name, col in zip(self._book.option_names, self._option_col, strict=True):
            if name in iv_variance:
                estimates.setdefault(int(col), []).append(iv_variance[name])
        for col, values in estimates.items():
            out[col] = math.sqrt(max(sum(values) / len(values), 0.0))
        return out

    def tails(
        self,
        ts: float,
        price: FloatArray,
        cov_h: FloatArray,
        equity: float,
        marks: Mapping[str, OptionMark],
        iv_variance: Mapping[str, float],
    ) -> tuple[TailRisk, ...]:
        """VaR and ES per confidence level of the book's loss over the horizon.

        Args:
            ts: event time.
            price: last price of every engine symbol.
            cov_h: covariance of the risk symbols' log returns over the horizon.
            equity: the book's equity at ``price`` now (current IVs).
            marks: option marks by instrument.
            iv_variance: annualised variance of log mark IV by instrument, where estimated.
        """
        horizon = self._risk.horizon
        iv_sd = self.vol_of_vol(iv_variance) * math.sqrt(horizon / SECONDS_PER_YEAR)
        shocks = simulate(cov_h, iv_sd, self._risk.spot_vol_correlation, self._draws, self._mix)
        rows = np.repeat(price[None, self._columns], len(self._draws), axis=0)
        rows[:, self._risk_cols] *= np.exp(shocks.log_returns)
        mult = np.exp(shocks.log_iv[:, self._option_col])
        after = self._book.value(rows, mult, ts + horizon, marks).equity
        tails = empirical_tails(equity - after, self._risk.confidence)
        return tuple(
            TailRisk(level, var=var, cvar=es)
            for level, (var, es) in zip(self._risk.confidence, tails, strict=True)
        )
