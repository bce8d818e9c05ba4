"""Alert events paired into episodes: one rule instance firing, then (perhaps) resolving.

``alerts.jsonl`` holds one event per line in event-time order; an episode is a firing event
and the next resolved event of the same rule instance (rule name and labels). The peak of an
episode comes from ``alert_peaks.jsonl`` when the replay recorded it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from monitor.errors import DataError

Labels = tuple[tuple[str, str], ...]
EpisodeKey = tuple[str, Labels, str]
"""(rule, sorted labels, firing time as written in alerts.jsonl)."""


class AlertRecord(msgspec.Struct, frozen=True):
    """One line of ``alerts.jsonl`` (``alerts.jsonl.alert_record``)."""

    ts: str
    rule: str
    state: Literal["firing", "resolved"]
    severity: str
    value: float | None
    threshold: float | None
    labels: dict[str, str] = {}
    portfolio: str | None = None


class PeakRecord(msgspec.Struct, frozen=True):
    """One line of ``alert_peaks.jsonl``."""

    rule: str
    labels: dict[str, str]
    fired: str
    peak: float | None
    peak_ts: str


@dataclass(frozen=True, slots=True)
class Peak:
    """The most extreme value of an episode and when it was reached."""

    value: float | None
    ts: dt.datetime


@dataclass(frozen=True, slots=True)
class Episode:
    """One firing of one rule instance.

    Attributes:
        rule, severity, labels, portfolio: as in the alert events.
        fired, resolved: event times; ``resolved`` is None while still firing at the end.
        fired_value, threshold: the value that fired and the threshold it crossed.
        peak: the most extreme value while firing, None when the replay did not record it.
    """

    rule: str
    severity: str
    labels: Labels
    portfolio: str | None
    fired: dt.datetime
    resolved: dt.datetime | None
    fired_value: float | None
    threshold: float | None
    peak: Peak | None = None

    @property
    def instance(self) -> str:
        """The rule name with its labels, e.g. ``var-limit [portfolio=book]``."""
        if not self.labels:
            return self.rule
        return f"{self.rule} [{', '.join(f'{k}={v}' for k, v in self.labels)}]"

    def label(self, key: str) -> str | None:
        """The value of label ``key``, if any."""
        return dict(self.labels).get(key)

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether the episode was firing at some time in ``[start, end]``."""
        return self.fired <= end and (self.resolved is None or self.resolved >= start)


def parse_utc(text: str, where: str) -> dt.datetime:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC).

    Raises:
        DataError: not a time; the message names ``where``.
    """
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def read_alerts(path: Path) -> list[AlertRecord]:
    """The events of ``alerts.jsonl``, in file order.

    Raises:
        DataError: a line is not a riskmon alert event; the message names the file and line.
    """
    decoder = msgspec.json.Decoder(AlertRecord)
    records = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            records.append(decoder.decode(line))
        except msgspec.DecodeError as exc:
            raise DataError(f"{path}:{number}: not a riskmon alert event ({exc})") from None
    return records


def read_peaks(path: Path) -> dict[EpisodeKey, Peak]:
    """The peaks of ``alert_peaks.jsonl`` by episode; empty when the file is absent.

    Raises:
        DataError: a line is not a peak record; the message names the file and line.
    """
    if not path.exists():
        return {}
    decoder = msgspec.json.Decoder(PeakRecord)
    peaks: dict[EpisodeKey, Peak] = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise DataError(f"{path}:{number}: not an alert peak record ({exc})") from None
        key = (row.rule, _labels(row.labels), row.fired)
        peaks[key] = Peak(row.peak, parse_utc(row.peak_ts, f"{path}:{number} peak_ts"))
    return peaks


def pair_episodes(
    records: Iterable[AlertRecord], peaks: Mapping[EpisodeKey, Peak], where: str = "alerts"
) -> list[Episode]:
    """Pair firing and resolved events per rule instance, in order of firing.

    A resolved event without a firing one before it (an output cut by hand) is ignored, and so
    is a firing while the instance is already firing (a duplicate).
    """
    open_: dict[tuple[str, Labels], tuple[AlertRecord, dt.datetime]] = {}
    episodes: list[Episode] = []
    for number, record in enumerate(records, start=1):
        key = (record.rule, _labels(record.labels))
        moment = parse_utc(record.ts, f"{where}:{number} ts")
        if record.state == "firing":
            open_.setdefault(key, (record, moment))
        elif key in open_:
            episodes.append(_episode(*open_.pop(key), moment, peaks))
    episodes.extend(_episode(record, fired, None, peaks) for record, fired in open_.values())
    return sorted(episodes, key=lambda e: (e.fired, e.instance))


def _episode(
    record: AlertRecord,
    fired: dt.datetime,
    resolved: dt.datetime | None,
    peaks: Mapping[EpisodeKey, Peak],
) -> Episode:
    labels = _labels(record.labels)
    return Episode(
        rule=record.rule,
        severity=record.severity,
        labels=labels,
        portfolio=record.portfolio,
        fired=fired,
        resolved=resolved,
        fired_value=record.value,
        threshold=record.threshold,
        peak=peaks.get((record.rule, labels, record.ts)),
    )


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _lines(path: Path) -> Sequence[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
