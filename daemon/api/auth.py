"""Bearer-token authentication of the websocket upgrade.

The token is 32 random bytes (URL-safe base64) in ``STATE_DIR/api-token``, created on
first start with mode 0600 and never logged. Comparison is constant-time. A peer that
keeps presenting wrong tokens is slowed down: each failure within the window doubles the
delay before its 401 (capped), which makes guessing useless without hurting a user who
mistyped once.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import time
from pathlib import Path

from attestables.shared.paths import TOKEN_FILE

from ..store.blobs import atomic_write

FAILURE_WINDOW_S = 300.0
MAX_DELAY_S = 5.0
_MAX_TRACKED_PEERS = 4096


def load_or_create_token(state_dir: Path) -> str:
    """Read the API token, creating it (0600) on first start; tighten a loose mode."""
    path = state_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        atomic_write(path, (token + "\n").encode(), mode=0o600)
        return token
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    if len(token) < 32:
        raise RuntimeError(f"{path} holds a token shorter than 32 characters; delete it to make a new one")
    return token


class TokenGuard:
    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._failures: dict[str, tuple[int, float]] = {}  # peer -> (count, last failure time)

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self._token)

    def failure_delay(self, peer: str) -> float:
        """Record one failure from ``peer`` and return how long to hold its answer."""
        now = time.monotonic()
        count, last = self._failures.get(peer, (0, now))
        if now - last > FAILURE_WINDOW_S:
            count = 0
        count += 1
        if len(self._failures) >= _MAX_TRACKED_PEERS and peer not in self._failures:
            self._failures.clear()  # bounded memory under a distributed guess storm
        self._failures[peer] = (count, now)
        return 0.0 if count <= 1 else min(MAX_DELAY_S, 0.05 * 2 ** (count - 2))

    def success(self, peer: str) -> None:
        self._failures.pop(peer, None)

    async def slow_down(self, peer: str) -> None:
        delay = self.failure_delay(peer)
        if delay:
            await asyncio.sleep(delay)
