"""Replay columns of the hedges: ``hedge_qty:<S>`` and ``var_D_hedged`` in both tables."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.risk.snapshot import RiskSnapshot
from monitor.table import AccountTable, SnapshotTable

BASE = """
[universe]
symbols = ["PPP", "HH1", "HH2"]

[estimator]
halflife = "1h"
slow_halflife = "1d"
min_observations = 10
preaverage = "0s"

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "normal"

[[portfolios]]
name = "plain"
positions = [{ symbol = "PPP", quantity = 10 }]

[[portfolios]]
name = "hedged"
positions = [{ symbol = "PPP", quantity = 1000 }, { symbol = "HH1", quantity = -2 }]
hedge_with = ["HH1", "HH2"]

[[accounts]]
name = "perps"
collateral = [ { asset = "USDT", amount = 10000 } ]
hedge_with = ["HH2"]

[[accounts.positions]]
instrument = "PPPUSDT"
kind = "linear"
underlying = "PPP"
contracts = 10
entry_price = 100
"""


def snapshots(config: Config, count: int) -> list[RiskSnapshot]:
    """A snapshot every 10 minutes of a correlated market, the first ones before warm-up."""
    engine = Engine(config)
    rng = np.random.default_rng(4)
    chol = np.linalg.cholesky(np.array([[1, 0.7, 0.5], [0.7, 1, 0.4], [0.5, 0.4, 1]]))
    logp = np.log([100.0, 2_000.0, 300.0])
    out = []
    for k in range(1, 10 * count + 1):
        logp = logp + rng.standard_normal(3) @ chol.T * 0.002
        ts = 1.7e9 + 60.0 * k
        engine.ingest(np.full(3, ts), ["PPP", "HH1", "HH2"], np.exp(logp))
        if k % 10 == 0:
            out.append(engine.snapshot(ts))
    return out


def test_snapshot_rows_carry_the_hedge_of_their_portfolio(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(base=BASE)
    snaps = snapshots(config, 4)
    table = SnapshotTable([], config.risk.confidence)
    for snap in snaps:
        table.add(snap)
    frame = table.to_frame()
    hedge_columns = [c for c in frame.columns if "hedge" in c]
    assert hedge_columns == [
        "hedge_qty:HH1",
        "hedge_qty:HH2",
        "var_95_hedged",
        "var_99_hedged",
        "hedge_effectiveness",
        "hedge_drift",
    ]
    plain = frame.filter(frame["portfolio"] == "plain")
    assert plain.select(hedge_columns).null_count().row(0) == (len(snaps),) * len(hedge_columns)
    hedged = frame.filter(frame["portfolio"] == "hedged")
    assert hedged["hedge_qty:HH1"][0] is None  # before warm-up: null, not a number
    last = snaps[-1].portfolio("hedged")
    assert last is not None
    assert last.hedge is not None
    row = hedged.row(-1, named=True)
    assert row["hedge_qty:HH1"] == last.hedge.legs[0].quantity
    assert row["hedge_qty:HH2"] == last.hedge.legs[1].quantity
    tail = last.hedge.tail(0.99)
    assert tail is not None
    assert row["var_99_hedged"] == tail.var_hedged
    assert row["var_99_hedged"] < row["var_99"]
    assert row["hedge_drift"] == pytest.approx(last.hedge.drift)


def test_a_table_without_hedges_has_no_hedge_columns(make_config: Callable[..., Config]) -> None:
    config = make_config()
    table = SnapshotTable([], config.risk.confidence)
    table.add(Engine(config).snapshot(0.0))
    assert not [c for c in table.to_frame().columns if "hedge" in c]


def test_account_rows_carry_their_hedge(make_config: Callable[..., Config]) -> None:
    config = make_config(base=BASE)
    snaps = snapshots(config, 3)
    table = AccountTable(config.risk.confidence)
    for snap in snaps:
        table.add(snap)
    frame = table.to_frame()
    account = snaps[-1].account("perps")
    assert account is not None
    assert account.hedge is not None
    row = frame.row(-1, named=True)
    assert row["hedge_qty:HH2"] == account.hedge.legs[0].quantity
    assert row["hedge_qty:HH2"] is not None
    assert row["var_99_hedged"] is not None
    assert row["var_99_hedged"] < row["var_99"]
    assert "hedge_qty:HH1" not in frame.columns
