"""Toolchain detection and command lines (daemon/builds/toolchains.py)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Sequence

import pytest

from attestables.daemon.builds.elf import read_elf_facts
from attestables.daemon.builds.toolchains import (
    CHERIBUILD_SDK,
    MORELLO_HYBRID,
    MORELLO_PURECAP,
    NATIVE,
    TOOLCHAIN_NAMES,
    HostInfo,
    Toolchain,
    compiler_family,
    current_host,
    detect_toolchains,
    run_probe,
)
from attestables.shared.errors import InvalidParams, Unavailable

BASE = ["-std=c11", "-Wall", "-Wextra", "-fdiagnostics-color=never", "-fstack-protector-strong"]
CHERIBSD_PURECAP = HostInfo(system="FreeBSD", machine="arm64", processor="aarch64c")
CHERIBSD_HYBRID = HostInfo(system="FreeBSD", machine="arm64", processor="aarch64")
LINUX = HostInfo(system="Linux", machine="x86_64")
MORELLO_VERSION = "clang version 14.0.0 (https://git.morello-project.org/morello/llvm-project.git)\nTarget: aarch64c-unknown-freebsd\n"


class FakeRun:
    """Stands in for running compilers that do not exist on this machine."""

    def __init__(self, version: str = MORELLO_VERSION, macros: str | None = "#define __CHERI_PURE_CAPABILITY__ 2\n",
                 hybrid_ok: bool = True) -> None:
        self.version = version
        self.macros = macros
        self.hybrid_ok = hybrid_ok
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> str | None:
        assert timeout == 5.0
        argv = list(argv)
        self.calls.append(argv)
        if argv[1:] == ["--version"]:
            return self.version
        if "-dM" in argv:
            if "-mabi=purecap" in argv:
                return self.macros
            return "#define __aarch64__ 1\n" if self.hybrid_ok else None
        return None


def fake_which(found: dict[str, str]):
    return lambda name: found.get(name)


# -- the real host ---------------------------------------------------------------------


def test_native_detection_runs_the_real_compiler() -> None:
    """No fakes: `cc --version` and `cc -dumpmachine` really run."""
    tcs = detect_toolchains()
    assert list(tcs) == list(TOOLCHAIN_NAMES)
    native = tcs[NATIVE]
    assert native.available and native.abi == "native" and native.reason == ""
    expected = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert native.compiler == expected  # the PATH location, usable in the sandbox
    assert native.resolved == os.path.realpath(expected)
    out = subprocess.run([expected, "--version"], capture_output=True, text=True, check=True).stdout
    assert native.version == out.splitlines()[0].strip()
    assert native.family in ("gcc", "clang")
    assert native.target == subprocess.run([expected, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    if current_host().system == "Linux":
        for name in (MORELLO_PURECAP, MORELLO_HYBRID):
            assert not tcs[name].available and tcs[name].compiler is None and tcs[name].version == ""
            assert "CheriBSD" in tcs[name].reason
    assert not tcs[CHERIBUILD_SDK].available and tcs[CHERIBUILD_SDK].reason == "no SDK directory configured"


def test_native_compile_argv_builds_a_working_program(tmp_path: Path) -> None:
    native = detect_toolchains()[NATIVE]
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "greet.h").write_text('#define GREETING "hi"\n')
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "greet.h"\n'
        "int main(void) { printf(\"%s %d\\n\", GREETING, NUMBER); return 0; }\n")
    argv = native.compile_argv([str(tmp_path / "main.c")], str(tmp_path / "prog"),
                               include_dirs=[str(tmp_path / "inc")], flags=["-O1", "-g", "-DNUMBER=42"], libs=["m"])
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # the base flags are warning-free on a clean program
    assert subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True).stdout == "hi 42\n"
    facts = read_elf_facts(tmp_path / "prog")
    assert facts.type == "DYN" and not facts.purecap  # -fPIE -pie


def test_native_compile_argv_exact() -> None:
    tc = Toolchain(name=NATIVE, compiler="/usr/bin/cc", version="cc 12", available=True, abi="native",
                   target="x86_64-linux-gnu", family="gcc")
    assert tc.compile_argv(["/src/main.c"], "/out/prog", include_dirs=["/runtime"], flags=["-g", "-DX=1"],
                           libs=["ssl", "crypto"]) == [
        "/usr/bin/cc", *BASE, "-O2", "-D_FORTIFY_SOURCE=2", "-fPIE", "-g", "-DX=1", "-I", "/runtime",
        "/src/main.c", "-o", "/out/prog", "-pie", "-Wl,--as-needed", "-lssl", "-lcrypto",
    ]
    # The user's level replaces the default; -O0 drops _FORTIFY_SOURCE (glibc warns without -O).
    assert tc.compile_argv(["/src/a.c", "/src/b.c"], "/out/p", flags=["-O0"]) == [
        "/usr/bin/cc", *BASE, "-O0", "-fPIE", "/src/a.c", "/src/b.c", "-o", "/out/p", "-pie"]
    assert "-Os" in tc.compile_argv(["/src/a.c"], "/out/p", flags=["-Os"])
    assert "-O2" not in tc.compile_argv(["/src/a.c"], "/out/p", flags=["-Os"])


@pytest.mark.parametrize("kwargs", [
    {"flags": ["-o", "/etc/passwd"]},
    {"flags": ["-O2", "-O3"]},
    {"libs": ["-lfoo"]},
    {"libs": ["ssl crypto"]},
    {"libs": [""]},
    {"include_dirs": ["-I/"]},
    {"sources": ["-x"]},
    {"sources": []},
    {"output": "-o"},
])
def test_compile_argv_refuses(kwargs: dict) -> None:
    tc = Toolchain(name=NATIVE, compiler="/usr/bin/cc", version="", available=True, abi="native", target="")
    sources = kwargs.pop("sources", ["/src/main.c"])
    output = kwargs.pop("output", "/out/prog")
    with pytest.raises(InvalidParams):
        tc.compile_argv(sources, output, **kwargs)


def test_unavailable_toolchain_refuses_to_build() -> None:
    tc = detect_toolchains(host=LINUX, which=fake_which({}), run=FakeRun())[NATIVE]
    assert not tc.available and tc.reason == "no cc, gcc or clang on PATH"
    with pytest.raises(Unavailable):
        tc.compile_argv(["/src/main.c"], "/out/prog")


def test_identity_and_to_dict() -> None:
    native = detect_toolchains()[NATIVE]
    ident = native.identity()
    assert ident == {"name": NATIVE, "compiler": native.compiler, "resolved": native.resolved,
                     "version": native.version, "abi": "native", "target": native.target}
    argv = native.compile_argv(["/src/main.c"], "/out/prog")
    assert native.identity(argv)["argv"] == argv
    assert native.sandbox_paths() == () or not native.compiler.startswith("/usr/")
    info = native.to_dict()
    assert info["available"] is True and info["family"] == native.family and "reason" not in info


def test_run_probe_failures_and_timeout(tmp_path: Path) -> None:
    assert run_probe(["/nonexistent/cc", "--version"], 5.0) is None
    assert run_probe(["/bin/false"], 5.0) is None
    assert run_probe(["/bin/sleep", "5"], 0.1) is None
    assert run_probe(["/bin/echo", "x"], 5.0) == "x\n"


def test_compiler_family() -> None:
    assert compiler_family("FreeBSD clang version 14.0.5\n") == "clang"
    assert compiler_family("cc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n") == "gcc"
    assert compiler_family("tcc version 0.9.27\n") == "unknown"
    assert compiler_family(None) == "unknown"


# -- CheriBSD, described (not run on hardware) -----------------------------------------


def test_morello_purecap_and_hybrid_on_cheribsd() -> None:
    run = FakeRun()
    tcs = detect_toolchains(host=CHERIBSD_PURECAP, which=fake_which({"clang-morello": "/usr/local64/bin/clang-morello",
                                                                     "cc": "/usr/bin/cc"}), run=run)
    assert not tcs[NATIVE].available and "CheriABI" in tcs[NATIVE].reason
    pure, hybrid = tcs[MORELLO_PURECAP], tcs[MORELLO_HYBRID]
    assert pure.available and pure.compiler == "/usr/local64/bin/clang-morello" and pure.abi == "purecap"
    assert pure.version == "clang version 14.0.0 (https://git.morello-project.org/morello/llvm-project.git)"
    assert pure.target == "aarch64-unknown-freebsd" and pure.linker == "lld"
    assert pure.compile_argv(["/src/main.c"], "/out/prog", flags=["-g"], libs=["ssl", "crypto"]) == [
        "/usr/local64/bin/clang-morello", "-march=morello+c64", "-mabi=purecap", *BASE, "-O2",
        "-D_FORTIFY_SOURCE=2", "-fPIE", "-g", "/src/main.c", "-o", "/out/prog", "-pie",
        "-Wl,--as-needed", "-lssl", "-lcrypto",
    ]
    assert hybrid.available and hybrid.abi == "hybrid"
    assert hybrid.compile_argv(["/src/main.c"], "/out/prog") == [
        "/usr/local64/bin/clang-morello", "-march=morello", "-mabi=aapcs", *BASE, "-O2",
        "-D_FORTIFY_SOURCE=2", "-fPIE", "/src/main.c", "-o", "/out/prog", "-pie",
    ]
    # The purecap check really asked the compiler for its predefined macros.
    assert ["/usr/local64/bin/clang-morello", "-march=morello+c64", "-mabi=purecap", "-dM", "-E", "-x", "c",
            "/dev/null"] in run.calls


def test_morello_c18n_interpreter_for_old_releases() -> None:
    tcs = detect_toolchains(host=CHERIBSD_PURECAP, which=fake_which({"cc": "/usr/bin/cc"}), run=FakeRun(),
                            c18n_link=True)
    pure = tcs[MORELLO_PURECAP]
    assert pure.compiler == "/usr/bin/cc" and pure.c18n_interpreter == "/libexec/ld-elf-c18n.so.1"
    assert pure.compile_argv(["/src/main.c"], "/out/prog", flags=["-O0"]) == [
        "/usr/bin/cc", "-march=morello+c64", "-mabi=purecap", *BASE, "-O0", "-fPIE", "/src/main.c", "-o",
        "/out/prog", "-pie", "-Wl,--dynamic-linker=/libexec/ld-elf-c18n.so.1",
    ]
    assert pure.identity()["interpreter"] == "/libexec/ld-elf-c18n.so.1"
    assert tcs[MORELLO_HYBRID].c18n_interpreter is None
    with pytest.raises(InvalidParams):
        tcs[MORELLO_HYBRID].with_c18n_interpreter()


def test_morello_refused_where_it_cannot_work() -> None:
    which = fake_which({"cc": "/usr/bin/cc"})
    # Linux never offers morello-*, whatever is on PATH.
    tcs = detect_toolchains(host=LINUX, which=fake_which({"clang-morello": "/x/clang-morello"}), run=FakeRun())
    assert not tcs[MORELLO_PURECAP].available and not tcs[MORELLO_HYBRID].available
    # Plain FreeBSD/arm64: cc is clang but knows no Morello.
    tcs = detect_toolchains(host=CHERIBSD_HYBRID, which=which, run=FakeRun(macros=None, hybrid_ok=False))
    assert not tcs[MORELLO_PURECAP].available and "rejects" in tcs[MORELLO_PURECAP].reason
    assert not tcs[MORELLO_HYBRID].available
    assert tcs[NATIVE].available  # a hybrid world's cc is a native (non-CHERI) compiler
    # Accepts the flags but does not define __CHERI_PURE_CAPABILITY__.
    tcs = detect_toolchains(host=CHERIBSD_HYBRID, which=which, run=FakeRun(macros="#define __aarch64__ 1\n"))
    assert "does not produce purecap" in tcs[MORELLO_PURECAP].reason
    # gcc is not a Morello compiler.
    tcs = detect_toolchains(host=CHERIBSD_HYBRID, which=which, run=FakeRun(version="gcc (GCC) 13.2.0\n"))
    assert "is not clang" in tcs[MORELLO_PURECAP].reason
    # --version fails.
    tcs = detect_toolchains(host=CHERIBSD_HYBRID, which=which, run=lambda argv, timeout: None)
    assert "--version failed" in tcs[MORELLO_PURECAP].reason


def _fake_sdk(tmp_path: Path) -> Path:
    sdk = tmp_path / "output" / "morello-sdk"
    (sdk / "bin").mkdir(parents=True)
    clang = sdk / "bin" / "clang"
    clang.write_text("#!/bin/sh\nexit 1\n")
    clang.chmod(clang.stat().st_mode | stat.S_IXUSR)
    return sdk


def test_cheribuild_sdk(tmp_path: Path) -> None:
    sdk = _fake_sdk(tmp_path)
    # No sysroot anywhere yet.
    tc = detect_toolchains(sdk_dir=str(sdk), host=LINUX, run=FakeRun())[CHERIBUILD_SDK]
    assert not tc.available and "sysroot" in tc.reason
    # cheribuild's layout: the rootfs is a sibling of the SDK.
    rootfs = tmp_path / "output" / "rootfs-morello-purecap"
    rootfs.mkdir()
    tc = detect_toolchains(sdk_dir=str(sdk), host=LINUX, run=FakeRun())[CHERIBUILD_SDK]
    assert tc.available and tc.sysroot == str(rootfs) and tc.abi == "purecap"
    assert tc.compile_argv(["/src/main.c"], "/out/prog", include_dirs=["/runtime"]) == [
        str(sdk / "bin" / "clang"), "-target", "aarch64-unknown-freebsd", "-march=morello+c64", "-mabi=purecap",
        f"--sysroot={rootfs}", "-fuse-ld=lld", *BASE, "-O2", "-D_FORTIFY_SOURCE=2", "-fPIE", "-I", "/runtime",
        "/src/main.c", "-o", "/out/prog", "-pie",
    ]
    # Neither the SDK nor the rootfs is under /usr: the compile sandbox must bind them.
    assert tc.sandbox_paths() == (str(sdk), str(rootfs))
    # Inside the SDK wins; an explicit sysroot wins over both.
    inside = sdk / "rootfs-morello-purecap"
    inside.mkdir()
    assert detect_toolchains(sdk_dir=str(sdk), host=LINUX, run=FakeRun())[CHERIBUILD_SDK].sysroot == str(inside)
    custom = tmp_path / "custom-root"
    custom.mkdir()
    tc = detect_toolchains(sdk_dir=str(sdk), sdk_sysroot=str(custom), host=LINUX, run=FakeRun(),
                           c18n_link=True)[CHERIBUILD_SDK]
    assert f"--sysroot={custom}" in tc.target_flags and tc.c18n_interpreter == "/libexec/ld-elf-c18n.so.1"
    # No clang in the SDK.
    tc = detect_toolchains(sdk_dir=str(tmp_path / "nowhere"), host=LINUX, run=FakeRun())[CHERIBUILD_SDK]
    assert not tc.available and "bin/clang" in tc.reason
