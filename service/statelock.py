"""One process per ``[state] dir``: an advisory lock held for the process's lifetime.

Two processes in one state directory would read each other's checkpoints (and call them
unusable), write over them, and share one outbox. :class:`StateDirLock` takes an exclusive
``fcntl.flock`` on ``<dir>/riskmon.lock`` without waiting; the kernel releases it when the
process ends, however it ends (``kill -9`` included), so a crashed process never leaves a
stale lock. The file holds the holder's pid, host and role, for the error message of the
next claimant.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from monitor.errors import RiskmonError

LOCK_FILE = "riskmon.lock"


class StateDirLockedError(RiskmonError):
    """Another process holds the ``[state] dir``."""


class StateDirLock:
    """The advisory lock of one state directory.

    Args:
        directory: the ``[state] dir``.
        role: what this process runs (shown to the next claimant).
    """

    def __init__(self, directory: Path, role: str) -> None:
        self.path = directory / LOCK_FILE
        self.role = role
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock (creating the directory), or fail at once.

        Raises:
            StateDirLockedError: another process holds it.
            RiskmonError: the directory or lock file cannot be created.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+")
        except OSError as exc:
            raise RiskmonError(f"[state] dir {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateDirLockedError(
                f"[state] dir {self.path.parent} is in use by {holder}: every riskmon process "
                "needs a state directory of its own"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} (role {self.role})\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Give the lock up (the file stays: removing it would race with a new claimant)."""
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
