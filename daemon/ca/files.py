"""Files of the CA: the layout, crash-safe writes with exact modes, and the key passphrase.

Every file is written to a temporary file created with its final mode, fsynced, renamed
over the target, and the directory is fsynced: after a crash a reader sees the old file or
the new one, never half of one, and a key is never readable by others, not even briefly.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ...shared.files import fsync_directory
from typing import Mapping

from ...shared.errors import Conflict, InvalidParams, NotFound

DIRECTORY_MODE = 0o700


@dataclass(frozen=True)
class CAFiles:
    """The layout under one directory (e.g. ``<state_dir>/ca``)."""

    directory: Path

    @classmethod
    def at(cls, directory: str | os.PathLike[str]) -> CAFiles:
        return cls(Path(directory))

    @property
    def root_cert(self) -> Path:
        return self.directory / "root.pem"

    @property
    def root_key(self) -> Path:
        """Absent when the root is the operator's."""
        return self.directory / "root.key"

    @property
    def issuing_cert(self) -> Path:
        """The issuing CA certificate, followed by any operator intermediates (leaf-first)."""
        return self.directory / "issuing.pem"

    @property
    def issuing_key(self) -> Path:
        return self.directory / "issuing.key"

    @property
    def issuing_csr(self) -> Path:
        return self.directory / "issuing.csr"

    @property
    def crl(self) -> Path:
        return self.directory / "crl.der"


def ensure_directory(directory: Path) -> None:
    """Create the CA directory (0700) if it does not exist."""
    if not directory.exists():
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
        fsync_directory(directory.parent)


def read_private(path: Path) -> bytes:
    """A key file's bytes, refusing one that group or others can read (as OpenSSH does)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    with os.fdopen(fd, "rb") as fh:
        mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
        if mode & 0o077:
            raise Conflict(
                f"{path} is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}",
                path=str(path),
            )
        return fh.read()


def read_passphrase(
    *,
    file: str | os.PathLike[str] | None = None,
    credential: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The CA key passphrase from a file or a systemd credential (``$CREDENTIALS_DIRECTORY/<name>``).

    One trailing newline is removed (``echo secret > file`` is the common way to write one).
    """
    if (file is None) == (credential is None):
        raise InvalidParams("give exactly one of a passphrase file or a systemd credential name")
    if credential is not None:
        env = os.environ if environ is None else environ
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise NotFound(
                f"systemd credential {credential!r} requested but $CREDENTIALS_DIRECTORY is not set "
                "(LoadCredential=/SetCredentialEncrypted= in the unit)"
            )
        if "/" in credential or credential in ("", ".", ".."):
            raise InvalidParams(f"bad credential name {credential!r}")
        path = Path(directory) / credential
    else:
        path = Path(file)  # type: ignore[arg-type]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"passphrase file {path} does not exist") from None
    except OSError as exc:
        raise InvalidParams(f"cannot read passphrase file {path}: {exc.strerror or exc}") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise InvalidParams(f"passphrase file {path} is empty")
    return data
