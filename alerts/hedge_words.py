"""A book's hedge in a person's words: "sell 12.8 ETHUSDT perp: VaR 99% 41,000 -> 24,500".

Quantities are the trade to make now (minimum-variance holding minus what the book holds), in
units of each instrument, traded as a linear perpetual of one unit per contract. The VaR pair
is the hedge's own (:mod:`monitor.risk.hedge`): the book as held, then after the trade, with
the same multipliers; for an account with options it is the VaR of the delta-linearised book
("delta VaR"), not its Monte Carlo VaR.
"""

from __future__ import annotations

from monitor.risk.snapshot import DeltaHedge, HedgeRisk


def quantity_words(quantity: float) -> str:
    """A quantity to trade, 3 significant digits, thousands separated from 1,000."""
    size = abs(quantity)
    return f"{size:,.0f}" if size >= 1_000 else f"{size:.3g}"


def trade_words(symbol: str, trade: float) -> str:
    """``sell 12.8 ETHUSDT perp`` (or buy)."""
    return f"{'sell' if trade < 0 else 'buy'} {quantity_words(trade)} {symbol} perp"


def suggestion(hedge: HedgeRisk, linearised: bool = False) -> str:
    """The trade and what it does to the VaR at the highest confidence, or why there is none.

    Args:
        hedge: a book's hedge.
        linearised: the VaR pair is of the delta-linearised book (accounts with options).
    """
    trades = [(leg.symbol, leg.trade) for leg in hedge.legs if leg.trade is not None]
    if hedge.reason is not None or not trades:
        return f"none: {hedge.reason or 'no figures yet'}"
    words = ", ".join(trade_words(symbol, trade) for symbol, trade in trades)
    tail = hedge.tails[-1] if hedge.tails else None
    if tail is None or tail.var is None or tail.var_hedged is None:
        return words
    name = "delta VaR" if linearised else "VaR"
    return f"{words}: {name} {tail.confidence:.0%} {tail.var:,.0f} -> {tail.var_hedged:,.0f}"


def delta_words(delta: DeltaHedge) -> str:
    """``sell 1.2 BTCUSD perp; vega -1,234 per vol point, a 1-sigma IV move costs 3,456``."""
    words = (
        "delta flat"
        if delta.perp_quantity == 0.0
        else trade_words(delta.symbol, delta.perp_quantity)
    )
    if delta.iv_shock is None or delta.vega_cost is None:
        return words
    return (
        f"{words}; vega {delta.vega:,.0f} per vol point, a 1-sigma vol-of-vol move "
        f"(IV x{1.0 + delta.iv_shock:.3f}) costs {delta.vega_cost:,.0f}"
    )


def hedge_details(book: str, hedge: HedgeRisk) -> list[tuple[str, str]]:
    """The (label, text) facts of a book's hedge for a notification.

    Args:
        book: how the book is named in the labels, e.g. ``"portfolio main"``.
        hedge: its hedge.
    """
    out = [(f"hedge ({book})", suggestion(hedge, linearised=bool(hedge.delta)))]
    out += [(f"delta hedge {d.symbol}", delta_words(d)) for d in hedge.delta]
    return out
