"""The facts a measurement records about a built ELF file (DESIGN.md §7).

Machine, class, byte order, type, the run-time linker (``PT_INTERP``) and, for AArch64,
whether the file is CheriABI purecap (``e_flags & EF_AARCH64_CHERI_PURECAP``) and whether
the entry point is C64 code (low bit of ``e_entry`` set).

Pure ``struct``, no third-party parser. The input is treated as hostile: every offset
and size is checked against the file's length before it is read, the number of program
headers is capped, and anything malformed raises :class:`ElfError` (an ``InvalidParams``
that is also a ``ValueError``) with a message saying what is wrong, never ``IndexError``
or ``struct.error``. A path is read through one open file with ``pread`` at the needed
offsets only, so a huge artefact is not loaded into memory.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import Any, Literal

from attestables.shared.errors import InvalidParams

EF_AARCH64_CHERI_PURECAP = 0x10000
EM_AARCH64 = 183
PT_INTERP = 3
MAX_PHNUM = 512  # real programs have ~15; PN_XNUM (0xffff) indirection is refused
MAX_INTERP = 4096  # PATH_MAX

MACHINES = {
    2: "sparc",
    3: "x86",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390",
    40: "arm",
    43: "sparcv9",
    50: "ia64",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
    258: "loongarch",
}
TYPES = {0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}
OSABIS = {0: "sysv", 3: "linux", 9: "freebsd", 12: "openbsd"}


class ElfError(InvalidParams, ValueError):
    """The bytes are not a well-formed ELF file of a kind this reader understands."""


@dataclass(frozen=True)
class ElfFacts:
    machine: str  # 'x86_64', 'aarch64', ... or 'em_<n>' for an unknown e_machine
    e_machine: int
    elf_class: Literal[32, 64]
    endianness: Literal["little", "big"]
    type: str  # 'EXEC', 'DYN', 'REL', 'CORE', 'NONE' or 'type_<n>'
    osabi: str
    entry: int
    e_flags: int
    purecap: bool
    entry_c64: bool
    interpreter: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "e_machine": self.e_machine,
            "class": self.elf_class,
            "endianness": self.endianness,
            "type": self.type,
            "osabi": self.osabi,
            "entry": self.entry,
            "e_flags": self.e_flags,
            "purecap": self.purecap,
            "entry_c64": self.entry_c64,
            "interpreter": self.interpreter,
        }


class _Reader:
    """Bounds-checked reads from bytes or an open file descriptor."""

    def __init__(self, data: bytes | None = None, fd: int | None = None, size: int = 0) -> None:
        self._data = data
        self._fd = fd
        self.size = len(data) if data is not None else size

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset > self.size or length > self.size - offset:
            raise ElfError(f"truncated or malformed ELF: {what} at offset {offset} (+{length}) "
                           f"is outside the file ({self.size} bytes)")
        if self._data is not None:
            return self._data[offset:offset + length]
        assert self._fd is not None
        chunk = os.pread(self._fd, length, offset)
        if len(chunk) != length:
            raise ElfError(f"truncated ELF: short read of {what}")
        return chunk


def read_elf_facts(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> ElfFacts:
    """Facts about the ELF file at path ``source`` or in the bytes ``source``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse(_Reader(data=bytes(source)))
    try:
        fd = os.open(os.fspath(source), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ElfError(f"cannot open {os.fspath(source)!r}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ElfError(f"{os.fspath(source)!r} is not a regular file")
        return _parse(_Reader(fd=fd, size=st.st_size))
    finally:
        os.close(fd)


def _parse(r: _Reader) -> ElfFacts:
    ident = r.read(0, 16, "e_ident")
    if ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file (bad magic)")
    ei_class, ei_data, ei_version, ei_osabi = ident[4], ident[5], ident[6], ident[7]
    if ei_class not in (1, 2):
        raise ElfError(f"bad ELF class {ei_class}")
    if ei_data not in (1, 2):
        raise ElfError(f"bad ELF byte order {ei_data}")
    if ei_version != 1:
        raise ElfError(f"unsupported ELF version {ei_version}")
    is64 = ei_class == 2
    end = "<" if ei_data == 1 else ">"

    if is64:
        hdr_fmt = end + "HHIQQQIHHHHHH"
    else:
        hdr_fmt = end + "HHIIIIIHHHHHH"
    hdr = r.read(16, struct.calcsize(hdr_fmt), "ELF header")
    (e_type, e_machine, e_version, e_entry, e_phoff, _e_shoff, e_flags, e_ehsize,
     e_phentsize, e_phnum, _e_shentsize, _e_shnum, _e_shstrndx) = struct.unpack(hdr_fmt, hdr)
    if e_version != 1:
        raise ElfError(f"unsupported e_version {e_version}")

    ph_fmt = end + ("IIQQQQQQ" if is64 else "IIIIIIII")
    ph_size = struct.calcsize(ph_fmt)
    interpreter: str | None = None
    if e_phnum:
        if e_phnum == 0xFFFF:
            raise ElfError("extended program header numbering (PN_XNUM) is not supported")
        if e_phnum > MAX_PHNUM:
            raise ElfError(f"too many program headers: {e_phnum} (at most {MAX_PHNUM})")
        if e_phentsize < ph_size:
            raise ElfError(f"program header entry size {e_phentsize} is smaller than {ph_size}")
        table = r.read(e_phoff, e_phentsize * e_phnum, "program header table")
        for i in range(e_phnum):
            entry = table[i * e_phentsize: i * e_phentsize + ph_size]
            if is64:
                p_type, _flags, p_offset, _va, _pa, p_filesz, _memsz, _align = struct.unpack(ph_fmt, entry)
            else:
                p_type, p_offset, _va, _pa, p_filesz, _memsz, _flags, _align = struct.unpack(ph_fmt, entry)
            if p_type != PT_INTERP:
                continue
            if interpreter is not None:
                raise ElfError("more than one PT_INTERP program header")
            if p_filesz == 0 or p_filesz > MAX_INTERP:
                raise ElfError(f"PT_INTERP size {p_filesz} is out of range (1..{MAX_INTERP})")
            raw = r.read(p_offset, p_filesz, "PT_INTERP string")
            raw = raw.split(b"\0", 1)[0]
            if not raw:
                raise ElfError("PT_INTERP names an empty path")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ElfError("PT_INTERP is not valid UTF-8") from None
            if not text.isprintable():
                raise ElfError("PT_INTERP contains unprintable characters")
            interpreter = text
    _ = e_ehsize  # not needed: offsets are checked against the file instead

    aarch64 = e_machine == EM_AARCH64
    return ElfFacts(
        machine=MACHINES.get(e_machine, f"em_{e_machine}"),
        e_machine=e_machine,
        elf_class=64 if is64 else 32,
        endianness="little" if ei_data == 1 else "big",
        type=TYPES.get(e_type, f"type_{e_type}"),
        osabi=OSABIS.get(ei_osabi, f"osabi_{ei_osabi}"),
        entry=e_entry,
        e_flags=e_flags,
        purecap=aarch64 and bool(e_flags & EF_AARCH64_CHERI_PURECAP),
        entry_c64=aarch64 and bool(e_entry & 1),
        interpreter=interpreter,
    )
