"""Tests for feeds.venues.bybit: recorded frames, ticker deltas, documented frames, plans."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.events import FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venue import Parser, VenueSpec
from feeds.venues.bybit import BYBIT, BYBIT_SPOT
from monitor.errors import ConfigError
from tests.fuzz import fuzz_tests, mutated_frames, parse_or_reject
from tests.recorded import recorded_connections

RECV_TS = 1_700_000_000.5
LINEAR_CONN, SPOT_CONN = "BYBIT.ws.2", "BYBIT.ws.3"

# Verbatim from bybit.jsonl (linear connection), so that fuzzing runs without ../shared.
BTC_SNAPSHOT = (
    '{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT",'
    '"tickDirection":"ZeroPlusTick","price24hPcnt":"0.001624","lastPrice":"65114.30",'
    '"prevPrice24h":"65008.70","highPrice24h":"65282.30","lowPrice24h":"64694.40",'
    '"prevPrice1h":"65083.80","markPrice":"65117.44","indexPrice":"65137.76",'
    '"openInterest":"59891.732","openInterestValue":"3899996265.01",'
    '"turnover24h":"1142118412.9021","volume24h":"17573.9120","fundingIntervalHour":"8",'
    '"fundingCap":"0.005","singleOpenInterest":"29945.866",'
    '"singleOpenInterestValue":"1949998132.50","nextFundingTime":"1786320000000",'
    '"fundingRate":"0.0001","bid1Price":"65114.20","bid1Size":"5.954","ask1Price":"65114.30",'
    '"ask1Size":"10.470","preOpenPrice":"","preQty":"","curPreListingPhase":""},'
    '"cs":753843900397,"ts":1786310817583}'
)
BTC_MARK_DELTA = (
    '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"65117.43",'
    '"openInterestValue":"3899995666.09","ask1Price":"65114.30","ask1Size":"10.488",'
    '"singleOpenInterestValue":"1949997833.04"},"cs":753843915209,"ts":1786310818183}'
)
BTC_TRADE = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,"data":[{"T":1786310819680,'
    '"s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick",'
    '"i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,"RPI":false,"seq":753843954913}]}'
)
# From Bybit's v5 documentation (pong replies; the order book example moved to depth 1),
# which the recording lacks.
SPOT_TOP_OF_BOOK = (
    '{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{"s":"BTCUSDT",'
    '"b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],"u":18521288,"seq":7961638724},'
    '"cts":1672304484976}'
)
PONG_SPOT = (
    '{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}'
)
PONG_LINEAR = (
    '{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}'
)
SUBSCRIBE_ERROR = (
    '{"success":false,"ret_msg":"error:handler not found","conn_id":"d8bu1olkndm7crnfs1e0-j6akw",'
    '"req_id":"","op":"subscribe"}'
)
SAMPLES = [BTC_SNAPSHOT, BTC_MARK_DELTA, BTC_TRADE, SPOT_TOP_OF_BOOK, PONG_SPOT, SUBSCRIBE_ERROR]
SPECS = [BYBIT, BYBIT_SPOT]


def linear_frames() -> list[tuple[float, str]]:
    return recorded_connections("bybit")[LINEAR_CONN]


def quotes_of(events: Sequence[object]) -> dict[PriceKind, float]:
    """Price by kind, for frames about one instrument."""
    return {e.kind: e.price for e in events if isinstance(e, Quote)}


# --- recorded frames ------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize(("conn", "spec"), [(LINEAR_CONN, BYBIT), (SPOT_CONN, BYBIT_SPOT)])
def test_every_recorded_frame_parses(conn: str, spec: VenueSpec) -> None:
    """Every frame of each connection parses, with one parser per connection as in the session."""
    parser = spec.new_parser()
    kinds: set[PriceKind] = set()
    for ts, data in recorded_connections("bybit")[conn]:
        kinds.update(e.kind for e in parser.parse(data, ts) if isinstance(e, Quote))
    expected = set(PriceKind) if spec is BYBIT else {PriceKind.TRADE}
    assert kinds == expected


@pytest.mark.shared
def test_linear_snapshot_then_delta_merges_mark_price() -> None:
    """A delta updating markPrice gives the new mark and a mid that merges both frames."""
    frames = [(ts, d) for ts, d in linear_frames() if d.startswith('{"topic":"tickers.BTCUSDT"')]
    (snap_ts, snapshot), (_, delta_1), (delta_ts, delta_2) = frames[:3]
    assert snapshot == BTC_SNAPSHOT
    assert delta_2 == BTC_MARK_DELTA
    parser = BYBIT.new_parser()
    first = parser.parse(snapshot, snap_ts)
    assert quotes_of(first) == {
        PriceKind.MID: pytest.approx((65114.20 + 65114.30) / 2, rel=1e-12),
        PriceKind.MARK: 65117.44,
        PriceKind.INDEX: 65137.76,
    }
    assert {e.ts for e in first if isinstance(e, Quote)} == {1786310817.583}
    parser.parse(delta_1, snap_ts)
    merged = parser.parse(delta_2, delta_ts)
    # The delta carries ask1Price and markPrice only: the bid comes from earlier frames and
    # no index quote is emitted, as the index did not change.
    assert quotes_of(merged) == {
        PriceKind.MID: pytest.approx((65114.20 + 65114.30) / 2, rel=1e-12),
        PriceKind.MARK: 65117.43,
    }
    assert {e.ts for e in merged if isinstance(e, Quote)} == {1786310818.183}


@pytest.mark.shared
def test_linear_index_only_delta() -> None:
    """ETHUSDT's delta carrying only indexPrice 1923.19 gives one INDEX quote."""
    parser = BYBIT.new_parser()
    marker = '"data":{"symbol":"ETHUSDT","indexPrice":"1923.19"}'
    for ts, data in linear_frames():
        events = parser.parse(data, ts)
        if marker in data:
            assert events == [
                Quote("bybit", "ETHUSDT", PriceKind.INDEX, 1923.19, 1786310819.575, ts)
            ]
            return
    pytest.fail("the index-only delta is missing from the recording")


@pytest.mark.shared
def test_linear_public_trade_values() -> None:
    """publicTrade gives each trade's price at its own time T."""
    ts, data = next((ts, d) for ts, d in linear_frames() if "publicTrade" in d)
    assert data == BTC_TRADE
    assert BYBIT.new_parser().parse(data, ts) == [
        Quote("bybit", "BTCUSDT", PriceKind.TRADE, 65114.2, 1786310819.68, ts)
    ]


@pytest.mark.shared
def test_linear_multi_trade_frame() -> None:
    """A frame with several trades gives one quote per trade."""
    ts, data = next((ts, d) for ts, d in linear_frames() if "publicTrade.ETHUSDT" in d)
    quotes = BYBIT.new_parser().parse(data, ts)
    assert len(quotes) == len(json.loads(data)["data"]) > 1
    assert {(q.instrument, q.price, q.ts) for q in quotes if isinstance(q, Quote)} == {
        ("ETHUSDT", 1922.5, 1786310820.346)
    }


@pytest.mark.shared
def test_spot_trade_and_spot_tickers() -> None:
    """Spot trades parse; spot tickers carry no bid/ask, mark or index, so give nothing."""
    frames = recorded_connections("bybit")[SPOT_CONN]
    ts, trade = next((ts, d) for ts, d in frames if "publicTrade.BTCUSDT" in d)
    assert BYBIT_SPOT.new_parser().parse(trade, ts) == [
        Quote("bybit-spot", "BTCUSDT", PriceKind.TRADE, 65140.5, 1786310822.605, ts)
    ]
    ts, ticker = next((ts, d) for ts, d in frames if "tickers.BTCUSDT" in d)
    assert '"usdIndexPrice":"65091.459221"' in ticker
    assert BYBIT_SPOT.new_parser().parse(ticker, ts) == []


@pytest.mark.shared
def test_recorded_subscribe_replies() -> None:
    """Both recorded forms of subscribe success are SUBSCRIBED."""
    for conn in (LINEAR_CONN, SPOT_CONN):
        ts, data = next(
            (ts, d) for ts, d in recorded_connections("bybit")[conn] if '"success"' in d
        )
        assert BYBIT.new_parser().parse(data, ts) == [Status("bybit", StatusKind.SUBSCRIBED)]


# --- documented frames and state ------------------------------------------------------------


def test_delta_before_snapshot_and_missing_side() -> None:
    """A delta for an unseen symbol merges into nothing: no mid until both sides are known."""
    parser = BYBIT.new_parser()
    delta = (
        '{"topic":"tickers.XUSDT","type":"delta","data":{"symbol":"XUSDT","bid1Price":"2"},'
        '"ts":1000}'
    )
    assert parser.parse(delta, RECV_TS) == []
    ask = delta.replace('"bid1Price":"2"', '"ask1Price":"4"')
    assert parser.parse(ask, RECV_TS) == [Quote("bybit", "XUSDT", PriceKind.MID, 3.0, 1.0, RECV_TS)]


def test_snapshot_resets_state_and_empty_strings_are_absent() -> None:
    """A new snapshot replaces the old values; "" means no price."""
    parser = BYBIT.new_parser()
    parser.parse(BTC_SNAPSHOT, RECV_TS)
    snapshot = (
        '{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT",'
        '"bid1Price":"","ask1Price":"10","markPrice":"9"},"ts":2000}'
    )
    assert parser.parse(snapshot, RECV_TS) == [
        Quote("bybit", "BTCUSDT", PriceKind.MARK, 9.0, 2.0, RECV_TS)
    ]
    delta = (
        '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","indexPrice":"8"},'
        '"ts":3000}'
    )
    assert quotes_of(parser.parse(delta, RECV_TS)) == {PriceKind.INDEX: 8.0}


def test_bad_delta_leaves_state_untouched() -> None:
    """A delta that fails to parse does not half-update the symbol's values."""
    parser = BYBIT.new_parser()
    parser.parse(BTC_SNAPSHOT, RECV_TS)
    bad = BTC_MARK_DELTA.replace('"ask1Price":"65114.30"', '"ask1Price":"x"')
    with pytest.raises(FeedParseError):
        parser.parse(bad, RECV_TS)
    assert quotes_of(parser.parse(BTC_MARK_DELTA, RECV_TS))[PriceKind.MARK] == 65117.43


def test_spot_level_one_book_gives_mid() -> None:
    """orderbook.1 gives the mid of the best bid and ask at the frame's ts."""
    assert BYBIT_SPOT.new_parser().parse(SPOT_TOP_OF_BOOK, RECV_TS) == [
        Quote("bybit-spot", "BTCUSDT", PriceKind.MID, 16552.25, 1672304484.978, RECV_TS)
    ]


def test_level_one_book_delta_and_deeper_books() -> None:
    """A level-1 delta moves one side (size 0 removes it); deeper books are ignored."""
    parser = BYBIT_SPOT.new_parser()
    parser.parse(SPOT_TOP_OF_BOOK, RECV_TS)
    delta = SPOT_TOP_OF_BOOK.replace('"snapshot"', '"delta"').replace(
        '"b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]]', '"b":[],"a":[["16601.00","1"]]'
    )
    assert quotes_of(parser.parse(delta, RECV_TS)) == {PriceKind.MID: 16547.25}
    removed = delta.replace('"b":[]', '"b":[["16493.50","0"]]')
    assert parser.parse(removed, RECV_TS) == []
    deeper = SPOT_TOP_OF_BOOK.replace("orderbook.1.", "orderbook.50.")
    assert parser.parse(deeper, RECV_TS) == []


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (PONG_SPOT, Status("bybit", StatusKind.HEARTBEAT)),
        (PONG_LINEAR, Status("bybit", StatusKind.HEARTBEAT)),
        (
            SUBSCRIBE_ERROR,
            Status("bybit", StatusKind.ERROR, detail="subscribe: error:handler not found"),
        ),
        (
            '{"success":true,"ret_msg":"","op":"unsubscribe"}',
            Status("bybit", StatusKind.INFO, detail="'unsubscribe' succeeded"),
        ),
        ('{"something":"else"}', None),
    ],
)
def test_control_frames(frame: str, expected: Status | None) -> None:
    """Pongs are HEARTBEAT, failures ERROR, other successes INFO, unknown frames nothing."""
    assert BYBIT.new_parser().parse(frame, RECV_TS) == ([expected] if expected else [])


@pytest.mark.parametrize(
    "frame",
    [
        b"\x80abc",
        "{",
        "[]",
        '{"topic":5}',
        '{"topic":"publicTrade.BTCUSDT","data":{"p":"1"}}',
        '{"topic":"publicTrade.BTCUSDT","data":[5]}',
        '{"topic":"publicTrade.BTCUSDT","data":[{"s":"BTCUSDT","p":"1"}]}',
        '{"topic":"publicTrade.BTCUSDT","data":[{"s":"BTCUSDT","p":"one","T":1}]}',
        '{"topic":"publicTrade.BTCUSDT","data":[{"s":"BTCUSDT","p":"1","T":1' + "0" * 400 + "}]}",
        '{"topic":"tickers.BTCUSDT","type":"delta","data":[]}',
        '{"topic":"tickers.BTCUSDT","type":"delta","data":{"bid1Price":"1"}}',
        '{"topic":"tickers.BTCUSDT","type":"other","data":{"symbol":"BTCUSDT"}}',
        '{"topic":"tickers.BTCUSDT","type":"delta","ts":"x","data":{"symbol":"BTCUSDT"}}',
        '{"topic":"orderbook.1.BTCUSDT","type":"snapshot","data":{"s":"BTCUSDT","b":[["1"]],"a":[]}}',
        '{"topic":"orderbook.1.BTCUSDT","type":"snapshot","data":{"s":"BTCUSDT","b":5,"a":[]}}',
    ],
)
def test_malformed_frames_raise_feed_parse_error(frame: str | bytes) -> None:
    """Malformed input raises FeedParseError and nothing else."""
    with pytest.raises(FeedParseError):
        BYBIT.new_parser().parse(frame, RECV_TS)


# --- connection plans -----------------------------------------------------------------------


def test_spec_attributes() -> None:
    """Names, endpoints, kinds and the application-level ping."""
    assert (BYBIT.name, BYBIT.default_url) == ("bybit", "wss://stream.bybit.com/v5/public/linear")
    assert (BYBIT_SPOT.name, BYBIT_SPOT.default_url) == (
        "bybit-spot",
        "wss://stream.bybit.com/v5/public/spot",
    )
    assert BYBIT.kinds == set(PriceKind)
    assert BYBIT_SPOT.kinds == {PriceKind.TRADE, PriceKind.MID}
    for spec in SPECS:
        assert spec.idle_ping == '{"op":"ping"}'
        assert spec.idle_ping_s == 20.0


@pytest.mark.parametrize(
    ("spec", "kind", "topic"),
    [
        (BYBIT, PriceKind.TRADE, "publicTrade"),
        (BYBIT, PriceKind.MID, "tickers"),
        (BYBIT, PriceKind.MARK, "tickers"),
        (BYBIT, PriceKind.INDEX, "tickers"),
        (BYBIT_SPOT, PriceKind.TRADE, "publicTrade"),
        (BYBIT_SPOT, PriceKind.MID, "orderbook.1"),
    ],
)
def test_plan_subscribes_topics(spec: VenueSpec, kind: PriceKind, topic: str) -> None:
    """One connection to the given URL, subscribing ``topic.SYMBOL`` for each instrument."""
    [plan] = spec.plan("wss://example.test/ws", ["BTCUSDT", "ETHUSDT"], kind)
    assert plan.url == "wss://example.test/ws"
    assert plan.subscribe == (f'{{"op":"subscribe","args":["{topic}.BTCUSDT","{topic}.ETHUSDT"]}}',)
    assert plan.instruments == ("BTCUSDT", "ETHUSDT")


def test_plan_chunks_ten_args_per_frame() -> None:
    """23 instruments need subscribe frames of 10, 10 and 3 args, in order."""
    symbols = [f"C{i}USDT" for i in range(23)]
    [plan] = BYBIT_SPOT.plan(BYBIT_SPOT.default_url, symbols, PriceKind.TRADE)
    frames = [json.loads(frame) for frame in plan.subscribe]
    assert [len(frame["args"]) for frame in frames] == [10, 10, 3]
    assert {frame["op"] for frame in frames} == {"subscribe"}
    assert [arg for frame in frames for arg in frame["args"]] == [
        f"publicTrade.{s}" for s in symbols
    ]


def test_plan_of_nothing_and_unknown_kind() -> None:
    """No instruments, no connection; spot has no mark price."""
    assert BYBIT.plan(BYBIT.default_url, [], PriceKind.TRADE) == []
    with pytest.raises(ConfigError, match="bybit-spot: price kind 'mark'"):
        BYBIT_SPOT.plan(BYBIT_SPOT.default_url, ["BTCUSDT"], PriceKind.MARK)


def test_resubscribe_frames() -> None:
    """Resubscribe is unsubscribe then subscribe, each chunked at 10 args."""
    assert BYBIT.resubscribe is not None
    assert BYBIT.resubscribe(["BTCUSDT"], PriceKind.MARK) == [
        '{"op":"unsubscribe","args":["tickers.BTCUSDT"]}',
        '{"op":"subscribe","args":["tickers.BTCUSDT"]}',
    ]
    frames = BYBIT.resubscribe([f"C{i}USDT" for i in range(11)], PriceKind.TRADE)
    assert [(json.loads(f)["op"], len(json.loads(f)["args"])) for f in frames] == [
        ("unsubscribe", 10),
        ("unsubscribe", 1),
        ("subscribe", 10),
        ("subscribe", 1),
    ]


# --- fuzzing --------------------------------------------------------------------------------


class TestFuzz(fuzz_tests(SPECS, SAMPLES)):
    """Fuzzing of the linear and the spot parser (see tests.fuzz.fuzz_tests)."""

    def envelopes(self, value: object) -> list[object]:
        """Bare, and as the data of each topic's snapshot and delta."""
        return [value] + [
            {"topic": topic, "type": update, "data": value}
            for topic in ("tickers.X", "publicTrade.X", "orderbook.1.X")
            for update in ("snapshot", "delta")
        ]


@settings(max_examples=400)
@given(raws=st.lists(mutated_frames(SAMPLES), max_size=8))
def test_fuzz_mutated_frame_sequences(raws: list[str]) -> None:
    """Sequences of mutated real frames through one (stateful) parser are handled or rejected."""
    parser: Parser = BYBIT.new_parser()
    for raw in [BTC_SNAPSHOT, *raws, BTC_MARK_DELTA]:
        parse_or_reject(parser.parse, raw)
