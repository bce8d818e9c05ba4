"""The ``riskmon`` command line: check-config, replay, run, demo.

Exit codes: 0 success, 2 a user error (bad config, bad data, unavailable command), 1 a bug.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from monitor.config import load_config
from monitor.durations import parse_duration
from monitor.errors import RiskmonError

EXIT_OK, EXIT_USAGE = 0, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskmon", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path)
    rep = sub.add_parser("replay", help="replay historical Parquet/CSV files through the engine")
    rep.add_argument("data", nargs="+", type=Path, help="tick, candle or Binance kline files")
    rep.add_argument("--config", required=True, type=Path)
    rep.add_argument("--out", required=True, type=Path, help="output directory")
    rep.add_argument(
        "--candle-interval", default=None, help='candle length, e.g. "5m" (default: inferred)'
    )
    rep.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    for name, text in (("run", "run the live daemon"), ("demo", "run against the simulator")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", type=Path, default=Path("config/riskmon.toml"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args.file)
        if args.command == "replay":
            return _replay(args)
        return _not_yet(args.command)
    except RiskmonError as exc:
        print(f"riskmon: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _check_config(path: Path) -> int:
    config = load_config(path)
    print(
        f"{path}: ok ({len(config.tracked_symbols)} symbols, {len(config.portfolios)} "
        f"portfolios, {len(config.rules)} rules)"
    )
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from monitor.app import replay

    config = load_config(args.config)
    interval = None if args.candle_interval is None else _duration(args.candle_interval)
    progress = sys.stderr.isatty() and not args.no_progress
    summary = replay(config, args.data, args.out, progress=progress, candle_interval_s=interval)
    _print_summary(summary, sys.stdout)
    return EXIT_OK


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise RiskmonError(f"--candle-interval: {exc}") from exc


def _print_summary(summary: object, out: TextIO) -> None:
    from monitor.app import ReplaySummary

    assert isinstance(summary, ReplaySummary)
    skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.skipped.items())) or "none"
    alerts = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.alerts.items())) or "none"
    lines = [
        f"rows read        {summary.rows:,}",
        f"ticks applied    {summary.accepted:,}",
        f"rows skipped     {skipped}",
        f"snapshots        {summary.snapshots:,}",
        f"alert events     {alerts}",
        f"elapsed          {summary.elapsed_s:.2f} s",
        f"throughput       {summary.ticks_per_second:,.0f} ticks/s",
        f"output           {summary.out_dir}/snapshots.parquet, alerts.jsonl",
    ]
    for event in summary.first_alerts[:10]:
        moment = dt.datetime.fromtimestamp(event.ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
        where = f" [{event.portfolio}]" if event.portfolio else ""
        lines.append(
            f"  {moment} {event.severity.value:<8} {event.rule}{where}: "
            f"{event.value:.4g} vs {event.threshold:.4g}"
        )
    print("\n".join(lines), file=out)


def _not_yet(command: str) -> int:
    print(
        f"riskmon {command}: the live daemon arrives with the websocket feeds (issue #3); "
        "use `riskmon replay` for historical data meanwhile",
        file=sys.stderr,
    )
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
