"""Replay of the real 2025H1 Binance candles: the 3 Feb 2025 crash against calm January.

Needs ../shared/data/market/binance_spot_5m_2025H1.parquet; skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from benchmarks.crash_report import crash_table
from service.cli import main
from tests.conftest import REPO, require_market_file
from tests.htmlcheck import inspect_html


def _replay(config: Path, out: Path, market: Path | None = None) -> tuple[Path, str]:
    market = market or require_market_file()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["replay", str(market), "--config", str(config), "--out", str(out)])
    assert code == 0
    return out, buffer.getvalue()


@pytest.fixture(scope="module")
def replay_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The shipped replay config: the bad-print filter on (its default)."""
    out = tmp_path_factory.mktemp("replay") / "out"
    return _replay(REPO / "config" / "example-replay.toml", out)


def test_the_bad_print_filter_changes_no_alert_of_the_crash(
    replay_out: tuple[Path, str], tmp_path: Path
) -> None:
    """Three weeks around the 3 Feb crash (ETH -33%, XRP -40% intraday), replayed with the
    filter on and with ``[filter] k = 0``: the same alert events and snapshot count. The
    filter sees the crash as the real move it is, and holds no candle of the half year."""
    _, on_summary = replay_out
    assert "outlier" not in on_summary  # the whole half year, filter on
    window = tmp_path / "crash-weeks.parquet"
    pl.read_parquet(require_market_file()).filter(
        pl.col("ts").is_between(
            pl.datetime(2025, 1, 20, time_zone="UTC"),
            pl.datetime(2025, 2, 10, time_zone="UTC"),
            closed="left",
        )
    ).write_parquet(window)
    shipped = REPO / "config" / "example-replay.toml"
    config = tmp_path / "filter-off.toml"
    config.write_text(shipped.read_text() + "\n[filter]\nk = 0\n")
    on, on_window = _replay(shipped, tmp_path / "on", window)
    off, off_window = _replay(config, tmp_path / "off", window)
    alerts = (on / "alerts.jsonl").read_text()
    assert alerts == (off / "alerts.jsonl").read_text()
    assert "market-correlation-spike" in alerts
    assert "firing" in alerts
    snapshots = [line for line in on_window.splitlines() if line.startswith("snapshots")]
    assert snapshots
    assert snapshots == [line for line in off_window.splitlines() if line.startswith("snapshots")]
    assert "outlier" not in on_window


def test_summary_reports_every_row_and_the_throughput(replay_out: tuple[Path, str]) -> None:
    """All 921,008 candles become ticks; the summary prints ticks per second."""
    _, summary = replay_out
    assert "rows read        921,008" in summary
    assert "ticks applied    921,008" in summary
    assert "ticks/s" in summary


def test_crash_day_correlation_rises_above_calm_january(replay_out: tuple[Path, str]) -> None:
    """Average correlation, absorption and lost bets on 3 Feb vs the weeks of January."""
    out, _ = replay_out
    table = {
        row["period"]: row
        for row in crash_table(pl.read_parquet(out / "snapshots.parquet")).iter_rows(named=True)
    }
    crash = table["3 Feb (crash)"]
    weeks = [table[w] for w in ("6-12 Jan", "13-19 Jan", "20-26 Jan")]
    assert crash["avg_corr_mean"] > table["all January"]["avg_corr_mean"] + 0.1
    assert all(crash["avg_corr_mean"] > w["avg_corr_mean"] + 0.1 for w in weeks)
    assert all(crash["absorption_mean"] > w["absorption_mean"] for w in weeks)
    assert crash["effective_bets_mean"] < 0.6 * table["all January"]["effective_bets_mean"]
    assert crash["var_99_mean"] > 2 * table["all January"]["var_99_mean"]
    assert crash["avg_corr_slow_end"] > table["all January"]["avg_corr_slow_end"]


def test_correlation_rule_fires_as_the_crash_begins(replay_out: tuple[Path, str]) -> None:
    """The configured spike rule fires between 2 Feb 18:00 and 3 Feb 06:00 UTC."""
    out, _ = replay_out
    events = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    fired = [
        e["ts"]
        for e in events
        if e["rule"] == "market-correlation-spike" and e["state"] == "firing"
    ]
    assert any("2025-02-02T18:00" <= ts < "2025-02-03T06:00" for ts in fired), fired


def test_the_report_of_the_crash_week_draws_the_readme_images(
    replay_out: tuple[Path, str], tmp_path: Path
) -> None:
    """`riskmon report --from 2025-01-30 --to 2025-02-07`: timelines, the book, heatmaps; the
    three rules of the crash in the alert table; and the README's images are what this
    command draws (same size, nearly the same pixels: regenerate them as the README says
    when a figure changes)."""
    out, _ = replay_out
    html, images = tmp_path / "crash.html", tmp_path / "images"
    args = ["report", str(out), "--html", str(html), "--images", str(images)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--from", "2025-01-30", "--to", "2025-02-07"]) == 0
    page = inspect_html(html.read_text(encoding="utf-8"))
    assert len(page.images) == 3
    assert page.external == []
    rules = {r[0] for r in page.table_rows if len(r) == 8 and r[0] != "rule"}
    assert rules == {
        "market-correlation-spike",
        "absorption-ratio-shift",
        "equal-long-var-limit [portfolio=equal-long]",
    }
    for name in ("timelines.png", "portfolio-equal-long.png", "correlations.png"):
        drawn = np.asarray(Image.open(images / name).convert("L"), dtype=np.float64)
        shown = np.asarray(
            Image.open(REPO / "docs" / "images" / "crash" / name).convert("L"), dtype=np.float64
        )
        assert drawn.shape == shown.shape, name
        assert np.abs(drawn - shown).mean() < 2.0, f"docs/images/crash/{name} is out of date"
