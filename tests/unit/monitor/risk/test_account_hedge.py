"""Account hedges: delta-neutral perps of an option book, its vega cost, and the hedge of deltas.

The account's net delta is checked against bumps of its full value, and the vega cost against
QuantLib's Black formula, so the expected figures never come from the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the library's own alias)

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.errors import ConfigError
from monitor.risk.account import AccountModel, MarketState
from monitor.risk.book import Book
from monitor.risk.hedge import NO_DATA
from monitor.risk.snapshot import AccountRisk, HedgeRisk

MakeConfig = Callable[..., Config]
DAY = 86_400.0
YEAR = 365 * DAY
TS = datetime(2026, 5, 28, tzinfo=UTC).timestamp()
SPOT = 100_000.0

BASE = """
[universe]
symbols = ["BTCUSD", "ETHUSD", "USDCUSD"]

[estimator]
halflife = "10m"
slow_halflife = "2h"
min_observations = 10

[risk]
horizon = "1d"
confidence = [0.99]
distribution = "normal"
vol_of_vol = 1.2
"""

DERIBIT = """
[[accounts]]
name = "opts"
margin = "deribit-pm"
settlement = "BTC"
settlement_symbol = "BTCUSD"
collateral = [ { asset = "BTC", amount = 2.0, price_symbol = "BTCUSD" } ]
hedge_with = [HEDGES]

[[accounts.positions]]
instrument = "BTC-25DEC26-100000-P"
kind = "option"
underlying = "BTCUSD"
contracts = -3
iv = 0.55

[[accounts.positions]]
instrument = "BTC-25DEC26-120000-C"
kind = "option"
underlying = "BTCUSD"
contracts = 2
iv = 0.55
settlement = "linear"

[[accounts.positions]]
instrument = "BTC-PERPETUAL"
kind = "inverse"
underlying = "BTCUSD"
contracts = -50000
entry_price = 95000
"""

USDC_CALL = """
[[accounts]]
name = "calls"
collateral = [ { asset = "USDC", amount = 50000 } ]
hedge_with = ["BTCUSD"]

[[accounts.positions]]
instrument = "BTC_USDC-25DEC26-110000-C"
kind = "option"
underlying = "BTCUSD"
contracts = -4
strike = 110000
expiry = 2026-12-25T08:00:00Z
right = "call"
settlement = "linear"
iv = 0.6
"""

LINEAR = """
[[accounts]]
name = "perps"
collateral = [ { asset = "USDT", amount = 100000 } ]
hedge_with = ["BTCUSD"]

[[accounts.positions]]
instrument = "ETHUSDT"
kind = "linear"
underlying = "ETHUSD"
contracts = 30
entry_price = 3000
"""


def account_risk(config: Config, prices: dict[str, float], cov_day: np.ndarray) -> AccountRisk:
    symbols = config.tracked_symbols
    price = np.array([prices.get(s, 1.0) for s in symbols])
    market = MarketState(TS, price, cov_day / DAY, np.ones(len(symbols), bool), {})
    account = config.accounts[0]
    return AccountModel(account, symbols, config.risk, config.stress).risk(market)


def hedge_of(risk: AccountRisk) -> HedgeRisk:
    assert risk.hedge is not None
    return risk.hedge


def daily_cov(btc: float = 0.04, eth: float = 0.05, rho: float = 0.0) -> np.ndarray:
    cov = np.diag([btc**2, eth**2, 1e-8])
    cov[0, 1] = cov[1, 0] = rho * btc * eth
    return cov


def fd_delta(config: Config, price: float) -> float:
    """d equity / d BTC price of the whole account, by central differences of its value."""
    symbols = config.tracked_symbols
    book = Book(config.accounts[0], {s: i for i, s in enumerate(symbols)})

    def equity(p: float) -> float:
        row = np.array([[p, 3_000.0, 1.0]])
        return float(book.value(row, np.ones(1), TS, {}).equity[0])

    return (equity(price + 1.0) - equity(price - 1.0)) / 2.0


def test_the_delta_hedge_is_minus_the_net_delta_in_perp_units(make_config: MakeConfig) -> None:
    """Options, coin collateral and an inverse perp on BTC: trade -delta, perp -delta."""
    config = make_config(DERIBIT.replace("HEDGES", '"BTCUSD"'), base=BASE)
    risk = account_risk(config, {"BTCUSD": SPOT, "ETHUSD": 3_000.0}, daily_cov())
    net = fd_delta(config, SPOT)
    (exposure,) = risk.exposures
    assert exposure.delta == pytest.approx(net, rel=1e-6)
    hedge = hedge_of(risk)
    (leg,) = hedge.legs
    held = -50_000 / 95_000  # an inverse contract holds Q / entry coins
    assert leg.held == pytest.approx(held, rel=1e-12)
    assert leg.trade == pytest.approx(-net, rel=1e-6)
    assert leg.quantity == pytest.approx(held - net, rel=1e-6)
    (delta,) = hedge.delta
    assert delta.symbol == "BTCUSD"
    assert delta.delta == pytest.approx(net, rel=1e-6)
    assert delta.perp_quantity == pytest.approx(-net, rel=1e-6)
    # one underlying hedged with itself: nothing left
    assert hedge.effectiveness == pytest.approx(1.0)
    assert hedge.tails[0].var_hedged == pytest.approx(0.0, abs=1e-6)
    # the VaR pair is of the delta-linearised book: |delta| S sigma z
    assert hedge.tails[0].var == pytest.approx(2.326348 * abs(net) * SPOT * 0.04, rel=1e-6)


def test_an_uncorrelated_second_instrument_takes_no_hedge(make_config: MakeConfig) -> None:
    config = make_config(DERIBIT.replace("HEDGES", '"BTCUSD", "ETHUSD"'), base=BASE)
    risk = account_risk(config, {"BTCUSD": SPOT, "ETHUSD": 3_000.0}, daily_cov())
    btc, eth = hedge_of(risk).legs
    assert btc.trade == pytest.approx(-fd_delta(config, SPOT), rel=1e-6)
    assert eth.quantity == pytest.approx(0.0, abs=1e-9)
    assert eth.held == 0.0


def test_a_correlated_instrument_hedges_another_underlying(make_config: MakeConfig) -> None:
    """An ETH perp book hedged with BTC: -rho sigma_E e / (sigma_B p_B), as for portfolios."""
    config = make_config(LINEAR, base=BASE)
    rho = 0.8
    risk = account_risk(config, {"BTCUSD": SPOT, "ETHUSD": 3_200.0}, daily_cov(rho=rho))
    hedge = hedge_of(risk)
    (leg,) = hedge.legs
    assert leg.quantity == pytest.approx(-rho * 0.05 * 30 * 3_200.0 / (0.04 * SPOT), rel=1e-10)
    assert hedge.delta == ()  # no options: no delta and vega figures
    assert hedge.tails[0].var == pytest.approx(risk.tails[0].var, rel=1e-12)
    assert hedge.tails[0].var_hedged == pytest.approx(
        risk.tails[0].var * math.sqrt(1 - rho**2), rel=1e-10
    )


def test_vega_and_the_cost_of_a_one_sigma_vol_of_vol_shock(make_config: MakeConfig) -> None:
    """Short 4 USDC calls: vega per point, IV x exp(+-w), w = 1.2 sqrt(1/365); QuantLib reprices."""
    config = make_config(USDC_CALL, base=BASE)
    risk = account_risk(config, {"BTCUSD": SPOT}, daily_cov())
    (delta,) = hedge_of(risk).delta
    w = 1.2 * math.sqrt(DAY / YEAR)
    assert delta.vol_of_vol == pytest.approx(1.2)
    assert delta.iv_shock == pytest.approx(math.expm1(w), rel=1e-12)
    (exposure,) = risk.exposures
    assert delta.vega == pytest.approx(exposure.vega, rel=1e-12)
    years = (datetime(2026, 12, 25, 8, tzinfo=UTC).timestamp() - TS) / YEAR

    def call(iv: float) -> float:
        return float(ql.blackFormula(ql.Option.Call, 110_000.0, SPOT, iv * math.sqrt(years), 1.0))

    loss_up = 4 * (call(0.6 * math.exp(w)) - call(0.6))  # short calls lose when IV rises
    loss_down = 4 * (call(0.6 * math.exp(-w)) - call(0.6))
    assert delta.vega_cost == pytest.approx(max(loss_up, loss_down, 0.0), rel=1e-9)
    assert delta.vega < 0.0
    # first order: vega per point x IV x (e^w - 1) x 100 points
    assert delta.vega_cost == pytest.approx(-delta.vega * 60 * math.expm1(w), rel=0.05)


def test_an_account_missing_a_price_reports_the_legs_without_figures(
    make_config: MakeConfig,
) -> None:
    config = make_config(DERIBIT.replace("HEDGES", '"BTCUSD"'), base=BASE)
    risk = account_risk(config, {"BTCUSD": math.nan}, daily_cov())
    hedge = hedge_of(risk)
    (leg,) = hedge.legs
    assert leg.quantity is None
    assert leg.held == pytest.approx(-50_000 / 95_000)
    assert hedge.reason == NO_DATA


def test_a_hedge_instrument_without_covariance_gives_null_figures(
    make_config: MakeConfig,
) -> None:
    config = make_config(LINEAR, base=BASE)
    cov = daily_cov(rho=0.5)
    cov[0, :] = cov[:, 0] = math.nan
    hedge = hedge_of(account_risk(config, {"BTCUSD": SPOT, "ETHUSD": 3_000.0}, cov))
    assert hedge.legs[0].quantity is None
    assert hedge.reason == NO_DATA


def test_positions_replaced_with_an_untracked_hedge_symbol_are_refused(
    make_config: MakeConfig,
) -> None:
    config = make_config(LINEAR, base=BASE)
    engine = Engine(config)
    account = config.accounts[0]
    bad = msgspec.structs.replace(account, hedge_with=("SOLUSD",))
    with pytest.raises(ConfigError, match="SOLUSD not tracked"):
        engine.replace_accounts([bad])
    assert engine.accounts == (account,)
