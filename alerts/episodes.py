"""What a receiver has been told, what it should know, and what to send it next (pure).

An alert (one dedup key) lives in *episodes*: it fires at ``started`` and, later, resolves at
``ended``. The fire time is the episode's identity. Per sink, the outbox keeps what the receiver
has been told (:class:`Told`: nothing, firing of an episode, resolved of an episode); delivery
always sends the difference between the current episode and that (:func:`change_for`), so:

- a resolve is never delivered before its firing: a receiver that was told nothing gets the
  whole episode at once (:attr:`Change.FIRED_AND_RESOLVED`);
- a state the receiver already has is never sent again, whatever re-emits it (a restart from an
  older checkpoint, a replayed tick stream);
- an alert that resolves and fires again before the resolve went out leaves the receiver with
  what it has, "firing": a flap shorter than the delivery delay is not notified, as with
  Alertmanager.

:func:`next_episode` decides what a rule transition does to the current episode, and
:func:`flush_at` when a grouped change goes out (Alertmanager's ``group_wait`` and
``group_interval``, except that a critical firing waits no longer than the shorter of
``group_wait`` and ``[alerts] critical_wait``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from alerts.notification import SEVERITY_ORDER, Change
from monitor.model import AlertState, Severity


class Told(StrEnum):
    """What a receiver has been told about an alert."""

    NOTHING = "none"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Episode:
    """One firing of an alert: its fire time and, once resolved, its resolve time (event time)."""

    started: float
    ended: float | None = None

    @property
    def firing(self) -> bool:
        """Whether the episode is still going on."""
        return self.ended is None


@dataclass(frozen=True, slots=True)
class Knowledge:
    """What one receiver has been told: a state and the episode it belongs to."""

    state: Told = Told.NOTHING
    started: float | None = None
    ended: float | None = None

    @classmethod
    def after(cls, change: Change, episode: Episode) -> Knowledge:
        """What the receiver knows once ``change`` about ``episode`` was delivered."""
        if change in (Change.FIRED, Change.STILL_FIRING):
            return cls(Told.FIRING, episode.started)
        return cls(Told.RESOLVED, episode.started, episode.ended)


class Suppressed(StrEnum):
    """Why a rule transition changes nothing."""

    ALREADY = "already_notified"  # the alert is already in that state (a re-emission)
    STALE = "stale"  # older than the current episode (a replay of earlier events)


def next_episode(current: Episode | None, state: AlertState, ts: float) -> Episode | Suppressed:
    """The episode after a transition to ``state`` at event time ``ts``.

    A firing while the alert fires, or a resolve once it has resolved, is a re-emission. A
    firing at or before the last resolve, or a resolve before the current fire time, belongs to
    events already accounted for. A resolve of an alert never seen firing opens and closes an
    episode at ``ts``.
    """
    if state is AlertState.FIRING:
        if current is None:
            return Episode(ts)
        if current.ended is None:
            return Suppressed.ALREADY
        return Episode(ts) if ts > current.ended else Suppressed.STALE
    if current is None:
        return Episode(ts, ts)
    if current.ended is not None:
        return Suppressed.ALREADY
    return Episode(current.started, ts) if ts >= current.started else Suppressed.STALE


def change_for(told: Knowledge, episode: Episode) -> Change | None:
    """What the receiver must be told next about ``episode``; None when it is up to date."""
    if episode.ended is None:
        return None if told.state is Told.FIRING else Change.FIRED
    if told.state is Told.FIRING:
        return Change.RESOLVED
    if told.state is Told.RESOLVED and told.started == episode.started:
        return None
    return Change.FIRED_AND_RESOLVED


def missed(told: Knowledge, previous: Episode | None) -> bool:
    """Whether a new episode replaces one the receiver never fully heard of."""
    if previous is None or previous.ended is None:
        return False
    return not (told.state is Told.RESOLVED and told.started == previous.started)


_CHANGE_RANK = {
    Change.FIRED: 0,
    Change.FIRED_AND_RESOLVED: 1,
    Change.RESOLVED: 1,
    Change.STILL_FIRING: 2,
}


def rank(severity: Severity, change: Change) -> int:
    """Send order within a sink, lowest first: by severity, then new firings, resolves,
    reminders."""
    return SEVERITY_ORDER.index(severity) * len(SEVERITY_ORDER) + _CHANGE_RANK[change]


def flush_at(
    now: float,
    *,
    wait_s: float,
    interval_s: float,
    last_flush: float | None,
    scheduled: float | None,
    urgent_wait_s: float | None = None,
) -> float:
    """When a grouped change goes out.

    It joins the group's flush already scheduled; otherwise a new group waits ``wait_s``
    (``group_wait``) and a group notified before waits until ``interval_s`` (``group_interval``)
    after its last notification. An urgent change (a critical firing, ``urgent_wait_s`` given)
    goes out no later than ``min(wait_s, urgent_wait_s)`` from now.
    """
    if scheduled is not None:
        at = scheduled
    elif last_flush is None:
        at = now + wait_s
    else:
        at = max(now + wait_s, last_flush + interval_s)
    if urgent_wait_s is None:
        return at
    return min(at, now + min(wait_s, urgent_wait_s))
