"""The time-series figures: what each draws, checked on the figure's artists."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from service.report.axes import RulePalette, png
from service.report.facts import RuleFacts
from service.report.figures import (
    SIGMA_CAP,
    account_figure,
    portfolio_figure,
    ranked_symbols,
    timeline_figure,
    top_confidence,
)
from service.report.load import load_replay
from tests.unit.service.report.outputs import T0, alert, snapshot_frame, write_output

MINUTE = dt.timedelta(minutes=1)


def _legend(figure: object, index: int) -> list[str]:
    ax = figure.axes[index]  # type: ignore[attr-defined]
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_hedged_var_of_the_hedging_advisor_is_drawn_when_present(tmp_path: Path) -> None:
    """Columns written by #18 (var_D_hedged, hedge_qty:<S>) are optional: drawn when there."""
    frame = snapshot_frame([0.3, 0.5, 0.7])
    plain = load_replay(write_output(tmp_path / "plain", frame))
    assert "VaR hedged" not in _legend(portfolio_figure(plain, "p", RulePalette([])), 0)
    hedged = frame.with_columns(
        (pl.col("var_99") * 0.5).alias("var_99_hedged"), pl.lit(2.0).alias("hedge_qty:AAA")
    )
    out = load_replay(write_output(tmp_path / "hedged", hedged))
    assert "VaR hedged" in _legend(portfolio_figure(out, "p", RulePalette([])), 0)


def test_components_rank_by_size_at_the_highest_var() -> None:
    """At the peak, B is largest though A is larger on average; never-ready C is left out."""
    times = [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    components = pl.DataFrame(
        {"ts": times, "A": [50.0, 50.0, 1.0], "B": [1.0, 1.0, 10.0], "C": [None, None, None]},
        schema_overrides={"C": pl.Float64},
    )
    assert ranked_symbols(components, times[2]) == ["B", "A"]
    assert ranked_symbols(components) == ["A", "B"]


def test_liquidation_distance_beyond_range_is_drawn_at_the_cap(tmp_path: Path) -> None:
    """+Inf (no liquidation within 20 sigmas) is drawn at 20, not dropped; thresholds of the
    account's margin rules are drawn, those of another account's are not."""
    out = write_output(tmp_path / "out", snapshot_frame([0.5, 0.5, 0.5]))
    pl.DataFrame(
        {
            "ts": [T0, T0 + MINUTE, T0 + 2 * MINUTE],
            "account": ["perps"] * 3,
            "margin_ratio": [0.1, 0.2, 0.3],
            "liquidation_distance_sigma": [math.inf, 5.0, 2.0],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    ).write_parquet(out / "accounts.parquet")
    rules = [
        RuleFacts("mine", "margin_ratio", ">", 0.25, 0.2, labels={"account": "perps"}),
        RuleFacts("all", "margin_ratio", ">", 0.5, 0.4),
        RuleFacts("theirs", "margin_ratio", ">", 0.35, 0.3, labels={"account": "other"}),
    ]
    figure = account_figure(load_replay(out), "perps", RulePalette([]), rules)
    legend = _legend(figure, 0)
    assert "mine: fires > 0.25" in legend
    assert "all: fires > 0.5" in legend
    assert not any(text.startswith("theirs") for text in legend)
    (line,) = [x for x in figure.axes[1].get_lines() if x.get_label() == "liquidation distance"]
    np.testing.assert_array_equal(line.get_ydata(), [SIGMA_CAP, 5.0, 2.0])


def test_rule_lanes_show_at_most_30_instances(tmp_path: Path) -> None:
    """A storm of 35 firing instances: 30 lanes and a title that says so."""
    alerts = [alert(T0 + MINUTE, "r", "firing", 1.0, symbol=f"S{i:02d}") for i in range(35)]
    out = load_replay(write_output(tmp_path / "out", snapshot_frame([0.5] * 5), alerts))
    figure = timeline_figure(out, RulePalette(out.episodes))
    lanes = figure.axes[3]
    assert len(lanes.get_yticklabels()) == 30
    assert lanes.get_title() == "first 30 of 35 rule instances"


def test_timelines_of_a_quiet_replay_say_no_rule_fired(tmp_path: Path) -> None:
    out = load_replay(write_output(tmp_path / "out", snapshot_frame([0.5, 0.6])))
    lanes = timeline_figure(out, RulePalette([])).axes[3]
    assert [t.get_text() for t in lanes.texts] == ["no rule fired in this range"]


def test_one_snapshot_still_makes_a_figure(tmp_path: Path) -> None:
    """A range of one snapshot has no width: the axis is widened instead of warning."""
    out = load_replay(write_output(tmp_path / "out", snapshot_frame([0.5])))
    low, high = timeline_figure(out, RulePalette([])).axes[3].get_xlim()
    assert high > low


@pytest.mark.parametrize(
    ("columns", "expected"),
    [(["var_95", "var_99", "cvar_99"], "99"), (["var_99", "var_975", "var_999"], "999")],
)
def test_the_highest_confidence_is_drawn(columns: list[str], expected: str) -> None:
    assert top_confidence(columns) == expected


def test_no_var_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="no var_D column"):
        top_confidence(["ts", "var_99_hedged", "stressed_var_99"])


def test_a_storm_of_flapping_alerts_costs_one_shade_per_rule(tmp_path: Path) -> None:
    """3,000 episodes of three rules firing and resolving every minute, the last of each still
    firing: each panel gets one shaded collection per rule and state (not one per episode),
    the still-firing spans hatched, and the figure renders."""
    alerts = []
    for k in range(1000):
        for rule in ("a", "b", "c"):
            alerts.append(alert(T0 + 2 * k * MINUTE, rule, "firing", 1.0))
            if k < 999:
                alerts.append(alert(T0 + (2 * k + 1) * MINUTE, rule, "resolved", 0.0))
    out = load_replay(write_output(tmp_path / "out", snapshot_frame([0.5] * 2000), alerts))
    assert len(out.episodes) == 3000
    figure = timeline_figure(out, RulePalette(out.episodes))
    for ax in figure.axes[:3]:
        shades = [c for c in ax.collections if c.get_zorder() == 0]
        assert len(shades) == 6
        assert sum(c.get_hatch() == "//" for c in shades) == 3
        assert sum(len(c.get_paths()) for c in shades) == 3000
    assert png(figure).startswith(b"\x89PNG")
