"""An options account on live feeds: the Deribit ticker's mark IV reprices the book.

The simulator serves one BTC call with ``mark_iv`` = the regime's volatility (50% while calm)
and ``underlying_price == index_price`` (basis 1). The account's fallback IV is 300%, so a
valuation that ignored the feed would be far off the one checked here.
"""

from __future__ import annotations

import asyncio
import math
import textwrap
from pathlib import Path

import pytest

from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from monitor.risk.options import black76, parse_instrument, year_fraction
from service.daemon import Daemon
from service.live import with_urls
from tests.integration.test_live_feeds import TIMEOUT_S, eventually

CONFIG = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 20

[[accounts]]
name = "options"
margin = "deribit-pm"
settlement = "BTC"
settlement_symbol = "BTCUSDT"
collateral = [ { asset = "BTC", amount = 2.0, price_symbol = "BTCUSDT" } ]

[[accounts.positions]]
instrument = "OPTION"
kind = "option"
underlying = "BTCUSDT"
contracts = -2
iv = 3.0

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]
stale_after = "5s"

[[feeds]]
venue = "deribit"
symbols = ["OPTION"]
price = "mark"
stale_after = "5s"

[live]
snapshot_interval = "10s"
idle_snapshot = "1s"
"""


async def test_the_feed_mark_iv_prices_the_options(tmp_path: Path) -> None:
    async with ExchangeSimulator(speed=60.0, seed=3) as sim:
        option = sim.deribit_option
        assert option is not None
        path = tmp_path / "options.toml"
        path.write_text(textwrap.dedent(CONFIG).replace("OPTION", option))
        urls = {"binance": sim.binance_url, "deribit": sim.deribit_url}
        daemon = Daemon(with_urls(load_config(path, environ={}), urls), wall=sim.sim_time)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await eventually(lambda: option in daemon.router.options, "an option ticker")
            first = daemon.router.options[option].ts

            def priced() -> bool:
                snap = daemon.latest
                return snap is not None and snap.ts >= first

            await eventually(priced, "a snapshot after the first option ticker")
        finally:
            stop.set()
            async with asyncio.timeout(TIMEOUT_S):
                await task
    snap = daemon.latest
    assert snap is not None
    mark = daemon.engine.marks()[option]
    assert mark.iv == pytest.approx(0.50)
    assert mark.basis == pytest.approx(1.0)
    account = snap.account("options")
    assert account is not None
    assert account.equity is not None
    terms = parse_instrument(option)
    spot = float(snap.price[snap.index("BTCUSDT")])

    def equity(iv: float, ts: float) -> float:
        value = black76(spot, terms.strike, year_fraction(ts, terms.expiry_ts), iv, True).price
        return 2.0 * spot - 2.0 * value

    # Snapshots emitted without new ticks in between (several boundaries in one batch) keep
    # the figures of the last computed one under a later ts (engine.snapshot): the account was
    # valued at the snapshot's prices at most a few intervals earlier. Theta only lowers the
    # short call's value, so the equity lies between the values 30 minutes before and at ts.
    assert equity(0.5, snap.ts - 1800.0) - 1e-6 <= account.equity <= equity(0.5, snap.ts) + 1e-6
    assert not math.isclose(account.equity, equity(3.0, snap.ts), rel_tol=1e-3)
    assert account.margin_ratio is not None
    assert account.margin_ratio > 0.0
