"""Tests for feeds.venues.okx: recorded frames, documented frames, plans and fuzzing."""

from __future__ import annotations

import json

import pytest

from feeds.events import FeedEvent, FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venues.okx import OKX
from monitor.errors import ConfigError
from tests.fuzz import fuzz_tests
from tests.recorded import first_frame, recorded_frames

RECV_TS = 1_700_000_000.5

# Verbatim from okx.jsonl (2022-05-13), so that fuzzing runs without ../shared.
BTC_TICKER = (
    '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT",'
    '"instId":"BTC-USDT","last":"30236","lastSz":"0.0002","askPx":"30228.7",'
    '"askSz":"1.55896972","bidPx":"30228.6","bidSz":"0.23393","open24h":"29700.4",'
    '"high24h":"31073","low24h":"28020.3","sodUtc0":"29028.8","sodUtc8":"30337.7",'
    '"volCcy24h":"525802090.62716611","vol24h":"17602.13085371","ts":"1652459224956"}]}'
)
BTC_TRADE = (
    '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
    '"tradeId":"338476307","px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818"}]}'
)
# From OKX's v5 documentation, for what the recording lacks.
NOTICE = (
    '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service '
    'upgrade. Please reconnect.","connId":"a4d3ae55"}'
)
ERROR = (
    '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\", '
    '\\"argss\\":[{ \\"channel\\" : \\"tickers\\", \\"instId\\" : \\"BTC-USDT\\"}]}",'
    '"connId":"a4d3ae55"}'
)
SAMPLES = [
    BTC_TICKER,
    BTC_TRADE,
    NOTICE,
    ERROR,
    '{"event":"subscribe","arg":{"channel":"tickers"}}',
]


def parse(raw: str | bytes, recv_ts: float = RECV_TS) -> list[FeedEvent]:
    return list(OKX.new_parser().parse(raw, recv_ts))


# --- recorded frames ------------------------------------------------------------------------


@pytest.mark.shared
def test_every_recorded_frame_parses() -> None:
    """Every received frame parses; every subscription is acknowledged; prices come out."""
    parser = OKX.new_parser()
    events = [e for ts, data in recorded_frames("okx") for e in parser.parse(data, ts)]
    kinds = {e.kind for e in events if isinstance(e, Quote)}
    instruments = {e.instrument for e in events if isinstance(e, Quote)}
    assert kinds == {PriceKind.TRADE, PriceKind.MID}
    assert instruments == {"BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"}
    acks = [e for e in events if isinstance(e, Status)]
    assert {e.kind for e in acks} == {StatusKind.SUBSCRIBED}


@pytest.mark.shared
def test_spot_ticker_values() -> None:
    """tickers gives the mid of bidPx/askPx at the ticker's ts; its 'last' (30236) is not a
    trade print, so a trade symbol is priced by the trades channel only."""
    ts, data = first_frame("okx", '"channel":"tickers","instId":"BTC-USDT"},"data"')
    assert data == BTC_TICKER
    [mid] = parse(data, ts)
    assert isinstance(mid, Quote)
    assert (mid.instrument, mid.kind, mid.ts) == ("BTC-USDT", PriceKind.MID, 1652459224.956)
    assert mid.price == pytest.approx((30228.6 + 30228.7) / 2, rel=1e-12)


@pytest.mark.shared
def test_futures_ticker_values() -> None:
    """A dated future's ticker: instrument as OKX names it, the mid only."""
    ts, data = first_frame("okx", '"channel":"tickers","instId":"BTC-USD-220527"},"data"')
    quotes = [q for q in parse(data, ts) if isinstance(q, Quote)]
    assert [(q.instrument, q.kind, q.ts) for q in quotes] == [
        ("BTC-USD-220527", PriceKind.MID, 1652459223.003),
    ]
    assert quotes[0].price == pytest.approx((30210.4 + 30220.1) / 2, rel=1e-12)


@pytest.mark.shared
def test_trade_values() -> None:
    """trades gives px at the trade's ts."""
    ts, data = first_frame("okx", '"channel":"trades","instId":"BTC-USDT"},"data"')
    assert data == BTC_TRADE
    assert parse(data, ts) == [
        Quote("okx", "BTC-USDT", PriceKind.TRADE, 30236.0, 1652459224.818, ts)
    ]


@pytest.mark.shared
def test_books_and_subscribe_ack() -> None:
    """Order books give nothing; a subscribe event names its instrument."""
    ts, book = first_frame("okx", '"channel":"books","instId":"BTC-USDT"},"action"')
    assert parse(book, ts) == []
    ts, ack = first_frame("okx", '"event":"subscribe"')
    assert parse(ack, ts) == [Status("okx", StatusKind.SUBSCRIBED, instrument="BTC-USD-220527")]


# --- documented frames ----------------------------------------------------------------------


def test_pong_is_heartbeat() -> None:
    """The plain-text answer to "ping" is a heartbeat, as text or bytes."""
    assert parse("pong") == [Status("okx", StatusKind.HEARTBEAT)]
    assert parse(b"pong") == [Status("okx", StatusKind.HEARTBEAT)]


def test_notice_64008_is_maintenance() -> None:
    """The service-upgrade notice tells the session to reconnect."""
    assert parse(NOTICE) == [
        Status(
            "okx",
            StatusKind.MAINTENANCE,
            detail="64008: The connection will soon be closed for a service upgrade. "
            "Please reconnect.",
        )
    ]


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (ERROR, StatusKind.ERROR),
        (
            '{"event":"channel-conn-count-error","channel":"tickers","connCount":"30"}',
            StatusKind.ERROR,
        ),
        ('{"event":"notice","code":"64009","msg":"other"}', StatusKind.INFO),
        (
            '{"event":"unsubscribe","arg":{"channel":"tickers","instId":"BTC-USDT"}}',
            StatusKind.INFO,
        ),
        ('{"event":"channel-conn-count","channel":"tickers","connCount":"2"}', StatusKind.INFO),
    ],
)
def test_other_events(frame: str, kind: StatusKind) -> None:
    """Errors are ERROR; other notices and replies are INFO."""
    [status] = parse(frame)
    assert isinstance(status, Status)
    assert status.kind is kind


def test_error_detail() -> None:
    """An error's detail carries OKX's code and message."""
    [status] = parse(ERROR)
    assert isinstance(status, Status)
    assert status.detail.startswith("60012: Invalid request:")


def test_empty_prices_are_absent() -> None:
    """OKX sends "" for a missing bid or ask: no mid (and the last price is never a quote)."""
    frame = BTC_TICKER.replace('"bidPx":"30228.6"', '"bidPx":""')
    assert parse(frame) == []


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc3\x28",
        "ping",
        "[]",
        '{"event":5}',
        '{"arg":"tickers","data":[]}',
        '{"arg":{"channel":"tickers"},"data":{}}',
        '{"arg":{"channel":"tickers"},"data":[5]}',
        '{"arg":{"channel":"tickers"},"data":[{"instId":"X","bidPx":"1","askPx":"2"}]}',
        '{"arg":{"channel":"tickers"},"data":[{"instId":"X","ts":"soon","bidPx":"1"}]}',
        '{"arg":{"channel":"tickers"},"data":[{"instId":"X","ts":"1","bidPx":"x","askPx":"2"}]}',
        '{"arg":{"channel":"trades"},"data":[{"instId":"X","ts":"1"}]}',
        '{"arg":{"channel":"trades"},"data":[{"instId":"X","ts":"1","px":""}]}',
        '{"arg":{"channel":"trades"},"data":[{"instId":7,"ts":"1","px":"2"}]}',
        '{"arg":{"channel":"trades"},"data":[{"instId":"X","ts":"1","px":1' + "0" * 400 + "}]}",
    ],
)
def test_malformed_frames_raise_feed_parse_error(frame: str | bytes) -> None:
    """Malformed input raises FeedParseError and nothing else."""
    with pytest.raises(FeedParseError):
        parse(frame)


# --- connection plans -----------------------------------------------------------------------


def test_spec_attributes() -> None:
    """Name, endpoint, kinds and the plain-text idle ping."""
    assert (OKX.name, OKX.default_url) == ("okx", "wss://ws.okx.com:8443/ws/v5/public")
    assert OKX.kinds == {PriceKind.TRADE, PriceKind.MID}
    assert (OKX.idle_ping, OKX.idle_ping_s) == ("ping", 20.0)


@pytest.mark.parametrize(
    ("kind", "channel"), [(PriceKind.TRADE, "trades"), (PriceKind.MID, "tickers")]
)
def test_plan_subscribes_channels(kind: PriceKind, channel: str) -> None:
    """One connection subscribing the kind's channel for each distinct instrument."""
    [plan] = OKX.plan(OKX.default_url, ["BTC-USDT", "ETH-USDT", "BTC-USDT"], kind)
    assert plan.url == "wss://ws.okx.com:8443/ws/v5/public"
    assert plan.subscribe == (
        f'{{"op":"subscribe","args":[{{"channel":"{channel}","instId":"BTC-USDT"}},'
        f'{{"channel":"{channel}","instId":"ETH-USDT"}}]}}',
    )
    assert plan.instruments == ("BTC-USDT", "ETH-USDT")


def test_plan_splits_connections_and_chunks_args() -> None:
    """250 instruments: connections of 200 and 50 (each with its own 480/h request budget),
    subscribed in frames of at most 100 args."""
    symbols = [f"C{i}-USDT" for i in range(250)]
    first, second = OKX.plan(OKX.default_url, symbols, PriceKind.MID)
    assert [len(json.loads(f)["args"]) for f in first.subscribe] == [100, 100]
    assert [len(json.loads(f)["args"]) for f in second.subscribe] == [50]
    assert first.instruments + second.instruments == tuple(symbols)
    assert [a["instId"] for f in second.subscribe for a in json.loads(f)["args"]] == symbols[200:]


def test_plan_of_nothing_and_unknown_kind() -> None:
    """No instruments, no connection; mark prices are not offered."""
    assert OKX.plan(OKX.default_url, [], PriceKind.MID) == []
    with pytest.raises(ConfigError, match="okx: price kind 'mark'"):
        OKX.plan(OKX.default_url, ["BTC-USDT"], PriceKind.MARK)


def test_resubscribe_frames() -> None:
    """Resubscribe is unsubscribe then subscribe of the same args."""
    assert OKX.resubscribe is not None
    assert OKX.resubscribe(["BTC-USDT"], PriceKind.TRADE) == [
        '{"op":"unsubscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}',
        '{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}',
    ]


# --- fuzzing --------------------------------------------------------------------------------


class TestFuzz(fuzz_tests([OKX], SAMPLES)):
    """Fuzzing of the OKX parser (see tests.fuzz.fuzz_tests)."""

    def envelopes(self, value: object) -> list[object]:
        """Bare, as an event, and as the data of a channel."""
        channels = ("tickers", "trades", "books")
        data = [{"arg": {"channel": channel}, "data": value} for channel in channels]
        return [value, {"event": value}, *data]
