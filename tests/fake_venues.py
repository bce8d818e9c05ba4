"""Scripted fake venues on 127.0.0.1, one per venue protocol, speaking each venue's wire format.

Each :class:`FakeVenue` is a ``websockets`` server that answers what a client must be answered
(Deribit's JSON-RPC requests) and pushes, every ``step_s`` of real time, one trade (Deribit: one
ticker) per instrument of its :class:`Script`. Prices are random walks; a script *scenario*
replaces one tick of an instrument by a misbehaving one: a year-2100 time, a 1970 first tick, a
time 300 s ahead, a 1000x print, a -30% fall that later ticks confirm, a negative and a zero
price. The venue records the last *good* price it sent of each instrument: what the daemon
must show once the venue stops.

Frames follow the venues' public documentation (see ../shared/REFERENCE.md): Binance spot
``trade`` and USD-M ``aggTrade`` in the combined-stream wrapper, Coinbase Advanced Trade
``market_trades``, Kraken v2 ``trade``, OKX v5 ``trades``, Bybit v5 ``publicTrade`` and Deribit
``ticker.<instrument>.100ms`` notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import msgspec
import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

YEAR_2100 = 4_102_444_800.0
EPOCH_1970 = 1.0

SCENARIOS = ("y2100", "y1970", "skew", "bad", "fall", "neg")
"""Instrument scenarios: what the instrument's misbehaving tick is."""

_encode = msgspec.json.Encoder().encode


def native(venue: str, scenario: str) -> str:
    """The venue's native instrument name for a scenario, e.g. ``BAD-USD`` on Coinbase."""
    base = scenario.upper()
    return {
        "binance": f"{base}USDT",
        "binance-usdm": f"{base}USDT",
        "coinbase": f"{base}-USD",
        "kraken": f"{base}/USD",
        "okx": f"{base}-USDT",
        "bybit": f"{base}USDT",
        "deribit": f"{base}-PERPETUAL",
    }[venue]


def engine_symbol(venue: str, scenario: str) -> str:
    """The engine symbol the test aliases a venue's scenario instrument to."""
    return f"{venue.upper().replace('-', '')}.{scenario.upper()}"


def _rfc3339(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _binance(instrument: str, price: float, ts: float, n: int, event: str) -> dict[str, Any]:
    ms = int(ts * 1000)
    stream = f"{instrument.lower()}@{event}"
    data = {"e": event, "E": ms, "s": instrument, "p": f"{price:.8f}", "q": "0.01000000"}
    data |= {"T": ms, "m": False, "t" if event == "trade" else "a": n}
    return {"stream": stream, "data": data}


def frame(venue: str, instrument: str, price: float, ts: float, n: int) -> bytes:
    """One trade (Deribit: one ticker) of ``instrument`` at ``price`` and event time ``ts``."""
    ms = int(ts * 1000)
    message: dict[str, Any]
    if venue == "binance":
        message = _binance(instrument, price, ts, n, "trade")
    elif venue == "binance-usdm":
        message = _binance(instrument, price, ts, n, "aggTrade")
    elif venue == "coinbase":
        trade = {"trade_id": str(n), "product_id": instrument, "price": f"{price:.8f}"}
        trade |= {"size": "0.01", "side": "BUY", "time": _rfc3339(ts)}
        message = {"channel": "market_trades", "client_id": "", "timestamp": _rfc3339(ts)}
        message |= {"sequence_num": n, "events": [{"type": "update", "trades": [trade]}]}
    elif venue == "kraken":
        trade = {"symbol": instrument, "side": "buy", "price": price, "qty": 0.01}
        trade |= {"ord_type": "market", "trade_id": n, "timestamp": _rfc3339(ts)}
        message = {"channel": "trade", "type": "update", "data": [trade]}
    elif venue == "okx":
        trade = {"instId": instrument, "tradeId": str(n), "px": repr(price), "sz": "0.01"}
        trade |= {"side": "buy", "ts": str(ms), "count": "1"}
        message = {"arg": {"channel": "trades", "instId": instrument}, "data": [trade]}
    elif venue == "bybit":
        trade = {"T": ms, "s": instrument, "S": "Buy", "v": "0.01", "p": repr(price)}
        trade |= {"L": "PlusTick", "i": str(n), "BT": False}
        message = {"topic": f"publicTrade.{instrument}", "type": "snapshot", "ts": ms}
        message |= {"data": [trade]}
    elif venue == "deribit":
        data = {"timestamp": ms, "instrument_name": instrument, "mark_price": price}
        data |= {"index_price": abs(price), "last_price": price}
        params = {"channel": f"ticker.{instrument}.100ms", "data": data}
        message = {"jsonrpc": "2.0", "method": "subscription", "params": params}
    else:
        raise ValueError(f"no fake venue for {venue}")
    return _encode(message)


@dataclass
class Script:
    """What one venue sends: ``ticks`` rounds of one tick per scenario instrument.

    The scenario's tick is round ``anomaly_at`` (the 1970 one is round 0, the first), the
    fall happens at round ``anomaly_at`` and lasts. Everything else is a random walk of 0.05%
    steps around 100, stamped with the wall clock when sent.
    """

    venue: str
    ticks: int = 80
    anomaly_at: int = 30
    seed: int = 1
    last_good: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    _walk: dict[str, float] = field(default_factory=dict)
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def done(self) -> bool:
        """Whether every round was sent."""
        return self.sent >= self.ticks

    def round(self, now: float) -> list[bytes]:
        """The frames of the next round, sent at wall time ``now``."""
        n = self.sent
        self.sent += 1
        return [self._tick(scenario, n, now) for scenario in SCENARIOS]

    def _tick(self, scenario: str, n: int, now: float) -> bytes:
        instrument = native(self.venue, scenario)
        price = self._walk.get(instrument, 100.0) * math.exp(self._rng.normal(0.0, 0.0005))
        if scenario == "fall" and n == self.anomaly_at:
            price *= 0.7
        self._walk[instrument] = price
        ts, sent_price, good = now, price, True
        if n == (0 if scenario == "y1970" else self.anomaly_at):
            ts, sent_price, good = self._anomaly(scenario, now, price)
        elif scenario == "neg" and n == self.anomaly_at + 1:
            sent_price, good = 0.0, False
        if good:
            self.last_good[instrument] = sent_price
        return frame(self.venue, instrument, sent_price, ts, n + 1)

    @staticmethod
    def _anomaly(scenario: str, now: float, price: float) -> tuple[float, float, bool]:
        """(time, price, whether the daemon must end up applying it) of a scenario's tick."""
        return {
            "y2100": (YEAR_2100, price, True),  # re-stamped with the receive time, applied
            "y1970": (EPOCH_1970, price, False),  # rejected as out of order
            "skew": (now + 300.0, price, True),  # re-stamped, applied
            "bad": (now, price * 1000.0, False),  # held, never confirmed, dropped
            "fall": (now, price, True),  # held, confirmed by the next ticks, applied
            "neg": (now, -1.0, False),  # rejected as non-positive (then a zero, below)
        }[scenario]


class FakeVenue:
    """A scripted venue on 127.0.0.1: ``async with FakeVenue(script) as venue: venue.url``.

    The script starts with the first connection; later connections continue it.
    """

    def __init__(self, script: Script, step_s: float = 0.1) -> None:
        self.script = script
        self.step_s = step_s
        self.connections = 0
        self.url = ""
        self._server: Server | None = None
        self._clock: Callable[[], float] = time.time

    async def __aenter__(self) -> Self:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        async with asyncio.TaskGroup() as group:
            answering = group.create_task(self._answer(ws))
            with contextlib.suppress(ConnectionClosed):
                while not self.script.done:
                    for message in self.script.round(self._clock()):
                        await ws.send(message.decode())
                    await asyncio.sleep(self.step_s)
                await ws.wait_closed()
            answering.cancel()

    async def _answer(self, ws: ServerConnection) -> None:
        """Answer JSON-RPC requests (Deribit); other venues' subscribe frames need no answer
        for the client to proceed."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                request = msgspec.json.decode(raw) if raw != "ping" else None
                if isinstance(request, dict) and request.get("jsonrpc") == "2.0":
                    params = request.get("params") or {}
                    result = params.get("channels", "ok") if isinstance(params, dict) else "ok"
                    reply = {"jsonrpc": "2.0", "id": request.get("id"), "result": result}
                    await ws.send(_encode(reply).decode())
