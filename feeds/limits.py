"""Each venue's documented limits on connections, requests and streams, in one table.

The session asks a :class:`~feeds.budget.RequestBudget` built from these figures before it opens
a socket or sends a subscribe, unsubscribe or control frame; the plans split instruments over
connections at ``streams_per_connection``. Where a venue documents no figure, the value is our
own conservative choice and the table says so.

| venue | streams/conn | requests/conn | requests/IP | connects/IP | source |
|---|---|---|---|---|---|
| binance | 1024 | 4/s (5/s documented) | - | 300 per 5 min | 1 |
| binance-usdm | 200 | 8/s (10/s documented) | - | 300 per 5 min (a) | 2 |
| coinbase | 100 (b) | - | 8/s | 8/s | 3 |
| kraken | 100 (b) | 10 per 10 s (c) | - | 150 per 10 min (b) | 4 |
| okx | 200 (b) | 480 per hour | - | 3/s | 5 |
| bybit, bybit-spot | 200 (b) | 10/s (b) | - | 500 per 5 min (shared) | 6 |
| deribit | 500 (b) | - | 10/s (20/s, burst 100 documented) | 10 per 10 s (d) | 7 |

(a) USD-M publishes no connection rate: spot's figure. (b) No figure published: our choice.
(c) Kraken's message limit is dynamic ("Exceeded msg rate"): our choice. (d) Deribit limits
open connections (32 per IP), not their rate: our choice. Binance counts pings and pongs as
incoming messages, so we keep one message per second free for them. Spot Bybit takes at most 10
args per subscribe request, OKX 64 KB: the subscribe frames are chunked accordingly.

Requests are the frames we send (subscribe, unsubscribe, Deribit's ``set_heartbeat``); "per IP"
budgets are shared by every connection of the venue (one :class:`VenueBudget` per ``group``).

Sources:

1. https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
2. https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
3. https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-rate-limits
4. https://docs.kraken.com/api/docs/guides/spot-ratelimits
5. https://www.okx.com/docs-v5/en/#overview-websocket-connect and #overview-websocket-subscribe
6. https://bybit-exchange.github.io/docs/v5/rate-limit (WebSocket IP limit) and /v5/ws/connect
7. https://support.deribit.com/hc/en-us/articles/25944617523357-Rate-Limits and
   https://docs.deribit.com/articles/connection-management-best-practices
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` events in any ``seconds`` (a sliding window)."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if self.count < 2 or not self.seconds > 0.0:
            # two: an unsubscribe and its subscribe must always fit in one window
            raise ValueError(f"a window needs count >= 2 and seconds > 0, got {self}")


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """What one venue allows a client, as the session and the plans apply it.

    Attributes:
        group: venues sharing per-IP budgets (same host), e.g. "bybit" for linear and spot.
        streams_per_connection: instruments of one price kind per socket; plans split beyond.
        requests_per_connection: frames one socket may send.
        requests_per_ip: frames all sockets of the group may send together.
        connects_per_ip: sockets the group may open.
    """

    group: str
    streams_per_connection: int
    requests_per_connection: tuple[Window, ...] = ()
    requests_per_ip: tuple[Window, ...] = ()
    connects_per_ip: tuple[Window, ...] = ()


_BINANCE_CONNECTS: Final = (Window(300, 300.0),)

BINANCE: Final = VenueLimits(
    "binance", 1024, requests_per_connection=(Window(4, 1.0),), connects_per_ip=_BINANCE_CONNECTS
)
BINANCE_USDM: Final = VenueLimits(
    "binance-usdm",
    200,
    requests_per_connection=(Window(8, 1.0),),
    connects_per_ip=_BINANCE_CONNECTS,
)
COINBASE: Final = VenueLimits(
    "coinbase", 100, requests_per_ip=(Window(8, 1.0),), connects_per_ip=(Window(8, 1.0),)
)
KRAKEN: Final = VenueLimits(
    "kraken",
    100,
    requests_per_connection=(Window(10, 10.0),),
    connects_per_ip=(Window(150, 600.0),),
)
OKX: Final = VenueLimits(
    "okx", 200, requests_per_connection=(Window(480, 3600.0),), connects_per_ip=(Window(3, 1.0),)
)
BYBIT: Final = VenueLimits(
    "bybit", 200, requests_per_connection=(Window(10, 1.0),), connects_per_ip=(Window(500, 300.0),)
)
DERIBIT: Final = VenueLimits(
    "deribit", 500, requests_per_ip=(Window(10, 1.0),), connects_per_ip=(Window(10, 10.0),)
)
UNLIMITED: Final = VenueLimits("unlimited", 1_000_000)
"""For test venues: no budget, no split."""
