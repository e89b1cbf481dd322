"""The three services under attack, each attack against every attested endpoint:
malformed JSON, oversized bodies (declared and streamed), certificates from another CA
(and other forged chains), truncated sealed payloads, replays, random envelopes
(hypothesis), and a flood. Each request is refused with its documented status and a JSON
error with a code, never a 500, and leaves nothing stored: every table of the service's
database but its verification log is byte for byte what it was (the replay cache
included: a refused request claims no nonce), and the log gains only refusals.

The services are real processes (``LocalService``); run certificates come from a test CA,
as in tests/test_services.py, whose helpers this module reuses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestables.daemon.ca import CertificateAuthority
from attestables.shared import eai
from attestables.shared.local_service import LocalService

from ..test_services import CrlServer, RunIdentity, issue, write_policy
from .common import log_problems
from .conftest import scaled

# One plausible document per attested endpoint (what the integration process sends).
DOCUMENTS: dict[str, Any] = {
    "/api/sales": {"after_id": 0, "limit": 5},
    "/api/trips": {"sale_id": 9001, "customer": "Attack Example", "pickup": "A", "destination": "B",
                   "phone": "+1-555-0199", "fare_cents": 100},
    "/api/replies": {"message_id": 1},
    "/send-message": {"phone": "+1-555-0199", "text": "attack", "key": "attack-key"},
}
ENDPOINTS = [(kind, path) for kind, ops in eai.ENDPOINTS.items() for path in ops.values()]
REFUSALS = {400, 403, 408, 409, 413, 503}


@dataclass
class Services:
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    base: Path
    by_kind: dict[str, LocalService]
    keys: dict[str, bytes]
    log: Path


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    base = tmp_path_factory.mktemp("attack")
    ca = CertificateAuthority.create(base / "ca", name="attack-test")
    other_ca = CertificateAuthority.create(base / "other-ca", name="impostor")
    crl = CrlServer(ca.crl_der())
    policy = write_policy(base / "policy.toml", base / "ca" / "root.pem")
    log_path = base / "services.log"
    log = open(log_path, "ab")  # noqa: SIM115
    started = {kind: LocalService(kind, base / kind, policy=policy, crl_url=crl.url, log=log)
               for kind in eai.SERVICE_IDS}

    async def start() -> dict[str, bytes]:
        await asyncio.gather(*(s.start() for s in started.values()))
        return {kind: await s.public_key() for kind, s in started.items()}

    try:
        keys = asyncio.run(start())
        yield Services(ca, other_ca, base, started, keys, log_path)
    finally:
        async def stop() -> list[Any]:
            return await asyncio.gather(*(s.stop() for s in started.values()), return_exceptions=True)
        statuses = asyncio.run(stop())
        crl.close()
        log.close()
    assert statuses == [0, 0, 0], statuses
    problems = [line for line in log_problems(log_path) if "internal" in line or "Traceback" in line]
    assert not problems, "\n".join(problems[:20])


def snapshot(service: LocalService) -> dict[str, str]:
    """A digest of every table but the verification log."""
    with sqlite3.connect(f"file:{service.state_dir / 'service.db'}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for table in tables:
            if table == "verifications":
                continue
            if table == "sqlite_sequence":  # AUTOINCREMENT counters: the log's moves, the rest must not
                rows = db.execute("SELECT * FROM sqlite_sequence WHERE name != 'verifications' ORDER BY 1").fetchall()
            else:
                rows = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def verification_outcomes(service: LocalService, after_id: int) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{service.state_dir / 'service.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT http_status, outcome FROM verifications WHERE id > ? ORDER BY id",
                          (after_id,)).fetchall()


def last_verification_id(service: LocalService) -> int:
    with sqlite3.connect(f"file:{service.state_dir / 'service.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT coalesce(max(id), 0) FROM verifications").fetchone()[0]


def envelope(run: RunIdentity, key: bytes, kind: str, document: Any, nonce: bytes | None = None,
             sealed: bytes | None = None) -> dict[str, str]:
    nonce = nonce if nonce is not None else os.urandom(16)
    sealed = sealed if sealed is not None else run.seal(key, kind, document, nonce)
    return {"certificate": run.pem, "nonce": eai.b64url(nonce), "sealed": eai.b64url(sealed)}


async def post(session: aiohttp.ClientSession, service: LocalService, path: str, data: Any,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with session.post(service.url + path, data=data, ssl=service.ssl_context(),
                            headers={"Content-Type": "application/json", **(headers or {})}) as resp:
        body = await resp.read()
        try:
            decoded = json.loads(body)
        except ValueError:
            raise AssertionError(f"{path}: HTTP {resp.status} answered something that is not JSON: {body[:200]!r}")
        return resp.status, decoded


def assert_refusal(status: int, body: dict[str, Any], expected: set[int] | int, what: str) -> None:
    allowed = {expected} if isinstance(expected, int) else expected
    assert status in allowed, (what, status, body)
    assert status != 500, (what, body)
    assert isinstance(body.get("error"), dict) and body["error"].get("code") == eai.STATUS_CODES[status], (what, body)
    assert isinstance(body["error"].get("message"), str) and "Traceback" not in body["error"]["message"], body
    assert "sealed" not in body, (what, body)


async def refused_batch(services: Services, kind: str, path: str,
                        cases: list[tuple[str, bytes, set[int] | int]]) -> None:
    """Post each case; each must be refused as expected and change nothing stored."""
    service = services.by_kind[kind]
    before, first = snapshot(service), last_verification_id(service)
    async with aiohttp.ClientSession() as session:
        for what, data, expected in cases:
            status, body = await post(session, service, path, data)
            assert_refusal(status, body, expected, f"{kind}{path}: {what}")
    assert snapshot(service) == before, f"{kind}{path}: a refused request changed the service's data"
    outcomes = verification_outcomes(service, first)
    assert all(status != 200 and outcome != "ok" for status, outcome in outcomes), outcomes


def malformed_bodies() -> list[tuple[str, bytes, set[int] | int]]:
    rng = random.Random(11)
    return [
        ("empty", b"", 400), ("open brace", b"{", 400), ("array", b"[]", 400), ("null", b"null", 400),
        ("string", b'"certificate"', 400), ("number", b"1e999", 400), ("truncated", b'{"certificate": "x', 400),
        ("not UTF-8", b'{"certificate": "\xc3\x28"}', 400), ("BOM", b"\xef\xbb\xbf{}", 400),
        ("NUL", b'{"certificate": "\x00"}', 400), ("deep", b"[" * 100_000 + b"]" * 100_000, 400),
        ("deep object", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, 400),
        ("huge integer", b'{"nonce": ' + b"9" * 5000 + b"}", 400),
        ("duplicate keys", b'{"nonce": "a", "nonce": "b", "certificate": "c", "sealed": "d"}', {400, 403}),
        ("wrong types", json.dumps({"certificate": 1, "nonce": [], "sealed": {}}).encode(), 400),
        ("random bytes", rng.randbytes(300), 400), ("random text", "".join(
            rng.choice("{}[]\":,0123abc\\ ") for _ in range(300)).encode(), 400),
    ]


@pytest.mark.parametrize(("kind", "path"), ENDPOINTS)
def test_malformed_json_is_refused_and_stores_nothing(services: Services, kind: str, path: str) -> None:
    asyncio.run(refused_batch(services, kind, path, malformed_bodies()))


@pytest.mark.parametrize(("kind", "path"), ENDPOINTS)
def test_oversized_bodies_are_refused_and_store_nothing(services: Services, kind: str, path: str) -> None:
    service = services.by_kind[kind]
    run = issue(services.ca)
    good = envelope(run, services.keys[kind], kind, DOCUMENTS[path])
    padded = json.dumps({**good, "pad": "x" * eai.MAX_BODY}).encode()

    async def streamed() -> Any:  # no Content-Length: the limit must hold while reading
        for _ in range(2 * eai.MAX_BODY // 65536 + 2):
            yield b" " * 65536

    async def go() -> None:
        before, first = snapshot(service), last_verification_id(service)
        async with aiohttp.ClientSession() as session:
            for what, data in (("declared", padded), ("streamed", streamed()), ("just over", b" " * (eai.MAX_BODY + 1))):
                status, body = await post(session, service, path, data)
                assert_refusal(status, body, 413, f"{kind}{path}: {what}")
        assert snapshot(service) == before
        assert not verification_outcomes(service, first)  # refused before any appraisal
        async with aiohttp.ClientSession() as session:  # and the service still serves
            status, body = await post(session, service, path, json.dumps(good).encode())
            assert status == 200, body

    asyncio.run(go())


@pytest.mark.parametrize(("kind", "path"), ENDPOINTS)
def test_certificates_from_another_ca_are_refused_and_store_nothing(services: Services, kind: str,
                                                                    path: str) -> None:
    key = services.keys[kind]
    impostor = issue(services.other_ca)
    genuine = issue(services.ca)
    leaf_only = genuine.pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    other_leaf = impostor.pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    cases = [
        ("another CA", impostor, impostor.pem),
        ("another CA's leaf with our chain", impostor, other_leaf + services.ca.chain_pem().decode()),
        ("our leaf without its chain", genuine, leaf_only),
        ("our chain alone", genuine, services.ca.chain_pem().decode()),
        ("our root as the leaf", genuine, services.ca.root_pem().decode()),
    ]
    bodies = []
    for what, run, pem in cases:
        body = envelope(run, key, kind, DOCUMENTS[path])
        body["certificate"] = pem
        bodies.append((what, json.dumps(body).encode(), {400, 403}))
    asyncio.run(refused_batch(services, kind, path, bodies))


@pytest.mark.parametrize(("kind", "path"), ENDPOINTS)
def test_truncated_and_altered_sealed_payloads_are_refused_and_store_nothing(services: Services, kind: str,
                                                                             path: str) -> None:
    run = issue(services.ca)
    key = services.keys[kind]
    nonce = os.urandom(16)
    sealed = run.seal(key, kind, DOCUMENTS[path], nonce)
    cases = []
    for cut in (0, 1, 16, 31, 32, 47, 48, len(sealed) // 2, len(sealed) - 1):
        cases.append((f"sealed cut to {cut}", json.dumps(envelope(run, key, kind, None, nonce, sealed[:cut])).encode(),
                      400))
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    cases.append(("last byte flipped", json.dumps(envelope(run, key, kind, None, nonce, bytes(flipped))).encode(), 400))
    cases.append(("another nonce", json.dumps(envelope(run, key, kind, None, os.urandom(16), sealed)).encode(), 400))
    cases.append(("cut nonce", json.dumps({**envelope(run, key, kind, None, nonce, sealed),
                                           "nonce": eai.b64url(nonce[:15])}).encode(), 400))
    asyncio.run(refused_batch(services, kind, path, cases))
    # Nothing was claimed by the refusals: the untouched request still goes through.
    async def good() -> None:
        async with aiohttp.ClientSession() as session:
            status, body = await post(session, services.by_kind[kind], path,
                                      json.dumps(envelope(run, key, kind, None, nonce, sealed)).encode())
            assert status == 200, body
    asyncio.run(good())


@pytest.mark.parametrize(("kind", "path"), ENDPOINTS)
def test_replays_are_refused_and_store_nothing(services: Services, kind: str, path: str) -> None:
    service = services.by_kind[kind]
    run = issue(services.ca)
    key = services.keys[kind]
    nonce = os.urandom(16)
    document = dict(DOCUMENTS[path])
    if path == "/api/trips":
        document["sale_id"] = random.randint(10_000, 10**6)
    if path == "/send-message":
        document["key"] = f"replay-{os.urandom(4).hex()}"
    body = json.dumps(envelope(run, key, kind, document, nonce)).encode()

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            status, answer = await post(session, service, path, body)
            assert status == 200, answer
        other_run = issue(services.ca, run_id="run-replayer")
        same_nonce_other_seal = json.dumps(envelope(run, key, kind, document, nonce)).encode()
        other_certificate = json.dumps(envelope(other_run, key, kind, document, nonce)).encode()
        cases: list[tuple[str, bytes, set[int] | int]] = [
            ("the same bytes", body, 409), ("the same nonce, sealed again", same_nonce_other_seal, 409),
            ("the same nonce under another certificate", other_certificate, 409)]
        await refused_batch(services, kind, path, cases)
        for other_path in eai.ENDPOINTS[kind].values():  # another endpoint of the same service
            if other_path != path:
                again = json.dumps(envelope(run, key, kind, DOCUMENTS[other_path], nonce)).encode()
                await refused_batch(services, kind, other_path, [("the nonce at another endpoint", again, 409)])

    asyncio.run(go())


envelope_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=80),
                            st.binary(max_size=80).map(eai.b64url), st.lists(st.integers(), max_size=3))


@settings(max_examples=scaled(60, 600), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=st.tuples(st.sampled_from(ENDPOINTS),
                      st.one_of(st.binary(max_size=400),
                                st.dictionaries(st.sampled_from(["certificate", "nonce", "sealed", "extra"]),
                                                envelope_values, max_size=4).map(lambda d: json.dumps(d).encode()))))
def test_random_envelopes_are_refused_and_store_nothing(services: Services, case: tuple[Any, bytes]) -> None:
    (kind, path), data = case
    asyncio.run(refused_batch(services, kind, path, [("random", data, {400, 403})]))


def test_a_flood_is_answered_survived_and_stores_only_what_was_valid(services: Services) -> None:
    service = services.by_kind["transport"]
    key = services.keys["transport"]
    genuine, impostor = issue(services.ca), issue(services.other_ca)
    base_id = random.randint(10**7, 10**8)
    valid_ids = set(range(base_id, base_id + 50))
    bodies: list[tuple[str, bytes]] = []
    for sale_id in sorted(valid_ids):
        document = {**DOCUMENTS["/api/trips"], "sale_id": sale_id}
        bodies.append(("valid", json.dumps(envelope(genuine, key, "transport", document)).encode()))
    for i in range(150):
        document = {**DOCUMENTS["/api/trips"], "sale_id": base_id + 1000 + i}
        nonce = os.urandom(16)
        sealed = genuine.seal(key, "transport", document, nonce)
        bodies.append(("impostor", json.dumps(envelope(impostor, key, "transport", document)).encode()))
        bodies.append(("truncated", json.dumps(envelope(genuine, key, "transport", None, nonce, sealed[:40])).encode()))
        bodies.append(("garbage", os.urandom(200)))
    random.Random(5).shuffle(bodies)

    async def go() -> list[tuple[str, int, dict[str, Any]]]:
        connector = aiohttp.TCPConnector(limit=200, ssl=service.ssl_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(what: str, data: bytes) -> tuple[str, int, dict[str, Any]]:
                async with session.post(service.url + "/api/trips", data=data,
                                        headers={"Content-Type": "application/json"}) as resp:
                    return what, resp.status, json.loads(await resp.read())
            return await asyncio.gather(*(one(w, d) for w, d in bodies))

    results = asyncio.run(go())
    for what, status, body in results:
        if what == "valid" and status == 200:
            continue
        assert_refusal(status, body, {503} if what == "valid" else REFUSALS, what)
    assert sum(1 for what, status, _ in results if what == "valid" and status == 200) >= 10
    with sqlite3.connect(f"file:{service.state_dir / 'service.db'}?mode=ro", uri=True) as db:
        stored = {row[0] for row in db.execute("SELECT sale_id FROM trips WHERE sale_id >= ?", (base_id,))}
    assert stored <= valid_ids, "a refused request booked a trip"
    status = asyncio.run(service.admin("GET", "/admin/status"))
    assert status["in_flight"] == 0


def test_the_services_still_serve_after_the_attacks(services: Services) -> None:
    run = issue(services.ca)
    nonce = os.urandom(16)

    async def go() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            status, body = await post(session, services.by_kind["store"], "/api/sales", json.dumps(
                envelope(run, services.keys["store"], "store", DOCUMENTS["/api/sales"], nonce)).encode())
        assert status == 200, body
        return body

    body = asyncio.run(go())
    assert run.open("store", body["sealed"], nonce)["sales"]
