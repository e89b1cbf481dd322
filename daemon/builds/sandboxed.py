"""One compiler (or archiver) command in the compile sandbox, with its output as lines."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from attestables.shared.errors import Unavailable

from ..sandbox.argv import Limits, bwrap_compile_argv, confine
from ..sandbox.process import ExitStatus, SandboxProcess

if TYPE_CHECKING:
    from ..daemon import Daemon

# The compiler sees a fixed environment: nothing of the daemon's (tokens, paths) leaks.
COMPILE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class LineSplitter:
    """Turns pipe chunks into lines, with long lines cut rather than buffered forever."""

    def __init__(self, max_line: int = 8192) -> None:
        self._buf = b""
        self._max = max_line

    def feed(self, chunk: bytes) -> list[str]:
        data = self._buf + chunk
        *lines, self._buf = data.split(b"\n")
        if len(self._buf) > self._max:
            lines.append(self._buf[: self._max])
            self._buf = b""
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, b""
        return [rest.decode("utf-8", "replace")] if rest else []


async def run_compile(daemon: "Daemon", argv: Sequence[str], *, src: Path, out: Path, runtime: Path,
                      on_line: Callable[[str, str], None],
                      on_spawn: Callable[[SandboxProcess], None] = lambda proc: None,
                      run_as: tuple[int, int] | None = None) -> ExitStatus | None:
    """Run ``argv`` in the compile sandbox; None if it hit the time limit.

    ``src`` and ``runtime`` are bound read-only at /src and /runtime, ``out`` read-write at
    /out; nothing else of the host beyond the read-only system. It runs as ``run_as``, or
    (a root daemon) as a uid of its own for this one command.
    """
    if run_as is None:
        with daemon.host.identity() as own:
            return await _run(daemon, argv, src=src, out=out, runtime=runtime, on_line=on_line,
                              on_spawn=on_spawn, run_as=own)
    return await _run(daemon, argv, src=src, out=out, runtime=runtime, on_line=on_line, on_spawn=on_spawn,
                      run_as=run_as)


async def _run(daemon: "Daemon", argv: Sequence[str], *, src: Path, out: Path, runtime: Path,
               on_line: Callable[[str, str], None], on_spawn: Callable[[SandboxProcess], None],
               run_as: tuple[int, int] | None) -> ExitStatus | None:
    settings = daemon.settings
    limits = Limits(cpu_s=settings.build_timeout_s, memory_mb=settings.build_memory_mb,
                    wall_s=settings.build_timeout_s, output_kb=settings.build_log_max_kb, nproc=64, tmp_mb=256)
    sandbox = bwrap_compile_argv(list(argv), source_dir_host=str(src), output_dir_host=str(out),
                                 runtime_dir_host=str(runtime))
    splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

    def on_output(stream: str, chunk: bytes) -> None:
        for line in splitters[stream].feed(chunk):
            on_line(stream, line)

    tool = await daemon.host.ready()
    missing = daemon.host.missing()
    if missing:
        raise Unavailable(f"the compile sandbox cannot start on this host: missing {', '.join(missing)}")
    head = confine(limits, run_as, tool=tool)
    proc = await SandboxProcess.spawn(head + sandbox, env=COMPILE_ENV, on_output=on_output)
    on_spawn(proc)
    try:
        status: ExitStatus | None = await asyncio.wait_for(proc.wait(), settings.build_timeout_s)
    except asyncio.TimeoutError:
        proc.signal(signal.SIGKILL)
        await proc.wait()
        status = None
    except asyncio.CancelledError:
        proc.signal(signal.SIGKILL)
        await proc.wait()
        raise
    for stream, splitter in splitters.items():
        for line in splitter.flush():
            on_line(stream, line)
    return status
