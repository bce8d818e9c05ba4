"""Issue #13: cost of an options account per snapshot, and the Monte Carlo error it buys.

Three accounts with options, revalued as the engine does at every snapshot
(``AccountModel.risk``: margin, liquidation search, stress, Greeks, the full-revaluation
Monte Carlo VaR and the delta-gamma estimate):

- ``deribit-pm``: a Deribit portfolio-margin BTC account, 1 BTC of collateral, six coin-settled
  options over three expiries and an inverse perpetual hedge;
- ``usdc-2-underlyings``: a cash account of eight USDC-settled options on BTC and ETH;
- ``issue-hedged``: the issue's book, a linear call at the money hedged with half a perpetual.

The engine tracks ``--universe`` symbols (BTC, ETH and others the accounts do not hold), as a
daemon with a universe and a few accounts does. Timed per account: the whole ``risk()`` (the
goal: at most 20 ms, median of the runs) and the Monte Carlo alone (``OptionVar.tails``), each
the mean over ``--snapshots`` calls, ``--runs`` times, interleaved. The Monte Carlo error: the
standard deviation of the 99% VaR and ES over ``--seeds`` Sobol scramblings, relative to their
mean, at 4096 to 32768 paths (normal and Student-t with 4 degrees of freedom), for the
``deribit-pm`` account.

Usage: python -m benchmarks.option_var [--runs 5] [--snapshots 40] [--seeds 16] [--universe 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from msgspec import structs

from benchmarks.common import print_table, spread, summary, temp_dir, verdict, write_result
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.risk.account import AccountModel, MarketState
from monitor.risk.optionvar import OptionVar

TARGET_MS = 20.0
TS = datetime(2026, 5, 28, 8, tzinfo=UTC).timestamp()
PRICES = {"BTCUSD": 100_000.0, "ETHUSD": 3_000.0}
DAILY_SD = {"BTCUSD": 0.035, "ETHUSD": 0.045}
CORRELATION = 0.8
PATH_COUNTS = (4096, 8192, 16384, 32768)

BASE = """
[universe]
symbols = [{symbols}]

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "student-t"
dof = 4
"""


def _option(name: str, underlying: str, contracts: float, settlement: str) -> str:
    return (
        f'[[accounts.positions]]\ninstrument = "{name}"\nkind = "option"\n'
        f'underlying = "{underlying}"\ncontracts = {contracts}\nsettlement = "{settlement}"\n'
        "iv = 0.6\n"
    )


def _accounts() -> str:
    deribit = [
        ("BTC-26JUN26-100000-C", -2),
        ("BTC-26JUN26-90000-P", -1),
        ("BTC-25SEP26-110000-C", 1),
        ("BTC-25SEP26-80000-P", 2),
        ("BTC-25DEC26-100000-C", -1),
        ("BTC-25DEC26-100000-P", -1),
    ]
    text = (
        '[[accounts]]\nname = "deribit-pm"\nmargin = "deribit-pm"\nsettlement = "BTC"\n'
        'settlement_symbol = "BTCUSD"\n'
        'collateral = [ { asset = "BTC", amount = 1.0, price_symbol = "BTCUSD" } ]\n'
    )
    text += "".join(_option(n, "BTCUSD", q, "inverse") for n, q in deribit)
    text += (
        '[[accounts.positions]]\ninstrument = "BTC-PERPETUAL"\nkind = "inverse"\n'
        'underlying = "BTCUSD"\ncontracts = 50000\nentry_price = 100000\n'
    )
    usdc = [
        ("BTC_USDC-26JUN26-100000-C", "BTCUSD", -1),
        ("BTC_USDC-26JUN26-95000-P", "BTCUSD", 1),
        ("BTC_USDC-25SEP26-120000-C", "BTCUSD", 2),
        ("BTC_USDC-25SEP26-85000-P", "BTCUSD", -2),
        ("ETH_USDC-26JUN26-3000-C", "ETHUSD", 10),
        ("ETH_USDC-26JUN26-2800-P", "ETHUSD", -10),
        ("ETH_USDC-25SEP26-3600-C", "ETHUSD", -20),
        ("ETH_USDC-25SEP26-2400-P", "ETHUSD", 20),
    ]
    text += '[[accounts]]\nname = "usdc-2-underlyings"\n'
    text += 'collateral = [ { asset = "USDC", amount = 100000 } ]\n'
    text += "".join(_option(n, u, q, "linear") for n, u, q in usdc)
    text += '[[accounts]]\nname = "issue-hedged"\n'
    text += 'collateral = [ { asset = "USDT", amount = 20000 } ]\n'
    text += _option("BTC_USDC-27JUN26-100000-C", "BTCUSD", 1, "linear")
    text += (
        '[[accounts.positions]]\ninstrument = "BTCUSDT"\nkind = "linear"\n'
        'underlying = "BTCUSD"\ncontracts = -0.5\nentry_price = 100000\n'
    )
    return text


def _market(config: Config) -> MarketState:
    symbols = config.tracked_symbols
    sd = np.array([DAILY_SD.get(s, 0.05) for s in symbols]) / math.sqrt(86_400.0)
    corr = np.full((len(symbols),) * 2, CORRELATION) + (1 - CORRELATION) * np.eye(len(symbols))
    cov = corr * np.outer(sd, sd)
    price = np.array([PRICES.get(s, 100.0) for s in symbols])
    return MarketState(TS, price, cov, np.ones(len(symbols), dtype=bool), {})


def _mean_ms(call: Any, snapshots: int) -> float:
    start = time.perf_counter()
    for _ in range(snapshots):
        call()
    return (time.perf_counter() - start) / snapshots * 1e3


def cost(config: Config, runs: int, snapshots: int) -> dict[str, Any]:
    """Per account: whole ``risk()`` and the Monte Carlo alone, ms per snapshot."""
    market = _market(config)
    models = [
        AccountModel(a, config.tracked_symbols, config.risk, config.stress) for a in config.accounts
    ]
    whole: dict[str, list[float]] = {m.name: [] for m in models}
    mc: dict[str, list[float]] = {m.name: [] for m in models}
    for model in models:
        model.risk(market)  # warm: caches of the Sobol draws and the first numpy calls
    for _ in range(runs):
        for model in models:
            whole[model.name].append(_mean_ms(lambda m=model: m.risk(market), snapshots))
            mc[model.name].append(_mean_ms(_mc_call(model, market, config), snapshots))
    return {
        m.name: {
            "options": len(m.book.option_names),
            "risk_ms": summary(whole[m.name]),
            "monte_carlo_ms": summary(mc[m.name]),
        }
        for m in models
    }


def _mc_call(model: AccountModel, market: MarketState, config: Config) -> Any:
    var = OptionVar(model.book.account, config.tracked_symbols, model.risk_idx, config.risk)
    cov_h = market.cov_rate[np.ix_(model.risk_idx, model.risk_idx)] * config.risk.horizon
    equity = float(model.book.value(market.price[None, :], np.ones(1), TS, {}).equity[0])
    return lambda: var.tails(TS, market.price, cov_h, equity, {}, {})


def error(config: Config, seeds: int) -> list[dict[str, Any]]:
    """Relative sd of VaR99 / ES99 over Sobol scramblings, per path count and distribution."""
    market = _market(config)
    account = config.accounts[0]
    rows = []
    for distribution in ("normal", "student-t"):
        for paths in PATH_COUNTS:
            risk = structs.replace(config.risk, option_paths=paths, distribution=distribution)
            model = AccountModel(account, config.tracked_symbols, risk, config.stress)
            cov_h = market.cov_rate[np.ix_(model.risk_idx, model.risk_idx)] * risk.horizon
            equity = float(model.book.value(market.price[None, :], np.ones(1), TS, {}).equity[0])
            var, es, ms = [], [], []
            for seed in range(seeds):
                mc = OptionVar(account, config.tracked_symbols, model.risk_idx, risk, seed=seed)
                start = time.perf_counter()
                tail = mc.tails(TS, market.price, cov_h, equity, {}, {})[-1]
                ms.append((time.perf_counter() - start) * 1e3)
                assert tail.var is not None
                assert tail.cvar is not None
                var.append(tail.var)
                es.append(tail.cvar)
            rows.append(
                {
                    "distribution": distribution,
                    "paths": paths,
                    "var_99_mean": statistics.fmean(var),
                    "var_99_rel_sd": statistics.stdev(var) / statistics.fmean(var),
                    "es_99_mean": statistics.fmean(es),
                    "es_99_rel_sd": statistics.stdev(es) / statistics.fmean(es),
                    "monte_carlo_ms": statistics.median(ms),
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables and PASS/FAIL, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--snapshots", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--universe", type=int, default=50, help="symbols the engine tracks")
    args = parser.parse_args(argv)
    names = ["BTCUSD", "ETHUSD"] + [f"S{i:03d}USD" for i in range(max(args.universe - 2, 0))]
    with temp_dir() as directory:
        path = directory / "options.toml"
        path.write_text(BASE.format(symbols=", ".join(f'"{n}"' for n in names)) + _accounts())
        config = load_config(path, environ={})
    costs = cost(config, args.runs, args.snapshots)
    print_table(
        ["account", "options", "risk() ms, median (min-max)", "Monte Carlo alone ms"],
        [
            [
                name,
                c["options"],
                spread(c["risk_ms"], fmt=".2f"),
                spread(c["monte_carlo_ms"], fmt=".2f"),
            ]
            for name, c in costs.items()
        ],
    )
    errors = error(config, args.seeds)
    print()
    print_table(
        ["distribution", "paths", "VaR99", "rel. sd", "ES99", "rel. sd", "MC ms"],
        [
            [
                r["distribution"],
                r["paths"],
                f"{r['var_99_mean']:,.0f}",
                f"{100 * r['var_99_rel_sd']:.2f} %",
                f"{r['es_99_mean']:,.0f}",
                f"{100 * r['es_99_rel_sd']:.2f} %",
                f"{r['monte_carlo_ms']:.2f}",
            ]
            for r in errors
        ],
    )
    worst = max(c["risk_ms"]["median"] for c in costs.values())
    ok = worst <= TARGET_MS
    text = (
        f"issue #13 (options account <= {TARGET_MS:g} ms per snapshot, "
        f"{config.risk.option_paths} paths): slowest {worst:.2f} ms {verdict(ok)}"
    )
    print(text)
    targets = [{"target": "#13", "pass": ok, "text": text}]
    results = {"accounts": costs, "error": errors, "targets": targets}
    parameters = {**vars(args), "paths": config.risk.option_paths, "path_counts": PATH_COUNTS}
    write_result("option_var", parameters, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
