"""The `attestables` command against a real daemon, as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES


def cli(daemon, *args: str, token: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTABLES_")}
    env["ATTESTABLES_URL"] = daemon.url
    env["ATTESTABLES_TOKEN"] = token if token is not None else daemon.token
    return subprocess.run([sys.executable, "-m", "attestables.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_help_and_version():
    out = subprocess.run([sys.executable, "-m", "attestables.cli.main", "--help"], capture_output=True, text=True)
    for command in ("daemon", "info", "sources", "build", "run", "ps", "stop", "logs", "demo"):
        assert command in out.stdout
    version = subprocess.run([sys.executable, "-m", "attestables.cli.main", "--version"], capture_output=True,
                             text=True)
    assert version.stdout.startswith("attestables ")


def test_upload_build_run_follow_exit_codes(daemon, tmp_path: Path):
    up = cli(daemon, "sources", "upload", str(EXAMPLES / "hello.c"), "--json")
    assert up.returncode == 0, up.stderr
    source_id = json.loads(up.stdout)["source_id"]

    build = cli(daemon, "build", source_id, "--follow")
    assert build.returncode == 0, build.stderr
    assert "succeeded" in build.stdout
    build_id = json.loads(cli(daemon, "builds", "--json").stdout)["builds"][0]["build_id"]

    run = cli(daemon, "run", build_id, "--follow")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("hello from a compartment\n")

    ps = cli(daemon, "ps")
    assert ps.returncode == 0 and "exited" in ps.stdout

    code = tmp_path / "exit42.c"
    code.write_text('#include <stdio.h>\nint main(int c, char **v) { fprintf(stderr, "err %s\\n", v[1]);'
                    ' return 42; }\n')
    source_id = json.loads(cli(daemon, "sources", "upload", str(code), "--json").stdout)["source_id"]
    cli(daemon, "build", source_id, "--follow")
    build_id = json.loads(cli(daemon, "builds", "--json").stdout)["builds"][0]["build_id"]
    run = cli(daemon, "run", build_id, "--follow", "--", "--literal")
    assert run.returncode == 42  # the program's own exit code
    assert "err --literal" in run.stderr  # its stderr goes to ours


def test_failed_build_prints_diagnostics_and_exits_1(daemon, tmp_path: Path):
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) {\n  return nope;\n}\n")
    source_id = json.loads(cli(daemon, "sources", "upload", str(bad), "--json").stdout)["source_id"]
    build = cli(daemon, "build", source_id, "--follow")
    assert build.returncode == 1
    assert "bad.c:2:" in build.stdout + build.stderr and "nope" in build.stdout + build.stderr


def test_errors_are_one_line_without_traceback(daemon):
    missing = cli(daemon, "stop", "r_doesnotexist")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and "(not_found)" in missing.stderr
    assert "Traceback" not in missing.stderr
    refused = cli(daemon, "info", token="w" * 43)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    unreachable = subprocess.run([sys.executable, "-m", "attestables.cli.main", "info", "--url",
                                  "ws://127.0.0.1:9/api/v1/ws", "--token-file", "/dev/null"],
                                 capture_output=True, text=True)
    assert unreachable.returncode == 3 and "Traceback" not in unreachable.stderr


@pytest.mark.parametrize("args", [["sources", "upload", "/etc/hostname", "--name", "../x.c"],
                                  ["sources", "upload", "/nonexistent.c"]])
def test_bad_uploads_fail_cleanly(daemon, args):
    result = cli(daemon, *args)
    assert result.returncode in {1, 2}
    assert result.stderr.startswith("error") or "usage" in result.stderr
    assert "Traceback" not in result.stderr
