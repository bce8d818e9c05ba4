"""Venue names (as written in ``[[feeds]] venue``) to their protocol modules."""

from __future__ import annotations

from collections.abc import Mapping

from feeds.venue import VenueSpec
from feeds.venues.binance import BINANCE, BINANCE_USDM
from feeds.venues.bybit import BYBIT, BYBIT_SPOT
from feeds.venues.coinbase import COINBASE
from feeds.venues.deribit import DERIBIT
from feeds.venues.kraken import KRAKEN
from feeds.venues.okx import OKX

VENUES: Mapping[str, VenueSpec] = {
    spec.name: spec
    for spec in (BINANCE, BINANCE_USDM, COINBASE, KRAKEN, OKX, BYBIT, BYBIT_SPOT, DERIBIT)
}
