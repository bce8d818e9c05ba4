"""What a SIGHUP may change live: every section but where the state lives (and a role's bus)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from monitor.config.schema import Config
from service.reload import changed_sections, refused_changes

SERVER_AND_SINKS = """
[server]
listen = "127.0.0.1:9464"

[state]
dir = "/var/lib/riskmon"

[[sinks]]
name = "desk"
type = "file"
path = "/tmp/desk.jsonl"

[[routes]]
sinks = ["desk"]
"""


def test_an_identical_file_changes_nothing(make_config: Callable[..., Config]) -> None:
    config = make_config(SERVER_AND_SINKS)
    again = make_config(SERVER_AND_SINKS)
    assert changed_sections(config, again) == []
    assert refused_changes(config, again) == []


def test_server_sinks_routes_and_rules_change_live(make_config: Callable[..., Config]) -> None:
    """[server] (address, auth, TLS), [[sinks]], [[routes]], [alerts] timers and the rest are
    named as changed and none is refused."""
    old = make_config(SERVER_AND_SINKS)
    text = (
        SERVER_AND_SINKS.replace("127.0.0.1:9464", "127.0.0.1:9465")
        .replace("desk.jsonl", "desk2.jsonl")
        .replace('sinks = ["desk"]', 'sinks = ["desk"]\nseverity = ["critical"]')
    )
    text += '\n[alerts]\ncritical_wait = "1s"\n[live]\nqueue_ticks = 500\n'
    new = make_config(text)
    assert changed_sections(old, new) == [
        "[live]",
        "[server]",
        "[[sinks]]",
        "[[routes]]",
        "[alerts]",
    ]
    assert refused_changes(old, new) == []


def test_where_the_state_lives_needs_a_restart(make_config: Callable[..., Config]) -> None:
    """[state] dir and [alerts] outbox are refused, naming the old and the new value."""
    old = make_config(SERVER_AND_SINKS)
    new = make_config(
        SERVER_AND_SINKS.replace("/var/lib/riskmon", "/srv/riskmon")
        + '\n[alerts]\noutbox = "other.sqlite"\n'
    )
    assert refused_changes(old, new) == [
        '[state] dir "/var/lib/riskmon" -> "/srv/riskmon"',
        '[alerts] outbox "outbox.sqlite" -> "other.sqlite"',
    ]


def test_a_role_keeps_its_bus(make_config: Callable[..., Config]) -> None:
    """A split role refuses a [bus] change; the single process (which never reads it) takes it."""
    old = make_config(SERVER_AND_SINKS)
    new = msgspec.structs.replace(old, bus=msgspec.structs.replace(old.bus, stream="OTHER"))
    assert refused_changes(old, new) == []
    assert refused_changes(old, new, fixed={"bus"}) == ["[bus]"]
    assert changed_sections(old, new) == ["[bus]"]
