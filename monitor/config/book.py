"""``[[accounts]]`` and ``[stress]``: a derivatives book with its collateral, as configured.

The same Structs decode the TOML file and the JSON body of ``POST /api/v1/positions``, so a
book replaced while running is validated exactly like one read at start.

Units: prices and amounts in USD unless a field says otherwise. A position's size is
``contracts * contract_size``, signed (negative = short):

- ``spot``: units of the underlying (coins).
- ``linear``: USDT/USDC-margined perpetual or future; units of the underlying per contract.
- ``inverse``: coin-margined perpetual or future; USD per contract (Deribit BTC-PERPETUAL: 10).
- ``option``: units of the underlying per contract (Deribit BTC options: 1). ``settlement``
  says whether it pays in coin (``inverse``, Deribit BTC/ETH) or in USDC (``linear``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from monitor.errors import DataError
from monitor.risk.options import parse_instrument

SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._:/-]*$"
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"

Symbol = Annotated[str, Meta(pattern=SYMBOL_PATTERN)]
Name = Annotated[str, Meta(pattern=NAME_PATTERN)]
PositionKind = Literal["spot", "linear", "inverse", "option"]
MarginModel = Literal["binance-usdm", "bybit-unified", "deribit-pm", "cash"]
BracketRow = Annotated[tuple[float, ...], Meta(min_length=2, max_length=3)]
Fraction = Annotated[float, Meta(ge=0.0, lt=1.0)]
HedgeWith = Annotated[tuple[Symbol, ...], Meta(min_length=1)]
"""``hedge_with``: the engine symbols a book may trade to hedge; at least one, each once."""


class CollateralConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One collateral balance of an account.

    Attributes:
        asset: currency held, e.g. ``USDT``, ``USDC``, ``BTC``.
        amount: balance in units of ``asset`` (negative for a borrowed balance).
        haircut: fraction of its value that does not count as margin (0.05 = 5%).
        price_symbol: engine symbol pricing one unit in USD (a stablecoin's own feed, e.g.
            ``USDCUSDT``, or ``BTCUSDT``); without it the asset is worth exactly 1 USD.
        stablecoin: a pegged asset: the stress scenarios leave its price alone (its own feed
            still revalues it, so a de-peg shows up in the margin).
    """

    asset: Annotated[str, Meta(min_length=1)]
    amount: float
    haircut: Fraction = 0.0
    price_symbol: Symbol | None = None
    stablecoin: bool = False


class BookPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One position of an account.

    Attributes:
        instrument: the venue's name (labels, and the option mark feed key: a Deribit ticker).
        kind: see the module docstring.
        underlying: engine symbol of the underlying's USD price.
        contracts: signed number of contracts.
        contract_size: see the module docstring.
        entry_price: average entry price, USD (linear and inverse: required).
        strike: option strike, USD; parsed from a Deribit name when absent.
        expiry: expiry (UTC when naive); Deribit names give 08:00 UTC of their date.
        right: ``call`` or ``put``; parsed from a Deribit name when absent.
        settlement: option settlement, coin (``inverse``) or USDC (``linear``).
        iv: implied volatility (0.6 = 60%) used until the feed delivers a mark IV.
        brackets: maintenance tiers of this position, overriding the account's.
    """

    instrument: Annotated[str, Meta(min_length=1)]
    kind: PositionKind
    underlying: Symbol
    contracts: float
    contract_size: Annotated[float, Meta(gt=0.0)] = 1.0
    entry_price: Annotated[float, Meta(gt=0.0)] | None = None
    strike: Annotated[float, Meta(gt=0.0)] | None = None
    expiry: datetime | None = None
    right: Literal["call", "put"] | None = None
    settlement: Literal["inverse", "linear"] = "inverse"
    iv: Annotated[float, Meta(gt=0.0, le=10.0)] | None = None
    brackets: tuple[BracketRow, ...] = ()

    @property
    def size(self) -> float:
        """Signed size, ``contracts * contract_size``."""
        return self.contracts * self.contract_size

    def option_terms(self) -> tuple[float, float, bool]:
        """``(strike, expiry Unix seconds, is_call)``, from the fields or the Deribit name.

        Raises:
            DataError: a term is neither configured nor in the name.
        """
        strike, expiry, right = self.strike, self.expiry, self.right
        if strike is None or expiry is None or right is None:
            try:
                parsed = parse_instrument(self.instrument)
            except DataError:
                raise DataError(
                    "an option needs strike, expiry and right, or a Deribit name such as "
                    f"BTC-27JUN25-100000-C; got {self.instrument!r}"
                ) from None
            strike = parsed.strike if strike is None else strike
            right = ("call" if parsed.is_call else "put") if right is None else right
            expiry_ts = parsed.expiry_ts if expiry is None else _timestamp(expiry)
        else:
            expiry_ts = _timestamp(expiry)
        return strike, expiry_ts, right == "call"

    def expiry_ts(self) -> float | None:
        """Expiry in Unix seconds when configured (futures, options); None for perpetuals."""
        if self.kind == "option":
            return self.option_terms()[1]
        return None if self.expiry is None else _timestamp(self.expiry)


class AccountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[accounts]]`` entry: positions and collateral margined together.

    Attributes:
        name: unique name, the ``account`` label.
        venue: where the account is (a label only).
        margin: margin model: Binance USD-M tiers, Bybit unified account, Deribit portfolio
            margin, or ``cash`` (no margin: risk figures only).
        settlement: currency the margin is computed in (Deribit: ``BTC``, ``ETH``, ``USDC``).
        settlement_symbol: engine symbol pricing one ``settlement`` unit in USD; none: 1 USD.
        brackets: maintenance tiers ``[notional cap, rate(, maintenance amount)]`` for every
            position without its own (Binance USD-M, Bybit risk limits).
        collateral: balances.
        positions: positions, each instrument once.
        hedge_with: engine symbols that may be traded to hedge the book's delta (a linear
            perpetual of one unit of the symbol per contract); None (the default): no hedge.
    """

    name: Name
    venue: str = ""
    margin: MarginModel = "cash"
    settlement: str = "USD"
    settlement_symbol: Symbol | None = None
    brackets: tuple[BracketRow, ...] = ()
    collateral: tuple[CollateralConfig, ...] = ()
    positions: tuple[BookPosition, ...] = ()
    hedge_with: HedgeWith | None = None

    def symbols(self) -> Iterator[str]:
        """Engine symbols the account needs priced (may repeat)."""
        for position in self.positions:
            yield position.underlying
        for balance in self.collateral:
            if balance.price_symbol is not None:
                yield balance.price_symbol
        if self.settlement_symbol is not None:
            yield self.settlement_symbol


BUILTIN_SCENARIOS = ("grid", "extended", "diversification_failure", "iv_up", "iv_down")
"""Scenario names riskmon gives its own scenarios; a configured shock takes another name."""


class ShockConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One historical shock: a fractional move per engine symbol (-0.39 = -39%).

    Symbols that a shock does not name do not move in it.
    """

    name: Name
    moves: dict[Symbol, Annotated[float, Meta(gt=-1.0)]]
    vol_up: bool = True


class StressConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[stress]``: the scenarios each account is revalued under.

    Attributes:
        k_sigma: diversification failure: every underlying moves by this many of its own
            horizon sigmas, all in the same direction, with volatility up.
        vol_up: relative implied-volatility rise of the vol-up scenarios (0.5 = +50%).
        vol_down: relative implied-volatility fall of the vol-down scenarios.
        extended_coverage: share of the extended moves' (-66%, -33%, +50%, +100%) P&L that
            counts towards ``stress_loss``, as SPAN counts a fraction of its extreme moves.
        shocks: historical shocks.
    """

    k_sigma: Annotated[float, Meta(gt=0.0)] = 3.0
    vol_up: Annotated[float, Meta(ge=0.0)] = 0.5
    vol_down: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.25
    extended_coverage: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.35
    shocks: tuple[ShockConfig, ...] = ()


class PositionsUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/positions``: the whole new set of accounts."""

    accounts: tuple[AccountConfig, ...]


def account_problems(account: AccountConfig) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(key below the account, detail)`` for what the schema cannot check."""
    seen: set[str] = set()
    for i, pos in enumerate(account.positions):
        key: tuple[str | int, ...] = ("positions", i)
        if pos.instrument in seen:
            yield (*key, "instrument"), f"{pos.instrument!r} appears twice in the account"
        seen.add(pos.instrument)
        yield from ((key + k, d) for k, d in _position_problems(pos, account))
    if account.margin == "deribit-pm" and len({p.underlying for p in account.positions}) > 1:
        yield ("positions",), "a deribit-pm account margins one underlying; split the account"
    if account.margin in ("binance-usdm", "bybit-unified"):
        yield from _bracket_problems(account)
    yield from hedge_with_problems(account.hedge_with)


def hedge_with_problems(
    hedge_with: Sequence[str] | None,
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(key, detail)`` for a symbol listed twice in ``hedge_with``."""
    seen: set[str] = set()
    for i, symbol in enumerate(hedge_with or ()):
        if symbol in seen:
            yield ("hedge_with", i), f'"{symbol}" appears twice; expected each symbol once'
        seen.add(symbol)


def _position_problems(
    pos: BookPosition, account: AccountConfig
) -> Iterator[tuple[tuple[str, ...], str]]:
    if pos.kind in ("linear", "inverse") and pos.entry_price is None:
        yield ("entry_price",), f"a {pos.kind} position needs its entry price"
    if pos.kind == "option":
        try:
            pos.option_terms()
        except DataError as exc:
            yield ("instrument",), str(exc)
        if pos.iv is None:
            yield ("iv",), "an option needs a fallback iv (used until the feed has a mark IV)"
    if pos.kind == "option" and account.margin in ("binance-usdm", "bybit-unified"):
        yield ("kind",), f"options are not margined by the {account.margin} model here"
    if pos.kind == "inverse" and account.margin == "binance-usdm":
        yield ("kind",), "binance-usdm margins linear contracts only (COIN-M is another account)"


def _bracket_problems(account: AccountConfig) -> Iterator[tuple[tuple[str | int, ...], str]]:
    from monitor.risk.margin import brackets_from_table  # here: margin is heavier than this module

    if account.brackets:
        try:
            brackets_from_table(account.brackets)
        except ValueError as exc:
            yield ("brackets",), str(exc)
    for i, pos in enumerate(account.positions):
        if pos.kind not in ("linear", "inverse"):
            continue
        if not pos.brackets and not account.brackets:
            yield ("positions", i, "brackets"), f"{account.margin} needs maintenance brackets"
        elif pos.brackets:
            try:
                brackets_from_table(pos.brackets)
            except ValueError as exc:
                yield ("positions", i, "brackets"), str(exc)


def account_symbols(accounts: Sequence[AccountConfig]) -> tuple[str, ...]:
    """Every engine symbol the accounts need priced, each once, in order."""
    return tuple(dict.fromkeys(s for a in accounts for s in a.symbols()))


def _timestamp(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
