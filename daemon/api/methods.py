"""Every API method: its params schema and a thin handler over the daemon's managers.

``docs/api.md`` documents each one; keep the two in step.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from attestables.shared import protocol
from attestables.shared.errors import InvalidParams, NotFound

from .dispatch import CallContext, Params, method

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# Numbers that reach SQLite stay within its 64-bit INTEGER (a larger one is invalid_params,
# not an OverflowError in the handler).
SQL_INT_MAX = 2**63 - 1
Version = Annotated[int, msgspec.Meta(ge=1, le=SQL_INT_MAX)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=SQL_INT_MAX)]


# -- system ---------------------------------------------------------------------------------

@method("system.info")
async def system_info(ctx: CallContext, _: Any) -> dict[str, Any]:
    """Version, platform, toolchains, compartment backends and the state dir."""
    return ctx.daemon.info()


# -- sources --------------------------------------------------------------------------------

class UploadParams(Params):
    name: Annotated[str, msgspec.Meta(max_length=128)]
    content: str


class SourceParams(Params):
    source_id: Id
    version: Version | None = None


class SourceIdParams(Params):
    source_id: Id


@method("sources.upload", UploadParams)
async def sources_upload(ctx: CallContext, p: UploadParams) -> dict[str, Any]:
    """Store a C source; an existing name gets a new version."""
    return await ctx.daemon.sources.upload(p.name, p.content)


@method("sources.list")
async def sources_list(ctx: CallContext, _: Any) -> dict[str, Any]:
    """Every source with its latest version."""
    return {"sources": await ctx.daemon.sources.list()}


@method("sources.get", SourceParams)
async def sources_get(ctx: CallContext, p: SourceParams) -> dict[str, Any]:
    """One version of a source (latest by default), with its content."""
    return await ctx.daemon.sources.get(p.source_id, p.version)


@method("sources.delete", SourceIdParams)
async def sources_delete(ctx: CallContext, p: SourceIdParams) -> dict[str, Any]:
    """Delete a source and all its versions (refused while one of its builds runs)."""
    daemon = ctx.daemon
    active = ("an active run" if daemon.runs.active_for_source(p.source_id)
              else "a build in progress" if daemon.builds.active_for_source(p.source_id) else None)
    await daemon.sources.delete(p.source_id, active)
    return {"source_id": p.source_id, "deleted": True}


# -- builds ---------------------------------------------------------------------------------

class BuildStartParams(Params):
    source_id: Id
    version: Version | None = None
    toolchain: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    flags: Annotated[list[str], msgspec.Meta(max_length=32)] | None = None


class BuildIdParams(Params):
    build_id: Id


class ListParams(Params):
    limit: Limit = 200


@method("builds.start", BuildStartParams)
async def builds_start(ctx: CallContext, p: BuildStartParams) -> dict[str, Any]:
    """Queue a sandboxed compile of a source version."""
    return await ctx.daemon.builds.start(p.source_id, p.version, p.toolchain, p.flags)


@method("builds.list", ListParams)
async def builds_list(ctx: CallContext, p: ListParams) -> dict[str, Any]:
    """Builds, newest first."""
    return {"builds": await ctx.daemon.builds.list(p.limit)}


@method("builds.get", BuildIdParams)
async def builds_get(ctx: CallContext, p: BuildIdParams) -> dict[str, Any]:
    """One build: state, diagnostics, artefact measurement, toolchain."""
    return await ctx.daemon.builds.get(p.build_id)


@method("builds.logs", BuildIdParams)
async def builds_logs(ctx: CallContext, p: BuildIdParams) -> dict[str, Any]:
    """The build's compile log so far, and the event seq it is complete up to."""
    return await ctx.daemon.builds.logs(p.build_id)


@method("builds.cancel", BuildIdParams)
async def builds_cancel(ctx: CallContext, p: BuildIdParams) -> dict[str, Any]:
    """Cancel a queued or running build."""
    return await ctx.daemon.builds.cancel(p.build_id)


# -- runs -----------------------------------------------------------------------------------

class RunStartParams(Params):
    build_id: Id
    backend: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    args: list[str] | None = None
    limits: dict[str, int] | None = None


class RunIdParams(Params):
    run_id: Id


class RunListParams(Params):
    limit: Limit = 200
    state: Annotated[str, msgspec.Meta(max_length=16)] | None = None


@method("runs.start", RunStartParams)
async def runs_start(ctx: CallContext, p: RunStartParams) -> dict[str, Any]:
    """Start a succeeded build's artefact in a compartment."""
    return await ctx.daemon.runs.start(p.build_id, p.backend, p.args, p.limits)


@method("runs.list", RunListParams)
async def runs_list(ctx: CallContext, p: RunListParams) -> dict[str, Any]:
    """Runs, newest first (optionally only those in one state)."""
    if p.state is not None and p.state not in protocol.RUN_STATES:
        raise InvalidParams(f"unknown state {p.state!r}; known: {', '.join(protocol.RUN_STATES)}", field="state")
    return {"runs": await ctx.daemon.runs.list(p.limit, p.state)}


@method("runs.get", RunIdParams)
async def runs_get(ctx: CallContext, p: RunIdParams) -> dict[str, Any]:
    """One run: state, pid, exit code or signal, times, backend, limits."""
    return await ctx.daemon.runs.get(p.run_id)


@method("runs.logs", RunIdParams)
async def runs_logs(ctx: CallContext, p: RunIdParams) -> dict[str, Any]:
    """The run's output so far, and the event seq it is complete up to."""
    return await ctx.daemon.runs.logs(p.run_id)


@method("runs.stop", RunIdParams)
async def runs_stop(ctx: CallContext, p: RunIdParams) -> dict[str, Any]:
    """SIGTERM the program, SIGKILL after the grace period; returns the final run."""
    return await ctx.daemon.runs.stop(p.run_id)


# -- events ---------------------------------------------------------------------------------

class EventFilter(Params):
    build_id: Id | None = None
    run_id: Id | None = None
    service_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class SubscribeParams(Params):
    topics: Annotated[list[str], msgspec.Meta(min_length=1, max_length=16)]
    filter: EventFilter | None = None
    since: Seq | None = None


class UnsubscribeParams(Params):
    subscription: Annotated[str, msgspec.Meta(max_length=64)]


@method("events.subscribe", SubscribeParams)
async def events_subscribe(ctx: CallContext, p: SubscribeParams) -> dict[str, Any]:
    """Stream events of the given topics (optionally one build or run), from ``since``."""
    unknown = sorted(set(p.topics) - protocol.TOPICS)
    if unknown:
        raise InvalidParams(f"unknown topic(s) {', '.join(unknown)}; known: {', '.join(sorted(protocol.TOPICS))}",
                            field="topics")
    if ctx.connection is None:
        raise InvalidParams("events.subscribe needs a websocket connection")
    flt = {k: v for k, v in msgspec.structs.asdict(p.filter).items() if v is not None} if p.filter else {}
    # No await between registering and replaying: nothing published in between is lost.
    sub_id = ctx.daemon.bus.subscribe(ctx.connection, frozenset(p.topics), flt, p.since, owner=ctx.connection)
    return {"subscription": sub_id, "seq": ctx.daemon.bus.seq, "boot_id": ctx.daemon.boot_id}


@method("events.unsubscribe", UnsubscribeParams)
async def events_unsubscribe(ctx: CallContext, p: UnsubscribeParams) -> dict[str, Any]:
    """End a subscription of this connection."""
    if not ctx.daemon.bus.unsubscribe(p.subscription, owner=ctx.connection):
        raise NotFound(f"no subscription {p.subscription} on this connection", subscription=p.subscription)
    return {"subscription": p.subscription, "unsubscribed": True}


# -- certificates and attestation -------------------------------------------------------

Serial = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[0-9a-fA-F]+$")]


class CertGetParams(Params):
    serial: Serial | None = None
    run_id: Id | None = None


class CertListParams(Params):
    limit: Limit = 200
    run_id: Id | None = None


class RevokeParams(Params):
    serial: Serial
    reason: Annotated[str, msgspec.Meta(max_length=40)] = "unspecified"


@method("ca.info")
async def ca_info(ctx: CallContext, _: Any) -> dict[str, Any]:
    """The root and issuing CA certificates, their fingerprints and the CRL's next update."""
    return ctx.daemon.certs.info()


@method("ca.crl")
async def ca_crl(ctx: CallContext, _: Any) -> dict[str, Any]:
    """The issuing CA's current CRL as PEM (what GET /api/v1/crl serves), for a client that
    appraises certificates as the services do."""
    info = ctx.daemon.certs.info()
    return {"crl_pem": ctx.daemon.certs.crl(pem=True).decode(), "next_update": info["crl_next_update"],
            "revoked": info["revoked"]}


@method("certs.list", CertListParams)
async def certs_list(ctx: CallContext, p: CertListParams) -> dict[str, Any]:
    """Run certificates, newest first, with their revocation state."""
    return {"certificates": await ctx.daemon.certs.list(p.limit, p.run_id)}


@method("certs.get", CertGetParams)
async def certs_get(ctx: CallContext, p: CertGetParams) -> dict[str, Any]:
    """One run certificate (by serial or run): PEM, chain PEM and attestation document."""
    return await ctx.daemon.certs.get(serial=p.serial, run_id=p.run_id)


@method("certs.revoke", RevokeParams)
async def certs_revoke(ctx: CallContext, p: RevokeParams) -> dict[str, Any]:
    """Revoke a run certificate; the CRL is re-signed at once."""
    return await ctx.daemon.certs.revoke(p.serial.lower(), p.reason)


@method("attestation.get", RunIdParams)
async def attestation_get(ctx: CallContext, p: RunIdParams) -> dict[str, Any]:
    """A run's attestation document (as certified) with its certificate's serial."""
    cert = await ctx.daemon.certs.get(serial=None, run_id=p.run_id)
    return {"run_id": p.run_id, "serial": cert["serial"], "revoked": cert["revoked"], "document": cert["document"]}


# -- services and traces (the broker) ---------------------------------------------------

ServiceId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class ServiceRegisterParams(Params):
    service_id: ServiceId
    url: Annotated[str, msgspec.Meta(max_length=2048)]
    tls_ca_pem: Annotated[str, msgspec.Meta(max_length=65536)] | None = None
    tls_fingerprint: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class ServiceIdParams(Params):
    service_id: ServiceId


class TracesListParams(Params):
    run_id: Id | None = None
    service_id: ServiceId | None = None
    since: Seq | None = None
    limit: Limit = 200


@method("services.register", ServiceRegisterParams)
async def services_register(ctx: CallContext, p: ServiceRegisterParams) -> dict[str, Any]:
    """Register (or update) a service: its sealing key is fetched over the pinned TLS."""
    return await ctx.daemon.broker.registry.register(p.service_id, p.url, p.tls_ca_pem, p.tls_fingerprint)


@method("services.list")
async def services_list(ctx: CallContext, _: Any) -> dict[str, Any]:
    """Registered services with their keys and endpoints."""
    return {"services": [s.to_dict() for s in ctx.daemon.broker.registry.all()]}


@method("services.remove", ServiceIdParams)
async def services_remove(ctx: CallContext, p: ServiceIdParams) -> dict[str, Any]:
    """Forget a service (runs already started keep the key they were given)."""
    await ctx.daemon.broker.registry.remove(p.service_id)
    return {"service_id": p.service_id, "removed": True}


@method("traces.list", TracesListParams)
async def traces_list(ctx: CallContext, p: TracesListParams) -> dict[str, Any]:
    """Trace rows (oldest first) after ``since`` (a trace id), optionally for one run or service."""
    rows = await ctx.daemon.broker.traces(run_id=p.run_id, service_id=p.service_id, since=p.since, limit=p.limit)
    return {"traces": rows, "next": rows[-1]["id"] if rows else p.since}
