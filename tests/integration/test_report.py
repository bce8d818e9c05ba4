"""`riskmon report` and `riskmon replay --report` end to end on a generated replay.

The replay (``tests/replayed.py``) has a calm hour, a stressed hour, a calm stretch with an
outage, and a stress that lasts to the end; rules fire, resolve and are still firing at the
end; a bad print is dropped. The report must hold every section, images that decode, no
external reference, and figures a risk desk can check against the tables they come from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from service.cli import main
from tests.htmlcheck import PageParts, inspect_html
from tests.replayed import CONFIG, T0, generated_replay

SECTIONS = ["timelines", "portfolios", "accounts", "correlations", "alerts", "facts"]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated replay's output directory, written with ``--report``."""
    return generated_replay(tmp_path_factory.mktemp("report"), "--report")


@pytest.fixture(scope="module")
def page(replayed: Path) -> PageParts:
    return inspect_html((replayed / "report.html").read_text(encoding="utf-8"))


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    return image


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_the_report_has_every_section_and_every_image_decodes(page: PageParts) -> None:
    """Six sections in order; four figures (timelines, portfolio, account, heatmaps), each a
    PNG that decodes to a real picture with more than a few colours."""
    assert [i for i in page.ids if i in SECTIONS] == SECTIONS
    for heading in ("Timelines", "Portfolios", "Accounts", "Correlation heatmaps", "Alerts"):
        assert heading in page.headings
    assert len(page.images) == 4
    for png in page.images:
        image = _decode(png)
        assert image.format == "PNG"
        assert image.width >= 600
        assert image.height >= 300
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_the_report_references_nothing_outside_itself(replayed: Path, page: PageParts) -> None:
    text = (replayed / "report.html").read_text(encoding="utf-8")
    assert page.references, "the parser must see the page's own references"
    assert page.external == []
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text
    assert "@font-face" not in text


def test_the_alert_table_shows_every_episode_with_its_peak(replayed: Path, page: PageParts) -> None:
    """One row per episode (5 firings: 2 resolved, 3 still firing); the peak of each is the
    extreme of its metric over the firing span in the replay's own tables."""
    events = [json.loads(line) for line in (replayed / "alerts.jsonl").read_text().splitlines()]
    rows = [
        r
        for r in page.table_rows
        if r and r[0].split(" [")[0] in {"spike", "undiversified", "margin"}
    ]
    assert len(rows) == sum(e["state"] == "firing" for e in events) == 5
    assert sum(r[3] == "firing at the end" for r in rows) == 3
    assert all(r[4].startswith("at least ") for r in rows if r[3] == "firing at the end")
    snaps = pl.read_parquet(replayed / "snapshots.parquet")
    accounts = pl.read_parquet(replayed / "accounts.parquet")
    peaks = [json.loads(line) for line in (replayed / "alert_peaks.jsonl").read_text().splitlines()]
    assert len(peaks) == 5
    for peak in peaks:
        fired = _utc(peak["fired"])
        resolved = next(
            (
                _utc(e["ts"])
                for e in events
                if e["rule"] == peak["rule"] and e["state"] == "resolved" and _utc(e["ts"]) > fired
            ),
            snaps["ts"].max() + dt.timedelta(seconds=1),
        )
        span = (pl.col("ts") >= fired) & (pl.col("ts") < resolved)
        if peak["rule"] == "spike":
            expected = snaps.filter(span)["avg_correlation"].max()
        elif peak["rule"] == "undiversified":
            expected = snaps.filter(span)["diversification_benefit"].min()
        else:
            expected = accounts.filter(span)["margin_ratio"].max()
        assert peak["peak"] == pytest.approx(expected, rel=1e-12), peak
        shown = f"{peak['peak']:.4g}"
        assert any(r[6] == shown for r in rows), (shown, rows)


def test_recorded_component_var_sums_to_the_var(replayed: Path) -> None:
    """Euler components from components.parquet add up to var_D in snapshots.parquet, at
    every snapshot and both confidences."""
    snaps = pl.read_parquet(replayed / "snapshots.parquet")
    parts = pl.read_parquet(replayed / "components.parquet")
    assert set(parts["symbol"]) == {"AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"}
    sums = parts.group_by("ts").agg(
        pl.col("component_var_95").sum(), pl.col("component_var_99").sum()
    )
    joined = snaps.join(sums, on="ts").filter(pl.col("var_99").is_not_null())
    assert joined.height > 300
    for digits in ("95", "99"):
        np.testing.assert_allclose(
            joined[f"component_var_{digits}"].to_numpy(),
            joined[f"var_{digits}"].to_numpy(),
            rtol=1e-9,
        )


def test_recorded_correlations_are_the_extreme_snapshots(replayed: Path) -> None:
    """correlations.parquet holds the matrices at the lowest and highest avg_correlation, equal
    to the pair columns of snapshots.parquet then."""
    snaps = pl.read_parquet(replayed / "snapshots.parquet").filter(
        pl.col("avg_correlation").is_not_null()
    )
    recorded = pl.read_parquet(replayed / "correlations.parquet")
    for label, row in (
        ("calmest", snaps.sort("avg_correlation").row(0, named=True)),
        ("most_correlated", snaps.sort("avg_correlation", descending=True).row(0, named=True)),
    ):
        cells = recorded.filter(pl.col("snapshot") == label)
        assert set(cells["ts"]) == {row["ts"]}
        assert cells["avg_correlation"][0] == row["avg_correlation"]
        for a, b, value in cells.select("a", "b", "correlation").iter_rows():
            if a == b:
                assert value == pytest.approx(1.0)
            else:
                column = f"corr:{a}:{b}" if f"corr:{a}:{b}" in row else f"corr:{b}:{a}"
                assert value == row[column]


def test_run_facts_name_the_data_the_config_digest_and_the_version(
    replayed: Path, page: PageParts
) -> None:
    run = json.loads((replayed / "run.json").read_text())
    config = Path(run["config"]["path"])
    data = Path(run["inputs"][0]["path"])
    assert run["config"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert run["inputs"][0]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert run["inputs"][0]["bytes"] == data.stat().st_size
    assert run["rows"] == run["ticks_applied"] + 1
    assert run["skipped"] == {"outlier": 1}
    assert run["command"][:2] == ["riskmon", "replay"]
    assert [r["name"] for r in run["rules"]] == ["spike", "undiversified", "margin", "never"]
    facts = dict(r for r in page.table_rows if len(r) == 2)
    assert facts["configuration SHA-256"] == run["config"]["sha256"]
    assert str(data) in facts["data files"]
    assert run["inputs"][0]["sha256"] in facts["data files"]
    assert facts["replayed by"].startswith(f"riskmon {run['riskmon_version']}")
    assert facts["report made by"].startswith("riskmon ")
    assert facts["replay covers"] == facts["this report shows"]
    assert "skipped: outlier 1" in facts["ticks"]


def test_a_range_shows_only_its_snapshots_and_episodes(
    replayed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--from/--to keeps [from, to): the second stress only, with its two still-firing
    episodes and the margin alert that fired before the range; --images writes the PNGs."""
    html, images = tmp_path / "part.html", tmp_path / "images"
    day = dt.datetime.fromtimestamp(T0, tz=dt.UTC)
    start, end = day + dt.timedelta(hours=2, minutes=50), day + dt.timedelta(hours=3, minutes=10)
    args = ["report", str(replayed), "--html", str(html), "--images", str(images)]
    assert main([*args, "--from", start.isoformat(), "--to", end.strftime("%Y-%m-%dT%H:%MZ")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(html)
    assert len(printed) == 5
    page = inspect_html(html.read_text(encoding="utf-8"))
    facts = dict(r for r in page.table_rows if len(r) == 2)
    assert facts["this report shows"] == "2025-02-03 02:50:00 to 2025-02-03 03:09:30 UTC"
    assert facts["snapshots shown"] == "40"
    episodes = [r[0] for r in page.table_rows if len(r) == 8 and r[0] != "rule"]
    assert sorted(episodes) == ["margin [account=perps]", "spike", "undiversified [portfolio=book]"]
    written = sorted(p.name for p in images.iterdir())
    assert written == [
        "account-perps.png",
        "correlations.png",
        "portfolio-book.png",
        "timelines.png",
    ]
    for path in images.iterdir():
        _decode(path.read_bytes())


def test_a_range_inside_the_warm_up_still_reports(replayed: Path, tmp_path: Path) -> None:
    """Before min_observations every figure is null: each section says so instead of failing."""
    html = tmp_path / "warm-up.html"
    assert main(["report", str(replayed), "--to", "2025-02-03T00:01:45", "--html", str(html)]) == 0
    page = inspect_html(html.read_text(encoding="utf-8"))
    assert [i for i in page.ids if i in SECTIONS] == SECTIONS
    assert len(page.images) == 3  # timelines, portfolio, account; no heatmap
    assert "not warm yet" in page.text
    assert "No rule fired in this range." in page.text
    for png in page.images:
        _decode(png)


def test_a_year_2100_tick_still_reports_and_a_range_narrows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A skewed clock: one tick stamped 2100 after an hour of 2023 data. The replay bounds its
    catch-up across the 77-year gap; the report covers both ends and --to cuts the gap off."""
    t0 = 1_700_000_000.0
    rows = [
        {"ts": t0 + 10.0 * i + k, "symbol": s, "price": 100.0 * (1 + 0.002 * ((i * (k + 3)) % 5))}
        for i in range(360)
        for k, s in enumerate(["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"])
    ]
    rows.append({"ts": 4_102_444_800.0, "symbol": "AAAUSDT", "price": 100.0})
    data, config = tmp_path / "skewed.csv", tmp_path / "replay.toml"
    pl.DataFrame(rows).write_csv(data)
    config.write_text(textwrap.dedent(CONFIG))
    out = tmp_path / "out"
    args = ["replay", str(data), "--config", str(config), "--out", str(out), "--report"]
    assert main(args) == 0
    assert "boundaries skipped in gaps" in capsys.readouterr().out
    facts = dict(
        r for r in inspect_html((out / "report.html").read_text()).table_rows if len(r) == 2
    )
    assert facts["replay covers"].endswith(" to 2100-01-01 00:00:00 UTC")
    narrow = tmp_path / "narrow.html"
    assert main(["report", str(out), "--to", "2023-11-15", "--html", str(narrow)]) == 0
    page = inspect_html(narrow.read_text())
    facts = dict(r for r in page.table_rows if len(r) == 2)
    assert facts["this report shows"].startswith("2023-11-14 22:13:30 to 2023-11-14 23:")
    assert len(page.images) == 4


def test_an_unwritable_target_is_one_line_and_exit_code_2(
    replayed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html under a file, and --images naming a file: the path and the reason, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for extra in (["--html", str(blocker / "report.html")], ["--images", str(blocker)]):
        assert main(["report", str(replayed), "--html", str(tmp_path / "r.html"), *extra]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"riskmon: error: {blocker}")
        assert "cannot write the report" in line
    assert not (tmp_path / "r.html").exists()


def test_an_older_replay_without_recorded_files_still_reports(
    replayed: Path, tmp_path: Path
) -> None:
    """Only snapshots.parquet and alerts.jsonl: the report says what was not recorded."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("snapshots.parquet", "alerts.jsonl"):
        shutil.copy(replayed / name, old / name)
    assert main(["report", str(old)]) == 0
    page = inspect_html((old / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 3  # timelines, portfolio, heatmaps; no account table
    assert "component VaR not recorded" not in page.text  # drawn into the image, not the text
    assert "no run.json" in page.text
    assert "peak not recorded" in page.text
    assert "no accounts.parquet" in page.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "no such directory"),
        (["{empty}"], "not a replay output: no snapshots.parquet or alerts.jsonl"),
        (["{data}"], "snapshots.parquet: not a riskmon replay output: missing column(s)"),
        (["{file}"], "not a directory"),
        (["{out}", "--from", "2025-02-03T02:00", "--to", "2025-02-03T01:00"], "empty time range"),
        (["{out}", "--from", "2025-02-04"], "no snapshot between 2025-02-04 00:00:00 UTC"),
        (["{out}", "--to", "2025-02-02"], "no snapshot between the start and"),
        (["{out}", "--from", "yesterday"], "--from: expected an ISO 8601 time"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    replayed: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """A missing directory, a directory that is not a replay output, an empty time range and
    a time that is not one: exit 2 with one line naming the problem; no file is written and
    an earlier report is left as it was."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "data").mkdir()
    pl.DataFrame({"ts": [1.0], "symbol": ["AAAUSDT"], "price": [1.0]}).write_parquet(
        tmp_path / "data" / "snapshots.parquet"
    )
    (tmp_path / "data" / "alerts.jsonl").write_text("")
    (tmp_path / "file").write_text("not a directory")
    before = (replayed / "report.html").read_bytes()
    places = {
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "data": tmp_path / "data",
        "file": tmp_path / "file",
        "out": replayed,
    }
    argv = [a.format(**places) for a in args]
    html = tmp_path / "written.html"
    capsys.readouterr()
    assert main(["report", *argv, "--html", str(html)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("riskmon: error: ")
    assert message in lines[0]
    assert not html.exists()
    assert (replayed / "report.html").read_bytes() == before
    assert not list(replayed.glob(".report.html.*"))
