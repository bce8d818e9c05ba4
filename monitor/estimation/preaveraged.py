"""Event-time EWMA covariance robust to asynchronous ticks *and* to microstructure noise.

Why
---
Trades print at the bid or the ask, and quotes sit on a price grid. Between the efficient price
and what a venue reports there is noise of the order of half a tick, independent of the
interval, while the efficient price moves by ``sigma * sqrt(dt)``. Tick-by-tick returns of a
liquid symbol are therefore mostly noise: realised variance grows with the tick rate and
correlations shrink toward zero (on a one-tick bid-ask bounce of 0.2 to 3.5 bp at 0.3 to 20
ticks a second, a tick-by-tick Hayashi-Yoshida estimator reads 0.15-0.19 for a true 0.30).
Mid prices sit on the same grid and keep part of the noise.

Method: pre-averaged returns on an event-time block grid, with exact normalisation
----------------------------------------------------------------------------------
Pre-averaging (Jacod, Li, Mykland, Podolskij and Vetter 2009; for asynchronous data
Christensen, Kinnebrock and Podolskij 2010, "Pre-averaging estimators of the ex-post covariance
matrix in noisy diffusion models with non-synchronous data") replaces tick returns by weighted
sums of returns over a window, which average the noise away while keeping the signal; the
weight function ``g(x) = min(x, 1 - x)`` makes the pre-averaged return the difference of the
mean prices of the window's second and first halves. We adapt it to a streaming EWMA:

1. Event time is cut into blocks of ``block_s`` seconds (``[estimator] preaverage``, aligned on
   multiples of ``block_s`` since the epoch and closed on the right, ``(k b, (k + 1) b]``: a tick
   at a block's end belongs to it, so a snapshot at that time includes it). For each symbol,
   the *block mean* is the mean log price of its ticks in the block.
2. When a block closes, every symbol that ticked in it has the pre-averaged return
   ``r = mean(this block) - mean(its previous block with ticks)``. A slow symbol's return spans
   the blocks it skipped, as a Hayashi-Yoshida interval spans the other symbol's ticks.
3. Exact normalisation instead of asymptotic constants. ``r`` is a linear combination
   ``sum_a c_a p_a`` of log prices with ``sum c_a = 0`` (``+1/n`` on this block's ticks,
   ``-1/n'`` on the previous block's), so ``r = int w(s) dX(s) + noise`` with the kernel
   ``w(s) = sum_{t_a > s} c_a`` (an empirical tent, >= 0). Given the tick times and a locally
   constant covariance ``Sigma``, ``E[r_X r_Y] = Sigma_XY * K_XY`` with
   ``K_XY = int w_X w_Y ds = sum_{a,b} c_a c_b min(t_a, t_b)``. This holds whatever the tick
   times are, so, as in Hayashi-Yoshida, asynchrony causes no bias (no Epps effect) and no
   ``psi`` constants or window-length corrections are needed. ``K`` is accumulated in O(N)
   per tick (a running sum of the block's tick times per symbol) and finished in O(1) per
   pair at the block's close from the block sums and the previous blocks' sums.
4. EWMA in event time: ``S_XY = sum 2^((t - T)/H) r_X r_Y`` and ``W_XY = sum 2^((t - T)/H)
   K_XY`` over the block closes ``t``; the covariance rate is ``S_XY / W_XY`` (per second).
   Which products: two returns closing in the same block, and (kept apart) each return with
   the other symbol's latest earlier return where their kernels overlap, since the exact ``K``
   makes any set of pairs unbiased. A pair's covariance uses its same-block products, from the
   very returns its variances use, so that their errors cancel in the correlation (at 0.9 this
   halves its error); only a pair whose returns seldom close in the same block (same-block
   kernel mass under ``SAME_BLOCK_SHARE`` of the total, e.g. two symbols updating on clocks
   out of phase, which would otherwise never pair) adds its lagged products.
5. Noise bias correction on the diagonal (noise is independent across symbols, so cross
   terms need none). The noise in ``r_X`` has variance ``omega^2 (1/n + 1/n')``. ``omega^2``
   is estimated from the first-order autocovariance of consecutive tick returns,
   ``E[dp_i dp_{i-1}] = -omega^2`` for i.i.d. noise whatever the signal (Zhou 1996; the
   bias-correction term of Jacod et al. 2009 estimates the same quantity), using only pairs
   of returns that span at most ``block_s`` together, where the noise is what the data show:
   regularly spaced closes a block or more apart (candles) get no correction and the estimator
   is then exactly RiskMetrics (below). ``var_X = (S_XX - omega^2 Q_X) / W_XX`` with ``Q_X``
   the EWMA sum of ``1/n + 1/n'``; ``omega^2`` needs ``MIN_NOISE_PAIRS`` pairs, and the
   correction never removes more than ``1 - NOISE_FLOOR`` of the raw variance.

Properties and parameters
-------------------------
- On synchronous ticks a block or more apart (one tick per symbol per block) ``r`` is the
  ordinary return and ``K`` the interval, so ``S / W * dt`` is exactly the RiskMetrics
  recursion normalised by its weights (pandas ``ewm(adjust=True)``), as for the
  Hayashi-Yoshida estimator in :mod:`monitor.estimation.covariance`; candles replay identically.
- ``block_s`` trades noise for efficiency: longer blocks average more noise (also the
  autocorrelated part left by the price grid, whose correlation time is about
  ``(tick / sigma)^2``), shorter blocks give more returns per half-life. 5 s keeps the average
  correlation within 0.05 and volatilities within about 10% on one-tick bid-ask bounce of 0.2
  to 3.5 bp at 0.3 to 20 ticks a second with a 20 min half-life
  (``tests/unit/monitor/estimation/test_preaveraged.py``, ``benchmarks/noise_bias.py``).
- The estimate moves at block closes: it lags event time by up to ``block_s`` (the open
  block is not yet in it); a snapshot at a block's end closes it. A gap in event time closes
  one block: O(1), whatever its length.
- Limits: the noise model behind the diagonal correction is i.i.d. (bid-ask bounce); the
  grid's rounding error is averaged by the block, not corrected, so symbols whose tick is
  wide for their volatility (``(tick/sigma)^2`` well above ``block_s``) read a little high.
  Zero mean (RiskMetrics), as the Hayashi-Yoshida estimator.
- ``[estimator] preaverage = "0s"`` selects the tick-by-tick Hayashi-Yoshida estimator of
  :mod:`monitor.estimation.covariance`, the more efficient choice for noise-free prices
  (marks, index).

The kernels are plain Python over NumPy arrays, compiled with numba
(:mod:`monitor.estimation.jit`); the uncompiled form is the reference path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.estimation.covariance import CovarianceView, load_arrays
from monitor.estimation.jit import compile_kernels

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_NOISE_PAIRS = 20  # autocovariance pairs before omega^2 is trusted
NOISE_FLOOR = 0.25  # the noise correction keeps at least this share of the raw variance
SAME_BLOCK_SHARE = 0.25  # below this share of same-block kernel mass a pair adds lagged pairs
_REBASE_EXPONENT = 256.0  # rebase lazily-decayed sums once weights reach 2**256
_REBASE_ORIGIN_S = 1.0e6  # keep tick times relative to an origin at most this far back

# clock[0]: index of the open block (NaN before the first tick); clock[1]: origin of the
# relative tick times; clock[2 + h]: decay anchor of horizon h.
_BLOCK, _ORIGIN, _ANCHOR = 0, 1, 2
# sets[s, f, x]: symbol x's tick set s (the open block, its last block with ticks, the one
# before that), field f (tick count, sum of log prices, sum of relative times, first and last
# relative time).
_OPEN, _LAST, _BEFORE = 0, 1, 2
_COUNT, _PRICES, _TIMES, _FIRST, _END = 0, 1, 2, 3, 4
# noise[r, h, x]: the noise weight Q of the returns, and the autocovariance sum and its weight.
_Q, _AC, _NA = 0, 1, 2


def _decay_weights(
    tc: float, clock: FloatArray, hl: FloatArray, s: FloatArray, wk: FloatArray,
    noise: FloatArray, wt: FloatArray,
) -> None:  # fmt: skip
    """Each horizon's weight at ``tc``, rebasing the lazily decayed sums when it grows large."""
    for h in range(hl.shape[0]):
        exponent = (tc - clock[_ANCHOR + h]) / hl[h]
        if exponent > _REBASE_EXPONENT:
            scale = 2.0 ** (-exponent)
            s[h] *= scale
            wk[h] *= scale
            noise[:, h] *= scale
            clock[_ANCHOR + h] = tc
            exponent = 0.0
        wt[h] = 2.0**exponent


def _mean(sets: FloatArray, which: int, field: int, x: int) -> float:
    """Mean log price or mean time of one of symbol x's tick sets."""
    value: float = sets[which, field, x] / sets[which, _COUNT, x]
    return value


def _within(x: int, y: int, sets: FloatArray, rr: FloatArray) -> float:
    """``M(open_x, open_y) = sum min(t_a, t_b)`` over the open block's ticks of x and y."""
    if x == y:
        value: float = 2.0 * rr[x, x] + sets[_OPEN, _TIMES, x]
        return value
    pair: float = rr[x, y] + rr[y, x]
    return pair


def _same_block_kernel(x: int, y: int, sets: FloatArray, rr: FloatArray, ml: FloatArray) -> float:
    """``K = sum c_a c_b min(t_a, t_b)`` of x's and y's returns, both closing in the open block.

    Coefficients are ``+1/n`` on a return's block ticks and ``-1/n'`` on its last set's; a
    block tick and an earlier set's tick have ``min`` = the earlier time, so those terms reduce
    to the sets' mean times.
    """
    kernel: float = (
        _within(x, y, sets, rr) / (sets[_OPEN, _COUNT, x] * sets[_OPEN, _COUNT, y])
        - _mean(sets, _LAST, _TIMES, y)
        - _mean(sets, _LAST, _TIMES, x)
        + ml[x, y] / (sets[_LAST, _COUNT, x] * sets[_LAST, _COUNT, y])
    )
    return kernel


def _lagged_kernel(x: int, y: int, sets: FloatArray, ml: FloatArray, mll: FloatArray) -> float:
    """K of x's return closing now with y's latest earlier return (its last and before sets)."""
    kernel: float = (
        _mean(sets, _LAST, _TIMES, y)
        - _mean(sets, _BEFORE, _TIMES, y)
        - ml[x, y] / (sets[_LAST, _COUNT, x] * sets[_LAST, _COUNT, y])
        + mll[x, y] / (sets[_LAST, _COUNT, x] * sets[_BEFORE, _COUNT, y])
    )
    return kernel


def _add_pair(
    x: int, y: int, lagged: bool, product: float, kernel: float, wt: FloatArray,
    s: FloatArray, wk: FloatArray, pairs: IntArray,
) -> None:  # fmt: skip
    """Add a product of two returns: same-block pairs in the upper triangle, lagged below."""
    lo, hi = (x, y) if x <= y else (y, x)
    if lagged:
        lo, hi = hi, lo
    for h in range(wt.shape[0]):
        s[h, lo, hi] += wt[h] * product
        wk[h, lo, hi] += wt[h] * kernel
    pairs[lo, hi] += 1


def _close_block(
    b: float, clock: FloatArray, hl: FloatArray, sets: FloatArray, rr: FloatArray,
    ml: FloatArray, mll: FloatArray, s: FloatArray, wk: FloatArray, noise: FloatArray,
    blk_noise: FloatArray, pairs: IntArray, ret: FloatArray, ticked: IntArray, wt: FloatArray,
) -> None:  # fmt: skip
    """Turn the open block into returns and EWMA terms; its sets become the symbols' last sets.

    Pairs: the returns of two symbols closing in this block, and each return closing here
    with every other symbol's latest earlier return when their kernels overlap.
    """
    n, nh = sets.shape[2], hl.shape[0]
    tc = (clock[_BLOCK] + 1.0) * b
    _decay_weights(tc, clock, hl, s, wk, noise, wt)
    m = 0
    for x in range(n):
        if blk_noise[1, x] > 0.0:
            for h in range(nh):
                noise[_AC, h, x] += wt[h] * blk_noise[0, x]
                noise[_NA, h, x] += wt[h] * blk_noise[1, x]
            blk_noise[0, x] = 0.0
            blk_noise[1, x] = 0.0
        if sets[_OPEN, _COUNT, x] > 0.0:
            ticked[m] = x
            m += 1
            ret[x] = math.nan
            if sets[_LAST, _COUNT, x] > 0.0:
                ret[x] = _mean(sets, _OPEN, _PRICES, x) - _mean(sets, _LAST, _PRICES, x)
    for i in range(m):
        x = ticked[i]
        if math.isnan(ret[x]):
            continue
        for h in range(nh):
            noise[_Q, h, x] += wt[h] / sets[_OPEN, _COUNT, x] + wt[h] / sets[_LAST, _COUNT, x]
        for j in range(i, m):
            y = ticked[j]
            if not math.isnan(ret[y]):
                kernel = _same_block_kernel(x, y, sets, rr, ml)
                _add_pair(x, y, False, ret[x] * ret[y], kernel, wt, s, wk, pairs)
        for y in range(n):  # y's latest earlier return, where it overlaps x's
            if y == x or not sets[_BEFORE, _COUNT, y] > 0.0:
                continue
            if not sets[_LAST, _END, y] > sets[_LAST, _FIRST, x]:
                continue
            earlier = _mean(sets, _LAST, _PRICES, y) - _mean(sets, _BEFORE, _PRICES, y)
            kernel = _lagged_kernel(x, y, sets, ml, mll)
            _add_pair(x, y, True, ret[x] * earlier, kernel, wt, s, wk, pairs)
    _advance_sets(m, sets, rr, ml, mll, ticked)
    if tc - clock[_ORIGIN] > _REBASE_ORIGIN_S:  # keep relative times small and exact
        _shift_origin(tc - clock[_ORIGIN], sets, ml, mll)
        clock[_ORIGIN] = tc


def _advance_sets(
    m: int, sets: FloatArray, rr: FloatArray, ml: FloatArray, mll: FloatArray, ticked: IntArray
) -> None:
    """The open block's sets become the last sets, the last ones the sets before.

    ``ml[x, y] = M(last_x, last_y)`` and ``mll[x, y] = M(last_x, before_y)`` with
    ``M(A, B) = sum min(t_a, t_b)``; a set entirely earlier than another gives
    ``M = count(later) * time sum(earlier)``. ``mll`` is updated first, from the old ``ml``.
    """
    n = sets.shape[2]
    for x in range(n):
        x_ticked = sets[_OPEN, _COUNT, x] > 0.0
        for i in range(m):
            y = ticked[i]  # before_y becomes last_y
            if x_ticked:
                mll[x, y] = sets[_OPEN, _COUNT, x] * sets[_LAST, _TIMES, y]
            else:
                mll[x, y] = ml[x, y]
    for i in range(m):
        x = ticked[i]
        for y in range(n):
            if sets[_OPEN, _COUNT, y] == 0.0:
                mll[x, y] = sets[_OPEN, _COUNT, x] * sets[_BEFORE, _TIMES, y]
    for i in range(m):
        x = ticked[i]
        for y in range(n):
            if sets[_OPEN, _COUNT, y] > 0.0:
                ml[x, y] = (
                    2.0 * rr[x, x] + sets[_OPEN, _TIMES, x] if x == y else rr[x, y] + rr[y, x]
                )
            else:
                ml[x, y] = sets[_OPEN, _COUNT, x] * sets[_LAST, _TIMES, y]
                ml[y, x] = ml[x, y]
    for i in range(m):
        x = ticked[i]
        for f in range(sets.shape[1]):
            sets[_BEFORE, f, x] = sets[_LAST, f, x]
            sets[_LAST, f, x] = sets[_OPEN, f, x]
            sets[_OPEN, f, x] = 0.0
        for y in range(n):
            rr[x, y] = 0.0


def _shift_origin(shift: float, sets: FloatArray, ml: FloatArray, mll: FloatArray) -> None:
    """Move the origin of relative times ``shift`` later (the open block is empty)."""
    n = sets.shape[2]
    for which in (_LAST, _BEFORE):
        for x in range(n):
            sets[which, _TIMES, x] -= sets[which, _COUNT, x] * shift
            sets[which, _FIRST, x] -= shift
            sets[which, _END, x] -= shift
    for x in range(n):
        for y in range(n):
            ml[x, y] -= sets[_LAST, _COUNT, x] * sets[_LAST, _COUNT, y] * shift
            mll[x, y] -= sets[_LAST, _COUNT, x] * sets[_BEFORE, _COUNT, y] * shift


def _block_batch(
    idx: IntArray, ts: FloatArray, ys: FloatArray, b: float, clock: FloatArray, hl: FloatArray,
    sets: FloatArray, rr: FloatArray, ml: FloatArray, mll: FloatArray, s: FloatArray,
    wk: FloatArray, noise: FloatArray, blk_noise: FloatArray, pairs: IntArray,
    ret: FloatArray, ticked: IntArray, wt: FloatArray, logp: FloatArray, last_t: FloatArray,
    prev_t: FloatArray, last_dp: FloatArray, nac: FloatArray,
) -> None:  # fmt: skip
    """Apply validated ticks (symbol index, time, log price) in non-decreasing time order."""
    n = sets.shape[2]
    for i in range(idx.shape[0]):
        k, t, y = idx[i], ts[i], ys[i]
        block = math.ceil(t / b) - 1  # blocks are closed on the right: (k b, (k + 1) b]
        if math.isnan(clock[_BLOCK]):
            clock[_BLOCK] = block
            clock[_ORIGIN] = block * b
            for h in range(hl.shape[0]):
                clock[_ANCHOR + h] = block * b
        elif block > clock[_BLOCK]:
            _close_block(b, clock, hl, sets, rr, ml, mll, s, wk, noise, blk_noise, pairs,
                         ret, ticked, wt)  # fmt: skip
            clock[_BLOCK] = block
        tau = t - clock[_ORIGIN]
        for j in range(n):
            rr[k, j] += sets[_OPEN, _TIMES, j]
        if sets[_OPEN, _COUNT, k] == 0.0:
            sets[_OPEN, _FIRST, k] = tau
        sets[_OPEN, _END, k] = tau
        sets[_OPEN, _TIMES, k] += tau
        sets[_OPEN, _COUNT, k] += 1.0
        sets[_OPEN, _PRICES, k] += y
        if not math.isnan(logp[k]):
            dp = y - logp[k]
            if not math.isnan(last_dp[k]) and t - prev_t[k] <= b:
                blk_noise[0, k] += dp * last_dp[k]
                blk_noise[1, k] += 1.0
                nac[k] += 1.0
            last_dp[k] = dp
            prev_t[k] = last_t[k]
        logp[k] = y
        last_t[k] = t


_FAST: tuple[Callable[..., None], Callable[..., None]] | None = None


def _fast_kernels() -> tuple[Callable[..., None], Callable[..., None]]:
    """(close, batch) compiled with numba."""
    global _FAST
    if _FAST is None:
        close, batch = compile_kernels(
            [_close_block, _block_batch],
            [_decay_weights, _mean, _within, _same_block_kernel, _lagged_kernel, _add_pair,
             _advance_sets, _shift_origin],
        )  # fmt: skip
        _FAST = (close, batch)
    return _FAST


class PreAveragedCovariance:
    """Pre-averaged, noise-corrected covariance on an event-time block grid, several half-lives.

    Args:
        n_symbols: number of tracked symbols; ticks name them by index.
        halflives_s: one half-life per horizon, in seconds.
        block_s: block length in seconds (``[estimator] preaverage``).
        compiled: use the numba kernel (True) or the pure-Python reference kernel (False).
    """

    def __init__(
        self, n_symbols: int, halflives_s: Sequence[float], block_s: float, *, compiled: bool = True
    ) -> None:
        if not block_s > 0:
            raise ValueError(f"block_s must be positive, got {block_s}")
        n, nh = n_symbols, len(halflives_s)
        self.n = n
        self.halflives_s = tuple(float(h) for h in halflives_s)
        self.block_s = float(block_s)
        self._hl = np.asarray(self.halflives_s, dtype=np.float64)
        self._state: dict[str, FloatArray | IntArray] = {
            "clock": np.full(2 + nh, np.nan),
            "sets": np.zeros((3, 5, n)),
            **{name: np.zeros((n, n)) for name in _FULL_MATRIX},
            "s": np.zeros((nh, n, n)),
            "wk": np.zeros((nh, n, n)),
            "noise": np.zeros((3, nh, n)),
            "blk_noise": np.zeros((2, n)),
            "pairs": np.zeros((n, n), dtype=np.int64),
            **{name: np.full(n, np.nan) for name in ("logp", "last_dp")},
            **{name: np.full(n, -np.inf) for name in ("last_t", "prev_t")},
            "nac": np.zeros(n),
        }
        self._scratch = (np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(nh))
        self._upper = np.triu(np.ones((n, n), dtype=np.bool_))
        kernels: tuple[Callable[..., None], Callable[..., None]] = (
            _fast_kernels() if compiled else (_close_block, _block_batch)
        )
        self._close, self._batch = kernels

    @property
    def logp(self) -> FloatArray:
        """Last log price per symbol (NaN before its first tick)."""
        return self._state["logp"]  # type: ignore[return-value]

    @property
    def last_t(self) -> FloatArray:
        """Time of each symbol's last tick (-inf before its first)."""
        return self._state["last_t"]  # type: ignore[return-value]

    def update(self, k: int, t: float, log_price: float) -> None:
        """Apply one tick of symbol index ``k``; the caller guarantees ``t`` is non-decreasing."""
        self.update_many(np.array([k], dtype=np.int64), np.array([t]), np.array([log_price]))

    def update_many(self, idx: IntArray, ts: FloatArray, log_prices: FloatArray) -> None:
        """Apply validated ticks in order: symbol indices, times, log prices."""
        a = self._state
        self._batch(
            idx, ts, log_prices, self.block_s, *self._close_args(),
            a["logp"], a["last_t"], a["prev_t"], a["last_dp"], a["nac"],
        )  # fmt: skip

    def _close_args(self) -> tuple[Any, ...]:
        """The arguments of the close kernel after the block length, in order."""
        a = self._state
        return (
            a["clock"], self._hl, a["sets"], a["rr"], a["ml"], a["mll"], a["s"], a["wk"],
            a["noise"], a["blk_noise"], a["pairs"], *self._scratch,
        )  # fmt: skip

    def advance_to(self, t: float) -> bool:
        """Close the open block if it ends at or before ``t``; whether it held ticks.

        A snapshot at ``t`` then includes every block that ended by ``t``, instead of waiting
        for the next tick to close it.
        """
        a = self._state
        clock = a["clock"]
        if math.isnan(clock[_BLOCK]) or t < (clock[_BLOCK] + 1.0) * self.block_s:
            return False
        had_ticks = bool(a["sets"][_OPEN, _COUNT].any())
        self._close(self.block_s, *self._close_args())
        # ticks at t or later go to a block after the closed one (a tick exactly at t would
        # otherwise name the closed block: they only share its end, which changes no sum)
        clock[_BLOCK] = max(math.ceil(t / self.block_s) - 1, clock[_BLOCK] + 1.0)
        return had_ticks

    def noise_variance(self, horizon: int) -> FloatArray:
        """Per-tick noise variance ``omega^2`` of each symbol's log price (0 until known)."""
        a = self._state
        with np.errstate(invalid="ignore", divide="ignore"):
            omega2 = np.maximum(-a["noise"][_AC, horizon] / a["noise"][_NA, horizon], 0.0)
        return np.where(a["nac"] >= MIN_NOISE_PAIRS, omega2, 0.0)

    def view(self, horizon: int) -> CovarianceView:
        """Covariance rates of one horizon, noise-corrected (NaN where not yet seen).

        A pair's covariance comes from its same-block products (upper triangle of the sums):
        computed from the very returns its variances come from, its errors largely cancel in
        the correlation. Pairs whose returns seldom close in the same block (same-block kernel
        mass below ``SAME_BLOCK_SHARE`` of the total: e.g. two symbols updating on clocks out of
        phase) add their lagged products (lower triangle).
        """
        a, upper = self._state, self._upper
        s, wk, pairs = a["s"][horizon], a["wk"][horizon], a["pairs"]
        s0, w0, n0 = (np.where(upper, m, m.T) for m in (s, wk, pairs))
        s1, w1, n1 = (np.where(upper, m.T, m) for m in (s, wk, pairs))
        with np.errstate(invalid="ignore", divide="ignore"):
            same = w0 >= SAME_BLOCK_SHARE * (w0 + w1)
            rate = np.where(same, s0 / w0, (s0 + s1) / (w0 + w1))
            weight = np.where(same, w0, w0 + w1)
            raw = np.diag(s) / np.diag(wk)
            noise = self.noise_variance(horizon) * a["noise"][_Q, horizon] / np.diag(wk)
        count = np.where(same, n0, n0 + n1)
        np.fill_diagonal(rate, np.maximum(raw - noise, NOISE_FLOOR * raw))
        np.fill_diagonal(count, np.diag(pairs))
        rate[(count == 0) | ~(weight > 0)] = np.nan
        rate.flags.writeable = False
        count.flags.writeable = False
        return CovarianceView(rate=rate, count=count)

    def state(self) -> dict[str, FloatArray | IntArray]:
        """Copies of every state array, for checkpoints and for comparing kernels."""
        return {name: array.copy() for name, array in self._state.items()}

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Overwrite every state array with the values of ``state``, as :meth:`state` returns.

        Raises:
            ValueError: a name is missing or unknown, or an array's shape or dtype differs;
                nothing is changed then.
        """
        load_arrays(self._state, state)


_PER_SYMBOL = ("logp", "last_dp", "last_t", "prev_t", "nac")  # symbol is the only axis
_SYMBOL_LAST = ("sets", "noise", "blk_noise")  # symbol is the last axis
_FULL_MATRIX = ("rr", "ml", "mll")  # entries for every ordered pair
_PAIR_SUMS = ("pairs", "s", "wk")  # same-block pairs above the diagonal, lagged ones below


def reindex_preaveraged_state(
    saved: Mapping[str, npt.NDArray[Any]],
    cold: Mapping[str, npt.NDArray[Any]],
    old: IntArray,
    new: IntArray,
) -> dict[str, npt.NDArray[Any]]:
    """A state for another symbol list: symbol ``old[k]`` of ``saved`` becomes ``new[k]``.

    ``cold`` is the state of a fresh estimator (same half-lives and block) of the new list;
    symbols that ``new`` does not name keep it. The clock is shared and copied.
    """
    out = {name: np.array(array) for name, array in cold.items()}
    out["clock"] = np.array(saved["clock"])
    for name in _PER_SYMBOL:
        out[name][new] = saved[name][old]
    for name in _SYMBOL_LAST:
        out[name][..., new] = saved[name][..., old]
    for name in _FULL_MATRIX:
        out[name][np.ix_(new, new)] = saved[name][np.ix_(old, old)]
    a, b = np.nonzero(new[:, None] < new[None, :])
    d = np.arange(len(new))
    for name in _PAIR_SUMS:  # same-block sums above the diagonal, lagged below, both symmetric
        saved_upper = np.triu(np.ones(saved[name].shape[-2:], dtype=np.bool_))
        same = np.where(saved_upper, saved[name], np.swapaxes(saved[name], -1, -2))
        lagged = np.where(saved_upper, np.swapaxes(saved[name], -1, -2), saved[name])
        out[name][..., new[a], new[b]] = same[..., old[a], old[b]]
        out[name][..., new[b], new[a]] = lagged[..., old[a], old[b]]
        out[name][..., new[d], new[d]] = saved[name][..., old[d], old[d]]
    return out
