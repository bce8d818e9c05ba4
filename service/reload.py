"""What a SIGHUP reload may change while riskmon runs, and what needs a restart (pure).

Everything is applied live except what names where the state lives: ``[state] dir`` (the
checkpoints, the posted positions and the outbox are there) and ``[alerts] outbox`` (what
every receiver has been told). A split role (``--role feeds`` or ``engine``) also keeps its
``[bus]``: an engine worker's checkpointed cursor is a position in one stream. A reload that
changes any of these is refused as a whole and the running configuration stays.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from monitor.config.checks import show_value
from monitor.config.schema import Config

RESTART_ONLY: tuple[tuple[str, str], ...] = (("state", "dir"), ("alerts", "outbox"))
"""(section, key) pairs that only a restart changes."""


def changed_sections(old: Config, new: Config) -> list[str]:
    """The sections whose settings differ, as written in TOML (``[server]``, ``[[sinks]]``)."""
    changed = []
    for field in msgspec.structs.fields(Config):
        if field.name == "source":
            continue
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before != after:
            array = isinstance(before, tuple)
            changed.append(f"[[{field.encode_name}]]" if array else f"[{field.encode_name}]")
    return changed


def refused_changes(old: Config, new: Config, fixed: Collection[str] = ()) -> list[str]:
    """Why ``new`` cannot replace ``old`` live: one entry per key or section that changed and
    only a restart may change; empty when the reload can be applied.

    Args:
        old: the running configuration.
        new: the configuration read again.
        fixed: further sections the running process cannot change (``"bus"`` for a role).
    """
    refused = []
    for section, key in RESTART_ONLY:
        before = getattr(getattr(old, section), key)
        after = getattr(getattr(new, section), key)
        if before != after:
            refused.append(f"[{section}] {key} {show_value(before)} -> {show_value(after)}")
    for section in sorted(fixed):
        if getattr(old, section) != getattr(new, section):
            refused.append(f"[{section}]")
    return refused
