"""The full command chain around a sandboxed program, built in one place.

``[setpriv … --]`` (only when the daemon is root: a compartment never runs as root,
else RLIMIT_NPROC would not bind) ``prlimit … --`` (rlimits set before exec, since
``posix_spawn`` cannot) ``bwrap …`` (namespaces, filesystem view) ``-- program``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .argv import Limits, drop_privileges_argv, prlimit_argv


@dataclass(frozen=True)
class Chain:
    bwrap: str | None
    prlimit: str | None
    setpriv: str | None
    uid: int
    gid: int

    @classmethod
    def detect(cls, uid: int, gid: int) -> "Chain":
        return cls(shutil.which("bwrap"), shutil.which("prlimit"), shutil.which("setpriv"), uid, gid)

    @property
    def drops_privileges(self) -> bool:
        return os.geteuid() == 0

    def missing(self) -> list[str]:
        """Tools the sandbox needs but this host lacks."""
        need = {"bwrap": self.bwrap, "prlimit": self.prlimit}
        if self.drops_privileges:
            need["setpriv"] = self.setpriv
        return sorted(name for name, path in need.items() if not path)

    def wrap(self, sandbox_argv: list[str], limits: Limits) -> list[str]:
        """Prefix ``sandbox_argv`` (a bwrap command) with privilege drop and rlimits."""
        argv: list[str] = []
        if self.drops_privileges:
            argv += drop_privileges_argv(self.uid, self.gid, setpriv=self.setpriv or "setpriv")
        argv += prlimit_argv(limits, prlimit=self.prlimit or "prlimit")
        return argv + sandbox_argv
