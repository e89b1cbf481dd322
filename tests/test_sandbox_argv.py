"""Command lines of daemon/sandbox/argv.py: exact argv, then the real bwrap on this host."""

from __future__ import annotations

import errno
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from attestables.daemon.sandbox import argv as sb
from attestables.daemon.sandbox import confine_tool
from attestables.daemon.sandbox.argv import (
    Limits,
    SystemLayout,
    bwrap_compile_argv,
    bwrap_run_argv,
    c18n_needs_interpreter,
    c18n_run_argv,
    compartment_argv,
    confine_tool_argv,
    drop_privileges_argv,
    elfctl_c18n_argv,
    freebsd_limits_argv,
    isolation_facts,
    none_run_argv,
    parse_release,
    prlimit_argv,
    system_layout,
)
from attestables.shared.errors import InvalidParams

LAYOUT = SystemLayout((
    ("ro-bind", "/usr", "/usr"),
    ("symlink", "usr/bin", "/bin"),
    ("symlink", "usr/lib", "/lib"),
    ("ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"),
))
LAYOUT_ARGS = [
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/bin", "/bin",
    "--symlink", "usr/lib", "/lib",
    "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
]
ISOLATION = [
    "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
    "--cap-drop", "ALL", "--uid", "65534", "--gid", "65534",
]
LIMITS = Limits(cpu_s=5, memory_mb=256, wall_s=10, output_kb=64)


# -- exact command lines ----------------------------------------------------------------


def test_limits_validation() -> None:
    assert LIMITS.nofile == 256 and LIMITS.nproc == 64 and LIMITS.tmp_mb == 64
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(InvalidParams):
            Limits(cpu_s=bad, memory_mb=1, wall_s=1, output_kb=1)  # type: ignore[arg-type]


def test_prlimit_argv() -> None:
    assert prlimit_argv(LIMITS) == [
        "/usr/bin/prlimit", "--cpu=5:6", "--as=268435456:268435456", "--nofile=256:256", "--nproc=64:64",
        "--core=0:0", "--fsize=67108864:67108864", "--",
    ]


def test_freebsd_limits_argv() -> None:
    assert freebsd_limits_argv(LIMITS) == [
        "/usr/bin/limits", "-B", "-t", "5", "-v", "256m", "-n", "256", "-u", "64", "-c", "0", "-f", "64m",
    ]


def test_drop_privileges_argv() -> None:
    assert drop_privileges_argv(65534, 65534) == [
        "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--bounding-set=-all", "--",
    ]
    for uid, gid in ((0, 1), (1, 0), (-1, 5), (True, 5)):
        with pytest.raises(InvalidParams):
            drop_privileges_argv(uid, gid)


def test_confine_tool_argv() -> None:
    limits = ["--cpu=5:6", "--as=268435456:268435456", "--nofile=256:256", "--nproc=64:64", "--core=0:0",
              "--fsize=67108864:67108864"]
    assert confine_tool_argv("/w/bin/attestables-confine", LIMITS) == ["/w/bin/attestables-confine", *limits, "--"]
    assert confine_tool_argv("/t", LIMITS, (70000, 65534)) == ["/t", *limits, "--user=70000:65534", "--"]
    # The same limits, in the same syntax, as the util-linux head.
    assert prlimit_argv(LIMITS)[1:] == [*limits, "--"]
    for run_as in ((0, 1), (1, 0), (-1, 5), (True, 5)):
        with pytest.raises(InvalidParams):
            confine_tool_argv("/t", LIMITS, run_as)
    with pytest.raises(InvalidParams):
        confine_tool_argv("relative/tool", LIMITS)
    argv = compartment_argv("bwrap", "/a/prog", [], LIMITS, run_as=(70000, 65534), layout=LAYOUT,
                            confine_tool="/t")
    assert argv[:9] == ["/t", *limits, "--user=70000:65534", "--"] and argv[9] == "/usr/bin/bwrap"
    assert compartment_argv("none", "/a/prog", [], LIMITS, confine_tool="/t")[:8] == ["/t", *limits, "--"]


def test_bwrap_run_argv_exact() -> None:
    assert bwrap_run_argv("/store/ab/cd", ["--x", "y z"], layout=LAYOUT) == [
        "/usr/bin/bwrap", *ISOLATION, "--hostname", "compartment",
        *LAYOUT_ARGS,
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(64 * 1024 * 1024), "--tmpfs", "/tmp",
        "--ro-bind", "/store/ab/cd", "/run/compartment/program",
        "--remount-ro", "/", "--chdir", "/tmp",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--setenv", "TMPDIR", "/tmp", "--setenv", "ATTESTABLES_FD", "3",
        "--", "/run/compartment/program", "--x", "y z",
    ]


def test_bwrap_run_argv_options() -> None:
    argv = bwrap_run_argv(None, [], program_fd=7, info_fd=4, json_status_fd=5, layout=LAYOUT,
                          extra_ro_binds=["/opt/lib", ("/srv/x", "/x")], hostname="h", tmp_mb=8,
                          disable_userns=False)
    assert argv[:14] == [
        "/usr/bin/bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--uid", "65534", "--gid", "65534", "--hostname", "h", "--info-fd",
    ]
    assert argv[14:17] == ["4", "--json-status-fd", "5"]
    assert argv[17:17 + len(LAYOUT_ARGS)] == LAYOUT_ARGS
    rest = argv[17 + len(LAYOUT_ARGS):]
    assert rest[:6] == ["--ro-bind", "/opt/lib", "/opt/lib", "--ro-bind", "/srv/x", "/x"]
    assert ["--size", str(8 * 1024 * 1024), "--tmpfs", "/tmp",
            "--perms", "0555", "--ro-bind-data", "7", "/run/compartment/program"] == rest[10:19]


@pytest.mark.parametrize("kwargs", [
    {"program_path_on_host": None},  # neither
    {"program_path_on_host": "/p", "program_fd": 5},  # both
    {"program_path_on_host": "relative/p"},
    {"program_path_on_host": "/p", "info_fd": 3},  # collides with the control fd
    {"program_path_on_host": "/p", "info_fd": 2},
    {"program_path_on_host": "/p", "info_fd": 4, "json_status_fd": 4},
    {"program_path_on_host": None, "program_fd": 3},
    {"program_path_on_host": "/p", "extra_ro_binds": ["rel"]},
    {"program_path_on_host": "/p", "args": ["a\0b"]},
])
def test_bwrap_run_argv_refuses(kwargs: dict) -> None:
    path = kwargs.pop("program_path_on_host")
    args = kwargs.pop("args", [])
    with pytest.raises(InvalidParams):
        bwrap_run_argv(path, args, layout=LAYOUT, **kwargs)


def test_bwrap_compile_argv_exact() -> None:
    assert bwrap_compile_argv(
        ["/usr/bin/cc", "/src/main.c", "-o", "/out/prog"],
        source_dir_host="/var/b/1/src", output_dir_host="/var/b/1/out", runtime_dir_host="/opt/rt",
        layout=LAYOUT,
    ) == [
        "/usr/bin/bwrap", *ISOLATION, "--hostname", "compile",
        *LAYOUT_ARGS,
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(256 * 1024 * 1024), "--tmpfs", "/tmp",
        "--ro-bind", "/var/b/1/src", "/src",
        "--ro-bind", "/opt/rt", "/runtime",
        "--bind", "/var/b/1/out", "/out",
        "--remount-ro", "/", "--chdir", "/tmp",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--setenv", "TMPDIR", "/tmp", "--setenv", "LC_ALL", "C", "--setenv", "SOURCE_DATE_EPOCH", "0",
        "--", "/usr/bin/cc", "/src/main.c", "-o", "/out/prog",
    ]
    argv = bwrap_compile_argv(["cc"], source_dir_host="/s", output_dir_host="/o", layout=LAYOUT,
                              source_date_epoch=None, json_status_fd=9)
    assert "/runtime" not in argv and "SOURCE_DATE_EPOCH" not in argv
    assert argv[argv.index("--json-status-fd") + 1] == "9"
    with pytest.raises(InvalidParams):
        bwrap_compile_argv([], source_dir_host="/s", output_dir_host="/o", layout=LAYOUT)
    with pytest.raises(InvalidParams):
        bwrap_compile_argv(["cc"], source_dir_host="s", output_dir_host="/o", layout=LAYOUT)


def test_system_layout_mirrors_symlinks_and_dirs(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "cache").write_text("x")
    layout = system_layout(
        dirs=[str(tmp_path / "usr"), str(tmp_path / "bin"), str(tmp_path / "missing")],
        etc=[str(tmp_path / "cache"), str(tmp_path / "nope")],
    )
    assert layout.entries == (
        ("ro-bind", str(tmp_path / "usr"), str(tmp_path / "usr")),
        ("symlink", "usr/bin", str(tmp_path / "bin")),
        ("ro-bind", str(tmp_path / "cache"), str(tmp_path / "cache")),
    )
    # On this host (Debian 12, merged /usr): /usr bound, /bin and /lib* recreated as symlinks.
    host = system_layout()
    assert ("ro-bind", "/usr", "/usr") in host.entries
    if os.path.islink("/bin"):
        assert ("symlink", os.readlink("/bin"), "/bin") in host.entries


def test_c18n_argv() -> None:
    env = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "ATTESTABLES_FD=3"]
    assert c18n_run_argv("/a/prog", ["x"], release="25.03") == [
        *env, "/usr/bin/proccontrol", "-m", "cheric18n", "-s", "enable", "/a/prog", "x"]
    assert c18n_run_argv("/a/prog", [], release=(25, 10), library_path="/a/lib") == [
        *env, "LD_LIBRARY_PATH=/a/lib", "/usr/bin/proccontrol", "-m", "cheric18n", "-s", "enable", "/a/prog"]
    assert c18n_run_argv("/a/prog", ["x"], release=(24, 5), library_path="/a") == [
        *env, "LD_C18N_LIBRARY_PATH=/a", "/a/prog", "x"]
    assert c18n_run_argv("/a/prog", [], release="22.12") == [*env, "/a/prog"]
    assert elfctl_c18n_argv("/a/prog") == ["/usr/bin/elfctl", "-e", "+cheric18n", "/a/prog"]
    assert c18n_needs_interpreter("24.05") and not c18n_needs_interpreter((25, 3))
    assert parse_release("25.3") == (25, 3) == parse_release((25, 3))
    for bad in ("25", "x.y", "", (25,), (True, 3), 25.03):
        with pytest.raises(InvalidParams):
            parse_release(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParams):
        c18n_run_argv("prog", [], release="25.03")


def test_none_and_composition() -> None:
    env = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "ATTESTABLES_FD=3"]
    assert none_run_argv("/a/prog", ["1"]) == [*env, "/a/prog", "1"]
    assert compartment_argv("none", "/a/prog", ["1"], LIMITS, run_as=(1000, 1000)) == [
        *prlimit_argv(LIMITS), *drop_privileges_argv(1000, 1000), *env, "/a/prog", "1"]
    assert compartment_argv("bwrap", "/a/prog", [], LIMITS, layout=LAYOUT) == [
        *prlimit_argv(LIMITS), *bwrap_run_argv("/a/prog", [], layout=LAYOUT)]
    assert compartment_argv("c18n", "/a/prog", [], LIMITS, release="25.03") == [
        *freebsd_limits_argv(LIMITS), *c18n_run_argv("/a/prog", [], release="25.03")]
    for backend, kwargs in (("c18n", {}), ("c18n", {"release": "25.03", "run_as": (5, 5)}), ("vm", {})):
        with pytest.raises(InvalidParams):
            compartment_argv(backend, "/a/prog", [], LIMITS, **kwargs)


def test_isolation_facts_are_honest() -> None:
    bw = isolation_facts("bwrap", LIMITS, run_as=(65534, 65534))
    assert bw["network"] == "none" and bw["pid_namespace"] is True
    assert bw["filesystem"] == "read-only system, private /tmp, no state dir"
    assert bw["rlimits"] == {"cpu_s": 5, "address_space_mb": 256, "nofile": 256, "nproc": 64,
                             "core_bytes": 0, "file_size_mb": 64}
    assert bw["host_uid"] == 65534 and bw["wall_s"] == 10 and bw["output_kb"] == 64
    for backend in ("none", "c18n"):
        facts = isolation_facts(backend, LIMITS)
        assert facts["network"] == "host" and facts["filesystem"] == "host"
        assert facts["pid_namespace"] is False
    assert isolation_facts("c18n", LIMITS)["verified_on_hardware"] is False
    with pytest.raises(InvalidParams):
        isolation_facts("docker", LIMITS)


# -- the real bwrap ------------------------------------------------------------------------

PROBE_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "hello";
    if (!strcmp(mode, "hello")) {
        printf("hello uid=%d fd=%s\n", (int)getuid(), getenv("ATTESTABLES_FD") ? getenv("ATTESTABLES_FD") : "-");
    } else if (!strcmp(mode, "stat")) {
        for (int i = 2; i < argc; i++) {
            struct stat st;
            printf("%s %d\n", argv[i], stat(argv[i], &st) == 0 ? 0 : errno);
        }
    } else if (!strcmp(mode, "connect")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)atoi(argv[2]));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s < 0) { printf("socket %d\n", errno); return 0; }
        printf("connect %d\n", connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno);
    } else if (!strcmp(mode, "fd3")) {
        char buf[64] = {0};
        if (write(3, "ping", 4) != 4) { printf("write %d\n", errno); return 1; }
        ssize_t n = read(3, buf, sizeof buf - 1);
        printf("got %s\n", n > 0 ? buf : "nothing");
    } else if (!strcmp(mode, "fork")) {
        for (int i = 0; i < 10000; i++) {
            pid_t p = fork();
            if (p == 0) { pause(); _exit(0); }
            if (p < 0) { printf("fork failed after %d errno %d\n", i, errno); return 0; }
        }
        printf("fork never failed\n");
    } else if (!strcmp(mode, "mem")) {
        size_t n = (size_t)atol(argv[2]) * 1024 * 1024;
        char *p = malloc(n);
        if (!p) { printf("malloc failed\n"); return 0; }
        memset(p, 1, n);
        printf("malloc ok\n");
    } else if (!strcmp(mode, "spin")) {
        for (volatile unsigned long i = 0;; i++) {}
    } else if (!strcmp(mode, "write")) {
        FILE *f = fopen(argv[2], "w");
        printf("write %d\n", f ? 0 : errno);
    }
    fflush(stdout);
    return 0;
}
"""

needs_bwrap = pytest.mark.skipif(not os.access(sb.BWRAP, os.X_OK), reason="bubblewrap not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.access(sb.SETPRIV, os.X_OK),
                                reason="setpriv tests need root")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(PROBE_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "probe"), str(d / "probe.c")], check=True)
    # Reachable by uid 65534 for the path-bind variant (pytest's base dir is 0700).
    shared = Path("/tmp") / f"attestables-probe-{os.getpid()}"
    shared.mkdir(mode=0o755, exist_ok=True)
    shutil.copy(d / "probe", shared / "probe")
    os.chmod(shared / "probe", 0o755)
    yield str(shared / "probe")
    shutil.rmtree(shared, ignore_errors=True)


def spawn(argv: list[str], *, fds: dict[int, int] | None = None, timeout: float = 10.0) -> tuple[int, str, str]:
    """posix_spawn as the daemon does: fds[child_fd] = parent_fd via dup2, new session."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, err_w, 2)]
    actions += [(os.POSIX_SPAWN_DUP2, parent, child) for child, parent in (fds or {}).items()]
    pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"}, file_actions=actions, setsid=True)
    for fd in (out_w, err_w, devnull):
        os.close(fd)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    open_fds = [out_r, err_r]
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(pid, signal.SIGKILL)
                raise AssertionError(f"timed out: {argv}")
            ready, _, _ = select.select(open_fds, [], [], left)
            for fd in ready:
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.remove(fd)
    finally:
        os.close(out_r)
        os.close(err_r)
        _, status = os.waitpid(pid, 0)
    return (os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]).decode(),
            b"".join(chunks[err_r]).decode())


@pytest.fixture(scope="module", params=["attestables-confine", "prlimit+setpriv"])
def tool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """The two heads a sandboxed command can start with: the daemon's helper, built here as
    the daemon builds it, and the util-linux fallback."""
    if request.param == "prlimit+setpriv":
        return None
    try:
        return str(confine_tool.build(tmp_path_factory.mktemp("confine"), compiler=shutil.which("cc")))
    except confine_tool.ConfineToolError as exc:
        pytest.skip(str(exc))


SANDBOX_UIDS = itertools.count(1879100000)


def run_in_compartment(tool: str | None, probe: str | None, args: list[str], *, limits: Limits = LIMITS,
                       root: bool = False, **kwargs: object) -> tuple[int, str, str]:
    fds = kwargs.pop("fds", None)
    # A uid of its own per sandbox, as the daemon gives: RLIMIT_NPROC counts a uid's
    # processes system-wide, and a fork loop's are reaped a little after bwrap exits.
    run_as = None if root else (next(SANDBOX_UIDS), 65534)
    argv = compartment_argv("bwrap", probe, args, limits, run_as=run_as, confine_tool=tool, **kwargs)
    return spawn(argv, fds=fds)  # type: ignore[arg-type]


@needs_bwrap
@needs_root
def test_real_bwrap_hello_and_hidden_paths(probe: str, tool: str | None, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ca.key").write_text("secret")
    rc, out, err = run_in_compartment(tool, probe, ["stat", "/root", str(state), str(state / "ca.key"), "/etc/passwd",
                                              "/var", "/home", "/run/compartment/program", "/usr/bin"])
    assert rc == 0, err
    seen = dict(line.rsplit(" ", 1) for line in out.splitlines())
    for hidden in ("/root", str(state), str(state / "ca.key"), "/etc/passwd", "/var", "/home"):
        assert seen[hidden] == str(errno.ENOENT), (hidden, out)
    assert seen["/run/compartment/program"] == "0" and seen["/usr/bin"] == "0"
    # Also when the daemon does not drop privileges: uid inside is still 65534.
    rc, out, err = run_in_compartment(tool, probe, ["hello"], root=True)
    assert (rc, out) == (0, "hello uid=65534 fd=3\n"), err


@needs_bwrap
@needs_root
def test_real_bwrap_read_only_filesystem(probe: str, tool: str | None) -> None:
    rc, out, _ = run_in_compartment(tool, probe, ["write", "/x"])
    assert out == f"write {errno.EROFS}\n"
    rc, out, _ = run_in_compartment(tool, probe, ["write", "/usr/x"])
    assert out == f"write {errno.EROFS}\n"
    rc, out, _ = run_in_compartment(tool, probe, ["write", "/tmp/x"])
    assert out == "write 0\n"


@needs_bwrap
@needs_root
def test_real_bwrap_no_network(probe: str, tool: str | None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        rc, out, err = run_in_compartment(tool, probe, ["connect", str(port)])
        assert rc == 0, err
        code = int(out.split()[1])
        assert code in (errno.ENETUNREACH, errno.ECONNREFUSED, errno.EACCES, errno.EPERM), out
        with pytest.raises(BlockingIOError):
            listener.accept()
    # Unconfined, the same program reaches the listener: the test itself is sound.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        rc, out, _ = spawn(none_run_argv(probe, ["connect", str(listener.getsockname()[1])]))
        assert out == "connect 0\n"


@needs_bwrap
@needs_root
def test_real_bwrap_control_fd3(probe: str, tool: str | None) -> None:
    parent, child = socket.socketpair()
    with parent, child:
        parent.sendall(b"pong")
        rc, out, err = run_in_compartment(tool, probe, ["fd3"], fds={3: child.fileno()})
        assert (rc, out) == (0, "got pong\n"), err
        assert parent.recv(16) == b"ping"


@needs_bwrap
@needs_root
def test_real_bwrap_program_fd_and_json_status(probe: str, tool: str | None, tmp_path: Path) -> None:
    private = tmp_path / "store"  # under pytest's 0700 base: unreachable for uid 65534
    private.mkdir()
    shutil.copy(probe, private / "prog")
    rc, _, err = run_in_compartment(tool, str(private / "prog"), ["hello"])
    assert rc != 0 and "Permission denied" in err  # a path bind needs a reachable path ...
    prog_fd = os.open(private / "prog", os.O_RDONLY | os.O_CLOEXEC)  # ... a descriptor does not
    status_r, status_w = os.pipe()
    try:
        rc, out, err = run_in_compartment(tool, None, ["hello"], program_fd=5,
                                          json_status_fd=4, fds={5: prog_fd, 4: status_w})
    finally:
        os.close(prog_fd)
        os.close(status_w)
    with os.fdopen(status_r, "rb") as fh:
        status = fh.read().decode()
    assert (rc, out) == (0, "hello uid=65534 fd=3\n"), err
    docs = [json.loads(line) for line in status.splitlines() if line.strip()]
    assert any("child-pid" in d for d in docs) and {"exit-code": 0} in [
        {k: v for k, v in d.items() if k == "exit-code"} for d in docs]


@needs_bwrap
@needs_root
def test_real_bwrap_nproc_limit_stops_fork_loop(probe: str, tool: str | None) -> None:
    limits = Limits(cpu_s=5, memory_mb=256, wall_s=10, output_kb=64, nproc=16)
    rc, out, err = run_in_compartment(tool, probe, ["fork"], limits=limits)
    assert rc == 0, err
    assert out.startswith("fork failed after "), out
    # bwrap's own processes (and any other process of uid 65534) count too: the loop gets
    # fewer than 16 forks. The forked children die with the pid namespace.
    assert int(out.split()[3]) < 16 and out.split()[5] == str(errno.EAGAIN)


@needs_bwrap
@needs_root
def test_real_bwrap_memory_and_cpu_limits(probe: str, tool: str | None) -> None:
    limits = Limits(cpu_s=1, memory_mb=64, wall_s=10, output_kb=64)
    rc, out, _ = run_in_compartment(tool, probe, ["mem", "256"], limits=limits)
    assert out == "malloc failed\n"
    rc, out, _ = run_in_compartment(tool, probe, ["mem", "8"], limits=limits)
    assert out == "malloc ok\n"
    start = time.monotonic()
    rc, _, _ = run_in_compartment(tool, probe, ["spin"], limits=limits)
    assert rc != 0 and time.monotonic() - start < 5  # killed by RLIMIT_CPU, not the test's timeout


@needs_bwrap
def test_real_compile_sandbox(tmp_path: Path) -> None:
    """gcc inside the compile sandbox: /src read-only, /out written, reproducible."""
    from attestables.daemon.builds.toolchains import detect_toolchains

    tc = detect_toolchains()["native"]
    if not tc.available:
        pytest.skip("no native compiler")
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "main.c").write_text('#include <stdio.h>\nint main(void){puts(__DATE__);return 0;}\n')
    compile_argv = tc.compile_argv(["/src/main.c"], "/out/prog", flags=["-g"])
    limits = Limits(cpu_s=30, memory_mb=2048, wall_s=30, output_kb=256)
    digests = []
    for _ in range(2):
        argv = prlimit_argv(limits) + bwrap_compile_argv(compile_argv, source_dir_host=str(src),
                                                          output_dir_host=str(out))
        rc, _, err = spawn(argv, timeout=30)
        assert rc == 0, err
        digests.append((out / "prog").read_bytes())
        (out / "prog").unlink()
    assert digests[0] == digests[1]  # same source, same flags: the same bytes
    assert not (src / "prog").exists()
