"""The service process: set up the state directory, serve HTTPS until SIGTERM, stop cleanly.

``run_service(config, definition)`` is what ``attestables app KIND`` calls. On first start
it makes the TLS certificate, the sealing key, the admin token and the seeded database;
every start loads the policy, the saved CRL, fetches the CRL once, then serves. SIGHUP
re-reads the policy file; SIGTERM or SIGINT stop the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web

from attestables.shared import __version__, eai
from attestables.shared.verifier import PolicyError

from . import admin, replay, verifications
from .attested import handler_for
from .config import ServiceConfig
from .crl import CrlState
from .database import ServiceDatabase
from .errors import BadRequest, InternalError, MethodNotAllowed, NotFound, ServiceError, TooLarge, error_response
from .files import (
    StateError,
    StateFiles,
    ensure_directory,
    load_or_create_admin_token,
    load_or_create_sealing_key,
)
from .policy import PolicyHolder
from .runtime import CRL_SESSION, RUNTIME, ServiceRuntime
from .service import ServiceDefinition
from .tls import ensure_certificate, server_context

log = logging.getLogger("attestables.apps")

HOUSEKEEPING_S = 60.0
SHUTDOWN_TIMEOUT_S = 2.0


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error as JSON with a stable code, never aiohttp's HTML page or a traceback."""
    attested = request.path in request.app[RUNTIME].endpoints
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error: ServiceError
        if exc.status == 404:
            error = NotFound(f"no such endpoint: {request.method} {request.path}")
        elif exc.status == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        elif exc.status == 413:
            error = TooLarge("the body is too large")
        elif exc.status < 500:
            error = BadRequest(exc.reason or "bad request")
        else:
            error = InternalError(exc.reason or "internal error")
        return error_response(error, attested=attested)
    except ServiceError as exc:
        return error_response(exc, attested=attested)
    except Exception:
        log.exception("%s %s: internal error", request.method, request.path)
        return error_response(InternalError("internal error (see the service's log)"), attested=attested)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return web.json_response({"status": "ok", "service_id": runtime.service_id})


async def public_key(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].public_key_document())


def make_app(runtime: ServiceRuntime, session: aiohttp.ClientSession) -> web.Application:
    app = web.Application(client_max_size=runtime.config.max_body, middlewares=[json_errors])
    app[RUNTIME] = runtime
    app[CRL_SESSION] = session
    app.router.add_get(eai.HEALTH_PATH, healthz)
    app.router.add_get(eai.PUBLIC_KEY_PATH, public_key)
    for endpoint in runtime.definition.endpoints:
        app.router.add_post(endpoint.path, handler_for(endpoint))
    for method, path, handler in admin.ROUTES:
        app.router.add_route(method, path, admin.guarded(handler))
    for route in runtime.definition.admin_routes:
        app.router.add_route(route.method, route.path, admin.guarded(route.handler))
    app.cleanup_ctx.append(_background)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    tasks = [asyncio.create_task(_housekeeping(runtime), name="housekeeping")]
    if runtime.crl.url is not None:
        tasks.append(asyncio.create_task(runtime.crl.refresh_forever(app[CRL_SESSION]), name="crl-refresh"))
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _housekeeping(runtime: ServiceRuntime) -> None:
    while True:
        try:
            purged = await replay.purge(runtime.db, time.time())
            pruned = await verifications.prune(runtime.db, runtime.config.log_keep)
            await runtime.db.checkpoint()
            if purged or pruned:
                log.debug("housekeeping: %d expired nonces, %d old verifications removed", purged, pruned)
        except Exception:
            log.exception("housekeeping failed")
        await asyncio.sleep(HOUSEKEEPING_S)


class StateLock:
    """``service.lock`` held while the service runs: a second service on the same state
    directory is refused."""

    def __init__(self, files: StateFiles) -> None:
        self.path = files.lock
        self._fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise StateError(f"another service (pid {other or '?'}) is using {self.path.parent}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


async def open_runtime(config: ServiceConfig, definition: ServiceDefinition) -> ServiceRuntime:
    files = StateFiles(config.state_dir)
    tls_fingerprint = ensure_certificate(files.tls_cert, files.tls_key,
                                         common_name=f"attestables {config.kind} service {config.service_id}",
                                         host=config.host)
    sealing_key = load_or_create_sealing_key(files.sealing_key)
    admin_token = load_or_create_admin_token(files.admin_token)
    crl: CrlState
    policy = PolicyHolder(config.policy_path or files.policy, explicit=config.policy_path is not None,
                          crl=lambda: crl.der)
    crl = CrlState(url=config.crl_url, refresh_s=config.crl_refresh_s, path=files.crl, install=policy.install_crl)
    crl.load_saved()
    policy.load_at_start()
    db = await ServiceDatabase.open(files.database, kind=definition.kind, migrations=definition.migrations,
                                    seed=definition.seed)
    return ServiceRuntime(config=config, definition=definition, files=files, db=db, sealing_key=sealing_key,
                          admin_token=admin_token, tls_fingerprint=tls_fingerprint, policy=policy, crl=crl)


async def serve(config: ServiceConfig, definition: ServiceDefinition) -> None:
    runtime = await open_runtime(config, definition)
    session = aiohttp.ClientSession(headers={"User-Agent": f"attestables-{config.kind}/{__version__}"})
    runner: web.AppRunner | None = None
    try:
        if config.crl_url is not None:
            await runtime.crl.fetch(session)  # before serving: no window without revocations
        else:
            log.warning("no --crl-url: revoked certificates are refused only by a CRL saved earlier, if any")
        app = make_app(runtime, session)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, backlog=128, reuse_address=True,
                           ssl_context=server_context(runtime.files.tls_cert, runtime.files.tls_key))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, runtime.policy.reload)
        await site.start()
        address = ", ".join(f"https://{_host(a)}:{a[1]}" for a in runner.addresses)
        policy = runtime.policy.policy
        log.info("%s service %r (attestables %s) listening on %s; state dir %s", config.kind, config.service_id,
                 __version__, address, config.state_dir)
        log.info("TLS certificate %s, SHA-256 %s", runtime.files.tls_cert, runtime.tls_fingerprint)
        log.info("policy: %s", (policy.name or str(runtime.policy.path)) if policy is not None else "none (no_policy)")
        await stop.wait()
        log.info("stopping")
    finally:
        if runner is not None:
            await runner.cleanup()
        await session.close()
        await runtime.db.close()
        log.info("stopped")


def _host(address: Any) -> str:
    host = str(address[0])
    return f"[{host}]" if ":" in host else host


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def run_service(config: ServiceConfig, definition: ServiceDefinition) -> int:
    """Entry point of ``attestables app KIND``: 0 after a clean stop, 1 if it cannot start."""
    setup_logging(config.log_level)
    os.umask(0o077)  # private unless a file says otherwise (tls.pem, policy, CRL: 0644)
    files = StateFiles(config.state_dir)
    lock = StateLock(files)
    try:
        ensure_directory(config.state_dir)
        lock.acquire()
    except (StateError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    try:
        asyncio.run(serve(config, definition))
    except PolicyError as exc:
        log.error("cannot start: %s", exc.message)
        return 1
    except (StateError, OSError, RuntimeError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        lock.release()
    return 0
