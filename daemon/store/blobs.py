"""Content-addressed blobs (sources, artefacts), named by their sha256.

A blob is written to a temp file in the same directory, fsynced, renamed into place and
the directory fsynced: a daemon killed at any moment leaves either no blob or a whole one.
Temp files left by a killed daemon are removed at start (``sweep_temp``).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from attestables.shared.errors import Tampered
from attestables.shared.files import is_temp_name, write_atomic



def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    write_atomic(path, data, mode)


class BlobStore:
    """Immutable blobs under ``root/ab/abcdef...``; readers verify the digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Writes (hash, write, two fsyncs) run in threads, at most this many at once: the
        # disk is one device, and a crowd of writer threads would take the GIL from the
        # event loop that serves everything else.
        self._writers = asyncio.Semaphore(2)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def ensure(self, data: bytes, digest: str, *, mode: int = 0o400) -> None:
        """Synchronous: store ``data`` under ``digest`` unless a file is there. For the
        database's thread, inside the transaction that names the blob (sources.py)."""
        if not self.exists(digest):
            self._put_sync(data, digest, mode)

    def _put_sync(self, data: bytes, digest: str, mode: int) -> None:
        path = self.path(digest)
        try:
            if sha256_hex(path.read_bytes()) == digest:
                return  # the same content is already stored, intact
        except FileNotFoundError:
            pass
        # Absent, or changed on disk since it was stored: (re)write it whole.
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if path.exists():
            path.chmod(0o600)  # a read-only tampered file must still be replaceable
        atomic_write(path, data, mode)

    async def put(self, data: bytes, *, mode: int = 0o400) -> str:
        """Store ``data`` and return its sha256 (fsync runs off the event loop)."""
        digest = sha256_hex(data)
        async with self._writers:
            await asyncio.to_thread(self._put_sync, data, digest, mode)
        return digest

    async def put_file(self, src: Path, *, mode: int = 0o500) -> tuple[str, int]:
        """Store a file's content (read once, hashed once, in one thread hop); returns
        (sha256, size)."""
        async with self._writers:
            return await asyncio.to_thread(self._put_file_sync, src, mode)

    def _put_file_sync(self, src: Path, mode: int) -> tuple[str, int]:
        data = src.read_bytes()
        digest = sha256_hex(data)
        self._put_sync(data, digest, mode)
        return digest, len(data)

    def read_verified(self, digest: str) -> bytes:
        """The blob's bytes, or ``Tampered`` if they no longer hash to ``digest``."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise Tampered(f"blob {digest[:12]} is missing from the store", sha256=digest) from None
        actual = sha256_hex(data)
        if actual != digest:
            raise Tampered(
                f"blob {digest[:12]} was changed on disk (now {actual[:12]})", sha256=digest, actual=actual
            )
        return data

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def all_digests(self) -> set[str]:
        found = set()
        for sub in self.root.iterdir():
            if sub.is_dir():
                found.update(p.name for p in sub.iterdir() if not is_temp_name(p.name))
        return found

    def sweep_temp(self) -> int:
        """Remove temp files a killed daemon left behind; returns how many."""
        removed = 0
        for sub in self.root.iterdir():
            if sub.is_dir():
                for p in sub.iterdir():
                    if is_temp_name(p.name):
                        p.unlink(missing_ok=True)
                        removed += 1
        return removed
