"""The C compartment runtime (cheri/runtime), built with the real gcc and -Werror, run
for real: RFC 9180 vectors, interop with Python's HPKE both ways, the evidence format,
and the channel against a Python stand-in for the launcher over a socketpair."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from attestables import cheri
from attestables.shared import channel, hpke
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

CHERI_DIR = Path(cheri.__file__).parent
TESTS_C = CHERI_DIR / "tests"
DATA = Path(__file__).parent / "data"

WARNINGS = [
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
    "-Wvla", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wformat=2",
]  # fmt: skip
# The runtime is held to more than the programs around it.
RUNTIME_ONLY = ["-Wconversion", "-Wsign-conversion"]
RELEASE = ["-O2", "-D_FORTIFY_SOURCE=2"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZER_ENV = {"ASAN_OPTIONS": "exitcode=86:detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87"}

SERIAL = "3a5f0c9e11d2b7a4"
RUN_TIMEOUT = 15


def _gcc(*args: object) -> None:
    result = subprocess.run(["gcc", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"gcc {' '.join(map(str, args))}\n{result.stderr}")


@dataclass
class Programs:
    hpke_vectors: Path
    hpke_tool: Path
    evidence_native: Path
    evidence_forced: Path
    attest_hello: Path
    attest_hello_asan: Path
    request_roundtrip_asan: Path
    hello: Path


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Programs:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required to test the C runtime and is not installed")
    out = tmp_path_factory.mktemp("c-runtime")
    include = ["-I", cheri.RUNTIME_INCLUDE_DIR, "-I", cheri.RUNTIME_INCLUDE_DIR.parent / "src"]
    sources = cheri.RUNTIME_SOURCES
    assert sources, "no runtime sources found"

    def objects(tag: str, flags: list[str]) -> list[Path]:
        return [out / f"{tag}-{src.stem}.o" for src in sources]

    jobs = []
    for tag, flags in (("rel", RELEASE), ("san", SANITIZE)):
        for src, obj in zip(sources, objects(tag, flags)):
            jobs.append([*WARNINGS, *RUNTIME_ONLY, *flags, *include, "-c", src, "-o", obj])
    evidence_src = next(s for s in sources if s.stem == "evidence")
    forced = out / "forced-evidence.o"
    jobs.append([*WARNINGS, *RELEASE, "-DATT_FORCE_CHERI_FORMAT", *include, "-c", evidence_src, "-o", forced])
    # Unoptimised too: some warnings only appear at one level.
    jobs.append([*WARNINGS, *RUNTIME_ONLY, "-O0", *include, "-fsyntax-only", *sources])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda job: _gcc(*job), jobs))

    rel = objects("rel", RELEASE)
    san = objects("san", SANITIZE)
    rel_forced = [forced if o.name == "rel-evidence.o" else o for o in rel]
    links = {
        "hpke_vectors": (TESTS_C / "hpke_vectors.c", rel, RELEASE),
        "hpke_tool": (TESTS_C / "hpke_tool.c", rel, RELEASE),
        "evidence_native": (TESTS_C / "evidence_format.c", rel, RELEASE),
        "evidence_forced": (TESTS_C / "evidence_format.c", rel_forced, [*RELEASE, "-DATT_FORCE_CHERI_FORMAT"]),
        "attest_hello": (cheri.EXAMPLES_DIR / "attest_hello.c", rel, RELEASE),
        "attest_hello_asan": (cheri.EXAMPLES_DIR / "attest_hello.c", san, SANITIZE),
        "request_roundtrip_asan": (TESTS_C / "request_roundtrip.c", san, SANITIZE),
        "hello": (cheri.EXAMPLES_DIR / "hello.c", [], RELEASE),
    }
    jobs = []
    for name, (main, objs, flags) in links.items():
        libs = list(cheri.RUNTIME_LIBS) if objs else []
        jobs.append([*WARNINGS, *flags, *include, main, *objs, "-o", out / name, *libs])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda job: _gcc(*job), jobs))
    return Programs(**{name: out / name for name in links})


def run(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(map(str, args)), input=stdin, capture_output=True, text=True, timeout=RUN_TIMEOUT)


# ------------------------------------------------------------------- HPKE


def vector_script(vectors: list[dict]) -> str:
    def h(value: str) -> str:
        return value or "-"

    lines = []
    for v in vectors:
        lines.append("vector")
        for k in ("ikmR", "ikmE", "skRm", "pkRm", "skEm", "pkEm", "enc", "shared_secret", "key", "base_nonce", "info"):
            lines.append(f"{k} {h(v[k])}")
        for seq, e in enumerate(v["encryptions"]):
            lines.append(f"encryption {seq} {h(e['aad'])} {h(e['pt'])} {h(e['nonce'])} {h(e['ct'])}")
        lines.append("end")
    return "\n".join(lines) + "\n"


def test_rfc9180_vector_step_by_step(programs: Programs) -> None:
    vectors = json.loads((DATA / "rfc9180-base-x25519-sha256-chacha20poly1305.json").read_text())
    result = run(programs.hpke_vectors, stdin=vector_script(vectors))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "1", "3"]


def test_every_matching_vector_of_cryptography_vectors(programs: Programs) -> None:
    with cryptography_vectors.open_vector_file(os.path.join("HPKE", "test-vectors.json"), "r") as f:
        every = json.load(f)
    ours = [v for v in every if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 1, 3)]
    assert ours, "the suite's vectors are missing from cryptography-vectors"
    result = run(programs.hpke_vectors, stdin=vector_script(ours))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", str(len(ours)), str(sum(len(v["encryptions"]) for v in ours))]


def raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@pytest.mark.parametrize("size", [0, 1, 4096])
@pytest.mark.parametrize("aad", [b"", b"additional data"])
def test_python_seals_c_opens(programs: Programs, size: int, aad: bytes) -> None:
    key = X25519PrivateKey.generate()
    info = hpke.build_info("request", "store", SERIAL, os.urandom(16))
    plaintext = os.urandom(size)
    sealed = hpke.seal(hpke.public_key_bytes(key), plaintext, info, aad)
    result = run(programs.hpke_tool, "open", raw_private(key).hex(), info.hex(), aad.hex() or "-", sealed.hex())
    assert result.returncode == 0, result.stderr
    assert bytes.fromhex(result.stdout.strip()) == plaintext
    # The same message under another info does not open.
    other = hpke.build_info("response", "store", SERIAL, info[-16:])
    refused = run(programs.hpke_tool, "open", raw_private(key).hex(), other.hex(), aad.hex() or "-", sealed.hex())
    assert refused.returncode == 2 and "cryptographic failure" in refused.stderr


@pytest.mark.parametrize("size", [0, 1, 4096])
@pytest.mark.parametrize("aad", [b"", b"additional data"])
def test_c_seals_python_opens(programs: Programs, size: int, aad: bytes) -> None:
    key = X25519PrivateKey.generate()
    info = hpke.build_info("response", "transport", SERIAL, os.urandom(16))
    plaintext = os.urandom(size)
    result = run(
        programs.hpke_tool, "seal", hpke.public_key_bytes(key).hex(), info.hex(), aad.hex() or "-",
        plaintext.hex() or "-",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sealed = bytes.fromhex(result.stdout.strip())
    assert len(sealed) == size + hpke.OVERHEAD
    assert hpke.open(key, sealed, info, aad) == plaintext
    with pytest.raises(hpke.OpenError):
        hpke.open(key, sealed, info + b"x", aad)


@pytest.mark.parametrize(
    ("direction", "service", "serial"),
    [("request", "store", "1"), ("response", "transport.v2-x_y", SERIAL), ("request", "s" * 64, "f" * 40)],
)
def test_info_is_the_same_bytes_in_c_and_python(programs: Programs, direction: str, service: str, serial: str) -> None:
    nonce = os.urandom(16)
    result = run(programs.hpke_tool, "info", direction, service, serial, nonce.hex())
    assert result.returncode == 0, result.stderr
    assert bytes.fromhex(result.stdout.strip()) == hpke.build_info(direction, service, serial, nonce)


def test_info_layout_byte_by_byte() -> None:
    nonce = bytes(range(16))
    assert hpke.build_info(hpke.Direction.RESPONSE, "store", 0x3A5F, nonce) == (
        b"attestables-info-v1" + b"\x02" + b"\x00\x05store" + b"\x00\x043a5f" + b"\x00\x10" + nonce
    )
    assert hpke.build_info("request", "s", "1", nonce)[19] == 1
    assert hpke.canonical_serial(0x0ABC) == "abc"
    for bad in (0, -1, 1 << 160, "0abc", "ABC", "", True):
        with pytest.raises(ValueError):
            hpke.canonical_serial(bad)
    with pytest.raises(ValueError):
        hpke.build_info("sideways", "s", "1", nonce)
    with pytest.raises(ValueError):
        hpke.build_info("request", "s", "1", nonce[:15])


def test_python_helpers_refuse_malformed_input() -> None:
    key = X25519PrivateKey.generate()
    info = b"i"
    with pytest.raises(ValueError):
        hpke.seal(bytes(31), b"x", info)
    with pytest.raises(ValueError):  # low-order point: the all-zero shared secret
        hpke.seal(bytes(32), b"x", info)
    with pytest.raises(hpke.OpenError):
        hpke.open(key, bytes(47), info)
    sealed = hpke.seal(key.public_key(), b"x", info, b"aad")
    with pytest.raises(hpke.OpenError):
        hpke.open(key, sealed, info)  # aad missing
    assert hpke.open(raw_private(key), sealed, info, b"aad") == b"x"


@pytest.mark.parametrize(
    ("service", "serial"), [("s" * 65, "1"), ("a/b", "1"), ("", "1"), ("s", "01"), ("s", "A"), ("s", "f" * 41)]
)
def test_info_refuses_what_python_refuses(programs: Programs, service: str, serial: str) -> None:
    with pytest.raises(ValueError):
        hpke.build_info("request", service, serial, bytes(16))
    assert run(programs.hpke_tool, "info", "request", service, serial, "00" * 16).returncode == 2


# --------------------------------------------------------------- evidence


def evidence_lines(program: Path) -> dict[str, tuple[int, str]]:
    result = run(program)
    assert result.returncode == 0, result.stderr
    lines = {}
    for line in result.stdout.splitlines():
        label, rc, *rest = line.split(" ", 2)
        lines[label] = (int(rc), rest[0] if rest else "")
    return lines


def test_evidence_native_claims_no_capabilities(programs: Programs) -> None:
    lines = evidence_lines(programs.evidence_native)
    assert lines["records"][0] == -1  # a native build refuses capability records
    doc = json.loads(lines["empty"][1])
    assert doc["cheri"] is False and doc["abi"] == "native" and doc["capabilities"] is None
    assert doc["version"] == 1 and doc["crypto"].startswith("OpenSSL 3.")
    assert lines["empty-space"][0] == 1  # every short buffer refused, none overrun
    assert json.loads(lines["build"][1]) == doc
    assert lines["unnamed"][0] == -1 and lines["null-out"][0] == -1 and lines["too-many"][0] == -1


def test_evidence_cheri_format_with_fake_capabilities(programs: Programs) -> None:
    lines = evidence_lines(programs.evidence_forced)
    assert lines["records"][0] == 0
    doc = json.loads(lines["records"][1])
    assert doc["cheri"] is True and doc["abi"] == "purecap"
    assert doc["capabilities"] == [
        {"name": "key_material", "tag": True, "base": "0x40001230", "length": "0x20", "perms": "0x6817d"},
        {"name": "code", "tag": True, "base": "0x100000", "length": "0x23000", "perms": "0x28117"},
        {
            "name": 'odd "name" \\ with\ncontrol\x01 and high ? bytes',
            "tag": False,
            "base": "0xffffffffffffffff",
            "length": "0x0",
            "perms": "0x0",
        },
    ]
    assert lines["records"][1].isascii()
    assert lines["records-space"][0] == 1 and lines["empty-space"][0] == 1
    assert json.loads(lines["empty"][1])["capabilities"] == []
    # A test build of the CHERI format refuses to produce real evidence.
    assert lines["build"][0] == -7


# ------------------------------------------------------------ the channel


class Launcher:
    """The test's stand-in for the daemon's end of the channel."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(RUN_TIMEOUT)
        self.decoder = FrameDecoder(channel.FROM_COMPARTMENT)
        self.frames: list[channel.Frame] = []

    def recv_raw(self) -> bytes:
        """One whole frame as it came off the wire, without the codec's help."""
        head = self._exactly(4)
        return head + self._exactly(struct.unpack(">I", head)[0])

    def recv(self) -> channel.Message | None:
        while not self.frames:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                # AF_UNIX resets when the peer closes with our bytes unread; all it
                # sent before is delivered first.
                data = b""
            if not data:
                self.decoder.close()
                return None
            self.frames += self.decoder.feed(data)
        return channel.decode(self.frames.pop(0))

    def send(self, message: channel.Message) -> None:
        self.sock.sendall(channel.encode(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "compartment closed the channel mid-frame"
            buf += chunk
        return buf


FD3_WRAPPER = "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); os.execv(sys.argv[2], sys.argv[2:])"


def spawn(program: Path, *args: str, fd3: bool = False) -> tuple[subprocess.Popen[str], Launcher]:
    ours, theirs = socket.socketpair()
    env = {k: v for k, v in os.environ.items() if k != "ATTESTABLES_FD"} | SANITIZER_ENV
    if fd3:  # the default: the daemon's layout, fd 3 and no variable
        # dash cannot redirect from fds above 9, so a two-line Python exec wrapper moves it.
        cmd = [sys.executable, "-c", FD3_WRAPPER, str(theirs.fileno()), str(program), *args]
    else:
        cmd = [str(program), *args]
        env["ATTESTABLES_FD"] = str(theirs.fileno())
    proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    theirs.close()
    return proc, Launcher(ours)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return proc.returncode, out, err


SERVICE_KEYS = {name: X25519PrivateKey.generate() for name in ("store", "transport", "messaging")}
DER = bytes.fromhex("3003020101")  # not a real certificate; the runtime keeps it opaque
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def service_keys() -> ServiceKeys:
    return ServiceKeys(tuple(ServiceKey(n, hpke.public_key_bytes(k)) for n, k in SERVICE_KEYS.items()))


def check_hello_layout(raw: bytes) -> Hello:
    length, frame_type, version, key_len = struct.unpack_from(">IBHH", raw)
    assert length == len(raw) - 4 and frame_type == 1 and version == 1 and key_len == 32
    (evidence_len,) = struct.unpack_from(">I", raw, 4 + 1 + 2 + 2 + 32)
    assert 4 + 1 + 2 + 2 + 32 + 4 + evidence_len == len(raw)
    evidence = json.loads(raw[4 + 1 + 2 + 2 + 32 + 4 :])
    assert evidence["cheri"] is False and evidence["abi"] == "native" and evidence["capabilities"] is None
    [frame] = FrameDecoder(channel.FROM_COMPARTMENT).feed(raw)
    hello = channel.decode(frame)
    assert isinstance(hello, Hello) and hello.public_key == raw[9:41]
    return hello


@pytest.mark.parametrize("fd3", [False, True], ids=["ATTESTABLES_FD", "fd3"])
def test_attest_hello_handshake(programs: Programs, fd3: bool) -> None:
    proc, launcher = spawn(programs.attest_hello, fd3=fd3)
    check_hello_layout(launcher.recv_raw())
    launcher.send(Cert(DER, CHAIN, SERIAL))
    launcher.send(service_keys())
    assert launcher.recv() is None  # nothing more; the program closes the channel
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert f"certificate serial: {SERIAL}\n" in out
    assert "services: 3\nservice: store\nservice: transport\nservice: messaging\n" in out


def test_every_run_makes_a_fresh_key(programs: Programs) -> None:
    seen = set()
    for _ in range(2):
        proc, launcher = spawn(programs.attest_hello)
        seen.add(check_hello_layout(launcher.recv_raw()).public_key)
        launcher.sock.close()
        finish(proc)
    assert len(seen) == 2


def raw_frame(frame_type: int, payload: bytes) -> bytes:
    return struct.pack(">IB", 1 + len(payload), frame_type) + payload


GOOD_CERT = channel.encode(Cert(DER, CHAIN, SERIAL))
GOOD_CERT_PAYLOAD = GOOD_CERT[5:]


def cert_payload(serial: bytes = SERIAL.encode(), cert: bytes = DER, chain: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(cert)) + cert + struct.pack(">I", len(chain)) + chain
        + struct.pack(">H", len(serial)) + serial
    )  # fmt: skip


def service_entry(sid: bytes, key: bytes = bytes(32)) -> bytes:
    return struct.pack(">H", len(sid)) + sid + struct.pack(">H", len(key)) + key


FRAMING = "a malformed or truncated frame"
VIOLATIONS = {  # what the launcher sends after HELLO -> what the runtime reports back
    "zero length": (b"\x00\x00\x00\x00", FRAMING),
    "oversized length": (struct.pack(">IB", channel.MAX_FRAME + 1, 2), FRAMING),
    "unknown type": (raw_frame(9, b""), FRAMING),
    "type zero": (raw_frame(0, b"x"), FRAMING),
    "stream cut mid-frame": (struct.pack(">IB", 100, 2) + b"\x00" * 10, FRAMING),
    "HELLO from the launcher": (channel.encode(Hello(bytes(32), "{}")), "another frame where CERT was due"),
    "RESULT instead of CERT": (channel.encode(Result(1, ResultStatus.FAILED)), "another frame where CERT was due"),
    "CERT with a trailing byte": (raw_frame(2, GOOD_CERT_PAYLOAD + b"\x00"), "a malformed CERT"),
    "CERT cut short": (raw_frame(2, GOOD_CERT_PAYLOAD[:-1]), "a malformed CERT"),
    "CERT length beyond the frame": (raw_frame(2, b"\xff\xff\xff\xff" + GOOD_CERT_PAYLOAD[4:]), "a malformed CERT"),
    "CERT empty certificate": (raw_frame(2, cert_payload(cert=b"")), "a malformed CERT"),
    "CERT serial with a leading zero": (raw_frame(2, cert_payload(serial=b"03a5")), "a malformed CERT"),
    "CERT serial in uppercase": (raw_frame(2, cert_payload(serial=b"3A5F")), "a malformed CERT"),
    "CERT non-ASCII chain": (raw_frame(2, cert_payload(chain=b"\xc3\xa9")), "a malformed CERT"),
    "CERT twice": (GOOD_CERT + GOOD_CERT, "another frame where SERVICE_KEYS was due"),
    "SERVICE_KEYS with a service twice": (
        GOOD_CERT + raw_frame(3, b"\x00\x02" + service_entry(b"a") * 2),
        "a SERVICE_KEYS with a service twice",
    ),
    "SERVICE_KEYS count beyond the entries": (
        GOOD_CERT + raw_frame(3, b"\x00\x02" + service_entry(b"a")),
        "a malformed SERVICE_KEYS",
    ),
    "SERVICE_KEYS 31-byte key": (
        GOOD_CERT + raw_frame(3, b"\x00\x01" + service_entry(b"a", bytes(31))),
        "a malformed SERVICE_KEYS",
    ),
    "SERVICE_KEYS bad service id": (
        GOOD_CERT + raw_frame(3, b"\x00\x01" + service_entry(b"a/b")),
        "a malformed SERVICE_KEYS",
    ),
    "SERVICE_KEYS too many": (
        GOOD_CERT + raw_frame(3, b"\x00\x41" + b"".join(service_entry(b"s%d" % i) for i in range(65))),
        "a malformed SERVICE_KEYS",
    ),
    "ERROR not UTF-8": (raw_frame(7, b"\x00\x00\x00\x00\x00\x05\x00\x00\x00\x01\xff"), "a malformed ERROR"),
    "ERROR unknown code": (raw_frame(7, b"\x00\x00\x00\x00\x00\x63\x00\x00\x00\x00"), "a malformed ERROR"),
    "ERROR for a request never made": (
        channel.encode(ErrorMessage(5, ErrorCode.INTERNAL, "x")),
        "an ERROR for a request never made",
    ),
}


@pytest.mark.parametrize(("wire", "reported"), list(VIOLATIONS.values()), ids=list(VIOLATIONS))
def test_malformed_frames_end_the_program_cleanly(programs: Programs, wire: bytes, reported: str) -> None:
    proc, launcher = spawn(programs.attest_hello_asan)
    launcher.recv_raw()
    launcher.send_raw(wire)
    launcher.sock.shutdown(socket.SHUT_WR)  # so "cut mid-frame" really ends there
    report = launcher.recv()
    # The runtime tells the launcher what went wrong before it gives up.
    assert report == ErrorMessage(0, ErrorCode.PROTOCOL_VIOLATION, reported)
    assert launcher.recv() is None
    rc, out, err = finish(proc)
    assert rc == 1 and out == ""
    assert f"handshake failed: protocol violation by the launcher: launcher sent {reported}\n" in err


@pytest.mark.parametrize("after", ["HELLO", "CERT"])
def test_launcher_closing_early_ends_the_program_cleanly(programs: Programs, after: str) -> None:
    proc, launcher = spawn(programs.attest_hello_asan)
    launcher.recv_raw()
    if after == "CERT":
        launcher.send_raw(GOOD_CERT)
    launcher.sock.close()
    rc, out, err = finish(proc)
    assert rc == 1 and "launcher closed the channel" in err


def test_fatal_error_from_the_launcher(programs: Programs) -> None:
    proc, launcher = spawn(programs.attest_hello_asan)
    launcher.recv_raw()
    launcher.send(ErrorMessage(0, ErrorCode.INTERNAL, "shutting down\x1b[31m"))
    assert launcher.recv() is None  # no complaint back: the ERROR was well-formed
    rc, out, err = finish(proc)
    assert rc == 1
    assert "launcher reported a fatal error: launcher: shutting down?[31m" in err  # escapes defused


@pytest.mark.parametrize("value", [None, "", "abc", "2", "99999999999"])
def test_no_usable_channel(programs: Programs, value: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ATTESTABLES_FD"}
    if value is not None:
        env["ATTESTABLES_FD"] = value
    result = subprocess.run([programs.attest_hello], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 1 and "handshake failed" in result.stderr


def test_requests_round_trip_through_a_launcher(programs: Programs) -> None:
    """READ/WRITE sealed in C, opened by the 'service' in Python and answered; every
    outcome the runtime distinguishes, then a launcher that breaks the protocol."""
    ops = [
        "read:store:new sales?",
        "write:messaging:your taxi is booked",
        "read:transport:deny",
        "read:store:fail",
        "read:store:refuse",
        "read:store:tamper",
        "read:store:wrong direction",
        "read:nosuch:x",
        "write:store:",
        "read:store:wrong request id",
    ]
    proc, launcher = spawn(programs.request_roundtrip_asan, *ops)
    hello = launcher.recv()
    assert isinstance(hello, Hello)
    launcher.send(Cert(DER, CHAIN, SERIAL))
    launcher.send(service_keys())

    seen_ids, seen_nonces = [], set()
    while (req := launcher.recv()) is not None:
        if isinstance(req, ErrorMessage):
            assert req == ErrorMessage(0, ErrorCode.PROTOCOL_VIOLATION, req.message)
            continue
        assert isinstance(req, Request)
        seen_ids.append(req.request_id)
        seen_nonces.add(req.nonce)
        info = hpke.build_info("request", req.service_id, SERIAL, req.nonce)
        query = hpke.open(SERVICE_KEYS[req.service_id], req.sealed, info)

        def answer(text: bytes, direction: str = "response") -> bytes:
            return hpke.seal(hello.public_key, text, hpke.build_info(direction, req.service_id, SERIAL, req.nonce))

        if query == b"new sales?":
            assert isinstance(req, channel.Read)
            launcher.send(Result(req.request_id, ResultStatus.OK, answer(b"sale 42: $180.00")))
        elif query == b"your taxi is booked":
            assert isinstance(req, channel.Write) and req.service_id == "messaging"
            launcher.send(Result(req.request_id, ResultStatus.OK))
        elif query == b"deny":
            launcher.send(Result(req.request_id, ResultStatus.DENIED))
        elif query == b"fail":
            launcher.send(Result(req.request_id, ResultStatus.FAILED))
        elif query == b"refuse":
            launcher.send(ErrorMessage(req.request_id, ErrorCode.SERVICE_UNAVAILABLE, "store is down"))
        elif query == b"tamper":
            sealed = bytearray(answer(b"altered"))
            sealed[-1] ^= 1
            launcher.send(Result(req.request_id, ResultStatus.OK, bytes(sealed)))
        elif query == b"wrong direction":
            launcher.send(Result(req.request_id, ResultStatus.OK, answer(b"replayed", "request")))
        elif query == b"":
            launcher.send(Result(req.request_id, ResultStatus.OK, answer(b"")))
        elif query == b"wrong request id":
            launcher.send(Result(req.request_id + 1, ResultStatus.OK))
        else:
            pytest.fail(f"unexpected query {query!r}")

    rc, out, err = finish(proc)
    lines = out.splitlines()
    assert lines[0] == f"serial {SERIAL}"
    assert lines[1:] == [
        "read rc=0 answer=sale 42: $180.00 detail=",
        "write rc=0 answer= detail=",
        "read rc=-12 answer= detail=",
        "read rc=-13 answer= detail=",
        "read rc=-11 answer= detail=launcher: store is down",
        "read rc=-5 answer= detail=the answer did not open: wrong key, context or altered in transit",
        "read rc=-5 answer= detail=the answer did not open: wrong key, context or altered in transit",
        "read rc=-8 answer= detail=",
        "write rc=0 answer= detail=",
        "read rc=-4 answer= detail=launcher sent a RESULT for a request not outstanding",
        "key wiped",
    ]
    assert rc == 1
    assert seen_ids == list(range(1, 10))  # no request for the unknown service
    assert len(seen_nonces) == 9


def test_plain_hello_needs_no_runtime(programs: Programs) -> None:
    result = run(programs.hello)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "hello from a compartment"
