"""Metrics of the split roles: which role a process runs, and its side of the bus.

Registered next to :class:`~service.metrics.RiskCollector` by :func:`service.roles.role_service`;
read at scrape time from the counters of the current daemon's publisher or subscriber, like
every other riskmon metric. Names and labels are listed in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bus.jetstream import Link
from bus.publisher import TickPublisher
from bus.subscriber import TickSubscriber
from service.bus_latency import LatencyHistogram
from service.daemon import Daemon
from service.engine_role import EngineDaemon
from service.feeds_role import FeedsDaemon


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(f"riskmon_{name}", doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def _counter(name: str, doc: str, value: float) -> Metric:
    family = CounterMetricFamily(f"riskmon_{name}", doc)
    family.add_metric([], value)
    return family


class BusCollector(Collector):
    """``riskmon_role_info`` and the ``riskmon_bus_*`` families of the running role.

    Args:
        role: the role this process runs.
        daemon: returns the daemon currently running (it changes on a config reload).
    """

    def __init__(self, role: str, daemon: Callable[[], Daemon | None]) -> None:
        self._role = role
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        """Build the families from the current daemon's counters."""
        yield _gauge("role_info", "The role this process runs.", 1.0, {"role": self._role})
        daemon = self._daemon()
        if isinstance(daemon, FeedsDaemon):
            yield from _link(daemon.publisher.link)
            yield from _publisher(daemon.publisher)
        elif isinstance(daemon, EngineDaemon) and daemon.subscriber is not None:
            yield from _link(daemon.subscriber.link)
            yield from _subscriber(daemon.subscriber)
            yield _trip(daemon.trip)
            yield _gauge(
                "bus_leases_held", "1 while the worker's portfolio leases are certain.",
                1.0 if daemon.leases is not None and daemon.leases.valid() else 0.0,
            )  # fmt: skip


def _trip(trip: LatencyHistogram) -> Metric:
    family = HistogramMetricFamily(
        "riskmon_bus_tick_to_snapshot_seconds",
        "Wall time from the feeds role's receipt of the newest tick of an engine step to the "
        "worker's snapshot computed by it (hosts' clocks assumed in sync; negative as 0).",
    )
    family.add_metric([], trip.cumulative(), trip.total)
    return family


def _link(link: Link) -> Iterator[Metric]:
    yield _gauge("bus_connected", "1 while connected to NATS.", 1.0 if link.connected else 0.0)
    yield _counter("bus_reconnects", "Connections to NATS re-established.", link.reconnects)


def _publisher(publisher: TickPublisher) -> Iterator[Metric]:
    s = publisher.stats
    yield _counter(
        "bus_published", "Messages (tick batches and marks) stored in the stream.", s.published
    )
    yield _counter("bus_published_ticks", "Ticks stored in the stream.", s.published_ticks)
    yield _counter(
        "bus_publish_duplicates", "Re-sent ticks the stream had already stored.", s.duplicates
    )
    yield _counter("bus_publish_errors", "Publish windows that failed and were retried.", s.errors)
    yield _gauge("bus_buffered_ticks", "Ticks waiting to be published.", publisher.buffered)
    yield _counter(
        "bus_buffer_dropped",
        "Ticks dropped with the oldest messages of the full buffer.",
        s.dropped,
    )


def _subscriber(subscriber: TickSubscriber) -> Iterator[Metric]:
    s = subscriber.stats
    yield _counter("bus_consumed", "Ticks handed to the engine from the stream.", s.consumed)
    yield _counter("bus_duplicates", "Redelivered messages skipped.", s.duplicates)
    yield _counter("bus_gaps", "Ticks missing from the feeds role's sequences.", s.gaps)
    yield _counter("bus_rewinds", "Consumers recreated at the applied position.", s.rewinds)
    yield _gauge(
        "bus_applied_sequence", "Stream sequence up to which ticks are applied.", s.position
    )
    yield _gauge(
        "bus_held_messages",
        "Deliveries waiting for every symbol to reach their place in the stream.",
        subscriber.merger.held,
    )
