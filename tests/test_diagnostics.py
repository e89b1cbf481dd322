"""Compiler and linker diagnostics (daemon/builds/diagnostics.py), from the real gcc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from attestables.daemon.builds.diagnostics import Diagnostic, parse_diagnostics
from attestables.daemon.builds.toolchains import detect_toolchains

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def compile_log(tmp_path: Path, files: dict[str, str], *, flags: list[str] = (), extra: list[str] = ()) -> list[str]:
    """Compile with the native toolchain's real command line; return stderr lines."""
    native = detect_toolchains()["native"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    sources = [str(tmp_path / n) for n in files if n.endswith(".c")]
    argv = native.compile_argv(sources, str(tmp_path / "prog"), flags=list(flags)) + list(extra)
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin",
                                                                                     "LC_ALL": "C"})
    return proc.stderr.splitlines()


def D(file, line, col, sev, msg, origin="compiler", option=None) -> Diagnostic:
    return Diagnostic(file=file, line=line, column=col, severity=sev, message=msg, origin=origin, option=option)


@needs_gcc
def test_real_gcc_compile_errors(tmp_path: Path) -> None:
    lines = compile_log(tmp_path, {
        "inc.h": "static int f(int x) { return y; }\n",
        "main.c": '#include "inc.h"\n#include <stdio.h>\nint main(void) {\n    int unused;\n'
                  '    undeclared = 3;\n    printf("%d\\n", "x");\n    return 0\n}\n',
    })
    diags = parse_diagnostics(lines, source_map={f"{tmp_path}/": ""})
    # The first real diagnostics, in order; snippets, carets and context lines are ignored.
    assert diags[0] == D("inc.h", 1, 30, "error", "'y' undeclared (first use in this function)")
    assert diags[1].severity == "note" and diags[1].file == "inc.h"
    assert diags[2] == D("inc.h", 1, 18, "warning", "unused parameter 'x'", option="-Wunused-parameter")
    assert D("main.c", 5, 5, "error", "'undeclared' undeclared (first use in this function)") in diags
    assert D("main.c", 7, 13, "error", "expected ';' before '}' token") in diags
    assert D("main.c", 4, 9, "warning", "unused variable 'unused'", option="-Wunused-variable") in diags
    fmt = [d for d in diags if d.option == "-Wformat="]
    assert len(fmt) == 1 and fmt[0].file == "main.c" and fmt[0].line == 6
    assert all(d.origin == "compiler" for d in diags)
    assert not any("In file included" in d.message or "In function" in d.message for d in diags)
    assert all(d.file in ("main.c", "inc.h") for d in diags)
    assert diags[0].to_dict() == {"file": "inc.h", "line": 1, "column": 30, "severity": "error",
                                  "message": "'y' undeclared (first use in this function)",
                                  "origin": "compiler", "option": None}


@needs_gcc
def test_real_gcc_fatal_error_and_werror(tmp_path: Path) -> None:
    diags = parse_diagnostics(compile_log(tmp_path, {"main.c": "#include <nonexistent.h>\nint main(void){return 0;}\n"}),
                              source_map={str(tmp_path / "main.c"): "main.c"})
    assert diags == [D("main.c", 1, 10, "error", "nonexistent.h: No such file or directory")]

    lines = compile_log(tmp_path, {"w.c": "int main(void){ int x = 1; return; }\n"}, extra=["-Werror"])
    diags = parse_diagnostics(lines, source_map={f"{tmp_path}/": ""})
    assert D("w.c", 1, 21, "error", "unused variable 'x'", option="-Werror=unused-variable") in diags
    assert diags[-1] == D(None, None, None, "note", "all warnings being treated as errors", origin="driver")


@needs_gcc
def test_real_gcc_preprocessor_error_and_warning(tmp_path: Path) -> None:
    diags = parse_diagnostics(compile_log(tmp_path, {"e.c": "int main(void){\n#error boom\n#warning hmm\nreturn 0;}\n"}),
                              source_map={f"{tmp_path}/": ""})
    assert diags == [D("e.c", 2, 2, "error", "#error boom"), D("e.c", 3, 2, "warning", "#warning hmm", option="-Wcpp")]


@needs_gcc
def test_real_linker_errors(tmp_path: Path) -> None:
    files = {"main.c": "void foo(void);\nint main(void) { foo(); return 0; }\n"}
    smap = {f"{tmp_path}/": ""}
    # Without -g GNU ld names a section offset; with -g it names the source line.
    diags = parse_diagnostics(compile_log(tmp_path, files), source_map=smap)
    assert diags[0] == D("main.c", None, None, "error", "undefined reference to `foo'", origin="linker")
    assert diags[-1] == D(None, None, None, "error", "ld returned 1 exit status", origin="linker")
    diags = parse_diagnostics(compile_log(tmp_path, files, flags=["-g"]), source_map=smap)
    assert diags[0] == D("main.c", 2, None, "error", "undefined reference to `foo'", origin="linker")

    diags = parse_diagnostics(compile_log(tmp_path, {"a.c": "void foo(void){}\n",
                                                     "b.c": "void foo(void){}\nint main(void){return 0;}\n"}),
                              source_map=smap)
    assert diags[0].origin == "linker" and diags[0].file == "b.c"
    assert diags[0].message.startswith("multiple definition of `foo'")


@needs_gcc
def test_real_missing_library_and_bad_option(tmp_path: Path) -> None:
    native = detect_toolchains()["native"]
    (tmp_path / "m.c").write_text("int main(void){return 0;}\n")
    argv = native.compile_argv([str(tmp_path / "m.c")], str(tmp_path / "p"), libs=["nosuchlib"])
    err = subprocess.run(argv, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}).stderr
    diags = parse_diagnostics(err.splitlines())
    assert diags[0] == D(None, None, None, "error", "cannot find -lnosuchlib: No such file or directory",
                         origin="linker")
    err = subprocess.run(["gcc", "-fno-such-flag", str(tmp_path / "m.c")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}).stderr
    (diag,) = parse_diagnostics(err.splitlines())
    assert diag.origin == "driver" and diag.severity == "error" and diag.file is None
    assert diag.message.startswith("unrecognized command-line option '-fno-such-flag'")


CLANG_LOG = """\
/src/main.c:3:5: error: use of undeclared identifier 'x'
    x = 1;
    ^
/src/main.c:2:9: warning: unused variable 'y' [-Wunused-variable]
    int y;
        ^
/runtime/attestables.h:10:1: note: previous definition is here
/src/main.c:7:1: fatal error: 'missing.h' file not found
#include "missing.h"
^~~~~~~~~~~~~~~~~~~~
/src/main.c:9:3: remark: loop vectorized
2 warnings and 2 errors generated.
clang: error: no such file or directory: '/src/other.c'
clang-morello: warning: argument unused during compilation: '-fuse-ld=lld' [-Wunused-command-line-argument]
"""

LLD_LOG = """\
ld: error: undefined symbol: channel_send
>>> referenced by main.c:12 (/src/main.c:12)
>>>               /tmp/main-3f2a1b.o:(main)
ld.lld: error: undefined symbol: helper
>>> referenced by lib.c
>>>               /tmp/lib-1.o:(f)
ld: warning: /usr/lib/libfoo.so: unused
clang: error: linker command failed with exit code 1 (use -v to see invocation)
"""


def test_clang_format() -> None:
    smap = {"/src/main.c": "main.c", "/runtime/": "runtime/"}
    diags = parse_diagnostics(CLANG_LOG.splitlines(), source_map=smap)
    assert diags == [
        D("main.c", 3, 5, "error", "use of undeclared identifier 'x'"),
        D("main.c", 2, 9, "warning", "unused variable 'y'", option="-Wunused-variable"),
        D("runtime/attestables.h", 10, 1, "note", "previous definition is here"),
        D("main.c", 7, 1, "error", "'missing.h' file not found"),
        D("main.c", 9, 3, "note", "loop vectorized"),
        D(None, None, None, "error", "no such file or directory: '/src/other.c'", origin="driver"),
        D(None, None, None, "warning", "argument unused during compilation: '-fuse-ld=lld'", origin="driver",
          option="-Wunused-command-line-argument"),
    ]


def test_lld_format() -> None:
    diags = parse_diagnostics(LLD_LOG.splitlines(), source_map={"/src/main.c": "main.c"})
    assert diags == [
        D("main.c", 12, None, "error", "undefined symbol: channel_send", origin="linker"),
        D(None, None, None, "error", "undefined symbol: helper", origin="linker"),
        D(None, None, None, "warning", "/usr/lib/libfoo.so: unused", origin="linker"),
        D(None, None, None, "error", "linker command failed with exit code 1 (use -v to see invocation)",
          origin="driver"),
    ]


def test_gnu_as_and_misc_lines() -> None:
    lines = [
        "/tmp/ccAbc.s: Assembler messages:",
        "/tmp/ccAbc.s:12: Error: unknown mnemonic `foo' -- `foo x0'",
        "/tmp/ccAbc.s:13: Warning: something odd",
        "In file included from /src/main.c:1:",
        "                 from /src/b.h:2,",
        "compilation terminated.",
        "1 error generated.",
        "random text that is not a diagnostic",
        "main.c:(.text+0x5): ordinary text without linker keywords",
        "",
    ]
    assert parse_diagnostics(lines) == [
        D(None, 12, None, "error", "unknown mnemonic `foo' -- `foo x0'"),
        D(None, 13, None, "warning", "something odd"),
    ]


def test_cap_and_long_lines() -> None:
    lines = [f"/src/m.c:{i}:1: warning: w{i}" for i in range(1, 1000)]
    diags = parse_diagnostics(lines)
    assert len(diags) == 200 and diags[-1].line == 200
    assert len(parse_diagnostics(lines, limit=3)) == 3
    (long_diag,) = parse_diagnostics(["/src/m.c:1:1: error: " + "x" * 50_000])
    assert len(long_diag.message) == 1000


def test_unmapped_paths_kept() -> None:
    (d,) = parse_diagnostics(["/usr/include/stdio.h:5:1: note: here"], source_map={"/src/main.c": "main.c"})
    assert d.file == "/usr/include/stdio.h"
