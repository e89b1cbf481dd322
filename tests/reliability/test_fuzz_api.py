"""Fuzzing the websocket API of a real daemon: thousands of frames, pipelined on one
connection, seeded and under hypothesis (``api_cases.py``).

Every frame that the envelope rules say is answered gets exactly one answer carrying
the right id; every answer is a well-formed result or error with a documented code,
never ``internal``; notifications get none; the connection stays open throughout; the
daemon never crashes or logs a traceback (checked when the module's daemon stops), and
afterwards serves a client normally. Then the transport itself: oversized messages and
broken websocket frames close that one connection and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import socket
import struct
from collections import Counter
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestables import cheri
from attestables.shared.client import Client

from .api_cases import MISSING, Frame, check_reply, frame_of, frames, seeded_frames
from .common import build, serves_normally
from .conftest import Harness, scaled

BATCH = 50
SEEDED_FRAMES = scaled(8_000, 40_000)
HYPOTHESIS_BATCHES = scaled(100, 600)
HYPOTHESIS_BATCH = 25
_ids = itertools.count(1_000_000)
_sent: Counter[str] = Counter()


def _key(id_: Any) -> str:
    return json.dumps(id_)


class Fuzzer:
    """One raw websocket to the daemon that sends frames and matches their answers."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()
        daemon = self.harness.daemon
        self.ws = await self.session.ws_connect(daemon.url, headers={"Authorization": f"Bearer {daemon.token}"},
                                                max_msg_size=64 * 1024 * 1024)
        hello = json.loads((await self.ws.receive(timeout=10)).data)
        assert hello["method"] == "system.hello"

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    async def exchange(self, batch: list[Frame], timeout: float = 60) -> dict[str, int]:
        """Send ``batch`` pipelined, then a sentinel; collect and check every answer."""
        assert self.ws is not None
        pending: Counter[str] = Counter(_key(f.expect) for f in batch if f.expect is not MISSING)
        # Several frames may share an id (null, above all): a result is fine if one of
        # them was a request.
        frame_for: dict[str, Frame] = {}
        for f in batch:
            if f.expect is not MISSING and (_key(f.expect) not in frame_for or f.is_request):
                frame_for[_key(f.expect)] = f
        for frame in batch:
            if frame.kind == "binary":
                await self.ws.send_bytes(frame.data)  # type: ignore[arg-type]
            else:
                await self.ws.send_str(frame.data)  # type: ignore[arg-type]
        sentinel = f"sentinel-{next(_ids)}"
        await self.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "system.info"}))
        pending[_key(sentinel)] += 1
        tally: Counter[str] = Counter()
        async with asyncio.timeout(timeout):
            while +pending:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, \
                    f"the daemon closed the connection ({msg.type.name} {msg.data} {msg.extra}); pending {+pending}"
                reply = json.loads(msg.data)
                if reply.get("method") == "event":
                    continue
                key = _key(reply.get("id"))
                assert pending[key] > 0, f"an answer nobody asked for: {reply}"
                pending[key] -= 1
                check_reply(reply, frame_for.get(key))
                tally["result" if "result" in reply else reply["error"]["data"]["code"]] += 1
        return tally


def _run_batches(harness: Harness, batches: list[list[Frame]]) -> Counter[str]:
    async def go() -> Counter[str]:
        fuzzer = Fuzzer(harness)
        await fuzzer.open()
        total: Counter[str] = Counter()
        try:
            for batch in batches:
                total += await fuzzer.exchange(batch)
        finally:
            await fuzzer.close()
        return total

    return harness.run(go(), timeout=900)


def test_seeded_frames(harness: Harness) -> None:
    rng = random.Random(7)
    batches = [seeded_frames(rng, BATCH, next(_ids) * 100) for _ in range(SEEDED_FRAMES // BATCH)]
    tally = _run_batches(harness, batches)
    _sent["seeded"] += sum(len(b) for b in batches)
    print(f"websocket fuzz (seeded): {sum(len(b) for b in batches)} frames, answers {dict(tally)}")
    # The fuzzer reached past the envelope into the methods, and was refused at each layer.
    assert {"parse_error", "invalid_request", "method_not_found", "invalid_params", "not_found", "result"} <= set(tally)


_hypothesis_fuzzer: dict[int, Fuzzer] = {}


@settings(max_examples=HYPOTHESIS_BATCHES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_hypothesis_frames(harness: Harness, data: st.DataObject) -> None:
    key = id(harness)
    if key not in _hypothesis_fuzzer:
        _hypothesis_fuzzer[key] = Fuzzer(harness)
        harness.run(_hypothesis_fuzzer[key].open())
    batch = [data.draw(frames(next(_ids))) for _ in range(HYPOTHESIS_BATCH)]
    _sent["hypothesis"] += len(batch)
    harness.run(_hypothesis_fuzzer[key].exchange(batch))


def test_enough_frames_and_the_daemon_serves_normally_afterwards(harness: Harness) -> None:
    for fuzzer in _hypothesis_fuzzer.values():
        harness.run(fuzzer.close())
    print(f"websocket fuzz: {dict(_sent)} frames")
    assert SEEDED_FRAMES + HYPOTHESIS_BATCHES * HYPOTHESIS_BATCH >= 10_000  # what the tests above send
    hello = harness.run(build(harness.client, "attest_hello.c", (cheri.EXAMPLES_DIR / "attest_hello.c").read_text()))
    harness.run(serves_normally(harness.client, hello["build_id"]))


# ------------------------------------------------------------------ specific frames


def test_deeply_nested_json_is_a_parse_error_not_a_dropped_connection(harness: Harness) -> None:
    nested = [frame_of("text", "[" * depth + "]" * depth) for depth in (500, 1_000, 5_000, 100_000)]
    nested += [frame_of("text", json.dumps({"jsonrpc": "2.0", "id": 9, "method": "sources.upload",
                                            "params": {"name": "x.c", "content": "y"}})[:-1]
                        + ', "deep": ' + "[" * 50_000 + "]" * 50_000 + "}")]

    async def go() -> dict[str, int]:
        fuzzer = Fuzzer(harness)
        await fuzzer.open()
        try:
            return await fuzzer.exchange(nested)
        finally:
            await fuzzer.close()

    tally = harness.run(go())
    assert tally["parse_error"] >= 4


def test_an_oversized_message_closes_that_connection_only(harness: Harness) -> None:
    async def go() -> None:
        daemon = harness.daemon
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(daemon.url, headers={"Authorization": f"Bearer {daemon.token}"})
            await ws.receive()  # hello
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "sources.upload",
                                          "params": {"name": "big.c", "content": "x" * (3 * 1024 * 1024)}}))
            msg = await ws.receive(timeout=10)
            while msg.type == aiohttp.WSMsgType.TEXT:
                msg = await ws.receive(timeout=10)
            assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING}
            assert ws.close_code == 1009, ws.close_code
        assert (await harness.client.call("system.info"))["version"]

    harness.run(go())


def _raw_upgrade(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "the daemon closed the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    return sock


def _masked(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, length: int | None = None) -> bytes:
    mask = os.urandom(4)
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


BROKEN_FRAMES = {
    "unmasked": bytes([0x81, 5]) + b"hello",  # aiohttp accepts it: answered as a frame
    "reserved_opcode": _masked(0x3, b"x"),
    "reserved_bits": _masked(0x1, b"{}", rsv=0b100),
    "fragmented_control": _masked(0x9, b"ping", fin=False),
    "continuation_without_start": _masked(0x0, b"{}"),
    "invalid_utf8_text": _masked(0x1, b'{"id":"\xff"}'),
    "huge_length": bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 2**62) + os.urandom(4),
    "close_with_bad_code": _masked(0x8, struct.pack(">H", 999)),
    "random_bytes": bytes(random.Random(3).randbytes(64)),
}


async def _clients_connected(harness: Harness) -> int:
    daemon = harness.daemon
    headers = {"Authorization": f"Bearer {daemon.token}"}
    async with aiohttp.ClientSession() as session, session.get(f"{daemon.http_url}/metrics",
                                                               headers=headers) as resp:
        text = await resp.text()
    return int(float(next(line.split()[-1] for line in text.splitlines()
                          if line.startswith("attestables_websocket_clients"))))


def test_broken_websocket_frames_end_that_connection_only(harness: Harness) -> None:
    """Each broken frame ends its connection (or, unmasked, is answered as a frame), the
    daemon keeps no trace of those connections (each would hold one of ``max_clients``),
    and other clients notice nothing."""
    daemon = harness.daemon
    before = harness.run(_clients_connected(harness))
    for name, data in BROKEN_FRAMES.items():
        for _ in range(1 if name == "unmasked" else 5):  # the unmasked one waits out a timeout
            sock = _raw_upgrade(daemon.port, daemon.token)
            try:
                sock.sendall(data)
                sock.settimeout(2)
                received = b""
                try:
                    while chunk := sock.recv(65536):  # the hello, a close frame, then EOF
                        received += chunk
                except ConnectionResetError:
                    pass
                except TimeoutError:
                    assert name == "unmasked" and b"parse_error" in received, \
                        f"{name}: the daemon neither answered nor closed the connection"
                assert received, name
            finally:
                sock.close()
        assert harness.run(harness.client.call("system.info"))["version"], name

    async def settled() -> int:
        for _ in range(100):
            now = await _clients_connected(harness)
            if now <= before:
                return now
            await asyncio.sleep(0.05)
        return now

    assert harness.run(settled()) <= before, "connections that broke the protocol are still held"


def test_a_burst_beyond_the_inflight_limit_is_answered_in_full(harness: Harness) -> None:
    """More requests at once than ``client_max_inflight``: each is answered (a result or
    ``limit_exceeded``), none is lost, and the connection stays usable."""
    async def go() -> Counter[str]:
        fuzzer = Fuzzer(harness)
        await fuzzer.open()
        try:
            burst = [frame_of("text", json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": "sources.upload",
                                                  "params": {"name": f"burst{i % 7}.c", "content": f"// {i}\n" * 2000}}))
                     for i in range(400)]
            return await fuzzer.exchange(burst, timeout=120)
        finally:
            await fuzzer.close()

    tally = harness.run(go())
    assert tally["result"] + tally["limit_exceeded"] == 400 + 1, tally  # and the sentinel
    assert tally["limit_exceeded"] > 0  # the limit was reached: the burst tested it
    async def still() -> None:
        async with Client.connect(harness.daemon.url, harness.daemon.token) as client:
            assert (await client.call("sources.list"))["sources"]
    harness.run(still())
