"""``attestables-confine`` (daemon/sandbox/confine.c), built and run for real.

What the process it starts looks like is read from ``/proc/self/status`` and
``/proc/self/limits`` of that process (``cat``), so every claim in confine.c's header is
checked from the outside: limits, uids, groups, every capability set, no_new_privs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from attestables.daemon.sandbox import confine_tool
from attestables.daemon.sandbox.argv import Limits, confine_tool_argv
from attestables.daemon.sandbox.host import SandboxHost

LIMITS = Limits(cpu_s=7, memory_mb=300, wall_s=10, output_kb=64, nofile=99, nproc=33, tmp_mb=5)
MIB = 1024 * 1024
USER = (1879000123, 65534)  # in no account's range, like the daemon's sandbox uids
CC = shutil.which("cc") or shutil.which("gcc")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> str:
    if CC is None:
        pytest.skip("no C compiler")
    return str(confine_tool.build(tmp_path_factory.mktemp("confine"), compiler=CC))


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def status_of(tool: str, run_as: tuple[int, int] | None) -> tuple[dict[str, str], str]:
    """(/proc/self/status fields, /proc/self/limits) of a process the tool started."""
    proc = run([*confine_tool_argv(tool, LIMITS, run_as), "/bin/sh", "-c",
                "cat /proc/self/status; echo ==; cat /proc/self/limits"])
    assert proc.returncode == 0, proc.stderr
    status, _, limits = proc.stdout.partition("==\n")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {k: v.strip() for k, v in fields.items()}, limits


def limit_row(limits: str, name: str) -> tuple[str, str]:
    for line in limits.splitlines():
        if line.startswith(name):
            soft, hard = line[len(name):].split()[:2]
            return soft, hard
    raise AssertionError(f"{name} not in {limits}")


def test_source_compiles_cleanly_with_every_warning(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    proc = run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-Wshadow", "-fsyntax-only",
                str(confine_tool.SOURCE)])
    assert proc.returncode == 0, proc.stderr


def test_sets_every_limit_and_no_new_privs(tool: str) -> None:
    fields, limits = status_of(tool, None)
    assert limit_row(limits, "Max cpu time") == ("7", "8")
    assert limit_row(limits, "Max address space") == (str(300 * MIB),) * 2
    assert limit_row(limits, "Max open files") == ("99", "99")
    assert limit_row(limits, "Max processes") == ("33", "33")
    assert limit_row(limits, "Max core file size") == ("0", "0")
    assert limit_row(limits, "Max file size") == (str(5 * MIB),) * 2
    assert fields["NoNewPrivs"] == "1"


@needs_root
def test_drops_to_the_user_with_nothing_left_of_root(tool: str) -> None:
    fields, limits = status_of(tool, USER)
    uid, gid = map(str, USER)
    assert fields["Uid"].split() == [uid] * 4 and fields["Gid"].split() == [gid] * 4
    assert fields["Groups"] == ""
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[caps], 16) == 0, (caps, fields[caps])
    assert fields["NoNewPrivs"] == "1"
    # Limits set while root stay, above what the uid could set for itself.
    assert limit_row(limits, "Max processes") == ("33", "33")


@needs_root
def test_the_uid_cannot_climb_back(tool: str) -> None:
    # A set-uid root copy of a shell would give root back without no_new_privs.
    proc = run([*confine_tool_argv(tool, LIMITS, USER), "/usr/bin/python3", "-c",
                "import os\ntry:\n os.setuid(0)\nexcept PermissionError:\n print('refused')"])
    assert (proc.returncode, proc.stdout) == (0, "refused\n"), proc.stderr


@pytest.mark.parametrize("change, message", [
    (lambda a: [x for x in a if not x.startswith("--nproc=")], "--nproc is required"),
    (lambda a: [*a[:2], a[1], *a[2:]], "--cpu must be given once"),
    (lambda a: [a[0], "--cpu=8:7", *a[2:]], "SOFT <= HARD"),
    (lambda a: [a[0], "--cpu=-1:7", *a[2:]], "--cpu must be given once"),
    (lambda a: [a[0], "--cpu=07:8", *a[2:]], "--cpu must be given once"),
    (lambda a: [a[0], "--cpu=1:2:3", *a[2:]], "--cpu must be given once"),
    (lambda a: [a[0], "--cpu=99999999999999999999:99999999999999999999", *a[2:]], "--cpu must be given once"),
    (lambda a: [a[0], "--cpu= 1:2", *a[2:]], "--cpu must be given once"),
    (lambda a: [a[0], "--cpus=1:2", *a[1:]], "unknown argument '--cpus=1:2'"),
    (lambda a: [*a[:-1], "--user=0:5", "--"], "unprivileged uid"),
    (lambda a: [*a[:-1], "--user=5:0", "--"], "unprivileged uid"),
    (lambda a: [*a[:-1], "--user=5", "--"], "--user must be given once"),
    (lambda a: [*a[:-1], "--user=5:5", "--user=6:6", "--"], "--user must be given once"),
    (lambda a: [*a[:-1], "--user=4294967295:5", "--"], "unprivileged uid"),
    (lambda a: a[:-1], "unknown argument '/usr/bin/touch'"),  # no "--": nothing is a program
])
def test_refuses_malformed_command_lines_before_running_anything(tool: str, change, message: str,
                                                                  tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = change(confine_tool_argv(tool, LIMITS)) + ["/usr/bin/touch", str(marker)]
    proc = run(argv)
    assert proc.returncode == 125 and message in proc.stderr, (argv, proc.stderr)
    assert not marker.exists()


def test_refuses_a_relative_program_and_reports_a_missing_one(tool: str) -> None:
    proc = run(confine_tool_argv(tool, LIMITS))
    assert proc.returncode == 125 and "usage" in proc.stderr
    proc = run([*confine_tool_argv(tool, LIMITS), "true"])
    assert proc.returncode == 125 and "absolute" in proc.stderr
    proc = run([*confine_tool_argv(tool, LIMITS), "/nonexistent/program"])
    assert proc.returncode == 127 and "cannot run /nonexistent/program" in proc.stderr


def test_a_limit_it_may_not_raise_fails_closed(tool: str) -> None:
    # Lower this process's own hard limit first (as the shell's ulimit does): the tool may
    # not raise it back unless privileged, and must say so rather than run anyway.
    # root may raise hard limits (CAP_SYS_RESOURCE): as root, the check runs as USER, from
    # a directory that uid can reach (pytest's own is 0700).
    shared = Path(tempfile.mkdtemp(prefix="attestables-confine-"))
    try:
        shared.chmod(0o777)
        copy = shared / confine_tool.NAME
        shutil.copy(tool, copy)
        copy.chmod(0o755)
        marker = shared / "ran"
        script = 'ulimit -n 50 && exec "$@"'
        argv = ["/bin/sh", "-c", script, "sh", *confine_tool_argv(str(copy), LIMITS, None), "/usr/bin/touch",
                str(marker)]
        if os.geteuid() == 0:
            argv = ["/usr/bin/setpriv", f"--reuid={USER[0]}", f"--regid={USER[1]}", "--clear-groups", *argv]
        proc = run(argv)
        assert proc.returncode == 125 and "setting --nofile" in proc.stderr, proc.stderr
        assert not marker.exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


async def test_the_host_builds_it_in_the_background_and_falls_back_when_it_cannot(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if CC is None:
        pytest.skip("no C compiler")
    host = SandboxHost(uid_base=USER[0], uid_count=16, gid=USER[1])
    assert await host.ready() is None  # nothing prepared: the util-linux head
    host.prepare(tmp_path / "bin", CC)
    path = await host.ready()
    assert path == str(tmp_path / "bin" / confine_tool.NAME)
    assert (os.stat(path).st_mode & 0o777) == 0o500
    assert not list((tmp_path / "bin").glob(".*.tmp"))

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    broken = SandboxHost(uid_base=USER[0], uid_count=16, gid=USER[1])
    with caplog.at_level(logging.WARNING):
        broken.prepare(blocked / "bin", CC)
        assert await asyncio.wait_for(broken.ready(), 60) is None
    assert "sandboxes start with prlimit" in caplog.text


def test_with_the_helper_the_host_needs_no_util_linux_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attestables.daemon.sandbox import host as host_module

    monkeypatch.setattr(host_module, "PRLIMIT", str(tmp_path / "no-prlimit"))
    monkeypatch.setattr(host_module, "SETPRIV", str(tmp_path / "no-setpriv"))
    host = SandboxHost(uid_base=USER[0], uid_count=16, gid=USER[1])
    expected = ["prlimit", "setpriv"] if os.geteuid() == 0 else ["prlimit"]
    assert host.missing() == expected  # the fallback head would be needed, and is absent
    host.confine_tool = "/w/bin/attestables-confine"
    assert host.missing() == []  # bwrap alone (installed here) and the helper


def test_without_a_native_compiler_there_is_no_helper_and_the_reason_says_so(tmp_path: Path) -> None:
    with pytest.raises(confine_tool.ConfineToolError, match="no native C compiler"):
        confine_tool.build(tmp_path, compiler=None)
    assert not (tmp_path / confine_tool.NAME).exists()
