"""The EAI case study, assembled from real parts on loopback: what `attestables demo`, the
end-to-end tests, the console tests and the benchmarks all start.

A launcher daemon and the three services (store, transport, messaging), each a process
of its own with its own state dir under one base dir; the services registered with the
launcher (TLS pinned to each service's certificate) and fetching the launcher's CRL;
``integration_process.c`` uploaded and built; and each service given the policy that
allows exactly that build (the launcher's root as trust anchor, the bwrap backend).

    async with CaseStudy(base) as study:
        run_id = await study.start_integration("--interval", "1")
        await study.add_sale("Seller", "Customer", "+1-555-0100", "1 Road", 18000)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from attestables import cheri

from .client import Client
from .local_daemon import LocalDaemon
from .local_service import LocalService
from .verifier import policy_for_build

SERVICES = ("store", "transport", "messaging")
PROGRAM = "integration_process.c"


@dataclass
class CaseStudy:
    base: Path
    reply_delay: float = 1.0
    crl_refresh: float = 1.0
    daemon_config: dict[str, Any] = field(default_factory=dict)
    logs: bool = True
    daemon: LocalDaemon | None = None
    services: dict[str, LocalService] = field(default_factory=dict)
    client: Client | None = None
    build: dict[str, Any] | None = None
    _log_files: list[IO[bytes]] = field(default_factory=list)

    def _log(self, name: str) -> IO[bytes] | int:
        if not self.logs:
            return subprocess.DEVNULL
        fh = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_files.append(fh)
        return fh

    async def start_processes(self) -> None:
        """The daemon and the three services, started, healthy, services registered."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.daemon = LocalDaemon(self.base / "launcher", log=self._log("launcher"), config=self.daemon_config)
        await self.daemon.start()
        crl_url = f"{self.daemon.http_url}/api/v1/crl"
        self.services = {
            kind: LocalService(kind, self.base / kind, crl_url=crl_url, crl_refresh=self.crl_refresh,
                               reply_delay=self.reply_delay, log=self._log(kind))
            for kind in SERVICES
        }
        await asyncio.gather(*(s.start() for s in self.services.values()))
        self.client = await Client.connect(self.daemon.url, self.daemon.token)
        for kind, service in self.services.items():
            await self.register(kind)

    async def register(self, kind: str) -> dict[str, Any]:
        service = self.services[kind]
        assert self.client is not None
        return await self.client.call("services.register", {"service_id": kind, "url": service.url,
                                                            "tls_ca_pem": service.tls_pem})

    async def build_integration(self, source: Path | None = None) -> dict[str, Any]:
        """Upload and build the integration process; returns the build record."""
        assert self.client is not None
        path = source or cheri.RUNTIME_DIR.parent / PROGRAM
        uploaded = await self.client.call("sources.upload", {"name": PROGRAM, "content": path.read_text()})
        started = await self.client.call("builds.start", {"source_id": uploaded["source_id"]})
        self.build = await wait_state(self.client, "builds.state", "build_id", started["build_id"],
                                      {"succeeded", "failed", "cancelled"})
        if self.build["state"] != "succeeded":
            diagnostics = "; ".join(f"{d['file']}:{d['line']}: {d['message']}"
                                    for d in self.build["diagnostics"][:5])
            raise RuntimeError(f"integration_process.c did not build: {diagnostics or self.build['error']}")
        return self.build

    async def policy_toml(self, build: dict[str, Any] | None = None) -> str:
        build = build or self.build
        assert build is not None
        return policy_for_build(elf_sha256=build["artefact"]["sha256"], source_sha256=build["source_sha256"],
                                trusted_roots=("root.pem",), name="integration process",
                                require_backend="bwrap").to_toml()

    async def push_policy(self, toml: str | None = None, kinds: tuple[str, ...] = SERVICES) -> None:
        """Give the services a policy (by default: exactly the integration build)."""
        assert self.client is not None
        root = (await self.client.call("ca.info"))["root_pem"]
        text = toml if toml is not None else await self.policy_toml()
        await asyncio.gather(*(self.services[k].admin("POST", "/admin/policy",
                                                      {"toml": text, "roots": {"root.pem": root}})
                               for k in kinds))

    async def start(self) -> "CaseStudy":
        await self.start_processes()
        await self.build_integration()
        await self.push_policy()
        return self

    async def start_integration(self, *args: str, limits: dict[str, int] | None = None) -> str:
        assert self.client is not None and self.build is not None
        params: dict[str, Any] = {"build_id": self.build["build_id"], "args": list(args)}
        if limits:
            params["limits"] = limits
        return (await self.client.call("runs.start", params))["run_id"]

    async def add_sale(self, seller: str, customer: str, phone: str, address: str, total_cents: int) -> int:
        result = await self.services["store"].admin("POST", "/admin/sales", {
            "seller": seller, "customer": customer, "phone": phone, "address": address,
            "total_cents": total_cents})
        return int(result["id"])

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        await asyncio.gather(*(s.stop() for s in self.services.values()), return_exceptions=True)
        if self.daemon is not None:
            await self.daemon.stop()
        for fh in self._log_files:
            fh.close()

    async def __aenter__(self) -> "CaseStudy":
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def wait_state(client: Client, topic: str, key: str, value: str, terminal: set[str],
                     timeout: float = 120) -> dict[str, Any]:
    """Wait (by events, not polling) until the build or run named reaches a terminal state."""
    method = "builds.get" if topic == "builds.state" else "runs.get"
    async with await client.subscribe([topic], filter={key: value}) as sub:
        record = await client.call(method, {key: value})
        if record["state"] in terminal:
            return record
        async with asyncio.timeout(timeout):
            async for event in sub:
                if event.data.get("state") in terminal:
                    return event.data
                if event.topic == "events.gap":
                    record = await client.call(method, {key: value})
                    if record["state"] in terminal:
                        return record
    raise RuntimeError(f"{value}: stream ended before a terminal state")


def environment_summary(study: CaseStudy) -> dict[str, Any]:
    """Where everything is: URLs, state dirs, token files (for the demo's last words)."""
    assert study.daemon is not None
    return {
        "launcher": {"url": study.daemon.url, "state_dir": str(study.daemon.state_dir),
                     "token_file": str(study.daemon.state_dir / "api-token"), "pid": study.daemon.proc.pid
                     if study.daemon.proc else None},
        "services": {k: {"url": s.url, "state_dir": str(s.state_dir), "admin_token_file":
                         str(Path(s.state_dir) / "admin-token")} for k, s in study.services.items()},
        "logs": str(study.base),
        "pid": os.getpid(),
    }
