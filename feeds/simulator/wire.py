"""Pure encoders of simulated ticks into the venues' public websocket wire formats.

Frames are UTF-8 JSON ``bytes`` (the server sends them as text frames). Simulator symbols are
engine names (``BTCUSDT``); each venue maps them to its native names: Binance keeps them,
Coinbase strips ``USDT`` and adds ``-USD`` (``BTC-USD``), Deribit lists ``BTC-PERPETUAL`` and
``ETH-PERPETUAL`` only, plus one BTC call option (:func:`btc_option_for`).

Formats follow the public documentation: Binance spot (combined-stream wrapper ``{"stream",
"data"}``, decimal strings padded to 8 places), Coinbase Advanced Trade (``channel``,
``timestamp``, per-connection ``sequence_num``, ``events``) and Deribit JSON-RPC 2.0
notifications (plain JSON numbers, option prices in coin, implied vols in percent). Fields a risk
monitor does not need (24 h statistics, open interest) carry plausible constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from feeds.simulator.market import SECONDS_PER_YEAR, SimTick

_encode = msgspec.json.Encoder().encode
DERIBIT_VERSION = "1.2.26"
DERIBIT_PERPETUALS = {"BTCUSDT": "BTC-PERPETUAL", "ETHUSDT": "ETH-PERPETUAL"}
DERIBIT_TICK_SIZE = {"BTCUSDT": 0.5, "ETHUSDT": 0.05}
OPTION_TICK_SIZE = 0.0001


def _floor(x: float, decimals: int) -> float:
    scale = 10.0**decimals
    return math.floor(x * scale + 1e-9) / scale


def _ceil(x: float, decimals: int) -> float:
    scale = 10.0**decimals
    return math.ceil(x * scale - 1e-9) / scale


def _decimal(x: float, decimals: int, width: int | None = None) -> str:
    """``x`` rounded to ``decimals`` places, written with ``width`` places (default: the same)."""
    return f"{round(x, decimals):.{decimals if width is None else width}f}"


def _on_grid(x: float, step: float, rounding: Callable[[float], float] = round) -> float:
    """``x`` on a price grid of ``step`` (rounded, floored or ceiled), without float residue."""
    return round(rounding(x / step) * step, 8)


def _ms(ts: float) -> int:
    return int(ts * 1000.0)


def rfc3339(ts: float) -> str:
    """Unix seconds as ``2025-01-01T00:00:00.123456Z`` (Coinbase's timestamp style)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- Binance spot ---------------------------------------------------------------------------


def binance_streams(symbol: str) -> tuple[str, str]:
    """The trade and bookTicker stream names of an engine symbol."""
    low = symbol.lower()
    return f"{low}@trade", f"{low}@bookTicker"


def binance_trade(tick: SimTick) -> dict[str, Any]:
    """The ``<symbol>@trade`` payload (``m``: the buyer is the maker, i.e. the taker sold)."""
    ms = _ms(tick.ts)
    return {
        "e": "trade",
        "E": ms,
        "s": tick.symbol,
        "t": tick.trade_id,
        "p": _decimal(tick.price, tick.price_decimals, 8),
        "q": _decimal(tick.size, 8),
        "T": ms,
        "m": not tick.taker_buy,
        "M": True,
    }


def binance_book_ticker(tick: SimTick) -> dict[str, Any]:
    """The ``<symbol>@bookTicker`` payload; ``u`` (book update id) follows the trade id."""
    d = tick.price_decimals
    return {
        "u": tick.trade_id,
        "s": tick.symbol,
        "b": f"{_floor(tick.bid, d):.8f}",
        "B": _decimal(tick.size * 3.0, 8),
        "a": f"{_ceil(tick.ask, d):.8f}",
        "A": _decimal(tick.size * 2.0, 8),
    }


def binance_frame(stream: str, payload: Mapping[str, Any], combined: bool) -> bytes:
    """A frame: wrapped as ``{"stream","data"}`` on ``/stream`` connections, raw on ``/ws``."""
    return _encode({"stream": stream, "data": payload} if combined else payload)


def binance_reply(request_id: object, result: object) -> bytes:
    """Answer to SUBSCRIBE/UNSUBSCRIBE (``result`` None) or LIST_SUBSCRIPTIONS (a list)."""
    return _encode({"result": result, "id": request_id})


def binance_error(request_id: object, code: int, msg: str) -> bytes:
    """Error answer: code 2 invalid request, 3 invalid JSON."""
    return _encode({"error": {"code": code, "msg": msg}, "id": request_id})


# --- Coinbase Advanced Trade ----------------------------------------------------------------


def coinbase_product(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USD``."""
    return symbol.removesuffix("USDT") + "-USD"


def _coinbase(channel: str, seq: int, now_ts: float, events: list[dict[str, Any]]) -> bytes:
    return _encode(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": rfc3339(now_ts),
            "sequence_num": seq,
            "events": events,
        }
    )


def coinbase_market_trades(
    ticks: Sequence[SimTick], seq: int, now_ts: float, kind: str = "update"
) -> bytes:
    """A ``market_trades`` message (``kind`` "snapshot" right after subscribing)."""
    trades = [
        {
            "trade_id": str(t.trade_id),
            "product_id": coinbase_product(t.symbol),
            "price": _decimal(t.price, t.price_decimals),
            "size": _decimal(t.size, 8),
            "side": "BUY" if t.taker_buy else "SELL",
            "time": rfc3339(t.ts),
        }
        for t in ticks
    ]
    return _coinbase("market_trades", seq, now_ts, [{"type": kind, "trades": trades}])


def _coinbase_ticker_entry(t: SimTick) -> dict[str, Any]:
    d = t.price_decimals
    price = _decimal(t.price, d)
    return {
        "type": "ticker",
        "product_id": coinbase_product(t.symbol),
        "price": price,
        "volume_24_h": _decimal(t.size * 50_000.0, 8),
        "low_24_h": price,
        "high_24_h": price,
        "low_52_w": price,
        "high_52_w": price,
        "price_percent_chg_24_h": "0",
        "best_bid": _decimal(_floor(t.bid, d), d),
        "best_bid_quantity": _decimal(t.size * 3.0, 8),
        "best_ask": _decimal(_ceil(t.ask, d), d),
        "best_ask_quantity": _decimal(t.size * 2.0, 8),
    }


def coinbase_ticker(
    ticks: Sequence[SimTick], seq: int, now_ts: float, kind: str = "update"
) -> bytes:
    """A ``ticker`` message with one ticker entry per tick."""
    entries = [_coinbase_ticker_entry(t) for t in ticks]
    return _coinbase("ticker", seq, now_ts, [{"type": kind, "tickers": entries}])


def coinbase_heartbeat(seq: int, counter: int, now_ts: float) -> bytes:
    """A ``heartbeats`` message (Go-style ``current_time``, integer counter as in production)."""
    current = datetime.fromtimestamp(now_ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")
    return _coinbase(
        "heartbeats", seq, now_ts, [{"current_time": current, "heartbeat_counter": counter}]
    )


def coinbase_subscriptions(seq: int, now_ts: float, subs: Mapping[str, Iterable[str]]) -> bytes:
    """The ``subscriptions`` acknowledgement listing every channel's products."""
    event = {"subscriptions": {ch: sorted(p) for ch, p in subs.items() if p}}
    return _coinbase("subscriptions", seq, now_ts, [event])


def coinbase_error(message: str, reason: str = "") -> bytes:
    """An error message (not sequenced)."""
    return _encode({"type": "error", "message": message, "reason": reason})


# --- Deribit --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """A European call on Deribit, priced with Black-76 (zero rate) at the regime's volatility."""

    instrument: str
    underlying: str
    strike: float
    expiry_ts: float


def btc_option_for(start_ts: float, btc_price: float) -> OptionSpec:
    """The at-the-money BTC call expiring on the Friday 08:00 UTC four weeks after start."""
    start = datetime.fromtimestamp(start_ts, UTC) + timedelta(days=28)
    friday = start + timedelta(days=(4 - start.weekday()) % 7)
    expiry = friday.replace(hour=8, minute=0, second=0, microsecond=0)
    strike = max(5000.0, round(btc_price / 5000.0) * 5000.0)
    label = f"{expiry.day}{expiry.strftime('%b%y').upper()}"
    return OptionSpec(f"BTC-{label}-{int(strike)}-C", "BTCUSDT", strike, expiry.timestamp())


def deribit_channel(instrument: str) -> str:
    """The public ticker channel of an instrument."""
    return f"ticker.{instrument}.100ms"


def deribit_notification(channel: str, data: Mapping[str, Any]) -> bytes:
    """A ``subscription`` notification."""
    params = {"channel": channel, "data": data}
    return _encode({"jsonrpc": "2.0", "method": "subscription", "params": params})


def deribit_perpetual_ticker(tick: SimTick) -> bytes:
    """Ticker notification of the tick's perpetual (BTC or ETH only)."""
    instrument = DERIBIT_PERPETUALS[tick.symbol]
    step = DERIBIT_TICK_SIZE[tick.symbol]
    price = round(tick.price, 2)
    amount = max(10.0, round(tick.size * tick.price / 10.0) * 10.0)
    data = {
        "timestamp": _ms(tick.ts),
        "stats": {"volume_usd": amount * 1000.0, "volume": tick.size * 1000.0},
        "state": "open",
        "settlement_price": price,
        "open_interest": 1.0e9,
        "min_price": round(price * 0.985, 2),
        "max_price": round(price * 1.015, 2),
        "mark_price": price,
        "last_price": _on_grid(tick.price, step),
        "interest_value": 0.0,
        "instrument_name": instrument,
        "index_price": price,
        "funding_8h": 0.0,
        "estimated_delivery_price": price,
        "current_funding": 0.0,
        "best_bid_price": _on_grid(tick.bid, step, math.floor),
        "best_bid_amount": amount,
        "best_ask_price": _on_grid(tick.ask, step, math.ceil),
        "best_ask_amount": amount,
    }
    return deribit_notification(deribit_channel(instrument), data)


def black76_call(forward: float, strike: float, t_years: float, vol: float) -> dict[str, float]:
    """Black-76 call with zero rate: price (USD) and greeks (vega, rho per 1%; theta per day)."""
    t = max(t_years, 1e-9)
    sd = max(vol, 1e-9) * math.sqrt(t)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    cdf1, cdf2 = _norm_cdf(d1), _norm_cdf(d2)
    return {
        "price": forward * cdf1 - strike * cdf2,
        "delta": cdf1,
        "gamma": pdf / (forward * sd),
        "vega": forward * pdf * math.sqrt(t) / 100.0,
        "theta": -forward * pdf * vol / (2.0 * math.sqrt(t)) / 365.0,
        "rho": strike * t * cdf2 / 100.0,
    }


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _coin_price(option: OptionSpec, forward: float, t_years: float, vol: float) -> float:
    return black76_call(forward, option.strike, t_years, vol)["price"] / forward


def deribit_option_ticker(tick: SimTick, option: OptionSpec) -> bytes:
    """Ticker notification of ``option`` from a tick of its underlying."""
    t_years = max(option.expiry_ts - tick.ts, 60.0) / SECONDS_PER_YEAR
    vol = tick.vol_annual
    g = black76_call(tick.price, option.strike, t_years, vol)
    mark = g["price"] / tick.price
    bid = _coin_price(option, tick.price, t_years, vol * 0.96)
    ask = _coin_price(option, tick.price, t_years, vol * 1.04)
    greeks = {k: round(g[k], 5) for k in ("delta", "gamma", "vega", "theta", "rho")}
    data = {
        "timestamp": _ms(tick.ts),
        "state": "open",
        "instrument_name": option.instrument,
        "underlying_index": "SYN." + option.instrument.rsplit("-", 2)[0],
        "underlying_price": round(tick.price, 2),
        "index_price": round(tick.price, 2),
        "mark_price": round(mark, 8),
        "mark_iv": round(vol * 100.0, 2),
        "bid_iv": round(vol * 96.0, 2),
        "ask_iv": round(vol * 104.0, 2),
        "best_bid_price": _floor(bid, 4),
        "best_bid_amount": 5.0,
        "best_ask_price": round(max(_ceil(ask, 4), _floor(bid, 4) + OPTION_TICK_SIZE), 4),
        "best_ask_amount": 5.0,
        "last_price": round(mark, 4),
        "interest_rate": 0.0,
        "open_interest": 120.0,
        "greeks": greeks,
        "stats": {"volume": 10.0, "price_change": 0.0},
    }
    return deribit_notification(deribit_channel(option.instrument), data)


def deribit_result(request_id: object, result: object, sim_ts: float) -> bytes:
    """A JSON-RPC success response with Deribit's timing fields (microseconds)."""
    us = int(sim_ts * 1e6)
    body = {"jsonrpc": "2.0", "id": request_id, "result": result}
    return _encode({**body, "usIn": us, "usOut": us + 50, "usDiff": 50, "testnet": False})


def deribit_error(request_id: object, code: int, message: str, reason: str = "") -> bytes:
    """A JSON-RPC error response (e.g. -32601 method not found, -32602 invalid params)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if reason:
        error["data"] = {"reason": reason}
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": error})


def deribit_heartbeat(kind: str = "test_request") -> bytes:
    """A ``heartbeat`` notification; ``test_request`` must be answered with public/test."""
    return _encode({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": kind}})


# --- Malformed frames -----------------------------------------------------------------------

_MALFORMED: dict[str, tuple[bytes, ...]] = {
    "binance": (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":17',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":"soon","s":7,"t":"x",'
        b'"p":null,"q":[],"T":{},"m":"no"}}',
        b"[1,2,3]",
    ),
    "coinbase": (
        b'{"channel":"market_trades","timestamp":"2025-',
        b'{"channel":"market_trades","client_id":"","timestamp":7,"sequence_num":"x",'
        b'"events":[{"type":"update","trades":[{"product_id":1,"price":null,"size":{}}]}]}',
        b'"just a string"',
    ),
    "deribit": (
        b'{"jsonrpc":"2.0","method":"subscription","params":{"chan',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
        b'"ticker.BTC-PERPETUAL.100ms","data":{"timestamp":"now","mark_price":"high",'
        b'"instrument_name":42,"best_bid_price":[]}}}',
        b"null",
    ),
}


def malformed_frame(venue: str, k: int) -> bytes:
    """The ``k``-th malformed frame of a venue: truncated JSON, wrong types, or not an object."""
    frames = _MALFORMED[venue]
    return frames[k % len(frames)]
