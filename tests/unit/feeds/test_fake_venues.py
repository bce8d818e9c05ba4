"""The fake venues' frames parse with riskmon's own parsers to the prices and times sent.

This keeps ``tests/fake_venues.py`` honest (its frames are each venue's wire format), and shows
that every parser hands a zero or negative trade (or mark) price on as a quote, for the router
to count and drop, instead of letting it vanish.
"""

from __future__ import annotations

import pytest

from feeds.events import PriceKind, Quote
from feeds.registry import VENUES
from tests.fake_venues import YEAR_2100, frame

KIND = {"deribit": PriceKind.MARK}
ALL = ("binance", "binance-usdm", "coinbase", "kraken", "okx", "bybit", "deribit")
NAMES = {
    "binance": "BTCUSDT",
    "binance-usdm": "BTCUSDT",
    "coinbase": "BTC-USD",
    "kraken": "BTC/USD",
    "okx": "BTC-USDT",
    "bybit": "BTCUSDT",
    "deribit": "BTC-PERPETUAL",
}


@pytest.mark.parametrize("venue", ALL)
@pytest.mark.parametrize("price", [65_083.67, 0.0, -1.0])
@pytest.mark.parametrize("ts", [1_750_000_000.125, 1.0, YEAR_2100])
def test_frames_parse_to_what_was_sent(venue: str, price: float, ts: float) -> None:
    """Price (non-positive ones included) and event time come out as sent, to the ms."""
    instrument = NAMES[venue]
    events = VENUES[venue].new_parser().parse(frame(venue, instrument, price, ts, 7), ts + 0.5)
    kind = KIND.get(venue, PriceKind.TRADE)
    [quote] = [e for e in events if isinstance(e, Quote) and e.kind is kind]
    assert (quote.venue, quote.instrument) == (venue, instrument)
    assert quote.price == pytest.approx(price, abs=1e-8)
    assert quote.ts == pytest.approx(ts, abs=1e-3)
    assert quote.recv_ts == ts + 0.5
