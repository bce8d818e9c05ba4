"""Checkpoints of estimator and rule state, so that the daemon restarts without losing estimates.

A :class:`Checkpoint` is a frozen value: the engine's :class:`~monitor.engine.EngineState`, the
rule instances' states, the snapshot clock's next boundary, and a :class:`Fingerprint` of the
configuration they depend on (and, for an engine worker fed from the bus, the
:class:`~bus.wire.BusCursor` reached by that state). After :func:`restore` into an
engine built from the same configuration, the same ticks give the same floats as the original
would. The last snapshot is not stored: a snapshot asked for before any new tick is computed
afresh (an interval without price changes) where the original would repeat its last one.
:func:`restore_compatible` carries what it can across a configuration reload.

File format 1: a ``numpy.savez`` archive (read with ``allow_pickle=False``) of ``header``, the
UTF-8 JSON of everything but arrays as uint8 (non-finite floats as ``NaN`` / ``Infinity``, which
Python's ``json`` reads back exactly); ``cov.<name>``, the arrays of
:meth:`~monitor.estimation.covariance.EventTimeCovariance.state`; ``engine.price``;
``engine.symbol_ts`` (each symbol's latest accepted tick time, absent from files written
before it was kept); and, once a snapshot has been computed, ``previous.logp`` and
``previous.cov_rate``. Rejected-tick counts are kept in the header as ``skipped``, keyed
``venue/reason``. The archive comment is
``riskmon-checkpoint sha256:`` and the hex SHA-256 of every byte before the hex digest, so a
truncated or altered file is rejected before it is parsed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from bus.wire import BusCursor
from monitor.config.schema import Config
from monitor.engine import Engine, EngineState
from monitor.errors import CheckpointError
from monitor.estimation.estimators import make_estimator, reindex_estimator_state
from monitor.estimation.ewma import MomentsTuple
from monitor.estimation.volofvol import IvState
from monitor.rules import RuleEngine, RuleInstanceState, RuleKey

FORMAT = "riskmon-checkpoint"
FORMAT_VERSION = 1
_SEAL = b"riskmon-checkpoint sha256:"
_DIGEST_LEN = 64  # hex characters of a SHA-256
_ZIP_MAGIC = b"PK\x03\x04"

Array = npt.NDArray[Any]
Index = npt.NDArray[np.int64]
Positions = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a checkpoint's state depends on in the configuration.

    Attributes:
        symbols: tracked symbols in engine order: the rows and columns of every array.
        universe: universe symbols: the absorption-ratio moments.
        halflives_s: fast and slow half-lives: every estimator.
        portfolios: (name, ((symbol, quantity), ...)) per portfolio: the P&L moments.
        rules: rule names: the rule states.
        preaverage_s: the estimator's block length (0: Hayashi-Yoshida): its state layout.
    """

    symbols: tuple[str, ...]
    universe: tuple[str, ...]
    halflives_s: tuple[float, ...]
    portfolios: tuple[tuple[str, Positions], ...]
    rules: tuple[str, ...]
    preaverage_s: float = 0.0

    @classmethod
    def of(cls, config: Config) -> Fingerprint:
        """The fingerprint of a configuration."""
        est = config.estimator
        return cls(
            symbols=tuple(config.tracked_symbols),
            universe=tuple(config.universe.symbols),
            halflives_s=(float(est.halflife), float(est.slow_halflife)),
            portfolios=tuple(
                (p.name, tuple((q.symbol, float(q.quantity)) for q in p.positions))
                for p in config.portfolios
            ),
            rules=tuple(rule.name for rule in config.rules),
            preaverage_s=float(est.preaverage),
        )

    def differences(self, config: Fingerprint) -> list[str]:
        """One phrase per field that differs from ``config``'s; empty when they match."""
        fields = [
            ("tracked symbols", self.symbols, config.symbols),
            ("universe", self.universe, config.universe),
            ("half-lives (s)", self.halflives_s, config.halflives_s),
            ("portfolios", self.portfolios, config.portfolios),
            ("rules", self.rules, config.rules),
            ("pre-averaging block (s)", self.preaverage_s, config.preaverage_s),
        ]
        return [
            f"{label}: checkpoint {_show(mine)}, configuration {_show(theirs)}"
            for label, mine, theirs in fields
            if mine != theirs
        ]


@dataclass(frozen=True, slots=True, eq=False)
class Checkpoint:
    """Estimator and rule state at one moment, with the configuration it belongs to.

    Attributes:
        fingerprint: what the state depends on.
        engine: the engine's state (read-only arrays).
        rules: the state of every rule instance.
        clock_next: the snapshot clock's next boundary (None before the first tick).
        version: the file format version.
        bus: how far an engine worker had applied the tick stream (None outside one).
    """

    fingerprint: Fingerprint
    engine: EngineState
    rules: tuple[RuleInstanceState, ...]
    clock_next: float | None
    version: int = FORMAT_VERSION
    bus: BusCursor | None = None


@dataclass(frozen=True, slots=True)
class CompatibleRestore:
    """What :func:`restore_compatible` carried over.

    Attributes:
        estimator_restored: whether estimator state was copied (not when half-lives changed).
        symbols_kept: symbols whose state was copied.
        symbols_cold: configured symbols that start cold.
        symbols_dropped: checkpoint symbols that are no longer configured.
        portfolios_kept: portfolios whose P&L moments were copied (same name and positions).
        rules_kept: rule instances whose state was copied.
        clock_next: the checkpoint's next snapshot boundary.
        reason: why the estimator was not restored, or None.
    """

    estimator_restored: bool
    symbols_kept: tuple[str, ...]
    symbols_cold: tuple[str, ...]
    symbols_dropped: tuple[str, ...]
    portfolios_kept: tuple[str, ...]
    rules_kept: tuple[RuleKey, ...]
    clock_next: float | None
    reason: str | None = None

    def __str__(self) -> str:
        rules = f"{len(self.rules_kept)} rule states kept"
        if not self.estimator_restored:
            return f"estimator cold ({self.reason}); {rules}"
        return (
            f"estimator kept for {len(self.symbols_kept)} symbols, cold: "
            f"{_show(self.symbols_cold)}, dropped: {_show(self.symbols_dropped)}; "
            f"portfolio moments kept: {_show(self.portfolios_kept)}; {rules}"
        )


def capture(
    engine: Engine, rules: RuleEngine, clock_next: float | None, bus: BusCursor | None = None
) -> Checkpoint:
    """The state of ``engine`` and of ``rules`` (built from ``engine.config``).

    ``clock_next`` is the snapshot clock's next boundary; :func:`restore` returns it. ``bus``
    is the position in the tick stream that this state reflects (engine workers).
    """
    return Checkpoint(
        Fingerprint.of(engine.config),
        engine.export_state(),
        rules.export_state(),
        clock_next,
        bus=bus,
    )


def restore(checkpoint: Checkpoint, engine: Engine, rules: RuleEngine) -> float | None:
    """Put ``engine`` and ``rules`` exactly where the captured ones were.

    Returns:
        The snapshot clock's next boundary at capture.

    Raises:
        CheckpointError: another format version, or a configuration whose fingerprint differs
            (the message says what differs); nothing changes then.
    """
    _check_version(checkpoint.version)
    problems = checkpoint.fingerprint.differences(Fingerprint.of(engine.config))
    if problems:
        raise CheckpointError("checkpoint does not match the configuration: " + "; ".join(problems))
    try:
        engine.import_state(checkpoint.engine)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint state does not fit the engine: {exc}") from exc
    rules.import_state(checkpoint.rules)
    return checkpoint.clock_next


def restore_compatible(
    checkpoint: Checkpoint, engine: Engine, rules: RuleEngine
) -> CompatibleRestore:
    """Carry state across a configuration change into a freshly built engine and rules.

    With unchanged half-lives, per-symbol state is copied by symbol name and per-pair state by
    pair of names; symbols new to the configuration stay cold. Absorption-ratio moments are
    copied when the universe is unchanged, P&L moments for portfolios with the same name and
    positions. Pending Hayashi-Yoshida intervals of a pair whose order in the tracked list is
    reversed are dropped (they are kept per earlier symbol); its finalised sums are copied.
    Rule states are copied by (rule name, labels) whatever the half-lives.

    Raises:
        CheckpointError: the checkpoint is of another format version.
    """
    _check_version(checkpoint.version)
    old, new = checkpoint.fingerprint, Fingerprint.of(engine.config)
    rules_kept = rules.import_state(checkpoint.rules)
    kept = tuple(s for s in new.symbols if s in old.symbols)
    cold = tuple(s for s in new.symbols if s not in old.symbols)
    dropped = tuple(s for s in old.symbols if s not in new.symbols)
    reason = None
    if old.halflives_s != new.halflives_s:
        reason = f"half-lives changed from {_show(old.halflives_s)} to {_show(new.halflives_s)} s"
    elif old.preaverage_s != new.preaverage_s:
        reason = f"pre-averaging block changed from {old.preaverage_s} to {new.preaverage_s} s"
    if reason is not None:
        return CompatibleRestore(
            False, (), new.symbols, old.symbols, (), rules_kept, checkpoint.clock_next, reason
        )
    portfolios = tuple(
        name
        for name, positions in new.portfolios
        if (name, positions) in old.portfolios and name in checkpoint.engine.portfolio_moments
    )
    engine.import_state(_remap(checkpoint.engine, old, new, engine.export_state(), portfolios))
    return CompatibleRestore(
        True, kept, cold, dropped, portfolios, rules_kept, checkpoint.clock_next
    )


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a reader sees the old file or the new one.

    Raises:
        CheckpointError: the file cannot be written (the old one is left in place).
    """
    data = _encode(checkpoint)
    try:
        replace_atomically(path, data)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write checkpoint: {exc.strerror or exc}") from exc


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint that :func:`write_checkpoint` wrote.

    Raises:
        CheckpointError: the file is missing or unreadable, truncated or corrupt, not a
            checkpoint, or of another format version. Never another exception type.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from exc
    try:
        return _decode(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc.__cause__


# --- restore across configurations ---------------------------------------------------------


def _remap(
    saved: EngineState,
    old: Fingerprint,
    new: Fingerprint,
    base: EngineState,
    portfolios: tuple[str, ...],
) -> EngineState:
    """``saved`` in ``new``'s symbol order, with ``base`` (a cold engine) where it has nothing."""
    position = {s: i for i, s in enumerate(old.symbols)}
    m = np.array([i for i, s in enumerate(new.symbols) if s in position], dtype=np.int64)
    o = np.array([position[new.symbols[i]] for i in m], dtype=np.int64)
    price = base.price.copy()
    price[m] = saved.price[o]
    symbol_ts = None
    if saved.symbol_ts is not None and base.symbol_ts is not None:
        symbol_ts = base.symbol_ts.copy()
        symbol_ts[m] = saved.symbol_ts[o]
    moments = dict(base.portfolio_moments)
    moments.update({p: saved.portfolio_moments[p] for p in portfolios})
    return EngineState(
        covariance=reindex_estimator_state(
            new.preaverage_s, saved.covariance, base.covariance, o, m
        ),
        price=price,
        last_ts=saved.last_ts,
        ticks=saved.ticks,
        rejected=saved.rejected,
        previous=_remap_previous(saved.previous, o, m, len(new.symbols)),
        ar_moments=saved.ar_moments if old.universe == new.universe else base.ar_moments,
        portfolio_moments=moments,
        iv_history=saved.iv_history,
        symbol_ts=symbol_ts,
    )


def _remap_previous(
    previous: tuple[float, Array, Array] | None, o: Index, m: Index, n: int
) -> tuple[float, Array, Array] | None:
    if previous is None:
        return None
    ts, logp, cov_rate = previous
    new_logp, new_cov = np.full(n, np.nan), np.full((n, n), np.nan)
    new_logp[m] = logp[o]
    new_cov[np.ix_(m, m)] = cov_rate[np.ix_(o, o)]
    return ts, new_logp, new_cov


# --- file format ---------------------------------------------------------------------------


class _EngineScalars(msgspec.Struct, forbid_unknown_fields=True):
    last_ts: float
    ticks: int
    skipped: dict[str, int]
    previous_ts: float | None
    ar_moments: tuple[MomentsTuple, MomentsTuple]
    portfolio_moments: dict[str, tuple[MomentsTuple, MomentsTuple]]
    iv_history: dict[str, IvState] = {}


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    version: int
    fingerprint: Fingerprint
    clock_next: float | None
    engine: _EngineScalars
    rules: tuple[RuleInstanceState, ...]
    bus: BusCursor | None = None


def _encode(checkpoint: Checkpoint) -> bytes:
    cp, state, prev = checkpoint, checkpoint.engine, checkpoint.engine.previous
    scalars = _EngineScalars(
        state.last_ts,
        state.ticks,
        {f"{venue}/{reason}": count for (venue, reason), count in state.rejected.items()},
        None if prev is None else prev[0],
        state.ar_moments,
        dict(state.portfolio_moments),
        dict(state.iv_history),
    )
    header = _Header(FORMAT, cp.version, cp.fingerprint, cp.clock_next, scalars, cp.rules, cp.bus)
    text = json.dumps(msgspec.to_builtins(header))
    arrays: dict[str, Any] = {f"cov.{name}": a for name, a in state.covariance.items()}
    arrays["engine.price"] = state.price
    if state.symbol_ts is not None:
        arrays["engine.symbol_ts"] = state.symbol_ts
    if prev is not None:
        arrays["previous.logp"], arrays["previous.cov_rate"] = prev[1:]
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(text.encode(), dtype=np.uint8), **arrays)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = _SEAL + b"0" * _DIGEST_LEN  # placeholder, the last bytes of the file
    body = buffer.getvalue()[:-_DIGEST_LEN]
    return body + hashlib.sha256(body).hexdigest().encode()


def _decode(raw: bytes) -> Checkpoint:
    _check_seal(raw)
    arrays = _load_arrays(raw)
    header = _parse_header(arrays.pop("header", None))
    _check_arrays(header, arrays)
    for array in arrays.values():
        array.flags.writeable = False
    e = header.engine
    previous = None
    if e.previous_ts is not None:
        previous = (e.previous_ts, arrays["previous.logp"], arrays["previous.cov_rate"])
    covariance = {k.removeprefix("cov."): v for k, v in arrays.items() if k.startswith("cov.")}
    engine = EngineState(
        covariance=covariance,
        price=arrays["engine.price"],
        last_ts=e.last_ts,
        ticks=e.ticks,
        rejected=_rejected(e.skipped),
        previous=previous,
        ar_moments=e.ar_moments,
        portfolio_moments=e.portfolio_moments,
        iv_history=e.iv_history,
        symbol_ts=arrays.get("engine.symbol_ts"),
    )
    return Checkpoint(
        header.fingerprint, engine, header.rules, header.clock_next, header.version, header.bus
    )


def _rejected(counts: dict[str, int]) -> dict[tuple[str, str], int]:
    """``venue/reason`` keys as pairs; the reason-only keys of older files are dropped."""
    out: dict[tuple[str, str], int] = {}
    for key, count in counts.items():
        venue, slash, reason = key.rpartition("/")
        if slash:
            out[(venue, reason)] = count
    return out


def _check_seal(raw: bytes) -> None:
    seal_at = len(raw) - _DIGEST_LEN - len(_SEAL)
    if not raw.startswith(_ZIP_MAGIC) or seal_at < 0 or raw[seal_at:-_DIGEST_LEN] != _SEAL:
        raise CheckpointError("not a riskmon checkpoint, or truncated (no checksum seal)")
    if hashlib.sha256(raw[:-_DIGEST_LEN]).hexdigest().encode() != raw[-_DIGEST_LEN:]:
        raise CheckpointError("corrupt checkpoint (SHA-256 mismatch)")


def _load_arrays(raw: bytes) -> dict[str, Array]:
    # Past the checksum only a file written by other software fails here.
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, LookupError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"unreadable archive: {exc}") from exc


def _parse_header(array: Array | None) -> _Header:
    if array is None or array.dtype != np.uint8 or array.ndim != 1:
        raise CheckpointError("not a riskmon checkpoint (no header)")
    try:
        obj = json.loads(array.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UTF-8 and JSON errors
        raise CheckpointError(f"unreadable header: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError("not a riskmon checkpoint (header of another format)")
    _check_version(obj.get("version"))
    try:
        return msgspec.convert(obj, _Header)
    except msgspec.ValidationError as exc:
        raise CheckpointError(f"invalid header: {exc}") from exc


def _check_arrays(header: _Header, arrays: dict[str, Array]) -> None:
    """Every array the header implies, with the shape and dtype of a fresh estimator's."""
    n = len(header.fingerprint.symbols)
    fp = header.fingerprint
    cold = make_estimator(n, fp.halflives_s, fp.preaverage_s, compiled=False).state()
    expected = {f"cov.{name}": (a.shape, a.dtype) for name, a in cold.items()}
    f64 = np.dtype(np.float64)
    expected["engine.price"] = ((n,), f64)
    if "engine.symbol_ts" in arrays:  # optional: files written before it was kept lack it
        expected["engine.symbol_ts"] = ((n,), f64)
    if header.engine.previous_ts is not None:
        expected["previous.logp"], expected["previous.cov_rate"] = ((n,), f64), ((n, n), f64)
    if set(arrays) != set(expected):
        raise CheckpointError(f"arrays {sorted(arrays)}, expected {sorted(expected)}")
    for name, (shape, dtype) in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            found = f"{arrays[name].dtype}{list(arrays[name].shape)}"
            raise CheckpointError(f"array {name}: {found}, expected {dtype}{list(shape)}")


def replace_atomically(path: Path, data: bytes) -> None:
    """Temporary file in the same directory, fsync, rename over ``path``, fsync the directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself durable
    finally:
        os.close(directory)


def _check_version(version: object) -> None:
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version}; this riskmon reads version {FORMAT_VERSION}"
        )


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
