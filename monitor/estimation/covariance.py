"""Event-time EWMA covariance for asynchronous ticks, without the Epps effect.

Method
------
Returns are log-price changes between consecutive ticks of one symbol. Two symbols that tick at
different times never share a return interval, so the product of "previous-tick" returns sampled
on a fixed clock shrinks toward zero as the sampling gets finer (the Epps effect). We use the
Hayashi-Yoshida estimator instead (T. Hayashi and N. Yoshida, "On covariance estimation of
non-synchronously observed diffusion processes", Bernoulli 11(2), 2005): the covariance of X and Y
is the sum of ``dX(I) * dY(J)`` over every pair of return intervals ``I`` of X and ``J`` of Y that
overlap. Summed per interval of X this telescopes:

    HY = sum_i dX(I_i) * [ Y(first Y tick >= end(I_i)) - Y(last Y tick <= start(I_i)) ]

so each X interval is finalised as soon as Y ticks at or after its end. Online, for every pair
(i < j) we keep the pending X-intervals of i that wait for j's next tick as two running sums
(``sum dX`` and ``sum dX * Y_start``); j's next tick finalises them in O(1). One tick of a symbol
therefore costs O(N). On synchronous data HY reduces to the ordinary product of returns, and the
recursion below is exactly RiskMetrics (1996).

Event-time exponential weighting
--------------------------------
Every term (a squared return, or a finalised HY cross product) is weighted by
``2 ** (-(now - t_term) / H)`` for a half-life ``H`` in seconds. A variance *rate* is
``S / T`` where ``T`` is the equally weighted elapsed time, ``T <- d * T + dt`` with
``d = 2 ** (-dt / H)``, both started at zero when the entry receives its first term. Decay is
applied lazily: terms are stored multiplied by ``2 ** ((t - anchor) / H)``, the ratio ``S / T``
needs no rescaling, and all state is rebased when the exponent grows large.

On regularly spaced synchronous data ``S / T * dt`` is the RiskMetrics recursion normalised by
the sum of its weights, i.e. exactly ``pandas.Series.ewm(alpha=1 - d, adjust=True).mean()`` of
the return products, and it equals the recursion seeded with the first outer product
(``adjust=False``) once the start has decayed (after k steps the two differ by a factor
``d ** k``). We do not seed: in event time the seed would give the first return, perhaps over
a 0.1 s interval, the weight of ``H / (0.1 s * ln 2)`` returns, and a single noisy product
would set the correlation for several half-lives.

Limits: the estimator is zero-mean (RiskMetrics). Under a strong common trend the HY cross
terms, which span the union of overlapping intervals, pick up more of the trend than the
variance terms of the slower symbol's intervals do, and the correlation reads high (the PSD
repair then caps it at 1). Microstructure noise: tick-by-tick returns of trade or mid prices are
dominated by the bid-ask bounce and the price grid's rounding, which inflate variances and drag
correlations toward zero (a one-tick bounce of 0.2-3.5 bp at 0.3-20 ticks a second turns a
true 0.30 into 0.15-0.19). This estimator is for noise-free prices (marks, index, candles);
:mod:`monitor.estimation.preaveraged` is the default for trades and quotes
(``[estimator] preaverage``).

The per-tick kernel is plain Python over NumPy arrays, compiled with numba when available; its
uncompiled form is the reference path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.estimation.jit import compile_kernels

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SECONDS_PER_YEAR = 365.0 * 86400.0
_REBASE_EXPONENT = 256.0  # rebase lazily-decayed sums once weights reach 2**256


def _advance(
    t: float,
    clock: FloatArray,
    hl: FloatArray,
    g: FloatArray,
    s: FloatArray,
    off: FloatArray,
    w: FloatArray,
) -> None:
    """Move the event clock to ``t``: time weights, rebasing, and this tick's term weights.

    ``clock[0]`` is the last event time, ``clock[1:]`` the decay anchors per horizon. Per
    horizon: the elapsed time since the last event is added to the time weight ``G`` at the
    weight ``2 ** ((t - anchor) / H)``; once that exponent passes the rebase threshold, the
    stored sums are divided by the weight and the anchor moves to ``t``; ``w[h]`` is the
    weight of a term finalised at ``t`` (the same for every entry a tick touches). One
    division and one power per horizon and tick: the exponent serves all three.
    """
    if math.isnan(clock[0]):
        clock[0] = t
        for h in range(hl.shape[0]):
            clock[1 + h] = t
    elapsed = t - clock[0]
    for h in range(hl.shape[0]):
        exponent = (t - clock[1 + h]) / hl[h]
        weight = 2.0**exponent
        if elapsed > 0.0:
            g[h] += elapsed * weight
        if exponent > _REBASE_EXPONENT:
            scale = 2.0 ** (-exponent)
            g[h] *= scale
            s[h] *= scale
            off[h] *= scale
            clock[1 + h] = t
            weight = 1.0  # 2 ** ((t - t) / H)
        w[h] = weight
    if elapsed > 0.0:
        clock[0] = t


def _add_term(
    i: int,
    j: int,
    term: float,
    dt: float,
    w: FloatArray,
    g: FloatArray,
    s: FloatArray,
    off: FloatArray,
    cnt: IntArray,
) -> None:
    """Add one finalised term to entry (i, j) of every horizon, starting a fresh entry's clock.

    ``w`` holds this tick's weights (:func:`_advance`). A fresh entry's elapsed time starts
    with ``dt``, the time from the start of its first interval to the tick.
    """
    if cnt[i, j] == 0 and not dt > 0.0:
        return  # a zero-length first interval carries no rate: wait for the next term
    for h in range(w.shape[0]):
        if cnt[i, j] == 0:
            off[h, i, j] = w[h] * dt - g[h]
        s[h, i, j] += term * w[h]
    cnt[i, j] += 1


def _tick_kernel(
    k: int,
    t: float,
    y: float,
    logp: FloatArray,
    last_t: FloatArray,
    ys: FloatArray,
    pend: FloatArray,
    clock: FloatArray,
    hl: FloatArray,
    g: FloatArray,
    s: FloatArray,
    off: FloatArray,
    cnt: IntArray,
    w: FloatArray,
) -> None:
    """Apply one tick of symbol ``k`` at time ``t`` with log price ``y`` to the state.

    ``pend[0]`` holds sum dX, ``pend[1]`` sum dX * Y_start, ``pend[2]`` the start time of the
    first pending interval (NaN when none) of symbol i's intervals waiting for symbol j (i < j).
    """
    n = logp.shape[0]
    _advance(t, clock, hl, g, s, off, w)
    y_old = logp[k]
    a = last_t[k]
    if math.isnan(y_old):
        for j in range(k + 1, n):
            ys[k, j] = logp[j]
    else:
        dx = y - y_old
        _add_term(k, k, dx * dx, t - a, w, g, s, off, cnt)
        for j in range(k + 1, n):
            y_start = ys[k, j]
            ys[k, j] = logp[j]  # k's next interval starts at j's current price (one pass)
            if math.isnan(y_start):
                continue  # j had no price when this interval of k began
            if last_t[j] >= t:  # j already ticked at t: the interval closes now
                _add_term(k, j, dx * (logp[j] - y_start), t - a, w, g, s, off, cnt)
            else:
                start = pend[2, k, j]
                pend[2, k, j] = a if math.isnan(start) else start
                pend[0, k, j] += dx
                pend[1, k, j] += dx * y_start
    for i in range(k):
        start = pend[2, i, k]
        if cnt[i, k] == 0:  # a fresh entry: the rare, well-predicted branch
            if not math.isnan(start):
                _add_term(i, k, pend[0, i, k] * y - pend[1, i, k], t - start, w, g, s, off, cnt)
        else:
            # Without a pending interval the sums are 0 and the term is a zero, which leaves
            # every sum as it is: no branch on the data (it mispredicts about half the time).
            term = pend[0, i, k] * y - pend[1, i, k]
            for h in range(w.shape[0]):
                s[h, i, k] += term * w[h]
            cnt[i, k] += 0 if math.isnan(start) else 1
        pend[0, i, k] = 0.0
        pend[1, i, k] = 0.0
        pend[2, i, k] = math.nan
        if last_t[i] == t:
            ys[i, k] = y  # i ticked at this same instant: its interval starts with k's new price
    logp[k] = y
    last_t[k] = t


def _batch_kernel(
    idx: IntArray,
    ts: FloatArray,
    ys_in: FloatArray,
    logp: FloatArray,
    last_t: FloatArray,
    ys: FloatArray,
    pend: FloatArray,
    clock: FloatArray,
    hl: FloatArray,
    g: FloatArray,
    s: FloatArray,
    off: FloatArray,
    cnt: IntArray,
    w: FloatArray,
) -> None:
    """Apply a batch of validated ticks (symbol index, time, log price) in order."""
    for m in range(idx.shape[0]):
        _tick_kernel(idx[m], ts[m], ys_in[m], logp, last_t, ys, pend, clock, hl, g, s, off, cnt, w)


def _compile() -> tuple[Callable[..., None], Callable[..., None]]:
    """Return (tick, batch) kernels compiled with numba, or the Python ones without numba."""
    tick, batch = compile_kernels([_tick_kernel, _batch_kernel], [_advance, _add_term])
    return tick, batch


_FAST_TICK: Callable[..., None] | None = None
_FAST_BATCH: Callable[..., None] | None = None


def _fast_kernels() -> tuple[Callable[..., None], Callable[..., None]]:
    global _FAST_TICK, _FAST_BATCH
    if _FAST_TICK is None or _FAST_BATCH is None:
        _FAST_TICK, _FAST_BATCH = _compile()
    return _FAST_TICK, _FAST_BATCH


@dataclass(frozen=True, slots=True)
class CovarianceView:
    """An immutable read-out of one horizon.

    Attributes:
        rate: N x N covariance per second of log returns (NaN where no data).
        count: N x N number of terms behind each entry.
    """

    rate: FloatArray
    count: IntArray


class EventTimeCovariance:
    """Hayashi-Yoshida covariance with event-time EWMA weighting at several half-lives.

    Args:
        n_symbols: number of tracked symbols; ticks name them by index.
        halflives_s: one half-life per horizon, in seconds.
        compiled: use the numba kernel (True) or the pure-Python reference kernel (False).
    """

    def __init__(
        self, n_symbols: int, halflives_s: Sequence[float], *, compiled: bool = True
    ) -> None:
        n, nh = n_symbols, len(halflives_s)
        self.n = n
        self.halflives_s = tuple(float(h) for h in halflives_s)
        self._hl = np.asarray(self.halflives_s, dtype=np.float64)
        self.logp = np.full(n, np.nan)
        self.last_t = np.full(n, -np.inf)
        self._ys = np.full((n, n), np.nan)
        self._pend = np.zeros((3, n, n))
        self._pend[2] = np.nan
        self._clock = np.full(1 + nh, np.nan)
        self._g = np.zeros(nh)
        self._s = np.zeros((nh, n, n))
        self._off = np.zeros((nh, n, n))
        self._cnt = np.zeros((n, n), dtype=np.int64)
        self._w = np.zeros(nh)  # scratch of the kernels: the current tick's weights
        self._upper = np.triu(np.ones((n, n), dtype=np.bool_))
        if compiled:
            self._tick, self._batch = _fast_kernels()
        else:
            self._tick, self._batch = _tick_kernel, _batch_kernel

    def update(self, k: int, t: float, log_price: float) -> None:
        """Apply one tick of symbol index ``k``; the caller guarantees ``t`` is non-decreasing."""
        self._tick(
            k,
            t,
            log_price,
            self.logp,
            self.last_t,
            self._ys,
            self._pend,
            self._clock,
            self._hl,
            self._g,
            self._s,
            self._off,
            self._cnt,
            self._w,
        )

    def update_many(self, idx: IntArray, ts: FloatArray, log_prices: FloatArray) -> None:
        """Apply validated ticks in order: symbol indices, times, log prices."""
        self._batch(
            idx,
            ts,
            log_prices,
            self.logp,
            self.last_t,
            self._ys,
            self._pend,
            self._clock,
            self._hl,
            self._g,
            self._s,
            self._off,
            self._cnt,
            self._w,
        )

    def advance_to(self, t: float) -> bool:
        """Nothing to do: every term is final when its tick arrives (for the common interface)."""
        del t
        return False

    def view(self, horizon: int) -> CovarianceView:
        """Covariance rates of one horizon as a symmetric matrix (NaN where not yet seen)."""
        upper = self._upper
        cnt = np.where(upper, self._cnt, self._cnt.T)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = self._s[horizon] / (self._g[horizon] + self._off[horizon])
        full = np.where(upper, rate, rate.T)
        full[cnt == 0] = np.nan
        full.flags.writeable = False
        cnt.flags.writeable = False
        return CovarianceView(rate=full, count=cnt)

    def state(self) -> dict[str, FloatArray | IntArray]:
        """Copies of every state array, for checkpoints and for comparing kernels."""
        return {name: array.copy() for name, array in self._arrays().items()}

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Overwrite every state array with the values of ``state``, as :meth:`state` returns.

        Raises:
            ValueError: a name is missing or unknown, or an array's shape or dtype differs;
                nothing is changed then.
        """
        load_arrays(self._arrays(), state)

    def _arrays(self) -> dict[str, FloatArray | IntArray]:
        return {
            "logp": self.logp,
            "last_t": self.last_t,
            "ys": self._ys,
            "pend": self._pend,
            "clock": self._clock,
            "g": self._g,
            "s": self._s,
            "off": self._off,
            "cnt": self._cnt,
        }


def load_arrays(
    arrays: Mapping[str, npt.NDArray[Any]], state: Mapping[str, npt.NDArray[Any]]
) -> None:
    """Copy ``state`` into an estimator's ``arrays`` in place, all or nothing.

    Raises:
        ValueError: a name is missing or unknown, or an array's shape or dtype differs.
    """
    if set(state) != set(arrays):
        raise ValueError(f"state arrays {sorted(state)}, expected {sorted(arrays)}")
    for name, target in arrays.items():
        source = state[name]
        if source.shape != target.shape or source.dtype != target.dtype:
            raise ValueError(
                f"state array {name}: {source.dtype}{list(source.shape)}, "
                f"expected {target.dtype}{list(target.shape)}"
            )
    for name, target in arrays.items():
        np.copyto(target, state[name])  # in place: the kernels need C-contiguous arrays


def reindex_state(
    saved: Mapping[str, npt.NDArray[Any]],
    cold: Mapping[str, npt.NDArray[Any]],
    old: IntArray,
    new: IntArray,
) -> dict[str, npt.NDArray[Any]]:
    """A state for another symbol list: symbol ``old[k]`` of ``saved`` becomes ``new[k]``.

    Args:
        saved: a :meth:`EventTimeCovariance.state` of the old symbol list.
        cold: the state of a fresh estimator (same half-lives) of the new list; symbols that
            ``new`` does not name keep it.
        old, new: positions of the common symbols in the old and the new list.

    The event clock and time weights are shared by all entries and are copied. Finalised sums
    of a pair are symmetric and are copied whichever symbol of it comes first; the pending
    intervals of a pair belong to its earlier symbol and are dropped when the order reverses.
    """
    out = {name: np.array(array) for name, array in cold.items()}
    out["clock"], out["g"] = np.array(saved["clock"]), np.array(saved["g"])
    for name in ("logp", "last_t"):
        out[name][new] = saved[name][old]
    a, b = np.nonzero(new[:, None] <= new[None, :])  # entries live in the upper triangle
    for name in ("s", "off", "cnt"):
        upper = np.triu(np.ones(saved[name].shape[-2:], dtype=np.bool_))
        both = np.where(upper, saved[name], np.swapaxes(saved[name], -1, -2))
        out[name][..., new[a], new[b]] = both[..., old[a], old[b]]
    a, b = np.nonzero((new[:, None] < new[None, :]) & (old[:, None] < old[None, :]))
    for name in ("ys", "pend"):
        out[name][..., new[a], new[b]] = saved[name][..., old[a], old[b]]
    return out
