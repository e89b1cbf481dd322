"""ELF facts (daemon/builds/elf.py): the real gcc output, crafted AArch64 files, garbage."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from attestables.daemon.builds.elf import EF_AARCH64_CHERI_PURECAP, MAX_PHNUM, ElfError, ElfFacts, read_elf_facts
from attestables.shared.errors import InvalidParams

PT_LOAD, PT_INTERP = 1, 3


def make_elf(
    *,
    machine: int = 183,
    flags: int = 0,
    entry: int = 0x10000,
    interp: bytes | None = None,
    etype: int = 3,
    is64: bool = True,
    big: bool = False,
    osabi: int = 9,
    extra_phdrs: int = 1,
) -> bytes:
    """A minimal ELF: header, program headers (PT_LOAD, optional PT_INTERP), the interp string."""
    end = ">" if big else "<"
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    phnum = extra_phdrs + (1 if interp is not None else 0)
    phoff = ehsize
    data_off = phoff + phnum * phentsize
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1, osabi]) + b"\0" * 8
    if is64:
        header = struct.pack(end + "HHIQQQIHHHHHH", etype, machine, 1, entry, phoff, 0, flags, ehsize,
                             phentsize, phnum, 64, 0, 0)
    else:
        header = struct.pack(end + "HHIIIIIHHHHHH", etype, machine, 1, entry, phoff, 0, flags, ehsize,
                             phentsize, phnum, 40, 0, 0)
    phdrs = b""
    for _ in range(extra_phdrs):
        if is64:
            phdrs += struct.pack(end + "IIQQQQQQ", PT_LOAD, 5, 0, 0, 0, 0x1000, 0x1000, 0x1000)
        else:
            phdrs += struct.pack(end + "IIIIIIII", PT_LOAD, 0, 0, 0, 0x1000, 0x1000, 5, 0x1000)
    if interp is not None:
        if is64:
            phdrs += struct.pack(end + "IIQQQQQQ", PT_INTERP, 4, data_off, 0, 0, len(interp), len(interp), 1)
        else:
            phdrs += struct.pack(end + "IIIIIIII", PT_INTERP, data_off, 0, 0, len(interp), len(interp), 4, 1)
    return ident + header + phdrs + (interp or b"")


def test_real_gcc_output(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    (tmp_path / "m.c").write_text("int main(void){return 0;}\n")
    subprocess.run(["gcc", "-o", str(tmp_path / "m"), str(tmp_path / "m.c")], check=True)
    facts = read_elf_facts(tmp_path / "m")
    assert facts == read_elf_facts(str(tmp_path / "m")) == read_elf_facts((tmp_path / "m").read_bytes())
    import platform

    if platform.machine() == "x86_64":
        assert facts.machine == "x86_64" and facts.e_machine == 62
        assert facts.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert facts.elf_class == 64 and facts.endianness == "little"
    assert facts.type == "DYN"  # Debian's gcc links PIE by default
    assert facts.purecap is False and facts.entry_c64 is False
    d = facts.to_dict()
    assert {"machine", "class", "purecap", "interpreter"} <= d.keys() and d["class"] == 64
    # Static, no PT_INTERP.
    proc = subprocess.run(["gcc", "-static", "-o", str(tmp_path / "s"), str(tmp_path / "m.c")], capture_output=True)
    if proc.returncode == 0:
        static = read_elf_facts(tmp_path / "s")
        assert static.interpreter is None and static.type == "EXEC"
    # An object file: REL, no program headers.
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / "m.o"), str(tmp_path / "m.c")], check=True)
    assert read_elf_facts(tmp_path / "m.o").type == "REL"


def test_aarch64_purecap_with_interpreter() -> None:
    facts = read_elf_facts(make_elf(flags=EF_AARCH64_CHERI_PURECAP, entry=0x10001, interp=b"/libexec/ld-elf.so.1\0"))
    assert facts == ElfFacts(machine="aarch64", e_machine=183, elf_class=64, endianness="little", type="DYN",
                             osabi="freebsd", entry=0x10001, e_flags=0x10000, purecap=True, entry_c64=True,
                             interpreter="/libexec/ld-elf.so.1")
    assert facts.to_dict()["purecap"] is True and facts.to_dict()["interpreter"] == "/libexec/ld-elf.so.1"


def test_aarch64_hybrid_and_c18n_interpreter() -> None:
    facts = read_elf_facts(make_elf(flags=0, entry=0x10000, interp=b"/libexec/ld-elf-c18n.so.1\0", etype=2))
    assert facts.machine == "aarch64" and not facts.purecap and not facts.entry_c64
    assert facts.interpreter == "/libexec/ld-elf-c18n.so.1" and facts.type == "EXEC"


def test_purecap_flag_only_counts_on_aarch64() -> None:
    facts = read_elf_facts(make_elf(machine=62, flags=EF_AARCH64_CHERI_PURECAP, entry=1))
    assert facts.machine == "x86_64" and not facts.purecap and not facts.entry_c64


def test_other_classes_and_orders() -> None:
    f32 = read_elf_facts(make_elf(machine=40, is64=False, interp=b"/lib/ld-linux.so.3\0", osabi=0))
    assert (f32.machine, f32.elf_class, f32.interpreter, f32.osabi) == ("arm", 32, "/lib/ld-linux.so.3", "sysv")
    big = read_elf_facts(make_elf(machine=22, big=True, interp=b"/lib/ld64.so.1"))  # no NUL: still read
    assert (big.machine, big.endianness, big.interpreter) == ("s390", "big", "/lib/ld64.so.1")
    unknown = read_elf_facts(make_elf(machine=4242, etype=99, osabi=77))
    assert (unknown.machine, unknown.type, unknown.osabi) == ("em_4242", "type_99", "osabi_77")


@pytest.mark.parametrize("data, message", [
    (b"", "outside the file"),
    (b"\x7fEL", "outside the file"),
    (b"MZ" + b"\0" * 100, "bad magic"),
    (make_elf()[:40], "outside the file"),
    (make_elf(interp=b"/libexec/ld-elf.so.1\0")[:-5], "PT_INTERP string"),
    (make_elf(interp=b"/x\0")[:100], "program header table"),
    (b"\x7fELF\x03\x01\x01" + b"\0" * 60, "bad ELF class"),
    (b"\x7fELF\x02\x03\x01" + b"\0" * 60, "byte order"),
    (b"\x7fELF\x02\x01\x02" + b"\0" * 60, "ELF version"),
    (make_elf(interp=b"\0"), "empty path"),
    (make_elf(interp=b""), "PT_INTERP size 0"),
    (make_elf(interp=b"/x\xff\0"), "UTF-8"),
    (make_elf(interp=b"/x\n\0"), "unprintable"),
])
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ElfError, match=message):
        read_elf_facts(data)


def test_hostile_headers() -> None:
    good = bytearray(make_elf(interp=b"/libexec/ld-elf.so.1\0"))
    # e_phnum huge, PN_XNUM, tiny e_phentsize, phoff past the end, two PT_INTERP.
    for offset, fmt, value, message in (
        (56, "<H", MAX_PHNUM + 1, "too many program headers"),
        (56, "<H", 0xFFFF, "PN_XNUM"),
        (54, "<H", 8, "entry size"),
        (32, "<Q", 2**63, "outside the file"),
    ):
        bad = bytearray(good)
        struct.pack_into(fmt, bad, offset, value)
        with pytest.raises(ElfError, match=message):
            read_elf_facts(bytes(bad))
    two = make_elf(interp=b"/a\0", extra_phdrs=0)
    # Duplicate the PT_INTERP header: phnum 2, second header = first.
    ph = two[64:120]
    dup = bytearray(two[:64] + ph + ph + b"/a\0")
    struct.pack_into("<H", dup, 56, 2)
    struct.pack_into("<Q", dup, 64 + 8, 64 + 112)
    struct.pack_into("<Q", dup, 120 + 8, 64 + 112)
    with pytest.raises(ElfError, match="more than one PT_INTERP"):
        read_elf_facts(bytes(dup))
    # PT_INTERP claiming a huge size.
    bad = bytearray(good)
    struct.pack_into("<Q", bad, 64 + 56 + 32, 10**9)
    with pytest.raises(ElfError, match="out of range"):
        read_elf_facts(bytes(bad))


def test_paths(tmp_path: Path) -> None:
    with pytest.raises(ElfError, match="cannot open"):
        read_elf_facts(tmp_path / "missing")
    with pytest.raises(ElfError, match="not a regular file"):
        read_elf_facts(tmp_path)
    (tmp_path / "short").write_bytes(make_elf(interp=b"/libexec/ld-elf.so.1\0")[:-4])
    with pytest.raises(ElfError, match="outside the file"):
        read_elf_facts(tmp_path / "short")


def test_error_types() -> None:
    with pytest.raises(InvalidParams):
        read_elf_facts(b"junk")
    with pytest.raises(ValueError):
        read_elf_facts(b"junk")
    try:
        read_elf_facts(b"junk")
    except ElfError as exc:
        assert exc.to_wire()["data"]["code"] == "invalid_params"


@settings(max_examples=400, deadline=None, database=None)
@given(st.binary(max_size=512))
def test_fuzz_garbage(data: bytes) -> None:
    try:
        read_elf_facts(data)
    except ElfError:
        pass


@settings(max_examples=300, deadline=None, database=None)
@given(st.data())
def test_fuzz_mutated_headers(data: st.DataObject) -> None:
    """Flip bytes and cut the tail of valid files: a result or ElfError, nothing else."""
    base = bytearray(data.draw(st.sampled_from([
        make_elf(flags=EF_AARCH64_CHERI_PURECAP, interp=b"/libexec/ld-elf.so.1\0"),
        make_elf(is64=False, interp=b"/lib/ld.so\0"),
        make_elf(big=True, interp=b"/lib/ld64.so.1\0", extra_phdrs=3),
    ])))
    for _ in range(data.draw(st.integers(0, 8))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    try:
        facts = read_elf_facts(bytes(base[:cut]))
    except ElfError:
        return
    assert facts.elf_class in (32, 64)
    assert facts.interpreter is None or (0 < len(facts.interpreter) <= 4096)
