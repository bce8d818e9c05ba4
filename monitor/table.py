"""Flatten snapshots into the rows of ``snapshots.parquet``: one row per portfolio per snapshot.

Columns: ``ts`` (UTC datetime), ``portfolio``, the market figures, the portfolio figures,
``var_D``, ``cvar_D`` and ``stressed_var_D`` per confidence (D = digits after "0."), and
``corr:<A>:<B>`` per reported pair. With ``hedge_with`` configured, the hedge columns of
:func:`hedge_columns` follow (null on the rows of books without that instrument). Figures
that are not ready are null.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from monitor.risk.snapshot import HedgeRisk, PortfolioRisk, RiskSnapshot, TailRisk

MARKET_COLUMNS = (
    "avg_correlation",
    "avg_correlation_slow",
    "absorption_ratio",
    "absorption_ratio_slow",
    "absorption_ratio_shift",
    "effective_bets",
    "turbulence",
)
PORTFOLIO_COLUMNS = {
    "portfolio_value": "value",
    "portfolio_volatility": "volatility",
    "gross_exposure": "gross_exposure",
    "diversification_ratio": "diversification_ratio",
    "diversification_benefit": "diversification_benefit",
}
MAX_ALL_PAIRS = 30


def reported_pairs(
    universe: Sequence[str], watch_pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Every universe pair up to 30 symbols; above that, the configured watch list."""
    if len(universe) <= MAX_ALL_PAIRS:
        return list(itertools.combinations(universe, 2))
    return [tuple(p) for p in watch_pairs]  # type: ignore[misc]


def confidence_digits(confidence: float) -> str:
    """0.95 -> "95", 0.975 -> "975"."""
    return f"{confidence:.3f}".removeprefix("0.").rstrip("0")


class SnapshotTable:
    """Accumulates snapshot rows column by column."""

    def __init__(self, pairs: Sequence[tuple[str, str]], confidences: Sequence[float]) -> None:
        self._pairs = list(pairs)
        self._pair_index: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
        self._tails = [(c, confidence_digits(c)) for c in confidences]
        self._columns: dict[str, list[object]] = {"ts": [], "portfolio": []}
        for name in (*MARKET_COLUMNS, *PORTFOLIO_COLUMNS):
            self._columns[name] = []
        for _, digits in self._tails:
            for kind in ("var", "cvar", "stressed_var"):
                self._columns[f"{kind}_{digits}"] = []
        for a, b in self._pairs:
            self._columns[f"corr:{a}:{b}"] = []
        self._hedge_names: set[str] = set()

    def __len__(self) -> int:
        return len(self._columns["ts"])

    def add(self, snap: RiskSnapshot) -> None:
        """Append one row per portfolio (one row with a null portfolio when there is none)."""
        portfolios: Sequence[PortfolioRisk | None] = snap.portfolios or (None,)
        pair_values = self._pair_values(snap)
        for risk in portfolios:
            cols = self._columns
            cols["ts"].append(round(snap.ts * 1e6))
            cols["portfolio"].append(None if risk is None else risk.name)
            for name in MARKET_COLUMNS:
                cols[name].append(getattr(snap.market, name))
            for column, field in PORTFOLIO_COLUMNS.items():
                cols[column].append(None if risk is None else getattr(risk, field))
            for confidence, digits in self._tails:
                tail = None if risk is None else risk.tail(confidence)
                self._add_tail(digits, tail)
            for (a, b), value in zip(self._pairs, pair_values, strict=True):
                cols[f"corr:{a}:{b}"].append(value)
            self._add_hedge(None if risk is None else risk.hedge)

    def _add_hedge(self, hedge: HedgeRisk | None) -> None:
        """The row's hedge columns; a column first seen now is null on the earlier rows."""
        values = hedge_columns(hedge, self._tails)
        rows = len(self)
        for name, value in values.items():
            self._columns.setdefault(name, [None] * (rows - 1)).append(value)
        for name in self._hedge_names - values.keys():
            self._columns[name].append(None)
        self._hedge_names.update(values)

    def _add_tail(self, digits: str, tail: TailRisk | None) -> None:
        for kind in ("var", "cvar", "stressed_var"):
            value = None if tail is None else getattr(tail, kind)
            self._columns[f"{kind}_{digits}"].append(value)

    def _pair_values(self, snap: RiskSnapshot) -> list[float | None]:
        if self._pair_index is None:
            position = {s: i for i, s in enumerate(snap.symbols)}
            self._pair_index = (
                np.array([position[a] for a, _ in self._pairs], dtype=np.int64),
                np.array([position[b] for _, b in self._pairs], dtype=np.int64),
            )
        values = snap.correlation[self._pair_index]
        return [None if v != v else v for v in values.tolist()]

    def to_frame(self) -> pl.DataFrame:
        """The rows as a polars DataFrame with typed, nullable columns."""
        schema: dict[str, pl.DataType] = {name: pl.Float64() for name in self._columns}
        schema["ts"] = pl.Int64()
        schema["portfolio"] = pl.String()
        frame = pl.DataFrame(self._columns, schema=schema)
        return frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def hedge_columns(
    hedge: HedgeRisk | None, tails: Sequence[tuple[float, str]]
) -> dict[str, float | None]:
    """A book's hedge as columns (none without ``hedge_with``).

    ``hedge_qty:<S>`` (the minimum-variance holding of each instrument, units), ``var_D_hedged``
    per confidence, ``hedge_effectiveness``, ``hedge_drift``, and for accounts with options
    ``delta_perp:<S>`` (the perp trade that zeroes the delta on S) and ``vega_cost:<S>`` (the
    loss of a one-sigma vol-of-vol shock).
    """
    if hedge is None:
        return {}
    out: dict[str, float | None] = {f"hedge_qty:{leg.symbol}": leg.quantity for leg in hedge.legs}
    for confidence, digits in tails:
        tail = hedge.tail(confidence)
        out[f"var_{digits}_hedged"] = None if tail is None else tail.var_hedged
    out["hedge_effectiveness"] = hedge.effectiveness
    out["hedge_drift"] = hedge.drift
    for d in hedge.delta:
        out[f"delta_perp:{d.symbol}"] = d.perp_quantity
        out[f"vega_cost:{d.symbol}"] = d.vega_cost
    return out


ACCOUNT_COLUMNS = (
    "equity",
    "margin_balance",
    "maintenance",
    "margin_ratio",
    "liquidation_distance_sigma",
    "stress_loss",
    "stress_loss_uncapped",
    "stress_loss_ratio",
    "vega",
)


class AccountTable:
    """Rows of ``accounts.parquet``: one per account per snapshot.

    Columns: ``ts``, ``account``, :data:`ACCOUNT_COLUMNS`, then ``var_D`` (the account's VaR:
    full-revaluation Monte Carlo for books with options, delta-equivalent otherwise) and
    ``dg_var_D`` (delta-gamma, null where Cornish-Fisher is not monotone) per confidence, and
    ``liq_down:<S>`` / ``liq_up:<S>``, the liquidating move of each symbol alone, and with
    ``hedge_with`` the columns of :func:`hedge_columns`. Figures that are not ready are null.
    """

    def __init__(self, confidences: Sequence[float]) -> None:
        self._tails = [(c, confidence_digits(c)) for c in confidences]
        self._rows: list[dict[str, object]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, snap: RiskSnapshot) -> None:
        """Append one row per account."""
        for account in snap.accounts:
            row: dict[str, object] = {"ts": round(snap.ts * 1e6), "account": account.name}
            row.update({name: getattr(account, name) for name in ACCOUNT_COLUMNS})
            for (_, digits), tail, dg in itertools.zip_longest(
                self._tails, account.tails, account.delta_gamma
            ):
                row[f"var_{digits}"] = None if tail is None else tail.var
                row[f"dg_var_{digits}"] = None if dg is None else dg.var
            for liq in account.liquidation:
                row[f"liq_down:{liq.symbol}"] = liq.down
                row[f"liq_up:{liq.symbol}"] = liq.up
            row.update(hedge_columns(account.hedge, self._tails))
            self._rows.append(row)

    def to_frame(self) -> pl.DataFrame:
        """The rows as a polars DataFrame; columns a row lacks are null."""
        names = dict.fromkeys(k for row in self._rows for k in row)
        schema: dict[str, pl.DataType] = {name: pl.Float64() for name in names}
        schema.update({"ts": pl.Int64(), "account": pl.String()})
        columns = {name: [row.get(name) for row in self._rows] for name in names}
        frame = pl.DataFrame(columns, schema=schema)
        return frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
