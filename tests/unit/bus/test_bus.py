"""The bus, without a server: wire format, batches, stream-order merge, steps and resumes,
batching invariance, roles, config.

The parts that touch nats-server are in tests/integration/test_bus.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.jetstream import BusProtocolError, sequences
from bus.merge import StreamMerger
from bus.publisher import TickPublisher
from bus.subscriber import TickSubscriber, name_token
from bus.wire import (
    BusBatch,
    BusCursor,
    BusMark,
    BusMessage,
    BusOptionMark,
    BusTick,
    decode_message,
    decode_option_mark,
    encode_message,
    encode_option_mark,
    mark_subject,
    message_id,
    option_subject,
    symbol_filter,
    tick_subject,
)
from feeds.events import OptionQuote
from monitor.config.bus import BusConfig
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.errors import CheckpointError, ConfigError
from monitor.model import Tick
from monitor.risk.book import OptionMark
from service.checkpoint import read_checkpoint, write_checkpoint
from service.engine_role import EngineDaemon, apply_in_stream_order
from service.feeds_role import FeedsDaemon
from service.roles import (
    bus_symbols,
    engine_config,
    feeds_config,
    parse_shard,
    role_service,
    select,
)
from tests.conftest import BASE_TOML, REPO
from tests.simulate import simulate_regimes

NAMES = ("AAA", "BBB", "CCC", "DDD")
ROLES_TOML = """
[[portfolios]]
name = "second"
positions = [ { symbol = "CCC", quantity = 3.0 }, { symbol = "DDD", quantity = -2.0 } ]

[[portfolios]]
name = "third"
positions = [ { symbol = "AAA", quantity = 1.0 } ]

[[rules]]
name = "market"
metric = "avg_correlation"
op = ">"
threshold = 0.9

[[rules]]
name = "main-var"
metric = "var_99"
op = ">"
threshold = 1e9
labels = { portfolio = "main" }

[[rules]]
name = "every-book-value"
metric = "portfolio_value"
op = "<"
threshold = -1e9

[[rules]]
name = "stale"
metric = "feed_staleness_seconds"
op = ">"
threshold = 30
labels = { venue = "binance", symbol = "AAA" }

[[feeds]]
venue = "binance"
symbols = ["AAA", "BBB", "CCC"]
"""


@pytest.fixture
def roles_config(make_config: Callable[..., Config]) -> Config:
    return make_config(ROLES_TOML)


# --- wire format ---------------------------------------------------------------------------


def test_batches_and_marks_round_trip_exactly() -> None:
    batch = BusBatch.of(
        "binance", "BTCUSDT", "e1", 42, [1.7e9 + 0.123456789, 1.7e9 + 1 / 3], [0.1 + 0.2, 5e-324],
        [1.7e9 + 0.2, math.nan],
    )  # fmt: skip
    mark = BusMark("BTCUSDT", 7, "e1", 1.7e9 + 1 / 3)
    assert decode_message(encode_message(batch)) == batch
    assert decode_message(encode_message(mark)) == mark
    ts, price, recv = decode_message(encode_message(batch)).columns()  # type: ignore[union-attr]
    assert ts.tolist() == [1.7e9 + 0.123456789, 1.7e9 + 1 / 3]
    assert price.tolist() == [0.1 + 0.2, 5e-324]
    assert recv[0] == 1.7e9 + 0.2
    assert math.isnan(recv[1])
    assert (len(batch), batch.after(1).seq, len(batch.after(1)), len(batch.head(1))) == (
        2,
        43,
        1,
        1,
    )
    assert decode_message(encode_message(BusMark("X", 1, "e"))) == BusMark("X", 1, "e", None)


def test_a_tick_of_the_previous_format_reads_as_a_batch_of_one() -> None:
    """JSON ticks written before batches (a stream kept across an upgrade) still decode."""
    old = msgspec.json.encode(BusTick("binance", "BTCUSDT", 1.7e9 + 0.5, 100.25, 9, "e0"))
    assert old.startswith(b'["t","binance","BTCUSDT",')
    batch = decode_message(old)
    assert isinstance(batch, BusBatch)
    assert (batch.venue, batch.symbol, batch.epoch, batch.seq, len(batch)) == (
        "binance", "BTCUSDT", "e0", 9, 1,
    )  # fmt: skip
    assert batch.columns()[0].tolist() == [1.7e9 + 0.5]
    assert batch.columns()[1].tolist() == [100.25]
    assert decode_message(msgspec.json.encode(BusMark("X", 2, "e0"))) == BusMark("X", 2, "e0")


@pytest.mark.parametrize(
    "payload",
    [
        msgspec.msgpack.encode(["b", "v", "S", "e", 1, b"12345678", b"1234", b"12345678"]),
        msgspec.msgpack.encode(["b", "v", "S", "e", 1, b"123", b"123", b"123"]),
        msgspec.msgpack.encode(["x", 1]),
        b"not a bus payload",
    ],
    ids=["columns-of-two-lengths", "not-float64", "unknown-tag", "garbage"],
)
def test_malformed_payloads_are_decode_errors(payload: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_message(payload)


def test_option_marks_round_trip_on_their_own_subjects() -> None:
    mark = BusOptionMark("deribit", "BTC-27JUN25-100000-C", 1.7e9 + 0.25, 0.5123, 1.0031)
    assert decode_option_mark(encode_option_mark(mark)) == mark
    assert option_subject("riskmon.options", "deribit", mark.instrument) == (
        "riskmon.options.deribit.BTC-27JUN25-100000-C"
    )
    with pytest.raises(msgspec.DecodeError):
        decode_option_mark(encode_message(BusMark("X", 1, "e")))


def test_subjects_are_one_token_per_venue_and_symbol() -> None:
    assert tick_subject("riskmon.ticks", "binance", "BTCUSDT") == "riskmon.ticks.binance.BTCUSDT"
    assert tick_subject("p", "okx", "BTC-USDT.P") == "p.okx.BTC-USDT_P"
    assert symbol_filter("p", "BTC-USDT.P") == "p.*.BTC-USDT_P"
    mark = mark_subject("p", "BTC-USDT.P").split(".")
    assert len(mark) == 3
    assert mark[2] == "BTC-USDT_P"  # matched by the symbol's filter, whatever the venue


def test_message_ids_are_stable_per_message_and_distinct_across_runs() -> None:
    batch = BusBatch.of("binance", "BTCUSDT", "run1", 5, [1.0], [2.0], [3.0])
    again = BusBatch.of("binance", "BTCUSDT", "run1", 5, [9.0, 9.5], [9.0, 9.0], [9.0, 9.0])
    assert message_id(batch) == message_id(again) == "run1:binance:BTCUSDT:5"
    other_run = BusBatch.of("binance", "BTCUSDT", "run2", 5, [1.0], [2.0], [3.0])
    assert message_id(batch) != message_id(other_run)
    assert message_id(batch) != message_id(BusMark("BTCUSDT", 5, "run1"))


def test_sequences_read_both_acknowledgement_subject_forms() -> None:
    old = SimpleNamespace(reply="$JS.ACK.S.C.1.1234.17.1700000000000000000.3")
    new = SimpleNamespace(reply="$JS.ACK.dom.hash.S.C.1.1234.17.1700000000000000000.3.rnd")
    assert sequences(cast(Any, old)) == (1234, 17)
    assert sequences(cast(Any, new)) == (1234, 17)
    with pytest.raises(BusProtocolError):
        sequences(cast(Any, SimpleNamespace(reply="_INBOX.abc")))


def test_consumer_name_tokens_stay_distinct() -> None:
    assert name_token("BTCUSDT") == "BTCUSDT"
    assert name_token("BTC-USD.P") != name_token("BTC-USD:P")
    assert "." not in name_token("BTC-USD.P")


# --- publisher (no server: what offer and mark buffer) --------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _queued(publisher: TickPublisher) -> list[BusMessage]:
    return [decode_message(item.payload) for item in publisher._queue]


def test_ticks_wait_one_linger_then_every_subject_goes_as_one_message() -> None:
    clock = FakeClock()
    publisher = TickPublisher(BusConfig(), epoch="e", clock=clock)  # linger 5 ms
    for n in range(30):
        publisher.offer("binance", Tick(1.0 + n, ("AAA", "BBB", "CCC")[n % 3], 10.0 + n), 0.0)
        clock.now += 0.0001
    assert _queued(publisher) == []
    assert publisher.buffered == 30
    assert not publisher.close_due()  # 3 ms after the first tick
    clock.now = 100.005
    assert publisher.close_due()
    batches = _queued(publisher)
    assert [(b.symbol, b.seq, len(b)) for b in batches if isinstance(b, BusBatch)] == [
        ("AAA", 1, 10), ("BBB", 1, 10), ("CCC", 1, 10),
    ]  # fmt: skip
    first = batches[0]
    assert isinstance(first, BusBatch)
    assert first.columns()[0].tolist() == [1.0 + n for n in range(0, 30, 3)]
    assert first.columns()[1].tolist() == [10.0 + n for n in range(0, 30, 3)]
    publisher.offer("binance", Tick(99.0, "AAA", 1.0), 0.0, recv=1.7e9)
    publisher.close_batches()
    last = _queued(publisher)[-1]
    assert isinstance(last, BusBatch)
    assert (last.seq, last.columns()[2].tolist()) == (11, [1.7e9])  # sequences continue
    assert publisher.stats.batches == 4


def test_a_full_batch_goes_at_once_and_the_next_tick_opens_another() -> None:
    publisher = TickPublisher(BusConfig(max_batch=4), epoch="e", clock=FakeClock())
    for n in range(9):
        publisher.offer("okx", Tick(1.0 + n, "AAA", 1.0), 0.0)
    queued = [(b.seq, len(b)) for b in _queued(publisher) if isinstance(b, BusBatch)]
    assert queued == [(1, 4), (5, 4)]
    assert publisher.buffered == 9  # one still open


def test_a_full_buffer_drops_the_oldest_messages_and_counts_their_ticks() -> None:
    publisher = TickPublisher(BusConfig(publish_buffer=100, max_batch=10), epoch="e")
    for n in range(150):
        publisher.offer("binance", Tick(1.0 + n, "AAA", 1.0), 0.0)
    publisher.offer("coinbase", Tick(200.0, "AAA", 1.0), 0.0)
    publisher.close_batches()
    assert publisher.stats.accepted == 151
    assert publisher.stats.dropped == 60  # six batches of ten: 91 ticks left
    assert publisher.buffered == 91
    queued = _queued(publisher)
    assert [m.seq for m in queued[:2]] == [61, 71]  # the oldest went first
    assert queued[-1] == BusBatch.of("coinbase", "AAA", "e", 1, [200.0], [1.0], [math.nan])
    seqs = [m.seq + i for m in queued if isinstance(m, BusBatch) for i in range(len(m))]
    assert seqs == [*range(61, 151), 1]  # every tick kept is there once, in order


def test_marks_close_open_batches_then_go_to_quiet_symbols_with_the_clock_once_all_are() -> None:
    publisher = TickPublisher(BusConfig(), epoch="e", clock=FakeClock())
    publisher.offer("binance", Tick(1000.0, "AAA", 1.0), mono=50.0)
    publisher.mark(["AAA", "BBB"], mono=50.1, idle_after_s=5.0)
    publisher.mark(["AAA", "BBB"], mono=50.2, idle_after_s=5.0)
    publisher.mark(["AAA", "BBB"], mono=56.0, idle_after_s=5.0)
    messages = _queued(publisher)
    assert messages[0] == BusBatch.of("binance", "AAA", "e", 1, [1000.0], [1.0], [math.nan])
    assert messages[1:] == [
        BusMark("BBB", 1, "e"),  # AAA ticked since the start
        BusMark("AAA", 1, "e"),
        BusMark("BBB", 2, "e"),
        BusMark("AAA", 2, "e", 1006.0),  # 6 s of silence after the tick at 1000
        BusMark("BBB", 3, "e", 1006.0),
    ]


# --- merge into stream order ----------------------------------------------------------------


def test_merger_releases_in_stream_order_up_to_every_lane() -> None:
    merger: StreamMerger[str] = StreamMerger(["a", "b"])
    assert merger.add("a", 1, "a1")
    assert merger.add("a", 4, "a4")
    assert merger.release() == []  # b may still deliver 2 or 3
    assert merger.add("b", 3, "b3")
    assert merger.release() == [(1, "a", "a1"), (3, "b", "b3")]
    assert merger.add("b", 5, "b5")
    assert merger.release() == [(4, "a", "a4")]
    assert merger.position == 4
    assert merger.held == 1
    assert merger.applied() == {"a": 4, "b": 3}


def test_merger_refuses_redeliveries() -> None:
    merger: StreamMerger[str] = StreamMerger(["a", "b"], position=10, applied={"a": 9})
    assert not merger.add("a", 9, "again")  # applied before the checkpoint
    assert merger.add("a", 12, "a12")
    assert not merger.add("a", 12, "a12 again")  # held
    assert merger.add("b", 13, "b13")
    assert [seq for seq, _, _ in merger.release()] == [12]
    assert not merger.add("a", 11, "late copy")


def test_rewind_drops_what_is_held_and_restarts_after_the_position() -> None:
    merger: StreamMerger[str] = StreamMerger(["a", "b"])
    merger.add("a", 1, "a1")
    merger.add("b", 2, "b2")
    merger.add("a", 3, "a3")
    assert [s for s, _, _ in merger.release()] == [1, 2]
    merger.rewind()
    assert merger.held == 0
    assert merger.add("a", 3, "a3 redelivered")  # dropped when held, so not a duplicate now
    assert not merger.add("b", 2, "b2 again")
    merger.restart(0)
    assert merger.position == 0
    assert merger.add("a", 1, "a1 of a new stream")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_merger_output_is_stream_order_whatever_the_arrival_order(data: st.DataObject) -> None:
    lanes = ["a", "b", "c"]
    owner = data.draw(st.lists(st.sampled_from(lanes), min_size=1, max_size=60))
    per_lane = {lane: [q for q, o in enumerate(owner, 1) if o == lane] for lane in lanes}
    merger: StreamMerger[int] = StreamMerger(lanes)
    out: list[int] = []
    cursor = dict.fromkeys(lanes, 0)
    while any(cursor[lane] < len(per_lane[lane]) for lane in lanes):
        lane = data.draw(st.sampled_from([x for x in lanes if cursor[x] < len(per_lane[x])]))
        seq = per_lane[lane][cursor[lane]]
        cursor[lane] += 1
        merger.add(lane, seq, seq)
        if data.draw(st.booleans()):
            merger.add(lane, seq, seq)  # a redelivery
        out.extend(s for s, _, _ in merger.release())
    for lane in lanes:  # the closing marks
        merger.add(lane, len(owner) + 1 + lanes.index(lane), -1)
    out.extend(s for s, _, item in merger.release() if item != -1)
    assert out == list(range(1, len(owner) + 1))


# --- applying ticks and marks ---------------------------------------------------------------


def _stream(seed: int = 3) -> list[BusMessage]:
    """Batches of one to eight consecutive ticks of a symbol, late ticks, clocked marks."""
    sim = simulate_regimes([2.0, 1.0, 0.5, 0.2], 0.8, [(3600.0, 0.3), (3600.0, 0.8)], seed)
    rng = np.random.default_rng(seed)
    jitter = np.where(rng.random(len(sim.ts)) < 0.05, -rng.uniform(0, 8, len(sim.ts)), 0.0)
    ts, price = sim.ts + jitter, np.exp(sim.logp)
    messages: list[BusMessage] = []
    seqs = dict.fromkeys(NAMES, 1)
    start = 0
    while start < len(ts):
        k = sim.idx[start]
        end = start + 1
        while end < len(ts) and sim.idx[end] == k and end - start < rng.integers(1, 9):
            end += 1
        name = NAMES[k]
        messages.append(
            BusBatch.of("v", name, "e", seqs[name], ts[start:end], price[start:end], ts[start:end])
        )
        seqs[name] += end - start
        if rng.random() < 0.002:  # a quiet moment: a clocked mark
            messages.append(BusMark(name, len(messages), "e", float(ts[end - 1]) + 90.0))
        start = end
    return messages


def _worker(config: Config) -> EngineDaemon:
    return EngineDaemon(config, worker="w")


def _same_state(a: EngineDaemon, b: EngineDaemon) -> None:
    x, y = a.engine.export_state(), b.engine.export_state()
    assert x.ticks == y.ticks
    assert dict(x.rejected) == dict(y.rejected)
    for name in x.covariance:
        np.testing.assert_array_equal(x.covariance[name], y.covariance[name])
    assert a.latest is not None
    assert b.latest is not None
    assert a.latest.ts == b.latest.ts
    assert a.latest.market == b.latest.market
    assert a.latest.portfolios[0].tails == b.latest.portfolios[0].tails


def test_apply_in_stream_order_does_not_depend_on_batching_or_a_restore(
    roles_config: Config, tmp_path: Path
) -> None:
    """Cut anywhere, inside batches too, checkpointed and restored in the middle: the same
    floats as in one go."""
    config = engine_config(roles_config, select(roles_config))
    messages = _stream()
    whole = _worker(config)
    apply_in_stream_order(whole.clock, messages)
    assert whole.engine.rejected_by_reason()["out_of_order"] > 0  # the stream has late ticks
    rng = np.random.default_rng(1)
    parts: list[list[BusMessage]] = [[]]
    for message in messages:  # cut between messages and inside batches
        if isinstance(message, BusBatch) and len(message) > 1 and rng.random() < 0.1:
            cut = int(rng.integers(1, len(message)))
            parts[-1].append(message.head(cut))
            parts.append([message.after(cut)])
        else:
            parts[-1].append(message)
            if rng.random() < 0.01:
                parts.append([])
    assert len(parts) > 20
    first = _worker(config)
    for n, part in enumerate(parts):
        if n == len(parts) // 2:
            path = tmp_path / "checkpoint.npz"
            write_checkpoint(path, first.capture_state())
            first = _worker(config)
            first.restore_state(read_checkpoint(path))
        apply_in_stream_order(first.clock, part)
    _same_state(whole, first)


def test_a_batch_applies_as_its_ticks_one_by_one(roles_config: Config) -> None:
    """Batching changes nothing but the message count: each batch split into batches of one
    tick, in the same order, leaves the same state to the bit."""
    config = engine_config(roles_config, select(roles_config))
    messages = _stream(seed=4)
    batched, single = _worker(config), _worker(config)
    apply_in_stream_order(batched.clock, messages)
    ones: list[BusMessage] = []
    for message in messages:
        if isinstance(message, BusBatch):
            ones += [message.after(i).head(1) for i in range(len(message))]
        else:
            ones.append(message)
    apply_in_stream_order(single.clock, ones)
    _same_state(batched, single)


def _ticks_into(out: list[tuple[str, int]]) -> Callable[[list[BusMessage]], None]:
    """A step sink collecting (symbol, feeds sequence) of every tick."""

    def collect(step: list[BusMessage]) -> None:
        out.extend(
            (m.symbol, m.seq + i) for m in step if isinstance(m, BusBatch) for i in range(len(m))
        )

    return collect


def _released(messages: Sequence[BusMessage], lanes: dict[str, str]) -> list[tuple[int, str, Any]]:
    """Messages as a merger releases them: (stream sequence, lane, decoded message)."""
    return [(seq, lanes[m.symbol], m) for seq, m in enumerate(messages, 1)]


async def test_steps_are_bounded_and_a_worker_resumes_inside_a_batch() -> None:
    """A worker applies at most apply_ticks ticks per step, cutting batches; a restart from
    the cursor of any step boundary (position, ticks of the next message) applies exactly the
    ticks after it: none twice, none lost, in stream order."""
    bus = BusConfig(stream="S")
    messages = [m for m in _stream(seed=5)[:400] if isinstance(m, BusBatch)]
    lanes = {name: f"riskmon.ticks.*.{name}" for name in NAMES}
    released = _released(messages, lanes)
    want = [(m.symbol, m.seq + i) for m in messages for i in range(len(m))]
    steps: list[list[tuple[str, int]]] = []
    cursors: list[BusCursor] = []

    def record(step: list[BusMessage]) -> None:
        cursors.append(subscriber.cursor())  # where the previous step left it
        ticks = [
            (m.symbol, m.seq + i) for m in step if isinstance(m, BusBatch) for i in range(len(m))
        ]
        steps.append(ticks)

    subscriber = TickSubscriber(bus, "w", NAMES, record, apply_ticks=7)
    await subscriber._apply(released, len(released))
    assert [t for step in steps for t in step] == want
    assert all(len(step) <= 7 for step in steps)
    assert sum(len(step) == 7 for step in steps) > len(steps) // 2
    assert subscriber.cursor().position == len(released)
    assert subscriber.cursor().index == 0
    assert sum(c.index > 0 for c in cursors) > 10  # many steps ended inside a batch
    inside = [n for n, c in enumerate(cursors) if c.index]
    for n in (1, *inside[:: len(inside) // 4], len(cursors) - 1):
        cursor = cursors[n]
        done = [t for step in steps[:n] for t in step]
        again: list[tuple[str, int]] = []
        collect = _ticks_into(again)
        restarted = TickSubscriber(bus, "w", NAMES, collect, cursor_at_start=cursor, apply_ticks=5)
        redelivered = released[cursor.position :]  # the consumers restart at position + 1
        await restarted._apply(redelivered, len(released))
        assert done + again == want, n
        assert restarted.cursor().position == len(released)


def test_a_cursor_of_the_previous_format_has_no_partial_batch() -> None:
    """Checkpoints written before batches carry no index: nothing of the next message was
    applied."""
    old = msgspec.json.encode({"stream": "S", "position": 7, "subjects": {"a": 7}})
    assert msgspec.json.decode(old, type=BusCursor) == BusCursor("S", 7, {"a": 7}, 0)


def test_a_worker_refuses_a_checkpoint_without_its_stream_cursor(
    roles_config: Config, tmp_path: Path
) -> None:
    config = engine_config(roles_config, select(roles_config))
    worker = _worker(config)
    apply_in_stream_order(worker.clock, _stream()[:200])
    state = worker.capture_state()
    assert state.bus == BusCursor("RISKMON_TICKS", 0)
    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, state)
    assert read_checkpoint(path).bus == state.bus
    without = (
        _worker(config)
        .capture_state()
        .__class__(state.fingerprint, state.engine, state.rules, state.clock_next)
    )
    with pytest.raises(CheckpointError, match="no bus cursor"):
        _worker(config).restore_state(without)


def test_option_marks_flow_from_the_feeds_role_to_a_worker_s_accounts(
    roles_config: Config,
) -> None:
    """Feeds role: an option ticker becomes an option mark, the latest of each option kept.
    Worker: a received mark is what its engine prices options with."""
    feeds = FeedsDaemon(roles_config)
    name = "BTC-27JUN25-100000-C"

    def quote(iv: float) -> OptionQuote:
        return OptionQuote("deribit", name, 1.7e9, 1.8e9, 0.05, iv, None, None, 101.0, 100.0, None)

    feeds._on_events("deribit", [quote(40.0), quote(55.0)], 0.0)
    ((subject, payload),) = feeds.publisher._options.values()
    assert subject == f"riskmon.options.deribit.{name}"
    mark = decode_option_mark(payload)
    assert (mark.iv, mark.basis) == (pytest.approx(0.55), pytest.approx(1.01))
    worker = _worker(engine_config(roles_config, select(roles_config)))
    assert worker.engine.marks() == {}
    worker._on_option(mark)
    assert worker.engine.marks() == {name: OptionMark(mark.iv, mark.basis)}


# --- roles ----------------------------------------------------------------------------------


def test_select_by_name_by_shard_or_all(roles_config: Config) -> None:
    assert select(roles_config, ["third", "main"]).portfolios == ("main", "third")
    assert select(roles_config, ["second"]).owns_market is False
    assert select(roles_config).portfolios == ("main", "second", "third")
    shard = select(roles_config, shard=(1, 2))
    assert shard.portfolios == ("second",)
    assert shard.worker == "shard-1-of-2"
    assert select(roles_config, shard=(0, 2)).portfolios == ("main", "third")
    with pytest.raises(ConfigError, match='unknown portfolio "nope"; expected one of main'):
        select(roles_config, ["nope"])
    with pytest.raises(ConfigError, match="no portfolio falls in this shard"):
        select(roles_config, shard=(3, 4))


@pytest.mark.parametrize("text", ["2/2", "x/3", "-1/3", "1"])
def test_parse_shard_refuses_nonsense(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard: expected INDEX/COUNT"):
        parse_shard(text)


def test_each_rule_runs_on_exactly_one_worker(roles_config: Config) -> None:
    def rules(*names: str) -> list[str]:
        return [r.name for r in engine_config(roles_config, select(roles_config, names)).rules]

    assert rules("main") == ["market", "main-var", "every-book-value"]
    assert rules("second") == ["every-book-value"]
    worker = engine_config(roles_config, select(roles_config, ["second"]))
    assert [p.name for p in worker.portfolios] == ["second"]
    assert worker.feeds == ()
    assert worker.tracked_symbols == ("AAA", "BBB", "CCC", "DDD")
    assert bus_symbols(roles_config, select(roles_config, ["second"])) == ("AAA", "BBB", "CCC")
    feeds = feeds_config(roles_config)
    assert feeds.portfolios == ()
    assert feeds.rules == ()
    assert feeds.feeds == roles_config.feeds


# --- [bus] configuration --------------------------------------------------------------------


def test_bus_defaults_and_environment_override(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    assert config.bus.url == "nats://127.0.0.1:4222"
    assert config.bus.stream == "RISKMON_TICKS"
    assert config.bus.max_age == 3600.0
    path = tmp_path / "riskmon.toml"
    env = {"RISKMON_BUS__URL": "nats://a:4222,nats://b:4222", "RISKMON_BUS__MAX_AGE": "2h"}
    overridden = load_config(path, environ=env)
    assert overridden.bus.servers == ["nats://a:4222", "nats://b:4222"]
    assert overridden.bus.max_age == 7200.0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'url = "http://x:4222"',
            "[bus] url: expected a string matching regex",
        ),
        ('stream = "a.b"', "[bus] stream: expected a string matching regex"),
        ("replicas = 7", "[bus] replicas: expected an integer <= 5, got 7"),
        ('storage = "disk"', '[bus] storage: expected one of "file", "memory", got "disk"'),
        (
            'max_age = "1m"\nduplicate_window = "5m"',
            '[bus] duplicate_window: expected a duration no longer than max_age ("1m"), got "5m"',
        ),
        (
            "fetch_batch = 500\nmax_ack_pending = 100",
            "[bus] fetch_batch: expected at most max_ack_pending (100), got 500",
        ),
        ("ack_wait = 30", '[bus] ack_wait: expected a duration like "30s"'),
        (
            "max_batch = 5000\npublish_buffer = 1000",
            "[bus] publish_buffer: expected at least max_batch (5000), got 1000",
        ),
        ("max_batch = 20000", "[bus] max_batch: expected an integer <= 10000, got 20000"),
        ('linger = "0s"', "[bus] linger: expected a positive duration"),
        ("nope = 1", "[bus] nope: unknown key; expected one of url, stream"),
        (
            'options_subject = "riskmon.ticks.options"',
            '[bus] options_subject: expected subjects outside the tick stream\'s "riskmon.ticks.>"',
        ),
    ],
)
def test_bus_config_errors_name_the_file_and_key(
    make_config: Callable[..., Config], tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config("[bus]\n" + toml + "\n")
    assert str(caught.value).startswith(f"{tmp_path / 'riskmon.toml'}: {message}")


def test_the_shipped_config_documents_every_bus_key(tmp_path: Path) -> None:
    """config/riskmon.toml carries [bus] commented out; uncommented, it is valid and complete."""
    shipped = (REPO / "config" / "riskmon.toml").read_text()
    lines = shipped.splitlines()
    start = lines.index("# [bus]")
    section = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        section.append(line[2:])
    path = tmp_path / "bus.toml"
    path.write_text(BASE_TOML + "\n" + "\n".join(section) + "\n")
    bus = load_config(path, environ={}).bus
    assert bus == BusConfig()  # the documented values are the defaults
    keys = {line.split("=")[0].strip() for line in section[1:] if "=" in line}
    assert keys == set(BusConfig.__struct_fields__)


def test_a_worker_without_any_fed_symbol_is_refused_at_start(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()  # no [[feeds]]: nothing would ever reach the worker
    with pytest.raises(ConfigError, match=r"engine worker main: no \[\[feeds\]\] entry prices"):
        role_service("engine", config, portfolios=["main"])
    assert role_service("feeds", config).daemon_factory is not None
