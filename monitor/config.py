"""Load riskmon's TOML configuration into frozen, validated objects.

:func:`load_config` runs four steps; each raises :class:`~monitor.errors.ConfigError` with a
message that starts with the file path and names the key, e.g.
``config/x.toml: [[rules]][2] op: expected one of ">", ">=", "<", "<=", got "!="``.

1. Read and parse the TOML file.
2. Apply ``RISKMON_<SECTION>__<KEY>`` environment overrides to the table sections.
3. Convert with msgspec into the Structs below (types, ranges, unknown keys, durations).
4. Cross-field checks: unique names, known symbols, rule metrics and labels.

A new section is one more field on :class:`Config`; overrides and messages follow from it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec
import msgspec.inspect as mi
from msgspec import Meta

from monitor.book_config import NAME_PATTERN as NAME_PATTERN
from monitor.book_config import SYMBOL_PATTERN as SYMBOL_PATTERN
from monitor.book_config import AccountConfig, StressConfig, Symbol, account_symbols
from monitor.bus_config import BusConfig
from monitor.config_checks import Key, Problem, find_problems
from monitor.config_checks import show_value as _show
from monitor.durations import DURATION_EXPECTED, parse_duration
from monitor.durations import Duration as Duration
from monitor.durations import PositiveDuration as PositiveDuration
from monitor.errors import ConfigError
from monitor.metrics_catalogue import CONFIDENCE_METRICS as CONFIDENCE_METRICS
from monitor.metrics_catalogue import METRICS as METRICS
from monitor.metrics_catalogue import MetricKind as MetricKind
from monitor.metrics_catalogue import MetricSpec as MetricSpec
from monitor.metrics_catalogue import confidence_tag as confidence_tag
from monitor.metrics_catalogue import metric_catalogue as metric_catalogue
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
            (:mod:`monitor.preaveraged`); 0 selects the tick-by-tick Hayashi-Yoshida estimator
            (:mod:`monitor.covariance`), for noise-free prices only.
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
            the feed give an estimate (see :mod:`monitor.volofvol`).
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
    """

    name: Annotated[str, Meta(pattern=NAME_PATTERN)]
    base_currency: str = "USD"
    positions: Annotated[tuple[PositionConfig, ...], Meta(min_length=1)]


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
    """

    listen: Annotated[str, Meta(pattern=r"^[^\s:]*:\d{1,5}$")] = "127.0.0.1:9464"
    auth: Literal["none", "bearer", "basic"] = "none"
    token_env: str | None = None
    token_file: str | None = None
    basic_user: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    dashboard_url: str | None = None

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
    def tracked_symbols(self) -> tuple[str, ...]:
        """Universe symbols, then position symbols outside the universe; each once, in order."""
        symbols = dict.fromkeys(self.universe.symbols)
        for portfolio in self.portfolios:
            symbols.update(dict.fromkeys(p.symbol for p in portfolio.positions))
        symbols.update(dict.fromkeys(account_symbols(self.accounts)))
        return tuple(symbols)


_CONFIG_TYPE = cast(mi.StructType, mi.type_info(Config))
_SECTIONS = {f.encode_name: f.type for f in _CONFIG_TYPE.fields if f.name != "source"}
_TABLE_SECTIONS = {k: t for k, t in _SECTIONS.items() if isinstance(t, mi.StructType)}
_ARRAY_SECTIONS = frozenset(k for k, t in _SECTIONS.items() if isinstance(t, mi.VarTupleType))
_ABSENT = object()


class _ProblemError(Exception):
    """Stops loading at the first problem; :func:`load_config` adds the file path."""

    def __init__(self, where: Key | str, detail: str) -> None:
        super().__init__(where, detail)
        self.problem = Problem(where, detail)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load, override and validate a configuration file.

    Args:
        path: the TOML file.
        environ: environment holding ``RISKMON_<SECTION>__<KEY>`` overrides; ``os.environ`` when
            None. The value is read as a TOML value (``[0.95, 0.99]``, ``4``), else as a string.

    Returns:
        The frozen configuration, with ``source`` set to ``path``.

    Raises:
        ConfigError: the file is missing, unreadable or not TOML, or a key or override is
            unknown, has the wrong type or an invalid value. The message starts with the path.
    """
    source = os.fspath(path)
    raw = _read_toml(source)
    overrides: dict[Key, str] = {}
    try:
        _check_sections(raw)
        _apply_overrides(raw, os.environ if environ is None else environ, overrides)
        config = _convert(raw)
        problem = next(find_problems(config), None)
    except _ProblemError as exc:
        problem = exc.problem
    if problem is not None:
        raise ConfigError(f"{source}: {_where(problem.where, overrides)}: {problem.detail}")
    _check_inline_secrets(source, config)
    risk = msgspec.structs.replace(config.risk, confidence=tuple(sorted(config.risk.confidence)))
    return msgspec.structs.replace(config, risk=risk, source=source)


def _check_inline_secrets(source: str, config: Config) -> None:
    """A secret written in the file is only accepted when others cannot read the file."""
    inline = [i for i, sink in enumerate(config.sinks) if sink.secret is not None]
    if inline and os.stat(source).st_mode & 0o004:
        raise ConfigError(
            f"{source}: [[sinks]][{inline[0]}] secret: the file is readable by everyone; "
            "use secret_env or secret_file, or chmod o-r the file"
        )


def _read_toml(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found; expected a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 (byte {exc.start}); expected TOML text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc


def _check_sections(raw: Mapping[str, object]) -> None:
    for name in raw:
        if name not in _SECTIONS:
            expected = ", ".join(_section_header(s) for s in _SECTIONS)
            raise _ProblemError((name,), f"unknown section; expected one of {expected}")


def _section_header(name: str) -> str:
    return f"[[{name}]]" if name in _ARRAY_SECTIONS else f"[{name}]"


def _apply_overrides(
    raw: dict[str, Any], environ: Mapping[str, str], applied: dict[Key, str]
) -> None:
    for variable in sorted(environ):
        if not variable.upper().startswith(ENV_PREFIX) or "__" not in variable:
            continue  # other RISKMON_ variables (secrets, log level) belong to other modules
        section, key = _override_target(variable)
        table = raw.setdefault(section, {})
        if isinstance(table, dict):  # else conversion reports the section's wrong type
            table[key] = _parse_override(environ[variable])
        applied[(section, key)] = variable


def _override_target(variable: str) -> tuple[str, str]:
    section, _, key = variable[len(ENV_PREFIX) :].lower().partition("__")
    tables = ", ".join(_TABLE_SECTIONS)
    if section in _ARRAY_SECTIONS:
        detail = f"[[{section}]] cannot be overridden (array of tables); expected one of {tables}"
        raise _ProblemError(variable, detail)
    if section not in _TABLE_SECTIONS:
        raise _ProblemError(variable, f'unknown section "{section}"; expected one of {tables}')
    keys = [f.encode_name for f in _TABLE_SECTIONS[section].fields]
    if key not in keys:
        detail = f'unknown key "{key}" in [{section}]; expected one of {", ".join(keys)}'
        raise _ProblemError(variable, detail)
    return section, key


def _parse_override(text: str) -> object:
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text  # bare words and durations such as 10m
    return parsed["v"] if len(parsed) == 1 else text


def _convert(raw: dict[str, Any]) -> Config:
    rules = raw.get("rules")
    for rule in rules if isinstance(rules, list) else ():
        if isinstance(rule, dict) and "threshold" in rule:
            rule.setdefault("resolve_threshold", rule["threshold"])
    try:
        return msgspec.convert(raw, Config, dec_hook=_decode_custom)
    except msgspec.ValidationError as exc:
        raise _from_validation_error(str(exc), raw) from exc


def _decode_custom(type_: type, obj: object) -> object:
    if type_ is Duration or type_ is PositiveDuration:
        return _decode_duration(type_, obj)
    if type_ is Labels:
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            expected = 'expected a table of strings like { symbol = "BTCUSDT" }'
            raise ValueError(f"{expected}, got {_show(obj)}")
        return Labels(sorted(obj.items()))
    raise TypeError(f"no decoder for config type {type_!r}")  # only our own types reach here


def _decode_duration(type_: type[Duration], obj: object) -> Duration:
    if not isinstance(obj, str):
        raise ValueError(f"{DURATION_EXPECTED}, got {_show(obj)}")
    seconds = parse_duration(obj)
    if type_ is PositiveDuration and seconds <= 0:
        expected = DURATION_EXPECTED.replace("a duration", "a positive duration")
        raise ValueError(f"{expected}, got {_show(obj)}")
    return type_(seconds)


_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_PATH_TOKEN = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]")
_UNKNOWN_KEY = re.compile(r"Object contains unknown field `(?P<key>[^`]+)`")
_MISSING_KEY = re.compile(r"Object missing required field `(?P<key>[^`]+)`")
_TYPE_NAME = re.compile(r"`(?P<name>\w+)`")
_TYPE_WORDS = {"object": "a table", "array": "an array", "str": "a string", "int": "an integer"}
_TYPE_WORDS |= {"float": "a number", "bool": "a boolean"}


def _from_validation_error(text: str, raw: Mapping[str, object]) -> _ProblemError:
    match = _AT.fullmatch(text)
    message, path = (match["message"], match["path"] or "") if match else (text, "")
    key: Key = tuple(
        m["name"] if m["name"] is not None else int(m["index"]) for m in _PATH_TOKEN.finditer(path)
    )
    if unknown := _UNKNOWN_KEY.fullmatch(message):
        allowed = ", ".join(_keys_at(key))
        return _ProblemError((*key, unknown["key"]), f"unknown key; expected one of {allowed}")
    if missing := _MISSING_KEY.fullmatch(message):
        return _ProblemError(
            (*key, missing["key"]), "missing required " + ("key" if key else "section")
        )
    return _ProblemError(key, _with_value(_expected(message, key), _value_at(raw, key)))


def _expected(message: str, key: Key) -> str:
    node = _type_at(key)
    if isinstance(node, mi.LiteralType):
        return "expected one of " + ", ".join(_show(v) for v in node.values)
    if isinstance(node, mi.EnumType):
        return "expected one of " + ", ".join(_show(m.value) for m in node.cls)
    if message.startswith("Expected `"):  # msgspec's own wording; our dec_hook's is kept as is
        head = message.split(", got ")[0]
        return "e" + _TYPE_NAME.sub(lambda m: _TYPE_WORDS.get(m["name"], m["name"]), head)[1:]
    return message


def _with_value(detail: str, value: object) -> str:
    if ", got " in detail or value is _ABSENT:
        return detail
    return f"{detail}, got {_show(value)}"


def _type_at(key: Key) -> mi.Type | None:
    node: mi.Type = _CONFIG_TYPE
    for token in key:
        if isinstance(node, mi.StructType) and isinstance(token, str):
            found = [f.type for f in node.fields if f.encode_name == token]
            if not found:
                return None
            node = found[0]
        elif isinstance(node, mi.VarTupleType | mi.ListType) and isinstance(token, int):
            node = node.item_type
        elif isinstance(node, mi.TupleType) and isinstance(token, int):
            node = node.item_types[token]
        else:
            return None
    return node


def _keys_at(key: Key) -> list[str]:
    node = _type_at(key)
    fields = node.fields if isinstance(node, mi.StructType) else ()
    return [f.encode_name for f in fields if key or f.name != "source"]


def _value_at(raw: object, key: Key) -> object:
    value: Any = raw
    for token in key:
        try:
            value = value[token]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return value


def _where(where: Key | str, overrides: Mapping[Key, str]) -> str:
    if isinstance(where, str):
        return f"environment variable {where}"
    if not where:
        return "(top level)"
    section, rest = str(where[0]), list(where[1:])
    head = _section_header(section)
    if section in _ARRAY_SECTIONS and rest and isinstance(rest[0], int):
        head += f"[{rest.pop(0)}]"
    tail = "".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in rest).removeprefix(".")
    label = f"{head} {tail}" if tail else head
    variable = overrides.get(where[:2])
    return f"{label} (from {variable})" if variable else label
