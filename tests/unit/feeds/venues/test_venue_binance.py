"""Tests for feeds.venues.binance: recorded frames, documented frames, plans and fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venue import VenueSpec
from feeds.venues.binance import BINANCE, BINANCE_USDM, MAX_LIFETIME_S, BinanceParser
from monitor.errors import ConfigError
from tests.fuzz import FUZZ, fuzz_tests, mutated_frames
from tests.recorded import first_frame, recorded_connections

RECV_TS = 1_700_000_000.5

# Frames as documented by Binance, for what the 2021 recordings lack.
MARK_PRICE = (
    '{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
    '"ap":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167",'
    '"T":1562306400000}'
)
SPOT_TRADE = (
    '{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
    '"T":1672515782136,"m":true,"M":true}'
)
RAW_BOOK_TICKER = (
    '{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000",'
    '"A":"40.66000000"}'
)
# Verbatim from the recordings (binance.jsonl, binance_futures.jsonl), so fuzzing runs without them.
SPOT_AGG_TRADE = (
    '{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT",'
    '"a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,'
    '"T":1633998523963,"m":false,"M":true}}'
)
FUTURES_BOOK_TICKER = (
    '{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT",'
    '"b":"7.6110","B":"2","a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}}'
)
SAMPLES = [
    MARK_PRICE,
    SPOT_TRADE,
    RAW_BOOK_TICKER,
    SPOT_AGG_TRADE,
    FUTURES_BOOK_TICKER,
    '{"result":null,"id":2}',
    '{"code":2,"msg":"Invalid request: unknown stream","id":7}',
]
SPECS = [BINANCE, BINANCE_USDM]


def parse(spec: VenueSpec, raw: str | bytes, recv_ts: float = RECV_TS) -> list[FeedEvent]:
    return list(spec.new_parser().parse(raw, recv_ts))


# --- recorded frames ------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "spec"), [("binance", BINANCE), ("binance_futures", BINANCE_USDM)]
)
def test_every_recorded_frame_parses(name: str, spec: VenueSpec) -> None:
    """Every received frame parses without error, and trades and mids come out."""
    kinds: set[PriceKind] = set()
    for frames in recorded_connections(name).values():
        parser = spec.new_parser()
        for ts, data in frames:
            kinds.update(e.kind for e in parser.parse(data, ts) if isinstance(e, Quote))
    assert kinds == {PriceKind.TRADE, PriceKind.MID}


@pytest.mark.shared
def test_spot_first_agg_trade() -> None:
    """aggTrade gives the trade price at the trade time T, in seconds."""
    ts, data = first_frame("binance", '"e":"aggTrade"')
    assert data == SPOT_AGG_TRADE
    assert parse(BINANCE, data, ts) == [
        Quote("binance", "NKNUSDT", PriceKind.TRADE, 0.3528, 1633998523.963, ts)
    ]


@pytest.mark.shared
def test_spot_first_book_ticker_uses_receive_time() -> None:
    """Spot bookTicker carries no time: the mid is stamped with the receive time."""
    ts, data = first_frame("binance", "@bookTicker")
    assert '"b":"0.35210000"' in data
    assert '"a":"0.35260000"' in data
    [quote] = parse(BINANCE, data, ts)
    assert isinstance(quote, Quote)
    assert (quote.instrument, quote.kind, quote.ts, quote.recv_ts) == (
        "NKNUSDT",
        PriceKind.MID,
        1633998513.377805,
        1633998513.377805,
    )
    assert quote.price == pytest.approx(0.35235, rel=1e-12)


@pytest.mark.shared
def test_futures_book_ticker_without_mark_price() -> None:
    """A futures bookTicker gives only a mid, stamped with its transaction time T."""
    ts, data = first_frame("binance_futures", "@bookTicker")
    assert data == FUTURES_BOOK_TICKER
    [quote] = parse(BINANCE_USDM, data, ts)
    assert isinstance(quote, Quote)
    assert (quote.venue, quote.instrument, quote.kind, quote.ts) == (
        "binance-usdm",
        "SUSHIUSDT",
        PriceKind.MID,
        1626992741.012,
    )
    assert quote.price == pytest.approx(7.6115, rel=1e-12)


@pytest.mark.shared
def test_futures_agg_trade_uses_trade_time_not_event_time() -> None:
    """Futures aggTrade: price p at T (1626992741421), not at the later event time E."""
    ts, data = first_frame("binance_futures", "@aggTrade")
    assert '"E":1626992741575' in data
    assert parse(BINANCE_USDM, data, ts) == [
        Quote("binance-usdm", "CTKUSDT", PriceKind.TRADE, 1.011, 1626992741.421, ts)
    ]


@pytest.mark.shared
@pytest.mark.parametrize("marker", ["@depth@100ms", "@kline_1m"])
def test_depth_and_kline_give_nothing(marker: str) -> None:
    """Depth and kline frames are not prices the monitor uses."""
    for name, spec in (("binance", BINANCE), ("binance_futures", BINANCE_USDM)):
        ts, data = first_frame(name, marker)
        assert parse(spec, data, ts) == []


# --- documented frames ----------------------------------------------------------------------


def test_mark_price_update_gives_mark_and_index_at_event_time() -> None:
    """markPriceUpdate: p is the mark, i the index, both at E (T is the next funding time)."""
    assert parse(BINANCE_USDM, MARK_PRICE) == [
        Quote("binance-usdm", "BTCUSDT", PriceKind.MARK, 11794.15, 1562305380.0, RECV_TS),
        Quote("binance-usdm", "BTCUSDT", PriceKind.INDEX, 11784.62659091, 1562305380.0, RECV_TS),
    ]


def test_wrapped_mark_price_update() -> None:
    """The combined-stream wrapper is removed before parsing."""
    wrapped = f'{{"stream":"btcusdt@markPrice@1s","data":{MARK_PRICE}}}'
    assert parse(BINANCE_USDM, wrapped) == parse(BINANCE_USDM, MARK_PRICE)


def test_spot_trade_event() -> None:
    """A raw (unwrapped) trade event gives the trade price at T."""
    assert parse(BINANCE, SPOT_TRADE) == [
        Quote("binance", "BNBBTC", PriceKind.TRADE, 0.001, 1672515782.136, RECV_TS)
    ]


def test_raw_book_ticker_and_bytes() -> None:
    """A raw bookTicker parses the same from text and from UTF-8 bytes."""
    [quote] = parse(BINANCE, RAW_BOOK_TICKER)
    assert isinstance(quote, Quote)
    assert quote.price == pytest.approx((25.3519 + 25.3652) / 2, rel=1e-12)
    assert parse(BINANCE, RAW_BOOK_TICKER.encode()) == [quote]


def test_empty_book_side_gives_no_mid() -> None:
    """A zero bid (no bids on the book) gives no mid rather than a bogus one."""
    frame = '{"u":1,"s":"XYZUSDT","b":"0.00000000","B":"0","a":"1.5","A":"2"}'
    assert parse(BINANCE, frame) == []


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"result":null,"id":2}', Status("binance", StatusKind.SUBSCRIBED, detail="id 2")),
        ('{"result":null,"id":9}', Status("binance", StatusKind.SUBSCRIBED, detail="id 9")),
        (
            '{"result":null,"id":1}',
            Status("binance", StatusKind.INFO, detail="unsubscribed (id 1)"),
        ),
        (
            '{"code":2,"msg":"Invalid request: unknown stream","id":7}',
            Status("binance", StatusKind.ERROR, detail="2: Invalid request: unknown stream"),
        ),
        (
            '{"error":{"code":3,"msg":"Invalid JSON"},"id":4}',
            Status("binance", StatusKind.ERROR, detail="3: Invalid JSON"),
        ),
    ],
)
def test_replies_and_errors(frame: str, expected: Status) -> None:
    """Acks are SUBSCRIBED (id 1 is the resubscribe's UNSUBSCRIBE), error frames are ERROR."""
    assert parse(BINANCE, frame) == [expected]


def test_reply_with_result_is_info() -> None:
    """A reply carrying a result (LIST_SUBSCRIPTIONS) is information, not an ack."""
    [status] = parse(BINANCE, '{"result":["btcusdt@trade"],"id":3}')
    assert isinstance(status, Status)
    assert status.kind is StatusKind.INFO


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xfe",
        "not json",
        "[1, 2]",
        "null",
        '"text"',
        '{"stream":"btcusdt@trade","data":[1]}',
        '{"e":5}',
        '{"e":["trade"]}',
        '{"e":"trade","s":"BTCUSDT","T":1}',
        '{"e":"trade","s":"BTCUSDT","p":"abc","T":1}',
        '{"e":"trade","s":"BTCUSDT","p":"nan","T":1}',
        '{"e":"trade","s":"BTCUSDT","p":"1e999","T":1}',
        '{"e":"trade","s":"BTCUSDT","p":"1","T":"x"}',
        '{"e":"trade","s":"BTCUSDT","p":"1","T":true}',
        '{"e":"trade","s":"BTCUSDT","p":"1","T":1' + "0" * 400 + "}",
        '{"e":"trade","s":5,"p":"1","T":1}',
        '{"e":"markPriceUpdate","s":"BTCUSDT","p":"1","i":"1"}',
        '{"e":"bookTicker","s":"BTCUSDT","b":"1","T":1}',
        "[" * 10_000,
    ],
)
def test_malformed_frames_raise_feed_parse_error(frame: str | bytes) -> None:
    """Malformed input raises FeedParseError and nothing else."""
    with pytest.raises(FeedParseError):
        parse(BINANCE_USDM, frame)


# --- connection plans -----------------------------------------------------------------------


def test_spec_attributes() -> None:
    """Names, endpoints and kinds as the session and config expect them."""
    assert (BINANCE.name, BINANCE.default_url) == ("binance", "wss://stream.binance.com:9443")
    assert BINANCE.kinds == {PriceKind.TRADE, PriceKind.MID}
    assert (BINANCE_USDM.name, BINANCE_USDM.default_url) == (
        "binance-usdm",
        "wss://fstream.binance.com",
    )
    assert BINANCE_USDM.kinds == set(PriceKind)
    assert BINANCE.idle_ping is None
    assert BINANCE_USDM.idle_ping is None


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        (
            PriceKind.TRADE,
            "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/ethusdt@trade",
        ),
        (
            PriceKind.MID,
            "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker",
        ),
    ],
)
def test_spot_plan_urls(kind: PriceKind, url: str) -> None:
    """Spot streams go in the URL, lower-case; nothing to send; reconnect before 24 h."""
    [plan] = BINANCE.plan(BINANCE.default_url, ["BTCUSDT", "ETHUSDT", "BTCUSDT"], kind)
    assert plan.url == url
    assert plan.subscribe == ()
    assert plan.instruments == ("BTCUSDT", "ETHUSDT")
    assert plan.max_lifetime_s == MAX_LIFETIME_S == 23.5 * 3600


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        (PriceKind.MARK, "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s"),
        (PriceKind.INDEX, "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s"),
        (PriceKind.TRADE, "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade"),
        (PriceKind.MID, "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker"),
    ],
)
def test_usdm_plan_routes(kind: PriceKind, url: str) -> None:
    """USD-M: mark, index and trades on /market, bookTicker on /public, never the root."""
    [plan] = BINANCE_USDM.plan("wss://fstream.binance.com/", ["BTCUSDT"], kind)
    assert plan.url == url
    assert plan.max_lifetime_s == MAX_LIFETIME_S


def test_plan_splits_at_1024_streams() -> None:
    """2500 instruments need three connections of 1024, 1024 and 452 streams, in order."""
    symbols = [f"S{i}USDT" for i in range(2500)]
    plans = BINANCE.plan(BINANCE.default_url, symbols, PriceKind.TRADE)
    assert [len(p.instruments) for p in plans] == [1024, 1024, 452]
    assert [s for p in plans for s in p.instruments] == symbols
    streams = plans[1].url.split("?streams=")[1].split("/")
    assert streams[0] == "s1024usdt@trade"
    assert len(streams) == 1024


def test_plan_of_nothing_and_unknown_kind() -> None:
    """No instruments, no connection; a kind the venue lacks is a configuration error."""
    assert BINANCE.plan(BINANCE.default_url, [], PriceKind.TRADE) == []
    with pytest.raises(ConfigError, match="binance: price kind 'mark'"):
        BINANCE.plan(BINANCE.default_url, ["BTCUSDT"], PriceKind.MARK)


def test_resubscribe_frames() -> None:
    """Resubscribe is UNSUBSCRIBE (id 1) then SUBSCRIBE (id 2) of the same streams."""
    assert BINANCE.resubscribe is not None
    assert BINANCE_USDM.resubscribe is not None
    assert BINANCE.resubscribe(["BTCUSDT", "ETHUSDT"], PriceKind.MID) == [
        '{"method":"UNSUBSCRIBE","params":["btcusdt@bookTicker","ethusdt@bookTicker"],"id":1}',
        '{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","ethusdt@bookTicker"],"id":2}',
    ]
    frames = BINANCE_USDM.resubscribe(["BTCUSDT"], PriceKind.MARK)
    assert [json.loads(f)["params"] for f in frames] == [["btcusdt@markPrice@1s"]] * 2


# --- fuzzing --------------------------------------------------------------------------------


class TestFuzz(fuzz_tests(SPECS, SAMPLES)):
    """Fuzzing of the spot and the USD-M parser (see tests.fuzz.fuzz_tests)."""

    def envelopes(self, value: object) -> list[object]:
        """Bare, and in a combined-stream wrapper."""
        return [value, {"stream": "x@trade", "data": value}]


# --- the fast trade path --------------------------------------------------------------------

WRAPPED_TRADE = (
    '{"stream":"s000usdt@trade","data":{"e":"trade","E":1700000000123,"s":"S000USDT","t":7,'
    '"p":"101.25000000","q":"0.01000000","T":1700000000120,"m":true}}'
)
TRADE_FRAMES = [WRAPPED_TRADE, SPOT_AGG_TRADE, SPOT_TRADE, FUTURES_BOOK_TICKER, MARK_PRICE]


def _outcome(parser: BinanceParser, raw: str | bytes, recv_ts: float = RECV_TS) -> object:
    """The events of a frame, or the error message it raised."""
    try:
        return parser.parse(raw, recv_ts)
    except FeedParseError as exc:
        return f"FeedParseError: {exc}"


def _same_either_way(frames: list[tuple[float, str]]) -> int:
    """Feed the frames to a parser with and one without the fast path; how many gave quotes."""
    fast, general = BinanceParser("binance"), BinanceParser("binance", fast_trades=False)
    quotes = 0
    for recv_ts, raw in frames:
        outcome = _outcome(fast, raw, recv_ts)
        assert outcome == _outcome(general, raw, recv_ts), raw
        quotes += isinstance(outcome, list) and any(isinstance(e, Quote) for e in outcome)
    return quotes


def test_fast_trade_path_gives_the_quote_of_the_general_path() -> None:
    """A combined-stream trade: the same Quote, to the bit, with and without the fast path."""
    assert parse(BINANCE, WRAPPED_TRADE) == [
        Quote("binance", "S000USDT", PriceKind.TRADE, 101.25, 1700000000.12, RECV_TS)
    ]
    assert _same_either_way([(RECV_TS, WRAPPED_TRADE), (RECV_TS, SPOT_AGG_TRADE)]) == 2


@pytest.mark.parametrize(
    "data",
    [
        '"e":"trade","s":"X","p":"0","T":1',  # non-positive: no quote
        '"e":"trade","s":"X","p":"","T":1',  # empty: no quote
        '"e":"trade","s":"X","p":"-2.5","T":1',
        '"e":"trade","s":"X","p":"1e999","T":1',  # not finite: error
        '"e":"trade","s":"X","p":"nan","T":1',
        '"e":"trade","s":"","p":"1","T":1',  # no symbol: error
        '"e":"trade","s":"X","p":"1","T":1' + "0" * 400,  # time overflows: error
        '"e":"trade","s":"X","p":"1","T":"1700000000000"',  # decimal string time
        '"e":"trade","s":"X","p":1.5,"T":1700000000000.0',  # numbers, not strings
        '"e":"trade","s":"X","p":"1","p":"2","T":1',  # duplicate key: the last wins
        '"e":"aggTrade","s":"X","p":"3","T":2,"e":"bookTicker","b":"1","a":"2"',
    ],
)
def test_fast_trade_path_agrees_on_edge_cases(data: str) -> None:
    """Edge values give the same quotes or the same error on both paths."""
    _same_either_way([(RECV_TS, f'{{"stream":"x@trade","data":{{{data}}}}}')])


@pytest.mark.shared
@pytest.mark.parametrize("name", ["binance", "binance_futures"])
def test_fast_trade_path_agrees_on_every_recorded_frame(name: str) -> None:
    """Recorded connections (trades, book tickers, depth, klines, acks) parse the same."""
    quotes = sum(_same_either_way(frames) for frames in recorded_connections(name).values())
    assert quotes > 0


@FUZZ
@given(frames=st.lists(mutated_frames(TRADE_FRAMES), min_size=1, max_size=5))
def test_fast_trade_path_agrees_on_mutated_frames(frames: list[str]) -> None:
    """Trade frames with fields deleted, retyped or replaced parse the same on both paths."""
    _same_either_way([(RECV_TS, raw) for raw in [WRAPPED_TRADE, *frames]])
