"""The HTTP listener across reloads, in-process: the same address keeps its sockets (and an
ephemeral port its number), a name binds every address it resolves to, and a failed bind
leaves the running generation serving."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from monitor.config.schema import ServerConfig
from monitor.errors import ConfigError
from service.http_log import HttpErrorLog
from service.listener import HttpListener


def _app(server: ServerConfig, secret: str | None) -> web.Application:
    del secret
    app = web.Application()

    async def which(_: web.Request) -> web.Response:
        return web.Response(text=server.dashboard_url or "")

    app.router.add_get("/which", which)
    return app


@pytest.fixture
async def listener() -> AsyncIterator[HttpListener]:
    running = HttpListener(_app, HttpErrorLog(), shutdown_timeout_s=1.0)
    yield running
    await running.close()


async def _which(host: str, port: int) -> str | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/which") as resp,
        ):
            return await resp.text()
    except aiohttp.ClientError:
        return None


def _server(listen: str, generation: str) -> ServerConfig:
    return ServerConfig(listen=listen, dashboard_url=generation)


async def test_the_same_listen_keeps_its_port_and_serves_throughout(
    listener: HttpListener,
) -> None:
    """Port 0 stays the port first picked; both generations answer until the commit."""
    await listener.start(_server("127.0.0.1:0", "first"))
    port = listener.port
    assert port is not None
    prepared = await listener.prepare(_server("127.0.0.1:0", "second"))
    assert prepared.port == port
    assert await _which("127.0.0.1", port) in {"first", "second"}
    await listener.commit(prepared)
    assert listener.port == port
    answers = {await _which("127.0.0.1", port) for _ in range(10)}
    assert answers == {"second"}


async def test_a_failed_bind_leaves_the_current_generation_serving(
    listener: HttpListener,
) -> None:
    await listener.start(_server("127.0.0.1:0", "first"))
    port = listener.port
    assert port is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f'listen "127.0.0.1:{busy}": cannot listen there'):
            await listener.prepare(_server(f"127.0.0.1:{busy}", "second"))
    with pytest.raises(ConfigError, match="listen"):
        await listener.prepare(_server("no-such-host.invalid:0", "third"))
    assert await _which("127.0.0.1", port) == "first"


async def test_a_name_binds_every_address_on_one_port(listener: HttpListener) -> None:
    """``localhost`` is 127.0.0.1 and, where the machine has it, ::1: both on the same port."""
    await listener.start(_server("localhost:0", "local"))
    assert listener.current is not None
    port = listener.port
    assert port is not None
    ports = {sock.getsockname()[1] for sock in listener.current.sockets}
    assert ports == {port}
    families = {sock.family for sock in listener.current.sockets}
    assert socket.AF_INET in families
    assert await _which("127.0.0.1", port) == "local"
    if socket.AF_INET6 in families:
        assert await _which("[::1]", port) == "local"
