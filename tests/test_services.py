"""The three digital services, as real processes over real HTTPS on loopback.

Run certificates come from a real test CA (``daemon.ca``), with attestation documents that
do or do not match the policy written here; requests are sealed with ``shared.hpke`` to the
service's published key, and answers are opened with the test's X25519 key, exactly as the
integration process does. A tiny HTTP server in the test plays the launcher's CRL endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import os
import re
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from attestables.daemon.ca import CertificateAuthority, load_key
from attestables.shared import eai, hpke
from attestables.shared.attestation import (
    AttestationDocument,
    Compartment,
    Elf,
    Isolation,
    Launcher,
    Measurement,
    Platform,
    Run,
    Toolchain,
    compute_ueid,
    document_extension,
)
from attestables.shared.local_service import LocalService, ServiceCallError

ELF = "e" * 64
SRC = "5" * 64
OTHER_ELF = "a" * 64
REPLY_DELAY = 0.6
FICTIONAL_PHONE = re.compile(r"^\+1-555-01\d\d$")


# The launcher's side, played by the test ---------------------------------------------


class CrlServer:
    """``GET /crl`` answers the current CRL (DER), like the launcher's ``/api/v1/crl``."""

    def __init__(self, der: bytes) -> None:
        self.der = der
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = outer.der
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crl"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class RunIdentity:
    """What a compartment holds: its private key and its run certificate (+ chain)."""

    key: X25519PrivateKey
    pem: str
    serial: int

    def seal(self, public_key: bytes, service_id: str, document: Any, nonce: bytes) -> bytes:
        plaintext = document if isinstance(document, bytes) else json.dumps(document).encode()
        return hpke.seal(public_key, plaintext, hpke.build_info("request", service_id, self.serial, nonce))

    def open(self, service_id: str, sealed_b64: str, nonce: bytes) -> Any:
        sealed = eai.b64url_decode(sealed_b64)
        return json.loads(hpke.open(self.key, sealed, hpke.build_info("response", service_id, self.serial, nonce)))


def issue(ca: CertificateAuthority, *, elf: str = ELF, run_id: str = "run-1",
          public_key: bytes | None = None) -> RunIdentity:
    key = X25519PrivateKey.generate()
    raw = public_key if public_key is not None else hpke.public_key_bytes(key)
    document = AttestationDocument.create(
        public_key=raw,
        run=Run(run_id=run_id, build_id="build-1", pid=42, started_at="2025-03-01T10:00:00.000Z"),
        measurements=[Measurement(type="elf-sha256", digest=elf), Measurement(type="source-sha256", digest=SRC)],
        toolchain=Toolchain(name="native", compiler="cc", version="12", argv=["cc", "integration_process.c"]),
        elf=Elf(machine="x86_64", purecap=False, interpreter=None),
        platform=Platform(os="Linux", release="6.1", machine="x86_64", cpu_model="", cpu_count=2,
                          memory_bytes=1 << 30, cheri=False),
        compartment=Compartment(backend="bwrap",
                                isolation=Isolation(network="none", filesystem="readonly", rlimits={}), evidence={}),
        swname="integration_process",
        swversion="1",
        launcher=Launcher(version="0.1.0", issuing_ca_fingerprint=ca.issuing_fingerprint),
        ueid=compute_ueid("test machine"),
        hwmodel="generic x86_64",
        dbgstat="enabled",
    )
    issued = ca.issue_run_certificate(public_key=raw, run_id=run_id, document=document)
    return RunIdentity(key, issued.pem.decode() + ca.chain_pem().decode(), int(issued.serial, 16))


def write_policy(path: Path, root: Path, *, elf: str = ELF, name: str = "test policy") -> Path:
    path.write_text(
        f'name = "{name}"\ntrusted_roots = ["{root}"]\nrequire_backend = ["bwrap"]\n'
        f'[[allow]]\nelf-sha256 = "{elf}"\nsource-sha256 = "{SRC}"\n'
    )
    return path


# Fixtures ----------------------------------------------------------------------------


@dataclass
class World:
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    crl: CrlServer
    policy: Path
    base: Path
    store: LocalService
    transport: LocalService
    messaging: LocalService


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("services")
    ca = CertificateAuthority.create(base / "ca", name="services-test")
    other_ca = CertificateAuthority.create(base / "other-ca", name="another-launcher")
    crl = CrlServer(ca.crl_der())
    policy = write_policy(base / "policy.toml", base / "ca" / "root.pem")
    log = open(base / "services.log", "ab")  # noqa: SIM115
    common: dict[str, Any] = dict(policy=policy, crl_url=crl.url, crl_refresh=0.2, log=log)
    services = [
        LocalService("store", base / "store", **common),
        LocalService("transport", base / "transport", **common),
        LocalService("messaging", base / "messaging", reply_delay=REPLY_DELAY, **common),
    ]
    asyncio.run(_start_all(services))
    try:
        yield World(ca, other_ca, crl, policy, base, *services)
    finally:
        asyncio.run(_stop_all(services))
        crl.close()
        log.close()


async def _start_all(services: list[LocalService]) -> None:
    await asyncio.gather(*(s.start() for s in services))


async def _stop_all(services: list[LocalService]) -> None:
    await asyncio.gather(*(s.stop() for s in services))


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    nonce: bytes


async def attested(service: LocalService, path: str, document: Any, run: RunIdentity, *,
                   nonce: bytes | None = None, service_id: str | None = None,
                   body: dict[str, Any] | None = None, sealed: bytes | None = None) -> Reply:
    """POST an attested request as the launcher's broker would."""
    nonce = nonce if nonce is not None else os.urandom(16)
    if sealed is None:
        sealed = run.seal(await service.public_key(), service_id or service.service_id, document, nonce)
    payload = body if body is not None else {"certificate": run.pem, "nonce": eai.b64url(nonce),
                                             "sealed": eai.b64url(sealed)}
    return await post(service, path, json.dumps(payload).encode(), nonce)


async def post(service: LocalService, path: str, data: bytes, nonce: bytes = b"") -> Reply:
    async with aiohttp.ClientSession() as session:
        async with session.post(service.url + path, data=data, ssl=service.ssl_context(),
                                headers={"Content-Type": "application/json"}) as resp:
            return Reply(resp.status, await resp.json(content_type=None), nonce)


def codes(reply: Reply) -> set[str]:
    return {r["code"] for r in (reply.body.get("verification") or {}).get("reasons", [])}


async def last_verification(service: LocalService) -> dict[str, Any]:
    entries = (await service.admin("GET", "/admin/verifications?limit=1000"))["verifications"]
    return entries[-1]


# Public endpoints ---------------------------------------------------------------------


async def test_public_key_and_health_need_no_token(world: World):
    for service in (world.store, world.transport, world.messaging):
        async with aiohttp.ClientSession() as session:
            async with session.get(service.url + eai.PUBLIC_KEY_PATH, ssl=service.ssl_context()) as resp:
                document = await resp.json()
            async with session.get(service.url + eai.HEALTH_PATH, ssl=service.ssl_context()) as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "ok"
        assert document["service_id"] == service.kind
        assert document["endpoints"] == eai.ENDPOINTS[service.kind]
        assert len(eai.b64url_decode(document["public_key"])) == 32


async def test_tls_certificate_is_pinnable_p256_for_loopback(world: World):
    cert = x509.load_pem_x509_certificate(world.store.tls_pem.encode())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    # The launcher's fingerprint pin works against the live service.
    pin = aiohttp.Fingerprint(bytes.fromhex(world.store.tls_fingerprint))
    async with aiohttp.ClientSession() as session:
        async with session.get(world.store.url + "/healthz", ssl=pin) as resp:
            assert resp.status == 200


def test_key_files_are_private(world: World):
    for service in (world.store, world.transport, world.messaging):
        for name in ("sealing.key", "tls.key", "admin-token"):
            assert stat.S_IMODE((service.state_dir / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE((service.state_dir / "tls.pem").stat().st_mode) == 0o644


async def test_seed_data_is_present_and_fictional(world: World):
    sales = (await world.store.admin("GET", "/admin/sales"))["sales"]
    assert len(sales) >= 5
    assert all(FICTIONAL_PHONE.match(s["phone"]) for s in sales)
    assert any(s["total_cents"] > 15000 for s in sales) and any(s["total_cents"] <= 15000 for s in sales)
    taxis = (await world.transport.admin("GET", "/admin/taxis"))["taxis"]
    assert len(taxis) >= 3 and all(t["driver_name"] and t["taxi_number"] for t in taxis)
    messages = (await world.messaging.admin("GET", "/admin/messages"))["messages"]
    assert messages and all(FICTIONAL_PHONE.match(m["phone"]) for m in messages)


# Good requests, one per endpoint ------------------------------------------------------


async def test_store_releases_sales_after_an_id(world: World):
    run = issue(world.ca)
    reply = await attested(world.store, "/api/sales", {"after_id": 2, "limit": 3}, run)
    assert reply.status == 200, reply.body
    assert reply.body["verification"] == {"status": "affirming", "reasons": []}
    answer = run.open("store", reply.body["sealed"], reply.nonce)
    assert [s["id"] for s in answer["sales"]] == [3, 4, 5]
    assert answer["last_id"] == 5
    assert set(answer["sales"][0]) == {"id", "seller", "customer", "phone", "address", "total_cents", "date"}
    # Only the compartment's key opens it: another key, or the request direction, does not.
    with pytest.raises(hpke.OpenError):
        issue(world.ca).open("store", reply.body["sealed"], reply.nonce)
    with pytest.raises(hpke.OpenError):
        hpke.open(run.key, eai.b64url_decode(reply.body["sealed"]),
                  hpke.build_info("request", "store", run.serial, reply.nonce))
    entry = await last_verification(world.store)
    assert (entry["outcome"], entry["http_status"], entry["status"]) == ("ok", 200, "affirming")
    assert entry["serial"] == format(run.serial, "x") and entry["nonce"] == eai.b64url(reply.nonce)


async def test_a_sale_added_by_the_operator_is_read_by_the_compartment(world: World):
    sale = {"seller": "Example Outfitters", "customer": "Zed Example", "phone": "+1-555-0150",
            "address": "9 Example Street, Anytown", "total_cents": 20000}
    added = await world.store.admin("POST", "/admin/sales", sale)
    run = issue(world.ca)
    reply = await attested(world.store, "/api/sales", {"after_id": added["id"] - 1, "limit": 100}, run)
    answer = run.open("store", reply.body["sealed"], reply.nonce)
    assert answer["sales"][0] == {**sale, "id": added["id"], "date": answer["sales"][0]["date"]}
    assert answer["last_id"] == added["id"]
    # Polling on from last_id: nothing new.
    reply = await attested(world.store, "/api/sales", {"after_id": answer["last_id"], "limit": 10}, run)
    assert run.open("store", reply.body["sealed"], reply.nonce) == {"sales": [], "last_id": answer["last_id"]}


async def test_transport_books_a_sale_once(world: World):
    run = issue(world.ca)
    booking = {"sale_id": 1, "customer": "Alice Example", "pickup": "Example Outfitters",
               "destination": "12 Example Street, Anytown", "phone": "+1-555-0101", "fare_cents": 1850}
    first = await attested(world.transport, "/api/trips", booking, run)
    assert first.status == 200, first.body
    trip = run.open("transport", first.body["sealed"], first.nonce)
    assert set(trip) == {"trip_id", "taxi_number", "driver_name", "eta_minutes", "existing"}
    assert trip["existing"] is False and trip["taxi_number"] and trip["driver_name"] and trip["eta_minutes"] > 0
    # Booked again (another request, even under another run's certificate): the first trip.
    other = issue(world.ca, run_id="run-2")
    again = await attested(world.transport, "/api/trips", {**booking, "fare_cents": 999}, other)
    assert again.status == 200
    assert other.open("transport", again.body["sealed"], again.nonce) == {**trip, "existing": True}
    trips = (await world.transport.admin("GET", "/admin/trips"))["trips"]
    assert [t["sale_id"] for t in trips].count(1) == 1
    assert next(t for t in trips if t["sale_id"] == 1)["booked_by"] == format(run.serial, "x")


async def test_messaging_sends_once_per_key_and_the_customer_accepts_after_the_delay(world: World):
    run = issue(world.ca)
    message = {"phone": "+1-555-0101", "text": "Your taxi TX-101 is booked.\nReply YES to accept.",
               "key": "sale-1"}
    sent = await attested(world.messaging, "/send-message", message, run)
    assert sent.status == 200, sent.body
    first = run.open("messaging", sent.body["sealed"], sent.nonce)
    assert first["existing"] is False and first["message_id"] > 0
    again = await attested(world.messaging, "/send-message", message, run)
    assert run.open("messaging", again.body["sealed"], again.nonce) == {**first, "existing": True}

    query = {"message_id": first["message_id"]}
    reply = await attested(world.messaging, "/api/replies", query, run)
    assert run.open("messaging", reply.body["sealed"], reply.nonce) == {
        "message_id": first["message_id"], "reply": None, "replied_at": None}
    await asyncio.sleep(REPLY_DELAY + 0.1)
    reply = await attested(world.messaging, "/api/replies", query, run)
    answer = run.open("messaging", reply.body["sealed"], reply.nonce)
    assert answer["reply"] == "accepted" and answer["replied_at"].endswith("Z")

    listed = (await world.messaging.admin("GET", "/admin/messages"))["messages"]
    assert [m for m in listed if m["key"] == "sale-1"][0]["reply"] == "accepted"


async def test_an_operator_can_decline_for_the_customer(world: World):
    run = issue(world.ca)
    sent = await attested(world.messaging, "/send-message",
                          {"phone": "+1-555-0102", "text": "Taxi?", "key": "sale-2"}, run)
    message_id = run.open("messaging", sent.body["sealed"], sent.nonce)["message_id"]
    await world.messaging.admin("POST", f"/admin/messages/{message_id}/reply", {"reply": "declined"})
    reply = await attested(world.messaging, "/api/replies", {"message_id": message_id}, run)
    assert run.open("messaging", reply.body["sealed"], reply.nonce)["reply"] == "declined"


# Refusals ----------------------------------------------------------------------------


async def test_an_unknown_measurement_is_refused_and_logged(world: World):
    run = issue(world.ca, elf=OTHER_ELF)
    reply = await attested(world.store, "/api/sales", {"after_id": 0, "limit": 5}, run)
    assert reply.status == 403
    assert reply.body["error"]["code"] == "contraindicated" and "sealed" not in reply.body
    assert reply.body["verification"]["status"] == "contraindicated"
    assert "measurement_unknown" in codes(reply)
    # The service's own log, read straight from its database.
    with sqlite3.connect(world.store.state_dir / "service.db") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(verifications)")]
        row = db.execute("SELECT serial, status, reasons, http_status, outcome FROM verifications "
                         "ORDER BY id DESC LIMIT 1").fetchone()
    assert columns == ["id", "ts", "endpoint", "serial", "fingerprint", "status", "reasons", "http_status",
                       "outcome", "nonce"]
    assert row[0] == format(run.serial, "x") and row[1] == "contraindicated"
    assert "measurement_unknown" in {r["code"] for r in json.loads(row[2])}
    assert row[3:] == (403, "contraindicated")


async def test_a_certificate_from_another_ca_is_refused(world: World):
    run = issue(world.other_ca)
    reply = await attested(world.transport, "/api/trips", {
        "sale_id": 7, "customer": "Grace Mockwell", "pickup": "A", "destination": "B",
        "phone": "+1-555-0107", "fare_cents": 100}, run)
    assert reply.status == 403 and "chain_untrusted" in codes(reply)
    trips = (await world.transport.admin("GET", "/admin/trips"))["trips"]
    assert all(t["sale_id"] != 7 for t in trips)


async def test_a_revoked_certificate_is_refused_once_the_crl_is_refreshed(world: World):
    run = issue(world.ca, run_id="run-revoked")
    assert (await attested(world.messaging, "/api/replies", {"message_id": 1}, run)).status == 200
    before = (await world.messaging.admin("GET", "/admin/status"))["crl"]["number"]
    world.crl.der = world.ca.revoke(run.serial, "key_compromise")
    deadline = time.monotonic() + 10
    while (await world.messaging.admin("GET", "/admin/status"))["crl"]["number"] == before:
        assert time.monotonic() < deadline, "the service never fetched the new CRL"
        await asyncio.sleep(0.05)
    reply = await attested(world.messaging, "/api/replies", {"message_id": 1}, run)
    assert reply.status == 403 and "revoked" in codes(reply)
    assert (world.messaging.state_dir / "crl.der").read_bytes() == world.crl.der


async def test_a_replayed_nonce_is_refused(world: World):
    run = issue(world.ca)
    booking = {"sale_id": 4, "customer": "Dave Dummy", "pickup": "Example Outfitters",
               "destination": "7 Mockingbird Lane, Testville", "phone": "+1-555-0104", "fare_cents": 2100}
    first = await attested(world.transport, "/api/trips", booking, run)
    assert first.status == 200
    payload = {"certificate": run.pem, "nonce": eai.b64url(first.nonce),
               "sealed": eai.b64url(run.seal(await world.transport.public_key(), "transport", booking, first.nonce))}
    replay = await attested(world.transport, "/api/trips", None, run, body=payload)
    assert replay.status == 409 and replay.body["error"]["code"] == "replay"
    assert replay.body["verification"]["status"] == "affirming"
    entry = await last_verification(world.transport)
    assert (entry["outcome"], entry["http_status"]) == ("replay", 409)


async def test_a_certificate_key_nothing_can_be_sealed_to_is_refused_before_the_nonce_is_claimed(world: World):
    # A low-order X25519 point (u = 0) in a certificate the policy otherwise accepts: the
    # answer could not be sealed, so the request is refused before anything is written.
    run = issue(world.ca, public_key=bytes(32))
    nonce = os.urandom(16)
    reply = await attested(world.store, "/api/sales", {"after_id": 0, "limit": 1}, run, nonce=nonce)
    assert reply.status == 400 and "cannot be sealed to" in reply.body["error"]["message"]
    entry = await last_verification(world.store)
    assert (entry["outcome"], entry["http_status"], entry["status"]) == ("bad_request", 400, "affirming")
    # The nonce was not claimed: a sound certificate may still use it.
    good = await attested(world.store, "/api/sales", {"after_id": 0, "limit": 1}, issue(world.ca), nonce=nonce)
    assert good.status == 200


def test_a_nonce_is_claimed_once_until_its_row_expires(tmp_path: Path):
    from attestables.apps.base import replay
    from attestables.apps.base.database import BASE_MIGRATIONS

    conn = sqlite3.connect(tmp_path / "replay.db")
    conn.executescript(BASE_MIGRATIONS[0])
    assert replay.claim(conn, "n1", now=100.0, expires_at=200.0)
    assert not replay.claim(conn, "n1", now=150.0, expires_at=300.0)  # still remembered
    assert not replay.claim(conn, "n1", now=199.9, expires_at=300.0)
    assert conn.execute("SELECT expires_at FROM replay WHERE nonce = 'n1'").fetchone() == (200.0,)
    # Expired but not purged yet: a fresh claim takes the row over, with the new expiry.
    assert replay.claim(conn, "n1", now=200.0, expires_at=400.0)
    assert conn.execute("SELECT expires_at FROM replay WHERE nonce = 'n1'").fetchone() == (400.0,)
    assert replay.claim(conn, "n2", now=200.0, expires_at=400.0)


async def test_malformed_requests_are_refused_cleanly_and_store_nothing(world: World):
    service = world.transport
    run = issue(world.ca)
    key = await service.public_key()
    booking = {"sale_id": 6, "customer": "Frank Testcase", "pickup": "Demo Furniture Co.",
               "destination": "1 Nowhere Plaza, Anytown", "phone": "+1-555-0106", "fare_cents": 1500}
    nonce = os.urandom(16)
    sealed = run.seal(key, "transport", booking, nonce)
    good = {"certificate": run.pem, "nonce": eai.b64url(nonce), "sealed": eai.b64url(sealed)}

    cases: list[tuple[str, bytes, int]] = [
        ("not JSON", b"{", 400),
        ("not an object", b"[1, 2]", 400),
        ("unknown field", json.dumps({**good, "extra": 1}).encode(), 400),
        ("missing field", json.dumps({"certificate": run.pem, "nonce": good["nonce"]}).encode(), 400),
        ("short nonce", json.dumps({**good, "nonce": eai.b64url(nonce[:8])}).encode(), 400),
        ("padded nonce", json.dumps({**good, "nonce": good["nonce"] + "=="}).encode(), 400),
        ("not a certificate", json.dumps({**good, "certificate": "hello"}).encode(), 403),
        ("not even ASCII", json.dumps({**good, "certificate": "h\u00e9llo"}).encode(), 403),
        ("not base64url", json.dumps({**good, "sealed": "a+b/c="}).encode(), 400),
        ("not UTF-8", b'{"certificate": "\xff"}', 400),
        ("truncated sealed", json.dumps({**good, "sealed": eai.b64url(sealed[:40])}).encode(), 400),
        ("cut sealed", json.dumps({**good, "sealed": eai.b64url(sealed[:-1])}).encode(), 400),
        ("sealed for the store", json.dumps({**good, "sealed": eai.b64url(
            run.seal(key, "store", booking, nonce))}).encode(), 400),
        ("sealed to another key", json.dumps({**good, "sealed": eai.b64url(
            run.seal(hpke.public_key_bytes(X25519PrivateKey.generate()), "transport", booking, nonce))}).encode(),
         400),
        ("a document with an unknown field", json.dumps({**good, "sealed": eai.b64url(
            run.seal(key, "transport", {**booking, "tip_cents": 5}, nonce))}).encode(), 400),
        ("a document that is not UTF-8", json.dumps({**good, "sealed": eai.b64url(
            run.seal(key, "transport", b'{"customer": "\xff"}', nonce))}).encode(), 400),
        ("a document with a wrong type", json.dumps({**good, "sealed": eai.b64url(
            run.seal(key, "transport", {**booking, "sale_id": "six"}, nonce))}).encode(), 400),
        ("too large", b" " * (eai.MAX_BODY + 1), 413),
    ]
    for what, data, status in cases:
        reply = await post(service, "/api/trips", data)
        assert reply.status == status, (what, reply.body)
        assert set(reply.body) == {"error", "verification"}, what
        assert reply.body["error"]["code"] == eai.STATUS_CODES[status], what
        assert "Traceback" not in reply.body["error"]["message"]
        # The plaintext never comes back in an error (the launcher relays errors).
        assert "six" not in reply.body["error"]["message"] and "tip_cents" not in reply.body["error"]["message"]
    assert all(t["sale_id"] != 6 for t in (await service.admin("GET", "/admin/trips"))["trips"])
    # Nothing was claimed either: the nonce of those failures is still good.
    reply = await post(service, "/api/trips", json.dumps(good).encode())
    assert reply.status == 200
    assert run.open("transport", reply.body["sealed"], nonce)["existing"] is False


async def test_admin_endpoints_need_the_token(world: World):
    cases = [(world.store, "GET", "/admin/sales"), (world.store, "POST", "/admin/sales"),
             (world.transport, "GET", "/admin/trips"), (world.messaging, "GET", "/admin/messages"),
             (world.store, "POST", "/admin/policy"), (world.store, "GET", "/admin/verifications")]
    async with aiohttp.ClientSession() as session:
        for service, method, path in cases:
            another = world.transport if service is world.store else world.store
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": f"Basic {service.admin_token}"},
                            {"Authorization": f"Bearer {another.admin_token}"}):
                async with session.request(method, service.url + path, headers=headers, json={},
                                           ssl=service.ssl_context()) as resp:
                    assert resp.status == 401, (path, headers)
                    assert (await resp.json())["error"]["code"] == "unauthorized"
    with pytest.raises(ServiceCallError) as refused:
        await world.store.admin("POST", "/admin/sales", {"seller": "x"})
    assert refused.value.status == 400  # with the token, the body is checked strictly


async def test_a_flood_is_answered_and_survived(world: World):
    run = issue(world.ca)
    key = await world.store.public_key()
    bodies = []
    for _ in range(300):
        nonce = os.urandom(16)
        bodies.append(json.dumps({"certificate": run.pem, "nonce": eai.b64url(nonce), "sealed": eai.b64url(
            run.seal(key, "store", {"after_id": 0, "limit": 100}, nonce))}).encode())
    connector = aiohttp.TCPConnector(limit=300, ssl=world.store.ssl_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(body: bytes) -> int:
            async with session.post(world.store.url + "/api/sales", data=body) as resp:
                await resp.read()
                return resp.status
        statuses = await asyncio.gather(*(one(b) for b in bodies))
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 64
    assert (await world.store.admin("GET", "/admin/status"))["in_flight"] == 0


# Policy: none, pushed, reloaded; state across a restart ------------------------------


async def test_policy_lifecycle_and_restart(world: World):
    state = world.base / "store-no-policy"
    service = await LocalService("store", state).start()
    try:
        run = issue(world.ca)
        reply = await attested(service, "/api/sales", {"after_id": 0}, run)
        assert reply.status == 403 and codes(reply) == {"no_policy"}
        assert (await last_verification(service))["reasons"][0]["code"] == "no_policy"

        # The demo's way: push the policy exported from the launcher, with its root.
        toml = f'name = "pushed"\ntrusted_roots = ["root.pem"]\n[[allow]]\nelf-sha256 = "{ELF}"\n'
        with pytest.raises(ServiceCallError) as missing_root:
            await service.admin("POST", "/admin/policy", {"toml": toml})
        assert missing_root.value.status == 400 and not (state / "policy.toml").exists()
        root = world.ca.root_pem().decode()
        pushed = await service.admin("POST", "/admin/policy", {"toml": toml, "roots": {"root.pem": root}})
        assert pushed["policy"]["name"] == "pushed"
        assert (state / "policy.toml").read_text() == toml
        reply = await attested(service, "/api/sales", {"after_id": 0}, run)
        assert reply.status == 200
        used = reply

        # A policy without reference values lets any program through, with a warning.
        lax = 'name = "lax"\ntrusted_roots = ["root.pem"]\n'
        await service.admin("POST", "/admin/policy", {"toml": lax})
        reply = await attested(service, "/api/sales", {"after_id": 0}, issue(world.ca, elf=OTHER_ELF))
        assert reply.status == 200 and reply.body["verification"]["status"] == "warning"
        assert codes(reply) == {"measurement_unchecked"}

        # SIGHUP re-reads the file; a broken file leaves the working policy in place.
        write_policy(state / "policy.toml", Path("root.pem"), elf=OTHER_ELF, name="reloaded")
        service.reload()
        await _wait_for_policy(service, "reloaded")
        reply = await attested(service, "/api/sales", {"after_id": 0}, run)
        assert reply.status == 403 and "measurement_unknown" in codes(reply)
        (state / "policy.toml").write_text("trusted_roots = [\n")
        service.reload()
        deadline = time.monotonic() + 10
        while (await service.admin("GET", "/admin/status"))["policy"]["last_error"] is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await service.admin("GET", "/admin/status"))["policy"]["name"] == "reloaded"
        await service.admin("POST", "/admin/policy", {"toml": toml})

        # A restart keeps the policy and the replay cache.
        assert await service.stop() == 0
        await service.start()
        assert (await service.admin("GET", "/admin/status"))["policy"]["name"] == "pushed"
        payload = {"certificate": run.pem, "nonce": eai.b64url(used.nonce), "sealed": eai.b64url(
            run.seal(await service.public_key(), "store", {"after_id": 0}, used.nonce))}
        reply = await attested(service, "/api/sales", None, run, body=payload)
        assert reply.status == 409
    finally:
        await service.stop()


async def _wait_for_policy(service: LocalService, name: str) -> None:
    deadline = time.monotonic() + 10
    while (await service.admin("GET", "/admin/status"))["policy"]["name"] != name:
        assert time.monotonic() < deadline, f"policy {name!r} never loaded"
        await asyncio.sleep(0.05)


async def test_the_service_id_is_bound_into_the_seal(world: World):
    # Another deployment of the store under its own id: a request sealed for "store" does
    # not open there, one sealed for its id does.
    service = await LocalService("store", world.base / "store-eu", policy=world.policy,
                                 service_id="store-eu").start()
    try:
        assert (await service.admin("GET", "/admin/status"))["service_id"] == "store-eu"
        run = issue(world.ca)
        assert (await attested(service, "/api/sales", {"after_id": 0}, run, service_id="store")).status == 400
        reply = await attested(service, "/api/sales", {"after_id": 0}, run)
        assert reply.status == 200
        assert run.open("store-eu", reply.body["sealed"], reply.nonce)["sales"]
    finally:
        await service.stop()


async def test_a_certificate_the_verifier_chokes_on_is_refused_not_a_500(world: World):
    # A document that is not UTF-8, in a certificate signed with the issuing key: the
    # shared parser raises on it instead of reporting document_invalid; the service must
    # still answer a clean 403.
    key = X25519PrivateKey.generate()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attestables run run-bad")]))
        .issuer_name(world.ca.issuing_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.KeyUsage(False, False, False, False, True, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(document_extension(b'{"eat_nonce":"\xff"}'), critical=False)
        .sign(load_key(world.ca.files.issuing_key, None), hashes.SHA256())
    )
    run = RunIdentity(key, cert.public_bytes(Encoding.PEM).decode() + world.ca.chain_pem().decode(),
                      cert.serial_number)
    reply = await attested(world.store, "/api/sales", {"after_id": 0}, run)
    assert reply.status == 403, reply.body
    assert reply.body["verification"]["status"] == "contraindicated"
