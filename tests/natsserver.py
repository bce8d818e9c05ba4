"""A real ``nats-server`` with JetStream on 127.0.0.1, for the bus tests and the bus benchmark.

Debian's ``nats-server`` package (``make system-deps`` installs it). :class:`NatsServer` starts
it on a free port with its store in a given directory, waits until it accepts connections,
and stops it (SIGTERM, then SIGKILL) on :meth:`NatsServer.stop` and on context exit; it can be
started again on the same port and store, as after a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

BINARY = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on loopback; an async context manager.

    Args:
        store: JetStream store directory (kept across restarts).
        log: file receiving the server's output.
    """

    def __init__(self, store: Path, log: Path) -> None:
        if BINARY is None:
            raise RuntimeError("nats-server is not installed (make system-deps)")
        self.store, self.log = store, log
        self.port = free_port()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``."""
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        assert BINARY is not None
        self.store.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                BINARY, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port),
                stdout=out, stderr=out,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await self._accepts():
            if self._proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"nats-server did not start; see {self.log}")
            await asyncio.sleep(0.05)

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers (a hung server)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """Stop the server (SIGTERM; SIGKILL after 10 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10.0):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
