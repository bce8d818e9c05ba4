"""Rules on ``hedge_drift``: one instance per hedged book, firing when correlations move."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.model import AlertState
from monitor.risk.snapshot import HedgeLeg, HedgeRisk, RiskSnapshot
from monitor.rules import RuleEngine

MakeConfig = Callable[..., Config]

BASE = """
[universe]
symbols = ["PPP", "HHH"]

[estimator]
halflife = "2h"
slow_halflife = "1d"
min_observations = 10
preaverage = "0s"

[risk]
horizon = "1d"
confidence = [0.99]
distribution = "normal"

[[portfolios]]
name = "book"
positions = [{ symbol = "PPP", quantity = 1000 }HELD]
hedge_with = ["HHH"]

[[portfolios]]
name = "plain"
positions = [{ symbol = "PPP", quantity = 1 }]

[[accounts]]
name = "perps"
collateral = [ { asset = "USDT", amount = 10000 } ]
hedge_with = ["HHH"]

[[accounts.positions]]
instrument = "PPPUSDT"
kind = "linear"
underlying = "PPP"
contracts = 10
entry_price = 100

[[rules]]
name = "stale-hedge"
metric = "hedge_drift"
op = ">"
threshold = 0.5
for = "30m"
resolve_threshold = 0.2
LABELS
"""


def config_of(make_config: MakeConfig, held: float | None = None, labels: str = "") -> Config:
    extra = "" if held is None else f', {{ symbol = "HHH", quantity = {held!r} }}'
    return make_config(base=BASE.replace("HELD", extra).replace("LABELS", labels))


def test_an_unlabelled_rule_watches_every_portfolio_and_account(make_config: MakeConfig) -> None:
    config = config_of(make_config)
    rules = RuleEngine(config.rules, ["book", "plain"], ["perps"])
    assert [(i.portfolio, dict(i.labels)) for i in rules.instances] == [
        ("book", {"portfolio": "book"}),
        ("plain", {"portfolio": "plain"}),
        (None, {"account": "perps"}),
    ]


def test_a_labelled_rule_watches_its_book(make_config: MakeConfig) -> None:
    for labels, expected in (
        ('labels = { portfolio = "book" }', [("book", {"portfolio": "book"})]),
        ('labels = { account = "perps" }', [(None, {"account": "perps"})]),
    ):
        config = config_of(make_config, labels=labels)
        rules = RuleEngine(config.rules, ["book", "plain"], ["perps"])
        assert [(i.portfolio, dict(i.labels)) for i in rules.instances] == expected


def _with_drift(snap: RiskSnapshot, ts: float, book: float | None, account: float) -> RiskSnapshot:
    def hedge(drift: float | None) -> HedgeRisk:
        return HedgeRisk(legs=(HedgeLeg("HHH", 1.0),), drift=drift)

    portfolios = tuple(
        dataclasses.replace(p, hedge=hedge(book)) if p.name == "book" else p
        for p in snap.portfolios
    )
    accounts = tuple(dataclasses.replace(a, hedge=hedge(account)) for a in snap.accounts)
    return dataclasses.replace(snap, ts=ts, portfolios=portfolios, accounts=accounts)


def test_each_book_fires_on_its_own_drift(make_config: MakeConfig) -> None:
    """The account's drift fires its instance; the portfolio's unknown drift changes nothing."""
    config = config_of(make_config)
    rules = RuleEngine(config.rules, ["book", "plain"], ["perps"])
    base = Engine(config).snapshot(0.0)
    assert rules.evaluate(_with_drift(base, 0.0, None, 0.9)) == []
    (event,) = rules.evaluate(_with_drift(base, 1800.0, None, 0.8))
    assert (event.state, dict(event.labels), event.value) == (
        AlertState.FIRING,
        {"account": "perps"},
        0.8,
    )
    (resolved,) = rules.evaluate(_with_drift(base, 1900.0, 0.1, 0.15))
    assert resolved.state is AlertState.RESOLVED


def simulate(rho: float, minutes: int, start_logp: np.ndarray, seed: int) -> np.ndarray:
    """Minute log prices of PPP (5% a day) and HHH (3% a day) with correlation ``rho``."""
    sd = np.array([0.05, 0.03]) * np.sqrt(60.0 / 86_400.0)
    chol = np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]]))
    shocks = np.random.default_rng(seed).standard_normal((minutes, 2)) @ chol.T * sd
    return start_logp + np.cumsum(shocks, axis=0)


def run(config: Config, logp: np.ndarray) -> list[tuple[float, float | None, list[AlertState]]]:
    """Feed minute candles, a snapshot and a rule evaluation every 5 minutes."""
    engine = Engine(config)
    rules = RuleEngine(config.rules, [p.name for p in config.portfolios], engine.account_names)
    out = []
    for k, row in enumerate(logp, start=1):
        ts = 1.7e9 + 60.0 * k
        engine.ingest(np.full(2, ts), ["PPP", "HHH"], np.exp(row))
        if k % 5 == 0:
            snap = engine.snapshot(ts)
            risk = snap.portfolio("book")
            assert risk is not None
            assert risk.hedge is not None
            events = [e.state for e in rules.evaluate(snap) if e.portfolio == "book"]
            out.append((ts, risk.hedge.drift, events))
    return out


def test_a_hedge_goes_stale_when_correlations_move(make_config: MakeConfig) -> None:
    """Hold the minimum-variance hedge of a 0.8-correlation day; at 0.4 it is twice too big.

    Drift |held - h| / |h| goes from 0 to about 0.8 / 0.4 - 1 = 1 and the rule fires.
    """
    start = np.log([100.0, 2_000.0])
    calm = simulate(0.8, 1440, start, seed=1)
    unheld = run(config_of(make_config), calm)
    assert all(drift is None for _, drift, _ in unheld)  # nothing held: no drift
    engine = Engine(config_of(make_config))
    for k, row in enumerate(calm, start=1):
        engine.ingest(np.full(2, 1.7e9 + 60.0 * k), ["PPP", "HHH"], np.exp(row))
    risk = engine.snapshot(1.7e9 + 60.0 * len(calm)).portfolio("book")
    assert risk is not None
    assert risk.hedge is not None
    held = risk.hedge.legs[0].quantity
    assert held is not None
    moved = simulate(0.4, 720, calm[-1], seed=2)
    results = run(config_of(make_config, held=held), np.vstack([calm, moved]))
    at_switch = next(r for r in results if r[0] == 1.7e9 + 60.0 * len(calm))
    assert at_switch[1] is not None
    assert at_switch[1] < 1e-9  # holding exactly the minimum-variance hedge
    fired = [ts for ts, _, events in results if AlertState.FIRING in events]
    assert len(fired) == 1
    assert fired[0] > at_switch[0]
    final = results[-1][1]
    assert final is not None
    assert 0.6 < final < 1.6
