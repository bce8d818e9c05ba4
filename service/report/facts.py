"""The run's facts, ``run.json``: what was replayed, with which configuration and version.

Written by ``riskmon replay`` beside its tables, read by ``riskmon report``. Keys:

- ``riskmon_version``, ``created`` (wall-clock time of the replay's end, UTC);
- ``command``: the ``riskmon replay`` command line that reproduces the run, from ``cwd``;
- ``config``: ``path``, ``sha256`` of the file's bytes, and ``environment_overrides``
  (``RISKMON_<SECTION>__<KEY>`` variables applied: the value for the sections that change a
  replay's figures, the name only for the others, which may hold URLs with credentials);
- ``inputs``: per data file its ``path``, ``bytes`` and ``sha256``;
- ``first_snapshot``, ``last_snapshot``, ``snapshots``, ``snapshot_interval_s``, ``rows``,
  ``ticks_applied``, ``skipped`` (by reason);
- ``universe``, ``portfolios`` (name, symbols), ``accounts``, ``confidence``, ``horizon_s``,
  ``rules``
  (name, metric, op, threshold, resolve_threshold, for_s, severity, labels).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import msgspec

from alerts.jsonl import iso_utc
from monitor.config.schema import ENV_PREFIX, Config, RuleConfig
from monitor.errors import DataError

RUN_FILE = "run.json"
_VALUE_SECTIONS = frozenset({"universe", "estimator", "risk", "replay", "stress", "filter"})


class InputFacts(msgspec.Struct, frozen=True):
    """One replayed data file."""

    path: str
    bytes: int
    sha256: str


class ConfigFacts(msgspec.Struct, frozen=True):
    """The configuration file and the environment overrides applied to it."""

    path: str | None = None
    sha256: str | None = None
    environment_overrides: dict[str, str | None] = {}


class PortfolioFacts(msgspec.Struct, frozen=True):
    """A configured portfolio."""

    name: str
    symbols: list[str] = []


class RuleFacts(msgspec.Struct, frozen=True):
    """A configured rule."""

    name: str
    metric: str
    op: str
    threshold: float
    resolve_threshold: float | None = None
    for_s: float = 0.0
    severity: str = "warning"
    labels: dict[str, str] = {}


class RunFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The content of ``run.json`` (see the module docstring); unknown keys are ignored."""

    riskmon_version: str = "unknown"
    created: str | None = None
    command: list[str] = []
    cwd: str | None = None
    config: ConfigFacts = ConfigFacts()
    inputs: list[InputFacts] = []
    first_snapshot: str | None = None
    last_snapshot: str | None = None
    snapshots: int = 0
    snapshot_interval_s: float | None = None
    rows: int = 0
    ticks_applied: int = 0
    skipped: dict[str, int] = {}
    universe: list[str] = []
    portfolios: list[PortfolioFacts] = []
    accounts: list[str] = []
    confidence: list[float] = []
    horizon_s: float | None = None
    rules: list[RuleFacts] = []


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What the replay did, from its summary.

    Attributes:
        first_ts, last_ts: event time of the first and the last snapshot (None: none).
        snapshots: snapshots emitted.
        rows: input rows read.
        ticks_applied: ticks the engine applied.
        skipped: rows dropped, by reason.
    """

    first_ts: float | None
    last_ts: float | None
    snapshots: int
    rows: int
    ticks_applied: int
    skipped: Mapping[str, int]


def riskmon_version() -> str:
    """The installed riskmon's version ("unknown" when not installed as a package)."""
    try:
        return metadata.version("riskmon")
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (files larger than memory work)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def run_facts(
    config: Config,
    data: Sequence[Path],
    out_dir: Path,
    counts: RunCounts,
    *,
    candle_interval_s: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunFacts:
    """The content of ``run.json`` (see the module docstring)."""
    return RunFacts(
        riskmon_version=riskmon_version(),
        created=iso_utc(dt.datetime.now(dt.UTC).timestamp()),
        command=_command(config, data, out_dir, candle_interval_s),
        cwd=os.getcwd(),
        config=_config_facts(config, os.environ if environ is None else environ),
        inputs=[_input_facts(path) for path in data],
        first_snapshot=None if counts.first_ts is None else iso_utc(counts.first_ts),
        last_snapshot=None if counts.last_ts is None else iso_utc(counts.last_ts),
        snapshots=counts.snapshots,
        snapshot_interval_s=float(config.replay.snapshot_interval),
        rows=counts.rows,
        ticks_applied=counts.ticks_applied,
        skipped=dict(sorted(counts.skipped.items())),
        universe=list(config.universe.symbols),
        portfolios=[
            PortfolioFacts(p.name, [q.symbol for q in p.positions]) for p in config.portfolios
        ],
        accounts=[a.name for a in config.accounts],
        confidence=list(config.risk.confidence),
        horizon_s=float(config.risk.horizon),
        rules=[_rule_facts(rule) for rule in config.rules],
    )


def write_run(directory: Path, facts: RunFacts) -> str:
    """Write ``run.json`` into ``directory``; return its name."""
    (directory / RUN_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(facts)) + b"\n")
    return RUN_FILE


def read_run(path: Path) -> RunFacts | None:
    """``run.json`` at ``path``, or None when the replay did not write one.

    Raises:
        DataError: the file is unreadable or not a run.json of riskmon.
    """
    if not path.exists():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=RunFacts)
    except (OSError, msgspec.DecodeError) as exc:
        raise DataError(f"{path}: not a readable run.json ({exc})") from None


def _command(
    config: Config, data: Sequence[Path], out_dir: Path, candle_interval_s: float | None
) -> list[str]:
    command = ["riskmon", "replay", *map(str, data), "--config", config.source]
    command += ["--out", str(out_dir)]
    if candle_interval_s is not None:
        command += ["--candle-interval", f"{candle_interval_s:g}s"]
    return command


def _config_facts(config: Config, environ: Mapping[str, str]) -> ConfigFacts:
    path = Path(config.source) if config.source else None
    digest = sha256_file(path) if path is not None and path.is_file() else None
    overrides: dict[str, str | None] = {}
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and "__" in name:
            section = name[len(ENV_PREFIX) :].lower().partition("__")[0]
            overrides[name] = environ[name] if section in _VALUE_SECTIONS else None
    return ConfigFacts(None if path is None else str(path.resolve()), digest, overrides)


def _input_facts(path: Path) -> InputFacts:
    return InputFacts(str(path.resolve()), path.stat().st_size, sha256_file(path))


def _rule_facts(rule: RuleConfig) -> RuleFacts:
    return RuleFacts(
        name=rule.name,
        metric=rule.metric,
        op=rule.op,
        threshold=rule.threshold,
        resolve_threshold=rule.resolve_threshold,
        for_s=float(rule.for_),
        severity=rule.severity.value,
        labels=dict(rule.labels),
    )
