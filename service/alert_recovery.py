"""At start and on reload: rule states as the receivers know them, and orphaned alerts.

A checkpoint is written every ``[state] checkpoint_interval``; what each receiver has been told
is written at once, in the outbox. After a restart the rules come back from a checkpoint that
may predate the last transitions: an instance the outbox knows as firing would otherwise fire
again (or never resolve), and one the outbox knows as resolved would stay firing in silence.
:func:`align_rules` sets such instances to the outbox's state. (An engine worker fed from the
bus replays its ticks from the checkpoint's cursor instead: the same transitions come again with
the same event times, and the outbox recognises them.)

An alert still firing whose rule instance no longer exists (the rule, its portfolio or its
account left the configuration) would stay open at every receiver: :func:`orphans` finds them
and :func:`~alerts.notify.retirement` words their resolve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from alerts.outbox import AlertRecord
from monitor.rules import RuleEngine, RuleKey, RuleState


def align_rules(rules: RuleEngine, records: Iterable[AlertRecord]) -> tuple[RuleKey, ...]:
    """Set every rule instance whose firing state disagrees with its alert's current episode
    to that episode: firing since its fire time, or inactive. Returns the instances changed."""
    states = {state.key: state for state in rules.export_state()}
    changed = []
    for record in records:
        state = states.get((record.rule, record.labels))
        if state is None:
            continue
        firing = record.episode.firing
        if firing and state.state is not RuleState.FIRING:
            started = record.episode.started
            changed.append(
                dataclasses.replace(state, state=RuleState.FIRING, since=started, fired_at=started)
            )
        elif not firing and state.state is RuleState.FIRING:
            changed.append(
                dataclasses.replace(state, state=RuleState.INACTIVE, since=None, fired_at=None)
            )
    return rules.import_state(changed)


def orphans(rules: RuleEngine, records: Iterable[AlertRecord]) -> list[AlertRecord]:
    """Firing alerts (with a known firing) whose rule instance ``rules`` does not hold."""
    held = {state.key for state in rules.export_state()}
    return [
        record
        for record in records
        if record.episode.firing
        and record.firing is not None
        and (record.rule, record.labels) not in held
    ]
