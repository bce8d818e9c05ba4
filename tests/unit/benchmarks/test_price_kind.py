"""The measurements behind benchmarks/price_kind.py: noise, ticks, recorded streams, the rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.price_kind import recommend
from benchmarks.price_kind_bias import RHO, Bias, simulate
from benchmarks.price_kind_tables import Row
from benchmarks.recorded_streams import (
    RECORDINGS,
    Book,
    Recording,
    Stream,
    StreamStats,
    book,
    decimal_grid,
    load_frames,
    noise,
    parse_us,
    recordings_present,
    smallest_change,
    split_streams,
)
from feeds.events import PriceKind, Quote

needs_recordings = pytest.mark.skipif(
    not recordings_present(), reason="recordings in ../shared/data/recorded are absent"
)


def _recording(venue: str) -> Recording:
    return next(r for r in RECORDINGS if r.venue == venue)


def test_noise_recovers_iid_noise_on_a_random_walk() -> None:
    """minus the lag-1 autocovariance of tick returns is the noise variance, whatever the signal."""
    rng = np.random.default_rng(3)
    efficient = np.cumsum(rng.normal(0.0, 1e-4, 50_000))  # 1 bp a tick
    observed = np.exp(efficient + rng.normal(0.0, 2e-4, len(efficient)))  # 2 bp noise
    noise_bp, zero_share, returns = noise(observed.tolist())
    assert noise_bp == pytest.approx(2.0, rel=0.1)
    assert zero_share == 0.0
    assert returns == len(observed) - 1


def test_noise_is_zero_without_bounce_and_unknown_on_too_few_returns() -> None:
    """A trending series shows no noise; fewer than 3 returns give no estimate."""
    trend = [100.0, 100.0, 101.0, 102.0, 102.0, 103.0, 104.0, 104.0]
    noise_bp, zero_share, _ = noise(trend)
    assert noise_bp == 0.0
    assert zero_share == pytest.approx(3 / 7)
    assert noise([100.0, 101.0, 100.0]) == (None, 0.0, 2)


def test_smallest_change_ignores_repeats() -> None:
    assert smallest_change([10.0, 10.0, 10.03, 10.01, 10.01]) == pytest.approx(0.02)
    assert smallest_change([5.0, 5.0]) is None


@pytest.mark.parametrize(
    ("prices", "grid"),
    [([6.38e-06, 1.275e-05], 1e-8), ([65083.67, 65083.7], 0.01), ([5.123, 10.276], 0.001)],
)
def test_decimal_grid_is_the_coarsest_power_of_ten_all_prices_sit_on(
    prices: list[float], grid: float
) -> None:
    assert decimal_grid(prices) == pytest.approx(grid)


def _stream(prices: list[float], kind: PriceKind) -> Stream:
    quotes = [Quote("v", "X", kind, p, float(i), float(i)) for i, p in enumerate(prices)]
    return Stream(quotes=quotes, live_quotes=quotes)


def test_book_tick_is_twice_the_smallest_mid_step_when_trades_move_less_finely() -> None:
    """A mid moves by half a tick when one side of the book moves."""
    mids = _stream([100.005, 100.01, 100.015, 100.025], PriceKind.MID)
    trades = _stream([100.0, 100.03], PriceKind.TRADE)
    tick = book(trades, mids)
    assert tick.source == "changes"
    assert tick.tick_bp == pytest.approx(0.01 / 100.01 * 1e4, rel=1e-3)


def test_book_tick_falls_back_to_the_decimals_when_no_price_moved() -> None:
    """Unmoved prices give an upper bound of the tick, flagged as such."""
    tick = book(_stream([6.38e-06], PriceKind.TRADE), _stream([6.375e-06] * 3, PriceKind.MID))
    assert tick.source == "decimals"
    assert tick.tick_bp == pytest.approx(1e-8 / 6.375e-06 * 1e4, rel=1e-2)
    assert book(Stream(), Stream()) == Book(None, "")


@needs_recordings
@pytest.mark.shared
def test_binance_usdm_streams_hold_the_frames_of_one_channel_with_their_quotes() -> None:
    """bookTicker frames give one mid each, (bid + ask) / 2; aggTrade frames give trades."""
    recording = _recording("binance-usdm")
    frames = load_frames(recording)
    streams = split_streams(recording, frames)
    mid = streams[("SUSHIUSDT", PriceKind.MID)]
    books = [json.loads(d)["data"] for _, d in frames if '"sushiusdt@bookTicker"' in d]
    assert len(mid.frames) == len(mid.live_quotes) == len(books) > 100
    expected = [(float(b["b"]) + float(b["a"])) / 2 for b in books]
    assert [q.price for q in mid.quotes] == pytest.approx(expected)
    trade = streams[("SUSHIUSDT", PriceKind.TRADE)]
    assert len(trade.frames) == sum('"sushiusdt@aggTrade"' in d for _, d in frames)
    assert all(q.kind is PriceKind.TRADE for q in trade.quotes)
    instruments = ("AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT")
    assert set(streams) == {(i, k) for i in instruments for k in (PriceKind.TRADE, PriceKind.MID)}


@needs_recordings
@pytest.mark.shared
def test_coinbase_snapshot_history_is_left_out_of_rates() -> None:
    """market_trades opens with the last 100 trades: history, not live quotes."""
    recording = _recording("coinbase")
    frames = load_frames(recording)
    trade = split_streams(recording, frames)[("BTC-USD", PriceKind.TRADE)]
    assert trade.backlog_frames == 1
    assert len(trade.quotes) >= len(trade.live_quotes) + 90
    assert min(q.ts for q in trade.live_quotes) >= frames[0][0] - 1.0
    assert parse_us("coinbase", trade.frames) is not None


@needs_recordings
@pytest.mark.shared
def test_bybit_spot_has_no_mid_stream_without_orderbook_1() -> None:
    """Spot mids come from orderbook.1; the recording's spot tickers are not a mid stream."""
    recording = _recording("bybit-spot")
    kinds = {kind for _, kind in split_streams(recording, load_frames(recording))}
    assert kinds == {PriceKind.TRADE}


def _row(kind: str, instrument: str, cpu: float, corr_rmse: float | None) -> Row:
    stats = StreamStats("v", instrument, kind, 30.0, 1.0, 1.0, 3.0, 100.0, 1.0, 0.1, 0.5, 29)
    bias = None
    if corr_rmse is not None:
        b = Bias(0.0, 2.0, 0.0, corr_rmse, 0.1, 0.5, 0)
        bias = {"5s": b, "HY": b}
    return Row(stats, Book(1.0, "changes"), cpu, cpu, bias)


@pytest.mark.parametrize(
    ("mid_cpu", "mid_rmse", "expected"),
    [(2.0, 0.03, "mid"), (2.0, 0.10, "trade"), (20.0, 0.01, "trade"), (0.5, 0.035, "mid")],
)
def test_recommend_weighs_accuracy_and_cost(mid_cpu: float, mid_rmse: float, expected: str) -> None:
    """Mid when no less accurate (within 0.01 RMSE) and at most 10x trade's CPU."""
    rows = [_row("trade", "X", 1.0, 0.03), _row("mid", "X", mid_cpu, mid_rmse)]
    assert recommend("v", rows).kind == expected


def test_recommend_trade_when_mid_is_not_recorded() -> None:
    rows = [_row("trade", "X", 1.0, 0.03)]
    assert recommend("v", rows).kind == "trade"


def test_simulated_bias_separates_a_noisy_trade_stream_from_a_clean_one() -> None:
    """Tick by tick, a coarse one-tick bounce inflates volatility; a fine tick does not."""
    fine = simulate(2.0, 0.01, "trade", seeds=2, duration_s=3600.0)
    coarse = simulate(2.0, 3.0, "trade", seeds=2, duration_s=3600.0)
    assert abs(fine["HY"].vol_pct) < 10.0
    assert abs(fine["HY"].corr) < 0.15
    assert coarse["HY"].vol_pct > 30.0
    assert coarse["HY"].corr < -0.1
    assert abs(coarse["5s"].vol_pct) < coarse["HY"].vol_pct
    assert math.isfinite(coarse["5s"].corr + RHO)
