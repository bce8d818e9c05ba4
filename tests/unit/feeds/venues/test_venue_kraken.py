"""Kraken v2 protocol module.

The recording ``kraken.jsonl`` is the old v1 API (JSON arrays), which riskmon does not speak:
the frames below are written from the Kraken websocket v2 documentation (trade, ticker,
heartbeat, status and subscribe-ack examples). The v1 recording is only used to check that v1
frames are refused with ``FeedParseError`` (a v1 frame on a v2 connection means a wrong URL).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from feeds.events import FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venues.kraken import KRAKEN, KrakenParser, plan, resubscribe
from monitor.errors import ConfigError
from tests.fuzz import fuzz_tests
from tests.recorded import recorded_frames

URL = "wss://ws.kraken.com/v2"


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# Written from the v2 docs' examples (trade snapshot and update, ticker, control messages).
TRADE_SNAPSHOT = """{"channel":"trade","type":"snapshot","data":[
 {"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,"ord_type":"limit",
  "trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},
 {"symbol":"MATIC/USD","side":"buy","price":0.5148,"qty":1136.19677815,"ord_type":"limit",
  "trade_id":4665847,"timestamp":"2023-09-25T07:49:36.925603Z"}]}"""
TRADE_UPDATE = """{"channel":"trade","type":"update","data":[
 {"symbol":"BTC/USDT","side":"buy","price":118832.9,"qty":0.00409283,"ord_type":"market",
  "trade_id":9622656,"timestamp":"2025-07-23T04:41:46.919844Z"}]}"""
TICKER = """{"channel":"ticker","type":"snapshot","data":[
 {"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,
  "last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,
  "change":-0.00017,"change_pct":-0.17}]}"""
TICKER_WITH_TIME = """{"channel":"ticker","type":"update","data":[
 {"symbol":"BTC/USD","bid":64000.1,"bid_qty":1.2,"ask":64000.3,"ask_qty":0.4,"last":64000.2,
  "volume":1.0,"vwap":1.0,"low":1.0,"high":1.0,"change":0.0,"change_pct":0.0,
  "timestamp":"2025-06-01T12:00:00.123456Z"}]}"""
HEARTBEAT = '{"channel":"heartbeat"}'
STATUS = """{"channel":"status","type":"update","data":[{"api_version":"v2",
 "connection_id":13834774380200032777,"system":"online","version":"2.0.0"}]}"""
SUBSCRIBE_ACK = """{"method":"subscribe","result":{"channel":"ticker","snapshot":true,
 "symbol":"ALGO/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z",
 "time_out":"2023-09-25T09:04:31.742648Z"}"""
SUBSCRIBE_ERROR = """{"error":"Currency pair not supported XBT/USD","method":"subscribe",
 "success":false,"symbol":"XBT/USD","time_in":"2023-09-25T09:04:31.742599Z",
 "time_out":"2023-09-25T09:04:31.742648Z"}"""
UNSUBSCRIBE_ACK = """{"method":"unsubscribe","result":{"channel":"trade","symbol":"BTC/USD"},
 "success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"""
PONG = """{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",
 "time_out":"2023-09-24T14:10:23.799703Z"}"""
BOOK = """{"channel":"book","type":"snapshot",
 "data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1}]}"""
DOCUMENTED = [
    TRADE_SNAPSHOT,
    TRADE_UPDATE,
    TICKER,
    TICKER_WITH_TIME,
    HEARTBEAT,
    STATUS,
    SUBSCRIBE_ACK,
    SUBSCRIBE_ERROR,
    UNSUBSCRIBE_ACK,
    PONG,
]


def parse(frame: str, recv_ts: float = 7.0) -> list[Any]:
    return KrakenParser().parse(frame, recv_ts)


# --- documented v2 frames ----------------------------------------------------------------------


def test_trade_snapshot() -> None:
    """Each snapshot trade is a TRADE quote at the trade's own timestamp, oldest first, marked
    as a snapshot (replayed after a subscribe, so it never makes the pair fresh)."""
    first, second = ts("2023-09-25T07:48:36.925533Z"), ts("2023-09-25T07:49:36.925603Z")
    assert parse(TRADE_SNAPSHOT) == [
        Quote("kraken", "MATIC/USD", PriceKind.TRADE, 0.5147, first, 7.0, snapshot=True),
        Quote("kraken", "MATIC/USD", PriceKind.TRADE, 0.5148, second, 7.0, snapshot=True),
    ]


def test_trade_update() -> None:
    """A trade update: price as a JSON number, instrument the v2 symbol."""
    assert parse(TRADE_UPDATE, 1.5) == [
        Quote(
            "kraken", "BTC/USDT", PriceKind.TRADE, 118832.9, ts("2025-07-23T04:41:46.919844Z"), 1.5
        )
    ]


def test_ticker_without_timestamp_uses_recv_ts() -> None:
    """Ticker snapshot -> MID from bid/ask at the receive time, marked snapshot; its 'last'
    is not a trade print, so no TRADE quote (a trade symbol is priced by the trade channel)."""
    mid = (0.10025 + 0.10036) / 2
    assert parse(TICKER, 42.0) == [
        Quote("kraken", "ALGO/USD", PriceKind.MID, mid, 42.0, 42.0, snapshot=True)
    ]


def test_ticker_with_timestamp_uses_it() -> None:
    """Newer v2 servers add an RFC 3339 timestamp to ticker items: it becomes the event time."""
    [mid] = parse(TICKER_WITH_TIME)
    assert (mid.kind, mid.price, mid.snapshot) == (PriceKind.MID, pytest.approx(64000.2), False)
    assert mid.ts == pytest.approx(ts("2025-06-01T12:00:00.123456Z"))


def test_ticker_without_a_book_side_gives_nothing() -> None:
    """No ask: no mid; 'last' never becomes a quote."""
    frame = TICKER.replace('"ask":0.10036,', "")
    assert parse(frame) == []


def test_non_positive_trade_price_is_handed_on() -> None:
    """A trade at price 0 is a quote (the router counts and drops it), in event-time order."""
    frame = TRADE_SNAPSHOT.replace('"price":0.5147', '"price":0')
    assert [q.price for q in parse(frame)] == [0.0, 0.5148]


def test_acks_of_other_methods_are_ignored() -> None:
    """Acks of methods riskmon never sends (e.g. add_order) give nothing."""
    assert parse('{"method":"add_order","success":true,"result":{}}') == []


def test_control_frames() -> None:
    """Heartbeat, status, acks and pong become status events; book frames are ignored."""
    assert parse(HEARTBEAT) == [Status("kraken", StatusKind.HEARTBEAT)]
    assert parse(STATUS) == [
        Status("kraken", StatusKind.INFO, "system=online api=v2 version=2.0.0")
    ]
    assert parse(SUBSCRIBE_ACK) == [Status("kraken", StatusKind.SUBSCRIBED, "ticker", "ALGO/USD")]
    assert parse(SUBSCRIBE_ERROR) == [
        Status("kraken", StatusKind.ERROR, "Currency pair not supported XBT/USD", "XBT/USD")
    ]
    assert parse(UNSUBSCRIBE_ACK) == [
        Status("kraken", StatusKind.INFO, "unsubscribed trade", "BTC/USD")
    ]
    assert parse(PONG) == [Status("kraken", StatusKind.HEARTBEAT, "pong")]
    assert parse(BOOK) == []


@pytest.mark.parametrize(
    "frame",
    [
        TRADE_UPDATE.replace("118832.9", '"118832.9"'),  # v1 habit: a decimal string
        TRADE_UPDATE.replace("118832.9", "1e999"),
        TRADE_UPDATE.replace('"2025-07-23T04:41:46.919844Z"', '"1690000000.5"'),
        TICKER.replace('"symbol":"ALGO/USD",', ""),
        '{"channel":"trade","type":"update"}',
        '{"event":"heartbeat"}',
        "{}",
        "[]",
    ],
)
def test_malformed_frames_raise(frame: str) -> None:
    """String prices, out-of-range numbers, epoch timestamps, missing fields: FeedParseError."""
    with pytest.raises(FeedParseError):
        parse(frame)


def test_v1_array_frame_is_refused() -> None:
    """A v1 data frame (a JSON array) raises FeedParseError that names the likely cause."""
    v1 = '[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]'
    with pytest.raises(FeedParseError, match="v1"):
        parse(v1)


@pytest.mark.shared
def test_every_v1_recorded_frame_is_refused() -> None:
    """Every frame of the v1 recording (arrays, and v1 'event' objects) raises FeedParseError."""
    frames = recorded_frames("kraken")
    assert frames
    parser = KrakenParser()
    for recv_ts, data in frames:
        with pytest.raises(FeedParseError):
            parser.parse(data, recv_ts)


# --- plans -----------------------------------------------------------------------------------


def test_spec() -> None:
    """Name, endpoint, kinds, liveness settings."""
    assert KRAKEN.name == "kraken"
    assert KRAKEN.default_url == URL
    assert KRAKEN.kinds == frozenset({PriceKind.TRADE, PriceKind.MID})
    assert KRAKEN.idle_ping == '{"method":"ping"}'
    assert KRAKEN.on_connect == ()
    assert isinstance(KRAKEN.new_parser(), KrakenParser)


@pytest.mark.parametrize(
    ("kind", "channel"), [(PriceKind.TRADE, "trade"), (PriceKind.MID, "ticker")]
)
def test_plan_subscribe_frame(kind: PriceKind, channel: str) -> None:
    """One subscribe frame with the channel for the price kind and all symbols."""
    [conn] = KRAKEN.plan(URL, ["BTC/USD", "ETH/USD", "BTC/USD"], kind)
    assert conn.url == URL
    assert conn.instruments == ("BTC/USD", "ETH/USD")
    params = {"channel": channel, "symbol": ["BTC/USD", "ETH/USD"]}
    if channel == "ticker":  # the mid follows the best bid and offer, not only trades
        params["event_trigger"] = "bbo"
    assert [json.loads(frame) for frame in conn.subscribe] == [
        {"method": "subscribe", "params": params}
    ]


def test_plan_splits_large_sets() -> None:
    """230 symbols -> connections of at most 100, covering every symbol once."""
    symbols = [f"S{i}/USD" for i in range(230)]
    plans = plan(URL, symbols, PriceKind.TRADE)
    assert [len(p.instruments) for p in plans] == [100, 100, 30]
    assert [json.loads(p.subscribe[0])["params"]["symbol"] for p in plans] == [
        list(p.instruments) for p in plans
    ]


@pytest.mark.parametrize(
    "url", ["wss://ws.kraken.com", "wss://ws.kraken.com/", "wss://beta-ws.kraken.com"]
)
def test_the_v1_endpoint_is_refused_with_the_url_to_write(url: str) -> None:
    """The v1 root speaks another protocol: the error says to add /v2."""
    with pytest.raises(ConfigError, match=r'write url = "wss://(beta-)?ws\.kraken\.com/v2"'):
        plan(url, ["BTC/USD"], PriceKind.TRADE)
    assert KRAKEN.endpoint(URL) == URL
    assert KRAKEN.endpoint("ws://127.0.0.1:9000") == "ws://127.0.0.1:9000"  # a local venue


def test_plan_rejects_mark() -> None:
    """Kraken spot has no mark price."""
    with pytest.raises(ConfigError, match="kraken"):
        plan(URL, ["BTC/USD"], PriceKind.MARK)


def test_resubscribe_frames() -> None:
    """Unsubscribe then subscribe."""
    assert KRAKEN.resubscribe is not None
    assert KRAKEN.resubscribe(["BTC/USD"], PriceKind.MID) == [
        '{"method":"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USD"]}}',
        '{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"],'
        '"event_trigger":"bbo"}}',
    ]
    assert resubscribe(["ETH/USD"], PriceKind.TRADE)[0].startswith('{"method":"unsubscribe"')


# --- fuzzing ---------------------------------------------------------------------------------


class TestFuzz(fuzz_tests([KRAKEN], DOCUMENTED)):
    """Fuzzing of the Kraken parser (see tests.fuzz.fuzz_tests)."""

    unnamed_ok = True  # an empty symbol is passed through, not rejected


def test_timestamps_are_utc() -> None:
    """Sanity check of the oracle used above: ts() reads Z as UTC."""
    assert (
        ts("1970-01-01T00:00:01Z") == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp() == 1.0
    )
