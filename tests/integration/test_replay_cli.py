"""`riskmon replay` and `riskmon check-config` end to end on data the tests generate."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from monitor.config.loading import load_config
from service.cli import main
from service.replay_app import replay
from tests.simulate import simulate_regimes

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
CONFIG = """
[universe]
symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]

[estimator]
halflife = "5m"
slow_halflife = "1h"
min_observations = 20

[risk]
confidence = [0.95, 0.99]
distribution = "cornish-fisher"

[[portfolios]]
name = "book"
positions = [ { symbol = "AAAUSDT", quantity = 3 }, { symbol = "CCCUSDT", quantity = 5 } ]

[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.7
for = "2m"
resolve_threshold = 0.5
severity = "critical"

[replay]
snapshot_interval = "30s"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "replay.toml"
    path.write_text(textwrap.dedent(CONFIG))
    return path


@pytest.fixture
def tick_files(tmp_path: Path) -> list[Path]:
    """Two tick files (CSV and Parquet) splitting three symbols, calm then stressed."""
    ticks = simulate_regimes([2.0, 1.0, 0.5], 0.9, [(3600.0, 0.1), (3600.0, 0.95)], seed=3)
    frame = pl.DataFrame(
        {
            "ts": ticks.ts,
            "symbol": [SYMBOLS[i] for i in ticks.idx],
            "price": np.exp(ticks.logp),
        }
    )
    first, second = tmp_path / "a.csv", tmp_path / "b.parquet"
    frame.filter(pl.col("symbol") != "CCCUSDT").write_csv(first)
    frame.filter(pl.col("symbol") == "CCCUSDT").write_parquet(second)
    return [first, second]


def test_replay_writes_snapshots_and_alerts(
    tick_files: list[Path],
    config_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Snapshots per interval with the documented columns; the stress regime fires the rule."""
    out = tmp_path / "out"
    args = ["replay", *map(str, tick_files), "--config", str(config_file), "--out", str(out)]
    assert main(args) == 0
    summary = capsys.readouterr().out
    assert "ticks/s" in summary
    assert "alert events" in summary
    snaps = pl.read_parquet(out / "snapshots.parquet")
    for column in (
        "ts",
        "portfolio",
        "avg_correlation",
        "avg_correlation_slow",
        "absorption_ratio",
        "diversification_ratio",
        "portfolio_value",
        "portfolio_volatility",
        "var_95",
        "cvar_95",
        "var_99",
        "cvar_99",
        "stressed_var_99",
        "corr:AAAUSDT:BBBUSDT",
        "corr:BBBUSDT:CCCUSDT",
    ):
        assert column in snaps.columns, column
    steps = snaps["ts"].diff().drop_nulls().unique().to_list()
    assert [s.total_seconds() for s in steps] == [30.0]
    assert snaps["avg_correlation"].head(1).is_null().all()  # not ready at the start
    late = snaps.filter(pl.col("ts") > snaps["ts"].max() - pl.duration(minutes=20))
    assert late["avg_correlation"].mean() > 0.8
    assert late["var_99"].drop_nulls().len() > 0
    events = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert events, "the stressed hour must fire the correlation rule"
    first = events[0]
    assert first["rule"] == "spike"
    assert first["state"] == "firing"
    assert first["ts"].endswith("Z")
    assert set(first) == {
        "ts",
        "rule",
        "state",
        "severity",
        "value",
        "threshold",
        "labels",
        "portfolio",
    }


def test_replay_without_alerts_writes_an_empty_alerts_file(
    tick_files: list[Path], config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No rule fires: exit 0, an empty alerts.jsonl beside snapshots.parquet, "none" said."""
    quiet = config_file.read_text().replace("threshold = 0.7", "threshold = 0.9999")
    config_file.write_text(quiet.replace("resolve_threshold = 0.5", "resolve_threshold = 0.99"))
    out = tmp_path / "out"
    args = ["replay", *map(str, tick_files), "--config", str(config_file), "--out", str(out)]
    assert main(args) == 0
    assert (out / "alerts.jsonl").read_text() == ""
    assert pl.read_parquet(out / "snapshots.parquet").height > 0
    assert "alert events     none" in capsys.readouterr().out


def test_replay_counts_bad_rows_and_a_year_2100_row_costs_bounded_snapshots(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 1000x print, a negative price and a row stamped 2100 in a file: the replay ends,
    counts each, and emits a bounded number of snapshots across the 75-year gap."""
    ts = [1_700_000_000.0 + 10.0 * i for i in range(400)]
    prices = [100.0 * (1 + 0.001 * ((i * 7) % 5 - 2)) for i in range(400)]
    prices[200] = prices[199] * 1000.0  # a bad print, never confirmed
    prices[300] = -1.0
    ts.append(4_102_444_800.0)  # year 2100
    prices.append(prices[-1])
    data = tmp_path / "ticks.csv"
    pl.DataFrame({"ts": ts, "symbol": ["AAAUSDT"] * len(ts), "price": prices}).write_csv(data)
    out = tmp_path / "out"
    assert main(["replay", str(data), "--config", str(config_file), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "outlier 1" in summary
    assert "non_positive 1" in summary
    snaps = pl.read_parquet(out / "snapshots.parquet")
    assert snaps.height < 400 * 10 / 30 + 1000 + 2
    assert "boundaries skipped in gaps" in summary


def test_missing_column_fails_with_exit_2_and_writes_nothing(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tick table without a price column is named in the error; no output appears."""
    bad = tmp_path / "bad.csv"
    pl.DataFrame({"ts": [1.0, 2.0], "symbol": ["AAAUSDT", "AAAUSDT"]}).write_csv(bad)
    out = tmp_path / "out"
    assert main(["replay", str(bad), "--config", str(config_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "price" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".riskmon-replay-*"))


def test_unreadable_file_and_bad_config_exit_2(
    tick_files: list[Path], config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing data file and an invalid config are user errors with clear messages."""
    out = tmp_path / "out"
    missing = tmp_path / "nope.parquet"
    assert main(["replay", str(missing), "--config", str(config_file), "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text(config_file.read_text().replace('halflife = "5m"', 'halflife = "5 min"'))
    assert main(["replay", str(tick_files[0]), "--config", str(broken), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[estimator] halflife" in err
    assert not out.exists()


def test_check_config(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 and a one-line summary when valid, 2 and the message otherwise."""
    assert main(["check-config", str(config_file)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(config_file.read_text() + "\n[estimator2]\nx = 1\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "estimator2" in err


def test_shipped_configs_are_valid() -> None:
    """The default daemon config and the example replay config load."""
    root = Path(__file__).resolve().parents[2]
    for name in ("riskmon.toml", "example-replay.toml"):
        assert main(["check-config", str(root / "config" / name)]) == 0


def test_run_keeps_retrying_an_unreachable_venue_and_stops_on_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`riskmon run --duration` with nothing listening: retries, logs, exits 0 on time."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    config = tmp_path / "run.toml"
    config.write_text(
        textwrap.dedent(CONFIG)
        + textwrap.dedent(
            f"""
            [[feeds]]
            venue = "binance"
            symbols = ["AAAUSDT"]
            url = "ws://127.0.0.1:{port}"

            [server]
            listen = "127.0.0.1:0"

            [state]
            dir = "{tmp_path / "state"}"
            """
        )
    )
    started = time.monotonic()
    assert main(["run", "--config", str(config), "--duration", "2s"]) == 0
    assert time.monotonic() - started < 8
    assert "feed_disconnected" in capsys.readouterr().err


def test_run_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon refuses to start on an invalid config and says why."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[universe]\nsymbols = ["BTCUSDT"]\n[[feeds]]\nvenue = "ftx"\nsymbols = ["X"]\n')
    assert main(["run", "--config", str(bad)]) == 2
    assert "[[feeds]][0] venue" in capsys.readouterr().err


def test_replay_with_a_reader_thread_writes_what_one_thread_does(
    tick_files: list[Path], config_file: Path, tmp_path: Path
) -> None:
    """Reading ahead in a thread changes nothing: the same snapshots.parquet and alerts.jsonl
    bytes and the same counts, on files with bad rows, an unknown symbol, a bad print and a
    late tick, cut into many small batches."""
    extra = pl.DataFrame(
        {
            "ts": [1_700_000_100.0, None, 1_700_003_000.0, 1_700_003_001.0, 1_700_000_050.0],
            "symbol": ["ZZZUSDT", "AAAUSDT", "BBBUSDT", "BBBUSDT", "AAAUSDT"],
            "price": [1.0, 1.0, 1e6, 0.0, 100.0],
        }
    )
    files = [*tick_files, tmp_path / "extra.parquet"]
    extra.write_parquet(files[-1])
    config = load_config(config_file, environ={})
    summaries, outputs = [], []
    for read_ahead in (0, 2):
        out = tmp_path / f"out-{read_ahead}"
        summary = replay(config, files, out, read_ahead=read_ahead, batch_rows=997)
        summaries.append((summary.rows, summary.accepted, summary.skipped, summary.alerts))
        outputs.append(
            [(out / name).read_bytes() for name in ("snapshots.parquet", "alerts.jsonl")]
        )
    assert summaries[0] == summaries[1]
    assert outputs[0] == outputs[1]
    rows, accepted, skipped, alerts = summaries[0]
    assert rows > accepted > 10 * 997  # many batches
    assert {"unknown_symbol", "null_ts", "non_positive"} <= set(skipped)
    assert alerts  # the stressed hour fires the rule


def test_a_file_unreadable_past_its_first_rows_fails_the_threaded_replay_cleanly(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reader thread's error reaches the command: exit 2 naming the file, nothing
    written, no temporary directory left."""
    data = tmp_path / "ticks.csv"
    rows = [f"{1_700_000_000 + i},AAAUSDT,{100 + i % 7}" for i in range(5000)]
    data.write_text("ts,symbol,price\n" + "\n".join(rows) + "\n1700009999,AAAUSDT,1,extra\n")
    out = tmp_path / "out"
    assert main(["replay", str(data), "--config", str(config_file), "--out", str(out)]) == 2
    assert str(data) in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.glob(".riskmon-replay-*"))


def test_the_replay_front_end_starts_its_reader_before_numba_or_scipy_load() -> None:
    """The command line, the config and the replay's front end import neither numba nor scipy
    (together most of a replay's start-up): those load beside the reader thread, and
    scipy.stats (half a second) not at all for a book without options."""
    code = (
        "import sys; import service.cli, service.replay_app, feeds.history, monitor.config.loading;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'scipy'}))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
    code = "import sys; import service.replay_run; print('scipy.stats' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"
