"""The websocket API against a real daemon: auth, envelope, sources, invalid params."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from attestables.shared import errors
from attestables.shared.client import Client

from .conftest import c_source, upload

HELLO_C = c_source('int main(void) { puts("hi"); return 0; }\n')


def session_from(peer: str) -> aiohttp.ClientSession:
    """A session whose connections come from ``peer`` (a loopback address): failure
    throttling is per peer, so each test that fails auth uses its own address."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(peer, 0)))


async def raw_ws(daemon, token=None):
    session = aiohttp.ClientSession()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ws = await session.ws_connect(daemon.url, headers=headers)
    except BaseException:
        await session.close()
        raise
    return session, ws


async def test_healthz_needs_no_token_and_says_only_status(daemon):
    async with aiohttp.ClientSession() as s, s.get(f"{daemon.http_url}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


@pytest.mark.parametrize("n,header", list(enumerate([None, "Bearer wrong-token-wrong-token-wrong-token", "Basic abc",
                                                     "Bearer"])))
async def test_websocket_without_the_right_token_is_refused_before_upgrade(daemon, n, header):
    async with session_from(f"127.0.1.{n + 1}") as s:
        headers = {"Authorization": header} if header else {}
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(daemon.url, headers=headers)
        assert info.value.status == 401


async def test_client_library_raises_unauthorized(daemon):
    async with session_from("127.0.2.1") as s:
        with pytest.raises(errors.Unauthorized):
            await Client.connect(daemon.url, "x" * 43, session=s)


async def test_repeated_failures_from_one_peer_are_slowed_down(daemon):
    async with session_from("127.0.3.1") as s:
        durations = []
        for _ in range(6):
            start = time.monotonic()
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await s.ws_connect(daemon.url, headers={"Authorization": "Bearer nope"})
            durations.append(time.monotonic() - start)
        # The first failure is answered at once; by the sixth the peer waits (0.05 s doubling).
        assert durations[-1] >= 0.5 > durations[0]
        # A correct token still works right away (and clears the peer's record).
        async with Client.connect(daemon.url, daemon.token, session=s) as c:
            assert (await c.call("system.info"))["version"]
        start = time.monotonic()
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await s.ws_connect(daemon.url, headers={"Authorization": "Bearer nope"})
        assert time.monotonic() - start < 0.5


async def test_hello_comes_first_with_schema_versions(daemon):
    session, ws = await raw_ws(daemon, daemon.token)
    try:
        hello = json.loads((await ws.receive()).data)
        assert hello["method"] == "system.hello"
        assert hello["params"]["schema_version"] >= hello["params"]["min_supported_schema_version"] >= 1
        assert hello["params"]["server_version"]
    finally:
        await ws.close()
        await session.close()


async def test_envelope_errors_have_jsonrpc_codes(daemon):
    session, ws = await raw_ws(daemon, daemon.token)
    try:
        await ws.receive()  # hello
        cases = [
            ("{not json", -32700, "parse_error", None),
            (json.dumps([1, 2]), -32600, "invalid_request", None),
            (json.dumps({"jsonrpc": "1.0", "id": 1, "method": "system.info"}), -32600, "invalid_request", 1),
            (json.dumps({"jsonrpc": "2.0", "id": 2, "method": 5}), -32600, "invalid_request", 2),
            (json.dumps({"jsonrpc": "2.0", "id": 3, "method": "no.such"}), -32601, "method_not_found", 3),
            (json.dumps({"jsonrpc": "2.0", "id": 4, "method": "system.info", "params": [1]}), -32602,
             "invalid_params", 4),
        ]
        for frame, code, name, id_ in cases:
            await ws.send_str(frame)
            reply = json.loads((await ws.receive()).data)
            assert reply["jsonrpc"] == "2.0"
            assert reply["id"] == id_
            assert reply["error"]["code"] == code, frame
            assert reply["error"]["data"]["code"] == name
            assert "Traceback" not in reply["error"]["message"]
    finally:
        await ws.close()
        await session.close()


async def test_system_info_reports_platform_toolchains_backends(client, daemon):
    info = await client.call("system.info")
    assert info["state_dir"] == str(daemon.state_dir)
    assert {"os", "release", "machine", "cpu_model", "cpu_count", "memory_bytes", "cheri"} <= info["platform"].keys()
    assert info["platform"]["cheri"] is False  # honest: this is not a Morello board
    toolchains = {t["name"]: t for t in info["toolchains"]}
    assert toolchains["native"]["available"] and toolchains["native"]["version"]
    assert not toolchains["morello-purecap"]["available"]
    backends = {b["name"]: b for b in info["backends"]}
    assert backends["bwrap"]["available"]
    assert backends["bwrap"]["isolation"]["network"] == "none"
    assert not backends["none"]["available"] and not backends["c18n"]["available"]


async def test_upload_versions_and_get(client):
    first = await upload(client, "versioned.c", HELLO_C)
    second = await upload(client, "versioned.c", HELLO_C.replace("hi", "hello"))
    assert second["source_id"] == first["source_id"]
    assert (first["version"], second["version"]) == (1, 2)
    assert first["sha256"] != second["sha256"]
    v1 = await client.call("sources.get", {"source_id": first["source_id"], "version": 1})
    latest = await client.call("sources.get", {"source_id": first["source_id"]})
    assert v1["content"] == HELLO_C  # nothing was overwritten
    assert latest["version"] == 2 and "hello" in latest["content"]
    listed = {s["source_id"]: s for s in (await client.call("sources.list"))["sources"]}
    assert listed[first["source_id"]]["latest_version"] == 2
    assert listed[first["source_id"]]["versions"] == 2


@pytest.mark.parametrize("name", ["../x.c", "/etc/x.c", "a/b.c", "x.txt", ".c", ".hidden.c", "", "x" * 127 + ".c",
                                  "nul\0.c", "sp ace.c"])
async def test_hostile_names_are_refused(client, name):
    with pytest.raises(errors.InvalidParams):
        await upload(client, name, HELLO_C)


async def test_oversized_and_nul_content_refused(client, daemon):
    with pytest.raises(errors.LimitExceeded):
        await upload(client, "big.c", "x" * (1024 * 1024 + 1))
    with pytest.raises(errors.InvalidParams, match="NUL"):
        await upload(client, "nul.c", "int main(void){}\0")
    names = {s["name"] for s in (await client.call("sources.list"))["sources"]}
    assert not {"big.c", "nul.c"} & names  # bad input loses nothing and stores nothing


async def test_invalid_utf8_refused(daemon):
    session, ws = await raw_ws(daemon, daemon.token)
    try:
        await ws.receive()
        # A lone surrogate escape decodes to a string that is not valid UTF-8.
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"sources.upload",'
                          '"params":{"name":"bad.c","content":"\\ud800"}}')
        reply = json.loads((await ws.receive()).data)
        assert reply["error"]["data"]["code"] in {"invalid_params", "parse_error"}
    finally:
        await ws.close()
        await session.close()


async def test_delete_source(client):
    src = await upload(client, "gone.c", HELLO_C)
    assert (await client.call("sources.delete", {"source_id": src["source_id"]}))["deleted"]
    with pytest.raises(errors.NotFound):
        await client.call("sources.get", {"source_id": src["source_id"]})
    with pytest.raises(errors.NotFound):
        await client.call("sources.delete", {"source_id": src["source_id"]})


INVALID_PARAMS = [
    ("sources.upload", {}),
    ("sources.upload", {"name": "a.c"}),
    ("sources.upload", {"name": 5, "content": "x"}),
    ("sources.upload", {"name": "a.c", "content": "x", "extra": 1}),
    ("sources.list", {"x": 1}),
    ("sources.get", {}),
    ("sources.get", {"source_id": "s_1", "version": 0}),
    ("sources.get", {"source_id": "../etc"}),
    ("sources.delete", {"source_id": 7}),
    ("builds.start", {}),
    ("builds.start", {"source_id": "s_1", "flags": "-O2"}),
    ("builds.start", {"source_id": "s_1", "flags": [1]}),
    ("builds.list", {"limit": 0}),
    ("builds.get", {}),
    ("builds.logs", {"build_id": None}),
    ("builds.cancel", {"build": "b_1"}),
    ("runs.start", {}),
    ("runs.start", {"build_id": "b_1", "args": "x"}),
    ("runs.start", {"build_id": "b_1", "limits": {"cpu_s": "10"}}),
    ("runs.list", {"state": 3}),
    ("runs.list", {"state": "sleeping"}),
    ("runs.get", {}),
    ("runs.logs", {"run_id": ""}),
    ("runs.stop", {"run_id": ["r"]}),
    ("events.subscribe", {}),
    ("events.subscribe", {"topics": []}),
    ("events.subscribe", {"topics": ["no.such.topic"]}),
    ("events.subscribe", {"topics": ["runs.state"], "since": -1}),
    ("events.subscribe", {"topics": ["runs.state"], "filter": {"pid": 1}}),
    ("events.unsubscribe", {}),
    ("system.info", {"verbose": True}),
]


@pytest.mark.parametrize("method,params", INVALID_PARAMS)
async def test_invalid_params_for_every_method(client, method, params):
    with pytest.raises(errors.InvalidParams) as info:
        await client.call(method, params)
    assert info.value.message  # a clear message, not empty


async def test_not_found_for_unknown_ids(client):
    for method, params in [("builds.get", {"build_id": "b_0"}), ("runs.get", {"run_id": "r_0"}),
                           ("builds.logs", {"build_id": "b_0"}), ("runs.stop", {"run_id": "r_0"}),
                           ("runs.start", {"build_id": "b_0"}), ("builds.start", {"source_id": "s_0"}),
                           ("events.unsubscribe", {"subscription": "sub-0"})]:
        with pytest.raises(errors.NotFound):
            await client.call(method, params)


@pytest.mark.parametrize("flags", [["-o", "/tmp/x"], ["-I/"], ["-include", "/etc/passwd"], ["@file"],
                                   ["-fplugin=x.so"], ["-Wl,-rpath,/"], ["-DX=$(id)"], ["-D"]])
async def test_build_flags_outside_the_allow_list_are_refused(client, flags):
    src = await upload(client, "flags.c", HELLO_C)
    with pytest.raises(errors.InvalidParams):
        await client.call("builds.start", {"source_id": src["source_id"], "flags": flags})


async def test_unavailable_toolchain_and_backend(client):
    src = await upload(client, "tc.c", HELLO_C)
    with pytest.raises(errors.Unavailable):
        await client.call("builds.start", {"source_id": src["source_id"], "toolchain": "morello-purecap"})
    with pytest.raises(errors.InvalidParams):
        await client.call("builds.start", {"source_id": src["source_id"], "toolchain": "msvc"})
