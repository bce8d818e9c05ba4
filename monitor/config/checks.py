"""Cross-field checks on a converted configuration: what a schema alone cannot express.

Each check yields :class:`Problem` values naming the key at fault; :mod:`monitor.config` turns
the first one into a ``ConfigError`` that starts with the file path. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.config.book import BUILTIN_SCENARIOS, account_problems, hedge_with_problems
from monitor.config.bus import bus_problems
from monitor.config.catalogue import MetricKind, MetricSpec, lookup_metric
from monitor.config.durations import format_duration

if TYPE_CHECKING:  # monitor.config imports this module at run time
    from monitor.config.book import AccountConfig
    from monitor.config.schema import (
        Config,
        EstimatorConfig,
        FeedConfig,
        LiveConfig,
        PortfolioConfig,
        RiskConfig,
        RuleConfig,
        ServerConfig,
        SinkConfig,
        UniverseConfig,
    )

MARK_VENUES = frozenset({"binance-usdm", "bybit", "deribit"})

Key = tuple[str | int, ...]
"""A path into the TOML document: ``("rules", 2, "op")`` is ``[[rules]][2] op``."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid key or environment variable.

    Attributes:
        where: the key path, or the name of the environment variable at fault.
        detail: what was expected and what was found.
    """

    where: Key | str
    detail: str


def show_value(value: object) -> str:
    """Write a value the way TOML would, shortened for error messages."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(show_value(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {show_value(v)}" for k, v in value.items()) + " }"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def find_problems(config: Config) -> Iterator[Problem]:
    """Check what spans several keys: uniqueness, known symbols, rule metrics and labels.

    Args:
        config: a configuration that already passed type and range validation.

    Yields:
        Problems in file order; checks that depend on an earlier key stop at its problem.
    """
    yield from _universe_problems(config.universe)
    yield from _estimator_problems(config.estimator)
    yield from _risk_problems(config.risk)
    yield from _portfolio_problems(config.portfolios)
    yield from _duplicate_names(config.rules, "rules")
    for index, rule in enumerate(config.rules):
        yield from _rule_problems(("rules", index), rule, config)
    for index, feed in enumerate(config.feeds):
        yield from _feed_problems(("feeds", index), feed)
    yield from _live_problems(config.live)
    yield from _server_problems(config.server)
    for key, detail in bus_problems(config.bus):
        yield Problem(("bus", key), detail)
    yield from _account_problems(config)
    yield from _hedge_problems(config)
    yield from _duplicate_names(config.sinks, "sinks")
    for index, sink in enumerate(config.sinks):
        yield from _sink_problems(("sinks", index), sink)
    known = {s.name for s in config.sinks} | {"log"}
    for index, route in enumerate(config.routes):
        for name in route.sinks:
            if name not in known:
                yield Problem(
                    ("routes", index, "sinks"),
                    f"unknown sink {show_value(name)}; expected one of " + ", ".join(sorted(known)),
                )


_NEEDS_SECRET = {"slack", "discord", "teams", "pagerduty", "telegram"}


def _sink_problems(key: Key, sink: SinkConfig) -> Iterator[Problem]:
    has_secret = any(v is not None for v in (sink.secret_env, sink.secret_file, sink.secret))
    if (
        sink.type in _NEEDS_SECRET
        and not has_secret
        and not (sink.type in {"slack", "discord", "teams"} and sink.url)
    ):
        yield Problem((*key, "secret_env"), f'type "{sink.type}" needs secret_env or secret_file')
    if sink.type in {"alertmanager", "webhook"} and sink.url is None:
        yield Problem((*key, "url"), f'type "{sink.type}" needs url')
    if sink.type == "telegram" and not sink.chat_id:
        yield Problem((*key, "chat_id"), 'type "telegram" needs chat_id')
    if sink.type == "file" and not sink.path:
        yield Problem((*key, "path"), 'type "file" needs path')


def _live_problems(live: LiveConfig) -> Iterator[Problem]:
    if live.stall_after <= live.idle_snapshot:
        idle, stall = format_duration(live.idle_snapshot), format_duration(live.stall_after)
        detail = (
            f'expected a duration longer than idle_snapshot ("{idle}"), the longest the '
            f'engine loop waits between turns, got "{stall}"'
        )
        yield Problem(("live", "stall_after"), detail)


def _server_problems(server: ServerConfig) -> Iterator[Problem]:
    if (server.tls_cert is None) != (server.tls_key is None):
        yield Problem(("server", "tls_cert"), "tls_cert and tls_key go together")
    if server.auth != "none" and server.token_env is None and server.token_file is None:
        yield Problem(("server", "auth"), f'"{server.auth}" needs token_env or token_file')
    if server.auth == "basic" and not server.basic_user:
        yield Problem(("server", "basic_user"), 'auth = "basic" needs basic_user')
    if server.auth == "none" and not server.allow_unauthenticated and not is_loopback(server.host):
        detail = (
            f'"{server.listen}" is reachable from other hosts and auth = "none" would serve '
            "positions and VaR to anyone there; expected a loopback address (127.0.0.1), or "
            'auth = "bearer" or "basic" with token_env or token_file (or, behind a proxy that '
            "authenticates, the dangerous allow_unauthenticated = true)"
        )
        yield Problem(("server", "listen"), detail)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a ``[server] listen`` host) only accepts connections from this machine.

    ``localhost`` and 127.0.0.0/8 (and ``::1``) are; the wildcard (an empty host, ``0.0.0.0``),
    other addresses and any other name are not: a name is not resolved here, and it may
    resolve to an external interface.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _feed_problems(key: Key, feed: FeedConfig) -> Iterator[Problem]:
    duplicate = _first_duplicate(feed.symbols)
    if duplicate is not None:
        yield Problem((*key, "symbols"), f"{show_value(feed.symbols[duplicate])} appears twice")
    for native in feed.aliases:
        if native not in feed.symbols:
            yield Problem((*key, "aliases"), f"alias for {show_value(native)}, not in symbols")
    if feed.price == "mark" and feed.venue not in MARK_VENUES:
        yield Problem(
            (*key, "price"),
            f'"mark" is not published by {feed.venue}; expected one of '
            + ", ".join(sorted(MARK_VENUES)),
        )


def _first_duplicate(values: Sequence[Hashable]) -> int | None:
    seen: set[Hashable] = set()
    for index, value in enumerate(values):
        if value in seen:
            return index
        seen.add(value)
    return None


def _universe_problems(universe: UniverseConfig) -> Iterator[Problem]:
    symbols = universe.symbols
    if (dup := _first_duplicate(symbols)) is not None:
        detail = f"duplicate symbol {show_value(symbols[dup])}; expected each symbol once"
        yield Problem(("universe", "symbols", dup), detail)
    for index, pair in enumerate(universe.watch_pairs):
        if pair[0] == pair[1]:
            detail = f"expected two different symbols, got {show_value(pair)}"
            yield Problem(("universe", "watch_pairs", index), detail)
        for side, symbol in enumerate(pair):
            if symbol not in symbols:
                detail = f'"{symbol}" is not in [universe] symbols; expected one of '
                yield Problem(("universe", "watch_pairs", index, side), detail + ", ".join(symbols))


def _estimator_problems(estimator: EstimatorConfig) -> Iterator[Problem]:
    if estimator.slow_halflife <= estimator.halflife:
        fast, slow = format_duration(estimator.halflife), format_duration(estimator.slow_halflife)
        detail = f'expected a duration longer than halflife ("{fast}"), got "{slow}"'
        yield Problem(("estimator", "slow_halflife"), detail)


def _risk_problems(risk: RiskConfig) -> Iterator[Problem]:
    for index, level in enumerate(risk.confidence):
        # Metric and column names carry the digits after "0.", so they must stay short and exact.
        if not math.isclose(level * 1000, round(level * 1000), rel_tol=0.0, abs_tol=1e-6):
            detail = f"expected at most 3 decimals (names such as var_975), got {level}"
            yield Problem(("risk", "confidence", index), detail)
    if (dup := _first_duplicate(risk.confidence)) is not None:
        detail = f"duplicate level {risk.confidence[dup]}; expected each level once"
        yield Problem(("risk", "confidence", dup), detail)
    if risk.option_paths & (risk.option_paths - 1):
        detail = f"expected a power of two (Sobol points), e.g. 8192, got {risk.option_paths}"
        yield Problem(("risk", "option_paths"), detail)


def _account_problems(config: Config) -> Iterator[Problem]:
    yield from _duplicate_names(config.accounts, "accounts")
    for index, account in enumerate(config.accounts):
        for where, detail in account_problems(account):
            yield Problem(("accounts", index, *where), detail)
    shocks = config.stress.shocks
    if (dup := _first_duplicate([s.name for s in shocks])) is not None:
        detail = f'duplicate name "{shocks[dup].name}"; expected each name once'
        yield Problem(("stress", "shocks", dup, "name"), detail)
    for index, shock in enumerate(shocks):
        if shock.name in BUILTIN_SCENARIOS:
            detail = f'"{shock.name}" names a built-in scenario; expected another name'
            yield Problem(("stress", "shocks", index, "name"), detail)
        for symbol in shock.moves:
            if symbol not in config.tracked_symbols:
                detail = f'"{symbol}" is not a tracked symbol'
                yield Problem(("stress", "shocks", index, "moves", symbol), detail)


def _hedge_problems(config: Config) -> Iterator[Problem]:
    """``hedge_with`` names each symbol once, and only symbols the engine prices otherwise."""
    priced = config.priced_symbols
    books = [("portfolios", i, p.hedge_with) for i, p in enumerate(config.portfolios)]
    books += [("accounts", i, a.hedge_with) for i, a in enumerate(config.accounts)]
    for section, index, hedge_with in books:
        if section == "portfolios":  # an account's duplicates are among its account_problems
            for where, detail in hedge_with_problems(hedge_with):
                yield Problem((section, index, *where), detail)
        for pos, symbol in enumerate(hedge_with or ()):
            if symbol not in priced:
                detail = (
                    f'"{symbol}" is not priced by this config; expected a symbol of [universe] '
                    f"or of a position: {', '.join(priced)}"
                )
                yield Problem((section, index, "hedge_with", pos), detail)


def _duplicate_names(
    entries: Sequence[PortfolioConfig | RuleConfig | SinkConfig | AccountConfig], section: str
) -> Iterator[Problem]:
    names = [entry.name for entry in entries]
    if (dup := _first_duplicate(names)) is not None:
        detail = f"duplicate name {show_value(names[dup])}; expected each name once"
        yield Problem((section, dup, "name"), detail)


def _portfolio_problems(portfolios: Sequence[PortfolioConfig]) -> Iterator[Problem]:
    yield from _duplicate_names(portfolios, "portfolios")
    for index, portfolio in enumerate(portfolios):
        for pos, position in enumerate(portfolio.positions):
            if not math.isfinite(position.quantity) or position.quantity == 0:
                detail = f"expected a finite non-zero number, got {position.quantity}"
                yield Problem(("portfolios", index, "positions", pos, "quantity"), detail)
        symbols = [position.symbol for position in portfolio.positions]
        if (dup := _first_duplicate(symbols)) is not None:
            detail = f"duplicate symbol {show_value(symbols[dup])}; expected each symbol once"
            yield Problem(("portfolios", index, "positions", dup, "symbol"), detail)


def _rule_problems(key: Key, rule: RuleConfig, config: Config) -> Iterator[Problem]:
    yield from _threshold_problems(key, rule)
    try:
        spec = lookup_metric(rule.metric, config.risk.confidence)
    except ValueError as exc:
        yield Problem((*key, "metric"), str(exc))
        return
    label_key_problems = list(_label_key_problems(key, rule, spec))
    if label_key_problems:
        yield from label_key_problems
        return
    yield from _label_value_problems(key, rule, spec, config)


def _threshold_problems(key: Key, rule: RuleConfig) -> Iterator[Problem]:
    for name, value in (
        ("threshold", rule.threshold),
        ("resolve_threshold", rule.resolve_threshold),
    ):
        if not math.isfinite(value):
            yield Problem((*key, name), f"expected a finite number, got {value}")
    # Hysteresis: the resolve threshold lies on the safe side of the firing threshold.
    above = rule.op in (">", ">=")
    if (
        rule.resolve_threshold > rule.threshold
        if above
        else rule.resolve_threshold < rule.threshold
    ):
        expected = (
            f'expected {"<=" if above else ">="} threshold ({rule.threshold}) for op "{rule.op}"'
        )
        yield Problem((*key, "resolve_threshold"), f"{expected}, got {rule.resolve_threshold}")


def _label_key_problems(key: Key, rule: RuleConfig, spec: MetricSpec) -> Iterator[Problem]:
    allowed = spec.allowed_labels
    expected = f"expected one of {', '.join(allowed)}" if allowed else "it takes no labels"
    for name, _ in rule.labels:
        if name not in allowed:
            yield Problem((*key, "labels", name), f'unknown label for "{rule.metric}"; {expected}')
    for name in spec.required_labels:
        if rule.labels.get(name) is None:
            detail = f'missing required label for "{rule.metric}"; {expected}'
            yield Problem((*key, "labels", name), detail)


def _label_value_problems(
    key: Key, rule: RuleConfig, spec: MetricSpec, config: Config
) -> Iterator[Problem]:
    if spec.kind in (MetricKind.SYMBOL, MetricKind.PAIR):
        tracked = config.tracked_symbols
        for name in spec.required_labels:
            if (value := rule.labels.get(name)) not in tracked:
                detail = f'"{value}" is not a tracked symbol; expected one of {", ".join(tracked)}'
                yield Problem((*key, "labels", name), detail)
    if spec.kind is MetricKind.PAIR and rule.labels.get("a") == rule.labels.get("b"):
        yield Problem((*key, "labels", "b"), 'expected a symbol other than label "a"')
    if spec.kind is MetricKind.PORTFOLIO:
        yield from _portfolio_label_problems(key, rule, config)
    if spec.kind is MetricKind.ACCOUNT:
        yield from _account_label_problems(key, rule, config)
    if spec.kind is MetricKind.HEDGE:
        yield from _hedge_label_problems(key, rule, config)


def _portfolio_label_problems(key: Key, rule: RuleConfig, config: Config) -> Iterator[Problem]:
    names = [portfolio.name for portfolio in config.portfolios]
    if not names:
        detail = f'"{rule.metric}" is a portfolio metric; expected a [[portfolios]] entry'
        yield Problem((*key, "metric"), detail)
    elif (value := rule.labels.get("portfolio")) not in (None, *names):
        detail = f'unknown portfolio "{value}"; expected one of {", ".join(names)}'
        yield Problem((*key, "labels", "portfolio"), detail)


def _account_label_problems(key: Key, rule: RuleConfig, config: Config) -> Iterator[Problem]:
    names = [account.name for account in config.accounts]
    if not names:
        detail = f'"{rule.metric}" is an account metric; expected an [[accounts]] entry'
        yield Problem((*key, "metric"), detail)
    elif (value := rule.labels.get("account")) not in (None, *names):
        detail = f'unknown account "{value}"; expected one of {", ".join(names)}'
        yield Problem((*key, "labels", "account"), detail)


def _hedge_label_problems(key: Key, rule: RuleConfig, config: Config) -> Iterator[Problem]:
    """A hedge rule names one hedged book (or none: every book) and some book is hedged."""
    hedged = {("portfolio", p.name): p.hedge_with for p in config.portfolios}
    hedged.update({("account", a.name): a.hedge_with for a in config.accounts})
    named: list[tuple[str, str]] = []
    for label in ("portfolio", "account"):
        if (value := rule.labels.get(label)) is not None:
            named.append((label, value))
    if len(named) > 1:
        detail = "expected one of portfolio or account, not both"
        yield Problem((*key, "labels", "account"), detail)
        return
    books = [f"{k} {n}" for (k, n), hedge_with in hedged.items() if hedge_with]
    if not books:
        detail = f'"{rule.metric}" needs hedge_with on a [[portfolios]] or [[accounts]] entry'
        yield Problem((*key, "metric"), detail)
        return
    for label, value in named:
        if (label, value) not in hedged:
            detail = f'unknown {label} "{value}"; expected one of: {", ".join(books)}'
            yield Problem((*key, "labels", label), detail)
        elif not hedged[(label, value)]:
            detail = f'{label} "{value}" has no hedge_with; expected one of: {", ".join(books)}'
            yield Problem((*key, "labels", label), detail)
