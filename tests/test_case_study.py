"""The EAI case study end to end: real processes, real HTTPS, real compiler, real sandbox.

One :class:`~attestables.shared.case_study.CaseStudy` (a launcher daemon, the store, transport
and messaging services, each a process of its own on loopback; ``integration_process.c``
uploaded, built and allowed by each service's policy) is shared by every test of this module:
it is started once, on the module's event loop. Each test starts its own run of the
integration process with ``--after-id`` set to the store's last sale, so it only handles the
sales it adds itself, and stops that run when it is done; a test that changes shared state (a
policy, a registration, a stopped service) puts it back in ``finally``.

Nothing here sleeps to wait: every wait is on the run's events (output, state, trace rows)
with a timeout, and fails with the run's output and trace.

The customers are invented (phones in the 555-01xx range reserved for fiction). The last
test checks that none of their names, phones or addresses ever reached the launcher: not its
state directory, not its log, not its memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from attestables.apps.base.tls import create_certificate, server_context
from attestables.shared import protocol
from attestables.shared.case_study import SERVICES, CaseStudy
from attestables.shared.client import Client, output_bytes
from attestables.shared.errors import Conflict
from attestables.shared.local_daemon import free_port
from attestables.shared.local_service import LocalService
from attestables.shared.verifier import policy_for_build

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

SELLER = "Northwind Outlet"


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    address: str

    def needles(self) -> tuple[str, ...]:
        return (self.name, self.phone, self.address)


# Invented people. Each string carries a tag drawn at import time, so that no program's code
# holds it as a constant: the daemon is started through the CLI, which imports every command,
# `attestables demo` included, so the demo's own "Ada Lovegood" sits in the daemon's memory as an
# interned literal (a scan for it there finds the literal, not a leak).
TAG = secrets.token_hex(3)
DIGITS = f"{secrets.randbelow(10_000):04d}"


def person(name: str, phone: str, address: str) -> Person:
    first, rest = address.split(",", 1)
    return Person(f"{name} {TAG}", f"{phone}-{DIGITS}", f"{first} {TAG},{rest}")


ADA = person("Ada Lovegood", "+1-555-0142", "12 Imaginary Lane, Notaplace")
BRAM = person("Bram Placeholder", "+1-555-0143", "9 Nowhere Street, Testville")
CORA = person("Cora Fictitia", "+1-555-0161", "77 Unreal Avenue, Nulltown")
DARIO = person("Dario Madeup", "+1-555-0162", "3 Pretend Close, Fakesby")
ESME = person("Esme Notreal", "+1-555-0163", "41 Mirage Row, Dreamham")
FINN = person("Finn Invented", "+1-555-0164", "8 Phantom Way, Elsewhere")
GWEN = person("Gwen Hypothetica", "+1-555-0165", "19 Conjecture Road, Maybury")

RUN_END = {"exited", "failed", "killed", "lost"}
WAIT_S = 20.0


# -- the shared case study ------------------------------------------------------------------


@dataclass
class Env:
    study: CaseStudy
    base: Path
    people: list[Person] = field(default_factory=list)

    @property
    def client(self) -> Client:
        assert self.study.client is not None
        return self.study.client

    def service(self, kind: str) -> LocalService:
        return self.study.services[kind]

    async def add_sale(self, person: Person, total_cents: int) -> int:
        self.people.append(person)
        return await self.study.add_sale(SELLER, person.name, person.phone, person.address, total_cents)

    async def last_sale_id(self) -> int:
        sales = (await self.service("store").admin("GET", "/admin/sales?limit=1000"))["sales"]
        return max((s["id"] for s in sales), default=0)

    async def trips(self, sale_id: int) -> list[dict[str, Any]]:
        trips = (await self.service("transport").admin("GET", "/admin/trips?limit=1000"))["trips"]
        return [t for t in trips if t["sale_id"] == sale_id]

    async def messages(self, sale_id: int) -> list[dict[str, Any]]:
        messages = (await self.service("messaging").admin("GET", "/admin/messages?limit=1000"))["messages"]
        return [m for m in messages if m["key"] == f"sale-{sale_id}"]

    async def verifications(self, kind: str) -> list[dict[str, Any]]:
        return (await self.service(kind).admin("GET", "/admin/verifications?limit=1000"))["verifications"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    base = tmp_path_factory.mktemp("case-study")
    async with CaseStudy(base) as study:
        yield Env(study, base)


# -- following one run ----------------------------------------------------------------------


class Run:
    """One run of the integration process, its output, state and trace rows as they arrive."""

    def __init__(self, env: Env, run_id: str, subscription: Any) -> None:
        self.env = env
        self.run_id = run_id
        self.output = ""
        self.traces: list[dict[str, Any]] = []
        self.record: dict[str, Any] | None = None
        self._sub = subscription
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self._sub:
            data = event.data
            if event.topic == protocol.EVENTS_GAP:
                raise AssertionError(f"events lost while following run {self.run_id}: {data}")
            if not isinstance(data, dict) or data.get("run_id") != self.run_id:
                continue
            if event.topic == protocol.RUNS_OUTPUT:
                self.output += output_bytes(data).decode("utf-8", "replace")
            elif event.topic == protocol.TRACES_MESSAGE:
                self.traces.append(data)
            elif event.topic == protocol.RUNS_STATE:
                self.record = data
            async with self._changed:
                self._changed.notify_all()

    @property
    def ended(self) -> bool:
        return self.record is not None and self.record["state"] in RUN_END

    def describe(self) -> str:
        rows = "\n".join(f"  #{t['id']} {t['service_id']} {t['op']} {t['outcome']} http={t['http_status']} "
                         f"{t['verification']}" for t in self.traces)
        return f"run {self.run_id} ({self.record and self.record['state']})\noutput:\n{self.output}\ntrace:\n{rows}"

    async def until(self, ready: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """Wait (on events) until ``ready()`` is truthy; returns its value."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while True:
                        if self._task.done():
                            self._task.result()  # raise what stopped the collector
                        value = ready()
                        if value:
                            return value
                        await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"waited {timeout} s for {what}\n{self.describe()}") from None

    async def line(self, pattern: str, timeout: float = WAIT_S) -> re.Match[str]:
        """The first output line matching ``pattern`` (a regular expression)."""
        regex = re.compile(pattern, re.MULTILINE)
        return await self.until(lambda: regex.search(self.output), f"output matching {pattern!r}", timeout)

    async def trace(self, match: Callable[[dict[str, Any]], bool], what: str,
                    timeout: float = WAIT_S) -> dict[str, Any]:
        """The first trace row of this run for which ``match`` holds."""
        return await self.until(lambda: next((t for t in self.traces if match(t)), None), what, timeout)

    async def finished(self, timeout: float = WAIT_S) -> dict[str, Any]:
        await self.until(lambda: self.ended, "the run to end", timeout)
        assert self.record is not None
        return self.record

    async def close(self) -> None:
        if not self.ended:
            try:
                self.record = await self.env.client.call("runs.stop", {"run_id": self.run_id})
            except Conflict:  # it ended by itself meanwhile
                self.record = await self.env.client.call("runs.get", {"run_id": self.run_id})
        await self._sub.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@asynccontextmanager
async def integration(env: Env, *args: str) -> AsyncIterator[Run]:
    """Start the integration process with ``args``, follow it, stop it at the end."""
    sub = await env.client.subscribe([protocol.RUNS_OUTPUT, protocol.RUNS_STATE, protocol.TRACES_MESSAGE])
    try:
        run_id = await env.study.start_integration(*args)
    except BaseException:
        await sub.close()
        raise
    run = Run(env, run_id, sub)
    try:
        yield run
    finally:
        await run.close()


def reason_codes(trace: dict[str, Any]) -> list[str]:
    return [r["code"] for r in trace["verification"]["reasons"]]


def ok(service: str, op: str) -> Callable[[dict[str, Any]], bool]:
    return lambda t: t["service_id"] == service and t["op"] == op and t["outcome"] == "ok"


# -- the flow -------------------------------------------------------------------------------


@dataclass
class Flow:
    run_id: str
    booked: int
    skipped: int
    output: str
    traces: list[dict[str, Any]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def flow(env: Env) -> Flow:
    """The demo's flow: a $180.00 sale (booked, messaged, accepted) and a $90.00 one (nothing)."""
    after = await env.last_sale_id()
    async with integration(env, "--interval", "1", "--after-id", str(after)) as run:
        booked = await env.add_sale(ADA, 18000)
        skipped = await env.add_sale(BRAM, 9000)
        await run.line(rf"^sale {skipped}: at or below threshold, skipped$")
        await run.line(rf"^sale {booked}: reply: accepted$")
        # The read that returned the acceptance is traced once it is answered.
        await run.until(lambda: sum(ok("messaging", "read")(t) for t in run.traces) >= 1, "the reply's trace")
    return Flow(run.run_id, booked, skipped, run.output, run.traces)


async def test_flow_end_to_end(env: Env, flow: Flow) -> None:
    # The $180.00 sale: booked, the customer messaged, the acceptance read.
    assert re.search(rf"^sale {flow.booked}: above threshold, booked trip \S+ \(new\), message \S+ sent \(new\)$",
                     flow.output, re.MULTILINE), flow.output
    trips = await env.trips(flow.booked)
    assert len(trips) == 1, trips
    trip = trips[0]
    assert (trip["customer"], trip["phone"], trip["destination"]) == (ADA.name, ADA.phone, ADA.address)
    assert trip["taxi_number"] and trip["driver_name"]
    messages = await env.messages(flow.booked)
    assert len(messages) == 1, messages
    message = messages[0]
    assert message["phone"] == ADA.phone and message["reply"] == "accepted"
    assert ADA.name in message["text"] and trip["taxi_number"] in message["text"]
    assert trip["driver_name"] in message["text"]
    # Both were done by this run's certificate.
    cert = await env.client.call("certs.get", {"run_id": flow.run_id})
    assert trip["booked_by"] == message["sent_by"] == cert["serial"]

    # The $90.00 sale: nothing booked, nobody messaged.
    assert await env.trips(flow.skipped) == []
    assert await env.messages(flow.skipped) == []

    # The launcher carried each step as ciphertext, and each service affirmed the certificate.
    for service, op in (("store", "read"), ("transport", "write"), ("messaging", "write"), ("messaging", "read")):
        rows = [t for t in flow.traces if ok(service, op)(t)]
        assert rows, f"no successful {op} of {service} in the trace"
        for t in rows:
            assert t["http_status"] == 200 and t["verification"]["status"] == "affirming"
            assert t["bytes_in"] > 0 and t["bytes_out"] > 0
            assert re.fullmatch(r"[0-9a-f]{64}", t["sha256_in"]) and re.fullmatch(r"[0-9a-f]{64}", t["sha256_out"])
    assert all(t["outcome"] == "ok" for t in flow.traces), [t["outcome"] for t in flow.traces]
    assert [t["service_id"] for t in flow.traces if t["op"] == "write"] == ["transport", "messaging"]

    # The same rows through traces.list, as stored.
    listed = (await env.client.call("traces.list", {"run_id": flow.run_id, "limit": 1000}))["traces"]
    assert {t["id"] for t in flow.traces} <= {t["id"] for t in listed}

    # What the program printed is metadata only.
    for text in (*ADA.needles(), *BRAM.needles(), trip["taxi_number"], trip["driver_name"]):
        assert text not in flow.output


# -- a policy that does not allow the build -------------------------------------------------


async def test_policy_for_another_build_is_refused(env: Env) -> None:
    other = policy_for_build(elf_sha256="0" * 64, trusted_roots=("root.pem",), name="another build",
                             require_backend="bwrap").to_toml()
    after = await env.last_sale_id()
    sale = await env.add_sale(CORA, 21000)
    await env.study.push_policy(other)
    try:
        async with integration(env, "--interval", "1", "--after-id", str(after),
                               "--backoff-min", "0.2", "--backoff-max", "0.4") as run:
            refused = await run.trace(lambda t: t["service_id"] == "store", "the store's answer")
            assert refused["outcome"] == "contraindicated" and refused["http_status"] == 403
            assert refused["verification"]["status"] == "contraindicated"
            assert "measurement_unknown" in reason_codes(refused), refused
            assert refused["bytes_out"] == 0 and refused["sha256_out"] is None
            await run.line(r"^pass 1 failed: reading sales: store refused our certificate: contraindicated")
            # The refusal is the store's own record too.
            cert = await env.client.call("certs.get", {"run_id": run.run_id})
            mine = [v for v in await env.verifications("store") if v["serial"] == cert["serial"]]
            assert mine and all(v["http_status"] == 403 and v["outcome"] == "contraindicated" for v in mine)
            assert "measurement_unknown" in [r["code"] for r in mine[0]["reasons"]]
            assert await env.trips(sale) == []
            assert not any(t["outcome"] == "ok" for t in run.traces)

            # The program keeps retrying (the policy may change): allowed again, the sale goes through.
            await env.study.push_policy()
            await run.line(rf"^sale {sale}: above threshold, booked trip \S+ \(new\)")
            assert len(await env.trips(sale)) == 1
    finally:
        await env.study.push_policy()


# -- a revoked certificate ------------------------------------------------------------------


async def test_revoked_certificate_is_refused(env: Env) -> None:
    after = await env.last_sale_id()
    async with integration(env, "--interval", "1", "--after-id", str(after),
                           "--backoff-min", "0.5", "--backoff-max", "1") as run:
        await run.trace(ok("store", "read"), "a first successful read of the store")
        cert = await env.client.call("certs.get", {"run_id": run.run_id})
        assert not cert["revoked"]
        revoked = await env.client.call("certs.revoke", {"serial": cert["serial"], "reason": "key_compromise"})
        assert revoked["revoked"] and revoked["revocation_reason"] == "key_compromise"
        # Each service fetches the CRL now rather than at its next refresh (1 s).
        for kind in SERVICES:
            refreshed = await env.service(kind).admin("POST", "/admin/crl/refresh")
            assert refreshed["crl"]["stale"] is False, refreshed
        sale = await env.add_sale(DARIO, 22000)

        first = await run.trace(lambda t: t["outcome"] != "ok", "a request refused after the revocation")
        assert first["service_id"] == "store" and first["http_status"] == 403, first
        assert first["verification"]["status"] == "contraindicated"
        assert "revoked" in reason_codes(first), first
        await run.line(r"reading sales: store refused our certificate: contraindicated")
        # Every request after the first refusal is refused too; the sale is never booked.
        await run.until(lambda: sum(t["outcome"] != "ok" for t in run.traces) >= 2, "a second refusal")
        later = [t for t in run.traces if t["id"] >= first["id"]]
        assert all(t["outcome"] == "contraindicated" and "revoked" in reason_codes(t) for t in later), later
    assert await env.trips(sale) == []
    mine = [v for v in await env.verifications("store") if v["serial"] == cert["serial"]]
    assert any(v["outcome"] == "contraindicated" and "revoked" in [r["code"] for r in v["reasons"]] for v in mine)


# -- a replayed request ---------------------------------------------------------------------


class RecordingProxy:
    """An HTTPS server of the test's own that forwards everything to one real service and keeps
    a copy of every request body: registered with the launcher in place of the service, it
    sees exactly what the broker posts (what anyone on the path between them could record)."""

    def __init__(self, target: LocalService, workdir: Path) -> None:
        self.target = target
        self.workdir = workdir
        self.port = free_port()
        self.recorded: list[tuple[str, bytes]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def tls_pem(self) -> str:
        return (self.workdir / "tls.pem").read_text()

    async def start(self) -> RecordingProxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        create_certificate(self.workdir / "tls.pem", self.workdir / "tls.key", common_name="recording proxy",
                           host="127.0.0.1")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        ssl_context = server_context(self.workdir / "tls.pem", self.workdir / "tls.key")
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=ssl_context).start()
        return self

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            self.recorded.append((request.path, body))
        assert self._session is not None
        async with self._session.request(request.method, self.target.url + request.path_qs, data=body or None,
                                         headers={"Content-Type": "application/json"} if body else None,
                                         ssl=self.target.ssl_context()) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def post_directly(service: LocalService, path: str, body: bytes) -> tuple[int, Any]:
    async with (aiohttp.ClientSession() as session,
                session.post(service.url + path, data=body, headers={"Content-Type": "application/json"},
                             ssl=service.ssl_context()) as resp):
        return resp.status, await resp.json(content_type=None)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_replayed_request_is_refused(env: Env) -> None:
    kinds = ("store", "transport")
    proxies = {kind: await RecordingProxy(env.service(kind), env.base / f"proxy-{kind}").start() for kind in kinds}
    try:
        for kind, proxy in proxies.items():
            record = await env.client.call("services.register", {"service_id": kind, "url": proxy.url,
                                                                 "tls_ca_pem": proxy.tls_pem})
            assert record["url"] == proxy.url
        after = await env.last_sale_id()
        sale = await env.add_sale(ESME, 23000)
        async with integration(env, "--interval", "1", "--after-id", str(after)) as run:
            await run.line(rf"^sale {sale}: above threshold, booked trip \S+ \(new\)")
            cert = await env.client.call("certs.get", {"run_id": run.run_id})
            # traces.list: every crossing answered so far (events arrive a batch later).
            listed = (await env.client.call("traces.list", {"run_id": run.run_id, "limit": 1000}))["traces"]
            sent = {t["sha256_in"] for t in listed}
            for kind, path in (("store", "/api/sales"), ("transport", "/api/trips")):
                recorded = [body for p, body in proxies[kind].recorded if p == path]
                assert recorded, f"the proxy in front of {kind} recorded no {path}"
                body = recorded[0]
                envelope = json.loads(body)
                assert set(envelope) == {"certificate", "nonce", "sealed"}
                # What the broker posted is the compartment's ciphertext, as its trace row says...
                assert hashlib.sha256(b64url_decode(envelope["sealed"])).hexdigest() in sent
                # ...and carries nothing of the customer in the clear.
                for text in ESME.needles():
                    assert text.encode() not in body
                # The same request again, straight to the service, while the certificate is still good.
                status, answer = await post_directly(env.service(kind), path, body)
                assert status == 409, answer
                assert answer["error"]["code"] == "replay"
                assert answer["verification"]["status"] == "affirming"  # refused for the nonce, not the cert
                log = [v for v in await env.verifications(kind) if v["nonce"] == envelope["nonce"]]
                assert [(v["http_status"], v["outcome"]) for v in log] == [(200, "ok"), (409, "replay")], log
                assert {v["serial"] for v in log} == {cert["serial"]}
            # The replayed booking booked nothing.
            assert len(await env.trips(sale)) == 1
    finally:
        for kind in kinds:
            await env.study.register(kind)
        for proxy in proxies.values():
            await proxy.close()
    services = {s["service_id"]: s for s in (await env.client.call("services.list"))["services"]}
    assert all(services[k]["url"] == env.service(k).url for k in kinds)


# -- a service that goes down ---------------------------------------------------------------


async def test_service_down_then_back(env: Env) -> None:
    transport = env.service("transport")
    registered = {s["service_id"]: s for s in (await env.client.call("services.list"))["services"]}["transport"]
    after = await env.last_sale_id()
    try:
        async with integration(env, "--interval", "1", "--after-id", str(after),
                               "--backoff-min", "0.5", "--backoff-max", "1") as run:
            await run.line(r"^integration process: certificate serial")
            transport.kill()  # as a crash would: no goodbye
            sale = await env.add_sale(FINN, 24000)

            down = await run.trace(lambda t: t["service_id"] == "transport", "the attempt to book")
            assert down["outcome"] == "unreachable", down
            assert down["http_status"] is None and down["bytes_out"] == 0 and down["sha256_out"] is None
            assert down["verification"] == {"status": None, "reasons": []}
            # The program says why and backs off: 0.5 s, then twice as long.
            await run.line(rf"^pass \d+ failed: sale {sale}: booking a taxi: the launcher refused the request to "
                           r"transport: .*; retrying in 0\.500s$")
            await run.line(r"failed again \(the same error, 2 times in a row\); retrying in 1s$")
            assert not any(t["service_id"] == "transport" and t["outcome"] != "unreachable" for t in run.traces)

            # Back on the same port, with the TLS certificate kept in its state dir: the pin still holds.
            await transport.start()
            assert transport.url == registered["url"]
            await run.line(rf"^sale {sale}: above threshold, booked trip \S+ \(new\), message \S+ sent \(new\)$")
            booked = await run.trace(ok("transport", "write"), "the booking after the restart")
            assert booked["http_status"] == 200
        assert len(await env.trips(sale)) == 1
        assert len(await env.messages(sale)) == 1
    finally:
        if transport.proc is None or transport.proc.poll() is not None:
            await transport.start()


# -- a second run does not book again -------------------------------------------------------


async def test_second_run_does_not_book_again(env: Env) -> None:
    after = await env.last_sale_id()
    sale = await env.add_sale(GWEN, 30000)
    outputs = []
    for _ in range(2):
        async with integration(env, "--once", "--interval", "0.5", "--after-id", str(after)) as run:
            record = await run.finished()
            assert (record["state"], record["exit_code"]) == ("exited", 0), run.describe()
            outputs.append(run.output)
    first = re.search(rf"^sale {sale}: above threshold, booked trip (\S+) \(new\), message (\S+) sent \(new\)$",
                      outputs[0], re.MULTILINE)
    assert first, outputs[0]
    trip_id, message_id = first.groups()
    assert re.search(rf"^sale {sale}: above threshold, booked trip {trip_id} \(existing\), "
                     rf"message {message_id} sent \(existing\)$", outputs[1], re.MULTILINE), outputs[1]
    assert f"sale {sale}: reply: accepted" in outputs[1]
    trips = await env.trips(sale)
    assert [str(t["id"]) for t in trips] == [trip_id]
    assert [str(m["id"]) for m in await env.messages(sale)] == [message_id]


# -- confidentiality ------------------------------------------------------------------------


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def read_all(paths: list[Path]) -> bytes:
    return b"\n".join(p.read_bytes() for p in paths)


ENCODINGS = ("utf-8", "utf-16-le", "utf-32-le")


def search(blobs: list[bytes], texts: list[str]) -> bytes | None:
    """The first occurrence of any of ``texts`` in ``blobs``, in any of ``ENCODINGS`` (CPython
    keeps an ASCII string as 1 byte per character; UTF-16 and UTF-32 cover wide strings). One
    compiled alternation: some 50 times faster than a ``in`` per needle over a process's memory."""
    regex = re.compile(b"|".join(re.escape(t.encode(e)) for t in texts for e in ENCODINGS))
    for blob in blobs:
        match = regex.search(blob)
        if match:
            return match.group()
    return None


def found_in(blobs: list[bytes], text: str) -> bool:
    return search(blobs, [text]) is not None


def memory_regions(pid: int) -> list[bytes]:
    """The contents of every readable writable or anonymous mapping (heap, stacks, arenas, the
    .data and .bss of every library) of a live process, through /proc/PID/mem. Regions the
    kernel will not read (e.g. a guard page, a mapping gone meanwhile) are skipped."""
    regions = []
    with open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps:
        lines = maps.read().splitlines()
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for line in lines:
            fields = line.split(maxsplit=5)
            perms = fields[1]
            name = fields[5].strip() if len(fields) > 5 else ""
            if perms[0] != "r" or name in ("[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]"):
                continue
            if "w" not in perms and name and not name.startswith("["):
                continue  # a read-only file mapping (code, constants) holds nothing the process received
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                regions.append(os.pread(fd, end - start, start))
            except OSError:
                continue
    finally:
        os.close(fd)
    return regions


async def test_confidentiality(env: Env, flow: Flow) -> None:
    """No name, phone or address of a customer ever reached the launcher: not its state dir
    (database and WAL, blobs, run outputs, keys), not its log file, not its memory."""
    study = env.study
    assert study.daemon is not None and study.daemon.proc is not None
    people = list(dict.fromkeys(env.people))
    assert ADA in people and BRAM in people
    needles = [text for person in people for text in person.needles()]

    # They are where they belong, in the services' databases: the search below is not vacuous.
    def database(kind: str) -> list[bytes]:
        files = [p for p in files_under(env.service(kind).state_dir) if p.name.startswith("service.db")]
        return [read_all(files)]

    store_db = database("store")
    for text in needles:
        assert found_in(store_db, text), f"{text!r} is not in the store's database"
    for kind in ("transport", "messaging"):
        assert found_in(database(kind), ADA.name) and found_in(database(kind), ADA.phone)
    assert found_in(database("transport"), ADA.address)

    # The launcher's state dir, every file of it.
    state = files_under(study.daemon.state_dir)
    names = {p.name for p in state}
    assert {"attestables.db", "api-token"} <= names, sorted(names)
    outputs = [p for p in state if p.suffix == ".out"]
    assert any(f"sale {flow.booked}: reply: accepted".encode() in p.read_bytes() for p in outputs), \
        "the run outputs were not among the files searched"
    for path in state:
        leaked = search([path.read_bytes()], needles)
        assert leaked is None, f"{leaked!r} found in the launcher's {path}"

    # The launcher's log (its stdout and stderr, kept by CaseStudy).
    log = (env.base / "launcher.log").read_bytes()
    assert log, "the launcher's log is empty"
    leaked = search([log], needles)
    assert leaked is None, f"{leaked!r} found in the launcher's log"

    # The launcher's memory, read as root would (docs/threat-model.md: root can read memory).
    memory = memory_regions(study.daemon.proc.pid)
    assert sum(map(len, memory)) > 1024 * 1024
    # Positive controls: what the daemon does hold is found by the same search.
    assert found_in(memory, study.daemon.token), "the memory search does not find the daemon's own token"
    assert found_in(memory, flow.traces[-1]["sha256_in"]), "the memory search does not find a trace digest"
    leaked = search(memory, needles)
    assert leaked is None, f"{leaked!r} found in the launcher's memory"

    # And the same reader does find customers' data in a process that holds it: the store.
    store = env.service("store")
    assert store.proc is not None
    assert found_in(memory_regions(store.proc.pid), ADA.name), "the memory reader misses data the store holds"
