"""``riskmon run --role all|feeds|engine``: one process, or feeds and engine workers on a bus.

- ``all`` (the default): today's single process, feeds and engine together, no NATS at all.
- ``feeds``: connects to the venues and publishes routed ticks to JetStream
  (:mod:`service.feeds_role`). Rules and portfolios are not evaluated there.
- ``engine``: consumes the ticks of the symbols its portfolios need (the universe, and every
  position) and runs engine, rules, alerts and checkpoints for them (:mod:`service.engine_role`).
  ``--portfolios A,B`` or ``--shard I/N`` (the portfolios at positions I, I+N, ... in config
  order) choose its portfolios. Portfolio rules go to the worker holding their portfolio (or
  to every worker, unlabelled); market, symbol, pair and account rules only to the worker that
  holds the first configured portfolio, so each alert fires once (``hedge_drift`` follows its
  labelled book; unlabelled, its account instances run there and its portfolio instances on
  each portfolio's worker); feed staleness rules need
  the router and are not evaluated by workers (the feeds role exports
  ``riskmon_feed_staleness_seconds`` for Prometheus).

Each role serves its own /metrics, /healthz and /readyz and exports ``riskmon_role_info``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog

from monitor.config.catalogue import MetricKind, lookup_metric
from monitor.config.schema import Config, Labels, RuleConfig
from monitor.errors import ConfigError
from service.bus_metrics import BusCollector
from service.daemon import AlertListener, Daemon
from service.engine_role import EngineDaemon
from service.feeds_role import FeedsDaemon
from service.service import Service

log = structlog.get_logger("riskmon.roles")

Role = Literal["all", "feeds", "engine"]
ROLES: tuple[Role, ...] = ("all", "feeds", "engine")
_SHARD = re.compile(r"(?P<index>\d+)/(?P<count>\d+)")


@dataclass(frozen=True, slots=True)
class Selection:
    """The portfolios of one engine worker.

    Attributes:
        portfolios: names, in config order.
        owns_market: whether market, symbol, pair and account rules run on this worker.
        worker: the worker's name (its durable consumers are named after it).
    """

    portfolios: tuple[str, ...]
    owns_market: bool
    worker: str


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as (I, N) with 0 <= I < N.

    Raises:
        ConfigError: anything else.
    """
    match = _SHARD.fullmatch(text.strip())
    if match is None or not 0 <= int(match["index"]) < int(match["count"]):
        raise ConfigError(f'--shard: expected INDEX/COUNT with 0 <= INDEX < COUNT, got "{text}"')
    return int(match["index"]), int(match["count"])


def select(
    config: Config, names: Sequence[str] = (), shard: tuple[int, int] | None = None
) -> Selection:
    """The portfolios an engine worker runs: ``names``, or a shard, or all of them.

    Raises:
        ConfigError: an unknown portfolio name, or a shard without portfolios.
    """
    every = [p.name for p in config.portfolios]
    for name in names:
        if name not in every:
            raise ConfigError(
                f'--portfolios: unknown portfolio "{name}"; expected one of {", ".join(every)}'
            )
    if names:
        chosen = tuple(n for n in every if n in names)
        worker = "-".join(chosen)
    elif shard is not None:
        chosen = tuple(every[shard[0] :: shard[1]])
        worker = f"shard-{shard[0]}-of-{shard[1]}"
        if not chosen and every:
            raise ConfigError(f"--shard {shard[0]}/{shard[1]}: no portfolio falls in this shard")
    else:
        chosen, worker = tuple(every), "all"
    owns_market = not every or every[0] in chosen
    return Selection(chosen, owns_market, worker)


def engine_config(config: Config, selection: Selection) -> Config:
    """``config`` as one engine worker runs it: its portfolios and rules, no feeds."""
    keep = set(selection.portfolios)
    owns = selection.owns_market
    rules = tuple(w for r in config.rules for w in _worker_rules(r, config, selection, owns))
    portfolios = tuple(p for p in config.portfolios if p.name in keep)
    return msgspec.structs.replace(config, portfolios=portfolios, rules=rules, feeds=())


def feeds_config(config: Config) -> Config:
    """``config`` as the feeds role runs it: feeds and universe, no portfolios or rules."""
    return msgspec.structs.replace(config, portfolios=(), rules=())


def _worker_rules(
    rule: RuleConfig, config: Config, selection: Selection, owns_market: bool
) -> Iterator[RuleConfig]:
    """The rules a worker runs for ``rule``.

    An unlabelled hedge rule has one instance per portfolio and per account: the worker that
    owns the market runs it whole (its portfolios and every account); another one runs a copy
    labelled with each of its portfolios, so every instance runs exactly once.
    """
    kind = lookup_metric(rule.metric, config.risk.confidence).kind
    if kind is MetricKind.HEDGE and not rule.labels and not owns_market:
        for name in selection.portfolios:
            yield msgspec.structs.replace(rule, labels=Labels((("portfolio", name),)))
    elif _runs_on(rule, config, set(selection.portfolios), owns_market):
        yield rule


def _runs_on(rule: RuleConfig, config: Config, keep: set[str], owns_market: bool) -> bool:
    kind = lookup_metric(rule.metric, config.risk.confidence).kind
    if kind is MetricKind.PORTFOLIO or (kind is MetricKind.HEDGE and rule.labels.get("portfolio")):
        portfolio = rule.labels.get("portfolio")
        return portfolio in keep if portfolio is not None else bool(keep)
    if kind is MetricKind.FEED:
        return False
    return owns_market


def warn_short_retention(config: Config) -> bool:
    """Log a warning when the stream keeps less than the slow half-life; whether it did.

    A worker without a usable checkpoint (new, or its portfolios changed) warms up from what
    the stream holds: with ``[bus] max_age`` shorter than ``[estimator] slow_halflife`` its
    slow estimates start from a fraction of their memory, and take the rest of it to settle.
    """
    kept, slow = float(config.bus.max_age), float(config.estimator.slow_halflife)
    if kept >= slow:
        return False
    log.warning(
        "bus_retention_short",
        max_age_s=kept,
        slow_halflife_s=slow,
        hint="a worker starting without its checkpoint cannot rebuild the slow estimates from "
        "the stream; raise [bus] max_age (and max_bytes) to the slow half-life, or keep the "
        "workers' checkpoints",
    )
    return True


def _feeds_daemon(config: Config, **kwargs: Any) -> Daemon:
    return FeedsDaemon(feeds_config(config), **kwargs)


def fed_symbols(config: Config) -> frozenset[str]:
    """Engine symbols some ``[[feeds]]`` entry prices: those the feeds role publishes."""
    return frozenset(f.engine_symbol(native) for f in config.feeds for native in f.symbols)


def bus_symbols(config: Config, selection: Selection) -> tuple[str, ...]:
    """The symbols a worker consumes: its tracked symbols that the feeds role publishes."""
    fed = fed_symbols(config)
    return tuple(s for s in engine_config(config, selection).tracked_symbols if s in fed)


def _check_worker(config: Config, selection: Selection) -> None:
    if not bus_symbols(config, selection):
        raise ConfigError(
            f"engine worker {selection.worker}: no [[feeds]] entry prices any of its symbols "
            f"({', '.join(engine_config(config, selection).tracked_symbols)})"
        )


def _engine_daemon(
    config: Config, names: Sequence[str], shard: tuple[int, int] | None, **kwargs: Any
) -> Daemon:
    selection = select(config, names, shard)
    _check_worker(config, selection)
    worker_config = engine_config(config, selection)
    consumed = bus_symbols(config, selection)
    unfed = [s for s in worker_config.tracked_symbols if s not in consumed]
    if unfed:
        log.warning("symbols_without_feed", symbols=unfed, worker=selection.worker)
    return EngineDaemon(worker_config, worker=selection.worker, bus_symbols=consumed, **kwargs)


def role_service(
    role: Role,
    config: Config,
    *,
    config_path: Path | None = None,
    listeners: Sequence[AlertListener] = (),
    portfolios: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
) -> Service:
    """The service of ``role``; a bad ``--portfolios`` or ``--shard`` is refused at once.

    Raises:
        ConfigError: an unknown portfolio, or an empty shard.
    """
    path = config_path
    if role == "all":
        return Service(config, config_path=path, listeners=tuple(listeners))
    warn_short_retention(config)
    if role == "feeds":
        factory = _feeds_daemon
    else:
        _check_worker(config, select(config, portfolios, shard))  # fail before anything starts
        factory = functools.partial(_engine_daemon, names=tuple(portfolios), shard=shard)
    service = Service(
        config,
        config_path=path,
        listeners=tuple(listeners),
        daemon_factory=factory,
        fixed_sections=frozenset({"bus"}),  # a worker's cursor is a position in one stream
        role=role,
    )
    service.collectors = (BusCollector(role, lambda: service.daemon),)
    return service
