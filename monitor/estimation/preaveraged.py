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
   multiples of ``block_s`` since the epoch). For each symbol, the *block mean* is the mean log
   price of its ticks in the block.
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
  block is not yet in it). A gap in event time closes one block: O(1), whatever its length.
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

from monitor.estimation.covariance import CovarianceView
from monitor.estimation.jit import compile_kernels

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_NOISE_PAIRS = 20  # autocovariance pairs before omega^2 is trusted
NOISE_FLOOR = 0.25  # the noise correction keeps at least this share of the raw variance
_REBASE_EXPONENT = 256.0  # rebase lazily-decayed sums once weights reach 2**256
_REBASE_ORIGIN_S = 1.0e6  # keep tick times relative to an origin at most this far back
_EDGE_MARGIN = 1e-12  # relative: how far below a block's end a tick needs no division

# clock[0]: index of the open block (NaN before the first tick); clock[1]: origin of the
# relative tick times; clock[2 + h]: decay anchor of horizon h.
_BLOCK, _ORIGIN, _ANCHOR = 0, 1, 2


def _decay_weights(
    tc: float,
    clock: FloatArray,
    hl: FloatArray,
    s: FloatArray,
    wk: FloatArray,
    q: FloatArray,
    ac: FloatArray,
    na: FloatArray,
    wt: FloatArray,
) -> None:
    """Each horizon's weight at ``tc``, rebasing the lazily decayed sums when it grows large."""
    for h in range(hl.shape[0]):
        exponent = (tc - clock[_ANCHOR + h]) / hl[h]
        if exponent > _REBASE_EXPONENT:
            scale = 2.0 ** (-exponent)
            s[h] *= scale
            wk[h] *= scale
            q[h] *= scale
            ac[h] *= scale
            na[h] *= scale
            clock[_ANCHOR + h] = tc
            exponent = 0.0
        wt[h] = 2.0**exponent


def _safely_inside(block: float, b: float) -> float:
    """A time below which ``floor(t / b)`` cannot exceed ``block`` (-inf before the first).

    ``(block + 1) * b`` less a relative margin of 1e-12, far above the few units of 2**-53
    by which the division and this product can round: below it, ``t / b`` rounds below
    ``block + 1``, so the division would not start a new block and can be skipped.
    """
    if math.isnan(block):
        return -math.inf
    return (block + 1.0) * b * (1.0 - _EDGE_MARGIN)


def _pair_kernel(
    x: int,
    y: int,
    cnt: FloatArray,
    st: FloatArray,
    rr: FloatArray,
    lc: FloatArray,
    lt: FloatArray,
    ml: FloatArray,
) -> float:
    """``K_xy = sum c_a c_b min(t_a, t_b)`` of two returns closing in the open block.

    Coefficients are ``+1/n`` on the block's ticks and ``-1/n'`` on the last set's; pairs of
    a block tick and an earlier set's tick have ``min`` = the earlier time, so those terms
    reduce to the sets' time sums.
    """
    within = 2.0 * rr[x, x] + st[x] if x == y else rr[x, y] + rr[y, x]
    kernel: float = (
        within / (cnt[x] * cnt[y]) - lt[y] / lc[y] - lt[x] / lc[x] + ml[x, y] / (lc[x] * lc[y])
    )
    return kernel


def _close_block(
    b: float,
    clock: FloatArray,
    hl: FloatArray,
    cnt: FloatArray,
    sp: FloatArray,
    st: FloatArray,
    rr: FloatArray,
    lc: FloatArray,
    lp: FloatArray,
    lt: FloatArray,
    ml: FloatArray,
    s: FloatArray,
    wk: FloatArray,
    q: FloatArray,
    ac: FloatArray,
    na: FloatArray,
    ac_blk: FloatArray,
    na_blk: FloatArray,
    pairs: IntArray,
    ret: FloatArray,
    ticked: IntArray,
    wt: FloatArray,
) -> None:
    """Turn the open block into returns and EWMA terms; its sums become the symbols' last sets."""
    n, nh = cnt.shape[0], hl.shape[0]
    tc = (clock[_BLOCK] + 1.0) * b
    _decay_weights(tc, clock, hl, s, wk, q, ac, na, wt)
    m = 0
    for x in range(n):
        if na_blk[x] > 0.0:
            for h in range(nh):
                ac[h, x] += wt[h] * ac_blk[x]
                na[h, x] += wt[h] * na_blk[x]
            ac_blk[x] = 0.0
            na_blk[x] = 0.0
        if cnt[x] > 0.0:
            ticked[m] = x
            m += 1
            ret[x] = sp[x] / cnt[x] - lp[x] / lc[x] if lc[x] > 0.0 else math.nan
    for i in range(m):
        x = ticked[i]
        if math.isnan(ret[x]):
            continue
        for h in range(nh):
            q[h, x] += wt[h] * (1.0 / cnt[x] + 1.0 / lc[x])
        for j in range(i, m):
            y = ticked[j]
            if math.isnan(ret[y]):
                continue
            k = _pair_kernel(x, y, cnt, st, rr, lc, lt, ml)
            lo, hi = (x, y) if x <= y else (y, x)
            for h in range(nh):
                s[h, lo, hi] += wt[h] * ret[x] * ret[y]
                wk[h, lo, hi] += wt[h] * k
            pairs[lo, hi] += 1
    for i in range(m):  # the block's sets become the last sets: sums of min(t_a, t_b) first
        x = ticked[i]
        for y in range(n):
            if cnt[y] > 0.0:
                ml[x, y] = 2.0 * rr[x, x] + st[x] if x == y else rr[x, y] + rr[y, x]
            else:
                ml[x, y] = cnt[x] * lt[y]  # every tick of y's last set is earlier
                ml[y, x] = ml[x, y]
    for i in range(m):
        x = ticked[i]
        lc[x], lp[x], lt[x] = cnt[x], sp[x], st[x]
        cnt[x], sp[x], st[x] = 0.0, 0.0, 0.0
        for y in range(n):
            rr[x, y] = 0.0
    if tc - clock[_ORIGIN] > _REBASE_ORIGIN_S:  # keep relative times small and exact
        shift = tc - clock[_ORIGIN]
        for x in range(n):
            lt[x] -= lc[x] * shift
            for y in range(n):
                ml[x, y] -= lc[x] * lc[y] * shift
        clock[_ORIGIN] = tc


def _block_batch(
    idx: IntArray,
    ts: FloatArray,
    ys: FloatArray,
    b: float,
    clock: FloatArray,
    hl: FloatArray,
    cnt: FloatArray,
    sp: FloatArray,
    st: FloatArray,
    rr: FloatArray,
    lc: FloatArray,
    lp: FloatArray,
    lt: FloatArray,
    ml: FloatArray,
    logp: FloatArray,
    last_t: FloatArray,
    prev_t: FloatArray,
    last_dp: FloatArray,
    s: FloatArray,
    wk: FloatArray,
    q: FloatArray,
    ac: FloatArray,
    na: FloatArray,
    ac_blk: FloatArray,
    na_blk: FloatArray,
    nac: FloatArray,
    pairs: IntArray,
    ret: FloatArray,
    ticked: IntArray,
    wt: FloatArray,
) -> None:
    """Apply validated ticks (symbol index, time, log price) in non-decreasing time order.

    A tick's block is ``floor(t / b)``; a tick below :func:`_safely_inside`'s bound is in the
    open block whatever the rounding, so the division is done only near and past its end.
    """
    n = cnt.shape[0]
    inside = _safely_inside(clock[_BLOCK], b)
    for i in range(idx.shape[0]):
        k, t, y = idx[i], ts[i], ys[i]
        if not t < inside:
            block = math.floor(t / b)
            if math.isnan(clock[_BLOCK]):
                clock[_BLOCK] = block
                clock[_ORIGIN] = block * b
                for h in range(hl.shape[0]):
                    clock[_ANCHOR + h] = block * b
            elif block > clock[_BLOCK]:
                _close_block(b, clock, hl, cnt, sp, st, rr, lc, lp, lt, ml, s, wk, q, ac, na,
                             ac_blk, na_blk, pairs, ret, ticked, wt)  # fmt: skip
                clock[_BLOCK] = block
            inside = _safely_inside(clock[_BLOCK], b)
        tau = t - clock[_ORIGIN]
        for j in range(n):
            rr[k, j] += st[j]
        st[k] += tau
        cnt[k] += 1.0
        sp[k] += y
        if not math.isnan(logp[k]):
            dp = y - logp[k]
            if not math.isnan(last_dp[k]) and t - prev_t[k] <= b:
                ac_blk[k] += dp * last_dp[k]
                na_blk[k] += 1.0
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
            [_close_block, _block_batch], [_decay_weights, _safely_inside, _pair_kernel]
        )
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
            **{name: np.zeros(n) for name in _PER_SYMBOL_ZERO},
            **{name: np.full(n, np.nan) for name in ("logp", "last_dp")},
            **{name: np.full(n, -np.inf) for name in ("last_t", "prev_t")},
            "rr": np.zeros((n, n)),
            "ml": np.zeros((n, n)),
            "pairs": np.zeros((n, n), dtype=np.int64),
            **{name: np.zeros((nh, n, n)) for name in ("s", "wk")},
            **{name: np.zeros((nh, n)) for name in ("q", "ac", "na")},
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
            idx, ts, log_prices, self.block_s, a["clock"], self._hl,
            a["cnt"], a["sp"], a["st"], a["rr"], a["lc"], a["lp"], a["lt"], a["ml"],
            a["logp"], a["last_t"], a["prev_t"], a["last_dp"],
            a["s"], a["wk"], a["q"], a["ac"], a["na"], a["ac_blk"], a["na_blk"], a["nac"],
            a["pairs"], *self._scratch,
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
        had_ticks = bool(a["cnt"].any())
        self._close(
            self.block_s, clock, self._hl,
            a["cnt"], a["sp"], a["st"], a["rr"], a["lc"], a["lp"], a["lt"], a["ml"],
            a["s"], a["wk"], a["q"], a["ac"], a["na"], a["ac_blk"], a["na_blk"],
            a["pairs"], *self._scratch,
        )  # fmt: skip
        clock[_BLOCK] = math.floor(t / self.block_s)
        return had_ticks

    def noise_variance(self, horizon: int) -> FloatArray:
        """Per-tick noise variance ``omega^2`` of each symbol's log price (0 until known)."""
        a = self._state
        with np.errstate(invalid="ignore", divide="ignore"):
            omega2 = np.maximum(-a["ac"][horizon] / a["na"][horizon], 0.0)
        return np.where(a["nac"] >= MIN_NOISE_PAIRS, omega2, 0.0)

    def view(self, horizon: int) -> CovarianceView:
        """Covariance rates of one horizon, noise-corrected (NaN where not yet seen)."""
        a, upper = self._state, self._upper
        pairs = a["pairs"]
        count = np.where(upper, pairs, pairs.T)
        s, wk = a["s"][horizon], a["wk"][horizon]
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(upper, s / wk, (s / wk).T)
            raw = np.diag(s) / np.diag(wk)
            noise = self.noise_variance(horizon) * a["q"][horizon] / np.diag(wk)
        np.fill_diagonal(rate, np.maximum(raw - noise, NOISE_FLOOR * raw))
        rate[(count == 0) | ~(np.where(upper, wk, wk.T) > 0)] = np.nan
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
        arrays = self._state
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


_PER_SYMBOL_ZERO = ("cnt", "sp", "st", "lc", "lp", "lt", "ac_blk", "na_blk", "nac")
_PER_SYMBOL = (*_PER_SYMBOL_ZERO, "logp", "last_dp", "last_t", "prev_t")
_PER_HORIZON_SYMBOL = ("q", "ac", "na")
_FULL_MATRIX = ("rr", "ml")  # entries for every ordered pair
_UPPER_MATRIX = ("pairs",)  # entries in the upper triangle
_PER_HORIZON_UPPER = ("s", "wk")


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
    for name in _PER_HORIZON_SYMBOL:
        out[name][:, new] = saved[name][:, old]
    for name in _FULL_MATRIX:
        out[name][np.ix_(new, new)] = saved[name][np.ix_(old, old)]
    a, b = np.nonzero(new[:, None] <= new[None, :])
    for name in (*_UPPER_MATRIX, *_PER_HORIZON_UPPER):
        upper = np.triu(np.ones(saved[name].shape[-2:], dtype=np.bool_))
        both = np.where(upper, saved[name], np.swapaxes(saved[name], -1, -2))
        out[name][..., new[a], new[b]] = both[..., old[a], old[b]]
    return out
