"""The daemon's settings: one table, four sources.

Precedence is flag > environment (``ATTESTABLES_<NAME>``) > TOML file > default. Every
setting is declared once in ``SETTINGS``; ``docs/configuration.md`` documents each one.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from attestables.shared.paths import DEFAULT_LISTEN, default_state_dir

ENV_PREFIX = "ATTESTABLES_"


class ConfigError(ValueError):
    """A setting could not be read; the message names the setting and its source."""


@dataclass(frozen=True)
class RunLimits:
    """Resource limits of one compartment run."""

    cpu_s: int
    memory_mb: int
    wall_s: int
    output_kb: int

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Field metadata ``doc`` feeds docs/configuration.md."""

    listen: str = field(default=DEFAULT_LISTEN, metadata={"doc": "HOST:PORT the API listens on."})
    state_dir: Path = field(default_factory=default_state_dir, metadata={"doc": "Database, blobs, token and keys."})
    log_level: str = field(default="info", metadata={"doc": "debug, info, warning or error."})
    log_format: str = field(default="auto", metadata={
        "doc": "auto (journal under journald, else text), text, journal or json (one object per line)."})
    metrics_access: str = field(default="token", metadata={
        "doc": "GET /metrics: token (the API token as a Bearer header), open (no token) or off (404)."})
    event_loop: str = field(default="auto", metadata={
        "doc": "auto (uvloop where it is installed, else asyncio), uvloop or asyncio."})
    work_dir: str = field(default="", metadata={
        "doc": "Scratch space for builds and runs (default: $RUNTIME_DIRECTORY/work, else a new temp dir)."})

    max_source_bytes: int = field(default=1024 * 1024, metadata={"doc": "Largest accepted source upload."})
    max_sources: int = field(default=10_000, metadata={"doc": "Most sources kept."})

    build_concurrency: int = field(default_factory=_cpu_count, metadata={"doc": "Builds compiled at once."})
    build_timeout_s: int = field(default=60, metadata={"doc": "Wall-time limit of one compile."})
    build_log_max_kb: int = field(default=256, metadata={"doc": "Compile log kept and streamed per build."})
    build_memory_mb: int = field(default=2048, metadata={"doc": "Address-space limit of the compiler."})
    ca_passphrase_file: str = field(default="", metadata={
        "doc": "File holding the passphrase that encrypts the CA keys (PKCS#8); empty: keys unencrypted."})
    ca_passphrase_credential: str = field(default="", metadata={
        "doc": "systemd credential name holding that passphrase ($CREDENTIALS_DIRECTORY/<name>)."})
    run_cert_validity_s: int = field(default=86_400, metadata={"doc": "Validity of a run certificate."})
    cheribuild_sdk: str = field(default="", metadata={"doc": "Path of a cheribuild SDK (enables cheribuild-sdk)."})

    default_backend: str = field(default="bwrap", metadata={"doc": "Compartment backend when a run names none."})
    allow_unconfined: bool = field(default=False, metadata={"doc": "Permit the unconfined `none` backend."})
    sandbox_uid_base: int = field(default=1_879_048_192, metadata={
        "doc": "First uid of the range builds and runs get one each of, when the daemon is root."})
    sandbox_uid_count: int = field(default=65_536, metadata={"doc": "Size of that uid range."})
    sandbox_gid: int = field(default=65534, metadata={"doc": "Gid of sandboxed builds and runs (root daemon)."})
    max_runs: int = field(default=64, metadata={"doc": "Compartments running at once."})
    stop_grace_s: float = field(default=5.0, metadata={"doc": "SIGTERM to SIGKILL grace when stopping a run."})

    run_cpu_s: int = field(default=60, metadata={"doc": "Default CPU-seconds limit of a run."})
    run_memory_mb: int = field(default=512, metadata={"doc": "Default address-space limit of a run."})
    run_wall_s: int = field(default=300, metadata={"doc": "Default wall-clock limit of a run."})
    run_output_kb: int = field(default=1024, metadata={"doc": "Default stdout+stderr cap of a run."})
    max_run_cpu_s: int = field(default=86_400, metadata={"doc": "Largest CPU limit a client may ask for."})
    max_run_memory_mb: int = field(default=8192, metadata={"doc": "Largest memory limit a client may ask for."})
    max_run_wall_s: int = field(default=30 * 86_400, metadata={"doc": "Largest wall limit a client may ask for."})
    max_run_output_kb: int = field(default=65_536, metadata={"doc": "Largest output cap a client may ask for."})
    run_nofile: int = field(default=256, metadata={"doc": "Open-files limit inside a compartment."})
    run_nproc: int = field(default=64, metadata={"doc": "Processes/threads limit inside a compartment."})

    event_ring_size: int = field(default=20_000, metadata={"doc": "Events kept for `since` replays."})
    event_ring_kb: int = field(default=32_768, metadata={"doc": "Payload bytes kept for `since` replays."})
    client_queue_size: int = field(default=4096, metadata={"doc": "Outbound events buffered per client."})
    client_queue_kb: int = field(default=16_384, metadata={"doc": "Outbound event bytes buffered per client."})
    client_max_inflight: int = field(default=64, metadata={"doc": "Concurrent requests per client."})
    max_message_kb: int = field(default=2048, metadata={"doc": "Largest websocket message accepted."})
    max_clients: int = field(default=256, metadata={"doc": "Websocket clients connected at once."})

    @property
    def default_limits(self) -> RunLimits:
        return RunLimits(self.run_cpu_s, self.run_memory_mb, self.run_wall_s, self.run_output_kb)

    @property
    def max_limits(self) -> RunLimits:
        return RunLimits(self.max_run_cpu_s, self.max_run_memory_mb, self.max_run_wall_s, self.max_run_output_kb)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


SETTINGS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Settings)}

# What SIGHUP cannot change in a running daemon: the listening socket, where state and
# keys live, sandbox identities and sizes fixed when the parts were built. A reload that
# changes one of these keeps the running value and says a restart is needed.
RESTART_ONLY = frozenset({
    "listen", "state_dir", "work_dir", "log_format", "event_loop", "ca_passphrase_file", "ca_passphrase_credential",
    "run_cert_validity_s", "cheribuild_sdk", "sandbox_uid_base", "sandbox_uid_count", "sandbox_gid",
    "build_concurrency", "event_ring_size", "event_ring_kb",
})

LOG_FORMATS = ("auto", "text", "journal", "json")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
METRICS_ACCESS = ("token", "open", "off")

_POSITIVE = {
    "max_source_bytes", "max_sources", "run_cert_validity_s", "build_concurrency", "build_timeout_s", "build_log_max_kb",
    "build_memory_mb", "max_runs", "run_cpu_s", "run_memory_mb", "run_wall_s", "run_output_kb",
    "max_run_cpu_s", "max_run_memory_mb", "max_run_wall_s", "max_run_output_kb", "run_nofile",
    "run_nproc", "sandbox_uid_base", "sandbox_uid_count", "sandbox_gid", "event_ring_size", "event_ring_kb", "client_queue_size", "client_queue_kb", "client_max_inflight", "max_message_kb",
    "max_clients",
}


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _coerce(name: str, raw: Any, source: str) -> Any:
    """Convert a raw value (TOML value or environment string) to the setting's type."""
    f = SETTINGS[name]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    where = f"{name} (from {source})"
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
                return True
            if isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected a boolean (true/false)")
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, (int, str)):
                raise ValueError("expected an integer")
            value = int(raw)
            if name in _POSITIVE and value <= 0:
                raise ValueError("must be positive")
            return value
        if kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError("expected a number")
            value = float(raw)
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if kind == "Path":
            if not isinstance(raw, str) or not raw:
                raise ValueError("expected a path")
            return Path(raw).expanduser()
        if not isinstance(raw, str):
            raise ValueError("expected a string")
        return raw
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (got {raw!r})") from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
) -> Settings:
    """Resolve every setting. ``flags`` holds only options given on the command line.

    The config file comes from ``flags['config']``, else ``ATTESTABLES_CONFIG``, else
    ``config_file``; an unknown key in it is an error, so typos do not pass silently.
    """
    flags = dict(flags or {})
    env = os.environ if environ is None else environ
    path = flags.pop("config", None) or env.get(ENV_PREFIX + "CONFIG") or config_file
    values: dict[str, Any] = {}

    if path:
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key, raw in table.items():
            if key not in SETTINGS:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, str(path))

    for name in SETTINGS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            values[name] = _coerce(name, env[env_name], env_name)

    for key, raw in flags.items():
        if raw is None:
            continue
        if key not in SETTINGS:
            raise ConfigError(f"unknown option {key!r}")
        values[key] = _coerce(key, str(raw) if isinstance(raw, Path) else raw, "--" + key.replace("_", "-"))

    if "state_dir" not in values:
        values["state_dir"] = default_state_dir(dict(env))
    settings = Settings(**values)
    parse_listen(settings.listen)
    if settings.log_level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(f"log_level: expected debug, info, warning or error, got {settings.log_level!r}")
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format: expected {', '.join(LOG_FORMATS)}, got {settings.log_format!r}")
    if settings.event_loop not in EVENT_LOOPS:
        raise ConfigError(f"event_loop: expected {', '.join(EVENT_LOOPS)}, got {settings.event_loop!r}")
    if settings.metrics_access not in METRICS_ACCESS:
        raise ConfigError(f"metrics_access: expected {', '.join(METRICS_ACCESS)}, got {settings.metrics_access!r}")
    for limit in ("cpu_s", "memory_mb", "wall_s", "output_kb"):
        if getattr(settings.default_limits, limit) > getattr(settings.max_limits, limit):
            raise ConfigError(f"run_{limit} exceeds max_run_{limit}")
    return settings
