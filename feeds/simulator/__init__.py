"""A local exchange simulator: a deterministic market model served as Binance, Coinbase and Deribit.

Used by ``riskmon demo`` and the integration tests. :mod:`~feeds.simulator.market` is the pure
model, :mod:`~feeds.simulator.wire` the pure frame encoders, :mod:`~feeds.simulator.endpoints` the
sans-I/O venue behaviour, :mod:`~feeds.simulator.connections` the bounded per-connection queues
and :mod:`~feeds.simulator.server` the asyncio servers.
"""

from feeds.simulator.connections import VenueStats
from feeds.simulator.market import (
    MarketModel,
    Regime,
    ReplaySource,
    Scenario,
    SimTick,
    SymbolSpec,
    TickSource,
    default_crash_scenario,
)
from feeds.simulator.server import VENUES, ExchangeSimulator

__all__ = [
    "VENUES",
    "ExchangeSimulator",
    "MarketModel",
    "Regime",
    "ReplaySource",
    "Scenario",
    "SimTick",
    "SymbolSpec",
    "TickSource",
    "VenueStats",
    "default_crash_scenario",
]
