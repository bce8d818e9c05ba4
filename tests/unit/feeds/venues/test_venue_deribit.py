"""Deribit protocol module: recorded option tickers, documented frames, plans, fuzzing.

The recording (2021) subscribed ``.raw`` channels; the parser reads any interval suffix, while
plans always ask for ``.100ms`` (``.raw`` needs authentication today).
"""

from __future__ import annotations

import json

import pytest

from feeds.events import (
    FeedEvent,
    FeedParseError,
    Greeks,
    OptionQuote,
    PriceKind,
    Quote,
    Reply,
    Status,
    StatusKind,
)
from feeds.venues.deribit import DERIBIT, DeribitParser, is_option, plan, resubscribe
from tests.fuzz import fuzz_tests
from tests.recorded import recorded_frames

URL = "wss://www.deribit.com/ws/api/v2"


@pytest.fixture(scope="module")
def frames() -> list[tuple[float, str]]:
    return recorded_frames("deribit")


def ticker_frame(frames: list[tuple[float, str]], instrument: str) -> tuple[float, str]:
    """The first recorded ticker notification of an instrument."""
    channel = f'"channel":"ticker.{instrument}.raw"'
    return next(f for f in frames if channel in f[1])


# --- recorded frames -------------------------------------------------------------------------


@pytest.mark.shared
def test_every_recorded_frame_parses(frames: list[tuple[float, str]]) -> None:
    """All frames parse; the subscribe result is SUBSCRIBED; book frames give nothing."""
    parser = DeribitParser()
    for recv_ts, data in frames:
        events = parser.parse(data, recv_ts)
        if '"channel":"book.' in data:
            assert events == []
    first = parser.parse(frames[0][1], 0.0)
    assert len(first) == 1
    assert first[0].kind is StatusKind.SUBSCRIBED
    assert "ticker.ETH-30JUL21-2800-C.raw" in first[0].detail.split(",")


@pytest.mark.shared
def test_recorded_call_ticker(frames: list[tuple[float, str]]) -> None:
    """ETH-30JUL21-2800-C: mark, index, mid, last, IVs and greeks exactly as in the raw text."""
    recv_ts, data = ticker_frame(frames, "ETH-30JUL21-2800-C")
    name, ts = "ETH-30JUL21-2800-C", 1626993723.632
    assert DeribitParser().parse(data, recv_ts) == [
        Quote("deribit", name, PriceKind.MARK, 0.001972, ts, recv_ts),
        Quote("deribit", name, PriceKind.INDEX, 2006.72, ts, recv_ts),
        Quote("deribit", name, PriceKind.MID, (0.0015 + 0.0025) / 2, ts, recv_ts),
        Quote("deribit", name, PriceKind.TRADE, 0.002, ts, recv_ts),
        OptionQuote(
            venue="deribit",
            instrument=name,
            ts=ts,
            recv_ts=recv_ts,
            mark_price=0.001972,
            mark_iv=120.74,
            bid_iv=115.62,
            ask_iv=125.63,
            underlying_price=2003.61,
            index_price=2006.72,
            greeks=Greeks(delta=0.03127, gamma=0.0002, vega=0.20072, theta=-1.64029, rho=0.01188),
        ),
    ]


@pytest.mark.shared
def test_recorded_put_without_bid_or_ask(frames: list[tuple[float, str]]) -> None:
    """ETH-27AUG21-4000-P has no bid/ask (0.0): no MID, and its 0.0 bid/ask IVs become None."""
    recv_ts, data = ticker_frame(frames, "ETH-27AUG21-4000-P")
    events = DeribitParser().parse(data, recv_ts)
    assert [e.kind for e in events if isinstance(e, Quote)] == [
        PriceKind.MARK,
        PriceKind.INDEX,
        PriceKind.TRADE,
    ]
    option = events[-1]
    assert isinstance(option, OptionQuote)
    assert (option.mark_price, option.mark_iv, option.bid_iv, option.ask_iv) == (
        1.005718,
        117.2,
        None,
        None,
    )
    assert option.greeks == Greeks(-0.95701, 0.00013, 0.56891, -0.94207, -3.80566)
    assert option.underlying_price == 1999.98


def iv(value: float) -> float | None:
    return value if value > 0 else None


@pytest.mark.shared
def test_recorded_tickers_match_the_raw_text(frames: list[tuple[float, str]]) -> None:
    """For every recorded ticker, the option quote equals the fields json reads from the text."""
    parser = DeribitParser()
    tickers = [(ts, json.loads(data)) for ts, data in frames if '"channel":"ticker.' in data]
    assert tickers
    for recv_ts, message in tickers:
        d = message["params"]["data"]
        option = parser.parse(json.dumps(message), recv_ts)[-1]
        assert option == OptionQuote(
            venue="deribit",
            instrument=d["instrument_name"],
            ts=d["timestamp"] / 1000,
            recv_ts=recv_ts,
            mark_price=d["mark_price"],
            mark_iv=iv(d["mark_iv"]),
            bid_iv=iv(d["bid_iv"]),
            ask_iv=iv(d["ask_iv"]),
            underlying_price=d["underlying_price"],
            index_price=d["index_price"],
            greeks=Greeks(**d["greeks"]),
        )


# --- documented frames -----------------------------------------------------------------------

# Shaped after the Deribit docs' ticker notification for a perpetual, on a .100ms channel.
PERPETUAL = """{"jsonrpc":"2.0","method":"subscription","params":{
 "channel":"ticker.BTC-PERPETUAL.100ms","data":{"timestamp":1623060194301,
 "stats":{"volume_usd":284061480,"volume":7871.02139035,"price_change":0.7229,"low":35213.5,
 "high":36824.5},"state":"open","settlement_price":36169.49,"open_interest":502097590,
 "min_price":35898.37,"max_price":36991.72,"mark_price":36446.51,"last_price":36457.5,
 "interest_value":1.7362511643080387,"instrument_name":"BTC-PERPETUAL","index_price":36441.64,
 "funding_8h":0.0000211,"estimated_delivery_price":36441.64,"current_funding":0,
 "best_bid_price":36442.5,"best_bid_amount":5000,"best_ask_price":36443,"best_ask_amount":100}}}"""
TEST_REQUEST = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
HEARTBEAT = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
ERROR = """{"jsonrpc":"2.0","id":7,"error":{"message":"Invalid params",
 "data":{"reason":"wrong format","param":"channels"},"code":-32602},
 "usIn":1535037392434763,"usOut":1535037392448119,"usDiff":13356,"testnet":false}"""
SET_HEARTBEAT_ACK = '{"jsonrpc":"2.0","id":1,"result":"ok","usIn":1,"usOut":2,"usDiff":1}'
TEST_ACK = '{"jsonrpc":"2.0","id":2000000,"result":{"version":"1.2.26"}}'
SUBSCRIBE_ACK = '{"jsonrpc":"2.0","id":2,"result":["ticker.BTC-PERPETUAL.100ms"]}'
UNSUBSCRIBE_ACK = '{"jsonrpc":"2.0","id":1000000,"result":["ticker.BTC-PERPETUAL.100ms"]}'
DOCUMENTED = [
    PERPETUAL,
    TEST_REQUEST,
    HEARTBEAT,
    ERROR,
    SET_HEARTBEAT_ACK,
    SUBSCRIBE_ACK,
    UNSUBSCRIBE_ACK,
]


def test_perpetual_ticker() -> None:
    """A perpetual gives mark, index, mid and last quotes, and an OptionQuote without greeks."""
    ts, name = 1623060194.301, "BTC-PERPETUAL"
    assert DeribitParser().parse(PERPETUAL, 5.0) == [
        Quote("deribit", name, PriceKind.MARK, 36446.51, ts, 5.0),
        Quote("deribit", name, PriceKind.INDEX, 36441.64, ts, 5.0),
        Quote("deribit", name, PriceKind.MID, (36442.5 + 36443) / 2, ts, 5.0),
        Quote("deribit", name, PriceKind.TRADE, 36457.5, ts, 5.0),
        OptionQuote("deribit", name, ts, 5.0, 36446.51, None, None, None, None, 36441.64, None),
    ]


def test_instrument_from_channel_of_any_interval() -> None:
    """Without instrument_name in data, the name comes from ticker.<name>.<interval>."""
    for interval in ("100ms", "raw", "agg2"):
        frame = PERPETUAL.replace('"instrument_name":"BTC-PERPETUAL",', "").replace(
            ".100ms", f".{interval}"
        )
        assert {e.instrument for e in DeribitParser().parse(frame, 0.0)} == {"BTC-PERPETUAL"}


def test_ticker_without_last_price() -> None:
    """last_price null (never traded): no TRADE quote."""
    frame = PERPETUAL.replace('"last_price":36457.5', '"last_price":null')
    kinds = [e.kind for e in DeribitParser().parse(frame, 0.0) if isinstance(e, Quote)]
    assert kinds == [PriceKind.MARK, PriceKind.INDEX, PriceKind.MID]


def test_test_request_is_answered_with_public_test() -> None:
    """Each test_request yields a Reply with a public/test request; ids do not repeat."""
    parser = DeribitParser()
    [first] = parser.parse(TEST_REQUEST, 0.0)
    [second] = parser.parse(TEST_REQUEST.encode(), 0.0)
    assert first == Reply('{"jsonrpc":"2.0","id":2000000,"method":"public/test","params":{}}')
    assert isinstance(second, Reply)
    assert json.loads(second.payload) == {
        "jsonrpc": "2.0",
        "id": 2000001,
        "method": "public/test",
        "params": {},
    }


def test_control_frames() -> None:
    """Heartbeat, errors, acks: status events; plain results give nothing."""
    parser = DeribitParser()
    assert parser.parse(HEARTBEAT, 0.0) == [Status("deribit", StatusKind.HEARTBEAT, "heartbeat")]
    assert parser.parse(ERROR, 0.0) == [
        Status("deribit", StatusKind.ERROR, "request 7: Invalid params (code -32602)")
    ]
    assert parser.parse(SUBSCRIBE_ACK, 0.0) == [
        Status("deribit", StatusKind.SUBSCRIBED, "ticker.BTC-PERPETUAL.100ms")
    ]
    assert parser.parse(UNSUBSCRIBE_ACK, 0.0) == [
        Status("deribit", StatusKind.INFO, "unsubscribed ticker.BTC-PERPETUAL.100ms")
    ]
    assert parser.parse(SET_HEARTBEAT_ACK, 0.0) == []
    assert parser.parse(TEST_ACK, 0.0) == []


@pytest.mark.parametrize(
    "frame",
    [
        PERPETUAL.replace('"mark_price":36446.51,', ""),
        PERPETUAL.replace("36446.51", '"36446.51"'),
        PERPETUAL.replace("36446.51", "1e999"),
        PERPETUAL.replace('"instrument_name":"BTC-PERPETUAL",', "").replace(".100ms", ""),
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.100ms"}}',
        '{"jsonrpc":"2.0","method":"heartbeat"}',
        '{"jsonrpc":"2.0","id":3,"result":[1,2]}',
        '{"jsonrpc":"2.0"}',
        "[]",
    ],
)
def test_malformed_frames_raise(frame: str) -> None:
    """Missing mark, string or huge numbers, bad channels, missing params: FeedParseError."""
    with pytest.raises(FeedParseError):
        DeribitParser().parse(frame, 0.0)


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("BTC-27JUN25-100000-C", True),
        ("ETH-30JUL21-2800-P", True),
        ("XRP_USDC-30MAY25-2d2-C", True),
        ("BTC-PERPETUAL", False),
        ("BTC-27JUN25", False),
        ("BTC_USDC", False),
    ],
)
def test_is_option(name: str, option: bool) -> None:
    assert is_option(name) is option


# --- plans -----------------------------------------------------------------------------------


def test_spec() -> None:
    """Name, endpoint, kinds, heartbeat set-up on connect, no idle ping."""
    assert DERIBIT.name == "deribit"
    assert DERIBIT.default_url == URL
    assert DERIBIT.kinds == frozenset(
        {PriceKind.TRADE, PriceKind.MID, PriceKind.MARK, PriceKind.INDEX}
    )
    assert DERIBIT.idle_ping is None
    assert DERIBIT.on_connect == (
        '{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":10}}',
    )
    assert isinstance(DERIBIT.new_parser(), DeribitParser)


@pytest.mark.parametrize("kind", list(PriceKind))
def test_plan_subscribes_100ms_tickers(kind: PriceKind) -> None:
    """Any kind subscribes ticker.<name>.100ms (never .raw), duplicates removed."""
    names = ["BTC-PERPETUAL", "BTC-27JUN25-100000-C", "BTC-PERPETUAL"]
    [conn] = DERIBIT.plan(URL, names, kind)
    assert conn.url == URL
    assert conn.instruments == ("BTC-PERPETUAL", "BTC-27JUN25-100000-C")
    assert conn.subscribe == (
        '{"jsonrpc":"2.0","id":2,"method":"public/subscribe","params":{"channels":'
        '["ticker.BTC-PERPETUAL.100ms","ticker.BTC-27JUN25-100000-C.100ms"]}}',
    )


def test_plan_batches_channels_and_connections() -> None:
    """600 instruments: connections of 500 and 100, frames of at most 100 channels, ids 2, 3..."""
    names = [f"BTC-1JAN30-{i}-C" for i in range(600)]
    plans = plan(URL, names, PriceKind.MARK)
    assert [len(p.instruments) for p in plans] == [500, 100]
    first = [json.loads(frame) for frame in plans[0].subscribe]
    assert [f["id"] for f in first] == [2, 3, 4, 5, 6]
    channels = [c for f in first for c in f["params"]["channels"]]
    assert channels == [f"ticker.{n}.100ms" for n in names[:500]]
    assert all(
        c.endswith(".100ms")
        for p in plans
        for f in p.subscribe
        for c in json.loads(f)["params"]["channels"]
    )


def test_resubscribe_frames() -> None:
    """Unsubscribe then subscribe, with ids the parser tells apart."""
    assert DERIBIT.resubscribe is not None
    assert DERIBIT.resubscribe(["BTC-PERPETUAL"], PriceKind.MARK) == [
        '{"jsonrpc":"2.0","id":1000000,"method":"public/unsubscribe",'
        '"params":{"channels":["ticker.BTC-PERPETUAL.100ms"]}}',
        '{"jsonrpc":"2.0","id":1000001,"method":"public/subscribe",'
        '"params":{"channels":["ticker.BTC-PERPETUAL.100ms"]}}',
    ]
    assert resubscribe([], PriceKind.TRADE)[1].endswith('{"channels":[]}}')


def test_plan_without_instruments() -> None:
    """An empty instrument list gives no connection."""
    assert plan(URL, [], PriceKind.TRADE) == []


# --- fuzzing ---------------------------------------------------------------------------------


class TestFuzz(fuzz_tests([DERIBIT], DOCUMENTED, "deribit")):
    """Fuzzing of the Deribit parser (see tests.fuzz.fuzz_tests)."""

    @staticmethod
    def worth_mutating(frame: str) -> bool:
        """Ticker notifications and the subscribe result, not order books."""
        return '"channel":"book.' not in frame

    def check(self, events: list[FeedEvent]) -> None:
        """The only reply a frame can ask for is a heartbeat's public/test."""
        for event in events:
            if isinstance(event, Reply):
                assert json.loads(event.payload)["method"] == "public/test"


def test_timestamp_beyond_the_float_range_is_a_parse_error() -> None:
    """Found by fuzzing: a 400-digit timestamp raised OverflowError instead of FeedParseError."""
    frame = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms",'
        '"data":{"timestamp":1' + "0" * 400 + ',"mark_price":36446.51,"index_price":36441.64,'
        '"instrument_name":"BTC-PERPETUAL"}}}'
    )
    with pytest.raises(FeedParseError):
        DERIBIT.new_parser().parse(frame, 1.0)
