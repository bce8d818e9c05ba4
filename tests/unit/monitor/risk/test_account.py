"""Accounts: margin per model, liquidation distance, stress scenarios, Greeks and VaR.

Every expected figure is computed by hand in the test or by an independent, already tested
function (``monitor.risk.margin``), never read back from the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the library's own alias)
from scipy import stats

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.errors import ConfigError
from monitor.risk.account import AccountModel, MarketState
from monitor.risk.book import Book, OptionMark
from monitor.risk.liquidation import liquidation_move
from monitor.risk.margin import binance_maintenance, brackets_from_table
from monitor.rules import RuleEngine

DAY = 86_400.0
TS = 1_780_000_000.0  # 2026-05-28
TIERS = "[[50000, 0.004], [250000, 0.005], [1000000, 0.01], [10000000, 0.025]]"
BTCUSDT = brackets_from_table([(50_000, 0.004), (250_000, 0.005), (1e6, 0.01), (1e7, 0.025)])

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
"""

BINANCE = f"""
[[accounts]]
name = "perps"
margin = "binance-usdm"
brackets = {TIERS}
collateral = [ {{ asset = "USDT", amount = 20000 }} ]

[[accounts.positions]]
instrument = "BTCUSDT"
kind = "linear"
underlying = "BTCUSD"
contracts = 2
entry_price = 100000
"""

MakeConfig = Callable[..., Config]


def market(
    config: Config,
    prices: dict[str, float],
    sigmas: dict[str, float] | None = None,
    marks: dict[str, OptionMark] | None = None,
    ts: float = TS,
) -> MarketState:
    """A market with the given prices and a diagonal covariance of daily sigmas (or none)."""
    symbols = config.tracked_symbols
    price = np.array([prices.get(s, 1.0) for s in symbols])
    if sigmas is None:
        cov, ready = np.full((len(symbols),) * 2, np.nan), np.zeros(len(symbols), bool)
    else:
        daily = np.array([sigmas.get(s, 0.001) for s in symbols])
        cov, ready = np.diag(daily**2 / DAY), np.ones(len(symbols), bool)
    return MarketState(ts, price, cov, ready, marks or {})


def model(config: Config, index: int = 0) -> AccountModel:
    return AccountModel(config.accounts[index], config.tracked_symbols, config.risk, config.stress)


# --- Binance USD-M ----------------------------------------------------------------------------


def test_binance_margin_ratio_by_hand(make_config: MakeConfig) -> None:
    """2 BTC long from 100k at 110k: balance 20k + 20k, notional 220k in tier 2 (0.5%, 50)."""
    config = make_config(BINANCE, base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 110_000.0}))
    assert risk.equity == pytest.approx(40_000.0)
    assert risk.margin_balance == pytest.approx(40_000.0)
    assert risk.maintenance == pytest.approx(220_000 * 0.005 - 50.0)
    assert risk.margin_ratio == pytest.approx(1_050.0 / 40_000.0)


def test_binance_liquidation_move_agrees_with_the_margin_module(make_config: MakeConfig) -> None:
    config = make_config(BINANCE, base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 110_000.0}, {"BTCUSD": 0.04}))
    expected = liquidation_move(
        lambda m: 2 * 110_000.0 * m,
        lambda m: binance_maintenance(2 * 110_000.0 * (1 + m), BTCUSDT),
        40_000.0,
        hi=3.0,
    )
    (liq,) = risk.liquidation
    assert liq.symbol == "BTCUSD"
    assert liq.down is not None
    assert liq.down == pytest.approx(expected.down_frac, abs=1e-6)
    assert liq.up is None
    assert expected.up_frac is None
    # closed form in tier 2: 40k + 220k m = 220k (1 + m) 0.005 - 50
    assert liq.down == pytest.approx((1_100 - 50 - 40_000) / (220_000 * (1 - 0.005)), abs=1e-6)
    sigma = 0.04
    assert liq.down_sigma == pytest.approx(abs(math.log1p(liq.down)) / sigma, rel=1e-9)
    # one symbol: the covariance direction and the single-symbol move agree
    assert risk.liquidation_distance_sigma == pytest.approx(liq.down_sigma, rel=1e-5)


def test_a_depegging_stablecoin_reduces_margin(make_config: MakeConfig) -> None:
    """USDC collateral revalued by its own feed: 0.90 takes 10% of it (after the haircut)."""
    config = make_config(
        BINANCE.replace(
            '{ asset = "USDT", amount = 20000 }',
            '{ asset = "USDC", amount = 20000, price_symbol = "USDCUSD", stablecoin = true, '
            "haircut = 0.05 }",
        ),
        base=BASE,
    )
    account = model(config)
    pegged = account.risk(market(config, {"BTCUSD": 100_000.0, "USDCUSD": 1.0}))
    depegged = account.risk(market(config, {"BTCUSD": 100_000.0, "USDCUSD": 0.90}))
    assert pegged.margin_balance == pytest.approx(20_000 * 0.95)
    assert depegged.margin_balance == pytest.approx(20_000 * 0.95 * 0.90)
    assert depegged.equity == pytest.approx(18_000.0)
    mm = 200_000 * 0.005 - 50
    assert pegged.margin_ratio == pytest.approx(mm / 19_000)
    assert depegged.margin_ratio == pytest.approx(mm / 17_100)
    closer, farther = depegged.liquidation[0].down, pegged.liquidation[0].down
    assert closer is not None
    assert farther is not None
    assert closer > farther  # nearer to 0
    # the stablecoin is not a risk symbol: stress scenarios do not move it
    assert [e.symbol for e in pegged.exposures] == ["BTCUSD"]


# --- Deribit portfolio margin -----------------------------------------------------------------

PERP_Q, FUTURE_Q, INDEX_USD = 0.314538364, -0.001187534, 65666.19


def test_deribit_account_reproduces_the_published_maintenance(make_config: MakeConfig) -> None:
    """Deribit's simulate example as an account: maintenance 0.0502745050887619 BTC.

    The perpetual and the June future are inverse positions of ``q x index`` USD; the future
    expires 10.9 days later (the 1% roll-shock floor binds, as in the example).
    """
    expiry = TS + 10.9 * DAY
    when = datetime.fromtimestamp(expiry, UTC).isoformat()
    config = make_config(
        f"""
        [[accounts]]
        name = "deribit"
        margin = "deribit-pm"
        settlement = "BTC"
        settlement_symbol = "BTCUSD"
        collateral = [ {{ asset = "BTC", amount = 1.0, price_symbol = "BTCUSD" }} ]

        [[accounts.positions]]
        instrument = "BTC-PERPETUAL"
        kind = "inverse"
        underlying = "BTCUSD"
        contracts = {PERP_Q * INDEX_USD!r}
        entry_price = {INDEX_USD!r}

        [[accounts.positions]]
        instrument = "BTC-28JUN24"
        kind = "inverse"
        underlying = "BTCUSD"
        contracts = {FUTURE_Q * INDEX_USD!r}
        entry_price = {INDEX_USD!r}
        expiry = {when}
        """,
        base=BASE,
    )
    risk = model(config).risk(market(config, {"BTCUSD": INDEX_USD}))
    assert risk.maintenance is not None
    assert risk.margin_balance is not None
    assert risk.maintenance / INDEX_USD == pytest.approx(0.0502745050887619, rel=1e-9)
    assert risk.margin_balance == pytest.approx(INDEX_USD)  # 1 BTC, no P&L at entry
    assert risk.margin_ratio == pytest.approx(0.0502745050887619, rel=1e-9)


# --- Stress -----------------------------------------------------------------------------------

CASH = """
[[accounts]]
name = "book"
collateral = [ { asset = "USD", amount = 50000 } ]

[[accounts.positions]]
instrument = "BTC"
kind = "spot"
underlying = "BTCUSD"
contracts = 1

[[accounts.positions]]
instrument = "ETHUSDT"
kind = "linear"
underlying = "ETHUSD"
contracts = -10
entry_price = 3000

[stress]
k_sigma = 3.0
shocks = [ { name = "2020-03-12", moves = { BTCUSD = -0.39, ETHUSD = -0.43 } } ]
"""


def test_stress_scenarios_of_a_hand_checkable_book(make_config: MakeConfig) -> None:
    """1 BTC at 100k long, 10 ETH at 3000 short: a common move m earns 70k m."""
    config = make_config(CASH, base=BASE)
    prices = {"BTCUSD": 100_000.0, "ETHUSD": 3_000.0}
    risk = model(config).risk(market(config, prices, {"BTCUSD": 0.05, "ETHUSD": 0.04}))
    by_name = {s.name: s for s in risk.scenarios}
    assert by_name["grid"].pnl == pytest.approx(-0.16 * 70_000)
    assert by_name["extended"].pnl == pytest.approx(-0.66 * 70_000)
    assert by_name["2020-03-12"].pnl == pytest.approx(-39_000 + 12_900)
    down = 100_000 * math.expm1(-0.15) - 30_000 * math.expm1(-0.12)
    up = 100_000 * math.expm1(0.15) - 30_000 * math.expm1(0.12)
    assert by_name["diversification_failure"].pnl == pytest.approx(min(down, up))
    # the extended moves count 35% (SPAN's extreme-move coverage): 0.35 x 46.2k < 26.1k
    assert by_name["extended"].coverage == 0.35
    assert risk.stress_loss == pytest.approx(39_000 - 12_900)
    assert risk.stress_loss_uncapped == risk.stress_loss
    assert risk.stress_loss_ratio == pytest.approx((39_000 - 12_900) / 150_000)
    assert by_name["grid"].margin_ratio is None  # cash account: no margin
    assert "iv_up" not in by_name  # no options, no IV scenarios
    assert risk.vega == 0.0
    losses = {e.symbol: e.stress_loss for e in risk.exposures}
    # BTC alone: max(16k grid, 0.35 x 66k); ETH alone (short): max(4.8k, 0.35 x 30k at +100%)
    assert losses == pytest.approx({"BTCUSD": 0.35 * 66_000.0, "ETHUSD": 0.35 * 30_000.0})
    assert risk.margin_ratio is None
    assert risk.liquidation == ()


def test_delta_equivalent_var_of_a_linear_book(make_config: MakeConfig) -> None:
    """Normal VaR of e = (100k, -30k) with independent daily sigmas 5% and 4%."""
    config = make_config(CASH, base=BASE)
    prices = {"BTCUSD": 100_000.0, "ETHUSD": 3_000.0}
    risk = model(config).risk(market(config, prices, {"BTCUSD": 0.05, "ETHUSD": 0.04}))
    sigma = math.hypot(100_000 * 0.05, 30_000 * 0.04)
    z = stats.norm.ppf(0.99)
    (tail,) = risk.tails
    assert tail.var == pytest.approx(z * sigma)
    assert tail.stressed_var == pytest.approx(z * abs(100_000 * 0.05 - 30_000 * 0.04))
    assert sum(tail.component_var or ()) == pytest.approx(z * sigma)
    (dg,) = risk.delta_gamma  # no gamma: the delta-gamma VaR is the normal one
    assert dg.var == pytest.approx(z * sigma)


@pytest.mark.parametrize(
    ("collateral", "loss", "ratio"),
    [(20_000.0, 20_000.0, 1.0), (150_000.0, 46_200.0, 46_200 / 150_000), (4e5, 46_200.0, 0.1155)],
)
def test_stress_loss_is_capped_at_equity_and_its_ratio_reads_leverage(
    make_config: MakeConfig, collateral: float, loss: float, ratio: float
) -> None:
    """2 BTC long at 100k: grid -16% loses 32k; the -66% move 132k, of which 35% counts.

    The worst loss, 46.2k, is more than a 20k account has: it reports 20k and a ratio of 1.
    With more collateral (less leverage) the ratio falls in proportion.
    """
    config = make_config(BINANCE.replace("amount = 20000", f"amount = {collateral}"), base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 100_000.0}))
    by_name = {s.name: s for s in risk.scenarios}
    assert by_name["extended"].pnl == pytest.approx(-132_000.0)  # reported in full
    assert by_name["grid"].pnl == pytest.approx(-32_000.0)
    assert risk.stress_loss_uncapped == pytest.approx(46_200.0)
    assert risk.stress_loss == pytest.approx(loss)
    assert risk.stress_loss_ratio == pytest.approx(ratio)


def test_a_cash_account_is_not_capped_and_a_wiped_margin_account_reads_one(
    make_config: MakeConfig,
) -> None:
    """No liquidation on a cash account: a short can lose more than the equity (a debt)."""
    short = CASH.split("[stress]")[0].replace("amount = 50000", "amount = 5000")
    short = short.replace("contracts = 1\n", "contracts = 0.01\n")
    config = make_config(short, base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 100_000.0, "ETHUSD": 3_000.0}))
    # equity 5k + 1k of BTC; at +100% the ETH short (10 x 3000) loses 30k, BTC gains 1k;
    # 35% of the 29k counts
    assert risk.equity == pytest.approx(6_000.0)
    assert risk.stress_loss == pytest.approx(0.35 * 29_000.0)
    assert risk.stress_loss_ratio == pytest.approx(0.35 * 29_000.0 / 6_000.0)
    assert risk.stress_loss_ratio is not None
    assert risk.stress_loss_ratio > 1.0
    config = make_config(BINANCE, base=BASE)
    gone = model(config).risk(market(config, {"BTCUSD": 89_000.0}))  # 20k - 22k < 0
    assert gone.equity is not None
    assert gone.equity < 0.0
    assert gone.stress_loss == 0.0
    assert gone.stress_loss_ratio == 1.0


def test_iv_scenarios_and_vega_of_an_option_book_by_quantlib(make_config: MakeConfig) -> None:
    """IV x1.5 and x0.75 with prices held, and vega per vol point, from QuantLib's Black.

    The book: short 3 inverse 100k puts and long 2 linear 120k calls, expiring 25 Dec 2026
    08:00 UTC, IV 55%, the perpetual and the coin collateral (no vega).
    """
    config = make_config(OPTIONS, base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 100_000.0}))
    years = (datetime(2026, 12, 25, 8, tzinfo=UTC).timestamp() - TS) / (365 * DAY)

    def book(iv: float) -> float:
        def black(kind: int, strike: float) -> float:
            return float(ql.blackFormula(kind, strike, 100_000.0, iv * math.sqrt(years), 1.0))

        return -3 * black(ql.Option.Put, 100_000.0) + 2 * black(ql.Option.Call, 120_000.0)

    by_name = {s.name: s for s in risk.scenarios}
    assert by_name["iv_up"].pnl == pytest.approx(book(0.55 * 1.5) - book(0.55), rel=1e-9)
    assert by_name["iv_down"].pnl == pytest.approx(book(0.55 * 0.75) - book(0.55), rel=1e-9)
    assert risk.vega == pytest.approx((book(0.555) - book(0.545)) / 1.0, rel=1e-4)
    assert risk.vega is not None
    assert risk.vega < 0.0  # short more vega (3 puts at the money) than long


def test_figures_needing_the_covariance_wait_for_it(make_config: MakeConfig) -> None:
    config = make_config(BINANCE, base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 110_000.0}))
    assert risk.margin_ratio is not None
    assert risk.liquidation[0].down is not None
    assert risk.liquidation_distance_sigma is None
    assert risk.liquidation[0].down_sigma is None
    assert risk.tails[0].var is None
    assert "diversification_failure" not in {s.name for s in risk.scenarios}
    missing = model(config).risk(market(config, {"BTCUSD": math.nan}))
    assert missing.margin_ratio is None
    assert missing.scenarios == ()


# --- Options ----------------------------------------------------------------------------------

OPTIONS = """
[[accounts]]
name = "opts"
margin = "deribit-pm"
settlement = "BTC"
settlement_symbol = "BTCUSD"
collateral = [ { asset = "BTC", amount = 2.0, price_symbol = "BTCUSD" } ]

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


def test_book_greeks_match_finite_differences(make_config: MakeConfig) -> None:
    """Analytic delta, gamma, vega and theta of the book against bumps of its full value."""
    config = make_config(OPTIONS, base=BASE)
    symbols = config.tracked_symbols
    book = Book(config.accounts[0], {s: i for i, s in enumerate(symbols)})
    marks = {"BTC-25DEC26-100000-P": OptionMark(0.55, 1.004)}  # a basis on one option
    price = np.array([100_000.0, 3_000.0, 1.0])

    def equity(p: float, mult: float = 1.0, ts: float = TS) -> float:
        row = price.copy()
        row[0] = p
        return float(book.value(row[None, :], np.array([mult]), ts, marks).equity[0])

    g = book.greeks(price, TS, marks)
    h = 1.0
    assert g.delta[0] == pytest.approx((equity(1e5 + h) - equity(1e5 - h)) / (2 * h), rel=1e-6)
    fd_gamma = (equity(1e5 + 50) - 2 * equity(1e5) + equity(1e5 - 50)) / 50**2
    assert g.gamma[0] == pytest.approx(fd_gamma, rel=1e-4)
    eps = 1e-5  # vol multiplier bump: dV/dmult = iv x vega when every option has the same iv
    fd_vega = (equity(1e5, 1 + eps) - equity(1e5, 1 - eps)) / (2 * eps) / 0.55
    assert g.vega[0] == pytest.approx(fd_vega, rel=1e-6)
    dt = 3600.0
    fd_theta = (equity(1e5, ts=TS + dt) - equity(1e5, ts=TS - dt)) / (2 * dt / (365 * DAY))
    assert g.theta[0] == pytest.approx(fd_theta, rel=1e-4)
    assert g.delta[1:] == pytest.approx([0.0, 0.0])


def test_delta_gamma_var_of_a_short_put_book_exceeds_delta_normal(
    make_config: MakeConfig,
) -> None:
    """Short options: negative gamma fattens the loss tail beyond the delta-equivalent VaR.

    The delta-gamma figure (valid at this mild skew) must exceed the normal VaR of the book's
    USD delta, worked out from the reported delta. The account's VaR is the Monte Carlo,
    whose accuracy tests/unit/monitor/risk/test_optionvar.py holds; here only its form is checked.
    """
    config = make_config(OPTIONS, base=BASE)
    risk = model(config).risk(market(config, {"BTCUSD": 100_000.0}, {"BTCUSD": 0.05}))
    (exposure,) = risk.exposures
    assert exposure.gamma < 0.0
    (dg,), (tail,) = risk.delta_gamma, risk.tails
    assert dg.var is not None
    assert tail.var is not None
    assert tail.cvar is not None
    assert dg.var > stats.norm.ppf(0.99) * abs(exposure.delta_usd) * 0.05
    assert 0.0 < tail.var <= tail.cvar
    assert tail.stressed_var is None  # no correlation-1 or Euler figures from the Monte Carlo
    assert risk.maintenance is not None
    assert risk.maintenance > 0.0
    assert risk.liquidation_distance_sigma is not None
    assert risk.liquidation_distance_sigma > 0


def test_a_mark_iv_from_the_feed_reprices_the_options(make_config: MakeConfig) -> None:
    config = make_config(OPTIONS, base=BASE)
    account = model(config)
    prices = {"BTCUSD": 100_000.0}
    fallback = account.risk(market(config, prices))
    marked = account.risk(
        market(config, prices, marks={"BTC-25DEC26-100000-P": OptionMark(0.80, 1.0)})
    )
    assert marked.equity is not None
    assert fallback.equity is not None
    assert marked.equity < fallback.equity  # a dearer put shorted: equity falls


# --- Engine, rules, config --------------------------------------------------------------------


def ticks(engine: Engine, prices: dict[str, list[float]], start: float = TS) -> float:
    t = start
    for step in range(len(next(iter(prices.values())))):
        t += 1.0
        for symbol, path in prices.items():
            engine.on_tick(t, symbol, path[step])
    return t


def test_depeg_ticks_raise_the_margin_ratio_and_fire_the_rule(make_config: MakeConfig) -> None:
    config = make_config(
        BINANCE.replace(
            '{ asset = "USDT", amount = 20000 }',
            '{ asset = "USDC", amount = 20000, price_symbol = "USDCUSD", stablecoin = true }',
        )
        + """
        [[rules]]
        name = "margin"
        metric = "margin_ratio"
        op = ">"
        threshold = 0.06
        labels = { account = "perps" }
        """,
        base=BASE,
    )
    engine = Engine(config)
    rules = RuleEngine(config.rules, [], engine.account_names)
    rng = np.random.default_rng(5)
    btc = list(100_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, 60))))
    usdc = list(np.linspace(1.0, 0.80, 60))
    fired, ratios = [], []
    for i in range(60):
        t = ticks(
            engine,
            {"BTCUSD": btc[i : i + 1], "ETHUSD": [3000.0], "USDCUSD": usdc[i : i + 1]},
            TS + i,
        )
        snap = engine.snapshot(t)
        account = snap.account("perps")
        assert account is not None
        assert account.margin_ratio is not None
        mm = binance_maintenance(2 * btc[i], BTCUSDT)
        balance = 20_000 * usdc[i] + 2 * (btc[i] - 100_000)
        assert account.margin_ratio == pytest.approx(mm / balance)
        ratios.append(account.margin_ratio)
        fired += [e for e in rules.evaluate(snap) if e.state.value == "firing"]
    assert ratios[0] < 0.06 < ratios[-1]
    assert [e.labels for e in fired] == [(("account", "perps"),)]


def test_replacing_accounts_keeps_the_estimators(make_config: MakeConfig) -> None:
    config = make_config(BINANCE, base=BASE)
    engine = Engine(config)
    rng = np.random.default_rng(2)
    path = list(100_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, 50))))
    t = ticks(engine, {"BTCUSD": path, "ETHUSD": [3000.0] * 50, "USDCUSD": [1.0] * 50})
    before = engine.export_state()
    cash = make_config(CASH, base=BASE).accounts
    engine.replace_accounts(cash)
    after = engine.export_state()
    assert after.ticks == before.ticks
    for name, array in before.covariance.items():
        np.testing.assert_array_equal(after.covariance[name], array)
    assert engine.snapshot(t).accounts[0].name == "book"
    bad = make_config(BINANCE, base=BASE)
    unknown = msgspec.structs.replace(
        bad.accounts[0],
        positions=(msgspec.structs.replace(bad.accounts[0].positions[0], underlying="SOLUSD"),),
    )
    with pytest.raises(ConfigError, match="SOLUSD not tracked"):
        engine.replace_accounts((unknown,))
    assert engine.account_names == ("book",)  # unchanged


def test_account_rules_run_per_account_and_keep_state_across_replacements(
    make_config: MakeConfig,
) -> None:
    config = make_config(
        BINANCE
        + CASH.split("[stress]")[0]
        + """
        [[rules]]
        name = "stress"
        metric = "stress_loss"
        op = ">"
        threshold = 1000
        """,
        base=BASE,
    )
    rules = RuleEngine(config.rules, [], ["perps", "book"])
    assert [dict(i.labels)["account"] for i in rules.instances] == ["perps", "book"]
    rules.instances[1].state = rules.instances[1].state.FIRING
    rules.set_accounts(["book", "new"])
    states = {dict(i.labels)["account"]: i.state.value for i in rules.instances}
    assert states == {"book": "firing", "new": "inactive"}


def test_vega_and_stress_loss_ratio_are_account_rule_metrics(make_config: MakeConfig) -> None:
    """One instance per account; each fires on its own account's figure."""
    config = make_config(
        OPTIONS
        + BINANCE
        + """
        [[rules]]
        name = "short-vega"
        metric = "vega"
        op = "<"
        threshold = -100

        [[rules]]
        name = "wiped-out"
        metric = "stress_loss_ratio"
        op = ">="
        threshold = 0.99
        """,
        base=BASE,
    )
    engine = Engine(config)
    rules = RuleEngine(config.rules, [], engine.account_names)
    t = ticks(engine, {"BTCUSD": [100_000.0] * 3, "ETHUSD": [3000.0] * 3, "USDCUSD": [1.0] * 3})
    snap = engine.snapshot(t)
    opts, perps = snap.account("opts"), snap.account("perps")
    assert opts is not None
    assert perps is not None
    assert opts.vega is not None
    assert opts.vega < -100 < 0.0 == perps.vega
    assert perps.stress_loss_ratio == 1.0
    assert opts.stress_loss_ratio is not None
    assert opts.stress_loss_ratio < 0.99
    fired = {(e.rule, e.labels) for e in rules.evaluate(snap) if e.state.value == "firing"}
    assert fired == {
        ("short-vega", (("account", "opts"),)),
        ("wiped-out", (("account", "perps"),)),
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (BINANCE + "[[accounts.positions]]" + BINANCE.split("[[accounts.positions]]")[1], "twice"),
        (BINANCE.replace("entry_price = 100000", ""), "needs its entry price"),
        (BINANCE.replace(f"brackets = {TIERS}", ""), "needs maintenance brackets"),
        (BINANCE.replace(TIERS, "[[50000, 0.004], [40000, 0.005]]"), "brackets"),
        (
            OPTIONS.replace('margin = "deribit-pm"', 'margin = "bybit-unified"'),
            "not margined by the bybit-unified",
        ),
        (OPTIONS.replace("contracts = -3\niv = 0.55", "contracts = -3"), "fallback iv"),
        (
            OPTIONS.replace("BTC-25DEC26-100000-P", "MYPUT"),
            "needs strike, expiry and right",
        ),
        (
            OPTIONS.replace(
                'kind = "inverse"\nunderlying = "BTCUSD"', 'kind = "inverse"\nunderlying = "ETHUSD"'
            ),
            "one underlying",
        ),
        (BINANCE + CASH.replace('name = "book"', 'name = "perps"'), "duplicate name"),
        (
            CASH.replace("ETHUSD = -0.43", "SOLUSD = -0.43"),
            '"SOLUSD" is not a tracked symbol',
        ),
        (
            BINANCE + '[[rules]]\nname = "m"\nmetric = "margin_ratio"\nop = ">"\nthreshold = 0.8\n'
            'labels = { account = "other" }\n',
            'unknown account "other"',
        ),
        (
            '[[rules]]\nname = "m"\nmetric = "margin_ratio"\nop = ">"\nthreshold = 0.8\n',
            "expected an [[accounts]] entry",
        ),
    ],
)
def test_bad_accounts_are_config_errors(make_config: MakeConfig, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(extra, base=BASE)
    assert message in str(info.value)
    assert (
        "accounts" in str(info.value) or "rules" in str(info.value) or "stress" in str(info.value)
    )
