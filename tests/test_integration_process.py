"""The integration process (cheri/integration_process.c) end to end at the channel.

The program is built with the real gcc (-Werror, AddressSanitizer/UBSan) and the
compartment runtime, then run with a socketpair as fd 3. The test plays the launcher
(handshake, READ/WRITE answered with RESULT or ERROR) and the three services of the case
study behind it: it opens each sealed request with the service's key, checks the JSON
document against the contract in ``shared/eai.py``, and seals an answer to the
compartment's key from HELLO. The real daemon, broker and services are tested
elsewhere; this checks the program's logic and its use of the protocol.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from attestables import cheri
from attestables.shared import channel, eai, hpke
from attestables.shared.channel import (
    Cert,
    ErrorCode,
    ErrorMessage,
    FrameDecoder,
    Hello,
    Request,
    Result,
    ResultStatus,
    ServiceKey,
    ServiceKeys,
)

PROGRAM_SOURCE = Path(cheri.__file__).parent / "integration_process.c"
WARNINGS = [
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wvla", "-Wshadow", "-Wstrict-prototypes",
    "-Wmissing-prototypes", "-Wformat=2", "-Wconversion", "-Wsign-conversion",
]  # fmt: skip
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZER_ENV = {"ASAN_OPTIONS": "exitcode=86:detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87"}
TIMEOUT = 15
SERIAL = "5eed0001"
DER = bytes.fromhex("3003020101")  # opaque to the runtime
KEYS = {name: X25519PrivateKey.generate() for name in eai.SERVICE_IDS}
FAST = ["--interval", "0.05", "--backoff-min", "0.05", "--backoff-max", "0.1"]

# The fictional customers: none of this may ever reach the program's output.
ALICE = {"customer": "Alice Wonderly", "phone": "+1-555-0100", "address": "42 Rue Secrete, Toronto"}
BOB = {"customer": "Bob Quiet", "phone": "+1-555-0101", "address": "7 Elm Street"}
CAROL = {"customer": "Carol Exact", "phone": "+1-555-0102", "address": "1 Bay Road"}
DAVE = {"customer": "Dave Justover", "phone": "+1-555-0103", "address": "9 Hill Lane"}
TAXI, DRIVER = "TX-4242", "Roberto Driverson"
SECRETS = [v for person in (ALICE, BOB, CAROL, DAVE) for v in person.values()] + [
    TAXI, DRIVER, "Seller Sam", "Hello", "Reply YES", "18000", "180.00", "9000", "90.00",
]  # fmt: skip


def sale(sale_id: int, total_cents: int, person: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"id": sale_id, "seller": "Seller Sam", **person, "total_cents": total_cents, "date": "2024-06-01",
            **extra}  # fmt: skip


# ----------------------------------------------------------------- the build


def _gcc(*args: object) -> None:
    result = subprocess.run(["gcc", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"gcc {' '.join(map(str, args))}\n{result.stderr}")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("integration")
    include = ["-I", cheri.RUNTIME_INCLUDE_DIR]
    objects = [out / f"{src.stem}.o" for src in cheri.RUNTIME_SOURCES]
    jobs = [[*WARNINGS, *SANITIZE, *include, "-c", src, "-o", obj] for src, obj in zip(cheri.RUNTIME_SOURCES, objects)]
    # The program on its own, as the daemon's native toolchain builds it (optimised, fortified).
    jobs.append([*WARNINGS, "-O2", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong", *include, "-fsyntax-only",
                 PROGRAM_SOURCE])  # fmt: skip
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda job: _gcc(*job), jobs))
    binary = out / "integration_process"
    _gcc(*WARNINGS, *SANITIZE, *include, PROGRAM_SOURCE, *objects, "-o", binary, *cheri.RUNTIME_LIBS)
    return binary


# ------------------------------------------------------- the fake services


def exact_keys(doc: Any, keys: set[str]) -> None:
    assert isinstance(doc, dict) and set(doc) == keys, doc


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class World:
    """The three services of the case study, as the contract describes them."""

    sales: list[dict[str, Any]] = field(default_factory=list)
    trips: dict[int, dict[str, Any]] = field(default_factory=dict)  # sale_id -> trip
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> message
    replies: dict[str, deque[str | None]] = field(default_factory=dict)  # key -> answers to successive reads
    # (service, operation) -> what to do instead of answering, call by call
    script: dict[tuple[str, str], deque[Any]] = field(default_factory=dict)
    calls: list[tuple[float, str, str, Any]] = field(default_factory=list)
    on_call: Any = None
    proc: Any = None  # the running program

    def requests(self, service: str, op: str) -> list[Any]:
        return [doc for _, s, o, doc in self.calls if (s, o) == (service, op)]

    def answer(self, service: str, op: str, doc: Any) -> Any:
        assert eai.endpoint(service, op) is not None, f"no {op} endpoint on {service}"
        if service == "store":
            exact_keys(doc, {"after_id", "limit"})
            assert is_int(doc["after_id"]) and doc["after_id"] >= 0 and is_int(doc["limit"])
            assert 1 <= doc["limit"] <= 100
            page = [s for s in sorted(self.sales, key=lambda s: s["id"]) if s["id"] > doc["after_id"]][: doc["limit"]]
            return {"sales": page, "last_id": page[-1]["id"] if page else doc["after_id"]}
        if service == "transport":
            exact_keys(doc, {"sale_id", "customer", "pickup", "destination", "phone", "fare_cents"})
            assert is_int(doc["sale_id"]) and is_int(doc["fare_cents"])
            assert all(isinstance(doc[k], str) for k in ("customer", "pickup", "destination", "phone"))
            if doc["sale_id"] in self.trips:
                return {**self.trips[doc["sale_id"]], "existing": True}
            trip = {"trip_id": 700 + len(self.trips), "taxi_number": TAXI, "driver_name": DRIVER, "eta_minutes": 7}
            self.trips[doc["sale_id"]] = trip
            return {**trip, "existing": False}
        if op == "write":
            exact_keys(doc, {"phone", "text", "key"})
            assert all(isinstance(v, str) for v in doc.values())
            if doc["key"] in self.messages:
                return {"message_id": self.messages[doc["key"]]["message_id"], "existing": True}
            self.messages[doc["key"]] = {**doc, "message_id": 300 + len(self.messages)}
            return {"message_id": self.messages[doc["key"]]["message_id"], "existing": False}
        exact_keys(doc, {"message_id"})
        key = next(k for k, m in self.messages.items() if m["message_id"] == doc["message_id"])
        queue = self.replies.setdefault(key, deque())
        reply = queue.popleft() if len(queue) > 1 else (queue[0] if queue else None)
        return {"message_id": doc["message_id"], "reply": reply, "replied_at": None if reply is None else "now"}


# ------------------------------------------------------------- the launcher


class Launcher:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self.decoder = FrameDecoder(channel.FROM_COMPARTMENT)
        self.frames: list[channel.Frame] = []

    def recv(self) -> channel.Message | None:
        while not self.frames:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.decoder.close()
                return None
            self.frames += self.decoder.feed(data)
        return channel.decode(self.frames.pop(0))

    def send(self, message: channel.Message) -> None:
        self.sock.sendall(channel.encode(message))


FD3_WRAPPER = "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); os.execv(sys.argv[2], sys.argv[2:])"


@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    world: World
    fatal: list[ErrorMessage]


def run(program: Path, world: World, *args: str, services: tuple[str, ...] = eai.SERVICE_IDS) -> Outcome:
    """Runs the program with fd 3 as the channel and answers for the launcher and services."""
    ours, theirs = socket.socketpair()
    env = {k: v for k, v in os.environ.items() if k != "ATTESTABLES_FD"} | SANITIZER_ENV
    proc = subprocess.Popen([sys.executable, "-c", FD3_WRAPPER, str(theirs.fileno()), str(program), *args],
                            pass_fds=(theirs.fileno(),), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    theirs.close()
    world.proc = proc
    launcher, fatal = Launcher(ours), []
    try:
        hello = launcher.recv()
        assert isinstance(hello, Hello)
        launcher.send(Cert(DER, "", SERIAL))
        launcher.send(ServiceKeys(tuple(ServiceKey(n, hpke.public_key_bytes(KEYS[n])) for n in services)))
        deadline = time.monotonic() + TIMEOUT
        while (req := launcher.recv()) is not None:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the program was still running at the deadline")
            if isinstance(req, ErrorMessage):
                fatal.append(req)
                continue
            assert isinstance(req, Request)
            if not serve(launcher, world, hello, req):
                break
    finally:
        ours.close()
        out, err = proc.communicate(timeout=TIMEOUT)
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return Outcome(proc.returncode, out, err, world, fatal)


def serve(launcher: Launcher, world: World, hello: Hello, req: Request) -> bool:
    """Answers one request; False when the script says to close the channel."""
    op = "read" if isinstance(req, channel.Read) else "write"
    opened = hpke.open(KEYS[req.service_id], req.sealed, hpke.build_info("request", req.service_id, SERIAL, req.nonce))
    doc = json.loads(opened)
    world.calls.append((time.monotonic(), req.service_id, op, doc))
    if world.on_call is not None:
        world.on_call(req.service_id, op, doc)

    def seal(plaintext: bytes) -> bytes:
        info = hpke.build_info("response", req.service_id, SERIAL, req.nonce)
        return hpke.seal(hello.public_key, plaintext, info)

    step = world.script.get((req.service_id, op))
    action = step.popleft() if step else None
    if action is None:
        answer = world.answer(req.service_id, op, doc)
        launcher.send(Result(req.request_id, ResultStatus.OK, seal(json.dumps(answer).encode())))
    elif isinstance(action, ResultStatus):
        launcher.send(Result(req.request_id, action))
    elif action == "close":
        return False
    elif action == "tamper":
        sealed = bytearray(seal(b"{}"))
        sealed[-1] ^= 1
        launcher.send(Result(req.request_id, ResultStatus.OK, bytes(sealed)))
    elif action == "empty":
        launcher.send(Result(req.request_id, ResultStatus.OK))
    elif isinstance(action, ErrorMessage):  # request_id 0: fatal; else the refusal of this request
        launcher.send(ErrorMessage(action.request_id and req.request_id, action.code, action.message))
    else:  # raw plaintext bytes
        launcher.send(Result(req.request_id, ResultStatus.OK, seal(action)))
    return True


def assert_confidential(outcome: Outcome) -> None:
    text = outcome.out + outcome.err
    for secret in SECRETS:
        assert secret not in text, f"the output shows {secret!r}"


def lines(text: str) -> list[str]:
    return text.splitlines()


# ------------------------------------------------------------------- tests


def test_books_above_the_threshold_once_and_reads_the_replies(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE), sale(2, 90_00, BOB), sale(3, 150_00, CAROL), sale(4, 150_01, DAVE)])
    world.replies = {"sale-1": deque([None, "accepted"]), "sale-4": deque(["declined"])}
    result = run(program, world, *FAST, "--max-passes", "2", "--reply-checks", "5")
    assert result.rc == 0, result.err
    assert result.err == ""
    assert lines(result.out) == [
        f"integration process: certificate serial {SERIAL}; booking above $150.00; sales after id 0; 0.050s",
        "sale 1: above threshold, booked trip 700 (new), message 300 sent (new)",
        "sale 1: reply: pending",
        "sale 2: at or below threshold, skipped",
        "sale 3: at or below threshold, skipped",
        "sale 4: above threshold, booked trip 701 (new), message 301 sent (new)",
        "sale 4: reply: declined",
        "pass 1: 4 new sales, 2 booked, 2 skipped; 1 replies read, 1 awaited; last sale id 4",
        "sale 1: reply: accepted",
        "pass 2: 0 new sales, 0 booked, 0 skipped; 1 replies read, 0 awaited; last sale id 4",
    ]
    # Exactly the contract's documents, in this order, and nothing booked twice.
    assert world.requests("store", "read") == [{"after_id": 0, "limit": 50}, {"after_id": 4, "limit": 50}]
    assert world.requests("transport", "write") == [
        {"sale_id": 1, "customer": "Alice Wonderly", "pickup": "store", "destination": "42 Rue Secrete, Toronto",
         "phone": "+1-555-0100", "fare_cents": 2500},
        {"sale_id": 4, "customer": "Dave Justover", "pickup": "store", "destination": "9 Hill Lane",
         "phone": "+1-555-0103", "fare_cents": 2500},
    ]  # fmt: skip
    assert world.requests("messaging", "write") == [
        {"phone": "+1-555-0100", "key": "sale-1",
         "text": f"Hello Alice Wonderly, taxi {TAXI} driven by {DRIVER} will pick you up in 7 minutes. "
                 "Reply YES to accept."},
        {"phone": "+1-555-0103", "key": "sale-4",
         "text": f"Hello Dave Justover, taxi {TAXI} driven by {DRIVER} will pick you up in 7 minutes. "
                 "Reply YES to accept."},
    ]  # fmt: skip
    assert world.requests("messaging", "read") == [{"message_id": 300}, {"message_id": 301}, {"message_id": 300}]
    assert result.fatal == []  # the program never found fault with the launcher
    assert_confidential(result)


def test_a_sale_at_exactly_the_threshold_is_skipped_and_one_cent_more_is_booked(program: Path) -> None:
    world = World(sales=[sale(5, 150_00, CAROL), sale(6, 150_01, DAVE)])
    world.replies = {"sale-6": deque(["accepted"])}
    result = run(program, world, *FAST, "--once")
    assert result.rc == 0, result.err
    assert "sale 5: at or below threshold, skipped" in lines(result.out)
    assert [d["sale_id"] for d in world.requests("transport", "write")] == [6]
    # The threshold is exact in cents, whichever way it is written.
    for threshold, booked in (("150", [6]), ("$150.01", []), ("150.5", []), ("149.99", [5, 6]), ("0", [5, 6])):
        world = World(sales=[sale(5, 150_00, CAROL), sale(6, 150_01, DAVE)])
        world.replies = {"sale-5": deque(["accepted"]), "sale-6": deque(["accepted"])}
        result = run(program, world, *FAST, "--once", "--threshold", threshold)
        assert result.rc == 0, result.err
        assert [d["sale_id"] for d in world.requests("transport", "write")] == booked, threshold


def test_a_later_pass_reads_only_new_sales_and_never_books_twice(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.replies = {"sale-1": deque(["accepted"]), "sale-2": deque(["accepted"])}
    store_reads = 0

    def new_sale_arrives(service: str, op: str, doc: Any) -> None:
        nonlocal store_reads
        if service == "store":
            store_reads += 1
            if store_reads == 3:
                world.sales.append(sale(2, 200_00, DAVE))

    world.on_call = new_sale_arrives
    result = run(program, world, *FAST, "--max-passes", "4")
    assert result.rc == 0, result.err
    assert [d["after_id"] for d in world.requests("store", "read")] == [0, 1, 1, 2]
    assert [d["sale_id"] for d in world.requests("transport", "write")] == [1, 2]
    assert [d["key"] for d in world.requests("messaging", "write")] == ["sale-1", "sale-2"]
    assert_confidential(result)


def test_a_new_run_finds_the_booking_and_the_message_already_made(program: Path) -> None:
    """Across runs the services' idempotency (by sale id, by key) keeps a sale from being
    booked or messaged twice; the program says so."""
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.replies = {"sale-1": deque(["accepted"])}
    first = run(program, world, *FAST, "--once")
    second = run(program, world, *FAST, "--once")
    assert first.rc == 0 and second.rc == 0, first.err + second.err
    assert "sale 1: above threshold, booked trip 700 (new), message 300 sent (new)" in lines(first.out)
    assert "sale 1: above threshold, booked trip 700 (existing), message 300 sent (existing)" in lines(second.out)
    assert len(world.trips) == 1 and len(world.messages) == 1
    # Starting after a known id skips what a previous run handled.
    third = run(program, world, *FAST, "--once", "--after-id", "1")
    assert third.rc == 0 and world.requests("store", "read")[-1] == {"after_id": 1, "limit": 50}
    assert len(world.requests("transport", "write")) == 2


def test_a_refused_certificate_backs_off_and_retries(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.replies = {"sale-1": deque(["accepted"])}
    world.script[("store", "read")] = deque([ResultStatus.DENIED, ResultStatus.DENIED])
    args = ["--interval", "0.05", "--backoff-min", "0.2", "--backoff-max", "0.3", "--max-passes", "3"]
    result = run(program, world, *args)
    assert result.rc == 0, result.err
    assert lines(result.err) == [
        "pass 1 failed: reading sales: store refused our certificate: contraindicated "
        "(its verifier or policy rejected this run); retrying in 0.200s",
        "pass 2 failed again (the same error, 2 times in a row); retrying in 0.300s",
    ]
    reads = [t for t, s, o, _ in world.calls if (s, o) == ("store", "read")]
    assert len(reads) == 3
    assert 0.2 <= reads[1] - reads[0] < 2 and 0.3 <= reads[2] - reads[1] < 2  # doubled, capped
    assert [d["sale_id"] for d in world.requests("transport", "write")] == [1]
    assert "sale 1: above threshold, booked trip 700 (new), message 300 sent (new)" in lines(result.out)
    assert_confidential(result)


def test_a_failed_message_is_retried_without_booking_again(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE), sale(2, 10_00, BOB)])
    world.replies = {"sale-1": deque(["accepted"])}
    world.script[("messaging", "write")] = deque([ResultStatus.DENIED])
    result = run(program, world, *FAST, "--max-passes", "2")
    assert result.rc == 0, result.err
    assert lines(result.err)[0].startswith(
        "pass 1 failed: sale 1: messaging the customer: messaging refused our certificate: contraindicated"
    )
    assert [d["sale_id"] for d in world.requests("transport", "write")] == [1]  # booked once
    assert [d["key"] for d in world.requests("messaging", "write")] == ["sale-1", "sale-1"]
    # The failed pass stopped at sale 1; the retry starts from it again.
    assert [d["after_id"] for d in world.requests("store", "read")] == [0, 0]
    assert "sale 1: above threshold, booked trip 700 (new), message 300 sent (new)" in lines(result.out)
    assert "sale 2: at or below threshold, skipped" in lines(result.out)
    assert_confidential(result)


def test_once_exits_nonzero_when_its_pass_fails(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("store", "read")] = deque([ResultStatus.FAILED])
    result = run(program, world, *FAST, "--once")
    assert result.rc == 1
    assert lines(result.err) == ["pass 1 failed: reading sales: store could not carry out the request"]
    assert len(world.calls) == 1  # no retry


BAD_ANSWERS = {
    "not JSON": (b"<html>busy</html>", "store answered with malformed JSON: syntax error at byte 0"),
    "a float amount": (
        json.dumps({"sales": [sale(1, 0, ALICE) | {"total_cents": 180.0}], "last_id": 1}).encode(),
        "store answered with malformed JSON: number is not an integer at byte",
    ),
    "not an object": (b"[]", "store answered with JSON that is not an object"),
    "no sales": (b'{"last_id": 0}', "store's answer does not follow the contract: sales (member missing)"),
    "no last_id": (b'{"sales": []}', "store's answer does not follow the contract: last_id (member missing)"),
    "a sale without an id": (
        json.dumps({"sales": [{"total_cents": 18000}], "last_id": 1}).encode(),
        "store's answer does not follow the contract: a sale's id (member missing)",
    ),
    "a duplicate key": (b'{"sales": [], "sales": [], "last_id": 0}', "malformed JSON: duplicate key at byte 14"),
    "too deep": (b'{"sales": ' + b"[" * 20 + b"]" * 20 + b"}", "malformed JSON: nesting too deep at byte"),
    "no answer": ("empty", "reading sales: store sent no answer"),
    "an answer that does not open": ("tamper", "reading sales: the answer from store did not open"),
    "the launcher refuses": (
        ErrorMessage(1, ErrorCode.SERVICE_UNAVAILABLE, "store unreachable"),
        "reading sales: the launcher refused the request to store: launcher: store unreachable",
    ),
}


@pytest.mark.parametrize(("answer", "reported"), list(BAD_ANSWERS.values()), ids=list(BAD_ANSWERS))
def test_bad_answers_fail_the_pass_cleanly(program: Path, answer: Any, reported: str) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("store", "read")] = deque([answer])
    result = run(program, world, *FAST, "--once")
    assert result.rc == 1
    assert reported in result.err
    assert result.world.requests("transport", "write") == []
    assert_confidential(result)


def test_bad_trip_and_reply_answers(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("transport", "write")] = deque([json.dumps({"trip_id": 9, "taxi_number": TAXI}).encode()])
    result = run(program, world, *FAST, "--once")
    assert result.rc == 1
    assert "pass 1 failed: sale 1: booking a taxi: transport's answer does not follow the contract: driver_name" in (
        result.err
    )
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("messaging", "read")] = deque([b'{"message_id": 999, "reply": "accepted"}'])
    result = run(program, world, *FAST, "--once")
    assert result.rc == 1 and "message_id of another message" in result.err
    assert_confidential(result)


def test_unusable_sales_are_skipped_and_named_by_field_only(program: Path) -> None:
    world = World(sales=[
        sale(1, 180_00, ALICE) | {"phone": ""},
        sale(2, 180_00, {k: v for k, v in ALICE.items() if k != "address"}),
        sale(3, 180_00, ALICE) | {"total_cents": "180.00"},
        sale(4, 90_00, {}),  # below the threshold, nothing else is needed
        sale(5, 180_00, ALICE) | {"customer": "A" * 300},
    ])  # fmt: skip
    result = run(program, world, *FAST, "--once")
    assert result.rc == 0, result.err
    assert lines(result.out)[1:6] == [
        "sale 1: above threshold, but its phone is missing or unusable; skipped",
        "sale 2: above threshold, but its address is missing or unusable; skipped",
        "sale 3: unusable total_cents (value of another type), skipped",
        "sale 4: at or below threshold, skipped",
        "sale 5: above threshold, but its customer is missing or unusable; skipped",
    ]
    assert world.requests("transport", "write") == []
    assert_confidential(result)


def test_pages_of_sales_are_read_in_one_pass(program: Path) -> None:
    world = World(sales=[sale(i, 10_00, BOB) for i in range(120, 0, -1)] + [sale(121, 999_99, ALICE)])
    world.replies = {"sale-121": deque(["accepted"])}
    result = run(program, world, *FAST, "--once")
    assert result.rc == 0, result.err
    assert [d["after_id"] for d in world.requests("store", "read")] == [0, 50, 100]
    assert [d["sale_id"] for d in world.requests("transport", "write")] == [121]
    assert "pass 1: 121 new sales, 1 booked, 120 skipped; 1 replies read, 0 awaited; last sale id 121" in result.out


def test_once_waits_a_bounded_time_for_a_reply(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    result = run(program, world, *FAST, "--once", "--reply-checks", "3")
    assert result.rc == 0, result.err
    assert world.requests("messaging", "read") == [{"message_id": 300}] * 3
    assert "sale 1: no reply to message 300 after 3 checks, stopped waiting" in lines(result.out)


def test_string_ids_are_echoed_as_strings(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("transport", "write")] = deque(
        [json.dumps({"trip_id": "trip-7f3a", "taxi_number": TAXI, "driver_name": DRIVER, "eta_minutes": 3,
                     "existing": False}).encode()])  # fmt: skip
    world.script[("messaging", "write")] = deque([b'{"message_id": "m-42", "existing": false}'])
    world.script[("messaging", "read")] = deque([b'{"message_id": "m-42", "reply": "accepted", "replied_at": "x"}'])
    result = run(program, world, *FAST, "--once")
    assert result.rc == 0, result.err
    assert "sale 1: above threshold, booked trip trip-7f3a (new), message m-42 sent (new)" in lines(result.out)
    assert world.requests("messaging", "read") == [{"message_id": "m-42"}]
    assert "in 3 minutes" in world.requests("messaging", "write")[0]["text"]


def test_a_missing_service_key_ends_the_run(program: Path) -> None:
    result = run(program, World(), "--once", services=("store", "transport"))
    assert result.rc == 1
    assert "the launcher gave no key for the service messaging: is it configured?" in result.err
    assert result.world.calls == []


def test_a_broken_channel_ends_the_run(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("transport", "write")] = deque(["close"])
    result = run(program, world, *FAST)  # no pass limit: only the channel ends it
    assert result.rc == 1
    assert "pass 1 failed: sale 1: booking a taxi: request to transport failed: launcher closed the channel" in (
        result.err
    )
    assert "retrying" not in result.err


def test_a_fatal_error_from_the_launcher_ends_the_run(program: Path) -> None:
    world = World(sales=[sale(1, 180_00, ALICE)])
    world.script[("store", "read")] = deque([ErrorMessage(0, ErrorCode.ABORTED, "run stopped by the operator")])
    result = run(program, world, *FAST)
    assert result.rc == 1
    assert "launcher reported a fatal error: launcher: run stopped by the operator" in result.err


def test_a_signal_stops_the_loop_between_passes(program: Path) -> None:
    world = World(sales=[sale(1, 10_00, BOB)])

    def stop_soon(service: str, op: str, doc: Any) -> None:
        # After the first read the program sleeps 30 s; SIGTERM must end that at once.
        threading.Timer(0.3, world.proc.send_signal, (signal.SIGTERM,)).start()

    world.on_call = stop_soon
    started = time.monotonic()
    result = run(program, world, "--interval", "30")
    assert result.rc == 0, result.err
    assert time.monotonic() - started < 10
    assert lines(result.out)[1:] == [
        "sale 1: at or below threshold, skipped",
        "pass 1: 1 new sales, 0 booked, 1 skipped; 0 replies read, 0 awaited; last sale id 1",
        "stopping: signal received",
    ]
    assert len(world.requests("store", "read")) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--threshold", "150.001"], ["--threshold", "-5"], ["--threshold", "1e3"], ["--threshold", ""],
        ["--threshold", "150."], ["--interval", "0"], ["--interval", "abc"], ["--max-passes", "-1"],
        ["--reply-checks", "0"], ["--backoff-min", "5", "--backoff-max", "1"], ["--pickup", ""], ["--bogus"],
        ["--threshold"],
    ],
    ids=lambda a: " ".join(a) or "empty",
)  # fmt: skip
def test_bad_arguments_exit_2_before_the_handshake(program: Path, args: list[str]) -> None:
    result = subprocess.run([program, *args], capture_output=True, text=True, timeout=TIMEOUT,
                            env={**os.environ, **SANITIZER_ENV})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "integration_process:" in result.stderr and "handshake" not in result.stderr
