"""The state directory of a service: its layout, crash-safe writes with exact modes, and
the secrets made on first start (sealing key, admin token).

Every file is written to a temporary file created with its final mode, fsynced, renamed
over the target, and the directory fsynced: a reader sees the old file or the new one,
and a private file is never readable by others, not even briefly. A private file that
group or others can read is refused at load, as OpenSSH does.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ...shared.files import write_private

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

DIRECTORY_MODE = 0o700


class StateError(RuntimeError):
    """A state file that cannot be used as it is (wrong mode, damaged)."""


@dataclass(frozen=True)
class StateFiles:
    """What lives in a service's state directory (docs/services.md, "State directory")."""

    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "service.db"

    @property
    def tls_cert(self) -> Path:
        """The TLS certificate (public: the launcher pins it)."""
        return self.directory / "tls.pem"

    @property
    def tls_key(self) -> Path:
        return self.directory / "tls.key"

    @property
    def sealing_key(self) -> Path:
        """The X25519 key requests are sealed to (PKCS#8 PEM)."""
        return self.directory / "sealing.key"

    @property
    def admin_token(self) -> Path:
        return self.directory / "admin-token"

    @property
    def policy(self) -> Path:
        """Where a policy pushed with ``POST /admin/policy`` is kept when ``--policy`` is not given."""
        return self.directory / "policy.toml"

    @property
    def crl(self) -> Path:
        """The last CRL fetched, so that a restart does not forget a revocation."""
        return self.directory / "crl.der"

    @property
    def lock(self) -> Path:
        return self.directory / "service.lock"


def ensure_directory(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask


def read_private(path: Path) -> bytes:
    """A private file's bytes; :class:`StateError` if group or others can read it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
        if mode & 0o077:
            raise StateError(f"{path} is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}")
        return fh.read()


def load_or_create_sealing_key(path: Path) -> X25519PrivateKey:
    """The service's X25519 sealing key, made on first start (0600, PKCS#8 PEM)."""
    if not path.exists():
        key = X25519PrivateKey.generate()
        write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        return key
    try:
        loaded = serialization.load_pem_private_key(read_private(path), password=None)
    except (ValueError, TypeError):
        raise StateError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(loaded, X25519PrivateKey):
        raise StateError(f"{path} is not an X25519 key")
    return loaded


def load_or_create_admin_token(path: Path) -> str:
    """The admin bearer token, made on first start (0600, 256 random bits)."""
    if not path.exists():
        token = secrets.token_urlsafe(32)
        write_private(path, (token + "\n").encode("ascii"))
        return token
    token = read_private(path).decode("ascii", errors="replace").strip()
    if len(token) < 16:
        raise StateError(f"{path} holds no usable token (at least 16 characters)")
    return token


def token_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8", "replace"), token.encode("utf-8"))
