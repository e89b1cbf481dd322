"""A recorded source: the console fed from a JSON file instead of a daemon.

The snapshot tests and the docs' screenshots run the real app on
:class:`FixtureSource`: it posts the same messages the connection worker posts (one
``connected``, one complete :class:`Snapshot`, then the event batches it was given) and
answers read calls from the recording, so the screens show real records with fixed ids
and times. Calls that would change something are recorded in :attr:`FixtureSource.calls`
and answered like the daemon would, without effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attestables.shared.client import Event
from attestables.shared.errors import NotFound

from .messages import CONNECTED, ConnectionChanged, EventBatch, Loaded, Snapshot
from .source import Post


class FixtureSource:
    """Answers from ``data`` (the format ``tests/console/record_fixture.py`` writes)."""

    def __init__(self, data: dict[str, Any], *, batches: Iterable[Iterable[Event]] = ()) -> None:
        self.data = data
        self.batches = [tuple(batch) for batch in batches]
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.reloads = 0

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> FixtureSource:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")), **kwargs)

    @property
    def url(self) -> str:
        return str(self.data.get("url", "fixture"))

    def snapshot(self) -> Snapshot:
        d = self.data
        traces = d.get("traces", [])
        return Snapshot(info=d.get("info"), ca=d.get("ca"), sources=d.get("sources", []), builds=d.get("builds", []),
                        runs=d.get("runs", []), certs=d.get("certs", []), services=d.get("services", []),
                        traces=traces, trace_count=max((t["id"] for t in traces), default=0), complete=True)

    async def stream(self, post: Post) -> None:
        post(ConnectionChanged(CONNECTED, self.url, server_version=self.data.get("server_version")))
        post(Loaded(self.snapshot()))
        for batch in self.batches:
            post(EventBatch(batch))

    def reload(self) -> None:
        self.reloads += 1

    async def close(self) -> None:
        pass

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append((method, params))
        p = params or {}
        d = self.data
        if method == "sources.get":
            for record in d.get("source_contents", {}).values():
                if record["source_id"] == p.get("source_id") and p.get("version") in (None, record["version"]):
                    return record
            raise NotFound(f"no source {p.get('source_id')}")
        if method == "builds.logs":
            return self._lookup("build_logs", p.get("build_id"), "build")
        if method == "runs.logs":
            return self._lookup("run_logs", p.get("run_id"), "run")
        if method == "certs.get":
            return self._lookup("cert_details", p.get("run_id"), "run certificate")
        if method == "attestation.get":
            cert = self._lookup("cert_details", p.get("run_id"), "run certificate")
            return {"run_id": p["run_id"], "serial": cert["serial"], "revoked": cert["revoked"],
                    "document": cert["document"]}
        if method in ("sources.list", "services.list", "builds.list", "runs.list"):
            kind = method.split(".")[0]
            return {kind: d.get(kind, [])}
        if method == "builds.start":
            return {"build_id": "b_0000000000000001"}
        if method == "runs.start":
            return {"run_id": "r_0000000000000001"}
        if method == "sources.upload":
            return {"source_id": "s_0000000000000001", "name": p.get("name"), "version": 1,
                    "sha256": "0" * 64, "size": len(str(p.get("content", "")))}
        if method == "runs.stop":
            run = next((r for r in d.get("runs", []) if r["run_id"] == p.get("run_id")), None)
            if run is None:
                raise NotFound(f"no run {p.get('run_id')}")
            return {**run, "state": "killed", "reason": "stopped"}
        if method == "certs.revoke":
            cert = next((c for c in d.get("certs", []) if c["serial"] == p.get("serial")), None)
            if cert is None:
                raise NotFound(f"no certificate {p.get('serial')}")
            return {**cert, "revoked": True, "revocation_reason": p.get("reason", "unspecified")}
        if method == "sources.delete":
            return {"source_id": p.get("source_id"), "deleted": True}
        if method == "services.remove":
            return {"service_id": p.get("service_id"), "removed": True}
        if method == "services.register":
            return {"service_id": p.get("service_id"), "url": p.get("url"), "public_key": "",
                    "public_key_sha256": "0" * 64, "endpoints": {}, "tls": "fingerprint",
                    "tls_fingerprint": p.get("tls_fingerprint"), "created_at": None, "updated_at": None}
        raise NotFound(f"the fixture has no answer for {method}")

    def _lookup(self, key: str, object_id: Any, what: str) -> Any:
        try:
            return self.data[key][object_id]
        except KeyError:
            raise NotFound(f"no {what} {object_id}") from None
