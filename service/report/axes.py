"""What every figure of the report shares: time axes, rule colours, shaded alert spans.

Figures are built on :class:`matplotlib.figure.Figure` directly with the Agg canvas, never
through ``pyplot``: no global figure registry, no GUI backend, safe in any thread.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import PIL.Image
import polars as pl
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from service.report.episodes import Episode

DPI = 100
WIDTH_IN = 12.0
_COLOURS = (
    "#d62728",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
    "#2ca02c",
    "#1f77b4",
)


class RulePalette:
    """One colour per rule name, in order of first firing (stable across figures)."""

    def __init__(self, episodes: Sequence[Episode]) -> None:
        names = dict.fromkeys(e.rule for e in episodes)
        self._colour = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(names)}

    def colour(self, rule: str) -> str:
        """The colour of ``rule`` (grey for a rule that never fired)."""
        return self._colour.get(rule, "#7f7f7f")


def times(frame: pl.DataFrame) -> npt.NDArray[np.datetime64]:
    """The ``ts`` column as naive UTC ``datetime64`` values, which matplotlib plots as UTC."""
    return frame["ts"].dt.replace_time_zone(None).to_numpy()


def values(frame: pl.DataFrame, column: str) -> npt.NDArray[np.float64]:
    """A column as floats, null as NaN (a gap in the line)."""
    return frame[column].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """A figure with constrained layout at the report's size."""
    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def date_axis(ax: Axes, start: dt.datetime, end: dt.datetime) -> None:
    """Concise UTC dates on the x axis, limited to the report's range."""
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    lo, hi = num(start), num(end)
    if hi <= lo:  # one snapshot: widen, else matplotlib warns about a singular range
        lo, hi = lo - 1 / 1440, hi + 1 / 1440
    ax.set_xlim(lo, hi)


def spans(
    episodes: Sequence[Episode], end: dt.datetime
) -> dict[tuple[str, bool], list[tuple[float, float]]]:
    """Firing spans as (start, width) in date numbers, by (rule, still firing at the end).

    Grouped so that a storm of thousands of episodes costs one artist per rule, not one per
    episode; an episode still firing at the end runs to ``end``.
    """
    grouped: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for episode in episodes:
        start = num(episode.fired)
        stop = num(episode.resolved if episode.resolved is not None else end)
        key = (episode.rule, episode.resolved is None)
        grouped.setdefault(key, []).append((start, max(stop - start, 0.0)))
    return grouped


def shade(ax: Axes, episodes: Sequence[Episode], palette: RulePalette, end: dt.datetime) -> None:
    """Shade the firing spans over the axes' full height; hatched while firing at the end."""
    for (rule, open_), ranges in spans(episodes, end).items():
        verts = [[(x, 0.0), (x, 1.0), (x + w, 1.0), (x + w, 0.0)] for x, w in ranges]
        collection = PolyCollection(
            verts,
            transform=ax.get_xaxis_transform(),  # x in dates, y from the bottom to the top
            facecolors=palette.colour(rule),
            edgecolors=palette.colour(rule),  # the hatch's colour
            alpha=0.13,
            hatch="//" if open_ else None,
            linewidths=0,
            zorder=0,
        )
        ax.add_collection(collection, autolim=False)


def grid(ax: Axes) -> None:
    """Light horizontal grid lines behind the data."""
    ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def thousands(ax: Axes, axis: str = "y") -> None:
    """Tick labels with thousands separators (currency amounts)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))


def png(figure: Figure) -> bytes:
    """The figure as a 256-colour PNG, without metadata (the same figure gives the same bytes).

    A palette of 256 colours looks the same as full colour for line charts and heatmaps and
    is about a third of the size, which keeps the HTML and the README's images small.
    """
    full = io.BytesIO()
    figure.savefig(full, format="png", dpi=DPI)
    with PIL.Image.open(full) as image:
        palette = image.convert("RGB").quantize(
            colors=256, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE
        )
    small = io.BytesIO()
    palette.save(small, format="PNG", optimize=True)
    return small.getvalue()


def num(moment: dt.datetime) -> float:
    """Matplotlib's date number of ``moment``."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]
