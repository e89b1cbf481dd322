"""A real digital service in a child process, on loopback, for the demo, the tests and
benchmarks.

It is started exactly as an operator would start it (``attestables app KIND``), so what
the demo and the tests exercise is the shipped program. Everything a client needs is
read from the service's state directory: the TLS certificate to pin (``tls.pem``), the
admin token (``admin-token``).

    service = await LocalService("store", tmp / "store", policy=policy_path).start()
    await client.call("services.register", service.registration())
    sales = await service.admin("GET", "/admin/sales")
    await service.stop()
"""

from __future__ import annotations

import hashlib
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Sequence

import aiohttp

from .eai import b64url_decode
from .child_server import ChildServer

TLS_CERT_FILE = "tls.pem"
ADMIN_TOKEN_FILE = "admin-token"


class ServiceCallError(RuntimeError):
    """An admin call that did not answer 2xx; ``status`` and ``body`` say what it did answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class LocalService(ChildServer):
    """Start with ``await start()`` (or ``async with``); ``url``, ``admin_token``,
    ``tls_pem`` and ``tls_fingerprint`` are usable once it is healthy."""

    stop_timeout = 10.0

    def __init__(
        self,
        kind: str,
        state_dir: Path,
        *,
        port: int | None = None,
        policy: Path | str | None = None,
        service_id: str | None = None,
        crl_url: str | None = None,
        crl_refresh: float | None = None,
        reply_delay: float | None = None,
        log: IO[bytes] | int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(state_dir, port=port, log=log, env=env)
        self.kind = kind
        self.what = f"{kind} service"
        self.policy = Path(policy) if policy is not None else None
        self.service_id = service_id or kind
        self.crl_url = crl_url
        self.crl_refresh = crl_refresh
        self.reply_delay = reply_delay
        self.extra_args = tuple(extra_args)
        self._probe_context: ssl.SSLContext | None = None

    # Where and how to reach it ----------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (``https://127.0.0.1:PORT``), as the launcher registers it."""
        return f"https://{self.listen}"

    @property
    def tls_cert_path(self) -> Path:
        return self.state_dir / TLS_CERT_FILE

    @property
    def tls_pem(self) -> str:
        return self.tls_cert_path.read_text(encoding="ascii")

    @property
    def tls_fingerprint(self) -> str:
        """SHA-256 of the TLS certificate's DER, lowercase hex."""
        der = ssl.PEM_cert_to_DER_cert(self.tls_pem)
        return hashlib.sha256(der).hexdigest()

    @property
    def admin_token(self) -> str:
        return (self.state_dir / ADMIN_TOKEN_FILE).read_text(encoding="ascii").strip()

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this service's certificate and nothing else."""
        return ssl.create_default_context(cadata=self.tls_pem)

    def registration(self) -> dict[str, str]:
        """Params of the launcher's ``services.register``, pinned to the TLS fingerprint."""
        return {"service_id": self.service_id, "url": self.url, "tls_fingerprint": self.tls_fingerprint}

    # Lifecycle --------------------------------------------------------------------------

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "attestables.cli.main", "app", self.kind, "--listen", self.listen,
                "--state-dir", str(self.state_dir)]
        if self.policy is not None:
            argv += ["--policy", str(self.policy)]
        if self.service_id != self.kind:
            argv += ["--service-id", self.service_id]
        if self.crl_url is not None:
            argv += ["--crl-url", self.crl_url]
        if self.crl_refresh is not None:
            argv += ["--crl-refresh", str(self.crl_refresh)]
        if self.reply_delay is not None:
            argv += ["--reply-delay", str(self.reply_delay)]
        return argv + list(self.extra_args)

    async def probe(self, session: aiohttp.ClientSession) -> bool:
        if self._probe_context is None:
            if not self.tls_cert_path.exists():
                return False
            try:
                self._probe_context = self.ssl_context()
            except (ssl.SSLError, ValueError, OSError):
                return False  # being written
        async with session.get(f"{self.url}/healthz", ssl=self._probe_context) as resp:
            return resp.status == 200

    def reload(self) -> None:
        """SIGHUP: the service re-reads its policy file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    # Calls ------------------------------------------------------------------------------

    async def public_key(self) -> bytes:
        """The service's X25519 sealing key (32 bytes), from ``GET /api/public-key``."""
        document = await self._call("GET", "/api/public-key", None, {})
        return b64url_decode(document["public_key"], max_len=32)

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        """An admin call with the token; the JSON answer, or ServiceCallError."""
        return await self._call(method, path, json, self.admin_headers)

    async def _call(self, method: str, path: str, json: Any, headers: dict[str, str]) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.request(method, self.url + path, json=json, headers=headers,
                                       ssl=self.ssl_context()) as resp:
                body = await resp.json(content_type=None)
                if not 200 <= resp.status < 300:
                    raise ServiceCallError(resp.status, body)
                return body
