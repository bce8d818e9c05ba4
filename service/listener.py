"""The HTTP endpoint across reloads: ``[server]`` (address, auth, TLS) changes without a restart.

Each configuration of ``[server]`` is served by one *generation*: its own aiohttp runner (the
app with that auth and secret), on its own listening sockets with that TLS context. A reload
starts the new generation before it stops the old one:

- same ``listen``: the new generation serves duplicates of the old listening sockets (the same
  kernel socket, so no port is released, no connection refused, and ``:0`` keeps its port);
- another ``listen``: the new address is bound first; if that fails (in use, no such address,
  no permission) the reload is refused and the old generation keeps serving.

The old generation then stops accepting, finishes the requests under way (at most
``shutdown_timeout_s``) and closes its keep-alive connections, so a client that stays connected
cannot keep the old auth. The secret and the TLS files are read again for every generation: a
SIGHUP also rotates a token file or a certificate.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from monitor.config.schema import ServerConfig
from monitor.errors import ConfigError
from service.http import read_secret, ssl_context
from service.http_log import HttpErrorLog

log = structlog.get_logger("riskmon.http")

SHUTDOWN_TIMEOUT_S = 5.0
BACKLOG = 128

AppFactory = Callable[[ServerConfig, "str | None"], web.Application]
"""Builds the application for a ``[server]`` section and its secret (None without auth)."""


@dataclass(slots=True)
class Generation:
    """One ``[server]`` configuration being served."""

    server: ServerConfig
    runner: web.AppRunner
    sockets: list[socket.socket]

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.sockets[0].getsockname()[1])


async def bind(server: ServerConfig) -> list[socket.socket]:
    """Listening sockets for every address of ``[server] listen`` (as asyncio binds them).

    With port 0 every address gets the port the first one was given. A name is resolved off
    the event loop (a slow resolver must not hold up probes and scrapes).

    Raises:
        ConfigError: the host does not resolve, or an address cannot be bound.
    """
    host, port = server.host, server.port
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f'[server] listen "{server.listen}": {exc.strerror}') from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(
            f'[server] listen "{server.listen}": cannot listen there ({exc.strerror or exc})'
        ) from None
    return sockets


class HttpListener:
    """Serves the current generation; :meth:`prepare` and :meth:`commit` replace it.

    Args:
        app: builds the application of a ``[server]`` section.
        error_log: aiohttp's server logger (client errors apart from server faults).
        shutdown_timeout_s: the longest an old generation waits for requests under way.
    """

    def __init__(
        self,
        app: AppFactory,
        error_log: HttpErrorLog,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    ) -> None:
        self._app, self._error_log = app, error_log
        self._shutdown_timeout_s = shutdown_timeout_s
        self.current: Generation | None = None

    @property
    def port(self) -> int | None:
        """The port served (None before :meth:`start`)."""
        return None if self.current is None else self.current.port

    async def start(self, server: ServerConfig) -> None:
        """Serve ``server`` (the first generation).

        Raises:
            ConfigError: the secret or TLS files cannot be read, or the address cannot be bound.
        """
        await self.commit(await self.prepare(server))

    async def prepare(self, server: ServerConfig) -> Generation:
        """Start serving ``server`` next to the current generation; nothing is stopped.

        Raises:
            ConfigError: as :meth:`start`; the current generation serves on, unchanged.
        """
        secret = read_secret(server)
        context = ssl_context(server)
        current = self.current
        if current is not None and current.server.listen == server.listen:
            sockets = _duplicates(current.sockets)
        else:
            sockets = await bind(server)
        runner = web.AppRunner(
            self._app(server, secret),
            access_log=None,
            logger=self._error_log,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        try:
            await runner.setup()
            for sock in sockets:
                await web.SockSite(runner, sock, ssl_context=context, backlog=BACKLOG).start()
        except (OSError, ssl.SSLError) as exc:
            await _stop(runner, sockets)
            raise ConfigError(f"[server]: cannot serve ({exc})") from None
        return Generation(server, runner, sockets)

    async def commit(self, generation: Generation) -> None:
        """Make ``generation`` the one served; stop the previous one."""
        previous, self.current = self.current, generation
        log.info(
            "http_listening",
            listen=generation.server.listen,
            port=generation.port,
            auth=generation.server.auth,
            tls=generation.server.tls_cert is not None,
        )
        if previous is not None:
            await _stop(previous.runner, previous.sockets)

    async def discard(self, generation: Generation) -> None:
        """Stop a prepared generation that will not be committed."""
        await _stop(generation.runner, generation.sockets)

    async def close(self) -> None:
        """Stop serving."""
        if self.current is not None:
            current, self.current = self.current, None
            await _stop(current.runner, current.sockets)


def _duplicates(sockets: list[socket.socket]) -> list[socket.socket]:
    """New descriptors of the same listening sockets.

    Raises:
        ConfigError: out of file descriptors.
    """
    copies: list[socket.socket] = []
    try:
        for sock in sockets:
            copies.append(sock.dup())
    except OSError as exc:
        for copy in copies:
            copy.close()
        raise ConfigError(f"[server]: cannot serve ({exc.strerror or exc})") from None
    return copies


async def _stop(runner: web.AppRunner, sockets: list[socket.socket]) -> None:
    """Stop accepting, finish the requests under way, close the connections and sockets."""
    await runner.cleanup()
    for sock in sockets:
        sock.close()  # idempotent; the sites closed theirs, a failed start may not have
