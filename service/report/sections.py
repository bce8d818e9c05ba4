"""The six sections of the report, each from a :class:`~service.report.load.ReplayOutput`.

Figures are rendered to PNG here (:func:`service.report.axes.png`) and dropped at once, so
a report of many portfolios never holds more than one figure in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

from service.report.axes import RulePalette, png
from service.report.episodes import Episode
from service.report.facts import RuleFacts, RunFacts, riskmon_version
from service.report.figures import account_figure, portfolio_figure, timeline_figure
from service.report.heatmap import extreme_matrices, heatmap_figure
from service.report.load import ReplayOutput
from service.report.page import Image, Section, escape, image_tag, key_values, note, table

MAX_ALERT_ROWS = 2000


def _image(name: str, alt: str, figure: Figure) -> Image:
    return Image(name, alt, png(figure))


def timelines(out: ReplayOutput, palette: RulePalette) -> tuple[Section, list[Image]]:
    """Section 1: the market figures with every rule's firing spans."""
    image = _image("timelines.png", "market timelines", timeline_figure(out, palette))
    text = note(
        "Fast and slow: the estimator's two half-lives. Shaded: a rule firing, one colour per "
        "rule; hatched: still firing at the end of the replay. The absorption ratio's shift is "
        "on the right axis, with Kritzman's signal level 1 dotted."
    )
    return Section("timelines", "Timelines", image_tag(image) + text), [image]


def portfolios(out: ReplayOutput, palette: RulePalette) -> tuple[Section, list[Image]]:
    """Section 2: per portfolio, VaR, CVaR, stressed VaR, diversification, components."""
    names = portfolio_names(out.snapshots)
    horizon_s = None if out.run is None else out.run.horizon_s
    horizon = "" if horizon_s is None else f" over {horizon_text(horizon_s)}"
    images = [
        _image(f"portfolio-{n}.png", f"portfolio {n}", portfolio_figure(out, n, palette, horizon))
        for n in names
    ]
    if not images:
        text = "No portfolio in this replay (the configuration has none)."
        return Section("portfolios", "Portfolios", note(text)), []
    text = note(
        "Stressed VaR sets every correlation to 1; the diversification benefit is "
        "1 - VaR / stressed VaR. Component VaR is each position's Euler contribution (the "
        "components sum to the VaR, the black line): the largest at the snapshot of the "
        "highest VaR in range (the bars on the right), the rest summed in grey."
    )
    body = "".join(
        f"<h3>{escape(n)}</h3>{image_tag(i)}" for n, i in zip(names, images, strict=True)
    )
    return Section("portfolios", "Portfolios", body + text), images


def accounts(
    out: ReplayOutput, palette: RulePalette, rules: Sequence[RuleFacts]
) -> tuple[Section, list[Image]]:
    """Section 3: per account, margin ratio with thresholds and liquidation distance."""
    if out.accounts is None or out.accounts.is_empty():
        text = "No account in this replay (no accounts.parquet: the configuration has none)."
        return Section("accounts", "Accounts", note(text)), []
    names = [n for n in out.accounts["account"].unique(maintain_order=True).to_list() if n]
    images = [
        _image(f"account-{n}.png", f"account {n}", account_figure(out, n, palette, rules))
        for n in names
    ]
    text = note(
        "Margin ratio: maintenance margin over margin balance; the venue liquidates at 1. "
        "Dashed: a rule's threshold, dotted: its resolve threshold. Liquidation distance: the "
        "nearest liquidating move in sigmas of the current covariance over the horizon."
    )
    if not rules:
        text += note("Rule thresholds are not drawn: this replay recorded no run.json.")
    body = "".join(
        f"<h3>{escape(n)}</h3>{image_tag(i)}" for n, i in zip(names, images, strict=True)
    )
    return Section("accounts", "Accounts", body + text), images


def correlations(out: ReplayOutput) -> tuple[Section, list[Image]]:
    """Section 4: heatmaps at the calmest and the most correlated snapshot."""
    found = extreme_matrices(out)
    if isinstance(found, str):
        return Section("correlations", "Correlation heatmaps", note(found)), []
    image = _image("correlations.png", "correlation heatmaps", heatmap_figure(*found))
    text = note(
        "The fast correlation matrix at the snapshot with the lowest and the highest average "
        "correlation in range, on one colour scale from -1 to 1."
    )
    return Section("correlations", "Correlation heatmaps", image_tag(image) + text), [image]


def alerts(out: ReplayOutput) -> Section:
    """Section 5: one row per alert episode in range."""
    if not out.episodes:
        return Section("alerts", "Alerts", note("No rule fired in this range."))
    rows = [_alert_row(e, out.replay_end) for e in out.episodes[:MAX_ALERT_ROWS]]
    headers = [
        "rule",
        "severity",
        "fired (UTC)",
        "resolved (UTC)",
        "duration",
        "threshold",
        "peak",
        "peak at (UTC)",
    ]
    body = table(headers, rows, numeric=(5, 6))
    if len(out.episodes) > MAX_ALERT_ROWS:
        body += note(f"The first {MAX_ALERT_ROWS} of {len(out.episodes)} episodes are shown.")
    body += note(
        "Peak: the most extreme value of the rule's metric while firing (highest for > and >=, "
        "lowest for < and <=), at the time in the last column."
    )
    return Section("alerts", "Alerts", body)


def _alert_row(episode: Episode, replay_end: dt.datetime) -> list[str]:
    severity = escape(episode.severity)
    resolved = "firing at the end" if episode.resolved is None else _when(episode.resolved)
    seconds = ((episode.resolved or replay_end) - episode.fired).total_seconds()
    duration = ("at least " if episode.resolved is None else "") + duration_text(seconds)
    if episode.peak is not None:
        peak, at = number(episode.peak.value), _when(episode.peak.ts)
    else:
        peak, at = number(episode.fired_value), "at firing (peak not recorded)"
    return [
        escape(episode.instance),
        f'<span class="{severity}">{severity}</span>',
        _when(episode.fired),
        resolved,
        duration,
        number(episode.threshold),
        peak,
        at,
    ]


def facts(out: ReplayOutput) -> Section:
    """Section 6: data files, time range, configuration digest, versions, command."""
    items: list[tuple[str, str]] = [
        ("replay directory", f"<code>{escape(out.directory.resolve())}</code>"),
        ("replay covers", f"{_when(out.replay_start)} to {_when(out.replay_end)} UTC"),
        ("this report shows", f"{_when(out.start)} to {_when(out.end)} UTC"),
        ("snapshots shown", f"{out.market.height:,}"),
    ]
    if out.run is None:
        items.append(("run facts", "not recorded (no run.json: a replay by an older riskmon)"))
    else:
        items += _run_items(out.run)
    items.append(("report made by", f"riskmon {escape(riskmon_version())}"))
    files = ", ".join(f"{escape(n)} ({size:,} bytes)" for n, size in out.files.items())
    items.append(("files", files))
    return Section("facts", "Run facts", key_values(items))


def _run_items(run: RunFacts) -> list[tuple[str, str]]:
    inputs = "<br>".join(
        f"<code>{escape(i.path)}</code> ({i.bytes:,} bytes, "
        f"SHA-256 <code>{escape(i.sha256)}</code>)"
        for i in run.inputs
    )
    overrides = run.config.environment_overrides
    shown = ", ".join(k if v is None else f"{k}={v}" for k, v in overrides.items())
    counts = f"{run.rows:,} rows read, {run.ticks_applied:,} ticks applied"
    skipped = ", ".join(f"{k} {v:,}" for k, v in run.skipped.items()) or "none"
    interval = "-" if run.snapshot_interval_s is None else f"{run.snapshot_interval_s:g} s"
    return [
        ("data files", inputs or "none recorded"),
        ("configuration", f"<code>{escape(run.config.path)}</code>"),
        ("configuration SHA-256", f"<code>{escape(run.config.sha256)}</code>"),
        ("environment overrides", escape(shown or "none")),
        ("replayed by", f"riskmon {escape(run.riskmon_version)}, {escape(run.created)}"),
        ("command", _command(run)),
        ("ticks", f"{escape(counts)}; skipped: {escape(skipped)}"),
        ("snapshot interval", interval),
    ]


def _command(run: RunFacts) -> str:
    text = f"<code>{escape(' '.join(run.command))}</code>"
    return text if run.cwd is None else f"{text} in <code>{escape(run.cwd)}</code>"


def title(out: ReplayOutput) -> str:
    """The page title: the configuration and data replayed, else the directory's name."""
    if out.run is None or out.run.config.path is None:
        return f"riskmon replay report: {out.directory.resolve().name}"
    data = [Path(i.path).name for i in out.run.inputs]
    more = f" and {len(data) - 1} more" if len(data) > 1 else ""
    on = f" on {data[0]}{more}" if data else ""
    return f"riskmon replay report: {Path(out.run.config.path).name}{on}"


def lead(out: ReplayOutput) -> str:
    """The paragraph under the title: range, size, alert episodes by severity."""
    by_severity: dict[str, int] = {}
    for episode in out.episodes:
        by_severity[episode.severity] = by_severity.get(episode.severity, 0) + 1
    counted = ", ".join(f"{n} {s}" for s, n in sorted(by_severity.items())) or "none"
    portfolios_n = out.snapshots["portfolio"].drop_nulls().n_unique()
    return escape(
        f"{_when(out.start)} to {_when(out.end)} UTC, {out.market.height:,} snapshots, "
        f"{portfolios_n} portfolio{'' if portfolios_n == 1 else 's'}; "
        f"alert episodes in range: {counted}."
    )


def rules_of(out: ReplayOutput) -> list[RuleFacts]:
    """The configured rules recorded in ``run.json`` (empty when not recorded)."""
    return [] if out.run is None else list(out.run.rules)


def number(value: float | None) -> str:
    """A figure for a table: thousands separated when large, 4 significant digits otherwise."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def duration_text(seconds: float) -> str:
    """Seconds as "45 s", "12 min", "3 h 05 min", "2 d 4 h"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def horizon_text(seconds: float) -> str:
    """A horizon in its largest whole unit: "1 d", "4 h", "30 min", "90 s"."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def portfolio_names(snapshots: pl.DataFrame) -> list[str]:
    """Portfolio names in order of first appearance."""
    return [n for n in snapshots["portfolio"].unique(maintain_order=True).to_list() if n]
