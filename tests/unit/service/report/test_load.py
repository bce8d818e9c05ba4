"""Reading a replay output directory: what is accepted, what is refused and how it is named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from monitor.errors import DataError
from service.report.load import load_replay, parse_time
from tests.unit.service.report.outputs import T0, alert, snapshot_frame, write_output

MINUTE = dt.timedelta(minutes=1)


def test_a_range_keeps_snapshots_from_start_inclusive_to_end_exclusive(tmp_path: Path) -> None:
    """--from 2 min --to 5 min keeps the snapshots at 2, 3 and 4 minutes, once per time."""
    out = write_output(tmp_path / "out", snapshot_frame([0.1 * i for i in range(10)]))
    loaded = load_replay(out, T0 + 2 * MINUTE, T0 + 5 * MINUTE)
    assert loaded.market["ts"].to_list() == [T0 + k * MINUTE for k in (2, 3, 4)]
    assert (loaded.start, loaded.end) == (T0 + 2 * MINUTE, T0 + 4 * MINUTE)
    assert (loaded.replay_start, loaded.replay_end) == (T0, T0 + 9 * MINUTE)
    assert loaded.run is None
    assert loaded.accounts is None
    assert loaded.components is None


def test_episodes_outside_the_range_are_left_out(tmp_path: Path) -> None:
    """An episode is kept when it was firing at some time in range, also one still firing."""
    alerts = [
        alert(T0 + MINUTE, "early", "firing", 0.9),
        alert(T0 + 2 * MINUTE, "early", "resolved", 0.1),
        alert(T0 + 3 * MINUTE, "across", "firing", 0.9),
        alert(T0 + 8 * MINUTE, "across", "resolved", 0.1),
        alert(T0 + 9 * MINUTE, "late", "firing", 0.9),
    ]
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 10), alerts)
    loaded = load_replay(out, T0 + 4 * MINUTE, T0 + 6 * MINUTE)
    assert [e.rule for e in loaded.episodes] == ["across"]
    assert [e.rule for e in load_replay(out, T0 + 4 * MINUTE).episodes] == ["across", "late"]


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        load_replay(tmp_path / "nope")


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_replay(path)


@pytest.mark.parametrize("present", [(), ("snapshots.parquet",), ("alerts.jsonl",)])
def test_a_directory_without_the_replay_files_is_not_a_replay_output(
    tmp_path: Path, present: tuple[str, ...]
) -> None:
    """The message says which file is missing and which command writes it."""
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 3))
    for name in ("snapshots.parquet", "alerts.jsonl"):
        if name not in present:
            (out / name).unlink()
    with pytest.raises(DataError, match="not a replay output") as caught:
        load_replay(out)
    missing = {"snapshots.parquet", "alerts.jsonl"} - set(present)
    assert all(name in str(caught.value) for name in missing)
    assert "riskmon replay" in str(caught.value)


def test_a_corrupt_snapshots_file_is_named(tmp_path: Path) -> None:
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 3))
    (out / "snapshots.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file") as caught:
        load_replay(out)
    assert "snapshots.parquet" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_table_of_other_columns_is_not_a_replay_table(tmp_path: Path) -> None:
    """A Parquet file of candles in the place of snapshots.parquet names the missing columns."""
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 3))
    pl.DataFrame({"ts": [T0], "symbol": ["AAA"], "close": [1.0]}).write_parquet(
        out / "snapshots.parquet"
    )
    with pytest.raises(DataError, match=r"missing column.*portfolio.*avg_correlation"):
        load_replay(out)


def test_a_replay_without_snapshots_is_refused(tmp_path: Path) -> None:
    out = write_output(tmp_path / "out", snapshot_frame([]))
    with pytest.raises(DataError, match="holds no snapshots"):
        load_replay(out)


def test_an_inverted_or_empty_range_is_refused(tmp_path: Path) -> None:
    """from >= to, and a range between or beyond the snapshots, say what the replay covers."""
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 10))
    with pytest.raises(DataError, match="empty time range"):
        load_replay(out, T0 + 5 * MINUTE, T0 + 5 * MINUTE)
    with pytest.raises(DataError, match="empty time range"):
        load_replay(out, T0 + 6 * MINUTE, T0 + 5 * MINUTE)
    later = T0 + dt.timedelta(days=1)
    with pytest.raises(DataError, match="no snapshot between") as caught:
        load_replay(out, later)
    assert "2025-02-03 00:00:00 UTC to 2025-02-03 00:09:00 UTC" in str(caught.value)
    with pytest.raises(DataError, match="no snapshot between"):
        load_replay(out, T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=50))


def test_a_bad_alert_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 3), [alert(T0, "r", "firing", 1)])
    with (out / "alerts.jsonl").open("a") as handle:
        handle.write('{"ts": "2025-02-03T00:01:00Z", "rule": "r"}\n')
    with pytest.raises(DataError, match=r"alerts\.jsonl:2: not a riskmon alert event"):
        load_replay(out)


def test_a_broken_run_json_is_refused(tmp_path: Path) -> None:
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 3))
    (out / "run.json").write_text('{"rows": "many"')
    with pytest.raises(DataError, match=r"run\.json"):
        load_replay(out)


def test_run_json_keys_of_a_later_version_are_ignored(tmp_path: Path) -> None:
    """Unknown keys do not stop the report; known ones are typed."""
    run = {"riskmon_version": "9.9", "universe": ["AAA"], "something_new": {"x": 1}}
    out = write_output(tmp_path / "out", snapshot_frame([0.5] * 3), run=run)
    loaded = load_replay(out)
    assert loaded.run is not None
    assert loaded.run.riskmon_version == "9.9"
    assert loaded.run.universe == ["AAA"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-02-03", T0),
        ("2025-02-03T12:30", T0 + dt.timedelta(hours=12, minutes=30)),
        ("2025-02-03T12:30Z", T0 + dt.timedelta(hours=12, minutes=30)),
        ("2025-02-03T13:30+01:00", T0 + dt.timedelta(hours=12, minutes=30)),
        ("1738540800", T0),
        ("1738540800.5", T0 + dt.timedelta(seconds=0.5)),
    ],
)
def test_times_are_iso_8601_in_utc_or_unix_seconds(text: str, expected: dt.datetime) -> None:
    assert parse_time(text, "--from") == expected


@pytest.mark.parametrize("text", ["yesterday", "", "2025-13-01", "nan", "1e300"])
def test_a_bad_time_names_the_option(text: str) -> None:
    with pytest.raises(DataError, match="--to: expected an ISO 8601 time"):
        parse_time(text, "--to")
