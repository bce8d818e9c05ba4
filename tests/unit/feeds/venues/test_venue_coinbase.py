"""Coinbase Advanced Trade protocol module: recorded frames, documented frames, plans, fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from feeds.events import FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.venues.coinbase import COINBASE, CoinbaseParser, plan, resubscribe
from monitor.errors import ConfigError
from tests.fuzz import fuzz_tests
from tests.recorded import recorded_frames

URL = "wss://advanced-trade-ws.coinbase.com"


def iso(text: str) -> float:
    """Oracle: ISO-8601 to Unix seconds with the standard library (fraction cut to micros)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def by_seq(frames: list[tuple[float, str]], seq: int) -> tuple[float, str]:
    """The recorded frame with this sequence_num."""
    return next(f for f in frames if json.loads(f[1]).get("sequence_num") == seq)


@pytest.fixture(scope="module")
def frames() -> list[tuple[float, str]]:
    return recorded_frames("coinbase")


# --- recorded frames -------------------------------------------------------------------------


@pytest.mark.shared
def test_every_recorded_frame_parses_without_gaps(frames: list[tuple[float, str]]) -> None:
    """One parser takes the whole contiguous recording: no error, no GAP, some of each kind."""
    parser = CoinbaseParser()
    events = [event for ts, data in frames for event in parser.parse(data, ts)]
    assert not [e for e in events if isinstance(e, Status) and e.kind is StatusKind.GAP]
    kinds = {e.kind for e in events if isinstance(e, Quote)}
    assert kinds == {PriceKind.TRADE, PriceKind.MID}


Expected = tuple[str, PriceKind, float, bool, float]


def expected_quotes(recv_ts: float, data: str) -> list[Expected]:
    """Oracle built with json and datetime: what each data frame must yield.

    Trades give TRADE at their own time; tickers give MID only (their ``price`` is the last
    trade, left to market_trades); events of type snapshot give quotes marked snapshot.
    """
    message = json.loads(data)
    out: list[Expected] = []
    for event in message.get("events", []):
        replay = event.get("type") == "snapshot"
        if message["channel"] == "market_trades":
            for t in event["trades"]:
                trade = (t["product_id"], PriceKind.TRADE, float(t["price"]), replay)
                out.append((*trade, iso(t["time"])))
        elif message["channel"] == "ticker":
            for t in event["tickers"]:
                mid = (float(t["best_bid"]) + float(t["best_ask"])) / 2
                out.append((t["product_id"], PriceKind.MID, mid, replay, iso(message["timestamp"])))
    return out


@pytest.mark.shared
def test_recorded_quotes_match_an_independent_oracle(frames: list[tuple[float, str]]) -> None:
    """Every quote of every recorded trade and ticker frame has the raw text's values."""
    parser = CoinbaseParser()
    snapshots = 0
    for recv_ts, data in frames:
        got = [
            (q.instrument, q.kind, q.price, q.snapshot, q.ts)
            for q in parser.parse(data, recv_ts)
            if isinstance(q, Quote)
        ]
        want = expected_quotes(recv_ts, data)
        assert len(got) == len(want), data[:200]
        for g, w in zip(sorted(got), sorted(want), strict=True):
            assert g[:4] == w[:4]
            assert g[4] == pytest.approx(w[4], abs=2e-6)
        snapshots += sum(g[3] for g in got)
    assert snapshots > 0  # the recording starts with the snapshots that follow a subscribe


@pytest.mark.shared
def test_recorded_trade_update(frames: list[tuple[float, str]]) -> None:
    """sequence_num 9: one BTC-USD trade at 65083.67, stamped with the trade's own time."""
    recv_ts, data = by_seq(frames, 9)
    assert CoinbaseParser().parse(data, recv_ts) == [
        Quote(
            "coinbase",
            "BTC-USD",
            PriceKind.TRADE,
            65083.67,
            pytest.approx(iso("2026-08-09T21:05:48.167634Z"), abs=1e-6),
            recv_ts,
        )
    ]


@pytest.mark.shared
def test_recorded_ticker_snapshot(frames: list[tuple[float, str]]) -> None:
    """sequence_num 6: the mid of 65083.66/65083.67 at the frame's nanosecond time, a snapshot.

    The ticker's last price (65086.18) is not a quote: a trade symbol is priced by trades only.
    """
    recv_ts, data = by_seq(frames, 6)
    [mid] = CoinbaseParser().parse(data, recv_ts)
    assert isinstance(mid, Quote)
    assert (mid.instrument, mid.kind, mid.price) == ("BTC-USD", PriceKind.MID, 65083.665)
    assert mid.ts == pytest.approx(1786309548.229198328, abs=1e-6)
    assert mid.recv_ts == recv_ts
    assert mid.snapshot


@pytest.mark.shared
def test_recorded_trade_snapshot_comes_out_oldest_first(frames: list[tuple[float, str]]) -> None:
    """The snapshot lists the newest trade first; quotes come out in event-time order, marked."""
    recv_ts, data = by_seq(frames, 0)
    quotes = CoinbaseParser().parse(data, recv_ts)
    assert [q.ts for q in quotes if isinstance(q, Quote)] == sorted(
        q.ts for q in quotes if isinstance(q, Quote)
    )
    assert all(q.snapshot for q in quotes if isinstance(q, Quote))
    newest = quotes[-1]
    assert isinstance(newest, Quote)
    assert newest.price == 65083.67
    assert newest.ts == pytest.approx(iso("2026-08-09T21:05:42.514318Z"), abs=1e-6)


@pytest.mark.shared
def test_recorded_control_frames(frames: list[tuple[float, str]]) -> None:
    """subscriptions -> SUBSCRIBED, heartbeats -> HEARTBEAT, level2 and candles -> nothing."""
    assert CoinbaseParser().parse(by_seq(frames, 2)[1], 0.0) == [
        Status("coinbase", StatusKind.SUBSCRIBED, "market_trades=BTC-USD,ETH-USD")
    ]
    assert CoinbaseParser().parse(by_seq(frames, 35)[1], 0.0) == [
        Status("coinbase", StatusKind.HEARTBEAT, "counter=41691")
    ]
    assert CoinbaseParser().parse(by_seq(frames, 13)[1], 0.0) == []  # l2_data
    assert CoinbaseParser().parse(by_seq(frames, 3)[1], 0.0) == []  # candles


@pytest.mark.shared
@pytest.mark.parametrize("dropped", [1, 9, 20])
def test_dropping_a_recorded_frame_yields_a_gap(
    frames: list[tuple[float, str]], dropped: int
) -> None:
    """Drop frame k of a contiguous run: the next frame reports GAP 'expected k got k+1' first."""
    run = frames[:30]
    seqs = [json.loads(data)["sequence_num"] for _, data in run]
    assert seqs == list(range(seqs[0], seqs[0] + 30))
    parser = CoinbaseParser()
    for ts, data in run[:dropped]:
        parser.parse(data, ts)
    ts, data = run[dropped + 1]
    events = parser.parse(data, ts)
    want = f"expected {seqs[dropped]} got {seqs[dropped + 1]}"
    assert events[0] == Status("coinbase", StatusKind.GAP, want)
    assert events[1:] == CoinbaseParser().parse(data, ts)  # the frame's own events still come
    for ts, data in run[dropped + 2 :]:
        assert not any(
            isinstance(e, Status) and e.kind is StatusKind.GAP for e in parser.parse(data, ts)
        )


# --- documented frames -----------------------------------------------------------------------


def envelope(seq: int, channel: str = "heartbeats", events: Any = None) -> str:
    """A frame shaped like the Advanced Trade docs' examples."""
    body = {"channel": channel, "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z"}
    body |= {"sequence_num": seq, "events": events or [{"heartbeat_counter": seq}]}
    return json.dumps(body)


def test_error_frame_is_an_error_status() -> None:
    """{"type":"error","message":...} (no sequence_num) -> ERROR with the message."""
    frame = '{"type":"error","message":"failure to subscribe"}'
    assert CoinbaseParser().parse(frame, 1.0) == [
        Status("coinbase", StatusKind.ERROR, "failure to subscribe")
    ]


def test_sequence_gap_and_baseline() -> None:
    """The first frame sets the baseline; a jump or a replay is a gap; +1 is not."""
    parser = CoinbaseParser()
    assert parser.parse(envelope(41), 0.0) == [
        Status("coinbase", StatusKind.HEARTBEAT, "counter=41")
    ]
    assert parser.parse(envelope(42), 0.0) == [
        Status("coinbase", StatusKind.HEARTBEAT, "counter=42")
    ]
    assert parser.parse(envelope(45), 0.0)[0] == Status(
        "coinbase", StatusKind.GAP, "expected 43 got 45"
    )
    assert parser.parse(envelope(45), 0.0)[0] == Status(
        "coinbase", StatusKind.GAP, "expected 46 got 45"
    )


def test_a_frame_that_fails_to_parse_leaves_a_gap() -> None:
    """A malformed frame is dropped without advancing the sequence: the next one reports it."""
    parser = CoinbaseParser()
    parser.parse(envelope(0), 0.0)
    bad = envelope(1, "market_trades", [{"trades": [{"product_id": "BTC-USD", "price": "x1"}]}])
    with pytest.raises(FeedParseError):
        parser.parse(bad, 0.0)
    assert parser.parse(envelope(2), 0.0)[0] == Status(
        "coinbase", StatusKind.GAP, "expected 1 got 2"
    )


def trade_frame(price: Any, time: Any = "2023-02-09T20:32:50.714964855Z") -> str:
    trade = {"product_id": "ETH-USD", "trade_id": "1", "price": price, "size": "1", "side": "BUY"}
    if time is not None:
        trade["time"] = time
    return envelope(0, "market_trades", [{"type": "update", "trades": [trade]}])


def test_trade_time_falls_back_to_frame_time_and_nanoseconds_parse() -> None:
    """Trade 'time' is the event time; without it, the frame's 'timestamp'."""
    with_time = CoinbaseParser().parse(trade_frame("1650.5"), 9.0)
    without = CoinbaseParser().parse(trade_frame("1650.5", time=None), 9.0)
    want = datetime(2023, 2, 9, 20, 32, 50, tzinfo=UTC).timestamp() + 0.714964855
    assert (
        with_time
        == without
        == [
            Quote(
                "coinbase", "ETH-USD", PriceKind.TRADE, 1650.5, pytest.approx(want, abs=1e-6), 9.0
            )
        ]
    )


@pytest.mark.parametrize("price", ["nan", "inf", "1e999", "abc", 1650.5, None, ["1"]])
def test_bad_prices_raise(price: Any) -> None:
    """Prices must be decimal strings of finite numbers."""
    with pytest.raises(FeedParseError):
        CoinbaseParser().parse(trade_frame(price), 0.0)


def test_an_empty_trade_price_gives_no_quote() -> None:
    """An empty price is not a quote (and not an error)."""
    assert CoinbaseParser().parse(trade_frame(""), 0.0) == []


@pytest.mark.parametrize("price", ["0", "-1"])
def test_non_positive_trade_prices_are_handed_on(price: str) -> None:
    """A zero or negative trade price is a quote, so that the router counts and drops it."""
    [quote] = CoinbaseParser().parse(trade_frame(price), 0.0)
    assert isinstance(quote, Quote)
    assert (quote.kind, quote.price) == (PriceKind.TRADE, float(price))


def test_ticker_without_both_sides_gives_no_quote() -> None:
    """A ticker with an empty best_ask gives no mid, and its last price is never a trade."""
    ticker = {"product_id": "BTC-USD", "price": "100", "best_bid": "99", "best_ask": ""}
    frame = envelope(0, "ticker", [{"type": "update", "tickers": [ticker]}])
    assert CoinbaseParser().parse(frame, 0.0) == []


def test_ticker_price_never_reaches_a_trade_symbol() -> None:
    """A ticker update gives MID only, live (not a snapshot); the trade is market_trades' job."""
    ticker = {"product_id": "BTC-USD", "price": "105", "best_bid": "99", "best_ask": "101"}
    frame = envelope(0, "ticker", [{"type": "update", "tickers": [ticker]}])
    [quote] = CoinbaseParser().parse(frame, 0.0)
    assert isinstance(quote, Quote)
    assert (quote.kind, quote.price, quote.snapshot) == (PriceKind.MID, 100.0, False)


def test_snapshot_events_mark_their_quotes() -> None:
    """In one frame, trades of a snapshot event are marked, those of an update are not."""
    trade = {"product_id": "ETH-USD", "trade_id": "1", "price": "10", "size": "1", "side": "BUY"}
    events = [
        {"type": "snapshot", "trades": [trade | {"time": "2023-02-09T20:32:49Z"}]},
        {"type": "update", "trades": [trade | {"time": "2023-02-09T20:32:50Z"}]},
    ]
    quotes = CoinbaseParser().parse(envelope(0, "market_trades", events), 0.0)
    assert [q.snapshot for q in quotes if isinstance(q, Quote)] == [True, False]


# --- plans -----------------------------------------------------------------------------------


def test_spec() -> None:
    """Name, endpoint, kinds, liveness settings."""
    assert COINBASE.name == "coinbase"
    assert COINBASE.default_url == URL
    assert COINBASE.kinds == frozenset({PriceKind.TRADE, PriceKind.MID})
    assert COINBASE.idle_ping is None
    assert COINBASE.on_connect == ()
    assert isinstance(COINBASE.new_parser(), CoinbaseParser)
    assert COINBASE.new_parser() is not COINBASE.new_parser()


@pytest.mark.parametrize(
    ("kind", "channel"), [(PriceKind.TRADE, "market_trades"), (PriceKind.MID, "ticker")]
)
def test_plan_subscribes_heartbeats_and_the_channel(kind: PriceKind, channel: str) -> None:
    """One frame per channel, heartbeats always first."""
    [conn] = COINBASE.plan(URL, ["BTC-USD", "ETH-USD", "BTC-USD"], kind)
    assert conn.url == URL
    assert conn.instruments == ("BTC-USD", "ETH-USD")
    assert conn.subscribe == (
        '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"heartbeats"}',
        f'{{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"{channel}"}}',
    )
    assert conn.subscribe_rate_hz <= 8.0


def test_plan_splits_and_every_connection_has_heartbeats() -> None:
    """250 products -> 3 connections, each subscribing heartbeats for its products."""
    products = [f"P{i}-USD" for i in range(250)]
    plans = plan(URL, products, PriceKind.MID)
    assert [len(p.instruments) for p in plans] == [100, 100, 50]
    assert sum((p.instruments for p in plans), ()) == tuple(products)
    for conn in plans:
        frames = [json.loads(frame) for frame in conn.subscribe]
        assert [f["channel"] for f in frames] == ["heartbeats", "ticker"]
        assert all(f["product_ids"] == list(conn.instruments) for f in frames)
    assert plan(URL, [], PriceKind.TRADE) == []


@pytest.mark.parametrize("kind", [PriceKind.MARK, PriceKind.INDEX])
def test_plan_rejects_kinds_coinbase_lacks(kind: PriceKind) -> None:
    """Coinbase spot has no mark or index price."""
    with pytest.raises(ConfigError, match="coinbase"):
        plan(URL, ["BTC-USD"], kind)


def test_resubscribe_frames() -> None:
    """Unsubscribe then subscribe the data channel (heartbeats stay)."""
    assert COINBASE.resubscribe is not None
    assert COINBASE.resubscribe(["ETH-USD"], PriceKind.TRADE) == [
        '{"type":"unsubscribe","product_ids":["ETH-USD"],"channel":"market_trades"}',
        '{"type":"subscribe","product_ids":["ETH-USD"],"channel":"market_trades"}',
    ]
    assert resubscribe(["BTC-USD"], PriceKind.MID)[1].endswith('"channel":"ticker"}')


# --- fuzzing ---------------------------------------------------------------------------------

DOCUMENTED = [
    envelope(3),
    trade_frame("1650.5"),
    envelope(
        4,
        "ticker",
        [
            {
                "type": "snapshot",
                "tickers": [
                    {"product_id": "BTC-USD", "price": "1", "best_bid": "1", "best_ask": "2"}
                ],
            }
        ],
    ),
    envelope(5, "subscriptions", [{"subscriptions": {"ticker": ["BTC-USD"]}}]),
    '{"type":"error","message":"failure to subscribe"}',
]


class TestFuzz(fuzz_tests([COINBASE], DOCUMENTED, "coinbase")):
    """Fuzzing of the Coinbase parser (see tests.fuzz.fuzz_tests)."""

    unnamed_ok = True  # an empty product_id is passed through, not rejected

    @staticmethod
    def worth_mutating(frame: str) -> bool:
        """Frames small enough to mutate quickly (every channel has some)."""
        return len(frame) < 4000
