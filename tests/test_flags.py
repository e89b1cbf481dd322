"""The compiler flag allow-list (daemon/builds/flags.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from attestables.daemon.builds.flags import MAX_FLAGS, optimisation_level, validate_flags
from attestables.shared.errors import InvalidParams


@pytest.mark.parametrize("flags", [
    [],
    ["-O0"], ["-O1"], ["-O2"], ["-O3"], ["-Os"], ["-Og"], ["-Oz"],
    ["-g"],
    ["-DNDEBUG"],
    ["-DDEBUG=1"],
    ["-D_GNU_SOURCE"],
    ["-D_POSIX_C_SOURCE=200809L"],
    ["-DVERSION=1.2.3-rc+4"],
    ["-DEMPTY="],
    ["-DX=-1"],
    ["-D" + "A" * 64 + "=" + "v" * 128],
    ["-O3", "-g", "-DA", "-DB=2"],
])
def test_allowed(flags: list[str]) -> None:
    assert validate_flags(flags) == flags
    assert validate_flags(tuple(flags)) == flags


def test_none_means_no_flags() -> None:
    assert validate_flags(None) == []


@pytest.mark.parametrize("flag", [
    "-o", "-o/tmp/x", "-I/", "-I", "-isystem", "-include", "-imacros", "@file", "@/etc/passwd",
    "-fplugin=/tmp/evil.so", "-B/tmp", "-B", "-specs=/tmp/s", "--specs=x", "-wrapper", "-wrapper=gdb",
    "--sysroot=/", "--sysroot", "-Wl,-rpath,/tmp", "-Wl,--dynamic-linker=/x", "-Xlinker", "-x", "-xc",
    "-D", "-D=1", "-D1X", "-DX Y", "-DX=a b", "-DX=\"q\"", "-DX='q'", "-DX=$HOME", "-DX=`id`", "-DX=a=b",
    "-DX=(1)", "-DX=a;b", "-DX=\n", "-DX\n", "-D" + "A" * 65, "-DX=" + "v" * 129,
    "-Ofast", "-O", "-O4", "-O-1", "-g3", "-ggdb", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=0",
    "-D__CHERI_PURE_CAPABILITY__", "-D__x86_64__=1", "-fno-stack-protector", "-static", "-shared",
    "-save-temps", "-MF/tmp/x", "-dumpdir", "-v", "-###", "--help", "-print-prog-name=ld", "", " -O2", "-O2 ",
    "-march=native", "-fsanitize=address", "-lfoo", "-L/",
])
def test_refused(flag: str) -> None:
    with pytest.raises(InvalidParams) as info:
        validate_flags([flag])
    assert info.value.data["field"] == "flags"
    if len(flag) <= 80:
        assert repr(flag) in info.value.message


@pytest.mark.parametrize("flags", [
    "-O2",  # a string, not a list
    b"-O2",
    {"-O2": 1},
    [1],
    [None],
    [["-O2"]],
    [b"-O2"],
    42,
])
def test_refuses_non_lists_and_non_strings(flags: object) -> None:
    with pytest.raises(InvalidParams):
        validate_flags(flags)


def test_duplicates_refused() -> None:
    for flags in (["-O2", "-O3"], ["-O2", "-O2"], ["-g", "-g"], ["-DA", "-DA=1"], ["-DA=1", "-DA=2"]):
        with pytest.raises(InvalidParams):
            validate_flags(flags)


def test_count_limit() -> None:
    flags = [f"-DM{i}" for i in range(MAX_FLAGS)]
    assert validate_flags(flags) == flags
    with pytest.raises(InvalidParams, match="too many flags"):
        validate_flags(flags + ["-g"])


def test_error_names_the_flag() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_flags(["-O2", "-g", "-fplugin=/x.so"])
    assert "'-fplugin=/x.so'" in info.value.message and info.value.data["flag"] == "-fplugin=/x.so"
    assert info.value.to_wire()["data"]["code"] == "invalid_params"


def test_optimisation_level() -> None:
    assert optimisation_level(["-g", "-Os"]) == "-Os"
    assert optimisation_level(["-g"]) is None


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.text(max_size=40), max_size=40))
def test_fuzz_only_invalid_params(flags: list[str]) -> None:
    try:
        out = validate_flags(flags)
    except InvalidParams:
        return
    # Whatever passes is one of the three allowed shapes.
    for flag in out:
        assert flag == "-g" or flag[:2] in ("-O", "-D")
        assert not any(c in flag for c in " \t\n\"'$`;()\\/@")
