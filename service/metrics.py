"""Prometheus metrics, read at scrape time from the latest immutable snapshot.

A custom collector builds fresh metric families in ``collect()`` (client_python's pattern), so a
scrape never touches the tick path: it reads the snapshot reference and a few counters. Only
the latency histogram is a stateful instrument, observed by the engine loop. Names and labels
are listed in docs/metrics.md and checked against the conventions in the tests.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.episodes import Suppressed
from monitor.risk.snapshot import RiskSnapshot
from service.hedge_metrics import hedge_families
from service.rule_metrics import alert_families

if TYPE_CHECKING:
    from alerts.dispatcher import Dispatcher
    from service.daemon import Daemon

LATENCY_BUCKETS_S = (
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25,
    0.5, 1.0, 2.5,
)  # fmt: skip


@dataclass(slots=True)
class ServiceStats:
    """Counters of the service around the daemon (reloads, checkpoints, sinks)."""

    reloads_ok: int = 0
    reloads_failed: int = 0
    last_reload_ok: bool = True
    checkpoint_last_success: float = math.nan
    checkpoint_failures: int = 0
    restored: bool = False
    dispatcher: Dispatcher | None = None


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"riskmon_{name}", doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(f"riskmon_{name}", doc, labels=list(labels))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class RiskCollector(Collector):
    """Yields every riskmon metric family from the current daemon's state.

    Args:
        daemon: returns the daemon currently running (it changes on a config reload).
        stats: service counters.
        clock: monotonic clock for staleness.
    """

    def __init__(
        self,
        daemon: Callable[[], Daemon | None],
        stats: ServiceStats,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self._daemon = daemon
        self._stats = stats
        self._clock = clock
        self._wall = wall
        self._version = metadata.version("riskmon")

    def collect(self) -> Iterator[Metric]:
        """Build all families from one consistent read of the daemon's references."""
        info = _gauge("build_info", "riskmon build.", ["version", "python"])
        info.add_metric([self._version, platform.python_version()], 1.0)
        yield info
        yield from self._service()
        daemon = self._daemon()
        if daemon is None:
            return
        up = _gauge("up", "1 while the engine loop runs.")
        up.add_metric([], 1.0 if daemon.loop_alive(self._clock()) else 0.0)
        yield up
        ready = _gauge(
            "ready", "1 when ready: feeds fresh, estimators warm, figures following the market."
        )
        ready.add_metric([], 1.0 if not daemon.not_ready(self._clock()) else 0.0)
        yield ready
        snap = daemon.latest
        if snap is not None:
            yield from _symbols(snap)
            yield from _market(snap, daemon.config.universe.watch_pairs)
            yield from _portfolios(snap)
            yield from _accounts(snap)
            yield from hedge_families(snap)
            yield from _computed(daemon)
        yield from _engine(daemon)
        yield from _feeds(daemon, self._clock(), self._wall())
        yield from _rules(daemon)
        yield from alert_families(daemon)

    def _service(self) -> Iterator[Metric]:
        s = self._stats
        reloads = _counter("config_reloads", "Config reloads (SIGHUP).", ["result"])
        reloads.add_metric(["success"], s.reloads_ok)
        reloads.add_metric(["failure"], s.reloads_failed)
        yield reloads
        last = _gauge("config_last_reload_success", "1 if the last reload succeeded.")
        last.add_metric([], 1.0 if s.last_reload_ok else 0.0)
        yield last
        if math.isfinite(s.checkpoint_last_success):
            ok = _gauge("checkpoint_last_success_timestamp_seconds", "Last checkpoint written.")
            ok.add_metric([], s.checkpoint_last_success)
            yield ok
        failed = _counter("checkpoint_failures", "Checkpoints that could not be written.")
        failed.add_metric([], s.checkpoint_failures)
        yield failed
        restored = _gauge("checkpoint_restored", "1 if state was restored at start.")
        restored.add_metric([], 1.0 if s.restored else 0.0)
        yield restored
        if s.dispatcher is not None:
            yield from _alerts(s.dispatcher, self._wall())


def _alerts(dispatcher: Dispatcher, wall: float) -> Iterator[Metric]:
    sent = _counter("alerts_sent", "Messages and events delivered.", ["sink"])
    notified = _counter(
        "alerts_notified", "Alert changes delivered (a digest counts each alert).", ["sink"]
    )
    failed = _counter("alerts_failed", "Alert changes refused or given up.", ["sink"])
    retried = _counter("alerts_retried", "Delivery attempts to be retried.", ["sink"])
    limited = _counter("alerts_rate_limited", "Pauses asked for by the receiver.", ["sink"])
    queued = _gauge("alerts_queued", "Alert changes waiting.", ["sink"])
    age = _gauge(
        "alerts_oldest_queued_age_seconds", "Age of the oldest waiting alert change.", ["sink"]
    )
    for name, stats in sorted(dispatcher.stats.items()):
        sent.add_metric([name], stats.sent)
        notified.add_metric([name], stats.notified)
        failed.add_metric([name], stats.failed)
        retried.add_metric([name], stats.retried)
        limited.add_metric([name], stats.rate_limited)
        queued.add_metric([name], dispatcher.queued(name))
        oldest = dispatcher.outbox.oldest(name)
        age.add_metric([name], 0.0 if oldest is None else max(wall - oldest, 0.0))
    suppressed = _counter(
        "alerts_suppressed", "Rule transitions receivers already had, not sent.", ["reason"]
    )
    for reason in Suppressed:
        suppressed.add_metric([reason.value], dispatcher.suppressed[reason.value])
    yield from (sent, notified, failed, retried, limited, queued, age, suppressed)


def _symbols(snap: RiskSnapshot) -> Iterator[Metric]:
    price = _gauge("price", "Last price, base currency.", ["symbol"])
    vol = _gauge(
        "volatility_ratio", "Annualised volatility, fraction per year.", ["symbol", "horizon"]
    )
    last = _gauge("last_tick_timestamp_seconds", "Event time of the last tick.", ["symbol"])
    for i, symbol in enumerate(snap.symbols):
        if math.isfinite(snap.price[i]):
            price.add_metric([symbol], float(snap.price[i]))
        if math.isfinite(snap.last_tick_ts[i]):
            last.add_metric([symbol], float(snap.last_tick_ts[i]))
        for horizon, values in (("fast", snap.volatility), ("slow", snap.volatility_slow)):
            if math.isfinite(values[i]):
                vol.add_metric([symbol, horizon], float(values[i]))
    yield from (price, vol, last)
    ts = _gauge("snapshot_timestamp_seconds", "Event time of the latest snapshot.")
    ts.add_metric([], snap.ts)
    yield ts


def _market(snap: RiskSnapshot, pairs: Iterable[tuple[str, str]]) -> Iterator[Metric]:
    m = snap.market
    avg = _gauge("average_correlation", "Average pairwise correlation.", ["horizon"])
    absorption = _gauge("absorption_ratio", "Absorption ratio.", ["horizon"])
    for horizon, a, r in (
        ("fast", m.avg_correlation, m.absorption_ratio),
        ("slow", m.avg_correlation_slow, m.absorption_ratio_slow),
    ):
        if _finite(a):
            avg.add_metric([horizon], a)  # type: ignore[arg-type]
        if _finite(r):
            absorption.add_metric([horizon], r)  # type: ignore[arg-type]
    yield from (avg, absorption)
    for name, doc, value in (
        (
            "absorption_ratio_shift",
            "Standardised absorption ratio shift.",
            m.absorption_ratio_shift,
        ),
        ("effective_bets", "Effective number of bets.", m.effective_bets),
        ("turbulence", "Mahalanobis turbulence.", m.turbulence),
    ):
        family = _gauge(name, doc)
        if value is not None and math.isfinite(value):
            family.add_metric([], value)
        yield family
    corr = _gauge("correlation", "Pair correlation (watch list).", ["a", "b", "horizon"])
    index = {s: i for i, s in enumerate(snap.symbols)}
    for first, second in pairs:
        i, j = index[first], index[second]
        for horizon, matrix in (("fast", snap.correlation), ("slow", snap.correlation_slow)):
            pair_value = float(matrix[i, j])
            if math.isfinite(pair_value):
                corr.add_metric([first, second, horizon], pair_value)
    yield corr


def _portfolios(snap: RiskSnapshot) -> Iterator[Metric]:
    scalars = {
        "portfolio_value": ("Net market value, base currency.", "value"),
        "portfolio_gross_exposure": ("Sum of absolute exposures.", "gross_exposure"),
        "portfolio_volatility_ratio": ("Annualised volatility per gross exposure.", "volatility"),
        "portfolio_diversification_ratio": ("Diversification ratio.", "diversification_ratio"),
        "portfolio_diversification_benefit_ratio": (
            "1 - VaR / stressed VaR.",
            "diversification_benefit",
        ),
    }
    for name, (doc, attr) in scalars.items():
        family = _gauge(name, doc, ["portfolio"])
        for p in snap.portfolios:
            value = getattr(p, attr)
            if _finite(value):
                family.add_metric([p.name], value)
        yield family
    tails = {
        "portfolio_var": ("Value at risk over the horizon.", "var"),
        "portfolio_cvar": ("Expected shortfall over the horizon.", "cvar"),
        "portfolio_stressed_var": ("VaR with every correlation 1.", "stressed_var"),
    }
    for name, (doc, attr) in tails.items():
        family = _gauge(name, doc, ["portfolio", "confidence"])
        for p in snap.portfolios:
            for tail in p.tails:
                value = getattr(tail, attr)
                if _finite(value):
                    family.add_metric([p.name, f"{tail.confidence:g}"], value)
        yield family
    component = _gauge(
        "portfolio_component_var", "Euler component VaR.", ["portfolio", "symbol", "confidence"]
    )
    for p in snap.portfolios:
        for tail in p.tails:
            for symbol, value in zip(p.symbols, tail.component_var or (), strict=False):
                component.add_metric([p.name, symbol, f"{tail.confidence:g}"], value)
    yield component


_ACCOUNT_SCALARS = {
    "account_equity": ("Collateral at full value plus positions, base currency.", "equity"),
    "account_margin_balance": ("Collateral after haircuts plus positions.", "margin_balance"),
    "account_maintenance_margin": ("Maintenance margin, base currency.", "maintenance"),
    "account_margin_ratio": ("Maintenance / margin balance; liquidation at 1.", "margin_ratio"),
    "account_liquidation_distance_sigma": (
        "Nearest liquidation in sigmas of the current covariance over the horizon.",
        "liquidation_distance_sigma",
    ),
    "account_stress_loss": (
        "Worst stress loss (extended moves at their coverage), capped at the equity of a "
        "margined account.",
        "stress_loss",
    ),
    "account_stress_loss_uncapped": ("Worst stress loss without the cap.", "stress_loss_uncapped"),
    "account_stress_loss_ratio": ("Stress loss over equity; 1: wiped out.", "stress_loss_ratio"),
    "account_net_vega": ("Vega of the book, base currency per volatility point.", "vega"),
}


def _accounts(snap: RiskSnapshot) -> Iterator[Metric]:
    for name, (doc, attr) in _ACCOUNT_SCALARS.items():
        family = _gauge(name, doc, ["account"])
        for a in snap.accounts:
            value = getattr(a, attr)
            if value is not None and not math.isnan(value):
                family.add_metric([a.name], value)  # +Inf: no liquidation within range
        yield family
    liq = _gauge(
        "account_liquidation_move_ratio",
        "Move of one symbol alone that liquidates the account (-0.2 = -20%).",
        ["account", "symbol", "direction"],
    )
    scen_pnl = _gauge(
        "account_scenario_pnl", "Equity change in a stress scenario.", ["account", "scenario"]
    )
    scen_ratio = _gauge(
        "account_scenario_margin_ratio",
        "Projected margin ratio in a stress scenario.",
        ["account", "scenario"],
    )
    for a in snap.accounts:
        for d in a.liquidation:
            for direction, move in (("down", d.down), ("up", d.up)):
                if move is not None:
                    liq.add_metric([a.name, d.symbol, direction], move)
        for sc in a.scenarios:
            scen_pnl.add_metric([a.name, sc.name], sc.pnl)
            if sc.margin_ratio is not None:
                scen_ratio.add_metric([a.name, sc.name], sc.margin_ratio)
    yield from (liq, scen_pnl, scen_ratio)
    yield from _account_greeks(snap)


def _account_greeks(snap: RiskSnapshot) -> Iterator[Metric]:
    greeks = {
        "account_delta": "Delta, units of the symbol (options, positions and collateral).",
        "account_delta_usd": "Delta times price, base currency.",
        "account_gamma": "Gamma, per unit of price.",
        "account_vega": "Vega per volatility point, base currency.",
        "account_theta": "Theta per day, base currency.",
        "account_symbol_stress_loss": "Worst grid loss when only this symbol moves.",
    }
    for name, doc in greeks.items():
        family = _gauge(name, doc, ["account", "symbol"])
        attr = name.removeprefix("account_").removeprefix("symbol_")
        for a in snap.accounts:
            for e in a.exposures:
                family.add_metric([a.name, e.symbol], getattr(e, attr))
        yield family
    for name, doc in (
        ("account_var", "VaR over the horizon: full-revaluation Monte Carlo with options."),
        ("account_cvar", "Expected shortfall over the horizon, as account_var."),
        ("account_delta_gamma_var", "Delta-gamma Cornish-Fisher VaR, where it is monotone."),
    ):
        family = _gauge(name, doc, ["account", "confidence"])
        for a in snap.accounts:
            tails = a.delta_gamma if name == "account_delta_gamma_var" else a.tails
            attr = "cvar" if name == "account_cvar" else "var"
            for tail in tails:
                value = getattr(tail, attr)
                if _finite(value):
                    family.add_metric([a.name, f"{tail.confidence:g}"], value)
        yield family


def _computed(daemon: Daemon) -> Iterator[Metric]:
    """When the latest snapshot was computed, on the process' clock (its age stays true in the
    demo, whose event time runs faster than the wall clock)."""
    computed = _gauge(
        "snapshot_computed_timestamp_seconds", "Unix time the latest snapshot was computed."
    )
    if math.isfinite(daemon.latest_computed_at):
        computed.add_metric([], daemon.latest_computed_at)
    yield computed


def _engine(daemon: Daemon) -> Iterator[Metric]:
    snapshots = _counter("snapshots", "Snapshots taken.")
    snapshots.add_metric([], daemon.snapshots)
    gaps = _counter("snapshots_skipped", "Snapshot boundaries skipped inside gaps in event time.")
    gaps.add_metric([], daemon.clock.skipped)
    rejected = _counter(
        "ticks_rejected", "Ticks rejected (clock_skew: re-stamped).", ["venue", "reason"]
    )
    for (venue, reason), count in sorted(daemon.rejected().items()):
        rejected.add_metric([venue, reason], count)
    held = _gauge("ticks_held", "Suspect ticks held by the bad-print filter.")
    held.add_metric([], daemon.engine.guard.held)
    buffered = _gauge("tick_buffer_ticks", "Ticks waiting for the engine.")
    buffered.add_metric([], len(daemon.buffer))
    dropped = _counter("tick_buffer_dropped", "Ticks dropped by the full buffer.")
    dropped.add_metric([], daemon.buffer.dropped)
    yield from (snapshots, gaps, rejected, held, buffered, dropped)
    yield from _frozen(daemon)


def _frozen(daemon: Daemon) -> Iterator[Metric]:
    """What /readyz checks for figures that stopped following the market."""
    drift = _gauge(
        "event_clock_drift_seconds", "Wall clock minus the latest snapshot's event time."
    )
    value = daemon.clock_drift()
    if value is not None and math.isfinite(value):
        drift.add_metric([], value)
    streak = _gauge(
        "ticks_rejected_streak", "Ticks rejected since the last accepted one.", ["symbol"]
    )
    counts = daemon.engine.guard.streak
    for i, symbol in enumerate(daemon.engine.symbols):
        streak.add_metric([symbol], float(counts[i]))
    yield from (drift, streak)


def _feeds(daemon: Daemon, mono: float, wall: float) -> Iterator[Metric]:
    connected = _gauge("feed_connected", "1 while the socket is open.", ["venue", "connection"])
    totals: dict[str, CounterMetricFamily] = {
        name: _counter(f"feed_{name}", doc, ["venue"])
        for name, doc in (
            ("connections", "Sockets opened."),
            ("reconnects", "Reconnect attempts."),
            ("messages", "Frames received."),
            ("parse_errors", "Frames dropped as unparseable."),
            ("gaps", "Sequence gaps."),
            ("resubscribes", "Resubscribe requests sent for quiet instruments."),
            ("requests", "Subscribe, unsubscribe and control frames sent (request budget)."),
        )
    }
    pending = _gauge(
        "feed_resubscribe_pending", "Quiet instruments waiting for request budget.", ["venue"]
    )
    sums: dict[tuple[str, str], int] = {}
    for n, conn in enumerate(daemon.connections):
        s = conn.stats
        connected.add_metric([s.venue, str(n)], 1.0 if s.connected else 0.0)
        for name in (*totals, "resubscribe_pending"):
            sums[(name, s.venue)] = sums.get((name, s.venue), 0) + getattr(s, name)
    for (name, venue), value in sorted(sums.items()):
        (pending if name == "resubscribe_pending" else totals[name]).add_metric([venue], value)
    yield connected
    yield from totals.values()
    yield pending
    replayed = _counter(
        "feed_replayed_quotes", "Snapshot quotes not newer than the last seen, dropped.", ["venue"]
    )
    for venue, count in sorted(_replayed(daemon).items()):
        replayed.add_metric([venue], count)
    yield replayed
    staleness = _gauge(
        "feed_staleness_seconds", "Seconds since the last quote.", ["venue", "symbol"]
    )
    last = _gauge(
        "feed_last_quote_timestamp_seconds", "Unix time of the last quote.", ["venue", "symbol"]
    )
    for (venue, instrument), age in sorted(daemon.router.staleness(mono).items()):
        staleness.add_metric([venue, instrument], age)
        last.add_metric([venue, instrument], wall - age)
    yield from (staleness, last)
    ticks = _counter("ticks", "Ticks routed into the engine.", ["venue", "symbol"])
    for (venue, symbol), count in sorted(daemon.router.routed.items()):
        ticks.add_metric([venue, symbol], count)
    yield ticks


def _replayed(daemon: Daemon) -> dict[str, int]:
    counts: dict[str, int] = {}
    for group in daemon.router.sources.values():
        for src in group:
            counts[src.venue] = counts.get(src.venue, 0) + src.replayed
    return counts


def _rules(daemon: Daemon) -> Iterator[Metric]:
    family = _gauge(
        "rule_state", "1 for the rule instance's current state.", ["rule", "rule_instance", "state"]
    )
    for inst in daemon.rules.instances:
        instance = ",".join(f"{k}={v}" for k, v in inst.labels) or "-"
        for state in ("inactive", "pending", "firing"):
            family.add_metric(
                [inst.rule, instance, state], 1.0 if inst.state.value == state else 0.0
            )
    yield family


def make_registry(collector: RiskCollector) -> tuple[CollectorRegistry, Histogram]:
    """A fresh registry (never the global one) with the collector, the latency histogram and
    client_python's process, platform and garbage-collector collectors.

    ``*_created`` series are switched off: they double the series count for no use here.
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in client_python
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    # The process' memory, CPU, file descriptors and start time (process_*, Linux), the
    # interpreter (python_info) and the garbage collector (python_gc_*).
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    latency = Histogram(
        "riskmon_tick_to_snapshot_latency_seconds",
        "From the oldest tick of a batch being received to the end of the engine step that "
        "applied it (ticks ingested, snapshots taken, rules evaluated).",
        buckets=LATENCY_BUCKETS_S,
        registry=registry,
    )
    return registry, latency
