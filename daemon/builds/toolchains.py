"""The toolchains the daemon can build with, detected once and described in one place.

Four toolchains are known (DESIGN.md §7):

``native``
    The host's ``cc``, ``gcc`` or ``clang`` (the first found on ``PATH``), for development
    and CI. ABI ``native``: no capabilities. Unavailable on a CheriBSD host, where ``cc``
    produces CheriABI binaries and calling that "native" would misattest the ABI.
``morello-purecap``
    On CheriBSD/Morello: ``clang-morello`` (the seed's compiler) or, failing that, the base
    ``cc``, always with ``-march=morello+c64 -mabi=purecap`` so the ABI never depends on
    which world (purecap or hybrid) the board runs. Optionally linked with the c18n
    run-time linker (``-Wl,--dynamic-linker=/libexec/ld-elf-c18n.so.1``), needed for c18n on
    CheriBSD releases before 25.03.
``morello-hybrid``
    On CheriBSD/Morello: ``clang-morello`` (or ``cc``) with ``-march=morello -mabi=aapcs``
    (``-mabi=aapcs`` is the default of a hybrid compiler; it is spelt out so that a purecap
    world's ``cc`` also yields a hybrid binary).
``cheribuild-sdk``
    Cross compiler from a cheribuild SDK: ``<sdk>/bin/clang -target aarch64-unknown-freebsd
    -march=morello+c64 -mabi=purecap --sysroot=<rootfs-morello-purecap> -fuse-ld=lld``.

The CheriBSD command lines are built and unit-tested here but have NOT been run on
hardware. Argument vectors are exact (no shell); paths in them are as seen inside the
compile sandbox (``daemon/sandbox/argv.py``).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

from attestables.shared.errors import InvalidParams, Unavailable

from ..sandbox import reaper
from .flags import DEFAULT_OPT, optimisation_level, validate_flags

NATIVE = "native"
MORELLO_PURECAP = "morello-purecap"
MORELLO_HYBRID = "morello-hybrid"
CHERIBUILD_SDK = "cheribuild-sdk"
TOOLCHAIN_NAMES = (NATIVE, MORELLO_PURECAP, MORELLO_HYBRID, CHERIBUILD_SDK)

VERSION_TIMEOUT_S = 5.0
C18N_INTERPRETER = "/libexec/ld-elf-c18n.so.1"
CHERIBSD_TRIPLE = "aarch64-unknown-freebsd"
PURECAP_FLAGS = ("-march=morello+c64", "-mabi=purecap")
HYBRID_FLAGS = ("-march=morello", "-mabi=aapcs")
SDK_SYSROOT_NAME = "rootfs-morello-purecap"

# Always on: C11, the usual warnings, no colour codes in the log, stack protection.
BASE_FLAGS = ("-std=c11", "-Wall", "-Wextra", "-fdiagnostics-color=never")

Abi = Literal["native", "purecap", "hybrid"]
Family = Literal["gcc", "clang", "unknown"]
Linker = Literal["gnu", "lld"]
# run(argv, timeout) -> stdout, or None if the program could not be run or failed.
RunProbe = Callable[[Sequence[str], float], "str | None"]
Which = Callable[[str], "str | None"]

_LIB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")


@dataclass(frozen=True)
class HostInfo:
    """What detection needs to know about the machine: ``uname -s``, ``-m``, ``-p``."""

    system: str  # 'Linux', 'FreeBSD' (CheriBSD says FreeBSD)
    machine: str  # uname -m: 'x86_64', 'arm64', ...
    processor: str = ""  # uname -p: 'aarch64c' on a CheriBSD purecap world, 'aarch64' on hybrid

    @property
    def is_cheri_capable(self) -> bool:
        """CheriBSD/FreeBSD on 64-bit Arm: the only hosts where morello-* can be available."""
        return self.system == "FreeBSD" and (
            self.machine in {"arm64", "aarch64", "aarch64c"} or self.processor in {"aarch64", "aarch64c"}
        )

    @property
    def is_purecap_world(self) -> bool:
        return self.system == "FreeBSD" and self.processor == "aarch64c"


def current_host() -> HostInfo:
    uname = os.uname()
    processor = ""
    if uname.sysname == "FreeBSD":
        # platform.processor() runs `uname -p` there: 'aarch64c' on a purecap world.
        processor = platform.processor()
    return HostInfo(system=uname.sysname, machine=uname.machine, processor=processor)


@dataclass(frozen=True)
class Toolchain:
    """One toolchain: how to call it and what it is, for build records and system.info."""

    name: str
    compiler: str | None  # absolute path usable inside the compile sandbox
    version: str  # first line of `compiler --version`, '' if unavailable
    available: bool
    abi: Abi
    target: str  # target triple ('x86_64-linux-gnu', 'aarch64-unknown-freebsd')
    family: Family = "unknown"
    resolved: str | None = None  # realpath of the compiler, for the record only
    target_flags: tuple[str, ...] = ()  # -target/-march/-mabi/--sysroot/-fuse-ld
    sysroot: str | None = None
    linker: Linker = "gnu"
    pie: bool = True
    stack_protector: bool = True
    c18n_interpreter: str | None = None  # -Wl,--dynamic-linker=... when set
    reason: str = ""  # why it is unavailable

    # -- command lines ---------------------------------------------------------------

    def _front(self, flags: Sequence[str], include_dirs: Sequence[str]) -> list[str]:
        """Compiler, target, base and user flags and include dirs: what every compile shares."""
        if not self.available or self.compiler is None:
            raise Unavailable(f"toolchain {self.name} is not available: {self.reason or 'no compiler'}",
                              toolchain=self.name)
        user_flags = validate_flags(list(flags))
        opt = optimisation_level(user_flags) or DEFAULT_OPT
        argv: list[str] = [self.compiler, *self.target_flags, *BASE_FLAGS]
        if self.stack_protector:
            argv.append("-fstack-protector-strong")
        argv.append(opt)
        if opt != "-O0":
            argv.append("-D_FORTIFY_SOURCE=2")
        if self.pie:
            argv.append("-fPIE")
        argv += [f for f in user_flags if f != opt]
        for d in include_dirs:
            argv += ["-I", _path_arg(d, "include_dirs")]
        return argv

    def compile_argv(
        self,
        sources: Sequence[str],
        output: str,
        *,
        include_dirs: Sequence[str] = (),
        flags: Sequence[str] = (),
        lib_dirs: Sequence[str] = (),
        libs: Sequence[str] = (),
    ) -> list[str]:
        """The exact argv compiling and linking ``sources`` into ``output``.

        ``flags`` are validated again (:func:`validate_flags`); ``-O2`` is used when they
        name no level. ``-D_FORTIFY_SOURCE=2`` is added unless the level is ``-O0`` (glibc
        warns that fortification needs optimisation). Raises ``Unavailable`` for an
        unavailable toolchain and ``InvalidParams`` for a path or library name that could
        be read as an option.
        """
        if not sources:
            raise InvalidParams("nothing to compile", field="sources")
        argv = self._front(flags, include_dirs)
        argv += [_path_arg(s, "sources") for s in sources]
        argv += ["-o", _path_arg(output, "output")]
        if self.pie:
            argv.append("-pie")
        if self.c18n_interpreter:
            argv.append(f"-Wl,--dynamic-linker={self.c18n_interpreter}")
        for d in lib_dirs:
            argv.append("-L" + _path_arg(d, "lib_dirs"))
        if libs:
            # GNU ld and lld both honour --as-needed: unused libraries leave no DT_NEEDED.
            argv.append("-Wl,--as-needed")
            for lib in libs:
                if not isinstance(lib, str) or not _LIB_NAME.fullmatch(lib):
                    raise InvalidParams(f"library name {lib!r} is not allowed", field="libs")
                argv.append(f"-l{lib}")
        return argv

    def object_argv(self, source: str, output: str, *, include_dirs: Sequence[str] = (),
                    flags: Sequence[str] = ()) -> list[str]:
        """The argv compiling one source into an object file (no link)."""
        return [*self._front(flags, include_dirs), "-c", _path_arg(source, "sources"),
                "-o", _path_arg(output, "output")]

    def archive_argv(self, objects: Sequence[str], output: str) -> list[str]:
        """The argv archiving ``objects`` into a static library (``ar rcs``; ``llvm-ar``
        beside a clang that has one, as in a cheribuild SDK)."""
        if self.compiler is None:
            raise Unavailable(f"toolchain {self.name} is not available", toolchain=self.name)
        sibling = os.path.join(os.path.dirname(self.compiler), "llvm-ar")
        archiver = sibling if self.family == "clang" and os.access(sibling, os.X_OK) else (
            shutil.which("ar") or "/usr/bin/ar")
        return [archiver, "rcsD", _path_arg(output, "output"), *(_path_arg(o, "objects") for o in objects)]

    def sandbox_paths(self) -> tuple[str, ...]:
        """Host directories the compile sandbox must bind read-only (at the same path)
        besides the system ones: a compiler prefix outside ``/usr`` (a cheribuild SDK)
        and the sysroot. Empty for a system compiler."""
        paths: list[str] = []
        if self.compiler and not self.compiler.startswith(("/usr/", "/bin/", "/sbin/")):
            paths.append(os.path.dirname(os.path.dirname(self.compiler)))
        if self.sysroot:
            paths.append(self.sysroot)
        return tuple(dict.fromkeys(paths))

    def with_c18n_interpreter(self, interpreter: str = C18N_INTERPRETER) -> "Toolchain":
        """This toolchain, linking against the c18n run-time linker (CheriBSD < 25.03).

        Only meaningful for purecap toolchains; refused for the others.
        """
        if self.abi != "purecap":
            raise InvalidParams(f"toolchain {self.name} is not purecap: c18n needs CheriABI", toolchain=self.name)
        return dataclasses.replace(self, c18n_interpreter=interpreter)

    def identity(self, argv: Sequence[str] | None = None) -> dict[str, Any]:
        """What a build record (and the measurement) says about the toolchain."""
        out: dict[str, Any] = {
            "name": self.name,
            "compiler": self.compiler,
            "resolved": self.resolved,
            "version": self.version,
            "abi": self.abi,
            "target": self.target,
        }
        if self.c18n_interpreter:
            out["interpreter"] = self.c18n_interpreter
        if argv is not None:
            out["argv"] = list(argv)
        return out

    def to_dict(self) -> dict[str, Any]:
        """For ``system.info``: the identity plus availability."""
        out = self.identity()
        out.update(available=self.available, family=self.family, sysroot=self.sysroot)
        if self.reason:
            out["reason"] = self.reason
        return out


def _path_arg(path: object, field: str) -> str:
    if not isinstance(path, str) or not path or path.startswith("-") or "\0" in path:
        raise InvalidParams(f"{field}: {path!r} is not a usable path", field=field)
    return path


# -- probing ------------------------------------------------------------------------------


def run_probe(argv: Sequence[str], timeout: float) -> str | None:
    """Run a probe such as ``cc --version`` (no shell, C locale); stdout or ``None``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    try:
        proc = reaper.run(argv, timeout=timeout, env=env, text=True)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def compiler_family(version_text: str | None) -> Family:
    """'clang' or 'gcc' from the full ``--version`` output."""
    if not version_text:
        return "unknown"
    head = version_text.lower()
    if "clang" in head:
        return "clang"
    if "free software foundation" in head or "gcc" in head:
        return "gcc"
    return "unknown"


def _realpath(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def _unavailable(name: str, abi: Abi, target: str, reason: str, **extra: Any) -> Toolchain:
    return Toolchain(name=name, compiler=None, version="", available=False, abi=abi, target=target,
                     reason=reason, **extra)


def _probe(name: str, compiler: str, *, abi: Abi, run: RunProbe, target: str | None = None,
           **extra: Any) -> Toolchain:
    text = run([compiler, "--version"], VERSION_TIMEOUT_S)
    if text is None:
        return _unavailable(name, abi, target or "", f"{compiler} --version failed")
    if target is None:
        target = (run([compiler, "-dumpmachine"], VERSION_TIMEOUT_S) or "").strip()[:100]
    return Toolchain(
        name=name, compiler=compiler, version=_first_line(text), available=True, abi=abi,
        target=target, family=compiler_family(text), resolved=_realpath(compiler), **extra,
    )


def detect_native(*, host: HostInfo, which: Which, run: RunProbe) -> Toolchain:
    if host.is_purecap_world:
        return _unavailable(NATIVE, "native", "",
                            "on a CheriBSD purecap world cc produces CheriABI: use morello-purecap or morello-hybrid")
    for candidate in ("cc", "gcc", "clang"):
        path = which(candidate)
        if path:
            # Keep the PATH location (/usr/bin/cc), not its realpath: the alternatives
            # symlink chain resolves inside a sandbox that binds /usr and /etc/alternatives.
            path = os.path.abspath(path)
            return _probe(NATIVE, path, abi="native", run=run,
                          linker="lld" if host.system == "FreeBSD" else "gnu")
    return _unavailable(NATIVE, "native", "", "no cc, gcc or clang on PATH")


def _detect_morello(name: str, abi: Abi, flags: tuple[str, ...], *, host: HostInfo, which: Which,
                    run: RunProbe, c18n_link: bool) -> Toolchain:
    if not host.is_cheri_capable:
        return _unavailable(name, abi, CHERIBSD_TRIPLE, "needs a CheriBSD (FreeBSD aarch64/aarch64c) host",
                            target_flags=flags, linker="lld")
    for candidate in ("clang-morello", "cc"):
        path = which(candidate)
        if path:
            tc = _probe(name, os.path.abspath(path), abi=abi, run=run, target=CHERIBSD_TRIPLE,
                        target_flags=flags, linker="lld")
            if tc.available:
                problem = _check_cheri_target(tc, run)
                if problem:
                    return _unavailable(name, abi, CHERIBSD_TRIPLE, problem, target_flags=flags, linker="lld")
            if tc.available and c18n_link and abi == "purecap":
                tc = tc.with_c18n_interpreter()
            return tc
    return _unavailable(name, abi, CHERIBSD_TRIPLE, "no clang-morello or cc on PATH", target_flags=flags,
                        linker="lld")


def _check_cheri_target(tc: Toolchain, run: RunProbe) -> str:
    """'' if ``tc`` really targets Morello with its flags, else why not.

    A plain FreeBSD/arm64 ``cc`` is clang too, so being clang is not enough: the
    compiler must accept the target flags, and for purecap predefine
    ``__CHERI_PURE_CAPABILITY__`` with them.
    """
    assert tc.compiler is not None
    if tc.family != "clang":
        return f"{tc.compiler} is not clang"
    macros = run([tc.compiler, *tc.target_flags, "-dM", "-E", "-x", "c", "/dev/null"], VERSION_TIMEOUT_S)
    if macros is None:
        return f"{tc.compiler} rejects {' '.join(tc.target_flags)}"
    if tc.abi == "purecap" and "__CHERI_PURE_CAPABILITY__" not in macros:
        return f"{tc.compiler} does not produce purecap code with {' '.join(tc.target_flags)}"
    return ""


def default_sdk_sysroot(sdk_dir: str) -> str:
    """``<sdk>/rootfs-morello-purecap`` if it exists, else cheribuild's sibling layout
    (``output/morello-sdk`` next to ``output/rootfs-morello-purecap``) if that exists,
    else the former."""
    inside = os.path.join(sdk_dir, SDK_SYSROOT_NAME)
    sibling = os.path.join(os.path.dirname(os.path.abspath(sdk_dir)), SDK_SYSROOT_NAME)
    if not os.path.isdir(inside) and os.path.isdir(sibling):
        return sibling
    return inside


def detect_sdk(sdk_dir: str | None, *, sysroot: str | None, which: Which, run: RunProbe,
               c18n_link: bool) -> Toolchain:
    def flags_for(root: str) -> tuple[str, ...]:
        return ("-target", CHERIBSD_TRIPLE, *PURECAP_FLAGS, f"--sysroot={root}", "-fuse-ld=lld")

    if not sdk_dir:
        return _unavailable(CHERIBUILD_SDK, "purecap", CHERIBSD_TRIPLE, "no SDK directory configured",
                            linker="lld")
    root = sysroot or default_sdk_sysroot(sdk_dir)
    clang = which(os.path.join(os.path.abspath(sdk_dir), "bin", "clang"))
    if not clang:
        return _unavailable(CHERIBUILD_SDK, "purecap", CHERIBSD_TRIPLE, f"no executable {sdk_dir}/bin/clang",
                            linker="lld", sysroot=root, target_flags=flags_for(root))
    if not os.path.isdir(root):
        return _unavailable(CHERIBUILD_SDK, "purecap", CHERIBSD_TRIPLE, f"sysroot {root} not found",
                            linker="lld", sysroot=root, target_flags=flags_for(root))
    tc = _probe(CHERIBUILD_SDK, clang, abi="purecap", run=run, target=CHERIBSD_TRIPLE,
                target_flags=flags_for(root), sysroot=root, linker="lld")
    if tc.available:
        problem = _check_cheri_target(tc, run)
        if problem:
            return _unavailable(CHERIBUILD_SDK, "purecap", CHERIBSD_TRIPLE, problem, linker="lld", sysroot=root,
                                target_flags=flags_for(root))
    if tc.available and c18n_link:
        tc = tc.with_c18n_interpreter()
    return tc


def detect_toolchains(
    *,
    sdk_dir: str | None = None,
    sdk_sysroot: str | None = None,
    c18n_link: bool = False,
    which: Which = shutil.which,
    run: RunProbe = run_probe,
    host: HostInfo | None = None,
) -> dict[str, Toolchain]:
    """Every known toolchain by name, available or not (with a reason).

    ``which``, ``run`` and ``host`` are injectable so tests can describe a CheriBSD host;
    by default they probe this machine (``compiler --version``, 5 s timeout).
    ``c18n_link`` links purecap programs against the c18n run-time linker (CheriBSD
    releases before 25.03).
    """
    host = host or current_host()
    return {
        NATIVE: detect_native(host=host, which=which, run=run),
        MORELLO_PURECAP: _detect_morello(MORELLO_PURECAP, "purecap", PURECAP_FLAGS, host=host, which=which,
                                         run=run, c18n_link=c18n_link),
        MORELLO_HYBRID: _detect_morello(MORELLO_HYBRID, "hybrid", HYBRID_FLAGS, host=host, which=which,
                                        run=run, c18n_link=False),
        CHERIBUILD_SDK: detect_sdk(sdk_dir, sysroot=sdk_sysroot, which=which, run=run, c18n_link=c18n_link),
    }
