"""What this host offers the sandbox: the tools it needs and the uids it runs as.

When the daemon is root, each build and run gets a uid of its own from a range that no
account uses (``sandbox_uid_base`` ..). RLIMIT_NPROC counts processes per uid, so a
shared uid would let a fork bomb in one compartment stop every other from starting; a
uid of its own makes each compartment's process limit its own. The pool hands uids out
round-robin, so a uid is not reused while the last sandbox's processes are still being
reaped. A daemon that is not root cannot change uid: its sandboxes share its uid (see
docs/threat-model.md).

Every sandboxed command starts with ``attestables-confine`` once the daemon has built it
(:mod:`.confine_tool`, in the background at start); until then, or where it cannot be
built, with ``prlimit`` and ``setpriv``. Spawners ``await host.ready()`` for the choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import confine_tool
from .argv import BWRAP, PRLIMIT, SETPRIV

log = logging.getLogger(__name__)


@dataclass
class SandboxHost:
    uid_base: int
    uid_count: int
    gid: int
    _next: int = 0
    _in_use: set[int] = field(default_factory=set)
    confine_tool: str | None = None  # the built attestables-confine, once it works
    _preparing: asyncio.Task[None] | None = None

    @property
    def is_root(self) -> bool:
        return os.geteuid() == 0

    def missing(self) -> list[str]:
        """Tools the sandbox needs but this host lacks: bwrap, and for the confine head
        either the built ``attestables-confine`` or ``prlimit`` (+ ``setpriv`` as root)."""
        need = {"bwrap": BWRAP}
        if self.confine_tool is None:
            need["prlimit"] = PRLIMIT
            if self.is_root:
                need["setpriv"] = SETPRIV
        return sorted(name for name, path in need.items() if not os.access(path, os.X_OK))

    @contextlib.contextmanager
    def identity(self) -> Iterator[tuple[int, int] | None]:
        """A (uid, gid) for one sandbox while it lives; ``None`` when not root."""
        if not self.is_root:
            yield None
            return
        for _ in range(self.uid_count):
            offset = self._next
            self._next = (self._next + 1) % self.uid_count
            if offset not in self._in_use:
                break
        else:
            raise RuntimeError("every sandbox uid is in use")
        self._in_use.add(offset)
        try:
            yield (self.uid_base + offset, self.gid)
        finally:
            self._in_use.discard(offset)

    def prepare(self, directory: Path, compiler: str | None, on_ready: Callable[[], None] = lambda: None) -> None:
        """Start building ``attestables-confine`` into ``directory`` with ``compiler`` (the
        native toolchain's), in a background thread; ``on_ready`` runs once the helper
        works (what the host offers has changed)."""
        self._preparing = asyncio.create_task(self._build_confine_tool(directory, compiler, on_ready),
                                              name="confine-tool")

    async def _build_confine_tool(self, directory: Path, compiler: str | None, on_ready: Callable[[], None]) -> None:
        check_as = (self.uid_base, self.gid) if self.is_root else None
        try:
            path = await asyncio.to_thread(confine_tool.build, directory, compiler=compiler, check_as=check_as)
        except Exception as exc:  # any failure: keep the util-linux head, say why
            log.warning("sandboxes start with prlimit%s: %s", " and setpriv" if self.is_root else "", exc)
            return
        self.confine_tool = str(path)
        log.info("sandboxes start with %s", path)
        on_ready()

    async def ready(self) -> str | None:
        """The ``attestables-confine`` path once its build has ended; None: the sandbox
        head is ``prlimit`` (+ ``setpriv``)."""
        if self._preparing is not None:
            await asyncio.shield(self._preparing)
        return self.confine_tool
