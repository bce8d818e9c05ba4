"""The report's time-series figures: market timelines, portfolios and accounts.

Each function takes the frames of a :class:`~service.report.load.ReplayOutput` and returns a
:class:`~matplotlib.figure.Figure`; nothing is drawn on a screen or written here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from service.report.axes import (
    RulePalette,
    date_axis,
    grid,
    new_figure,
    shade,
    spans,
    thousands,
    times,
    values,
)
from service.report.episodes import Episode
from service.report.facts import RuleFacts
from service.report.load import ReplayOutput

MAX_LANES = 30
TOP_CONTRIBUTORS = 6
MAX_BARS = 20
SIGMA_CAP = 20.0  # liquidation_distance_sigma is +Inf when no liquidation lies within 20
_SYMBOL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_OTHERS = "#b0b0b0"
FloatArray = npt.NDArray[np.float64]


def timeline_figure(out: ReplayOutput, palette: RulePalette) -> Figure:
    """Average correlation, absorption ratio and its shift, effective bets, and rule lanes."""
    instances = list(dict.fromkeys(e.instance for e in out.episodes))
    lane_h = 0.8 + 0.26 * min(len(instances), MAX_LANES)
    fig = new_figure(3 * 2.4 + lane_h)
    corr, absorption, bets, lanes = fig.subplots(
        4, 1, sharex=True, height_ratios=[2.4, 2.4, 2.4, lane_h]
    )
    t, market = times(out.market), out.market
    corr.plot(t, values(market, "avg_correlation"), color="#1f77b4", lw=0.9, label="fast")
    corr.plot(t, values(market, "avg_correlation_slow"), color="#333333", lw=1.3, label="slow")
    corr.set_ylabel("average correlation")
    corr.legend(loc="upper left", fontsize=8, ncols=2)
    corr.set_title("Market: the universe's correlation regime (shaded: rules firing)", loc="left")
    _absorption(absorption, market)
    bets.plot(t, values(market, "effective_bets"), color="#2ca02c", lw=0.9)
    bets.set_ylabel("effective bets")
    for ax in (corr, absorption, bets):
        shade(ax, out.episodes, palette, out.end)
        grid(ax)
    rule_lanes(lanes, out.episodes, palette, out.end)
    date_axis(lanes, out.start, out.end)
    return fig


def _absorption(ax: Axes, market: pl.DataFrame) -> None:
    """Absorption ratio (fast, slow) on the left axis, its standardised shift on the right."""
    t = times(market)
    ax.plot(t, values(market, "absorption_ratio"), color="#9467bd", lw=0.9, label="fast")
    if "absorption_ratio_slow" in market.columns:
        slow = values(market, "absorption_ratio_slow")
        ax.plot(t, slow, color="#333333", lw=1.3, label="slow")
    ax.set_ylabel("absorption ratio")
    shift = ax.twinx()
    shift.plot(t, values(market, "absorption_ratio_shift"), color="#ff7f0e", lw=0.8, label="shift")
    shift.axhline(1.0, color="#ff7f0e", lw=0.8, ls=":")
    shift.set_ylabel("shift (standard deviations)", color="#b35806")
    lines = [*ax.get_lines(), shift.get_lines()[0]]
    labels = [str(line.get_label()) for line in lines]
    ax.legend(lines, labels, loc="upper left", fontsize=8, ncols=3)


def rule_lanes(
    ax: Axes, episodes: Sequence[Episode], palette: RulePalette, end: dt.datetime
) -> None:
    """One lane per rule instance with its firing spans; hatched when firing at the end."""
    instances = list(dict.fromkeys(e.instance for e in episodes))
    if not instances:
        ax.text(0.5, 0.5, "no rule fired in this range", transform=ax.transAxes, ha="center")
        ax.set_yticks([])
        return
    shown = instances[:MAX_LANES]
    for lane, name in enumerate(shown):
        mine = [e for e in episodes if e.instance == name]
        for (rule, open_), ranges in spans(mine, end).items():
            colour = palette.colour(rule)
            ax.broken_barh(
                ranges,
                (lane - 0.35, 0.7),
                facecolors=colour,
                edgecolors=colour,
                linewidth=1.0,  # a span shorter than a pixel still shows
                alpha=0.45 if open_ else 1.0,  # lighter, so the hatch shows
                hatch="//" if open_ else None,
            )
    ax.set_yticks(range(len(shown)), labels=shown, fontsize=8)
    ax.set_ylim(len(shown) - 0.5, -0.5)
    if len(instances) > len(shown):
        ax.set_title(f"first {len(shown)} of {len(instances)} rule instances", fontsize=8)


def portfolio_figure(
    out: ReplayOutput, name: str, palette: RulePalette, horizon: str = ""
) -> Figure:
    """VaR and CVaR against stressed VaR, diversification benefit, component VaR."""
    rows = out.snapshots.filter(pl.col("portfolio") == name).sort("ts")
    digits = top_confidence(rows.columns)
    fig = new_figure(8.4)
    spec = fig.add_gridspec(3, 2, width_ratios=[3.3, 1], height_ratios=[3, 2, 3])
    var = fig.add_subplot(spec[0, 0])
    benefit = fig.add_subplot(spec[1, 0], sharex=var)
    parts = fig.add_subplot(spec[2, 0], sharex=var)
    _var_panel(var, rows, digits)
    var.set_title(f"Portfolio {name}: {_percent(digits)} VaR{horizon}", loc="left")
    benefit.plot(times(rows), values(rows, "diversification_benefit"), color="#2ca02c", lw=0.9)
    benefit.yaxis.set_major_formatter(PercentFormatter(1.0))
    benefit.set_ylabel("diversification\nbenefit")
    components = _components(out, name, digits)
    colours = _component_stack(parts, rows, components, digits)
    _contributor_bars(fig.add_subplot(spec[:, 1]), rows, components, digits, colours)
    for ax in (var, benefit, parts):
        shade(ax, [e for e in out.episodes if portfolio_of(e) == name], palette, out.end)
        grid(ax)
    for ax in (var, benefit):
        ax.tick_params(labelbottom=False)
    date_axis(parts, out.start, out.end)
    return fig


def _var_panel(ax: Axes, rows: pl.DataFrame, digits: str) -> None:
    t = times(rows)
    ax.plot(t, values(rows, f"var_{digits}"), color="#1f77b4", lw=1.0, label="VaR")
    ax.plot(t, values(rows, f"cvar_{digits}"), color="#d62728", lw=0.9, label="CVaR")
    stressed = values(rows, f"stressed_var_{digits}")
    ax.plot(t, stressed, color="#333333", lw=1.0, ls="--", label="stressed VaR (correlations 1)")
    if f"var_{digits}_hedged" in rows.columns:  # written by the hedging advisor (#18)
        hedged = values(rows, f"var_{digits}_hedged")
        ax.plot(t, hedged, color="#17becf", lw=0.9, label="VaR hedged")
    ax.set_ylabel("loss")
    thousands(ax)
    ax.legend(loc="upper left", fontsize=8, ncols=4)


def _components(out: ReplayOutput, name: str, digits: str) -> pl.DataFrame | None:
    """Component VaR of ``name`` as one column per symbol, by time (None when absent)."""
    column = f"component_var_{digits}"
    if out.components is None or column not in out.components.columns:
        return None
    mine = out.components.filter(pl.col("portfolio") == name)
    if mine.is_empty():
        return None
    return mine.pivot(on="symbol", index="ts", values=column).sort("ts")


def ranked_symbols(components: pl.DataFrame, at: dt.datetime | None = None) -> list[str]:
    """Symbols by absolute component VaR at ``at`` (else by its mean), largest first.

    Symbols never ready are left out; at ``at`` a symbol without a value ranks last.
    """
    sizes: dict[str, tuple[float, float]] = {}
    row = None if at is None else components.filter(pl.col("ts") == at)
    for symbol in (c for c in components.columns if c != "ts"):
        magnitude = np.abs(values(components, symbol))
        if not np.isfinite(magnitude).any():
            continue
        then = float("nan") if row is None or row.is_empty() else abs(row[symbol][0] or np.nan)
        sizes[symbol] = (then if np.isfinite(then) else -1.0, float(np.nanmean(magnitude)))
    return sorted(sizes, key=lambda s: (-sizes[s][0], -sizes[s][1]))


def peak_var(rows: pl.DataFrame, digits: str) -> tuple[dt.datetime, float] | None:
    """Time and value of the highest VaR in ``rows`` (None when never ready)."""
    column = f"var_{digits}"
    ready = rows.select("ts", column).filter(pl.col(column).is_finite())
    if ready.is_empty():
        return None
    moment, value = ready.sort(column, descending=True).row(0)
    return moment, float(value)


def _component_stack(
    ax: Axes, rows: pl.DataFrame, components: pl.DataFrame | None, digits: str
) -> dict[str, str]:
    """Stacked component VaR: the largest contributors and the rest; returns their colours.

    Positive parts stack up from zero and negative parts (hedges) down, so the stack's net
    height is the VaR, drawn as a line to check against.
    """
    ax.set_ylabel("component VaR")
    thousands(ax)
    if components is None:
        ax.text(0.5, 0.5, "component VaR not recorded", transform=ax.transAxes, ha="center")
        return {}
    peak = peak_var(rows, digits)
    ranked = ranked_symbols(components, None if peak is None else peak[0])
    if not ranked:
        ax.text(
            0.5,
            0.5,
            "no component VaR in this range (not warm yet)",
            transform=ax.transAxes,
            ha="center",
        )
        return {}
    series = [(s, values(components, s)) for s in ranked[:TOP_CONTRIBUTORS]]
    colours = dict(zip(ranked, _SYMBOL_COLOURS, strict=False))
    if rest := ranked[TOP_CONTRIBUTORS:]:
        summed = np.sum([values(components, s) for s in rest], axis=0)
        series.append((f"{len(rest)} others", summed))
    palette = [colours.get(label, _OTHERS) for label, _ in series]
    t = times(components)
    up = [np.maximum(v, 0.0) for _, v in series]
    ax.stackplot(t, *up, colors=palette, labels=[label for label, _ in series], alpha=0.85)
    down = [np.minimum(v, 0.0) for _, v in series]
    if any(np.nanmin(d, initial=0.0) < 0 for d in down):
        ax.stackplot(t, *down, colors=palette, alpha=0.85)
    ax.plot(times(rows), values(rows, f"var_{digits}"), color="#000000", lw=0.6, label="VaR")
    ax.legend(loc="upper left", fontsize=7, ncols=4)
    return colours


def _contributor_bars(
    ax: Axes,
    rows: pl.DataFrame,
    components: pl.DataFrame | None,
    digits: str,
    colours: Mapping[str, str],
) -> None:
    """Each position's component VaR at the snapshot of the highest VaR in range."""
    peak = peak_var(rows, digits)
    at = None
    if components is not None and peak is not None:
        at = components.filter(pl.col("ts") == peak[0]).drop("ts")
    if peak is None or at is None or at.is_empty():
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no VaR in this range", transform=ax.transAxes, ha="center")
        return
    parts = sorted(((s, at[s][0]) for s in at.columns if at[s][0] is not None), key=_second)
    if len(parts) > MAX_BARS:
        rest = parts[: len(parts) - MAX_BARS + 1]
        parts = [(f"{len(rest)} others", sum(v for _, v in rest)), *parts[len(rest) :]]
    bar_colours = [colours.get(s, _OTHERS) for s, _ in parts]
    ax.barh([s for s, _ in parts], [v for _, v in parts], color=bar_colours)
    ax.axvline(0.0, color="#000000", lw=0.6)
    ax.tick_params(axis="y", labelsize=7)
    ax.tick_params(axis="x", labelsize=7, labelrotation=30)
    thousands(ax, axis="x")
    moment, value = peak
    ax.set_title(f"at the highest VaR\n{moment:%Y-%m-%d %H:%M} UTC: {value:,.0f}", fontsize=8)


def _second(pair: tuple[str, float]) -> float:
    return pair[1]


def account_figure(
    out: ReplayOutput, name: str, palette: RulePalette, rules: Sequence[RuleFacts]
) -> Figure:
    """Margin ratio with its rule thresholds, and the liquidation distance in sigmas."""
    assert out.accounts is not None
    rows = out.accounts.filter(pl.col("account") == name).sort("ts")
    fig = new_figure(5.6)
    ratio, distance = fig.subplots(2, 1, sharex=True)
    t = times(rows)
    margin = values(rows, "margin_ratio")
    ratio.plot(t, margin, color="#1f77b4", lw=1.0, label="margin ratio")
    if np.nanmax(margin, initial=0.0) > 0.5:  # else the line at 1 would flatten the curve
        ratio.axhline(1.0, color="#000000", lw=1.0, label="venue liquidates (1)")
    _thresholds(ratio, rules, "margin_ratio", name, palette)
    ratio.set_ylabel("maintenance /\nmargin balance")
    ratio.set_title(f"Account {name}", loc="left")
    sigmas = np.minimum(values(rows, "liquidation_distance_sigma"), SIGMA_CAP)
    distance.plot(t, sigmas, color="#9467bd", lw=1.0, label="liquidation distance")
    _thresholds(distance, rules, "liquidation_distance_sigma", name, palette)
    distance.set_ylabel(f"sigmas (none within\n{SIGMA_CAP:g}: drawn at {SIGMA_CAP:g})")
    for ax in (ratio, distance):
        shade(ax, [e for e in out.episodes if e.label("account") == name], palette, out.end)
        grid(ax)
        ax.legend(loc="upper left", fontsize=8, ncols=3)
    date_axis(distance, out.start, out.end)
    return fig


def _thresholds(
    ax: Axes, rules: Sequence[RuleFacts], metric: str, account: str, palette: RulePalette
) -> None:
    """The threshold (dashed) and resolve threshold (dotted) of the account's rules."""
    for rule in rules:
        if rule.metric != metric or rule.labels.get("account", account) != account:
            continue
        colour = palette.colour(rule.name)
        label = f"{rule.name}: fires {rule.op} {rule.threshold:g}"
        ax.axhline(rule.threshold, color=colour, lw=1.0, ls="--", label=label)
        resolve = rule.resolve_threshold
        if resolve is not None and resolve != rule.threshold:
            ax.axhline(resolve, color=colour, lw=0.8, ls=":", label=f"resolves {resolve:g}")


def top_confidence(columns: Sequence[str]) -> str:
    """The digits of the highest confidence with a ``var_D`` column ("99" for var_99).

    Raises:
        ValueError: no ``var_D`` column.
    """
    found = [m.group(1) for c in columns if (m := re.fullmatch(r"var_(\d+)", c))]
    if not found:
        raise ValueError("no var_D column")
    return max(found, key=lambda d: float("0." + d))


def _percent(digits: str) -> str:
    return f"{float('0.' + digits) * 100:g}%"


def portfolio_of(episode: Episode) -> str | None:
    """The portfolio an episode belongs to (None for market, symbol and account rules)."""
    return episode.portfolio or episode.label("portfolio")
