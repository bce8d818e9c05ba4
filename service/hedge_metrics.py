"""Prometheus families of the hedges (``hedge_with``), read from the latest snapshot.

A book is a portfolio or an account: each sample carries ``portfolio`` or ``account`` (never
both), so one family serves both kinds, as ``riskmon_hedge_quantity{portfolio|account,
instrument}``. Null figures (no data, an ill-conditioned hedge) are left out, never exported as
huge numbers. docs/metrics.md lists the families.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from monitor.risk.snapshot import HedgeRisk, RiskSnapshot

BookLabel = tuple[str, str]
"""``("portfolio", name)`` or ``("account", name)``."""


def _family(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"riskmon_{name}", doc)


def _add(family: GaugeMetricFamily, labels: dict[str, str], value: float | None) -> None:
    if value is not None and math.isfinite(value):
        family.add_sample(family.name, labels, value)


def _books(snap: RiskSnapshot) -> Iterator[tuple[BookLabel, HedgeRisk]]:
    for p in snap.portfolios:
        if p.hedge is not None:
            yield ("portfolio", p.name), p.hedge
    for a in snap.accounts:
        if a.hedge is not None:
            yield ("account", a.name), a.hedge


def hedge_families(snap: RiskSnapshot) -> Iterator[Metric]:
    """Every hedge family of ``snap`` (empty families when no book has ``hedge_with``)."""
    quantity = _family("hedge_quantity", "Minimum-variance holding of a hedge instrument, units.")
    trade = _family("hedge_trade", "Trade to reach it (quantity - held), units; < 0: sell.")
    var = _family("var_hedged", "VaR over the horizon after the minimum-variance trade.")
    cvar = _family("cvar_hedged", "Expected shortfall after the minimum-variance trade.")
    effect = _family("hedge_effectiveness_ratio", "1 - hedged / current P&L variance.")
    drift = _family(
        "hedge_drift_ratio", "Distance of the held hedge from the minimum-variance one."
    )
    for (kind, name), hedge in _books(snap):
        book = {kind: name}
        for leg in hedge.legs:
            _add(quantity, {**book, "instrument": leg.symbol}, leg.quantity)
            _add(trade, {**book, "instrument": leg.symbol}, leg.trade)
        for tail in hedge.tails:
            _add(var, {**book, "confidence": f"{tail.confidence:g}"}, tail.var_hedged)
            _add(cvar, {**book, "confidence": f"{tail.confidence:g}"}, tail.cvar_hedged)
        _add(effect, book, hedge.effectiveness)
        _add(drift, book, hedge.drift)
    yield from (quantity, trade, var, cvar, effect, drift)
    yield from _option_families(snap)


def _option_families(snap: RiskSnapshot) -> Iterator[Metric]:
    perp = _family(
        "account_delta_hedge_quantity", "Perp trade that zeroes the delta, units of the symbol."
    )
    cost = _family(
        "account_vega_shock_cost", "Loss of a one-sigma vol-of-vol shock on the symbol's IVs."
    )
    for a in snap.accounts:
        for d in () if a.hedge is None else a.hedge.delta:
            _add(perp, {"account": a.name, "symbol": d.symbol}, d.perp_quantity)
            _add(cost, {"account": a.name, "symbol": d.symbol}, d.vega_cost)
    yield from (perp, cost)
