"""``riskmon report``: a replay's output directory in, one self-contained HTML file out."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import RiskmonError
from service.report import sections
from service.report.axes import RulePalette
from service.report.load import load_replay
from service.report.page import Image, render

REPORT_FILE = "report.html"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What :func:`build_report` wrote.

    Attributes:
        html: the HTML file.
        images: the PNG files written with ``images_dir`` (empty without it).
    """

    html: Path
    images: list[Path]


def build_report(
    directory: Path,
    html_path: Path | None = None,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    images_dir: Path | None = None,
) -> ReportFiles:
    """Write the report of the replay output in ``directory``.

    Args:
        directory: a ``riskmon replay --out`` directory.
        html_path: where to write the HTML; ``directory/report.html`` by default.
        start, end: keep snapshots with ``start <= ts < end`` (either may be None).
        images_dir: also write every figure there as a PNG file.

    Raises:
        DataError: the directory is missing or not a replay output, or the range is empty.
        RiskmonError: the HTML or an image cannot be written there.
    """
    out = load_replay(directory, start, end)
    palette = RulePalette(out.episodes)
    built = [
        sections.timelines(out, palette),
        sections.portfolios(out, palette),
        sections.accounts(out, palette, sections.rules_of(out)),
        sections.correlations(out),
    ]
    images: list[Image] = [image for _, found in built for image in found]
    page = render(
        sections.title(out),
        sections.lead(out),
        [*(section for section, _ in built), sections.alerts(out), sections.facts(out)],
    )
    target = html_path if html_path is not None else directory / REPORT_FILE
    try:
        written = _write_images(images_dir, images) if images_dir is not None else []
        _write_atomically(target, page.encode("utf-8"))  # last: no report without its images
    except OSError as exc:
        where = exc.filename if exc.filename is not None else target
        raise RiskmonError(f"{where}: cannot write the report ({exc.strerror or exc})") from None
    return ReportFiles(target, written)


def _write_images(directory: Path, images: list[Image]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for image in images:
        path = directory / image.name
        _write_atomically(path, image.png)
        paths.append(path)
    return paths


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # mkstemp's 0600 would hide it from other users
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
