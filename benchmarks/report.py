"""Summarise benchmarks/results/*.json as the Markdown table of benchmarks/README.md.

Usage: python -m benchmarks.report
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from benchmarks.common import RESULTS, spread, verdict

Row = list[str]


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return dict(json.loads(path.read_text())) if path.exists() else None


def engine_rows(data: dict[str, Any]) -> list[Row]:
    """Targets 1 and 2, one row per asset count."""
    passed = {(t["target"], t.get("assets", 50)): t["pass"] for t in data["results"]["targets"]}
    rows = []
    for r in data["results"]["rows"]:
        n = r["assets"]
        bound = "<= " if r["cut_runs"] else ""
        target = "1, 2" if (1, n) in passed else "2"
        result = verdict(passed[(2, n)])
        if (1, n) in passed:
            result = f"{verdict(passed[(1, n)])} (1), {result} (2)"
        snap = r["snapshot_ms_estimate"]
        snap_text = (
            f"; {snap:,.1f} ms/snapshot" if snap is not None else "; a snapshot outlasted the run"
        )
        rows.append(
            [
                target,
                f"engine ticks/s, {r['assets']} assets",
                bound + spread(r["riskmon_ticks_per_s"]),
                f"naive EWMA {spread(r['baseline_ticks_per_s'])}",
                f"{bound}{r['ratio_of_medians']:.3g}x",
                (">= 1,000,000/s and " if (1, n) in passed else "") + ">= 10x",
                result,
            ]
        )
        rows.append(
            [
                "",
                f"  ingest only (no snapshots), {r['assets']} assets",
                spread(r["ingest_only_ticks_per_s"]) + snap_text,
                f"kernel only {spread(r['kernel_only_ticks_per_s'])}",
                "",
                "",
                "info",
            ]
        )
    return rows


def live_rows(data: dict[str, Any]) -> list[Row]:
    """Target 3."""
    r = data["results"]
    return [
        [
            "3",
            "live path ticks/s (Binance frames over loopback)",
            spread(r["riskmon_ticks_per_s"]),
            f"bare recv + JSON {spread(r['bare_ticks_per_s'])}",
            f"{r['ratio_of_medians']:.2f}x",
            ">= 0.5x",
            verdict(r["targets"][0]["pass"]),
        ]
    ]


def latency_rows(data: dict[str, Any]) -> list[Row]:
    """Target 4: receive -> evaluated p50, p99 (the target), p99.9; send -> evaluated p99."""
    s = data["results"]["summary"]
    rate = data["parameters"]["rate"]
    recv, send = s["receive_to_evaluated_ms"], s["send_to_evaluated_ms"]
    text = (
        f"p50 {spread(recv['p50'], fmt='.2f')}, p99 {spread(recv['p99'], fmt='.2f')}, "
        f"p99.9 {spread(recv['p99.9'], fmt='.1f')}"
    )
    return [
        [
            "4",
            f"receive -> rules evaluated, ms, at {rate:,.0f} msg/s",
            text,
            f"send -> evaluated p99 {spread(send['p99'], fmt='.2f')}",
            "",
            "p99 <= 2 ms",
            verdict(data["results"]["targets"][0]["pass"]),
        ]
    ]


def memory_rows(data: dict[str, Any]) -> list[Row]:
    """Target 5."""
    r = data["results"]
    runs = r["runs"]
    mib = 1024.0 * 1024.0
    warm = sorted(x["rss_after_warmup"] / mib for x in runs)
    end = sorted(x["rss_end"] / mib for x in runs)
    ticks = data["parameters"]["ticks"]
    return [
        [
            "5",
            f"RSS growth over {ticks / 1e6:g}M ticks, 50 assets",
            f"{spread(r['growth'], 100.0, '.2f')} %",
            f"RSS after warm-up {warm[len(warm) // 2]:,.0f} MiB, end {end[len(end) // 2]:,.0f} MiB",
            "",
            "< 10 %",
            verdict(r["targets"][0]["pass"]),
        ]
    ]


def scrape_rows(data: dict[str, Any]) -> list[Row]:
    """Target 6."""
    r = data["results"]
    return [
        [
            "6",
            f"/metrics scrape, {data['parameters']['symbols']} symbols, ms",
            f"{spread(r['riskmon_ms'], fmt='.2f')}; {r['bytes']:,} bytes, {r['series']:,} series",
            f"prebuilt families {spread(r['exposition_only_ms'], fmt='.2f')}",
            f"{r['ratio_of_medians']:.2f}x",
            "< 20 ms",
            verdict(r["targets"][0]["pass"]),
        ]
    ]


def bus_rows(data: dict[str, Any]) -> list[Row]:
    """Issue #17: ticks per second through NATS JetStream against the engine step alone, the
    latency batching adds, and engine workers."""
    r = data["results"]
    passed = {t["target"]: t["pass"] for t in r.get("targets", [])}
    rows = [
        [
            "#17",
            f"ticks/s through NATS JetStream, {data['parameters']['assets']} assets "
            "(slower of publish and consume)",
            f"{spread(r['through_bus_ticks_per_s'])}; publish "
            f"{spread(r['publish_ticks_per_s'])}, consume {spread(r['consume_ticks_per_s'])}",
            f"in-process engine step {spread(r['in_process_ticks_per_s'])}",
            f"{r['bus_over_in_process']:.3g}x",
            ">= 0.25x",
            verdict(passed["#17 bus"]) if "#17 bus" in passed else "info",
        ]
    ]
    latency = r.get("latency_ms")
    if latency:
        rate = data["parameters"]["latency_rate"]
        rows.append(
            [
                "#17",
                f"offer -> delivered through the bus, ms, at {rate:,.0f} ticks/s",
                f"p50 {spread(latency['batched']['p50'], fmt='.2f')}, "
                f"p99 {spread(latency['batched']['p99'], fmt='.2f')}",
                f"one message per tick: p99 {spread(latency['one_per_tick']['p99'], fmt='.1f')}",
                "",
                "p99 <= 20 ms",
                verdict(passed["#17 latency"]),
            ]
        )
    workers = r.get("workers_ticks_per_s", {})
    if workers:
        rows.append(
            [
                "#17",
                "engine worker processes on the stored stream, all ticks/s",
                "; ".join(f"{n}: {spread(v)}" for n, v in workers.items()),
                "",
                "",
                "",
                "info",
            ]
        )
    return rows


def catchup_rows(data: dict[str, Any]) -> list[Row]:
    """Issue #20: a fresh engine worker catching up a backlog against in-process replay."""
    r = data["results"]
    passed = {t["target"]: t["pass"] for t in r["targets"]}
    return [
        [
            "#20",
            f"backlog catch-up ticks/s, {r['messages']:,} messages "
            f"({data['parameters']['assets']} assets, default [bus])",
            f"{spread(r['catch_up_ticks_per_s'])}; rewinds {r['rewinds']}",
            f"in-process, same messages {spread(r['in_process_ticks_per_s'])}",
            f"{r['catch_up_over_in_process']:.3g}x",
            ">= 0.5x, no rewind",
            verdict(passed["#20 catch-up"]),
        ]
    ]


def replay_rows(data: dict[str, Any]) -> list[Row]:
    """Issue #17: the whole replay process against the naive loop on the same file."""
    passed = {t["ticks"]: t["pass"] for t in data["results"]["targets"]}
    assets = data["parameters"]["assets"]
    return [
        [
            "#17",
            f"whole `riskmon replay` ticks/s, {r['ticks'] / 1e6:g}M ticks, {assets} assets",
            f"{spread(r['riskmon_ticks_per_s'])}; "
            f"replay's own {spread(r['replay_own_ticks_per_s'])}",
            f"naive EWMA process {spread(r['naive_ticks_per_s'])}",
            f"{r['ratio_of_medians']:.3g}x",
            ">= 10x" if r["ticks"] in passed else "",
            verdict(passed[r["ticks"]]) if r["ticks"] in passed else "info",
        ]
        for r in data["results"]["rows"]
    ]


def option_var_rows(data: dict[str, Any]) -> list[Row]:
    """Issue #13: an options account per snapshot, and the Monte Carlo alone."""
    r = data["results"]
    paths = data["parameters"]["paths"]
    rows = []
    for name, account in r["accounts"].items():
        rows.append(
            [
                "#13",
                f"options account `{name}` ({account['options']} options), ms per snapshot",
                spread(account["risk_ms"], fmt=".2f"),
                f"Monte Carlo VaR alone ({paths:,} paths) "
                f"{spread(account['monte_carlo_ms'], fmt='.2f')}",
                "",
                "<= 20 ms",
                verdict(account["risk_ms"]["median"] <= 20.0),
            ]
        )
    return rows


def table(rows: Sequence[Row]) -> str:
    """A Markdown table."""
    head = [
        "target",
        "what",
        "riskmon: median (min-max)",
        "baseline in the same run",
        "ratio of medians",
        "goal",
        "result",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    """Print the table and the environment of the engine run."""
    rows: list[Row] = []
    loaded = []
    for name, build in (
        ("engine_throughput", engine_rows),
        ("live_throughput", live_rows),
        ("latency", latency_rows),
        ("memory", memory_rows),
        ("metrics_scrape", scrape_rows),
        ("bus_throughput", bus_rows),
        ("bus_catchup", catchup_rows),
        ("replay_throughput", replay_rows),
        ("option_var", option_var_rows),
    ):
        data = _load(name)
        if data is not None:
            loaded.append(data)
            rows += build(data)
    print(table(rows))
    commits = {d["commit"] for d in loaded}
    if len(commits) > 1:
        print(f"\nWARNING: the results come from different commits: {sorted(map(str, commits))}")
    first = _load("engine_throughput")
    if first is not None:
        v = first["versions"]
        print(
            f"\n{first['processor']}, {first['cpus']} CPUs, Python {first['python']}, "
            f"numpy {v['numpy']}, numba {v['numba']}, websockets {v['websockets']}, "
            f"prometheus-client {v['prometheus-client']}; commit {str(first['commit'])[:7]}"
            f"{' with modified product code' if first['product_code_modified'] else ''}; "
            f"measured {first['time_utc']}, "
            f"load average at start {', '.join(f'{x:.2f}' for x in first['load_average'])}."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
