"""Appraisal policy: which roots to trust and which runs to accept (TOML, parsed strictly).

See ``docs/policy.example.toml`` for the format and ``docs/attestation.md`` for what each
requirement means. Every unknown key, wrong type or unknown value is an error naming the
file and the key: a typo in a security policy must never silently weaken it.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography import x509

from ..attestation.document import BACKENDS, FILESYSTEM_ISOLATION, NETWORK_ISOLATION, RLIMIT_NAMES
from ..errors import InvalidParams

_HEX256 = re.compile(r"^[0-9a-fA-F]{64}$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (7 * 86400, 86400, 3600, 60, 1)

TOP_LEVEL_KEYS = (
    "name",
    "trusted_roots",
    "allow",
    "require_backend",
    "require_isolation",
    "require_purecap",
    "require_debug_disabled",
    "max_age",
)
ALLOW_KEYS = ("name", "elf-sha256", "source-sha256")
ISOLATION_KEYS = ("network", "filesystem", "rlimits")


class PolicyError(InvalidParams):
    """The policy file is unreadable or does not follow the format."""


@dataclass(frozen=True)
class AllowEntry:
    """One reference value. An entry with both digests must match both."""

    elf_sha256: str | None = None
    source_sha256: str | None = None
    name: str | None = None

    def matches(self, elf: frozenset[str], source: frozenset[str]) -> bool:
        if self.elf_sha256 is not None and self.elf_sha256 not in elf:
            return False
        if self.source_sha256 is not None and self.source_sha256 not in source:
            return False
        return True


@dataclass(frozen=True)
class IsolationRequirement:
    """Minimum isolation: ``network``/``filesystem`` levels (NETWORK_ISOLATION,
    FILESYSTEM_ISOLATION; stronger values satisfy weaker requirements) and upper bounds
    on resource limits (the document must set each named limit, at most this value)."""

    network: str | None = None
    filesystem: str | None = None
    rlimits: Mapping[str, int] = field(default_factory=dict)

    def shortfalls(self, isolation: Any) -> list[str]:
        """What the document's ``isolation`` claim lacks (empty when sufficient)."""
        missing = []
        if self.network is not None:
            have = NETWORK_ISOLATION.get(isolation.network, -1)
            if have < NETWORK_ISOLATION[self.network]:
                missing.append(f"network {isolation.network!r}, policy requires {self.network!r}")
        if self.filesystem is not None:
            have = FILESYSTEM_ISOLATION.get(isolation.filesystem, -1)
            if have < FILESYSTEM_ISOLATION[self.filesystem]:
                missing.append(f"filesystem {isolation.filesystem!r}, policy requires {self.filesystem!r}")
        for name, limit in self.rlimits.items():
            value = isolation.rlimits.get(name)
            if value is None:
                missing.append(f"rlimit {name} not set, policy requires <= {limit}")
            elif value > limit:
                missing.append(f"rlimit {name} = {value}, policy requires <= {limit}")
        return missing


@dataclass(frozen=True)
class Policy:
    trusted_roots: tuple[str, ...]
    allow: tuple[AllowEntry, ...] = ()
    require_backend: frozenset[str] | None = None
    require_isolation: IsolationRequirement | None = None
    require_purecap: bool = False
    require_debug_disabled: bool = False
    max_age: int | None = None  # seconds
    name: str | None = None
    # Where relative ``trusted_roots`` paths are resolved (the policy file's folder).
    base_dir: Path | None = None
    _roots: tuple[x509.Certificate, ...] | None = field(default=None, compare=False, repr=False)

    def root_paths(self) -> list[Path]:
        base = self.base_dir or Path.cwd()
        return [(base / p) if not Path(p).is_absolute() else Path(p) for p in self.trusted_roots]

    def load_roots(self) -> tuple[x509.Certificate, ...]:
        """The trusted root certificates (read once, then remembered)."""
        if self._roots is None:
            roots: list[x509.Certificate] = []
            for path in self.root_paths():
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise PolicyError(f"trusted root {path}: {exc.strerror or exc}") from None
                try:
                    roots.extend(x509.load_pem_x509_certificates(data))
                except ValueError:
                    raise PolicyError(f"trusted root {path}: not a PEM certificate") from None
            object.__setattr__(self, "_roots", tuple(roots))
        assert self._roots is not None
        return self._roots

    def to_toml(self) -> str:
        """The policy in the file format (round-trips through :func:`parse_policy`)."""
        lines = []
        if self.name is not None:
            lines.append(f"name = {_toml_str(self.name)}")
        lines.append("trusted_roots = [" + ", ".join(_toml_str(p) for p in self.trusted_roots) + "]")
        if self.require_backend is not None:
            lines.append("require_backend = [" + ", ".join(_toml_str(b) for b in sorted(self.require_backend)) + "]")
        lines.append(f"require_purecap = {'true' if self.require_purecap else 'false'}")
        lines.append(f"require_debug_disabled = {'true' if self.require_debug_disabled else 'false'}")
        if self.max_age is not None:
            lines.append(f"max_age = {self.max_age}")
        iso = self.require_isolation
        if iso is not None:
            lines += ["", "[require_isolation]"]
            if iso.network is not None:
                lines.append(f"network = {_toml_str(iso.network)}")
            if iso.filesystem is not None:
                lines.append(f"filesystem = {_toml_str(iso.filesystem)}")
            if iso.rlimits:
                lines += ["", "[require_isolation.rlimits]"]
                lines += [f"{k} = {v}" for k, v in sorted(iso.rlimits.items())]
        for entry in self.allow:
            lines += ["", "[[allow]]"]
            if entry.name is not None:
                lines.append(f"name = {_toml_str(entry.name)}")
            if entry.elf_sha256 is not None:
                lines.append(f"elf-sha256 = {_toml_str(entry.elf_sha256)}")
            if entry.source_sha256 is not None:
                lines.append(f"source-sha256 = {_toml_str(entry.source_sha256)}")
        return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    # A JSON string without \u escapes of astral characters is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def parse_duration(value: Any, *, where: str = "max_age") -> int:
    """Seconds from an integer or a string such as ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise PolicyError(f"{where}: expected seconds or a duration such as \"24h\", got a boolean")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not value.strip() or match is None:
            raise PolicyError(f"{where}: {value!r} is not a duration (examples: 3600, \"90m\", \"24h\", \"7d\")")
        seconds = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS) if g)
    else:
        raise PolicyError(f"{where}: expected seconds or a duration string, got {type(value).__name__}")
    if seconds <= 0:
        raise PolicyError(f"{where}: must be positive")
    return seconds


def _check_keys(table: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    known = tuple(known)
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PolicyError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(known)}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{where}: expected a non-empty string")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: expected true or false")
    return value


def _digest(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HEX256.match(value):
        raise PolicyError(f"{where}: expected a SHA-256 digest (64 hex digits)")
    return value.lower()


def _choice(value: Any, choices: Iterable[str], where: str) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise PolicyError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def parse_policy(data: str | Mapping[str, Any], *, base_dir: Path | None = None, source: str = "policy") -> Policy:
    """A :class:`Policy` from TOML text (or its already-parsed table)."""
    if isinstance(data, str):
        try:
            table: Mapping[str, Any] = tomllib.loads(data)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    else:
        table = data
    _check_keys(table, TOP_LEVEL_KEYS, source)

    if "trusted_roots" not in table:
        raise PolicyError(f"{source}: trusted_roots is required (paths to PEM files, relative to the policy file)")
    roots = table["trusted_roots"]
    if isinstance(roots, str):
        roots = [roots]
    if not isinstance(roots, list) or not roots:
        raise PolicyError(f"{source}: trusted_roots: expected a non-empty list of paths")
    trusted_roots = tuple(_string(r, f"{source}: trusted_roots[{i}]") for i, r in enumerate(roots))

    allow: list[AllowEntry] = []
    entries = table.get("allow", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: allow: expected [[allow]] tables")
    for i, entry in enumerate(entries):
        where = f"{source}: allow[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where}: expected a table")
        _check_keys(entry, ALLOW_KEYS, where)
        elf = _digest(entry["elf-sha256"], f"{where}.elf-sha256") if "elf-sha256" in entry else None
        src = _digest(entry["source-sha256"], f"{where}.source-sha256") if "source-sha256" in entry else None
        if elf is None and src is None:
            raise PolicyError(f"{where}: needs elf-sha256, source-sha256 or both")
        name = _string(entry["name"], f"{where}.name") if "name" in entry else None
        allow.append(AllowEntry(elf_sha256=elf, source_sha256=src, name=name))

    require_backend = None
    if "require_backend" in table:
        value = table["require_backend"]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values:
            raise PolicyError(f"{source}: require_backend: expected a backend name or a non-empty list")
        require_backend = frozenset(
            _choice(v, BACKENDS, f"{source}: require_backend") for v in values
        )

    require_isolation = None
    if "require_isolation" in table:
        iso = table["require_isolation"]
        where = f"{source}: require_isolation"
        if not isinstance(iso, dict):
            raise PolicyError(f"{where}: expected a table")
        _check_keys(iso, ISOLATION_KEYS, where)
        network = _choice(iso["network"], NETWORK_ISOLATION, f"{where}.network") if "network" in iso else None
        filesystem = (
            _choice(iso["filesystem"], FILESYSTEM_ISOLATION, f"{where}.filesystem") if "filesystem" in iso else None
        )
        rlimits: dict[str, int] = {}
        if "rlimits" in iso:
            if not isinstance(iso["rlimits"], dict):
                raise PolicyError(f"{where}.rlimits: expected a table")
            _check_keys(iso["rlimits"], RLIMIT_NAMES, f"{where}.rlimits")
            for key, value in iso["rlimits"].items():
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise PolicyError(f"{where}.rlimits.{key}: expected a non-negative integer")
                rlimits[key] = value
        require_isolation = IsolationRequirement(network=network, filesystem=filesystem, rlimits=rlimits)

    return Policy(
        trusted_roots=trusted_roots,
        allow=tuple(allow),
        require_backend=require_backend,
        require_isolation=require_isolation,
        require_purecap=_bool(table["require_purecap"], f"{source}: require_purecap")
        if "require_purecap" in table
        else False,
        require_debug_disabled=_bool(table["require_debug_disabled"], f"{source}: require_debug_disabled")
        if "require_debug_disabled" in table
        else False,
        max_age=parse_duration(table["max_age"], where=f"{source}: max_age") if "max_age" in table else None,
        name=_string(table["name"], f"{source}: name") if "name" in table else None,
        base_dir=base_dir,
    )


def load_policy(path: str | Path) -> Policy:
    """Read, parse and check a policy file, including that its trusted roots load."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc}") from None
    policy = parse_policy(text, base_dir=path.resolve().parent, source=str(path))
    policy.load_roots()
    return policy


def policy_for_build(
    *,
    elf_sha256: str,
    source_sha256: str | None = None,
    trusted_roots: Iterable[str] = ("root.pem",),
    name: str | None = None,
    require_backend: str | Iterable[str] | None = None,
    require_isolation: IsolationRequirement | Mapping[str, Any] | None = None,
    require_purecap: bool = False,
    require_debug_disabled: bool = False,
    max_age: int | str | None = None,
    base_dir: Path | None = None,
) -> Policy:
    """A policy whose allow-list is exactly one build's measurements (its reference value).

    Backs ``attestables policy export BUILD_ID``: pass the build's ELF and source digests;
    ``to_toml()`` gives the file. Values are checked as strictly as a parsed file's.
    """
    entry: dict[str, Any] = {"elf-sha256": elf_sha256}
    if source_sha256 is not None:
        entry["source-sha256"] = source_sha256
    if name is not None:
        entry["name"] = name
    table: dict[str, Any] = {"trusted_roots": list(trusted_roots), "allow": [entry]}
    if name is not None:
        table["name"] = name
    if require_backend is not None:
        table["require_backend"] = [require_backend] if isinstance(require_backend, str) else list(require_backend)
    table["require_purecap"] = require_purecap
    table["require_debug_disabled"] = require_debug_disabled
    if max_age is not None:
        table["max_age"] = max_age
    if require_isolation is not None:
        if isinstance(require_isolation, IsolationRequirement):
            iso: dict[str, Any] = {"rlimits": dict(require_isolation.rlimits)}
            if require_isolation.network is not None:
                iso["network"] = require_isolation.network
            if require_isolation.filesystem is not None:
                iso["filesystem"] = require_isolation.filesystem
            table["require_isolation"] = iso
        else:
            table["require_isolation"] = dict(require_isolation)
    return parse_policy(table, base_dir=base_dir, source="policy_for_build")
