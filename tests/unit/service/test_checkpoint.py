"""Checkpoints: exact restore and continuation, rule states, compatibility, file corruption."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.clock import SnapshotClock
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.errors import CheckpointError, RiskmonError
from monitor.estimation.ewma import EwmaMoments
from monitor.model import AlertEvent, AlertState
from monitor.risk.snapshot import RiskSnapshot
from monitor.rules import RuleEngine, RuleState
from service.checkpoint import (
    Checkpoint,
    capture,
    read_checkpoint,
    restore,
    restore_compatible,
    write_checkpoint,
)
from tests.conftest import BASE_TOML
from tests.simulate import Ticks, simulate_regimes

INTERVAL_S = 60.0
NAMES = ("AAA", "BBB", "CCC", "DDD")  # simulated symbol k ticks as NAMES[k]
BASE = BASE_TOML.replace('distribution = "normal"', 'distribution = "cornish-fisher"')
EXTRA = """
[[portfolios]]
name = "hedge"
positions = [ { symbol = "CCC", quantity = 3.0 }, { symbol = "DDD", quantity = -2.0 } ]

[[rules]]
name = "value_held"
metric = "portfolio_value"
op = ">"
threshold = 0.0
for = "90m"

[[rules]]
name = "correlated"
metric = "avg_correlation"
op = ">"
threshold = -1.0

[[rules]]
name = "tail"
metric = "cvar_99"
op = ">"
threshold = 5.0
resolve_threshold = 4.0
"""


@dataclass
class _Batch:
    ts: npt.NDArray[np.float64]
    symbol: npt.NDArray[np.str_]
    price: npt.NDArray[np.float64]


@dataclass
class _Run:
    """An engine, its rules and a snapshot clock that records what it emits."""

    config: Config
    engine: Engine = field(init=False)
    rules: RuleEngine = field(init=False)
    clock: SnapshotClock = field(init=False)
    emitted: list[tuple[RiskSnapshot, list[AlertEvent]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = Engine(self.config)
        self.rules = RuleEngine(self.config.rules, [p.name for p in self.config.portfolios])
        self.clock = SnapshotClock(
            self.engine, self.rules, INTERVAL_S, lambda s, e: self.emitted.append((s, e))
        )

    def feed(self, ticks: Ticks, names: tuple[str, ...] = NAMES, batches: int = 7) -> None:
        symbols = np.array(names)[ticks.idx]
        for part in np.array_split(np.arange(len(ticks.ts)), batches):
            self.clock.feed(_Batch(ticks.ts[part], symbols[part], np.exp(ticks.logp[part])))


def _ticks() -> tuple[Ticks, Ticks]:
    """About 5000 asynchronous ticks per hour; two hours, split in the middle."""
    t = simulate_regimes([0.5, 0.3, 0.4, 0.2], 0.8, [(3600.0, 0.3), (3600.0, 0.7)], seed=7)
    half = int(np.searchsorted(t.ts, t.ts[0] + 3600.0))
    return _part(t, slice(None, half)), _part(t, slice(half, None))


def _part(ticks: Ticks, part: slice) -> Ticks:
    return Ticks(ticks.idx[part], ticks.ts[part], ticks.logp[part])


def _config(make_config: Callable[..., Config]) -> Config:
    """Two portfolios, three rules, Cornish-Fisher tails (so P&L moments matter)."""
    return make_config(EXTRA, base=BASE)


def _checkpointed(make_config: Callable[..., Config], path: Path) -> tuple[_Run, Ticks]:
    """A run fed the first hour, checkpointed to ``path``; and the second hour."""
    first, second = _ticks()
    run = _Run(_config(make_config))
    run.feed(first)
    write_checkpoint(path, capture(run.engine, run.rules, run.clock.next_boundary))
    return run, second


def _assert_same(a: RiskSnapshot, b: RiskSnapshot) -> None:
    """The same floats everywhere (NaN where NaN)."""
    assert (a.ts, a.ticks, a.repaired) == (b.ts, b.ticks, b.repaired)
    arrays = ("price", "last_tick_ts", "volatility", "volatility_slow", "covariance")
    for name in (*arrays, "correlation", "correlation_slow"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.market == b.market
    assert a.portfolios == b.portfolios


def test_restored_engine_gives_identical_snapshots_and_continuation(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Through a file: the next snapshot and every later one carry the same floats."""
    a, second = _checkpointed(make_config, tmp_path / "cp.npz")
    b = _Run(a.config)
    b.clock.next_boundary = restore(read_checkpoint(tmp_path / "cp.npz"), b.engine, b.rules)
    assert b.clock.next_boundary == a.clock.next_boundary
    assert b.engine.counters() == a.engine.counters()
    assert b.engine.last_event_ts == a.engine.last_event_ts
    boundary = a.clock.next_boundary
    assert boundary is not None
    first_a, first_b = a.engine.snapshot(boundary), b.engine.snapshot(boundary)
    _assert_same(first_a, first_b)
    assert first_a.market.turbulence is not None  # interval state was restored, not restarted
    assert first_a.market.absorption_ratio_shift is not None
    assert all(p.skew is not None for p in first_a.portfolios)  # Cornish-Fisher moments used
    a.emitted.clear()
    a.feed(second)
    b.feed(second)
    assert len(a.emitted) == len(b.emitted) > 50
    for (snap_a, events_a), (snap_b, events_b) in zip(a.emitted, b.emitted, strict=True):
        _assert_same(snap_a, snap_b)
        assert events_a == events_b


def test_pending_rule_keeps_its_since_and_fires_on_time(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """A rule pending at the checkpoint fires 90 minutes after it became pending, not later."""
    a, second = _checkpointed(make_config, tmp_path / "cp.npz")
    b = _Run(a.config)
    b.clock.next_boundary = restore(read_checkpoint(tmp_path / "cp.npz"), b.engine, b.rules)
    assert b.rules.export_state() == a.rules.export_state()
    pending = {i.portfolio: i.since for i in b.rules.instances if i.rule == "value_held"}
    assert {i.state for i in b.rules.instances if i.rule == "value_held"} == {RuleState.PENDING}
    assert {i.state for i in b.rules.instances if i.rule == "correlated"} == {RuleState.FIRING}
    b.feed(second)
    fired = [e for _, events in b.emitted for e in events if e.rule == "value_held"]
    assert all(e.state is AlertState.FIRING for e in fired)
    assert {e.portfolio: e.ts - 5400.0 for e in fired} == pending
    assert len(fired) == len(pending) == 2


@pytest.mark.parametrize(
    ("old", "new", "differs"),
    [
        ('symbols = ["AAA", "BBB", "CCC"]', 'symbols = ["AAA", "BBB", "CCC", "EEE"]', "tracked"),
        ('slow_halflife = "2h"', 'slow_halflife = "3h"', "half-lives (s): checkpoint [600.0"),
        ("quantity = 2.0", "quantity = 2.5", "portfolios"),
        ('name = "value_held"', 'name = "value_kept"', "rules: checkpoint [value_held"),
    ],
)
def test_restore_refuses_another_configuration(
    make_config: Callable[..., Config], tmp_path: Path, old: str, new: str, differs: str
) -> None:
    """Symbols, half-lives, positions and rule names must match; the error says what differs."""
    _checkpointed(make_config, tmp_path / "cp.npz")
    checkpoint = read_checkpoint(tmp_path / "cp.npz")
    other = _Run(make_config(EXTRA.replace(old, new), base=BASE.replace(old, new)))
    with pytest.raises(CheckpointError, match="does not match the configuration") as info:
        restore(checkpoint, other.engine, other.rules)
    assert differs in str(info.value)
    assert other.engine.ticks == 0
    assert isinstance(info.value, RiskmonError)


@pytest.mark.parametrize(
    "universe",
    [("AAA", "CCC", "EEE"), ("CCC", "EEE", "AAA")],
    ids=["order-kept", "order-reversed"],
)
def test_restore_compatible_keeps_common_pairs_exactly(
    make_config: Callable[..., Config], tmp_path: Path, universe: tuple[str, ...]
) -> None:
    """BBB removed and EEE added: every pair of remaining symbols keeps its covariance."""
    a, second = _checkpointed(make_config, tmp_path / "cp.npz")
    base = BASE.replace('["AAA", "BBB", "CCC"]', str(list(universe)).replace("'", '"'))
    b = _Run(make_config(EXTRA, base=base.replace('symbol = "BBB"', 'symbol = "CCC"')))
    report = restore_compatible(read_checkpoint(tmp_path / "cp.npz"), b.engine, b.rules)
    assert report.estimator_restored
    assert (report.symbols_cold, report.symbols_dropped) == (("EEE",), ("BBB",))
    assert report.portfolios_kept == ("hedge",)  # "main" changed its positions
    assert len(report.rules_kept) == len(b.rules.instances)
    assert "estimator kept for 3 symbols" in str(report)
    common = ["AAA", "CCC", "DDD"]
    boundary = a.clock.next_boundary
    assert boundary is not None
    snap_a, snap_b = a.engine.snapshot(boundary), b.engine.snapshot(boundary)
    assert not snap_a.repaired
    ia, ib = [snap_a.index(s) for s in common], [snap_b.index(s) for s in common]
    np.testing.assert_array_equal(
        snap_b.covariance[np.ix_(ib, ib)], snap_a.covariance[np.ix_(ia, ia)]
    )
    assert np.isnan(snap_b.volatility[snap_b.index("EEE")])
    b.clock.next_boundary = report.clock_next
    b.feed(second, names=("AAA", "EEE", "CCC", "DDD"))
    a.feed(second)
    last_a, last_b = a.emitted[-1][0], b.emitted[-1][0]
    assert np.isfinite(last_b.volatility).all()
    block_a = last_a.covariance[np.ix_(ia, ia)]
    block_b = last_b.covariance[np.ix_(ib, ib)]
    if universe == ("AAA", "CCC", "EEE"):  # same event times, same pair order: same floats
        np.testing.assert_array_equal(block_b, block_a)
    else:  # a reversed pair drops the intervals pending at the restore
        np.testing.assert_allclose(block_b, block_a, rtol=1e-2)


def test_restore_compatible_with_new_halflives_keeps_only_rule_states(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Estimates of another half-life are not reused; the report says why."""
    a, _ = _checkpointed(make_config, tmp_path / "cp.npz")
    b = _Run(make_config(EXTRA, base=BASE.replace('halflife = "10m"', 'halflife = "20m"')))
    report = restore_compatible(read_checkpoint(tmp_path / "cp.npz"), b.engine, b.rules)
    assert not report.estimator_restored
    assert "half-lives changed" in str(report.reason)
    assert "estimator cold" in str(report)
    assert b.engine.ticks == 0
    assert b.rules.export_state() == a.rules.export_state()


def test_checkpoint_is_read_only_and_rewritten_in_place(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Arrays of a read checkpoint cannot be changed; rewriting leaves no temporary file."""
    path = tmp_path / "cp.npz"
    run, _ = _checkpointed(make_config, path)
    checkpoint = read_checkpoint(path)
    assert not checkpoint.engine.price.flags.writeable
    assert not any(a.flags.writeable for a in checkpoint.engine.covariance.values())
    write_checkpoint(path, capture(run.engine, run.rules, None))
    assert read_checkpoint(path).clock_next is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.npz", "riskmon.toml"]


def test_unwritable_location_is_a_checkpoint_error(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """A missing directory gives CheckpointError naming the path."""
    run = _Run(_config(make_config))
    with pytest.raises(CheckpointError, match=r"missing/cp\.npz: cannot write checkpoint"):
        write_checkpoint(tmp_path / "missing" / "cp.npz", capture(run.engine, run.rules, None))


def test_other_format_version_is_refused(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """A file or a value of another format version is refused by read and by restore."""
    run = _Run(_config(make_config))
    future = dataclasses.replace(capture(run.engine, run.rules, None), version=2)
    write_checkpoint(tmp_path / "cp.npz", future)
    with pytest.raises(CheckpointError, match="format version 2; this riskmon reads version 1"):
        read_checkpoint(tmp_path / "cp.npz")
    with pytest.raises(CheckpointError, match="format version 2"):
        restore(future, run.engine, run.rules)


def _seal(arrays: dict[str, npt.NDArray[np.generic]]) -> bytes:
    """An archive in the documented layout: savez, then the SHA-256 seal as its comment."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = b"riskmon-checkpoint sha256:" + b"0" * 64
    body = buffer.getvalue()[:-64]
    return body + hashlib.sha256(body).hexdigest().encode()


def test_sealed_archive_with_wrong_contents_is_refused(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """An intact file whose arrays do not fit its header, or without a header, is refused."""
    path = tmp_path / "cp.npz"
    _checkpointed(make_config, path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    cases = {
        "array cov.s": {**arrays, "cov.s": arrays["cov.s"][:1]},
        "arrays": {k: v for k, v in arrays.items() if k != "engine.price"},
        "no header": {k: v for k, v in arrays.items() if k != "header"},
        "unreadable header": {**arrays, "header": np.frombuffer(b"\xff{", dtype=np.uint8)},
        "another format": {**arrays, "header": np.frombuffer(b'{"format": 1}', np.uint8)},
    }
    for expected, contents in cases.items():
        path.write_bytes(_seal(contents))
        with pytest.raises(CheckpointError, match=expected):
            read_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"riskmon", b"PK\x03\x04", b"\x93NUMPY\x01\x00", b"\x80\x04K\x01."],
    ids=["empty", "text", "zip-magic", "npy-magic", "pickle"],
)
def test_foreign_files_are_refused(tmp_path: Path, content: bytes) -> None:
    """Files that are not checkpoints give CheckpointError."""
    path = tmp_path / "cp.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a riskmon checkpoint"):
        read_checkpoint(path)


def test_missing_file_and_plain_archive_are_refused(tmp_path: Path) -> None:
    """A missing file and a numpy archive without the seal give CheckpointError."""
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        read_checkpoint(tmp_path / "absent.npz")
    np.savez(tmp_path / "plain.npz", header=np.zeros(3, dtype=np.uint8))
    with pytest.raises(CheckpointError, match="not a riskmon checkpoint"):
        read_checkpoint(tmp_path / "plain.npz")


_FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_give_checkpoint_error(tmp_path: Path, data: bytes) -> None:
    """Arbitrary bytes, with or without a zip signature, never raise anything else."""
    for content in (data, b"PK\x03\x04" + data):
        (tmp_path / "fuzz.npz").write_bytes(content)
        with pytest.raises(CheckpointError):
            read_checkpoint(tmp_path / "fuzz.npz")


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real checkpoint file of a small warmed-up engine."""
    directory = tmp_path_factory.mktemp("real")
    config_path = directory / "riskmon.toml"
    config_path.write_text(BASE + EXTRA)
    run = _Run(load_config(config_path, environ={}))
    run.feed(_ticks()[0])
    write_checkpoint(directory / "cp.npz", capture(run.engine, run.rules, run.clock.next_boundary))
    data = (directory / "cp.npz").read_bytes()
    assert isinstance(read_checkpoint(directory / "cp.npz"), Checkpoint)
    return data


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=2**20))
def test_truncated_file_gives_checkpoint_error(
    tmp_path: Path, checkpoint_bytes: bytes, cut: int
) -> None:
    """Every proper prefix of a checkpoint file is refused."""
    (tmp_path / "cut.npz").write_bytes(checkpoint_bytes[: cut % len(checkpoint_bytes)])
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "cut.npz")


@_FUZZ
@given(bits=st.lists(st.integers(min_value=0, max_value=2**24), min_size=1, max_size=3))
def test_flipped_bits_give_checkpoint_error(
    tmp_path: Path, checkpoint_bytes: bytes, bits: list[int]
) -> None:
    """Flipping one to three bits anywhere in the file (metadata included) is detected."""
    data = bytearray(checkpoint_bytes)
    for bit in set(b % (8 * len(data)) for b in bits):
        data[bit // 8] ^= 1 << (bit % 8)
    (tmp_path / "flip.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "flip.npz")


def test_moments_round_trip_through_a_tuple() -> None:
    """EwmaMoments rebuilt from its tuple continues with the same floats."""
    a = EwmaMoments(600.0)
    for k in range(5):
        a.update(100.0 * k, 0.1 * k - 0.2)
    b = EwmaMoments.from_tuple(a.to_tuple())
    a.update(700.0, 0.3)
    b.update(700.0, 0.3)
    assert a.to_tuple() == b.to_tuple()
    assert [a.moment(k) for k in range(1, 5)] == [b.moment(k) for k in range(1, 5)]
