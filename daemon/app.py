"""The aiohttp application: ``/healthz``, ``/metrics``, the CRL and the authenticated websocket API."""

from __future__ import annotations

import logging
import weakref

from aiohttp import WSCloseCode, web

from attestables.shared.protocol import API_PATH, CRL_PATH, HEALTH_PATH

from . import api  # noqa: F401  (package docstring)
from .api import methods  # noqa: F401  (registers every method)
from .api.auth import TokenGuard
from .api.connection import Connection
from .daemon import Daemon
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

DAEMON = web.AppKey("daemon", Daemon)
GUARD = web.AppKey("guard", TokenGuard)
SOCKETS = web.AppKey("sockets", weakref.WeakSet)
METRICS = web.AppKey("metrics", Metrics)
METRICS_PATH = "/metrics"


def _peer(request: web.Request) -> str:
    return request.remote or "unknown"


async def healthz(request: web.Request) -> web.Response:
    """Liveness for load balancers and systemd: status only, nothing else."""
    return web.json_response({"status": "ok"})


async def crl(request: web.Request) -> web.Response:
    """The issuing CA's CRL (no auth: services fetch it); DER, or PEM with ?format=pem."""
    certs = request.app[DAEMON].certs
    fmt = request.query.get("format", "der")
    if fmt not in {"der", "pem"}:
        return web.json_response({"error": {"code": "invalid_params", "message": "format is der or pem"}},
                                 status=400)
    body = certs.crl(pem=fmt == "pem")
    content_type = "application/x-pem-file" if fmt == "pem" else "application/pkix-crl"
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the API token is required unless ``metrics_access = "open"``."""
    access = request.app[DAEMON].settings.metrics_access
    if access == "off":
        raise web.HTTPNotFound()
    if access != "open":
        guard = request.app[GUARD]
        peer = _peer(request)
        if not guard.check(request.headers.get("Authorization")):
            await guard.slow_down(peer)
            log.warning("refused a metrics scrape from %s: missing or wrong token", peer)
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}},
                status=401, headers={"WWW-Authenticate": 'Bearer realm="attestables"'})
        guard.success(peer)
    body = await request.app[METRICS].render()
    return web.Response(body=body.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE,
                                                      "Cache-Control": "no-cache"})


async def websocket(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    guard = request.app[GUARD]
    peer = _peer(request)
    if not guard.check(request.headers.get("Authorization")):
        await guard.slow_down(peer)
        log.warning("refused API connection from %s: missing or wrong token", peer)
        return web.json_response(
            {"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}},
            status=401, headers={"WWW-Authenticate": 'Bearer realm="attestables"'})
    guard.success(peer)
    sockets = request.app[SOCKETS]
    if len(sockets) >= daemon.settings.max_clients:
        return web.json_response(
            {"error": {"code": "limit_exceeded", "message": "too many clients connected"}}, status=503)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=daemon.settings.max_message_kb * 1024,
                               compress=False)
    await ws.prepare(request)
    sockets.add(ws)
    connection = Connection(daemon, ws, peer)
    daemon.connections.add(connection)
    log.info("client %s connected", peer)
    try:
        await connection.serve()
    finally:
        daemon.connections.discard(connection)
        sockets.discard(ws)
        log.info("client %s disconnected", peer)
    return ws


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"daemon shutting down")


def make_app(daemon: Daemon, token: str) -> web.Application:
    app = web.Application(client_max_size=daemon.settings.max_message_kb * 1024)
    app[DAEMON] = daemon
    app[GUARD] = TokenGuard(token)
    app[SOCKETS] = weakref.WeakSet()
    app[METRICS] = Metrics(daemon)
    app.router.add_get(HEALTH_PATH, healthz)
    app.router.add_get(API_PATH, websocket)
    app.router.add_get(CRL_PATH, crl)
    app.router.add_get(METRICS_PATH, metrics)
    app.on_shutdown.append(_close_sockets)
    return app
