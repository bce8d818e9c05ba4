"""The risk engine: ticks in, immutable snapshots out. Pure and synchronous.

Time enters only with the ticks and the snapshot times the caller asks for, so a replay and the
live daemon run the same code and a replay is deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config.book import AccountConfig, account_problems
from monitor.config.schema import Config
from monitor.errors import ConfigError
from monitor.estimation.correlation import (
    absorption_from_eigenvalues,
    average_correlation,
    bets_from_eigenvalues,
    eigenvalues,
    repair_correlation,
    turbulence,
)
from monitor.estimation.covariance import SECONDS_PER_YEAR
from monitor.estimation.estimators import make_estimator
from monitor.estimation.ewma import EwmaMoments, MomentsTuple
from monitor.estimation.volofvol import IvHistory, IvState
from monitor.guard import REASONS, TickGuard, Venues
from monitor.risk.account import AccountModel, MarketState
from monitor.risk.book import OptionMark
from monitor.risk.portfolio import PortfolioModel, PortfolioState
from monitor.risk.snapshot import MarketRisk, RiskSnapshot, frozen_array

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

FAST, SLOW = 0, 1


@dataclass(frozen=True, slots=True)
class _Previous:
    """What the last computed snapshot leaves for interval figures of the next one."""

    ts: float
    logp: FloatArray
    cov_rate: FloatArray  # repaired covariance per second, NaN where not ready


@dataclass(frozen=True, slots=True, eq=False)
class EngineState:
    """Everything an :class:`Engine` needs to continue exactly where another one stopped.

    The last snapshot is not part of it: an engine that imports a state computes its next
    snapshot afresh.

    Attributes:
        covariance: the estimator's arrays, as its ``state()`` returns them.
        price: last price per tracked symbol (NaN before its first tick).
        last_ts: latest accepted event time.
        ticks: accepted ticks.
        rejected: rejected ticks by (venue, reason).
        previous: (time, log prices, covariance per second) of the last computed snapshot.
        ar_moments: fast and slow moments of the absorption ratio.
        portfolio_moments: P&L shape and interval moments by portfolio name.
        iv_history: mark-IV history per option instrument
            (:class:`~monitor.estimation.volofvol.IvHistory`).
        symbol_ts: per symbol, the latest event time of an accepted tick (the reference of
            the per-symbol time order); None in checkpoints written before it was kept, which
            then take each symbol's last time in the estimator.
    """

    covariance: Mapping[str, npt.NDArray[Any]]
    price: FloatArray
    last_ts: float
    ticks: int
    rejected: Mapping[tuple[str, str], int]
    previous: tuple[float, FloatArray, FloatArray] | None
    ar_moments: tuple[MomentsTuple, MomentsTuple]
    portfolio_moments: Mapping[str, tuple[MomentsTuple, MomentsTuple]]
    iv_history: Mapping[str, IvState] = field(default_factory=dict)
    symbol_ts: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class ValidTicks:
    """Ticks that passed the stateless checks, as columns: what :meth:`Engine.apply` takes.

    Attributes:
        idx: symbol indices.
        ts: event times, finite.
        price: prices, finite and positive.
        venues: the venue of every tick (one string for all).
    """

    idx: IntArray
    ts: FloatArray
    price: FloatArray
    venues: Venues

    def __len__(self) -> int:
        return len(self.idx)

    def cut(self, start: int, end: int) -> ValidTicks:
        """The ticks from ``start`` to ``end`` (exclusive)."""
        venues = self.venues if isinstance(self.venues, str) else self.venues[start:end]
        return ValidTicks(self.idx[start:end], self.ts[start:end], self.price[start:end], venues)


class Engine:
    """Tick guard, estimators and snapshot assembly for one configuration.

    Args:
        config: validated configuration.
        compiled: use the numba kernel (default) or the pure-Python reference kernel.
    """

    def __init__(self, config: Config, *, compiled: bool = True) -> None:
        est = config.estimator
        self.config = config
        self.symbols: tuple[str, ...] = tuple(config.tracked_symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._translations: dict[tuple[str, ...], IntArray] = {}
        self._universe = np.array([self._index[s] for s in config.universe.symbols], np.int64)
        self._uu = np.ix_(self._universe, self._universe)
        self._cov = make_estimator(
            len(self.symbols),
            [est.halflife, est.slow_halflife],
            float(est.preaverage),
            compiled=compiled,
        )
        self._min_obs = est.min_observations
        self.guard = TickGuard(
            len(self.symbols), est.max_out_of_order, config.filter, compiled=compiled
        )
        self._sigma = np.full(len(self.symbols), np.nan)  # per sqrt(s), at the last snapshot
        self._price = np.full(len(self.symbols), np.nan)
        self._last_ts = -math.inf
        self.ticks = 0
        self._dirty = True
        self._last: RiskSnapshot | None = None
        self._previous: _Previous | None = None
        self._ar_fast = EwmaMoments(est.halflife)
        self._ar_slow = EwmaMoments(est.slow_halflife)
        self._iv = IvHistory(est.slow_halflife, est.min_observations)
        self._portfolios = [
            PortfolioModel(p, self._index, config.risk, est) for p in config.portfolios
        ]
        self._accounts: tuple[AccountModel, ...] = ()
        self._account_configs: tuple[AccountConfig, ...] = ()
        self.replace_accounts(config.accounts)
        self.marks: Callable[[], Mapping[str, OptionMark]] = dict

    @property
    def account_names(self) -> tuple[str, ...]:
        """Names of the accounts, in order."""
        return tuple(m.name for m in self._accounts)

    @property
    def accounts(self) -> tuple[AccountConfig, ...]:
        """The accounts in use (the config's, or the last replacement)."""
        return self._account_configs

    def replace_accounts(self, accounts: Sequence[AccountConfig]) -> None:
        """Swap in a new set of accounts at once; the estimators are not touched.

        Raises:
            ConfigError: an account is invalid or needs a symbol this engine does not track;
                nothing changes then.
        """
        names = [a.name for a in accounts]
        if len(set(names)) != len(names):
            raise ConfigError(f"accounts: duplicate names in {names}")
        for i, account in enumerate(accounts):
            for where, detail in account_problems(account):
                path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where)
                raise ConfigError(f"accounts[{i}]{path}: {detail}")
            needed = (*account.symbols(), *(account.hedge_with or ()))
            unknown = [s for s in needed if s not in self._index]
            if unknown:
                raise ConfigError(
                    f"accounts[{i}] ({account.name}): {', '.join(dict.fromkeys(unknown))} not "
                    "tracked; add it to the config's universe or an account, then reload"
                )
        cfg = self.config
        self._accounts = tuple(
            AccountModel(a, self.symbols, cfg.risk, cfg.stress) for a in accounts
        )
        self._account_configs = tuple(accounts)
        self._dirty = True

    @property
    def last_event_ts(self) -> float:
        """Latest accepted event time (-inf before the first tick)."""
        return self._last_ts

    def export_state(self) -> EngineState:
        """A copy of the estimator state, for checkpoints."""
        prev = self._previous
        return EngineState(
            covariance={k: _read_only(v) for k, v in self._cov.state().items()},
            price=frozen_array(self._price),
            last_ts=self._last_ts,
            ticks=self.ticks,
            rejected=dict(self.guard.rejected),
            previous=None
            if prev is None
            else (prev.ts, frozen_array(prev.logp), frozen_array(prev.cov_rate)),
            ar_moments=(self._ar_fast.to_tuple(), self._ar_slow.to_tuple()),
            portfolio_moments={m.name: m.export_state() for m in self._portfolios},
            iv_history=self._iv.export_state(),
            symbol_ts=frozen_array(self.guard.last_ts),
        )

    def import_state(self, state: EngineState) -> None:
        """Continue from ``state``, taken from an engine of the same configuration.

        Portfolios that ``state`` does not name keep their current moments.

        Raises:
            ValueError: an array's shape or dtype does not fit this engine; nothing changes.
        """
        n = len(self.symbols)
        arrays = [state.price] if state.previous is None else [state.price, *state.previous[1:]]
        if [a.shape for a in arrays] != [(n,), (n,), (n, n)][: len(arrays)]:
            raise ValueError(f"engine state arrays do not fit {n} symbols")
        if state.symbol_ts is not None and state.symbol_ts.shape != (n,):
            raise ValueError(f"engine state arrays do not fit {n} symbols")
        self._cov.load_state(state.covariance)
        self._price[:] = state.price
        self._last_ts, self.ticks = state.last_ts, state.ticks
        symbol_ts = self._cov.last_t if state.symbol_ts is None else state.symbol_ts
        with np.errstate(divide="ignore", invalid="ignore"):
            self.guard.reset(symbol_ts, np.log(self._price))
        self.guard.rejected = Counter(state.rejected)
        prev = state.previous
        self._previous = (
            None if prev is None else _Previous(prev[0], prev[1].copy(), prev[2].copy())
        )
        self._sigma = _sigma(self._previous, n)
        self._ar_fast = EwmaMoments.from_tuple(state.ar_moments[0])
        self._ar_slow = EwmaMoments.from_tuple(state.ar_moments[1])
        self._iv.import_state(state.iv_history)
        for model in self._portfolios:
            if model.name in state.portfolio_moments:
                model.import_state(state.portfolio_moments[model.name])
        self._dirty, self._last = True, None

    def on_tick(self, ts: float, symbol: str, price: float, venue: str = "replay") -> bool:
        """Apply one tick; returns whether it was applied now (a suspect is held, not applied)."""
        before = self.ticks
        self.ingest(np.array([ts]), [symbol], np.array([price]), venue)
        return self.ticks > before

    def ingest(
        self,
        ts: FloatArray,
        symbols: Sequence[str] | npt.NDArray[np.str_],
        prices: FloatArray,
        venues: Venues = "replay",
    ) -> int:
        """Check and apply a batch of ticks in order; returns how many were applied.

        :meth:`valid_ticks` then :meth:`apply`: the stateless checks, then the per-symbol time
        order and the bad-print filter (``monitor.guard``), every rejection counted by venue
        and reason.
        """
        valid = self.valid_ticks(ts, symbols, prices, venues)
        return self.apply(valid) if len(valid) else 0

    def valid_ticks(
        self,
        ts: FloatArray,
        symbols: Sequence[str] | npt.NDArray[np.str_],
        prices: FloatArray,
        venues: Venues = "replay",
    ) -> ValidTicks:
        """The ticks with a tracked symbol, finite time and price and a positive price.

        The others are counted by venue and reason (``unknown_symbol``, ``not_a_number``,
        ``non_positive``). These checks do not depend on the engine's state, so a caller may
        run them over a whole batch before cutting it (the snapshot clock does).
        """
        return self._valid(self._indices(symbols), ts, prices, venues)

    def valid_indexed(
        self,
        idx: IntArray,
        names: tuple[str, ...],
        ts: FloatArray,
        prices: FloatArray,
        venues: Venues = "replay",
    ) -> ValidTicks:
        """:meth:`valid_ticks` for ticks naming their symbols by index into ``names``.

        A reader that resolved the symbols already (a replay's files) saves the per-tick
        string lookups; ``names`` may be any symbol list (-1: a symbol not in it).
        """
        if names != self.symbols:
            idx = self._translation(names)[idx]
        return self._valid(np.asarray(idx, dtype=np.int64), ts, prices, venues)

    def _translation(self, names: tuple[str, ...]) -> IntArray:
        """This engine's index of each of ``names``, then -1 (so that index -1 maps to -1)."""
        table = self._translations.get(names)
        if table is None:
            get = self._index.get
            table = np.array([*(get(s, -1) for s in names), -1], dtype=np.int64)
            self._translations = {names: table}  # one list at a time: a replay has one
        return table

    def _valid(
        self, idx: IntArray, ts: FloatArray, prices: FloatArray, venues: Venues
    ) -> ValidTicks:
        ts = np.asarray(ts, dtype=np.float64)
        prices = np.asarray(prices, dtype=np.float64)
        valid = self.guard.validate(idx, ts, prices, venues)
        if valid is None:
            return ValidTicks(idx, ts, prices, venues)
        kept = np.flatnonzero(valid)
        venue_list = venues if isinstance(venues, str) else [venues[i] for i in kept.tolist()]
        return ValidTicks(idx[kept], ts[kept], prices[kept], venue_list)

    def apply(self, ticks: ValidTicks) -> int:
        """Pass valid ticks through the guard and update the estimators with what it admits.

        A tick older than its symbol's last accepted one by more than ``max_out_of_order`` is
        rejected; later ticks are applied at the running maximum event time, so a tick late
        against other symbols (a venue whose clock or feed lags) is applied at the latest time
        rather than refused. Returns how many ticks were applied.
        """
        admitted = self.guard.admit(ticks.idx, ticks.ts, ticks.price, ticks.venues, self._sigma)
        if not len(admitted):
            return 0
        eff_ts = np.maximum(np.maximum.accumulate(admitted.ts), self._last_ts)
        self._cov.update_many(admitted.idx, eff_ts, admitted.logp)
        # the last price of each symbol: ufunc.at applies repeated indices in order, which a
        # fancy-index assignment does not promise
        last = np.full(len(self._price), -1)
        np.maximum.at(last, admitted.idx, np.arange(len(admitted.idx)))
        seen = np.flatnonzero(last >= 0)
        self._price[seen] = admitted.price[last[seen]]
        self._last_ts = float(eff_ts[-1])
        self.ticks += len(admitted)
        self._dirty = True
        return len(admitted)

    @property
    def rejected(self) -> Mapping[tuple[str, str], int]:
        """Rejected ticks by (venue, reason)."""
        return self.guard.rejected

    def rejected_by_reason(self) -> dict[str, int]:
        """Rejected ticks by reason, every reason named (zero when none)."""
        out = dict.fromkeys(REASONS, 0)
        for (_, reason), count in self.guard.rejected.items():
            out[reason] = out.get(reason, 0) + count
        return out

    def _indices(self, symbols: Sequence[str] | npt.NDArray[np.str_]) -> IntArray:
        """Symbol indices, -1 for unknown symbols.

        ``map`` over the dict's own lookup runs in C; only a batch with an unknown symbol
        takes the slower path that maps it to -1.
        """
        try:
            return np.fromiter(
                map(self._index.__getitem__, symbols), dtype=np.int64, count=len(symbols)
            )
        except KeyError:
            get = self._index.get
            return np.fromiter((get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))

    def snapshot(self, ts: float) -> RiskSnapshot:
        """The consistent, immutable state at event time ``ts``.

        Without new ticks since the last snapshot, the figures are the last ones at the new
        time: interval figures (turbulence, the P&L moments) advance only with new data.
        """
        if self._cov.advance_to(ts):
            self._dirty = True
        if not self._dirty and self._last is not None:
            self._last = dataclasses.replace(self._last, ts=ts)
            return self._last
        snap = self._compute(ts)
        self._dirty = False
        self._last = snap
        return snap

    def _compute(self, ts: float) -> RiskSnapshot:
        fast, slow = self._cov.view(FAST), self._cov.view(SLOW)
        ready = self._ready_set(fast.count)
        corr_f, repaired = _correlation(fast.rate, ready)
        corr_s, _ = _correlation(slow.rate, ready)
        sd_f = _sd(fast.rate, ready)
        cov_rate = corr_f * np.outer(sd_f, sd_f)
        logp = self._cov.logp.copy()
        # interval figures (AR shift, turbulence, P&L moments) advance only with event time:
        # a snapshot at or before the previous one (e.g. right after a restore) re-reads them
        advance = self._previous is None or ts > self._previous.ts
        market = self._market(ts, ready, corr_f, corr_s, cov_rate, logp, advance)
        previous = self._previous_pair() if advance else None
        state = PortfolioState(ts, self._price, logp, cov_rate, ready, previous)
        portfolios = tuple(model.risk(state) for model in self._portfolios)
        marks = self.marks()
        if advance:
            self._iv.update(ts, marks)
        books = MarketState(ts, self._price, cov_rate, ready, marks, self._iv.annual_variance())
        accounts = tuple(model.risk(books) for model in self._accounts)
        if advance:
            self._previous = _Previous(ts, logp, cov_rate)
            self._sigma = _sigma(self._previous, len(self.symbols))
        return RiskSnapshot(
            ts=ts,
            symbols=self.symbols,
            universe=tuple(int(i) for i in self._universe),
            price=frozen_array(self._price),
            last_tick_ts=frozen_array(
                np.where(np.isfinite(self._cov.last_t), self._cov.last_t, np.nan)
            ),
            volatility=frozen_array(sd_f * math.sqrt(SECONDS_PER_YEAR)),
            volatility_slow=frozen_array(_sd(slow.rate, ready) * math.sqrt(SECONDS_PER_YEAR)),
            correlation=frozen_array(corr_f),
            correlation_slow=frozen_array(corr_s),
            covariance=frozen_array(cov_rate * SECONDS_PER_YEAR),
            repaired=repaired,
            market=market,
            portfolios=portfolios,
            ticks=self.ticks,
            accounts=accounts,
        )

    def _previous_pair(self) -> tuple[float, FloatArray, FloatArray] | None:
        prev = self._previous
        return None if prev is None else (prev.ts, prev.logp, prev.cov_rate)

    def _ready_set(self, count: npt.NDArray[np.int64]) -> BoolArray:
        """Largest simple subset of symbols whose variances and pairwise terms are all ready."""
        ready = np.diag(count) >= self._min_obs
        pair_ok = count >= self._min_obs
        while True:
            bad = ~pair_ok & ready[:, None] & ready[None, :]
            if not bad.any():
                return np.asarray(ready, dtype=np.bool_)
            ready[int(np.argmax(bad.sum(axis=1)))] = False

    def _market(
        self,
        ts: float,
        ready: BoolArray,
        corr_f: FloatArray,
        corr_s: FloatArray,
        cov_rate: FloatArray,
        logp: FloatArray,
        advance: bool = True,
    ) -> MarketRisk:
        u = self._universe
        if len(u) < 2 or not ready[u].all():
            return MarketRisk()
        sub_f, sub_s = corr_f[self._uu], corr_s[self._uu]
        vals_f, vals_s = eigenvalues(sub_f), eigenvalues(sub_s)
        ar = absorption_from_eigenvalues(vals_f)
        return MarketRisk(
            avg_correlation=average_correlation(sub_f),
            avg_correlation_slow=average_correlation(sub_s),
            absorption_ratio=ar,
            absorption_ratio_slow=absorption_from_eigenvalues(vals_s),
            absorption_ratio_shift=self._ar_shift(ts, ar, advance),
            effective_bets=bets_from_eigenvalues(vals_f),
            turbulence=self._turbulence(ts, logp) if advance else None,
        )

    def _ar_shift(self, ts: float, ar: float, advance: bool = True) -> float | None:
        """(short-horizon mean AR - long-horizon mean AR) / long-horizon sd of AR.

        Kritzman et al. use 15-day and 1-year windows of a daily AR; here the two windows are
        the estimator's half-lives, sampled at every snapshot with new data.
        """
        if advance:
            self._ar_fast.update(ts, ar)
            self._ar_slow.update(ts, ar)
        sd = self._ar_slow.std
        if self._ar_slow.count < self._min_obs or not sd > 0:
            return None
        return (self._ar_fast.mean - self._ar_slow.mean) / sd

    def _turbulence(self, ts: float, logp: FloatArray) -> float | None:
        prev = self._previous
        u = self._universe
        if prev is None or ts <= prev.ts:
            return None
        cov = prev.cov_rate[self._uu] * (ts - prev.ts)
        returns = logp[u] - prev.logp[u]
        if not (np.isfinite(cov).all() and np.isfinite(returns).all()):
            return None
        return turbulence(returns, cov)

    def counters(self) -> Mapping[str, int]:
        """Accepted ticks and rejected ticks by reason."""
        return {"accepted": self.ticks, **self.rejected_by_reason()}


def _sigma(previous: _Previous | None, n: int) -> FloatArray:
    """Volatility per square-root second of each symbol at the last snapshot (NaN: not ready).

    The bad-print filter reads it: it changes only at snapshots, so the filter's decisions do
    not depend on how the ticks between two snapshots were cut into batches.
    """
    if previous is None:
        return np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.diag(previous.cov_rate))


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


def _sd(rate: FloatArray, ready: BoolArray) -> FloatArray:
    """Standard deviation per second where ready, NaN elsewhere."""
    return np.where(ready, np.sqrt(np.abs(np.diag(rate))), np.nan)


def _correlation(rate: FloatArray, ready: BoolArray) -> tuple[FloatArray, bool]:
    """Repaired correlation over the ready symbols, NaN elsewhere."""
    n = rate.shape[0]
    out = np.full((n, n), np.nan)
    r = np.flatnonzero(ready)
    if len(r) == 0:
        return out, False
    sub = rate[np.ix_(r, r)]
    sd = np.sqrt(np.diag(sub))
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = sub / np.outer(sd, sd)
    raw = np.where(np.isfinite(raw), raw, 0.0)
    fixed, repaired = repair_correlation(raw)
    out[np.ix_(r, r)] = fixed
    return out, repaired
