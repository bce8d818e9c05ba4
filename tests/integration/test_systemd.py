"""sd_notify: READY, WATCHDOG and STOPPING reach a NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from service.service import Service
from service.systemd import Notifier
from tests.integration.test_live_feeds import TIMEOUT_S, eventually
from tests.integration.test_service import _write_config


def _listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_notifier_is_inert_without_a_socket_and_sends_with_one(tmp_path: Path) -> None:
    """No NOTIFY_SOCKET: nothing happens; with one, each call is one datagram."""
    Notifier(environ={}).ready()  # must not raise
    with _listener(tmp_path / "notify") as sock:
        notifier = Notifier(
            environ={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "4000000"}
        )
        assert notifier.watchdog_interval_s == 2.0
        notifier.ready()
        notifier.reloading()
        assert _drain(sock)[0] == "READY=1\nSTATUS=monitoring"


async def test_service_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """A service under Type=notify says READY=1, pings WATCHDOG=1, and STOPPING=1 at the end."""
    path = tmp_path / "notify"
    with _listener(path) as sock:
        notifier = Notifier(environ={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
        received: list[str] = []
        async with ExchangeSimulator(speed=60.0, seed=5) as sim:
            config = load_config(_write_config(tmp_path, sim.binance_url), environ={})
            service = Service(config, notifier=notifier, wall=sim.sim_time)
            task = asyncio.create_task(service.run())

            def seen(message: str) -> bool:
                received.extend(_drain(sock))
                return any(message in m for m in received)

            await eventually(lambda: seen("READY=1"), "READY=1")
            await eventually(lambda: seen("WATCHDOG=1"), "WATCHDOG=1")
            service.request_stop()
            async with asyncio.timeout(TIMEOUT_S):
                await task
        assert seen("STOPPING=1")
