"""Delivery bookkeeping: what each sink is owed, in which order, and never twice.

The ledger runs on a real SQLite outbox in tmp_path; a "receiver" here is the list of changes a
sink was handed and reported delivered. No sockets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.episodes import Episode, Knowledge, Told
from alerts.ledger import Ledger
from alerts.notification import Change, Notification
from alerts.notify import dedup_key
from alerts.outbox import Outbox
from monitor.config.durations import Duration, PositiveDuration
from monitor.config.schema import RouteConfig
from monitor.model import AlertEvent, AlertState, Severity

CHAT, PAGER = "chat", "pager"


def _route(
    sinks: tuple[str, ...] = (CHAT, PAGER), wait: float = 30.0, interval: float = 300.0
) -> RouteConfig:
    return RouteConfig(
        sinks=sinks,
        group_wait=Duration(wait),
        group_interval=PositiveDuration(interval),
        repeat_interval=PositiveDuration(3600.0),
    )


def _ledger(path: Path, routes: Sequence[RouteConfig] = ()) -> Ledger:
    return Ledger(Outbox(path), list(routes) or [_route()], (CHAT, PAGER), {CHAT}.__contains__)


def _note(
    rule: str, state: AlertState, ts: float, severity: Severity = Severity.WARNING
) -> Notification:
    event = AlertEvent(ts, rule, state, severity, (("symbol", "BTCUSDT"),), 1.0, 0.5)
    return Notification(event, dedup_key(event), f"{rule} {state.value}", "summary")


def _fire(rule: str, ts: float, severity: Severity = Severity.WARNING) -> Notification:
    return _note(rule, AlertState.FIRING, ts, severity)


def _resolve(rule: str, ts: float, severity: Severity = Severity.WARNING) -> Notification:
    return _note(rule, AlertState.RESOLVED, ts, severity)


def _deliver(
    ledger: Ledger, sink: str, now: float, limit: int = 1, pairs: bool | None = None
) -> list[tuple[str, Change]]:
    """Pick and deliver one request; a pager sends a whole episode as trigger then resolve."""
    work = ledger.pick(sink, now, limit)
    if work is None:
        return []
    sent = {}
    for item in work.items:
        change = item.change
        if (sink == PAGER if pairs is None else pairs) and change is Change.FIRED_AND_RESOLVED:
            change = Change.FIRED
        sent[item.dedup_key] = change
    ledger.delivered(work, sent, now)
    return [(item.rule, sent[item.dedup_key]) for item in work.items]


def test_an_episode_missed_during_an_outage_is_one_digest_line_or_trigger_then_resolve(
    tmp_path: Path,
) -> None:
    """Fire and resolve both wait: chat gets "fired and resolved", the pager both, in order."""
    ledger = _ledger(tmp_path / "o.sqlite")
    ledger.record([_fire("stale", 100.0)], 1000.0)
    ledger.record([_resolve("stale", 160.0)], 1001.0)
    assert _deliver(ledger, CHAT, 1001.0, 40) == []  # the group waits group_wait
    assert _deliver(ledger, CHAT, 1030.0, 40) == [("stale", Change.FIRED_AND_RESOLVED)]
    assert _deliver(ledger, PAGER, 1001.0) == [("stale", Change.FIRED)]
    assert _deliver(ledger, PAGER, 1001.0) == [("stale", Change.RESOLVED)]
    assert _deliver(ledger, PAGER, 2000.0) == []


def test_a_resolve_waits_for_its_firing_whatever_the_backoff(tmp_path: Path) -> None:
    """The firing is in backoff when the resolve arrives: nothing resolves first."""
    ledger = _ledger(tmp_path / "o.sqlite")
    ledger.record([_fire("spike", 100.0)], 10.0)
    work = ledger.pick(PAGER, 10.0)
    assert work is not None
    ledger.failed(work, 70.0, "HTTP 503")
    ledger.record([_resolve("spike", 130.0)], 20.0)
    assert ledger.pick(PAGER, 20.0) is None  # the backoff is kept
    assert _deliver(ledger, PAGER, 70.0) == [("spike", Change.FIRED)]
    assert _deliver(ledger, PAGER, 70.0) == [("spike", Change.RESOLVED)]


def test_a_reemitted_firing_after_a_restart_is_not_sent_again(tmp_path: Path) -> None:
    """Delivered, then the process dies; rules restored from an older checkpoint fire again."""
    path = tmp_path / "o.sqlite"
    ledger = _ledger(path)
    ledger.record([_fire("spike", 100.0)], 10.0)
    assert _deliver(ledger, PAGER, 10.0) == [("spike", Change.FIRED)]
    ledger.outbox.close()
    restarted = _ledger(path)
    result = restarted.record([_fire("spike", 190.0)], 50.0)
    assert dict(result.suppressed) == {"already_notified": 1}
    assert restarted.pick(PAGER, 50.0) is None
    restarted.record([_resolve("spike", 250.0)], 60.0)
    assert _deliver(restarted, PAGER, 60.0) == [("spike", Change.RESOLVED)]


def test_a_replayed_episode_is_stale_and_a_new_one_is_delivered(tmp_path: Path) -> None:
    """Events at or before the last resolve are history; a firing after it is a new episode."""
    ledger = _ledger(tmp_path / "o.sqlite")
    ledger.record([_fire("spike", 100.0), _resolve("spike", 160.0)], 10.0)
    while _deliver(ledger, PAGER, 10.0):
        pass
    replay = ledger.record([_fire("spike", 100.0), _resolve("spike", 160.0)], 20.0)
    assert dict(replay.suppressed) == {"stale": 1, "already_notified": 1}
    assert ledger.pick(PAGER, 20.0) is None
    ledger.record([_fire("spike", 161.0)], 30.0)
    assert _deliver(ledger, PAGER, 30.0) == [("spike", Change.FIRED)]
    record = ledger.outbox.alert(_fire("spike", 0.0).dedup_key)
    assert record is not None
    assert record.episode == Episode(161.0)


def test_critical_goes_first_whatever_the_queue_holds(tmp_path: Path) -> None:
    """200 warnings queued, then one critical: the next send is the critical."""
    ledger = _ledger(tmp_path / "o.sqlite", [_route(wait=0.0)])
    ledger.record([_fire(f"w{n:03}", 100.0) for n in range(200)], 10.0)
    assert _deliver(ledger, PAGER, 10.0) == [("w000", Change.FIRED)]
    ledger.record([_fire("crit", 105.0, Severity.CRITICAL)], 11.0)
    assert _deliver(ledger, PAGER, 11.0) == [("crit", Change.FIRED)]
    page = _deliver(ledger, CHAT, 11.0, 40)
    assert page[0] == ("crit", Change.FIRED)
    assert len(page) == 40


def test_groups_wait_then_keep_their_interval_but_a_critical_never_waits_long(
    tmp_path: Path,
) -> None:
    """group_wait before the first digest, group_interval after it; a critical firing that
    joins a group flushed a moment ago goes out after critical_wait (5 s); its resolve joins
    the group's next flush."""
    ledger = _ledger(tmp_path / "o.sqlite", [_route(wait=30.0, interval=300.0)])
    ledger.record([_fire("a", 100.0)], 1000.0)
    ledger.record([_fire("b", 101.0)], 1010.0)
    assert ledger.pick(CHAT, 1029.0, 40) is None
    assert _deliver(ledger, CHAT, 1030.0, 40) == [("a", Change.FIRED), ("b", Change.FIRED)]
    ledger.record([_fire("c", 150.0)], 1040.0)
    assert ledger.pick(CHAT, 1329.0, 40) is None
    ledger.record([_fire("crit", 151.0, Severity.CRITICAL)], 1050.0)
    assert ledger.pick(CHAT, 1054.0, 40) is None
    assert _deliver(ledger, CHAT, 1055.0, 40) == [("crit", Change.FIRED)]
    ledger.record([_resolve("crit", 152.0, Severity.CRITICAL)], 1056.0)  # joins c's flush
    assert _deliver(ledger, CHAT, 1329.0, 40) == []
    assert _deliver(ledger, CHAT, 1330.0, 40) == [("crit", Change.RESOLVED), ("c", Change.FIRED)]


def test_a_short_group_wait_is_not_lengthened_for_a_critical(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "o.sqlite", [_route(wait=1.0, interval=300.0)])
    ledger.record([_fire("crit", 100.0, Severity.CRITICAL)], 1000.0)
    assert ledger.pick(CHAT, 1000.9, 40) is None
    assert _deliver(ledger, CHAT, 1001.0, 40) == [("crit", Change.FIRED)]


def test_a_flap_shorter_than_the_delivery_delay_is_not_notified(tmp_path: Path) -> None:
    """Told firing; resolved and fired again before the resolve went out: nothing to send."""
    ledger = _ledger(tmp_path / "o.sqlite")
    ledger.record([_fire("spike", 100.0)], 10.0)
    assert _deliver(ledger, PAGER, 10.0) == [("spike", Change.FIRED)]
    ledger.record([_resolve("spike", 120.0)], 11.0)
    ledger.record([_fire("spike", 121.0)], 12.0)
    assert ledger.pick(PAGER, 12.0) is None
    ledger.record([_resolve("spike", 200.0)], 13.0)
    work = ledger.pick(PAGER, 13.0)
    assert work is not None
    assert (work.items[0].change, work.items[0].row.superseded) == (Change.RESOLVED, 1)


def test_reminders_for_alerts_still_firing(tmp_path: Path) -> None:
    """A still-firing alert last notified an interval ago is reminded; a resolved one is not."""
    ledger = _ledger(tmp_path / "o.sqlite", [_route(wait=0.0)])
    ledger.record([_fire("on", 100.0), _fire("off", 100.0)], 10.0)
    while _deliver(ledger, PAGER, 10.0):
        pass
    ledger.record([_resolve("off", 150.0)], 20.0)
    assert _deliver(ledger, PAGER, 20.0) == [("off", Change.RESOLVED)]
    assert ledger.remind(PAGER, 100.0, 3600.0) == 0
    assert ledger.remind(PAGER, 3610.0, 3600.0) == 1
    assert _deliver(ledger, PAGER, 3610.0) == [("on", Change.STILL_FIRING)]
    row = ledger.outbox.delivery(PAGER, _fire("on", 0.0).dedup_key)
    assert row is not None
    assert (row.told, row.notified, row.due) == (Knowledge(Told.FIRING, 100.0), 3610.0, None)


def test_given_up_changes_leave_the_receiver_as_it_was(tmp_path: Path) -> None:
    """A refused firing is not retried; its later resolve tells the whole episode."""
    ledger = _ledger(tmp_path / "o.sqlite")
    ledger.record([_fire("spike", 100.0)], 10.0)
    work = ledger.pick(PAGER, 10.0)
    assert work is not None
    ledger.give_up(work.items, "HTTP 400")
    assert ledger.pick(PAGER, 1e9) is None
    assert ledger.outbox.queued(PAGER) == 0
    ledger.record([_resolve("spike", 130.0)], 20.0)
    assert _deliver(ledger, PAGER, 20.0, pairs=False) == [("spike", Change.FIRED_AND_RESOLVED)]


def test_expired_changes_are_found_by_age(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "o.sqlite")
    ledger.record([_fire("old", 100.0)], 10.0)
    ledger.record([_fire("new", 100.0)], 500.0)
    assert [i.rule for i in ledger.expired(PAGER, 400.0)] == ["old"]


# --- the property: whatever happens, each receiver's story is consistent -----------------------


@dataclass
class _Receiver:
    """What one sink's receiver believes, per alert, and every contradiction it saw."""

    state: dict[str, Told] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def hear(self, rule: str, change: Change) -> None:
        now = self.state.get(rule, Told.NOTHING)
        if change is Change.FIRED and now is Told.FIRING:
            self.errors.append(f"{rule}: fired twice")
        if change is Change.RESOLVED and now is not Told.FIRING:
            self.errors.append(f"{rule}: resolve before its firing")
        if change is Change.STILL_FIRING and now is not Told.FIRING:
            self.errors.append(f"{rule}: reminder of an alert it does not have")
        firing = change in (Change.FIRED, Change.STILL_FIRING)
        self.state[rule] = Told.FIRING if firing else Told.RESOLVED


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.sampled_from("abc")),
        st.tuples(st.just("send"), st.sampled_from((CHAT, PAGER))),
        st.tuples(st.just("fail"), st.sampled_from((CHAT, PAGER))),
        st.tuples(st.just("restart"), st.just("")),
        st.tuples(st.just("reemit"), st.sampled_from("abc")),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_receivers_never_see_a_resolve_first_nor_a_state_twice(
    tmp_path_factory: object, ops: list[tuple[str, str]]
) -> None:
    """Random transitions, deliveries, failures, restarts and re-emissions: every receiver's
    story is consistent, and once drained it matches every alert's final state."""
    path = tmp_path_factory.mktemp("ledger") / "o.sqlite"  # type: ignore[attr-defined]
    ledger = _ledger(path, [_route(wait=5.0, interval=20.0)])
    firing = dict.fromkeys("abc", False)
    fired: set[str] = set()
    receivers = {CHAT: _Receiver(), PAGER: _Receiver()}
    clock = 0.0
    for op, arg in ops:
        clock += 1.0
        if op == "flip":
            firing[arg] = not firing[arg]
            fired.add(arg)
            ledger.record([_note(arg, _state(firing[arg]), clock)], clock)
        elif op == "reemit":  # rules restored from an older checkpoint
            if arg in fired:
                ledger.record([_note(arg, _state(firing[arg]), clock)], clock)
        elif op == "restart":
            ledger.outbox.close()
            ledger = _ledger(path, [_route(wait=5.0, interval=20.0)])
        else:
            _act(ledger, receivers[arg], arg, op, clock)
    for sink, receiver in receivers.items():
        for _ in range(100):
            clock += 30.0
            _act(ledger, receiver, sink, "send", clock)
        assert receiver.errors == []
        for rule, on in firing.items():
            expected = Told.FIRING if on else Told.RESOLVED if rule in fired else Told.NOTHING
            assert receiver.state.get(rule, Told.NOTHING) == expected, (sink, rule)
    ledger.outbox.close()


def _state(on: bool) -> AlertState:
    return AlertState.FIRING if on else AlertState.RESOLVED


def _act(ledger: Ledger, receiver: _Receiver, sink: str, op: str, now: float) -> None:
    limit = 40 if sink == CHAT else 1
    if op == "fail":
        work = ledger.pick(sink, now, limit)
        if work is not None:
            ledger.failed(work, now + 3.0, "HTTP 503")
        return
    for rule, change in _deliver(ledger, sink, now, limit):
        if change is Change.FIRED_AND_RESOLVED:
            receiver.hear(rule, Change.FIRED)
            receiver.hear(rule, Change.RESOLVED)
        else:
            receiver.hear(rule, change)
