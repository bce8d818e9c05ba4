"""A small generated replay for the report's tests: ``riskmon replay`` on synthetic ticks.

Four symbols, 3 h 20 min of Poisson ticks: calm (correlation 0.1) for an hour, a stressed
hour (0.95), 40 calm minutes with a 20-minute outage (no tick at all) in them, then 40
stressed minutes that last to the end. AAAUSDT also falls 15% over the first stressed hour
(so a leveraged perpetual account's margin ratio rises) and carries one 1000x bad print.
Three rules fire (``spike`` twice, the second still firing at the end; ``undiversified`` on
the portfolio, a ``<`` rule; ``margin`` on the account), one never does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import polars as pl

from service.cli import main
from tests.simulate import simulate_regimes

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"]
T0 = 1_738_540_800.0  # 2025-02-03 00:00 UTC
CALM, STRESS = 0.1, 0.95
REGIMES = [(3600.0, CALM), (3600.0, STRESS), (2400.0, CALM), (2400.0, STRESS)]
OUTAGE = (T0 + 7800.0, T0 + 9000.0)
CONFIG = """
[universe]
symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"]

[estimator]
halflife = "5m"
slow_halflife = "1h"
min_observations = 20

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "normal"

[[portfolios]]
name = "book"
positions = [
    { symbol = "AAAUSDT", quantity = 3 },
    { symbol = "BBBUSDT", quantity = 2 },
    { symbol = "CCCUSDT", quantity = 1 },
    { symbol = "DDDUSDT", quantity = 4 },
]

[[accounts]]
name = "perps"
venue = "binance-usdm"
margin = "binance-usdm"
brackets = [[50000, 0.004], [250000, 0.005], [1000000, 0.01], [10000000, 0.025]]
collateral = [ { asset = "USDT", amount = 20000 } ]

[[accounts.positions]]
instrument = "AAAUSDT"
kind = "linear"
underlying = "AAAUSDT"
contracts = 1000
entry_price = 100

[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7
for = "2m"
resolve_threshold = 0.5
severity = "critical"

[[rules]]
name = "undiversified"
metric = "diversification_benefit"
op = "<"
threshold = 0.1
for = "2m"
resolve_threshold = 0.2
severity = "warning"
labels = { portfolio = "book" }

[[rules]]
name = "margin"
metric = "margin_ratio"
op = ">"
threshold = 0.05
for = "1m"
resolve_threshold = 0.04
severity = "critical"

[[rules]]
name = "never"
metric = "effective_bets"
op = "<"
threshold = 0.5
resolve_threshold = 0.6

[replay]
snapshot_interval = "30s"
"""


def write_inputs(directory: Path) -> tuple[Path, Path]:
    """The tick file and the config file of the generated replay, written into ``directory``."""
    ticks = simulate_regimes([2.0, 1.0, 0.5, 1.0], 0.9, REGIMES, seed=19, t0=T0)
    price = np.exp(ticks.logp)
    aaa = ticks.idx == 0
    fall = np.clip((ticks.ts - T0 - 3600.0) / 3600.0, 0.0, 1.0)
    price[aaa] *= np.exp(np.log(0.85) * fall[aaa])
    keep = (ticks.ts < OUTAGE[0]) | (ticks.ts >= OUTAGE[1])
    frame = pl.DataFrame(
        {"ts": ticks.ts, "symbol": [SYMBOLS[i] for i in ticks.idx], "price": price}
    ).filter(pl.Series(keep))
    bad = frame.filter(pl.col("symbol") == "AAAUSDT").row(200, named=True)
    frame = pl.concat([frame, pl.DataFrame([{**bad, "ts": bad["ts"] + 0.001, "price": 1e5}])])
    data, config = directory / "ticks.parquet", directory / "replay.toml"
    frame.sort("ts").write_parquet(data)
    config.write_text(textwrap.dedent(CONFIG))
    return data, config


def generated_replay(directory: Path, *extra: str) -> Path:
    """Run ``riskmon replay`` on the generated data into ``directory / "out"``."""
    data, config = write_inputs(directory)
    out = directory / "out"
    args = ["replay", str(data), "--config", str(config), "--out", str(out), "--no-progress"]
    status = main([*args, *extra])
    assert status == 0, f"the generated replay failed with exit code {status}"
    return out
