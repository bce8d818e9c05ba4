"""Black-76 values and Greeks of European options on a forward, linear and inverse.

Black-76 with forward ``F``, strike ``K``, time ``T`` in years (ACT/365), volatility ``s`` and
discount factor ``D = exp(-r T)``::

    d1 = (ln(F / K) + s^2 T / 2) / (s sqrt(T)),   d2 = d1 - s sqrt(T)
    call = D (F N(d1) - K N(d2)),                 put = D (K N(-d2) - F N(-d1))

Two settlements:

- Linear (USDC-settled) options pay ``max(S - K, 0)`` in USD: :func:`black76` is their value,
  with Greeks in USD per unit of the underlying, vega per 1.00 of volatility and theta per year
  (QuantLib's conventions).
- Inverse (coin-settled, Deribit BTC and ETH) options pay ``max(S - K, 0) / S`` coins: their
  price in coin is the Black-76 value in USD divided by ``F``, the ``underlying_price`` of the
  Deribit ticker (the future, or synthetic future, of the same expiry). :func:`inverse_option`
  reports Greeks in USD and in coin with the venue's units: vega per volatility point (1%),
  theta per calendar day.

Deribit's ``greeks`` are the USD ones: ``delta = dV/dF`` (the Black-Scholes delta, in coins),
``gamma = d2V/dF2``, vega per point and theta per day, all of the USD value ``V``, with ``r = 0``.
Its theta is not the derivative for options that expire within about a day: the venue shows
the smaller in size of the one-day decay and what the option can still lose,
see :func:`deribit_theta_usd`. Repricing two BTC chains from ``mark_iv`` and
``underlying_price`` with ACT/365 from the ticker timestamp reproduces mark prices to a median
4e-6 coin (at worst what a forward 0.04% off explains) and delta, vega and theta of options
between the 5- and 95-delta to 2e-4 relative; ``tests/unit/monitor/risk/test_options.py``
states the bounds and why they are not tighter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from monitor.errors import DataError

FloatArray = npt.NDArray[np.float64]

SECONDS_PER_YEAR = 365.0 * 86_400.0
DAYS_PER_YEAR = 365.0
VOL_POINT = 0.01
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_INSTRUMENT = re.compile(
    r"(?P<underlying>[A-Z0-9]+(?:_[A-Z0-9]+)?)-(?P<day>\d{1,2})(?P<month>[A-Z]{3})(?P<year>\d{2})"
    r"-(?P<strike>\d+(?:d\d+)?)-(?P<kind>[CP])"
)


@dataclass(frozen=True, slots=True)
class Black76:
    """Black-76 value and Greeks of one option, in the quote currency (USD).

    Attributes:
        price: option value, USD per unit of the underlying.
        delta: dV/dF, units of the underlying.
        gamma: d2V/dF2, per USD.
        vega: dV/dvol, USD per 1.00 of volatility (divide by 100 for a vol point).
        theta: dV/dt with the forward held, USD per year (divide by 365 for a day).
    """

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


@dataclass(frozen=True, slots=True)
class Black76Array:
    """Black-76 values and Greeks of many options; each field as :class:`Black76`, broadcast."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


@dataclass(frozen=True, slots=True)
class OptionValue:
    """Value and Greeks of one inverse (coin-settled) option on one coin of notional.

    ``*_usd`` fields describe the USD value ``V``; ``*_coin`` fields the coin value ``c = V / F``.
    Vega is per volatility point (0.01) and theta per calendar day (1/365 year), as Deribit
    quotes them; both move with the forward held.

    Attributes:
        price_usd: V, the Black-76 value in USD.
        price_coin: c = V / F, the venue's ``mark_price``.
        delta_usd: dV/dF, in coins: Deribit's ``greeks.delta`` (its "Black-Scholes delta").
        delta_coin: F dc/dF = delta_usd - price_coin, in coins: Deribit's "net transaction" or
            price-adjusted delta, what the option adds to a coin account's DeltaTotal. The
            coin value moves by ``delta_coin * dF / F`` coins.
        gamma_usd: d(delta_usd)/dF = d2V/dF2, per USD: Deribit's ``greeks.gamma``.
        gamma_coin: d(delta_coin)/dF = gamma_usd - delta_coin / F, per USD.
        vega_usd: dV per volatility point, USD: Deribit's ``greeks.vega``.
        vega_coin: dc per volatility point, coin (vega_usd / F).
        theta_usd: dV per calendar day, USD (Deribit's ``greeks.theta`` for expiries beyond a
            day; see :func:`deribit_theta_usd`).
        theta_coin: dc per calendar day, coin (theta_usd / F).
    """

    price_usd: float
    price_coin: float
    delta_usd: float
    delta_coin: float
    gamma_usd: float
    gamma_coin: float
    vega_usd: float
    vega_coin: float
    theta_usd: float
    theta_coin: float


class Instrument(NamedTuple):
    """A Deribit option name, parsed.

    Attributes:
        underlying: the prefix, e.g. ``BTC`` (inverse) or ``SOL_USDC`` (linear, USDC-settled).
        expiry_ts: expiry, Unix seconds (08:00 UTC of the expiry date).
        strike: strike in USD.
        is_call: True for a call, False for a put.
    """

    underlying: str
    expiry_ts: float
    strike: float
    is_call: bool


def black76_array(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
    rate: npt.ArrayLike = 0.0,
) -> Black76Array:
    """Black-76 values and Greeks, broadcast over numpy arrays (for repricing grids).

    At ``t_years == 0`` or ``vol == 0`` the value is the discounted intrinsic value, delta a
    step (half the discount factor at the money) and gamma 0 (its limit is a point mass at the
    money); vega is 0 but at the money, where it keeps its limit ``D F sqrt(T) / sqrt(2 pi)``.

    Args:
        forward: forward price F, USD, > 0.
        strike: strike K, USD, > 0.
        t_years: time to expiry, years (ACT/365, see :func:`year_fraction`), >= 0.
        vol: Black volatility, 1.00 = 100% a year, >= 0.
        is_call: True for calls, False for puts.
        rate: continuously compounded discount rate, per year.

    Returns:
        Arrays of the broadcast shape; units as in :class:`Black76`.

    Raises:
        ValueError: when an input is out of its domain or not finite.
    """
    f, k, t, v, r = (np.asarray(x, dtype=np.float64) for x in (forward, strike, t_years, vol, rate))
    call = np.asarray(is_call, dtype=bool)
    _check_domain(f, k, t, v, r)
    discount = np.exp(-r * t)
    root_t = np.sqrt(t)
    std = v * root_t
    d1 = _d1(f, k, std)
    d2 = d1 - std
    sign = np.where(call, 1.0, -1.0)
    n1 = _norm_cdf(sign * d1)
    price = sign * discount * (f * n1 - k * _norm_cdf(sign * d2))
    density = np.exp(-0.5 * d1 * d1) / _SQRT_2PI
    decay = discount * f * density * v * 0.5 / np.where(t > 0.0, root_t, np.inf)
    return Black76Array(
        price=price,
        delta=sign * discount * n1,
        gamma=discount * density / (f * np.where(std > 0.0, std, np.inf)),
        vega=discount * f * density * root_t,
        theta=r * price - decay,
    )


def black76_price(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    """Undiscounted Black-76 values only (revaluation grids), as :func:`black76_array`'s price.

    Raises:
        ValueError: when an input is out of its domain or not finite.
    """
    f, k, t, v = (np.asarray(x, dtype=np.float64) for x in (forward, strike, t_years, vol))
    _check_domain(f, k, t, v, np.zeros(1))
    std = v * np.sqrt(t)
    d1 = _d1(f, k, std)
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    out: FloatArray = sign * (f * _norm_cdf(sign * d1) - k * _norm_cdf(sign * (d1 - std)))
    return out


def black76(
    forward: float,
    strike: float,
    t_years: float,
    vol: float,
    is_call: bool,
    rate: float = 0.0,
) -> Black76:
    """Black-76 value and Greeks of one option in USD (a linear option's value as is).

    Args and edge cases as :func:`black76_array`.

    Returns:
        Price, delta, gamma, vega per 1.00 of vol and theta per year, in USD.
    """
    grid = black76_array(forward, strike, t_years, vol, is_call, rate)
    return Black76(
        price=float(grid.price),
        delta=float(grid.delta),
        gamma=float(grid.gamma),
        vega=float(grid.vega),
        theta=float(grid.theta),
    )


def inverse_option(
    forward: float,
    strike: float,
    t_years: float,
    vol: float,
    is_call: bool,
    rate: float = 0.0,
) -> OptionValue:
    """Value and Greeks of an inverse (coin-settled) option, in USD and in coin.

    Args:
        forward: the venue's ``underlying_price``, USD.
        strike: strike, USD.
        t_years: time to expiry, years (ACT/365).
        vol: volatility, 1.00 = 100% (Deribit's ``mark_iv`` / 100).
        is_call: True for a call.
        rate: discount rate per year (Deribit uses 0).

    Returns:
        The fields of :class:`OptionValue`, vega per vol point and theta per day.
    """
    usd = black76(forward, strike, t_years, vol, is_call, rate)
    price_coin = usd.price / forward
    delta_coin = usd.delta - price_coin
    vega_usd = usd.vega * VOL_POINT
    theta_usd = usd.theta / DAYS_PER_YEAR
    return OptionValue(
        price_usd=usd.price,
        price_coin=price_coin,
        delta_usd=usd.delta,
        delta_coin=delta_coin,
        gamma_usd=usd.gamma,
        gamma_coin=usd.gamma - delta_coin / forward,
        vega_usd=vega_usd,
        vega_coin=vega_usd / forward,
        theta_usd=theta_usd,
        theta_coin=theta_usd / forward,
    )


def deribit_theta_usd(theta_usd_per_day: float, price_usd: float, t_years: float) -> float:
    """Theta as Deribit shows it: the smaller of the one-day and the lifetime decay.

    Deribit documents its theta as "the minimum of (1 day theta, lifetime theta)". Its two
    BTC chains of May 2020 fit ``max(theta_day * min(T_days, 1), -price_usd)``: under a day the
    daily rate is scaled to the time left, and the decay never exceeds the option's value.

    Args:
        theta_usd_per_day: the analytic theta, USD per day (:attr:`OptionValue.theta_usd`).
        price_usd: the option's value in USD.
        t_years: time to expiry, years.

    Returns:
        USD per day, comparable with the venue's ``greeks.theta``.
    """
    days_left = min(t_years * DAYS_PER_YEAR, 1.0)
    return max(theta_usd_per_day * days_left, -price_usd)


def year_fraction(now_ts: float, expiry_ts: float) -> float:
    """ACT/365 years from ``now_ts`` to ``expiry_ts`` (Unix seconds); 0 once expired."""
    return max(expiry_ts - now_ts, 0.0) / SECONDS_PER_YEAR


def parse_instrument(name: str) -> Instrument:
    """Parse a Deribit option name such as ``BTC-27JUN25-100000-C`` or ``XRP_USDC-4JUL25-2d2-P``.

    Deribit options expire at 08:00 UTC; a ``d`` in the strike is a decimal point.

    Raises:
        DataError: the name is not a Deribit option (futures and perpetuals included).
    """
    match = _INSTRUMENT.fullmatch(name)
    if match is None or match["month"] not in _MONTHS:
        raise DataError(f"not a Deribit option name: {name!r} (expected e.g. BTC-27JUN25-100000-C)")
    try:
        expiry = datetime(
            2000 + int(match["year"]),
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            8,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise DataError(f"not a calendar date in option name {name!r}: {exc}") from None
    strike = float(match["strike"].replace("d", "."))
    return Instrument(match["underlying"], expiry.timestamp(), strike, match["kind"] == "C")


def _d1(forward: FloatArray, strike: FloatArray, std: FloatArray) -> FloatArray:
    """d1, with its limit (+-inf, or 0 at the money) where the total deviation is 0."""
    log_moneyness = np.log(forward / strike)
    live = std > 0.0
    safe_std = np.where(live, std, 1.0)
    at_zero = np.where(log_moneyness > 0.0, np.inf, np.where(log_moneyness < 0.0, -np.inf, 0.0))
    d1: FloatArray = np.where(live, log_moneyness / safe_std + 0.5 * std, at_zero)
    return d1


def _norm_cdf(x: FloatArray) -> FloatArray:
    """Standard normal distribution function (scipy's ndtr, accurate in the tails)."""
    from scipy import special  # imported at first use: only option books need it

    return np.asarray(special.ndtr(x), dtype=np.float64)


def _check_domain(
    forward: FloatArray, strike: FloatArray, t_years: FloatArray, vol: FloatArray, rate: FloatArray
) -> None:
    """Raise ValueError for inputs outside the model's domain."""
    checks = (
        ("forward", forward, forward > 0.0),
        ("strike", strike, strike > 0.0),
        ("t_years", t_years, t_years >= 0.0),
        ("vol", vol, vol >= 0.0),
        ("rate", rate, np.isfinite(rate)),
    )
    for name, values, ok in checks:
        if not np.all(ok & np.isfinite(values)):
            raise ValueError(
                f"black76: {name} out of domain: {values[~(ok & np.isfinite(values))]}"
            )
