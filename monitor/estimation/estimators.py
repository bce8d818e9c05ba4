"""The covariance estimator a configuration asks for, behind one interface.

``[estimator] preaverage`` picks it: a positive block length selects the noise-robust
pre-averaged estimator (:mod:`monitor.estimation.preaveraged`, the default, for trade and mid
prices); ``0`` the tick-by-tick Hayashi-Yoshida estimator
(:mod:`monitor.estimation.covariance`, for noise-free prices such as marks and candles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from monitor.estimation.covariance import CovarianceView, EventTimeCovariance, reindex_state
from monitor.estimation.preaveraged import PreAveragedCovariance, reindex_preaveraged_state

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CovarianceEstimator(Protocol):
    """What the engine needs of an estimator."""

    @property
    def logp(self) -> FloatArray:
        """Last log price per symbol (NaN before its first tick)."""

    @property
    def last_t(self) -> FloatArray:
        """Time of each symbol's last tick (-inf before its first)."""

    def update_many(self, idx: IntArray, ts: FloatArray, log_prices: FloatArray) -> None:
        """Apply validated ticks in non-decreasing time order."""

    def advance_to(self, t: float) -> bool:
        """Let event time reach ``t`` without a tick; whether the estimate changed."""

    def view(self, horizon: int) -> CovarianceView:
        """Covariance rates per second of one horizon."""

    def state(self) -> dict[str, FloatArray | IntArray]:
        """Copies of every state array."""

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Overwrite the state with :meth:`state`'s arrays."""


def make_estimator(
    n_symbols: int, halflives_s: Sequence[float], preaverage_s: float, *, compiled: bool = True
) -> CovarianceEstimator:
    """The estimator for ``preaverage_s`` (0: Hayashi-Yoshida, > 0: pre-averaged blocks)."""
    if preaverage_s > 0:
        return PreAveragedCovariance(n_symbols, halflives_s, preaverage_s, compiled=compiled)
    return EventTimeCovariance(n_symbols, halflives_s, compiled=compiled)


def reindex_estimator_state(
    preaverage_s: float,
    saved: Mapping[str, npt.NDArray[Any]],
    cold: Mapping[str, npt.NDArray[Any]],
    old: IntArray,
    new: IntArray,
) -> dict[str, npt.NDArray[Any]]:
    """``saved`` (of the estimator ``preaverage_s`` selects) for another symbol list.

    Symbol ``old[k]`` of ``saved`` becomes ``new[k]``; ``cold`` is a fresh state of the new
    list, kept for symbols that ``new`` does not name.
    """
    if preaverage_s > 0:
        return reindex_preaveraged_state(saved, cold, old, new)
    return reindex_state(saved, cold, old, new)
