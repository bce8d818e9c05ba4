"""sd_notify without libsystemd: a datagram to ``$NOTIFY_SOCKET`` is all it takes.

``READY=1`` once serving, ``WATCHDOG=1`` while the engine loop turns, ``RELOADING=1`` with
``MONOTONIC_USEC`` on SIGHUP, ``STOPPING=1`` on shutdown. Without ``NOTIFY_SOCKET`` every call
does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends sd_notify messages when running under systemd ``Type=notify``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured."""
        return bool(self._address)

    def send(self, *lines: str) -> None:
        """Send one notification made of ``KEY=value`` lines; errors are not fatal."""
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self._address)
                sock.sendall("\n".join(lines).encode())
            except OSError:
                pass  # systemd went away: nothing useful to do

    def ready(self) -> None:
        """Start-up is complete."""
        self.send("READY=1", "STATUS=monitoring")

    def reloading(self) -> None:
        """A reload has started (systemd 253 protocol, harmless on older versions)."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def watchdog(self) -> None:
        """Keep-alive for ``WatchdogSec``."""
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.send("STOPPING=1")
