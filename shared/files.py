"""Crash-safe file writes with exact modes, for every part that keeps state on disk.

A file is written to a temporary file in the same directory, created with its final mode,
fsynced, renamed over the target, and the directory is fsynced: after a crash a reader
sees the old file or the new one, never half of one, and a private file is never readable
by others, not even briefly. Temporary names are ``.<name>.<random>.tmp``
(:func:`is_temp_name`), so a start-up sweep can remove what a killed process left.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (mode exactly ``mode``), durably."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; never adds any we did not ask for
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_private(path: Path, data: bytes) -> None:
    write_atomic(path, data, PRIVATE_MODE)


def write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data, PUBLIC_MODE)
