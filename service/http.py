"""The HTTP endpoint on the asyncio loop: /metrics, /healthz, /readyz and the JSON API.

No handler waits on the engine's computation: they read the latest immutable snapshot and a
few counters, and a change of positions is queued between two engine steps. /healthz is 503
once the engine loop has not turned for ``[live] stall_after``; /readyz lists every reason.

/healthz and /readyz answer without authentication (probes carry no secrets); /metrics and
/api/v1/* require the configured bearer token or basic credentials. ``POST`` and ``DELETE
/api/v1/positions`` are refused (403) unless authentication is configured. Secrets are read once at
start from the environment or a file and never logged or served.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import math
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.config.book import AccountConfig, PositionsUpdate
from monitor.config.schema import ServerConfig
from monitor.errors import ConfigError
from monitor.risk.snapshot import AccountRisk, HedgeRisk, PortfolioRisk, RiskSnapshot
from service.daemon import Daemon
from service.positions_store import decode_positions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
BODY_TIMEOUT_S = 10.0


def read_secret(server: ServerConfig, environ: dict[str, str] | None = None) -> str | None:
    """The bearer token or basic password named by the config, or None without auth."""
    if server.auth == "none":
        return None
    env = dict(os.environ) if environ is None else environ
    secret = None
    if server.token_env is not None:
        secret = env.get(server.token_env)
    if secret is None and server.token_file is not None:
        try:
            secret = Path(server.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"[server] token_file: cannot read it ({exc.strerror})") from None
    if not secret:
        raise ConfigError(
            f"[server] auth = {server.auth!r}: the secret is empty or missing "
            f"(token_env={server.token_env!r}, token_file={server.token_file!r})"
        )
    return secret


def _authorised(request: web.Request, server: ServerConfig, secret: str) -> bool:
    header = request.headers.get("Authorization", "")
    if server.auth == "bearer":
        expected = f"Bearer {secret}"
    else:
        pair = f"{server.basic_user}:{secret}".encode()
        expected = "Basic " + base64.b64encode(pair).decode()
    return hmac.compare_digest(header.encode(), expected.encode())


def _auth_middleware(server: ServerConfig, secret: str | None) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if secret is None or request.path in OPEN_PATHS or _authorised(request, server, secret):
            return await handler(request)
        challenge = "Bearer" if server.auth == "bearer" else 'Basic realm="riskmon"'
        return web.json_response(
            {"error": "unauthorised"}, status=401, headers={"WWW-Authenticate": challenge}
        )

    return middleware


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _matrix(values: np.ndarray[Any, np.dtype[np.float64]]) -> list[list[float | None]]:
    return [[_num(float(v)) for v in row] for row in values]


def _portfolio_json(p: PortfolioRisk) -> dict[str, Any]:
    return {
        "name": p.name,
        "value": p.value,
        "gross_exposure": p.gross_exposure,
        "volatility": p.volatility,
        "diversification_ratio": p.diversification_ratio,
        "diversification_benefit": p.diversification_benefit,
        "tails": [
            {
                "confidence": t.confidence,
                "var": t.var,
                "cvar": t.cvar,
                "stressed_var": t.stressed_var,
                "component_var": dict(zip(p.symbols, t.component_var, strict=True))
                if t.component_var is not None
                else None,
            }
            for t in p.tails
        ],
    }


def snapshot_json(snap: RiskSnapshot) -> dict[str, Any]:
    """The latest snapshot as JSON (nulls where not ready)."""
    m = snap.market
    return {
        "ts": snap.ts,
        "ticks": snap.ticks,
        "symbols": {
            s: {
                "price": _num(float(snap.price[i])),
                "volatility": _num(float(snap.volatility[i])),
                "volatility_slow": _num(float(snap.volatility_slow[i])),
                "last_tick_ts": _num(float(snap.last_tick_ts[i])),
            }
            for i, s in enumerate(snap.symbols)
        },
        "market": {name: getattr(m, name) for name in m.__slots__},
        "portfolios": [_portfolio_json(p) for p in snap.portfolios],
        "accounts": [_account_json(a) for a in snap.accounts],
        "hedges": _hedges_json(snap),
    }


def _account_json(account: AccountRisk) -> Any:
    """An account's figures; its hedge is under ``hedges``."""
    figures = dataclasses.asdict(dataclasses.replace(account, hedge=None))
    del figures["hedge"]
    return _finite_json(figures)


def _hedges_json(snap: RiskSnapshot) -> list[dict[str, Any]]:
    """One entry per book with ``hedge_with``: ``portfolio`` or ``account``, then its figures."""
    books: list[tuple[str, str, HedgeRisk | None]] = [
        *(("portfolio", p.name, p.hedge) for p in snap.portfolios),
        *(("account", a.name, a.hedge) for a in snap.accounts),
    ]
    return [
        {kind: name, **_finite_json(dataclasses.asdict(hedge))}
        for kind, name, hedge in books
        if hedge is not None
    ]


def _finite_json(value: Any) -> Any:
    """Nested dicts, lists and numbers with NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    return value


class PositionsApi(Protocol):
    """What ``/api/v1/positions`` changes (the service: swap between engine steps, persist)."""

    async def replace(self, accounts: tuple[AccountConfig, ...]) -> None:
        """Swap in ``accounts`` at once; raises ConfigError and changes nothing if invalid."""

    async def reset(self) -> None:
        """Drop posted accounts and return to the config's."""


ClientErrorReport = Callable[[str, str, int, str | None], None]
"""Called with (method, path, status, remote) for every 4xx answer."""


def _client_error_middleware(report: ClientErrorReport) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # the router's 404 and 405, raised
            if 400 <= exc.status < 500:
                report(request.method, request.path, exc.status, request.remote)
            raise
        if 400 <= response.status < 500:
            report(request.method, request.path, response.status, request.remote)
        return response

    return middleware


def build_app(
    daemon: Callable[[], Daemon | None],
    registry: CollectorRegistry,
    server: ServerConfig,
    secret: str | None,
    positions: PositionsApi | None = None,
    client_errors: ClientErrorReport | None = None,
) -> web.Application:
    """The aiohttp application; ``daemon`` returns the daemon currently running, and
    ``client_errors`` hears of every 4xx answer (auth refusals included)."""
    middlewares = [_auth_middleware(server, secret)]
    if client_errors is not None:
        middlewares.insert(0, _client_error_middleware(client_errors))
    app = web.Application(middlewares=middlewares)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        current = daemon()
        alive = current is not None and current.loop_alive(time.monotonic())
        return web.json_response(
            {"status": "ok" if alive else "stalled"}, status=200 if alive else 503
        )

    async def readyz(_: web.Request) -> web.Response:
        current = daemon()
        reasons = ["starting"] if current is None else current.not_ready(time.monotonic())
        return web.json_response(
            {"ready": not reasons, "reasons": reasons}, status=503 if reasons else 200
        )

    async def snapshot(_: web.Request) -> web.Response:
        current = daemon()
        if current is None or current.latest is None:
            return web.json_response({"error": "no snapshot yet"}, status=503)
        return web.json_response(snapshot_json(current.latest))

    async def correlation(request: web.Request) -> web.Response:
        current = daemon()
        if current is None or current.latest is None:
            return web.json_response({"error": "no snapshot yet"}, status=503)
        horizon = request.query.get("horizon", "fast")
        if horizon not in ("fast", "slow"):
            return web.json_response({"error": "horizon is fast or slow"}, status=400)
        snap = current.latest
        values = snap.correlation if horizon == "fast" else snap.correlation_slow
        return web.json_response(
            {
                "ts": snap.ts,
                "horizon": horizon,
                "symbols": list(snap.symbols),
                "matrix": _matrix(values),
            }
        )

    async def get_positions(_: web.Request) -> web.Response:
        current = daemon()
        if current is None:
            return web.json_response({"error": "starting"}, status=503)
        body = msgspec.json.encode(PositionsUpdate(current.engine.accounts))
        return web.Response(body=body, content_type="application/json")

    async def change_positions(request: web.Request) -> web.Response:
        if secret is None or positions is None:
            detail = "changing positions needs [server] auth (bearer or basic)"
            return web.json_response({"error": detail}, status=403)
        current = daemon()
        if current is None:
            return web.json_response({"error": "starting"}, status=503)
        try:
            if request.method == "DELETE":
                await positions.reset()
            else:
                async with asyncio.timeout(BODY_TIMEOUT_S):  # a client must not hold a handler
                    body = await request.read()
                await positions.replace(decode_positions(body))
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=422)
        except web.RequestPayloadError:  # a malformed body (chunks, length): the client's fault
            return web.json_response({"error": "malformed request body"}, status=400)
        except TimeoutError:
            return web.json_response({"error": "request body not received in time"}, status=408)
        names = list(current.engine.account_names)
        return web.json_response({"accounts": names, "ticks": current.engine.ticks})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/positions", get_positions)
    app.router.add_post("/api/v1/positions", change_positions)
    app.router.add_delete("/api/v1/positions", change_positions)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/snapshot", snapshot)
    app.router.add_get("/api/v1/correlation", correlation)
    return app


def ssl_context(server: ServerConfig) -> ssl.SSLContext | None:
    """TLS context from the configured PEM files, or None."""
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[server] tls_cert/tls_key: cannot load them ({exc})") from None
    return context
