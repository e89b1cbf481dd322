"""The launcher's CRL: fetched at start, refreshed in the background, kept on disk.

``--crl-url`` names the launcher's ``/api/v1/crl`` (DER). The last CRL that parsed is
kept (``crl.der`` in the state directory, so a restart while the launcher is unreachable
does not forget a revocation) and installed into the verifier; a fetch that fails leaves
it in place and is recorded as a warning. The verifier itself reports ``crl_stale`` once
the CRL is past its nextUpdate, and checks its signature against the issuer on each
certification path (a forged CRL makes results ``crl_invalid``, never accepts a
revoked certificate).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Callable

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestables.shared.errors import InvalidParams

from ...shared.files import write_public

log = logging.getLogger(__name__)

MAX_CRL = 1024 * 1024
FETCH_TIMEOUT_S = 5.0
_DER = Encoding.DER


class CrlState:
    """The current CRL and how fetching it went. ``install`` hands a new CRL to the verifier."""

    def __init__(self, *, url: str | None, refresh_s: float, path: Path,
                 install: Callable[[bytes], None]) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.path = path
        self._install = install
        self.der: bytes | None = None
        self._digest: bytes | None = None
        self.number: int | None = None
        self.this_update: float | None = None
        self.next_update: float | None = None
        self.revoked: int = 0
        self.fetched_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.fetches = 0
        self.failures = 0

    def status(self) -> dict[str, object]:
        now = time.time()
        return {
            "url": self.url,
            "refresh_s": self.refresh_s,
            "present": self.der is not None,
            "number": self.number,
            "this_update": self.this_update,
            "next_update": self.next_update,
            "stale": self.next_update is not None and now > self.next_update,
            "revoked": self.revoked,
            "fetched_at": self.fetched_at,
            "fetches": self.fetches,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    def load_saved(self) -> None:
        """The CRL kept by the previous run, if any (a damaged file is ignored, with a warning)."""
        if not self.path.exists():
            return
        try:
            self.accept(self.path.read_bytes(), save=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring the saved CRL %s: %s", self.path, exc)

    def accept(self, data: bytes, *, save: bool = True) -> bool:
        """Take a CRL (DER or PEM) unless it is the one held or older; ValueError if unusable."""
        try:
            crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
        except ValueError:
            raise ValueError("not a DER or PEM CRL") from None
        der = crl.public_bytes(_DER)
        digest = hashlib.sha256(der).digest()
        if digest == self._digest:
            return False
        try:
            number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = None
        if self.number is not None and number is not None and number < self.number:
            raise ValueError(f"CRL number {number} is older than the one held ({self.number})")
        try:
            self._install(der)
        except InvalidParams as exc:
            raise ValueError(exc.message) from None
        next_update = crl.next_update_utc
        self.der, self._digest, self.number = der, digest, number
        self.this_update = crl.last_update_utc.timestamp()
        self.next_update = next_update.timestamp() if next_update is not None else None
        self.revoked = len(crl)
        if save:
            write_public(self.path, der)
        return True

    async def fetch(self, session: aiohttp.ClientSession) -> bool:
        """One fetch; True when a new CRL was installed. Failures are recorded, not raised."""
        if self.url is None:
            return False
        self.fetches += 1
        try:
            async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                body = await resp.content.read(MAX_CRL + 1)
            if len(body) > MAX_CRL:
                raise ValueError(f"larger than {MAX_CRL} bytes")
            changed = self.accept(body)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self._failed(str(exc) or type(exc).__name__)
            return False
        if self.last_error is not None:
            log.info("CRL fetched again from %s", self.url)
        self.fetched_at = time.time()
        self.last_error = None
        if changed:
            log.info("CRL installed: number %s, %d revoked, next update %s", self.number, self.revoked,
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.next_update or 0)))
        return changed

    def _failed(self, message: str) -> None:
        self.failures += 1
        text = f"cannot fetch the CRL from {self.url}: {message}"
        if text != self.last_error:
            log.warning("%s (%s)", text, "keeping the last CRL" if self.der is not None
                        else "no CRL yet: revoked certificates are not refused")
        self.last_error = text
        self.last_error_at = time.time()

    async def refresh_forever(self, session: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.fetch(session)

