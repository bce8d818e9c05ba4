"""Top functions of a py-spy profile in collapsed-stack ("raw") format.

Record, then summarise the samples under one function (e.g. a benchmark's timed run):

    .venv/bin/py-spy record --format raw -o engine.txt -- \\
        .venv/bin/python -m benchmarks.engine_throughput --assets 50
    .venv/bin/python -m benchmarks.pyspy_top engine.txt --within run_riskmon

Prints, as a share of the selected samples, the functions with the most self time (the frame
on top of the stack) and the most inclusive time (anywhere on the stack, counted once per
sample).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def parse(path: Path) -> list[tuple[list[str], int]]:
    """(frames from the root, sample count) per line of a collapsed-stack file."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    return stacks


def name_of(frame: str) -> str:
    """``function (file.py:line)`` -> ``function (file.py)``: lines merged per function."""
    head, _, where = frame.partition(" (")
    return f"{head} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else head


def top(
    stacks: list[tuple[list[str], int]], within: str | None, limit: int
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """Total selected samples, top self-time functions, top inclusive functions."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        names = [name_of(f) for f in frames]
        if within is not None:
            starts = [i for i, n in enumerate(names) if n.startswith(within + " ")]
            if not starts:
                continue
            names = names[starts[0] :]
        total += count
        own[names[-1]] += count
        for name in set(names):
            incl[name] += count
    return total, own.most_common(limit), incl.most_common(limit)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the two tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--within", help="only samples under this function name")
    parser.add_argument("--limit", type=int, default=15)
    args = parser.parse_args(argv)
    total, own, incl = top(parse(args.profile), args.within, args.limit)
    if not total:
        print("no samples selected")
        return 1
    for title, rows in (("self", own), ("inclusive", incl)):
        print(
            f"{title} time, % of {total:,} samples{f' under {args.within}' if args.within else ''}"
        )
        for name, count in rows:
            print(f"{100.0 * count / total:6.1f}  {name}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
