"""Accounts posted through ``POST /api/v1/positions``, kept in the state directory.

Posted accounts replace the config file's ``[[accounts]]`` and survive restarts and reloads
until ``DELETE /api/v1/positions`` removes the file, which returns to the config's accounts.
The file is JSON in the body's own format, written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec

from monitor.config.book import AccountConfig, PositionsUpdate
from monitor.errors import ConfigError
from service.checkpoint import replace_atomically

POSITIONS_FILE = "positions.json"


def decode_positions(body: bytes, source: str = "request body") -> tuple[AccountConfig, ...]:
    """Accounts from a JSON body ``{"accounts": [...]}``, schema-checked.

    Raises:
        ConfigError: not JSON, or not the schema; the message says where.
    """
    try:
        return msgspec.json.decode(body, type=PositionsUpdate).accounts
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def save_positions(path: Path, accounts: tuple[AccountConfig, ...]) -> None:
    """Write ``accounts`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, msgspec.json.encode(PositionsUpdate(accounts)))


def load_positions(path: Path) -> tuple[AccountConfig, ...] | None:
    """The saved accounts, or None when nothing was posted.

    Raises:
        ConfigError: the file exists but cannot be read or decoded.
    """
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    return decode_positions(body, str(path))


def clear_positions(path: Path) -> bool:
    """Remove the saved accounts; returns whether there were any."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return True
    return False
