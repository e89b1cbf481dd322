"""A service's settings, from the command line (``attestables app KIND ...``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from attestables.shared import eai
from attestables.shared.channel import is_service_id
from attestables.shared.paths import default_state_dir

# One default port per kind, next to the launcher's 7480.
DEFAULT_PORTS = {"store": 7481, "transport": 7482, "messaging": 7483}
DEFAULT_CRL_REFRESH_S = 2.0
DEFAULT_REPLY_DELAY_S = 2.0
# Attested requests handled at once; more are refused with 503 busy, never queued.
DEFAULT_MAX_IN_FLIGHT = 128
# Rows of the verification log kept (the oldest are pruned).
DEFAULT_LOG_KEEP = 100_000


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class ServiceConfig:
    kind: str
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    service_id: str = ""
    policy_path: Path | None = None
    crl_url: str | None = None
    crl_refresh_s: float = DEFAULT_CRL_REFRESH_S
    reply_delay_s: float = DEFAULT_REPLY_DELAY_S
    max_body: int = eai.MAX_BODY
    replay_window_s: int = eai.REPLAY_WINDOW_S
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    log_keep: int = DEFAULT_LOG_KEEP
    log_level: str = "info"

    @classmethod
    def build(
        cls,
        kind: str,
        *,
        listen: str | None = None,
        state_dir: str | Path | None = None,
        service_id: str | None = None,
        policy: str | Path | None = None,
        crl_url: str | None = None,
        crl_refresh: float | None = None,
        reply_delay: float | None = None,
        log_level: str | None = None,
    ) -> ServiceConfig:
        """Checked settings; :class:`ConfigError` names the first bad option."""
        if kind not in eai.SERVICE_IDS:
            raise ConfigError(f"unknown service kind {kind!r} (one of {', '.join(eai.SERVICE_IDS)})")
        host, port = parse_listen(listen if listen is not None else f"127.0.0.1:{DEFAULT_PORTS[kind]}")
        sid = service_id if service_id is not None else kind
        if not is_service_id(sid):
            raise ConfigError(f"--service-id {sid!r}: 1-64 of A-Z a-z 0-9 . _ -")
        if crl_url is not None and not crl_url.startswith(("http://", "https://")):
            raise ConfigError(f"--crl-url {crl_url!r}: expected an http:// or https:// URL")
        refresh = DEFAULT_CRL_REFRESH_S if crl_refresh is None else float(crl_refresh)
        if not 0.05 <= refresh <= 86400:
            raise ConfigError("--crl-refresh: between 0.05 and 86400 seconds")
        delay = DEFAULT_REPLY_DELAY_S if reply_delay is None else float(reply_delay)
        if not 0 <= delay <= 86400:
            raise ConfigError("--reply-delay: between 0 and 86400 seconds")
        level = (log_level or "info").lower()
        if level not in ("debug", "info", "warning", "error"):
            raise ConfigError("--log-level: debug, info, warning or error")
        directory = Path(state_dir) if state_dir is not None else default_state_dir() / "apps" / sid
        return cls(
            kind=kind,
            state_dir=directory,
            host=host,
            port=port,
            service_id=sid,
            policy_path=Path(policy) if policy is not None else None,
            crl_url=crl_url,
            crl_refresh_s=refresh,
            reply_delay_s=delay,
            log_level=level,
        )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into its parts."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--listen {text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--listen {text!r}: the port is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--listen {text!r}: port out of range")
    return host, port


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
