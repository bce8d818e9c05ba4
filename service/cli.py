"""The ``riskmon`` command line: check-config, replay, report, run, bus, demo.

Exit codes: 0 success, 2 a user error (bad config, bad data, a port or ``[state] dir`` in
use, a bus lease held by another worker), 1 a bug.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from monitor.config.durations import parse_duration
from monitor.config.loading import load_config
from monitor.config.schema import Config
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
    rep.add_argument(
        "--send-alerts",
        action="store_true",
        help="deliver the replay's alerts through the configured [[routes]] and [[sinks]]",
    )
    rep.add_argument(
        "--send-timeout",
        default="2m",
        help='with --send-alerts: wait at most this long for the receivers (default "2m")',
    )
    rep.add_argument(
        "--report", action="store_true", help="also write report.html next to the outputs"
    )
    _report_parser(sub)
    run = sub.add_parser("run", help="run the live daemon")
    run.add_argument("--config", type=Path, default=Path("config/riskmon.toml"))
    run.add_argument("--duration", default=None, help='stop after this long, e.g. "10m"')
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    run.add_argument(
        "--role",
        default="all",
        choices=["all", "feeds", "engine"],
        help="all: one process (default); feeds / engine: split over NATS JetStream ([bus])",
    )
    chosen = run.add_mutually_exclusive_group()
    chosen.add_argument(
        "--portfolios", default=None, help="engine role: the portfolios to run, e.g. A,B"
    )
    chosen.add_argument(
        "--shard",
        default=None,
        help="engine role: shard INDEX of COUNT, INDEX counted from 0 (0/2 and 1/2 split the "
        "portfolios in two): the portfolios at config positions INDEX, INDEX+COUNT, ...",
    )
    bus = sub.add_parser("bus", help="the NATS bus of split roles: status, prune")
    actions = bus.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="stream, leases, consumers and their backlogs")
    status.add_argument("--config", type=Path, default=Path("config/riskmon.toml"))
    pruning = actions.add_parser("prune", help="remove consumers no worker's lease lists")
    pruning.add_argument("--config", type=Path, default=Path("config/riskmon.toml"))
    pruning.add_argument("--yes", action="store_true", help="remove them (default: dry run)")
    test_alert = sub.add_parser("test-alert", help="send a test notification through a sink")
    test_alert.add_argument("--sink", required=True, help="sink name from [[sinks]] (or log)")
    test_alert.add_argument("--config", type=Path, default=Path("config/riskmon.toml"))
    demo = sub.add_parser("demo", help="run offline against the bundled exchange simulator")
    demo.add_argument("--config", type=Path, default=Path("config/demo.toml"))
    demo.add_argument("--duration", default="90s", help='stop after this long (default "90s")')
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"])
    return parser


def _report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="turn a replay's output directory into one HTML file")
    report.add_argument("out_dir", type=Path, help="a `riskmon replay --out` directory")
    report.add_argument("--html", type=Path, default=None, help="default: OUT_DIR/report.html")
    report.add_argument("--from", dest="start", default=None, help="first time shown (UTC)")
    report.add_argument("--to", dest="end", default=None, help="end of the range, exclusive")
    report.add_argument("--images", type=Path, default=None, help="also write the PNGs here")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args.file)
        if args.command == "replay":
            return _replay(args)
        if args.command == "report":
            return _report(args)
        if args.command == "run":
            return _run(args)
        if args.command == "test-alert":
            return _test_alert(args)
        if args.command == "bus":
            return _bus(args)
        return _demo(args)
    except RiskmonError as exc:
        print(f"riskmon: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BaseExceptionGroup as group:  # raised inside a task group at start-up
        errors = _leaves(group)
        if not all(isinstance(e, RiskmonError) for e in errors):
            raise
        for error in errors:
            print(f"riskmon: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions of a (nested) exception group."""
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _check_config(path: Path) -> int:
    from feeds.plans import plan_feeds
    from feeds.registry import VENUES

    config = load_config(path)
    feeds = plan_feeds(config.feeds, VENUES, config.source)  # the URLs the daemon would use
    connections = sum(len(feed.plans) for feed in feeds)
    print(
        f"{path}: ok ({len(config.tracked_symbols)} symbols, {len(config.portfolios)} "
        f"portfolios, {len(config.rules)} rules, {connections} feed connections)"
    )
    for feed, planned in zip(config.feeds, feeds, strict=True):
        if (note := planned.note(feed)) is not None:
            print(f"note: {note}")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from service.replay_app import replay

    config = load_config(args.config)
    interval = None if args.candle_interval is None else _duration(args.candle_interval)
    send_timeout = _duration(args.send_timeout, "--send-timeout")
    if args.send_alerts:
        _check_sinks(config, required=True)
        _configure_logging("warning", config)
    progress = sys.stderr.isatty() and not args.no_progress
    summary = replay(
        config,
        args.data,
        args.out,
        progress=progress,
        candle_interval_s=interval,
        send_alerts_s=send_timeout if args.send_alerts else None,
    )
    _print_summary(summary, sys.stdout)
    if args.report:
        from service.report.build import build_report

        print(f"report           {build_report(args.out).html}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from service.report.build import build_report
    from service.report.load import parse_time

    start = None if args.start is None else parse_time(args.start, "--from")
    end = None if args.end is None else parse_time(args.end, "--to")
    files = build_report(args.out_dir, args.html, start=start, end=end, images_dir=args.images)
    print(files.html)
    for image in files.images:
        print(image)
    return EXIT_OK


def _check_sinks(config: Config, *, required: bool = False) -> None:
    """Build every sink once (reads secrets, checks webhook URLs) before anything starts.

    Raises:
        ConfigError: a secret is missing or a webhook URL is not a full URL.
        RiskmonError: ``required`` and no ``[[sinks]]`` are configured.
    """
    from service.alerting import build_sinks

    if required and not config.sinks:
        raise RiskmonError(f"{config.source}: --send-alerts needs [[sinks]] (and [[routes]])")
    build_sinks(config)  # files are opened on their first write: nothing to close


def _configure_logging(level: str, config: Config) -> None:
    """Logging with every configured secret masked."""
    from service.alerting import secret_redactor
    from service.logs import configure_logging

    configure_logging(level, redactor=secret_redactor(config))


def _duration(text: str, option: str = "--candle-interval") -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise RiskmonError(f"{option}: {exc}") from exc


def _print_summary(summary: object, out: TextIO) -> None:
    from service.replay_app import ReplaySummary

    assert isinstance(summary, ReplaySummary)
    skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.skipped.items())) or "none"
    alerts = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.alerts.items())) or "none"
    lines = [
        f"rows read        {summary.rows:,}",
        f"ticks applied    {summary.accepted:,}",
        f"rows skipped     {skipped}",
        f"snapshots        {summary.snapshots:,}"
        + (
            f" ({summary.gap_boundaries:,} boundaries skipped in gaps)"
            if summary.gap_boundaries
            else ""
        ),
        f"alert events     {alerts}",
        f"elapsed          {summary.elapsed_s:.2f} s",
        f"throughput       {summary.ticks_per_second:,.0f} ticks/s",
        f"output           {summary.out_dir}/snapshots.parquet, alerts.jsonl",
        *_delivery_lines(summary),
    ]
    for event in summary.first_alerts[:10]:
        moment = dt.datetime.fromtimestamp(event.ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
        where = f" [{event.portfolio}]" if event.portfolio else ""
        lines.append(
            f"  {moment} {event.severity.value:<8} {event.rule}{where}: "
            f"{event.value:.4g} vs {event.threshold:.4g}"
        )
    print("\n".join(lines), file=out)


def _delivery_lines(summary: object) -> list[str]:
    """What the sinks got, or that they were not used."""
    from service.replay_app import ReplaySummary

    assert isinstance(summary, ReplaySummary)
    delivery = summary.delivery
    if delivery is None:
        if not summary.sinks_configured:
            return []
        return [
            f"sinks            not used ({summary.sinks_configured} configured; "
            "--send-alerts delivers the alerts through the routes)"
        ]
    lines = [
        f"sink {name:<11} {d.messages:,} messages ({d.changes:,} alert changes), "
        f"{d.failed:,} failed, {d.undelivered:,} undelivered"
        for name, d in sorted(delivery.sinks.items())
    ]
    if delivery.unrouted:
        lines.append(f"unrouted         {delivery.unrouted:,} alert events matched no route")
    if not delivery.complete:
        lines.append("delivery         incomplete: --send-timeout passed first")
    return lines


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from service.live import console_alert, run_service
    from service.warmup import warm_kernels

    config = load_config(args.config)
    _check_sinks(config)
    _configure_logging(args.log_level, config)
    duration = None if args.duration is None else _duration(args.duration, "--duration")
    if args.role != "feeds":
        warm_kernels(config)  # before the event loop: a numba compile holds the GIL
    # The libraries' objects (numba's type system, scipy, nats) live until the process ends:
    # keep the collector from walking them again at every full collection (as the replay).
    gc.freeze()
    if args.role != "all" or args.portfolios is not None or args.shard is not None:
        return _run_role(args, config, duration)
    asyncio.run(
        run_service(
            config,
            config_path=args.config,
            duration_s=duration,
            listeners=(console_alert(),),
        )
    )
    return EXIT_OK


def _run_role(args: argparse.Namespace, config: Config, duration: float | None) -> int:
    import asyncio

    from service.live import console_alert
    from service.roles import parse_shard, role_service

    if args.role != "engine" and (args.portfolios is not None or args.shard is not None):
        raise RiskmonError("--portfolios and --shard need --role engine")
    names = [n.strip() for n in (args.portfolios or "").split(",") if n.strip()]
    shard = None if args.shard is None else parse_shard(args.shard)
    service = role_service(
        args.role,
        config,
        config_path=args.config,
        listeners=(console_alert(),),
        portfolios=names,
        shard=shard,
    )
    asyncio.run(service.run(duration))
    return EXIT_OK


def _bus(args: argparse.Namespace) -> int:
    import asyncio

    from service.bus_admin import format_report, prune, read_report

    bus = load_config(args.config).bus
    report = asyncio.run(read_report(bus))
    if args.action == "status":
        print("\n".join(format_report(report, bus)))
        return EXIT_OK
    orphans = report.orphans(bus.consumer_prefix)
    if not orphans:
        print("no orphan consumers")
    elif not args.yes:
        print("would remove (dry run; --yes removes them):")
        print("\n".join(f"  {name}" for name in orphans))
    else:
        removed = asyncio.run(prune(bus, orphans))
        print(f"removed {len(removed)} consumers:")
        print("\n".join(f"  {name}" for name in removed))
    return EXIT_OK


def _test_alert(args: argparse.Namespace) -> int:
    import asyncio

    from service.alerting import secret_redactor, send_test_alert

    config = load_config(args.config)
    redact = secret_redactor(config)
    try:
        outcome = asyncio.run(send_test_alert(config, args.sink))
    except RiskmonError as exc:
        raise RiskmonError(redact(str(exc))) from None
    detail = f": {outcome.detail}" if outcome.detail else ""
    print(redact(f"sink {args.sink}: {outcome.verdict.value}{detail}"))
    return EXIT_OK if outcome.verdict.value == "delivered" else EXIT_USAGE


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from service.demo import run_demo
    from service.warmup import warm_kernels

    config = load_config(args.config)
    _check_sinks(config)
    _configure_logging(args.log_level, config)
    duration = _duration(args.duration, "--duration")
    warm_kernels(config)  # before the event loop: a numba compile holds the GIL
    asyncio.run(run_demo(config, duration_s=duration, speed=args.speed, out=sys.stdout))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
