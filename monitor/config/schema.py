"""The configuration schema: one frozen, validated msgspec Struct per section.

:func:`~monitor.config.loading.load_config` reads a TOML file into :class:`Config`; the
cross-field checks are in :mod:`monitor.config.checks`. A new section is one more field on
:class:`Config`; overrides and messages follow from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from monitor.config.book import (
    NAME_PATTERN,
    AccountConfig,
    HedgeWith,
    StressConfig,
    Symbol,
    account_symbols,
)
from monitor.config.bus import BusConfig
from monitor.config.catalogue import confidence_tag
from monitor.config.durations import Duration, PositiveDuration, parse_duration
from monitor.model import Severity

ENV_PREFIX = "RISKMON_"

Op = Literal[">", ">=", "<", "<="]
Distribution = Literal["normal", "student-t", "cornish-fisher"]
Confidence = Annotated[float, Meta(gt=0.5, lt=1)]


class Labels(tuple[tuple[str, str], ...]):
    """A rule's labels as sorted ``(key, value)`` pairs, the form ``AlertEvent.labels`` uses.

    Written in TOML as a table of strings: ``labels = { symbol = "BTCUSDT" }``.
    """

    def get(self, key: str) -> str | None:
        """The value of label ``key``, or None when the rule does not set it."""
        return next((value for name, value in self if name == key), None)


def _seconds(text: str) -> PositiveDuration:
    return PositiveDuration(parse_duration(text))


class UniverseConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[universe]``: the symbols the estimators track.

    Attributes:
        symbols: engine symbols such as ``BTCUSDT``; at least one, each once.
        watch_pairs: pairs of ``symbols`` whose correlation is exported per pair.
    """

    symbols: Annotated[tuple[Symbol, ...], Meta(min_length=1)]
    watch_pairs: tuple[tuple[Symbol, Symbol], ...] = ()


class EstimatorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[estimator]``: the event-time EWMA estimators; durations in seconds.

    Attributes:
        halflife: half-life of the fast estimator.
        slow_halflife: half-life of the slow (baseline) estimator; longer than ``halflife``.
        min_observations: returns per symbol before its estimates are published.
        max_out_of_order: a tick older than its symbol's last accepted tick by more than this
            is rejected (``out_of_order``); later ticks are applied at the latest event time.
        preaverage: block length of the noise-robust pre-averaged estimator
            (:mod:`monitor.estimation.preaveraged`); 0 selects the tick-by-tick
            Hayashi-Yoshida estimator (:mod:`monitor.estimation.covariance`), for noise-free
            prices only.
    """

    halflife: PositiveDuration = _seconds("20m")
    slow_halflife: PositiveDuration = _seconds("24h")
    min_observations: Annotated[int, Meta(ge=2)] = 30
    max_out_of_order: Duration = _seconds("5s")
    preaverage: Duration = _seconds("5s")


class RiskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[risk]``: how VaR and CVaR are computed.

    Attributes:
        horizon: VaR horizon in seconds.
        confidence: confidence levels, sorted ascending, at most three decimals each.
        distribution: return distribution assumed for VaR.
        dof: degrees of freedom of the Student-t distribution.
        option_paths: Monte Carlo paths of the full-revaluation VaR of books with options (a
            power of two: they are the points of a scrambled Sobol sequence).
        vol_of_vol: annualised volatility of log implied volatility, used until the mark IVs of
            the feed give an estimate (see :mod:`monitor.estimation.volofvol`).
        spot_vol_correlation: correlation of each underlying's log IV change with its log
            return over the horizon.
    """

    horizon: PositiveDuration = _seconds("1d")
    confidence: Annotated[tuple[Confidence, ...], Meta(min_length=1)] = (0.95, 0.99)
    distribution: Distribution = "student-t"
    dof: Annotated[float, Meta(gt=2)] = 4.0
    option_paths: Annotated[int, Meta(ge=256, le=1 << 20)] = 8192
    vol_of_vol: Annotated[float, Meta(ge=0.0, le=10.0)] = 1.0
    spot_vol_correlation: Annotated[float, Meta(ge=-1.0, le=1.0)] = -0.3

    @property
    def tags(self) -> tuple[str, ...]:
        """The confidence tags used in metric and column names, e.g. ``("95", "99")``."""
        return tuple(confidence_tag(level) for level in self.confidence)


class PositionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One holding of a portfolio.

    Attributes:
        symbol: engine symbol.
        quantity: units held; negative for a short position.
    """

    symbol: Symbol
    quantity: float


class PortfolioConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[portfolios]]`` entry.

    Attributes:
        name: unique name, used as the ``portfolio`` label.
        base_currency: currency that prices and values are expressed in.
        positions: holdings, each symbol once.
        hedge_with: engine symbols that may be traded to hedge the portfolio (minimum-variance
            hedge, :mod:`monitor.risk.hedge`); None (the default): no hedge.
    """

    name: Annotated[str, Meta(pattern=NAME_PATTERN)]
    base_currency: str = "USD"
    positions: Annotated[tuple[PositionConfig, ...], Meta(min_length=1)]
    hedge_with: HedgeWith | None = None


class RuleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[rules]]`` entry: fire when ``metric op threshold`` holds for ``for_`` seconds.

    Attributes:
        name: unique rule name.
        metric: a metric of :func:`metric_catalogue` for the configured confidence levels.
        op: comparison of the metric value against ``threshold``.
        threshold: value that makes the rule fire.
        for_: seconds the condition must hold before firing (TOML key ``for``).
        resolve_threshold: value beyond which a firing rule resolves (hysteresis); the TOML
            default is ``threshold``.
        severity: how urgent a firing is.
        labels: label filter naming the metric instance, e.g. ``(("symbol", "BTCUSDT"),)``.
    """

    name: Annotated[str, Meta(min_length=1)]
    metric: str
    op: Op
    threshold: float
    for_: Duration = msgspec.field(default=Duration(0.0), name="for")
    resolve_threshold: float
    severity: Severity = Severity.WARNING
    labels: Labels = Labels()


class ReplayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[replay]``: historical replay.

    Attributes:
        snapshot_interval: event-time seconds between risk snapshots.
    """

    snapshot_interval: PositiveDuration = _seconds("1m")


Venue = Literal[
    "binance", "binance-usdm", "coinbase", "kraken", "okx", "bybit", "bybit-spot", "deribit"
]
PriceChoice = Literal["trade", "mid", "mark"]


class FeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[feeds]]`` entry: native instruments of one venue and how to price them.

    Attributes:
        venue: venue protocol.
        symbols: native instrument names, e.g. "BTCUSDT" (Binance), "BTC-USD" (Coinbase).
        price: which price becomes the engine tick: trade, mid (best bid/ask) or mark.
        url: endpoint override (testnets, proxies, the simulator); the venue default otherwise.
        stale_after: an instrument silent this long (monotonic clock) is stale.
        aliases: native name -> engine symbol; names without an alias keep their native name.
    """

    venue: Venue
    symbols: Annotated[tuple[Annotated[str, Meta(min_length=1)], ...], Meta(min_length=1)]
    price: PriceChoice = "trade"
    url: Annotated[str, Meta(pattern=r"^wss?://")] | None = None
    stale_after: PositiveDuration = _seconds("30s")
    aliases: dict[str, Symbol] = msgspec.field(default_factory=dict)

    def engine_symbol(self, native: str) -> str:
        """The engine symbol a native instrument feeds."""
        return self.aliases.get(native, native)


class LiveConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[live]``: the daemon's engine loop.

    Attributes:
        snapshot_interval: event-time seconds between snapshots (and rule evaluations).
        idle_snapshot: wall-clock seconds after which a snapshot is taken without new ticks,
            so that staleness rules run while feeds are silent.
        queue_ticks: ticks buffered between the feeds and the engine; beyond it the oldest
            are dropped and counted (dropping only coarsens the sampling: the estimator works
            on price levels, so no return is lost or biased).
        max_clock_skew: a venue timestamp ahead of the receive time by more than this is
            replaced by the receive time and counted (``clock_skew``).
        stall_after: /healthz answers 503 once the engine loop has not turned for this long
            (wall clock); longer than ``idle_snapshot``.
        max_clock_drift: /readyz answers 503 while the event clock is further than this from
            the wall clock (frozen or runaway figures).
        rejected_streak: /readyz answers 503 while a universe symbol's last this many ticks
            were all rejected.
    """

    snapshot_interval: PositiveDuration = _seconds("1s")
    idle_snapshot: PositiveDuration = _seconds("5s")
    queue_ticks: Annotated[int, Meta(ge=100)] = 100_000
    max_clock_skew: Duration = _seconds("2s")
    stall_after: PositiveDuration = _seconds("15s")
    max_clock_drift: PositiveDuration = _seconds("1m")
    rejected_streak: Annotated[int, Meta(ge=1)] = 20


class FilterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[filter]``: the bad-print filter, the same in the daemon and in ``riskmon replay``.

    A tick is *suspect* when its log price moves from the symbol's last accepted one by more
    than ``max(min_jump, k * sigma * sqrt(dt))``, sigma being the symbol's fast volatility per
    square-root second at the last snapshot (only ``min_jump`` before it has one) and dt the
    event time elapsed. A suspect is held, not applied; it is applied once ``confirmations``
    later ticks of the symbol land near it, and dropped (counted as ``outlier``) when a later
    tick lands back near the last accepted price.

    Attributes:
        k: sigmas of the elapsed time's volatility a move must exceed; 0 turns the filter off.
        min_jump: absolute floor of a suspect move, in log price (0.2: +22% or -18%).
        confirmations: later ticks near a suspect that confirm it.
        max_hold: a confirmed suspect older than this (event time) is dropped instead of
            applied; it still counts towards confirming the level of the ticks after it.
    """

    k: Annotated[float, Meta(ge=0)] = 10.0
    min_jump: Annotated[float, Meta(gt=0)] = 0.2
    confirmations: Annotated[int, Meta(ge=1, le=8)] = 1
    max_hold: PositiveDuration = _seconds("15m")


class ServerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[server]``: the HTTP endpoint for /metrics, health and the JSON API.

    Secrets never sit in this file: they are read from the environment variable or the file
    named here, and never logged.

    Attributes:
        listen: host:port; loopback by default.
        auth: "none", "bearer" (Authorization: Bearer <token>) or "basic".
        token_env, token_file: where the bearer token (or basic password) is read from.
        basic_user: user name for basic auth.
        tls_cert, tls_key: PEM files; both or neither.
        dashboard_url: link put in alert messages (optional).
        allow_unauthenticated: DANGEROUS: serve positions, VaR and the API without auth on a
            non-loopback ``listen`` (otherwise a config error). Only behind a proxy or network
            policy that authenticates for riskmon.
    """

    listen: Annotated[str, Meta(pattern=r"^[^\s:]*:\d{1,5}$")] = "127.0.0.1:9464"
    auth: Literal["none", "bearer", "basic"] = "none"
    token_env: str | None = None
    token_file: str | None = None
    basic_user: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    dashboard_url: str | None = None
    allow_unauthenticated: bool = False

    @property
    def host(self) -> str:
        """Interface to bind."""
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        """Port to bind (0 picks a free one)."""
        return int(self.listen.rsplit(":", 1)[1])


class StateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[state]``: where checkpoints of estimator and rule state are kept.

    Attributes:
        dir: state directory (created if missing).
        checkpoint_interval: wall-clock seconds between periodic checkpoints.
    """

    dir: Annotated[str, Meta(min_length=1)] = "state"
    checkpoint_interval: PositiveDuration = _seconds("1m")


SinkType = Literal[
    "slack", "discord", "telegram", "teams", "pagerduty", "alertmanager", "webhook", "file"
]


class SinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[sinks]]`` entry: a destination for alert notifications.

    The secret (Slack/Discord/Teams webhook URL, PagerDuty routing key, Telegram bot token,
    webhook HMAC key) comes from ``secret_env`` or ``secret_file``; ``secret`` written inline
    is refused when the config file is readable by everyone.

    Attributes:
        name: unique sink name, used by routes and in metrics.
        type: the receiving API.
        url: endpoint (Alertmanager base URL, generic webhook URL, or an override for tests).
        secret_env, secret_file, secret: where the secret comes from.
        chat_id: Telegram chat.
        path: JSON-lines file of the ``file`` sink.
        rate_per_s: sends per second; default: the API's published limit.
        timeout: per request.
        resend_interval: Alertmanager only: how often active alerts are re-sent.
    """

    name: Annotated[str, Meta(pattern=NAME_PATTERN)]
    type: SinkType
    url: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    secret: str | None = None
    chat_id: str | None = None
    path: str | None = None
    rate_per_s: Annotated[float, Meta(gt=0)] | None = None
    timeout: PositiveDuration = _seconds("10s")
    resend_interval: PositiveDuration = _seconds("1m")


class RouteConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[routes]]`` entry: alerts matching it go to its sinks (every matching route).

    Attributes:
        sinks: sink names.
        severity: severities matched (empty: all).
        labels: labels the alert must carry with these values (``portfolio`` included).
        repeat_interval: a still-firing alert is notified again after this long.
        group_by: labels (and ``rule``, ``severity``) whose values split the route's alerts
            into groups; empty: one group. Chat sinks get one digest per group flush.
        group_wait: how long a new group waits for more alerts before its first digest.
        group_interval: how long a group waits after a digest before the next one (a critical
            firing never waits longer than ``group_wait``).
    """

    sinks: Annotated[tuple[str, ...], Meta(min_length=1)]
    severity: tuple[Severity, ...] = ()
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    repeat_interval: PositiveDuration = _seconds("4h")
    group_by: tuple[Annotated[str, Meta(min_length=1)], ...] = ()
    group_wait: Duration = _seconds("30s")
    group_interval: PositiveDuration = _seconds("5m")


class AlertsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[alerts]``: delivery.

    Attributes:
        outbox: SQLite file of the durable outbox, relative to ``[state] dir``.
        log_file: JSON-lines file of the embedded ``log`` sink (relative to ``[state] dir``),
            which receives every event when no route matches.
        max_attempts_age: a notification undelivered this long is given up (and counted).
        critical_wait: the longest a critical firing waits for its group at a chat sink (the
            route's ``group_wait`` when shorter), so a page is never held up by a burst.
    """

    outbox: str = "outbox.sqlite"
    log_file: str = "alerts.jsonl"
    max_attempts_age: PositiveDuration = _seconds("1d")
    critical_wait: Duration = _seconds("5s")


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole validated configuration.

    Attributes:
        universe: ``[universe]``.
        estimator: ``[estimator]``.
        risk: ``[risk]``.
        portfolios: ``[[portfolios]]``, in file order.
        rules: ``[[rules]]``, in file order.
        replay: ``[replay]``.
        feeds: ``[[feeds]]``, in priority order: for an engine symbol fed by several venues the
            first fresh one prices it.
        live: ``[live]``.
        server: ``[server]``.
        state: ``[state]``.
        sinks: ``[[sinks]]``.
        routes: ``[[routes]]``.
        alerts: ``[alerts]``.
        accounts: ``[[accounts]]``: derivatives books with collateral and margin.
        stress: ``[stress]``: the scenarios accounts are revalued under.
        bus: ``[bus]``: NATS JetStream between ``run --role feeds`` and ``--role engine``.
        filter: ``[filter]``: the bad-print filter.
        source: path of the file the configuration was loaded from.
    """

    universe: UniverseConfig
    estimator: EstimatorConfig = EstimatorConfig()
    risk: RiskConfig = RiskConfig()
    portfolios: tuple[PortfolioConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    replay: ReplayConfig = ReplayConfig()
    feeds: tuple[FeedConfig, ...] = ()
    live: LiveConfig = LiveConfig()
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    sinks: tuple[SinkConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    alerts: AlertsConfig = AlertsConfig()
    accounts: tuple[AccountConfig, ...] = ()
    stress: StressConfig = StressConfig()
    bus: BusConfig = BusConfig()
    filter: FilterConfig = FilterConfig()
    source: str = ""

    @property
    def priced_symbols(self) -> tuple[str, ...]:
        """Universe symbols, then position symbols outside the universe; each once, in order."""
        symbols = dict.fromkeys(self.universe.symbols)
        for portfolio in self.portfolios:
            symbols.update(dict.fromkeys(p.symbol for p in portfolio.positions))
        symbols.update(dict.fromkeys(account_symbols(self.accounts)))
        return tuple(symbols)

    @property
    def tracked_symbols(self) -> tuple[str, ...]:
        """:attr:`priced_symbols`, then ``hedge_with`` symbols outside them; each once.

        A valid file names only priced symbols in ``hedge_with``; an engine worker's share of
        the config (fewer portfolios) still tracks the hedge instruments of its portfolios.
        """
        symbols = dict.fromkeys(self.priced_symbols)
        hedges = [p.hedge_with for p in self.portfolios] + [a.hedge_with for a in self.accounts]
        for hedge_with in hedges:
            symbols.update(dict.fromkeys(hedge_with or ()))
        return tuple(symbols)
