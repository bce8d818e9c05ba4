"""Quote routing: symbol mapping, failover between venues, staleness, bounded buffer."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest

from feeds.backoff import Backoff, is_transient
from feeds.events import FeedParseError, PriceKind, Quote, Status, StatusKind
from feeds.registry import VENUES
from feeds.router import Router, TickBuffer
from monitor.config.schema import Config
from monitor.model import Tick
from service.daemon import _Batch

FEEDS = """
[[feeds]]
venue = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]
price = "trade"
stale_after = "10s"

[[feeds]]
venue = "coinbase"
symbols = ["BTC-USD"]
price = "mid"
stale_after = "10s"
aliases = { "BTC-USD" = "BTCUSDT" }
"""
BASE = """
[universe]
symbols = ["BTCUSDT", "ETHUSDT"]
"""


def _quote(
    venue: str,
    instrument: str,
    price: float,
    kind: PriceKind = PriceKind.TRADE,
    ts: float = 1000.0,
    snapshot: bool = False,
) -> Quote:
    return Quote(venue, instrument, kind, price, ts=ts, recv_ts=ts, snapshot=snapshot)


@pytest.fixture
def router(make_config: Callable[..., Config]) -> Router:
    config = make_config(FEEDS, base=BASE)
    return Router(config.feeds, TickBuffer(1000), start_mono=0.0)


def test_quotes_of_the_configured_kind_become_engine_ticks(router: Router) -> None:
    """Binance trades price BTCUSDT; a Binance mid quote is ignored (trade configured)."""
    router.on_events("binance", [_quote("binance", "BTCUSDT", 100.0)], mono=1.0)
    router.on_events("binance", [_quote("binance", "BTCUSDT", 99.0, PriceKind.MID)], mono=1.5)
    (tick,) = router.buffer.drain()[0]
    assert (tick.symbol, tick.price, tick.ts) == ("BTCUSDT", 100.0, 1000.0)


def test_second_venue_stands_in_while_the_first_is_stale(router: Router) -> None:
    """Coinbase (alias BTCUSDT) is standby while Binance is fresh, active when it is silent."""

    def send(venue: str, instrument: str, price: float, mono: float) -> None:
        kind = PriceKind.MID if venue == "coinbase" else PriceKind.TRADE
        router.on_events(venue, [_quote(venue, instrument, price, kind, 1000.0 + mono)], mono)

    send("binance", "BTCUSDT", 100.0, 1.0)
    send("coinbase", "BTC-USD", 101.0, 2.0)
    assert [t.price for t in router.buffer.drain()[0]] == [100.0]
    assert router.standby["BTCUSDT"] == 1
    send("coinbase", "BTC-USD", 102.0, 12.0)
    assert [t.price for t in router.buffer.drain()[0]] == [102.0]
    send("binance", "BTCUSDT", 103.0, 13.0)
    send("coinbase", "BTC-USD", 104.0, 13.5)
    assert [t.price for t in router.buffer.drain()[0]] == [103.0]  # binance is back in charge


def test_one_silent_symbol_is_detected_while_others_flow(router: Router) -> None:
    """ETHUSDT silent for more than stale_after is reported once as newly stale."""
    for mono in range(1, 25):
        ts = 1000.0 + mono
        router.on_events("binance", [_quote("binance", "BTCUSDT", 100.0, ts=ts)], float(mono))
        router.on_events(
            "coinbase", [_quote("coinbase", "BTC-USD", 100.0, PriceKind.MID, ts)], float(mono)
        )
    newly, still = router.check(24.0)
    assert [(s.venue, s.instrument) for s in newly] == [("binance", "ETHUSDT")]
    assert still == []
    newly, still = router.check(25.0)
    assert newly == []
    assert [s.instrument for s in still] == ["ETHUSDT"]
    staleness = router.staleness_metric({"venue": "binance", "symbol": "ETHUSDT"}, 25.0)
    assert staleness == 25.0
    assert router.staleness_metric({"venue": "binance", "symbol": "BTCUSDT"}, 25.0) == 1.0


def _at(venue: str, instrument: str, price: float, ts: float) -> Quote:
    return Quote(venue, instrument, PriceKind.TRADE, price, ts=ts, recv_ts=1000.0)


def test_venue_times_are_checked_against_the_wall_clock(router: Router) -> None:
    """2100 and +300 s: re-stamped with the receive time and counted; 1970 (behind more than
    stale_after): dropped and counted; 1.5 s ahead and 5 s behind: unchanged."""
    quotes = [
        _at("binance", "BTCUSDT", 100.0, 4_102_444_800.0),
        _at("binance", "BTCUSDT", 100.1, 1300.0),
        _at("binance", "ETHUSDT", 10.0, 1.0),
        _at("binance", "ETHUSDT", 10.1, 1001.5),
        _at("binance", "ETHUSDT", 10.2, 995.0),
    ]
    router.on_events("binance", quotes, mono=1.0)
    ticks = router.buffer.drain_columns()[0]
    assert list(zip(ticks.ts, ticks.symbol, ticks.price, ticks.venue, strict=True)) == [
        (1000.0, "BTCUSDT", 100.0, "binance"),
        (1000.0, "BTCUSDT", 100.1, "binance"),
        (1001.5, "ETHUSDT", 10.1, "binance"),
        (995.0, "ETHUSDT", 10.2, "binance"),
    ]
    assert router.rejected == {("binance", "clock_skew"): 2, ("binance", "out_of_order"): 1}


def test_the_wall_clock_given_replaces_the_receive_time(router: Router) -> None:
    """The demo passes the simulator's clock: a venue time that runs 60x is not skewed."""
    router.on_events("binance", [_at("binance", "BTCUSDT", 100.0, 5000.0)], 1.0, wall=5000.0)
    assert router.buffer.drain_columns()[0].ts == [5000.0]
    assert router.rejected == {}


def test_bad_prices_are_counted_and_do_not_make_the_feed_fresh(router: Router) -> None:
    """Zero, negative and NaN prices: dropped, counted, and the source stays stale, so the
    next feed stands in; a quote of an instrument no feed names is counted too."""
    router.on_events("binance", [_quote("binance", "BTCUSDT", 100.0)], mono=1.0)
    bad = [_quote("binance", "BTCUSDT", p) for p in (0.0, -1.0, float("nan"))]
    for mono in (12.0, 13.0, 14.0):
        router.on_events("binance", bad, mono=mono)
    router.on_events("binance", [_quote("binance", "DOGEUSDT", 0.1)], mono=14.0)
    router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 101.0, PriceKind.MID)], 14.5)
    assert [t.price for t in router.buffer.drain()[0]] == [100.0, 101.0]  # coinbase stands in
    assert router.rejected == {
        ("binance", "non_positive"): 6,
        ("binance", "not_a_number"): 3,
        ("binance", "unknown_symbol"): 1,
    }
    newly, _ = router.check(14.5)
    assert [(s.venue, s.instrument) for s in newly] == [
        ("binance", "BTCUSDT"),
        ("binance", "ETHUSDT"),
    ]


def test_status_events_are_counted(router: Router) -> None:
    """Gaps and errors are tallied per venue and kind."""
    router.on_events("coinbase", [Status("coinbase", StatusKind.GAP, "expected 5 got 7")], 1.0)
    assert router.statuses[("coinbase", "gap")] == 1


def test_full_buffer_drops_the_oldest_and_counts() -> None:
    """Bounded memory: the newest ticks survive, drops are counted."""
    buffer = TickBuffer(100)
    for n in range(250):
        buffer.push(Tick(float(n), "X", 1.0))
    ticks, _ = buffer.drain()
    assert len(ticks) == 100
    assert ticks[0].ts == 150.0
    assert buffer.dropped == 150


def test_backoff_grows_is_capped_and_resets_only_after_a_healthy_connection() -> None:
    """Accept-then-close connections keep the delay growing; a healthy one resets it."""
    backoff = Backoff(initial_s=1.0, max_s=8.0, rand=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.connection_ended(uptime_s=0.05, received=False)  # accepted then closed
    assert backoff.next_delay() == 8.0
    backoff.connection_ended(uptime_s=60.0, received=True)
    assert backoff.next_delay() == 1.0
    low = Backoff(initial_s=1.0, max_s=8.0, rand=lambda: 0.0)
    assert low.next_delay() == pytest.approx(0.1)  # jitter never reaches zero
    assert Backoff(max_s=30.0).next_delay(transient=False) == 30.0


def test_retry_policy_separates_network_from_parse_errors() -> None:
    """Network failures are transient; a parse error never is."""
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert not is_transient(FeedParseError("bad frame"))
    assert not is_transient(ValueError("a bug"))


def test_routed_ticks_are_counted_by_venue_and_symbol(router: Router) -> None:
    """Only ticks that reach the engine count; the standby venue's quotes do not."""
    for mono in (1.0, 2.0, 3.0):
        ts = 1000.0 + mono
        router.on_events("binance", [_quote("binance", "BTCUSDT", 100.0, ts=ts)], mono)
        router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 1.0, PriceKind.MID, ts)], mono)
    router.on_events("binance", [_quote("binance", "ETHUSDT", 10.0)], mono=4.0)
    assert router.routed == {("binance", "BTCUSDT"): 3, ("binance", "ETHUSDT"): 1}
    assert router.standby["BTCUSDT"] == 3


def test_columns_drain_like_ticks_and_the_buffer_keeps_its_bound() -> None:
    """drain_columns gives what drain gives, as columns; drops are the oldest ticks."""
    buffer = TickBuffer(100)
    for n in range(250):
        buffer.append(float(n), f"S{n % 7}", n + 0.5, mono=float(n))
    columns, oldest = buffer.drain_columns()
    assert (buffer.dropped, len(buffer), oldest) == (150, 0, 0.0)
    assert columns.ts == [float(n) for n in range(150, 250)]
    assert columns.symbol[:2] == ["S3", "S4"]
    for n in range(3):
        buffer.push(Tick(float(n), "X", 2.0), mono=5.0)
    ticks, oldest = buffer.drain()
    assert ticks == [Tick(0.0, "X", 2.0), Tick(1.0, "X", 2.0), Tick(2.0, "X", 2.0)]
    assert oldest == 5.0


@pytest.mark.parametrize("seed", range(5))
def test_engine_batch_is_the_stable_sort_of_the_ticks(seed: int) -> None:
    """The engine step's batch equals sorting the ticks by time (arrival order among equals).

    Exactly what the daemon did before ticks were buffered as columns: sorted Tick objects.
    """
    rng = random.Random(seed)
    buffer = TickBuffer(1000)
    ticks = [
        Tick(float(rng.choice([1, 2, 2, 3, 5, 8])), rng.choice("ABC"), rng.random())
        for _ in range(rng.choice([0, 1, 2, 40]))
    ]
    if seed == 0:
        ticks.sort(key=lambda t: t.ts)  # arrival in time order: kept as is
    for tick in ticks:
        buffer.push(tick)
    columns, _ = buffer.drain_columns()
    batch = _Batch.in_time_order(columns.ts, columns.symbol, columns.price)
    expected = sorted(ticks, key=lambda t: t.ts)
    np.testing.assert_array_equal(batch.ts, [t.ts for t in expected])
    assert batch.symbol == [t.symbol for t in expected]
    np.testing.assert_array_equal(batch.price, [t.price for t in expected])


# --- freshness: only live data newer than the last seen --------------------------------------

COINBASE_TRADES = """
[[feeds]]
venue = "coinbase"
symbols = ["BTC-USD"]
price = "trade"
stale_after = "10s"
aliases = { "BTC-USD" = "BTCUSDT" }

[[feeds]]
venue = "binance"
symbols = ["BTCUSDT"]
stale_after = "10s"
"""


@pytest.fixture
def coinbase_first(make_config: Callable[..., Config]) -> Router:
    config = make_config(COINBASE_TRADES, base='[universe]\nsymbols = ["BTCUSDT"]\n')
    return Router(config.feeds, TickBuffer(1000), start_mono=0.0)


def test_a_snapshot_of_old_trades_after_a_resubscribe_is_not_fresh_and_not_routed(
    coinbase_first: Router,
) -> None:
    """Coinbase trades at 1001..1003, silence, then a resubscribe replays them as a snapshot:
    the source stays stale, the engine gets nothing, the replays are counted."""
    router = coinbase_first
    for n in (1, 2, 3):
        router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 100.0 + n, ts=1000.0 + n)], n)
    assert len(router.buffer.drain()[0]) == 3
    [src] = router.sources[("coinbase", "BTC-USD")]
    newly, _ = router.check(20.0)
    assert src in newly
    replay = [
        _quote("coinbase", "BTC-USD", 100.0 + n, ts=1000.0 + n, snapshot=True) for n in (2, 3)
    ]
    router.on_events("coinbase", replay, mono=21.0)
    assert (src.stale, src.last_seen, src.replayed) == (True, 3.0, 2)
    assert len(router.buffer) == 0
    live = _quote("coinbase", "BTC-USD", 110.0, ts=1022.0)
    router.on_events("coinbase", [live], mono=22.0)
    assert (src.stale, src.last_seen) == (False, 22.0)
    assert [t.price for t in router.buffer.drain()[0]] == [110.0]


def test_a_snapshot_with_a_missed_trade_reaches_the_engine_but_does_not_refresh(
    coinbase_first: Router,
) -> None:
    """A snapshot trade newer than any seen (printed while the channel was dead) gives the
    engine the latest price, yet the source stays stale until live data arrives."""
    router = coinbase_first
    router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 100.0, ts=1001.0)], 1.0)
    router.buffer.drain()
    missed = _quote("coinbase", "BTC-USD", 99.0, ts=1015.0, snapshot=True)
    router.on_events("coinbase", [missed], mono=20.0)
    [src] = router.sources[("coinbase", "BTC-USD")]
    assert [t.price for t in router.buffer.drain()[0]] == [99.0]
    assert (src.last_seen, src.replayed) == (1.0, 0)
    assert src in router.check(20.0)[0]


def test_a_live_quote_not_newer_than_the_last_goes_on_but_does_not_refresh(
    coinbase_first: Router,
) -> None:
    """A venue re-pushing its last ticker (same event time) after a subscribe: routed (the
    engine judges order), but it proves nothing about the feed being alive."""
    router = coinbase_first
    router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 100.0, ts=1001.0)], 1.0)
    router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 100.0, ts=1001.0)], 15.0)
    [src] = router.sources[("coinbase", "BTC-USD")]
    assert src.last_seen == 1.0
    assert len(router.buffer.drain()[0]) == 2


def test_a_timestamp_from_2100_does_not_block_later_refreshes(coinbase_first: Router) -> None:
    """A trade stamped 2100 is re-stamped with its receive time: normal trades refresh again."""
    router = coinbase_first
    year_2100 = 4102444800.0
    bad = Quote("coinbase", "BTC-USD", PriceKind.TRADE, 100.0, ts=year_2100, recv_ts=1000.0)
    router.on_events("coinbase", [bad], mono=1.0)
    [src] = router.sources[("coinbase", "BTC-USD")]
    assert src.last_event_ts == 1000.0
    assert router.rejected[("coinbase", "clock_skew")] == 1
    for n in range(1, 6):
        good = Quote("coinbase", "BTC-USD", PriceKind.TRADE, 100.0, 1000.0 + n, 1000.0 + n)
        router.on_events("coinbase", [good], mono=1.0 + n)
    assert src.last_seen == 6.0


def test_a_stale_primary_does_not_route_a_snapshot_over_the_active_standby(
    coinbase_first: Router,
) -> None:
    """Coinbase (ranked first) went quiet and Binance prices BTCUSDT: a Coinbase snapshot
    with a newer trade must not interleave Coinbase prices with Binance's."""
    router = coinbase_first
    router.on_events("coinbase", [_quote("coinbase", "BTC-USD", 100.0, ts=1001.0)], 1.0)
    for n in range(12, 15):
        router.on_events("binance", [_quote("binance", "BTCUSDT", 200.0, ts=1000.0 + n)], n)
    router.buffer.drain()
    snapshot = _quote("coinbase", "BTC-USD", 101.0, ts=1013.5, snapshot=True)
    router.on_events("coinbase", [snapshot], mono=14.5)
    assert len(router.buffer) == 0
    assert router.standby["BTCUSDT"] == 1


SHARED_PAIR = """
[[feeds]]
venue = "VENUE"
symbols = ["PAIR"]
price = "trade"
aliases = { "PAIR" = "TRADED" }

[[feeds]]
venue = "VENUE"
symbols = ["PAIR"]
price = "mid"
aliases = { "PAIR" = "QUOTED" }
"""
TICKERS = {
    "kraken": (
        "BTC/USD",
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":99.0,'
        '"ask":101.0,"last":250.0}]}',
    ),
    "coinbase": (
        "BTC-USD",
        '{"channel":"ticker","timestamp":"2023-02-09T20:32:50Z","sequence_num":0,"events":'
        '[{"type":"update","tickers":[{"product_id":"BTC-USD","price":"250",'
        '"best_bid":"99","best_ask":"101"}]}]}',
    ),
    "okx": (
        "BTC-USDT",
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"last":"250","bidPx":"99","askPx":"101","ts":"1652459224956"}]}',
    ),
}


@pytest.mark.parametrize("venue", sorted(TICKERS))
def test_a_ticker_prices_the_mid_symbol_and_never_the_trade_symbol_of_the_same_pair(
    make_config: Callable[..., Config], venue: str
) -> None:
    """A trade feed and a mid feed share a pair: the ticker (last 250) moves QUOTED only."""
    pair, frame = TICKERS[venue]
    feeds = SHARED_PAIR.replace("VENUE", venue).replace("PAIR", pair)
    config = make_config(feeds, base='[universe]\nsymbols = ["TRADED", "QUOTED"]\n')
    router = Router(config.feeds, TickBuffer(100), start_mono=0.0)
    events = VENUES[venue].new_parser().parse(frame, 1.7e9)
    wall = max(e.ts for e in events if isinstance(e, Quote))  # received as it was sent
    router.on_events(venue, events, mono=1.0, wall=wall)
    ticks, _ = router.buffer.drain()
    assert [(t.symbol, t.price) for t in ticks] == [("QUOTED", 100.0)]
