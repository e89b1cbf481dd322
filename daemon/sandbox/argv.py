"""Command lines for compartments and for the compile sandbox, built in one place.

Nothing here starts a process: every function returns an exact argv (no shell) or a
plain dict, so each line can be unit-tested and the daemon's process code stays small.

Linux (``bwrap`` backend and the compile sandbox) — run and tested on Debian 12 with
bubblewrap 0.8. The full chain, built by :func:`compartment_argv`, is::

    attestables-confine --cpu --as --nofile --nproc --core --fsize [--user=UID:GID] --
      bwrap <isolation> -- /run/compartment/program ARGS

``attestables-confine`` (``confine.c``, built by the daemon at start with the host's C
compiler: :mod:`.confine_tool`) sets the limits while still root, so limits above the
daemon's own hard limits can be set; with ``--user`` (daemon running as root) it then
drops to an unprivileged uid, because RLIMIT_NPROC is not enforced for root, and sets
no_new_privs; ``bwrap`` builds the namespaces. Where the helper could not be built, the
same head is two util-linux tools, one exec each::

    prlimit --cpu --as --nofile --nproc --core --fsize --   (limits, set while still root)
      setpriv --reuid --regid --clear-groups ... --        (only if the daemon is root)

Every step ``exec``s the next, so the pid the daemon spawned is bwrap's and
``--die-with-parent`` ties the sandbox to the daemon.

Not enforced by any argv, the caller's job: the wall-clock limit (``Limits.wall_s``:
kill the process group when it expires) and the output cap (``Limits.output_kb``: stop
keeping what the program prints). Files a program can write are capped by the private
``/tmp``'s size and RLIMIT_FSIZE (``Limits.tmp_mb``).

CheriBSD (``c18n`` backend, FreeBSD ``limits(1)``) — command lines are built and tested
here but have NOT been run on hardware.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from attestables.shared.errors import InvalidParams

BWRAP = "/usr/bin/bwrap"
PRLIMIT = "/usr/bin/prlimit"
SETPRIV = "/usr/bin/setpriv"
ENV = "/usr/bin/env"
PROCCONTROL = "/usr/bin/proccontrol"
ELFCTL = "/usr/bin/elfctl"
FREEBSD_LIMITS = "/usr/bin/limits"

BACKENDS = ("bwrap", "c18n", "none")
CONTROL_FD = 3  # the compartment channel: always fd 3, announced as ATTESTABLES_FD
PROGRAM_PATH = "/run/compartment/program"  # where the program appears inside bwrap
SANDBOX_UID = 65534  # "nobody", inside the sandbox's user namespace
SANDBOX_GID = 65534
SANDBOX_PATH = "/usr/bin:/bin"
MIB = 1024 * 1024

# Host paths mirrored read-only into every sandbox, if they exist. On merged-/usr systems
# (Debian 12) /bin, /sbin, /lib* are symlinks into /usr and are recreated as symlinks.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# ld.so.cache lets the dynamic loader find libraries outside the default paths;
# /etc/alternatives resolves Debian's /usr/bin/cc -> /etc/alternatives/cc -> gcc.
SYSTEM_ETC = ("/etc/ld.so.cache", "/etc/alternatives")

C18N_PROCCONTROL_RELEASE = (25, 3)  # first CheriBSD release with c18n in the default rtld


# -- limits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Resource limits of one compartment (or one compile)."""

    cpu_s: int  # RLIMIT_CPU, seconds of CPU time
    memory_mb: int  # RLIMIT_AS, address space
    wall_s: int  # wall clock: enforced by the caller
    output_kb: int  # captured stdout+stderr: enforced by the caller
    nofile: int = 256  # RLIMIT_NOFILE
    # RLIMIT_NPROC counts every process of the real uid, across compartments that share
    # it, and is not enforced for root (hence drop_privileges_argv).
    nproc: int = 64
    tmp_mb: int = 64  # size of the private /tmp, and RLIMIT_FSIZE

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_mb", "wall_s", "output_kb", "nofile", "nproc", "tmp_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidParams(f"limit {name} must be a positive integer, not {value!r}", field=name)

    def rlimits(self) -> dict[str, int]:
        """The rlimits the command line sets, for records and attestation documents."""
        return {
            "cpu_s": self.cpu_s,
            "address_space_mb": self.memory_mb,
            "nofile": self.nofile,
            "nproc": self.nproc,
            "core_bytes": 0,
            "file_size_mb": self.tmp_mb,
        }


def _rlimit_args(limits: Limits) -> list[str]:
    """``--NAME=SOFT:HARD`` for each limit: the syntax of ``prlimit`` and of
    ``attestables-confine`` alike."""

    def both(value: int) -> str:
        return f"{value}:{value}"

    return [
        # SIGXCPU at the soft limit (so a run killed for CPU says so), SIGKILL a second later.
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
        f"--as={both(limits.memory_mb * MIB)}",  # malloc/mmap fail beyond this
        f"--nofile={both(limits.nofile)}",
        f"--nproc={both(limits.nproc)}",  # stops fork bombs (for a non-root uid)
        "--core=0:0",  # no core files (they could hold key material)
        f"--fsize={both(limits.tmp_mb * MIB)}",  # no single file larger than /tmp
    ]


def prlimit_argv(limits: Limits, *, prlimit: str = PRLIMIT) -> list[str]:
    """util-linux ``prlimit`` setting soft = hard for each limit, then ``--``."""
    return [prlimit, *_rlimit_args(limits), "--"]


def _check_identity(uid: int, gid: int) -> None:
    for name, value in (("uid", uid), ("gid", gid)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidParams(f"{name} must be a non-negative integer, not {value!r}", field=name)
        if value == 0:
            raise InvalidParams(f"refusing to run a compartment with {name} 0 (root)", field=name)


def confine_tool_argv(tool: str, limits: Limits, run_as: tuple[int, int] | None = None) -> list[str]:
    """``attestables-confine`` (``confine.c``): the limits, then (``run_as``, the daemon
    is root) the drop to an unprivileged uid, then no_new_privs, in one exec."""
    head = [_check_abs(tool, "confine_tool"), *_rlimit_args(limits)]
    if run_as is not None:
        _check_identity(*run_as)
        head.append(f"--user={run_as[0]}:{run_as[1]}")
    return [*head, "--"]


def freebsd_limits_argv(limits: Limits, *, limits_tool: str = FREEBSD_LIMITS) -> list[str]:
    """FreeBSD ``limits(1)`` equivalent of :func:`prlimit_argv` (NOT run on hardware).

    ``-B`` sets soft and hard limits; sizes carry an explicit ``m`` (MiB) suffix.
    """
    return [
        limits_tool, "-B",
        "-t", str(limits.cpu_s),
        "-v", f"{limits.memory_mb}m",
        "-n", str(limits.nofile),
        "-u", str(limits.nproc),
        "-c", "0",
        "-f", f"{limits.tmp_mb}m",
    ]


def drop_privileges_argv(uid: int, gid: int, *, setpriv: str = SETPRIV) -> list[str]:
    """``setpriv`` to an unprivileged uid/gid before the sandbox (daemon running as root).

    The compartment must never run as root: RLIMIT_NPROC is not enforced for root, and
    root could undo anything set up here. ``--no-new-privs`` keeps a set-uid binary from
    regaining privilege; inheritable and bounding capabilities are emptied.
    """
    _check_identity(uid, gid)
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


# -- bubblewrap -------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemLayout:
    """Which host system paths exist and how to mirror them: ``(op, src, dest)``."""

    entries: tuple[tuple[str, str, str], ...]

    def bwrap_args(self) -> list[str]:
        out: list[str] = []
        for op, src, dest in self.entries:
            out += [f"--{op}", src, dest]
        return out


def system_layout(dirs: Iterable[str] = SYSTEM_DIRS, etc: Iterable[str] = SYSTEM_ETC) -> SystemLayout:
    """Look at this host: a directory is ``ro-bind``-ed, a symlink is recreated."""
    entries: list[tuple[str, str, str]] = []
    for path in dirs:
        if os.path.islink(path):
            entries.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            entries.append(("ro-bind", path, path))
    for path in etc:
        if os.path.exists(path):  # a symlink is followed: its target is bound
            entries.append(("ro-bind", path, path))
    return SystemLayout(tuple(entries))


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise InvalidParams(f"{what} must be a string without NUL bytes", field=what)
    return value


def _check_abs(value: object, what: str) -> str:
    path = _check_str(value, what)
    if not path.startswith("/"):
        raise InvalidParams(f"{what} must be an absolute path, not {path!r}", field=what)
    return path


def _check_fd(fd: object, what: str, taken: set[int]) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int) or fd < 3 or fd in taken:
        raise InvalidParams(f"{what} must be a free descriptor number above 2, not {fd!r}", field=what)
    taken.add(fd)
    return fd


def _isolation_args(*, hostname: str | None, disable_userns: bool, info_fd: int | None,
                    json_status_fd: int | None, control_fd: int | None) -> list[str]:
    taken: set[int] = set() if control_fd is None else {control_fd}
    argv = [
        "--unshare-all",  # new net (own loopback only), pid, ipc, uts, cgroup, user namespaces
        "--unshare-user",  # explicit: --disable-userns needs it (--unshare-all only *tries*)
    ]
    if disable_userns:
        argv.append("--disable-userns")  # no nested user namespaces inside (bwrap >= 0.8)
    argv += [
        "--die-with-parent",  # SIGKILL the sandbox if the daemon dies
        "--new-session",  # setsid: no TIOCSTI into the daemon's terminal
        "--cap-drop", "ALL",  # no capabilities, even inside the namespaces
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),  # 'nobody' inside, never 0
    ]
    if hostname is not None:
        argv += ["--hostname", _check_str(hostname, "hostname")]  # not the board's name
    if info_fd is not None:
        argv += ["--info-fd", str(_check_fd(info_fd, "info_fd", taken))]  # {"child-pid": ...}
    if json_status_fd is not None:
        argv += ["--json-status-fd", str(_check_fd(json_status_fd, "json_status_fd", taken))]  # + exit-code
    return argv


def _env_args(env: dict[str, str]) -> list[str]:
    argv = ["--clearenv"]  # nothing of the daemon's environment (tokens, paths) leaks in
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv


def _fs_args(layout: SystemLayout, extra_ro_binds: Iterable[str | tuple[str, str]]) -> list[str]:
    argv = layout.bwrap_args()  # read-only /usr (+ /bin, /lib... symlinks), ld.so.cache
    for item in extra_ro_binds:
        src, dest = (item, item) if isinstance(item, str) else item
        argv += ["--ro-bind", _check_abs(src, "extra_ro_binds"), _check_abs(dest, "extra_ro_binds")]
    argv += [
        "--proc", "/proc",  # a procfs of the new pid namespace: only the sandbox's processes
        "--dev", "/dev",  # minimal /dev: null, zero, full, random, urandom, tty, pts, shm
    ]
    return argv


def _tmp_args(tmp_mb: int) -> list[str]:
    # A private, size-capped /tmp (--size must precede --tmpfs).
    return ["--size", str(tmp_mb * MIB), "--tmpfs", "/tmp"]


def bwrap_run_argv(
    program_path_on_host: str | None,
    args: Sequence[str] = (),
    *,
    program_fd: int | None = None,
    bwrap: str = BWRAP,
    extra_ro_binds: Iterable[str | tuple[str, str]] = (),
    info_fd: int | None = None,
    json_status_fd: int | None = None,
    hostname: str = "compartment",
    control_fd: int = CONTROL_FD,
    tmp_mb: int = 64,
    layout: SystemLayout | None = None,
    disable_userns: bool = True,
) -> list[str]:
    """bubblewrap running one program as a compartment.

    The program appears read-only at ``/run/compartment/program``. Give either its host
    path (bound read-only; bwrap must be able to reach it *as the uid it runs as*), or
    ``program_fd``, an open descriptor whose content bwrap copies into a read-only,
    mode 0555 file (``--ro-bind-data``): this works when the artefact store is not
    readable by the sandbox uid, and the daemon can hash the very descriptor it hands
    over (seek it to 0 first). The descriptor must be inherited by bwrap.

    The sandbox sees: read-only system directories, ``/proc`` and ``/dev`` of its own,
    an empty size-capped ``/tmp``, the program, and the ``extra_ro_binds``. Nothing else:
    no ``/etc`` beyond ``ld.so.cache``/``alternatives``, no ``/home``, ``/root``, ``/var``,
    ``/run``, and no daemon state. No network: a new network namespace whose only
    interface is its own loopback (bwrap brings it up), so 127.0.0.1 is not the host's.
    """
    if (program_path_on_host is None) == (program_fd is None):
        raise InvalidParams("give exactly one of program_path_on_host and program_fd", field="program")
    layout = system_layout() if layout is None else layout
    argv = [bwrap, *_isolation_args(hostname=hostname, disable_userns=disable_userns, info_fd=info_fd,
                                    json_status_fd=json_status_fd, control_fd=control_fd)]
    argv += _fs_args(layout, extra_ro_binds)
    argv += _tmp_args(tmp_mb)
    if program_fd is not None:
        taken = {control_fd, *(fd for fd in (info_fd, json_status_fd) if fd is not None)}
        fd = _check_fd(program_fd, "program_fd", taken)
        # A copy of the descriptor's content, mode r-x, mounted read-only.
        argv += ["--perms", "0555", "--ro-bind-data", str(fd), PROGRAM_PATH]
    else:
        argv += ["--ro-bind", _check_abs(program_path_on_host, "program"), PROGRAM_PATH]
    argv += [
        "--remount-ro", "/",  # the sandbox's root tmpfs: nothing new can be created in /
        "--chdir", "/tmp",
    ]
    argv += _env_args({
        "PATH": SANDBOX_PATH,
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "ATTESTABLES_FD": str(control_fd),  # the control channel (DESIGN.md §5)
    })
    argv += ["--", PROGRAM_PATH, *(_check_str(a, "args") for a in args)]
    return argv


def bwrap_compile_argv(
    compiler_argv: Sequence[str],
    *,
    source_dir_host: str,
    output_dir_host: str,
    runtime_dir_host: str | None = None,
    bwrap: str = BWRAP,
    extra_ro_binds: Iterable[str | tuple[str, str]] = (),
    json_status_fd: int | None = None,
    tmp_mb: int = 256,
    layout: SystemLayout | None = None,
    source_date_epoch: int | None = 0,
    disable_userns: bool = True,
) -> list[str]:
    """bubblewrap around a compiler: same isolation as a compartment, no network.

    ``/src`` (read-only) holds the sources, ``/runtime`` (read-only) the compartment
    runtime's headers and sources, ``/out`` (read-write) receives the binary; gcc's
    temporary files go to the private ``/tmp``. The compiler itself (cc1, as, ld) comes
    from the read-only ``/usr`` and ``/etc/alternatives``.

    ``LC_ALL=C`` makes diagnostics English with ASCII quotes (what
    :mod:`..builds.diagnostics` parses); ``SOURCE_DATE_EPOCH`` (0 by default) makes
    ``__DATE__``/``__TIME__`` fixed so the same source gives the same measured binary.
    If the daemon drops to another uid (:func:`drop_privileges_argv`), the three host
    directories must be reachable by it and ``/out`` writable.
    """
    if not compiler_argv:
        raise InvalidParams("empty compiler command line", field="compiler_argv")
    layout = system_layout() if layout is None else layout
    argv = [bwrap, *_isolation_args(hostname="compile", disable_userns=disable_userns, info_fd=None,
                                    json_status_fd=json_status_fd, control_fd=None)]
    argv += _fs_args(layout, extra_ro_binds)
    argv += _tmp_args(tmp_mb)
    argv += ["--ro-bind", _check_abs(source_dir_host, "source_dir_host"), "/src"]
    if runtime_dir_host is not None:
        argv += ["--ro-bind", _check_abs(runtime_dir_host, "runtime_dir_host"), "/runtime"]
    argv += ["--bind", _check_abs(output_dir_host, "output_dir_host"), "/out"]
    argv += ["--remount-ro", "/", "--chdir", "/tmp"]
    env = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LC_ALL": "C"}
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(int(source_date_epoch))
    argv += _env_args(env)
    argv += ["--", *(_check_str(a, "compiler_argv") for a in compiler_argv)]
    return argv


# -- CheriBSD c18n (NOT run on hardware) ------------------------------------------------


def parse_release(release: tuple[int, int] | str) -> tuple[int, int]:
    """``(25, 3)`` from ``(25, 3)``, ``'25.03'`` or ``'25.3'``."""
    if isinstance(release, tuple) and len(release) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in release):
        return release
    if isinstance(release, str):
        major, dot, minor = release.strip().partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    raise InvalidParams(f"CheriBSD release must look like '25.03', not {release!r}", field="release")


def c18n_needs_interpreter(release: tuple[int, int] | str) -> bool:
    """True before 25.03: the program must be linked with ``/libexec/ld-elf-c18n.so.1``
    (``Toolchain.with_c18n_interpreter()``), and its ELF ``PT_INTERP`` says so."""
    return parse_release(release) < C18N_PROCCONTROL_RELEASE


def _plain_env(control_fd: int, extra: dict[str, str] | None = None) -> list[str]:
    # env -i: the program starts with a known environment, never the daemon's.
    out = [ENV, "-i", f"PATH={SANDBOX_PATH}", "HOME=/tmp", "TMPDIR=/tmp", f"ATTESTABLES_FD={control_fd}"]
    for key, value in (extra or {}).items():
        out.append(f"{key}={value}")
    return out


def c18n_run_argv(
    program: str,
    args: Sequence[str] = (),
    *,
    release: tuple[int, int] | str,
    library_path: str | None = None,
    control_fd: int = CONTROL_FD,
    proccontrol: str = PROCCONTROL,
) -> list[str]:
    """A program under CheriBSD library compartmentalisation (c18n). NOT run on hardware.

    25.03 and later: c18n lives in the default run-time linker and is switched on per
    process, ``proccontrol -m cheric18n -s enable PROG ARGS`` (per binary instead:
    :func:`elfctl_c18n_argv`); its variables carry the purecap rtld's ``LD_`` prefix.
    Before 25.03: the program is linked against ``/libexec/ld-elf-c18n.so.1`` and that
    run-time linker reads ``LD_C18N_``-prefixed variables (``LD_C18N_LIBRARY_PATH``, as
    the seed used). ``library_path`` (optional) becomes the matching
    ``*_LIBRARY_PATH``.
    """
    program = _check_abs(program, "program")
    rest = [program, *(_check_str(a, "args") for a in args)]
    extra: dict[str, str] = {}
    if c18n_needs_interpreter(release):
        if library_path is not None:
            extra["LD_C18N_LIBRARY_PATH"] = _check_str(library_path, "library_path")
        return [*_plain_env(control_fd, extra), *rest]
    if library_path is not None:
        extra["LD_LIBRARY_PATH"] = _check_str(library_path, "library_path")
    return [*_plain_env(control_fd, extra), proccontrol, "-m", "cheric18n", "-s", "enable", *rest]


def elfctl_c18n_argv(program: str, *, elfctl: str = ELFCTL) -> list[str]:
    """Mark one binary for c18n (25.03 and later): ``elfctl -e +cheric18n PROG``."""
    return [elfctl, "-e", "+cheric18n", _check_abs(program, "program")]


def none_run_argv(program: str, args: Sequence[str] = (), *, control_fd: int = CONTROL_FD) -> list[str]:
    """Unconfined (the caller enforces ``allow_unconfined``): only a clean environment."""
    return [*_plain_env(control_fd), _check_abs(program, "program"), *(_check_str(a, "args") for a in args)]


# -- composition and facts ----------------------------------------------------------------


def confine(limits: Limits, run_as: tuple[int, int] | None = None, *, tool: str | None = None) -> list[str]:
    """The Linux head of every sandboxed command: rlimits, then (as root) the drop to
    ``run_as``; the compile sandbox and the ``bwrap``/``none`` backends all start with it.
    ``tool`` is the built ``attestables-confine``; without it, ``prlimit`` + ``setpriv``."""
    if tool is not None:
        return confine_tool_argv(tool, limits, run_as)
    head = prlimit_argv(limits)
    if run_as is not None:
        head += drop_privileges_argv(*run_as)
    return head


def compartment_argv(
    backend: str,
    program: str | None,
    args: Sequence[str],
    limits: Limits,
    *,
    run_as: tuple[int, int] | None = None,
    program_fd: int | None = None,
    info_fd: int | None = None,
    json_status_fd: int | None = None,
    release: tuple[int, int] | str | None = None,
    library_path: str | None = None,
    layout: SystemLayout | None = None,
    extra_ro_binds: Iterable[str | tuple[str, str]] = (),
    confine_tool: str | None = None,
) -> list[str]:
    """The whole command line for ``backend``: limits, privilege drop, confinement.

    ``run_as`` (uid, gid) adds the drop to that uid (Linux, daemon running as root).
    ``bwrap`` and ``none`` start with :func:`confine` (``confine_tool``, else ``prlimit``
    and ``setpriv``); ``c18n`` uses FreeBSD ``limits(1)`` and has no privilege drop here
    (NOT run on hardware).
    """
    if backend == "c18n":
        if release is None:
            raise InvalidParams("the c18n backend needs the CheriBSD release", field="release")
        if run_as is not None:
            raise InvalidParams("privilege drop is not implemented for c18n", field="run_as")
        assert program is not None
        return [*freebsd_limits_argv(limits), *c18n_run_argv(program, args, release=release,
                                                             library_path=library_path)]
    if backend == "bwrap":
        return confine(limits, run_as, tool=confine_tool) + bwrap_run_argv(
            program, args, program_fd=program_fd, info_fd=info_fd, json_status_fd=json_status_fd,
            tmp_mb=limits.tmp_mb, layout=layout, extra_ro_binds=extra_ro_binds)
    if backend == "none":
        if program is None:
            raise InvalidParams("the none backend needs a program path", field="program")
        return confine(limits, run_as, tool=confine_tool) + none_run_argv(program, args)
    raise InvalidParams(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})", field="backend")


def isolation_facts(backend: str, limits: Limits, *, run_as: tuple[int, int] | None = None) -> dict[str, Any]:
    """What the attestation document says about the isolation :func:`compartment_argv` builds.

    Honest by construction: ``none`` and ``c18n`` share the host's network and file
    system; only ``bwrap`` has namespaces.
    """
    common: dict[str, Any] = {
        "backend": backend,
        "rlimits": limits.rlimits(),
        "wall_s": limits.wall_s,
        "output_kb": limits.output_kb,
    }
    if backend == "bwrap":
        return {
            **common,
            "network": "none",
            "filesystem": "read-only system, private /tmp, no state dir",
            "pid_namespace": True,
            "user_namespace": True,
            "capabilities": "none",
            "uid_inside": SANDBOX_UID,
            "host_uid": run_as[0] if run_as else None,
            "tmp_mb": limits.tmp_mb,
        }
    if backend == "c18n":
        return {
            **common,
            "network": "host",
            "filesystem": "host",
            "pid_namespace": False,
            "user_namespace": False,
            "compartmentalisation": "c18n: library compartments enforced by the CheriBSD run-time linker",
            "verified_on_hardware": False,
        }
    if backend == "none":
        return {
            **common,
            "network": "host",
            "filesystem": "host",
            "pid_namespace": False,
            "user_namespace": False,
            "host_uid": run_as[0] if run_as else None,
        }
    raise InvalidParams(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})", field="backend")
