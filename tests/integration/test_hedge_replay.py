"""The hedge of the example book on the night of the 3 February 2025 crash (README example).

Needs ../shared/data/market/binance_spot_5m_2025H1.parquet; skipped with the reason otherwise.
The replay stops at 01:00 on 3 Feb: every figure is causal, so the rows up to there are those of
the full half-year replay (``make replay-example``), in a fifth of the time.
"""

from __future__ import annotations

import contextlib
import io
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from monitor.config.loading import load_config
from monitor.engine import Engine
from service.cli import main
from tests.conftest import REPO, require_market_file

CONFIG = REPO / "config" / "example-replay.toml"
AT = datetime(2025, 2, 3, 0, 30, tzinfo=UTC)
CANDLE_S = 300.0


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared 5-minute candles up to the one closing at 01:00 on 3 Feb."""
    market = require_market_file()
    path = tmp_path_factory.mktemp("hedge") / "to-0203.parquet"
    cut = datetime(2025, 2, 3, 0, 55, tzinfo=UTC)  # opening time of the last candle kept
    pl.read_parquet(market).filter(pl.col("ts") <= cut).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def replayed(candles: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example replay with its alerts sent to a file sink: (output dir, notifications)."""
    work = tmp_path_factory.mktemp("hedge-out")
    notes = work / "notes.jsonl"
    config = work / "replay.toml"
    sink = f'[[sinks]]\nname = "notes"\ntype = "file"\npath = "{notes}"\n'
    config.write_text(f'{CONFIG.read_text()}\n{sink}\n[[routes]]\nsinks = ["notes"]\n')
    out = work / "out"
    args = ["replay", str(candles), "--config", str(config), "--out", str(out), "--send-alerts"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    return out, notes


def snapshot_row(replayed: tuple[Path, Path], at: datetime) -> dict[str, Any]:
    frame = pl.read_parquet(replayed[0] / "snapshots.parquet")
    (found,) = frame.filter(pl.col("ts") == at).iter_rows(named=True)
    return found


@pytest.fixture(scope="module")
def row(replayed: tuple[Path, Path]) -> dict[str, Any]:
    """The equal-long row of snapshots.parquet at 00:30 on 3 Feb."""
    return snapshot_row(replayed, AT)


def test_the_worked_example_of_the_readme(row: dict[str, Any]) -> None:
    """Hold -0.785 BTC and -53.5 ETH (sell 0.892 and 56.5): VaR 99% 40,139 -> 15,515."""
    assert row["portfolio"] == "equal-long"
    expected = {
        "portfolio_value": 160_902,
        "var_99": 40_139,
        "var_99_hedged": 15_515,
        "var_95_hedged": 8_827,
        "hedge_qty:BTCUSDT": -0.7850,
        "hedge_qty:ETHUSDT": -53.51,
        "hedge_effectiveness": 0.8506,
        "hedge_drift": 1.0727,
    }
    for column, value in expected.items():
        assert row[column] == pytest.approx(value, rel=5e-4), column


def test_the_hedge_is_the_weighted_regression_of_the_book_on_btc_and_eth(candles: Path) -> None:
    """An independent check on the real candles: with the Hayashi-Yoshida estimator (on
    candles, exactly the RiskMetrics recursion), the hedge equals the exponentially weighted
    least-squares regression of the book's 5-minute P&L (without BTC and ETH) on BTC's and
    ETH's USD returns, half-life 6 hours, no intercept: numpy's lstsq on the candles."""
    config = load_config(CONFIG, environ={"RISKMON_ESTIMATOR__PREAVERAGE": "0s"})
    frame = pl.read_parquet(candles).filter(pl.col("ts") < AT).sort(["ts", "symbol"])
    engine = Engine(config)
    ts = frame["ts"].dt.epoch("us").to_numpy() / 1e6 + CANDLE_S  # replayed at the close
    engine.ingest(ts, frame["symbol"].to_numpy(), frame["close"].to_numpy())
    risk = engine.snapshot(AT.timestamp()).portfolio("equal-long")
    assert risk is not None
    assert risk.hedge is not None

    wide = frame.pivot(on="symbol", index="ts", values="close").sort("ts")
    quantity = {
        p["symbol"]: float(p["quantity"])
        for p in tomllib.loads(CONFIG.read_text())["portfolios"][0]["positions"]
    }
    symbols = list(quantity)
    prices = wide.select(symbols).to_numpy()
    returns = np.diff(np.log(prices), axis=0)
    last = prices[-1]
    hedges = [symbols.index("BTCUSDT"), symbols.index("ETHUSDT")]
    rest = np.array([quantity[s] for s in symbols]) * last
    rest[hedges] = 0.0
    halflife_steps = config.estimator.halflife / CANDLE_S
    root_w = np.sqrt(2.0 ** (-np.arange(len(returns))[::-1] / halflife_steps))[:, None]
    y = (returns @ rest)[:, None] * root_w
    x = returns[:, hedges] * last[hedges] * root_w
    beta, residual, *_ = np.linalg.lstsq(x, y[:, 0], rcond=None)
    assert [leg.quantity for leg in risk.hedge.legs] == pytest.approx(-beta, rel=1e-6)
    assert [leg.held for leg in risk.hedge.legs] == [0.107, 3.0]
    # held BTC and ETH are part of the book now, so effectiveness compares with the whole book
    whole = (returns @ (np.array([quantity[s] for s in symbols]) * last))[:, None] * root_w
    assert risk.hedge.effectiveness == pytest.approx(
        1.0 - float(residual[0]) / float(whole[:, 0] @ whole[:, 0]), abs=1e-9
    )


def test_the_var_alert_says_what_to_trade(replayed: tuple[Path, Path]) -> None:
    """The VaR limit fires at 00:30; its notification carries the trade of that snapshot."""
    notes = [json.loads(line) for line in replayed[1].read_text().splitlines()]
    (note,) = [n for n in notes if n["rule"] == "equal-long-var-limit"]
    assert (note["state"], note["ts"]) == ("firing", "2025-02-03T00:30:00.000000Z")
    details = {d["label"]: d["text"] for d in note["details"]}
    text = details["hedge (portfolio equal-long)"]
    assert text == "sell 0.892 BTCUSDT perp, sell 56.5 ETHUSDT perp: VaR 99% 40,139 -> 15,515"
    at = snapshot_row(replayed, AT)
    btc, eth = at["hedge_qty:BTCUSDT"] - 0.107, at["hedge_qty:ETHUSDT"] - 3.0
    assert text == (
        f"sell {-btc:.3g} BTCUSDT perp, sell {-eth:.3g} ETHUSDT perp: "
        f"VaR 99% {at['var_99']:,.0f} -> {at['var_99_hedged']:,.0f}"
    )
