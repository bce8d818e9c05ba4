"""Hedges in the service's outputs: ``/api/v1/snapshot`` JSON, Prometheus families, workers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.errors import ConfigError
from monitor.risk.snapshot import RiskSnapshot
from service.hedge_metrics import hedge_families
from service.http import snapshot_json
from service.positions_store import decode_positions, load_positions, save_positions
from service.roles import engine_config, select
from tests.conftest import REPO

BASE = """
[universe]
symbols = ["BTCUSD", "ETHUSD", "SOLUSD"]

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
name = "main"
positions = [{ symbol = "SOLUSD", quantity = 100 }, { symbol = "ETHUSD", quantity = 2 }]
hedge_with = ["BTCUSD", "ETHUSD"]

[[portfolios]]
name = "other"
positions = [{ symbol = "SOLUSD", quantity = 1 }]
hedge_with = ["BTCUSD"]

[[accounts]]
name = "opts"
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

[[rules]]
name = "stale"
metric = "hedge_drift"
op = ">"
threshold = 0.5
resolve_threshold = 0.2
"""


def warm_snapshot(config: Config) -> RiskSnapshot:
    engine = Engine(config)
    rng = np.random.default_rng(8)
    chol = np.linalg.cholesky(np.array([[1, 0.8, 0.7], [0.8, 1, 0.75], [0.7, 0.75, 1]]))
    logp = np.log([100_000.0, 3_000.0, 150.0])
    ts = 1.78e9
    for k in range(1, 121):
        logp = logp + rng.standard_normal(3) @ chol.T * 0.002
        ts = 1.78e9 + 60.0 * k
        engine.ingest(np.full(3, ts), ["BTCUSD", "ETHUSD", "SOLUSD"], np.exp(logp))
    return engine.snapshot(ts)


def test_the_snapshot_api_lists_every_hedge(make_config: Callable[..., Config]) -> None:
    snap = warm_snapshot(make_config(base=BASE))
    body = json.loads(json.dumps(snapshot_json(snap), allow_nan=False))
    hedges = body["hedges"]
    assert [(h.get("portfolio"), h.get("account")) for h in hedges] == [
        ("main", None),
        ("other", None),
        (None, "opts"),
    ]
    main = hedges[0]
    risk = snap.portfolio("main")
    assert risk is not None
    assert risk.hedge is not None
    assert [leg["symbol"] for leg in main["legs"]] == ["BTCUSD", "ETHUSD"]
    assert main["legs"][1]["held"] == 2.0
    assert main["legs"][0]["quantity"] == risk.hedge.legs[0].quantity
    assert main["effectiveness"] == risk.hedge.effectiveness
    assert [t["confidence"] for t in main["tails"]] == [0.95, 0.99]
    assert main["tails"][1]["var_hedged"] < main["tails"][1]["var"]
    (delta,) = hedges[2]["delta"]
    assert delta["symbol"] == "BTCUSD"
    assert delta["vega_cost"] > 0
    assert all("hedge" not in account for account in body["accounts"])


def test_null_hedge_figures_are_json_nulls(make_config: Callable[..., Config]) -> None:
    snap = Engine(make_config(base=BASE)).snapshot(0.0)
    hedges = json.loads(json.dumps(snapshot_json(snap), allow_nan=False))["hedges"]
    assert hedges[0]["legs"][0]["quantity"] is None
    assert hedges[0]["reason"].startswith("missing data")


class _Snapshot(Collector):
    def __init__(self, snap: RiskSnapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from hedge_families(self.snap)


def scrape(snap: RiskSnapshot) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snap))
    text = generate_latest(registry).decode()
    return {
        f.name: [(s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def test_metrics_carry_the_portfolio_or_the_account(make_config: Callable[..., Config]) -> None:
    snap = warm_snapshot(make_config(base=BASE))
    metrics = scrape(snap)
    quantity = dict(
        (tuple(sorted(labels.items())), value)
        for labels, value in metrics["riskmon_hedge_quantity"]
    )
    risk = snap.portfolio("main")
    assert risk is not None
    assert risk.hedge is not None
    key = (("instrument", "ETHUSD"), ("portfolio", "main"))
    assert quantity[key] == risk.hedge.legs[1].quantity
    assert (("account", "opts"), ("instrument", "BTCUSD")) in quantity
    var = {tuple(sorted(labels.items())): v for labels, v in metrics["riskmon_var_hedged"]}
    tail = risk.hedge.tail(0.99)
    assert tail is not None
    assert var[(("confidence", "0.99"), ("portfolio", "main"))] == tail.var_hedged
    effect = metrics["riskmon_hedge_effectiveness_ratio"]
    assert all(0.0 <= value <= 1.0 for _, value in effect)
    assert {labels.get("portfolio") or labels["account"] for labels, _ in effect} == {
        "main",
        "other",
        "opts",
    }
    assert metrics["riskmon_hedge_drift_ratio"]  # "main" holds ETH: it has a drift
    (perp,) = metrics["riskmon_account_delta_hedge_quantity"]
    account = snap.account("opts")
    assert account is not None
    assert perp == ({"account": "opts", "symbol": "BTCUSD"}, -account.exposures[0].delta)


def test_null_figures_are_not_exported(make_config: Callable[..., Config]) -> None:
    metrics = scrape(Engine(make_config(base=BASE)).snapshot(0.0))
    assert all(samples == [] for samples in metrics.values())
    assert not any(math.isnan(v) for samples in metrics.values() for _, v in samples)


def test_every_hedge_family_is_documented_with_its_labels(
    make_config: Callable[..., Config],
) -> None:
    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    metrics = scrape(warm_snapshot(make_config(base=BASE)))
    for name, samples in metrics.items():
        (line,) = [row for row in doc.splitlines() if row.startswith(f"| `{name}` |")]
        for labels, _ in samples:
            assert all(f"`{label}`" in line for label in labels), (name, labels)


def test_workers_run_each_hedge_rule_instance_once(tmp_path: Path) -> None:
    """Unlabelled: the market's worker runs it whole; another runs it for its portfolios."""
    path = tmp_path / "riskmon.toml"
    path.write_text(BASE, encoding="utf-8")
    config = load_config(path, environ={})
    first = engine_config(config, select(config, ["main"], None))
    second = engine_config(config, select(config, ["other"], None))
    assert [dict(r.labels) for r in first.rules] == [{}]
    assert [dict(r.labels) for r in second.rules] == [{"portfolio": "other"}]
    labelled = BASE.replace(
        "resolve_threshold = 0.2\n", 'resolve_threshold = 0.2\nlabels = { account = "opts" }\n'
    )
    path.write_text(labelled, encoding="utf-8")
    config = load_config(path, environ={})
    assert len(engine_config(config, select(config, ["main"], None)).rules) == 1
    assert engine_config(config, select(config, ["other"], None)).rules == ()


def test_a_worker_tracks_the_hedge_instruments_of_its_portfolios(tmp_path: Path) -> None:
    """A worker with only "other" still tracks ETH, which only "main" holds and hedges with."""
    path = tmp_path / "riskmon.toml"
    path.write_text(
        BASE.replace(
            'hedge_with = ["BTCUSD"]\n\n[[accounts]]', 'hedge_with = ["ETHUSD"]\n\n[[accounts]]'
        ).replace('symbols = ["BTCUSD", "ETHUSD", "SOLUSD"]', 'symbols = ["BTCUSD", "SOLUSD"]'),
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    worker = engine_config(config, select(config, ["other"], None))
    assert [p.name for p in worker.portfolios] == ["other"]
    assert "ETHUSD" in worker.tracked_symbols
    assert "ETHUSD" not in worker.priced_symbols


def test_posted_accounts_keep_their_hedge_across_a_restart(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """positions.json round-trips accounts with and without hedge_with (a restart reads it)."""
    config = make_config(base=BASE)
    hedged = config.accounts[0]
    plain = msgspec.structs.replace(hedged, name="plain", hedge_with=None)
    path = tmp_path / "positions.json"
    save_positions(path, (hedged, plain))
    assert load_positions(path) == (hedged, plain)
    body = b'{"accounts": [{"name": "x", "hedge_with": []}]}'
    with pytest.raises(ConfigError, match="hedge_with"):
        decode_positions(body)
