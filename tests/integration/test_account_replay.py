"""A leveraged account through ``riskmon replay`` while its collateral's underlying falls.

Generated data: BTC falls from 100,000 to 91,500 over two hours (with noise), ETH wanders.
The account is long 2 BTC at 100,000 on 20,000 USDT with Binance's historic BTCUSDT tiers, so
its margin ratio by hand is ``MM(2p) / (20,000 + 2 (p - 100,000))`` with
``MM(n) = n * 0.005 - 50`` in the 50k-250k tier. It crosses 0.2 at p = 92,179.5.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from service.cli import main

CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

[estimator]
halflife = "10m"
slow_halflife = "1h"
min_observations = 20

[risk]
horizon = "1d"
confidence = [0.99]
distribution = "normal"

[[accounts]]
name = "perps"
venue = "binance-usdm"
margin = "binance-usdm"
brackets = [[50000, 0.004], [250000, 0.005], [1000000, 0.01], [10000000, 0.025]]
collateral = [ { asset = "USDT", amount = 20000 } ]

[[accounts.positions]]
instrument = "BTCUSDT"
kind = "linear"
underlying = "BTCUSDT"
contracts = 2
entry_price = 100000

[[rules]]
name = "margin"
metric = "margin_ratio"
op = ">"
threshold = 0.2
for = "1m"
resolve_threshold = 0.15
severity = "critical"

[replay]
snapshot_interval = "30s"
"""

START = 1_738_540_800.0  # 2025-02-03 00:00 UTC
CROSSING = 92_179.48717948718  # 0.01 p - 50 = 0.2 (2 p - 180,000)


def ratio(price: float) -> float:
    return (2 * price * 0.005 - 50.0) / (20_000.0 + 2 * (price - 100_000.0))


@pytest.fixture
def ticks(tmp_path: Path) -> pl.DataFrame:
    rng = np.random.default_rng(11)
    ts = START + np.arange(0.0, 7200.0, 2.0)
    trend = np.linspace(0.0, np.log(91_500 / 100_000), len(ts))
    btc = 100_000 * np.exp(trend + np.cumsum(rng.normal(0, 2e-4, len(ts))) * 0.1)
    eth = 3_000 * np.exp(np.cumsum(rng.normal(0, 3e-4, len(ts))))
    frame = pl.DataFrame(
        {
            "ts": np.concatenate([ts, ts + 1.0]),
            "symbol": ["BTCUSDT"] * len(ts) + ["ETHUSDT"] * len(ts),
            "price": np.concatenate([btc, eth]),
        }
    ).sort("ts")
    frame.write_csv(tmp_path / "ticks.csv")
    return frame


def test_margin_ratio_crosses_its_threshold_as_the_price_falls(
    ticks: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "account.toml"
    config.write_text(textwrap.dedent(CONFIG))
    out = tmp_path / "out"
    args = ["replay", str(tmp_path / "ticks.csv"), "--config", str(config), "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    rows = pl.read_parquet(out / "accounts.parquet")
    assert rows["account"].unique().to_list() == ["perps"]
    btc = ticks.filter(pl.col("symbol") == "BTCUSDT")
    last_ts, last_px = btc["ts"].to_numpy(), btc["price"].to_numpy()
    snap_ts = np.array([t.timestamp() for t in rows["ts"].to_list()])
    price = last_px[np.searchsorted(last_ts, snap_ts, side="right") - 1]
    expected = [ratio(p) for p in price]
    np.testing.assert_allclose(rows["margin_ratio"].to_numpy(), expected, rtol=1e-9)
    assert rows["margin_ratio"][0] < 0.06
    assert rows["margin_ratio"][-1] > 0.2
    # liquidation distance shrinks with the price: the -x% move keeps getting smaller
    assert rows["liq_down:BTCUSDT"][-1] > rows["liq_down:BTCUSDT"][0]
    assert rows["liquidation_distance_sigma"].drop_nulls().len() > 0
    # stress: 35% of the -66% move on 2 BTC (0.462 p) is the worst loss, more than the
    # equity 20,000 + 2 (p - 100,000) of this 10x book: capped there, a ratio of 1 throughout
    worst = 0.35 * 0.66 * 2 * price
    equity = 20_000.0 + 2 * (price - 100_000.0)
    np.testing.assert_allclose(rows["equity"].to_numpy(), equity, rtol=1e-9)
    np.testing.assert_allclose(rows["stress_loss_uncapped"].to_numpy(), worst, rtol=1e-9)
    np.testing.assert_allclose(rows["stress_loss"].to_numpy(), equity, rtol=1e-9)
    np.testing.assert_allclose(rows["stress_loss_ratio"].to_numpy(), 1.0)
    assert rows["vega"].to_list() == [0.0] * len(rows)
    events = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    firing = [e for e in events if e["rule"] == "margin" and e["state"] == "firing"]
    assert len(firing) >= 1
    assert firing[0]["labels"] == {"account": "perps"}
    assert firing[0]["value"] > 0.2
    # it fires at least 1 minute after the first snapshot above 0.2, not before
    above = snap_ts[np.array(expected) > 0.2]
    fired_at = pl.Series([firing[0]["ts"]]).str.to_datetime(time_zone="UTC")[0].timestamp()
    assert fired_at >= above[0] + 60.0
    assert price[snap_ts == above[0]][0] < CROSSING
