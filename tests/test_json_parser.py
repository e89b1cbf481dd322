"""The runtime's JSON reader and writer (cheri/runtime/src/json.c), fuzzed.

No libFuzzer (gcc only): ``cheri/tests/json_fuzz.c`` is a driver that reads cases from
stdin, parses each from a heap buffer of exactly its length, checks the accessors
against each other, writes the document back through the writer, and answers ``ok HEX``
or ``err CODE OFFSET``. It runs under AddressSanitizer/UBSan. Python is the oracle:
``json.loads`` narrowed to the strict subset the C reader accepts (UTF-8, no floats,
NaN or Infinity, int64 integers, no duplicate keys, no lone surrogates, bounded depth,
strings, values and input). For every case the two must agree on accept or reject,
and an accepted document must come back as exactly ``json.dumps(value,
ensure_ascii=False, separators=(",", ":"))``: the same values, the same member order,
the same escapes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestables import cheri

TESTS_C = Path(cheri.__file__).parent / "tests"
JSON_SOURCE = cheri.RUNTIME_DIR / "src" / "json.c"

WARNINGS = [
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
    "-Wvla", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wformat=2",
]  # fmt: skip
RUNTIME_ONLY = ["-Wconversion", "-Wsign-conversion"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZER_ENV = {"ASAN_OPTIONS": "exitcode=86:detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87"}

# The driver's bounds (its defaults; the runtime's defaults but for the token array).
MAX_INPUT = 256 * 1024
MAX_DEPTH = 16
MAX_STRING = 4096
MAX_TOKENS = 4096
INT64 = (-(2**63), 2**63 - 1)

E = {  # ATT_JSON_E_* codes (cheri/runtime/include/att_json.h)
    "TOO_LARGE": -102, "TRUNCATED": -103, "SYNTAX": -104, "DEPTH": -105, "TOKENS": -106,
    "STRING_LONG": -107, "CONTROL": -108, "ESCAPE": -109, "SURROGATE": -110, "UTF8": -111,
    "NUMBER": -112, "NOT_INTEGER": -113, "RANGE": -114, "DUPLICATE_KEY": -115, "TRAILING": -116,
}  # fmt: skip


def _gcc(*args: object) -> None:
    result = subprocess.run(["gcc", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"gcc {' '.join(map(str, args))}\n{result.stderr}")


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required to test the JSON parser and is not installed")
    out = tmp_path_factory.mktemp("json")
    include = ["-I", cheri.RUNTIME_INCLUDE_DIR]
    # The library source is held to the runtime's warnings at both ends of optimisation.
    for opt in (["-O0"], ["-O2", "-D_FORTIFY_SOURCE=2"]):
        _gcc(*WARNINGS, *RUNTIME_ONLY, *opt, *include, "-fsyntax-only", JSON_SOURCE)
    built = {}
    for name in ("json_fuzz", "json_unit"):
        built[name] = out / name
        _gcc(*WARNINGS, *SANITIZE, *include, TESTS_C / f"{name}.c", JSON_SOURCE, "-o", built[name])
    return built


def frame(case: bytes) -> bytes:
    return struct.pack(">I", len(case)) + case


def parse_answer(line: str) -> tuple[str, Any, Any]:
    kind, *rest = line.split()
    if kind == "ok":
        return ("ok", bytes.fromhex(rest[0]) if rest else b"", None)
    assert kind == "err", line
    return ("err", int(rest[0]), int(rest[1]))


def run_batch(program: Path, cases: list[bytes]) -> list[tuple[str, Any, Any]]:
    """Every case through one driver process; its answers in order."""
    result = subprocess.run(
        [program], input=b"".join(map(frame, cases)), capture_output=True, timeout=60,
        env={**os.environ, **SANITIZER_ENV},
    )  # fmt: skip
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0 and "Sanitizer" not in err and "runtime error" not in err, err
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(cases)
    return [parse_answer(line) for line in lines]


class Driver:
    """One long-lived driver for per-example checks (hypothesis)."""

    def __init__(self, program: Path) -> None:
        self.proc = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, **SANITIZER_ENV})  # fmt: skip

    def check(self, case: bytes) -> tuple[str, Any, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(frame(case))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            assert self.proc.stderr is not None
            pytest.fail(f"driver died on {case!r}: {self.proc.stderr.read().decode(errors='replace')}")
        return parse_answer(line.decode())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        err = self.proc.stderr.read().decode(errors="replace")
        assert rc == 0 and "Sanitizer" not in err and "runtime error" not in err, err


@pytest.fixture(scope="module")
def driver(programs: dict[str, Path]) -> Any:
    d = Driver(programs["json_fuzz"])
    yield d
    d.close()


# ----------------------------------------------------------------- the oracle


class Reject(Exception):
    pass


def _no_constant(name: str) -> Any:
    raise Reject(f"constant {name}")


def _no_float(text: str) -> Any:
    raise Reject(f"float {text}")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Reject("duplicate key")
    return dict(pairs)


def _check_string(s: str) -> None:
    try:
        encoded = s.encode("utf-8")  # a lone surrogate (from a \u escape) does not encode
    except UnicodeEncodeError:
        raise Reject("lone surrogate") from None
    if len(encoded) > MAX_STRING:
        raise Reject("string too long")


def _walk(value: Any, depth: int) -> int:
    """Checks the bounds; returns the number of tokens the value takes."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise Reject("integer out of range")
        return 1
    if isinstance(value, str):
        _check_string(value)
        return 1
    if depth + 1 > MAX_DEPTH:
        raise Reject("too deep")
    if isinstance(value, list):
        return 1 + sum(_walk(v, depth + 1) for v in value)
    assert isinstance(value, dict)
    total = 1
    for k, v in value.items():
        _check_string(k)
        total += 1 + _walk(v, depth + 1)
    return total


REJECTED = object()


def oracle(data: bytes) -> Any:
    """What the C reader must do with data: the value, or REJECTED."""
    if len(data) > MAX_INPUT:
        return REJECTED
    try:
        text = data.decode("utf-8")  # strict: no surrogates, overlongs or stray bytes
        value = json.loads(text, parse_constant=_no_constant, parse_float=_no_float, object_pairs_hook=_unique_pairs)
        if _walk(value, 0) > MAX_TOKENS:
            raise Reject("too many values")
    except (Reject, ValueError, RecursionError):
        return REJECTED
    return value


def canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def agree(data: bytes, answer: tuple[str, Any, Any]) -> None:
    expected = oracle(data)
    if expected is REJECTED:
        assert answer[0] == "err", f"C accepted what the strict oracle rejects: {data[:200]!r}"
        assert answer[1] in E.values(), answer
        assert answer[2] <= len(data) or answer[1] == E["TOO_LARGE"], answer
    else:
        assert answer[0] == "ok", f"C rejected ({answer}) a valid document: {data[:200]!r}"
        assert answer[1] == canonical(expected), data[:200]


def agree_all(program: Path, cases: list[bytes]) -> None:
    for case, answer in zip(cases, run_batch(program, cases)):
        agree(case, answer)


# ------------------------------------------------------------ generated JSON

ints = st.one_of(
    st.integers(min_value=INT64[0], max_value=INT64[1]),
    st.sampled_from([0, -1, 1, INT64[0], INT64[1], INT64[0] - 1, INT64[1] + 1, 10**30, -(10**30)]),
)
texts = st.text(st.characters(codec="utf-8"), max_size=24)  # all of Unicode but surrogates
scalars = st.none() | st.booleans() | ints | texts
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(texts, inner, max_size=6),
    max_leaves=40,
)

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def encode_string(s: str, rnd: random.Random) -> str:
    out = ['"']
    for ch in s:
        cp = ord(ch)
        pick = rnd.random()
        if ch in SHORT_ESCAPES and pick < 0.7:
            out.append(SHORT_ESCAPES[ch])
        elif ch == "/" and pick < 0.5:
            out.append("\\/")
        elif cp < 0x20 or ch in '"\\' or pick < 0.2:
            hex_form = "\\u{:04x}" if rnd.random() < 0.5 else "\\u{:04X}"
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append(hex_form.format(0xD800 + (cp >> 10)) + hex_form.format(0xDC00 + (cp & 0x3FF)))
            else:
                out.append(hex_form.format(cp))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def encode_variant(value: Any, rnd: random.Random) -> bytes:
    """value as JSON text, with a random choice of escapes and white space."""

    def ws() -> str:
        return "".join(rnd.choice(" \t\r\n") for _ in range(rnd.choice([0, 0, 0, 1, 2])))

    def enc(v: Any) -> str:
        if v is None or isinstance(v, bool):
            return json.dumps(v)
        if isinstance(v, int):
            return ("-0" if rnd.random() < 0.3 else "0") if v == 0 else str(v)
        if isinstance(v, str):
            return encode_string(v, rnd)
        if isinstance(v, list):
            return "[" + ws() + ",".join(ws() + enc(x) + ws() for x in v) + ws() + "]"
        items = (ws() + encode_string(k, rnd) + ws() + ":" + ws() + enc(x) + ws() for k, x in v.items())
        return "{" + ws() + ",".join(items) + ws() + "}"

    return (ws() + enc(value) + ws()).encode()


FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


@FUZZ
@given(values, st.integers(min_value=0, max_value=2**32))
def test_generated_documents_agree_with_python(driver: Driver, value: Any, seed: int) -> None:
    rnd = random.Random(seed)
    data = encode_variant(value, rnd)
    agree(data, driver.check(data))
    # Python's own spellings too: ASCII escapes (surrogate pairs), indentation.
    agree(json.dumps(value).encode(), driver.check(json.dumps(value).encode()))
    pretty = json.dumps(value, ensure_ascii=False, indent=rnd.choice([0, 2, "\t"])).encode()
    agree(pretty, driver.check(pretty))


SOUP = [
    b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"\\ud83d", b"\\ude00", b"\\u0000", b"\\n", b"\\x",
    b"a", b"\xc3\xa9", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\x1f", b"\x7f", b" ", b"\t", b"\n",
    b"\x0b", b"0", b"-", b"1", b"9223372036854775807", b"9223372036854775808", b".", b"e", b"true", b"fals",
    b"null", b"NaN", b'"k"', b'"k":', b"{}", b"[]",
]  # fmt: skip


@FUZZ
@given(st.one_of(st.binary(max_size=48), st.lists(st.sampled_from(SOUP), max_size=24).map(b"".join)))
def test_token_soup_agrees_with_python(driver: Driver, data: bytes) -> None:
    agree(data, driver.check(data))


# -------------------------------------------------------- mutation campaign


def random_value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.random()
    if depth < 5 and kind < 0.35:
        if rnd.random() < 0.5:
            return [random_value(rnd, depth + 1) for _ in range(rnd.randrange(5))]
        return {"".join(rnd.choice("ab\u00e9\U0001f695\"\\/\n") for _ in range(rnd.randrange(4))) + str(i):
                random_value(rnd, depth + 1) for i in range(rnd.randrange(5))}  # fmt: skip
    if kind < 0.5:
        return rnd.choice([None, True, False])
    if kind < 0.75:
        return rnd.choice([0, 1, -1, 150_00, INT64[0], INT64[1], rnd.randrange(-(2**63), 2**63)])
    return "".join(rnd.choice("abc \u00e9\u2028\U0001f695\"\\/\b\x01\x7f") for _ in range(rnd.randrange(10)))


INTERESTING = [
    b'"', b"\\", b"\\u", b"\\ud800", b"\\udc00", b"\\u00", b"{", b"}", b"[", b"]", b",", b":", b"-", b"0",
    b"9" * 20, b".5", b"e9", b"true", b"null", b"\x00", b"\x1f", b"\x7f", b"\xc3", b"\x80", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xef\xbb\xbf", b" ", b"\t", b"\r\n", b'"a":1', b"[" * 20, b'{"a":',
]  # fmt: skip


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        op, pos = rnd.randrange(6), rnd.randint(0, len(b))
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b[pos:pos] = rnd.choice(INTERESTING)
        elif op == 2 and b:
            del b[pos : pos + rnd.randint(1, 4)]
        elif op == 3:
            del b[pos:]
        elif op == 4 and b:
            i = rnd.randrange(len(b))
            b[pos:pos] = b[i : i + rnd.randint(1, 8)]
        elif b:
            b[min(pos, len(b) - 1)] = rnd.randrange(256)
    return bytes(b)


def test_mutated_documents_agree_with_python(programs: dict[str, Path]) -> None:
    rnd = random.Random(int(os.environ.get("JSON_FUZZ_SEED", "20240601")))
    seeds = [encode_variant(random_value(rnd), rnd) for _ in range(300)]
    cases = [mutate(rnd.choice(seeds), rnd) for _ in range(40000)]
    agree_all(programs["json_fuzz"], cases)
    accepted = sum(oracle(c) is not REJECTED for c in cases)
    assert 0.02 * len(cases) < accepted < 0.9 * len(cases), accepted  # the campaign reaches both sides


def test_every_prefix_of_a_document(programs: dict[str, Path]) -> None:
    doc = json.dumps(
        {"sales": [{"id": 1, "customer": "Zo\u00eb \U0001f695", "total_cents": 18000, "ok": True, "x": None},
                   {"id": -9223372036854775808, "note": "a\\\"b\n\u0001", "list": [[], {}, [0, -1]]}],
         "last_id": 2}, ensure_ascii=True,
    ).encode()  # fmt: skip
    cases = [doc[:i] for i in range(len(doc) + 1)]
    answers = run_batch(programs["json_fuzz"], cases)
    for case, answer in zip(cases, answers):
        agree(case, answer)
    assert [a[0] for a in answers].count("ok") == 1  # only the whole document


def test_hostile_shapes_are_refused_without_crashing(programs: dict[str, Path]) -> None:
    cases = {
        "16 deep": b"[" * 16 + b"]" * 16,
        "17 deep": b"[" * 17 + b"]" * 17,
        "16 deep objects": b'{"a":' * 16 + b"1" + b"}" * 16,
        "17 deep objects": b'{"a":' * 17 + b"1" + b"}" * 17,
        "deep and unclosed": b"[" * 200_000,
        "deep mixed": b'[{"a":' * 5000 + b"0" + b"}]" * 5000,
        "longest string": b'"' + b"a" * MAX_STRING + b'"',
        "string one too long": b'"' + b"a" * (MAX_STRING + 1) + b'"',
        "long escaped string": b'"' + b"\\u00e9" * (MAX_STRING // 2) + b'"',
        "escaped string one byte too long": b'"' + b"\\u00e9" * (MAX_STRING // 2) + b'x"',
        "long key": b'{"' + b"k" * (MAX_STRING + 1) + b'":1}',
        "most values": b"[" + b"0," * (MAX_TOKENS - 2) + b"0]",
        "one value too many": b"[" + b"0," * (MAX_TOKENS - 1) + b"0]",
        "many members": b"{" + b",".join(b'"k%d":0' % i for i in range(MAX_TOKENS // 2 - 1)) + b"}",
        # Equally long keys, all escaped: the duplicate check must not decode every pair.
        "many long escaped keys": b"{" + b",".join(b'"%s":0' % (b"\\u00e9" * 16 + b"%05d" % i)
                                               for i in range(MAX_TOKENS // 2 - 1)) + b"}",
        "many members, last a duplicate": b"{" + b",".join(b'"k%d":0' % i for i in range(1000)) + b',"k0":1}',
        "too large": b'"' + b"a" * MAX_INPUT + b'"',
        "huge number": b"9" * 5000,
        "huge negative number": b"-" + b"9" * 5000,
        "int64 max": b"9223372036854775807",
        "int64 max + 1": b"9223372036854775808",
        "int64 min": b"-9223372036854775808",
        "int64 min - 1": b"-9223372036854775809",
        "float": b"150.00",
        "exponent": b"15000e0",
        "negative zero float": b"-0.0",
        "infinity": b"[Infinity]",
        "nan": b"[NaN]",
        "leading zeros": b"[00]",
        "lone high surrogate": b'"\\ud83d"',
        "lone low surrogate": b'"\\ude00"',
        "reversed pair": b'"\\ude00\\ud83d"',
        "good pair": b'"\\ud83d\\ude95"',
        "encoded surrogate": b'"\xed\xa0\x80"',
        "overlong slash": b'"\xc0\xaf"',
        "overlong NUL": b'"\xc0\x80"',
        "above U+10FFFF": b'"\xf4\x90\x80\x80"',
        "byte order mark": b"\xef\xbb\xbf{}",
        "vertical tab": b"[\x0b1]",
        "non-breaking space": b"[\xc2\xa01]",
        "single quotes": b"{'a':1}",
        "trailing comma": b"[1,]",
        "comment": b"[1]//",
        "two documents": b"{}{}",
        "duplicate via escape": b'{"a":1,"\\u0061":2}',
        "NUL escape": b'"\\u0000"',
        "raw NUL": b'"\x00"',
        "raw DEL and U+2028": b'"\x7f\xe2\x80\xa8"',
    }
    names, data = list(cases), list(cases.values())
    data += [bytes([0x22, b, 0x22]) for b in range(256)]  # every byte alone in a string
    data += [b'"\\' + bytes([b]) + b'"' for b in range(256)]  # every escape letter
    data += [bytes([b]) for b in range(256)]  # every byte as a document
    answers = run_batch(programs["json_fuzz"], data)
    for case, answer in zip(data, answers):
        agree(case, answer)
    got = dict(zip(names, answers))
    assert got["16 deep"][0] == "ok" and got["17 deep"][1] == E["DEPTH"] and got["17 deep"][2] == 16
    assert got["deep and unclosed"][1] == E["DEPTH"] and got["deep mixed"][1] == E["DEPTH"]
    assert got["string one too long"][1] == E["STRING_LONG"] and got["long key"][1] == E["STRING_LONG"]
    assert got["escaped string one byte too long"][1] == E["STRING_LONG"]
    assert got["most values"][0] == "ok" and got["one value too many"][1] == E["TOKENS"]
    assert got["many members"][0] == "ok" and got["many long escaped keys"][0] == "ok"
    assert got["many members, last a duplicate"][1] == E["DUPLICATE_KEY"]
    assert got["too large"][1] == E["TOO_LARGE"]
    assert got["huge number"][1] == E["RANGE"] and got["int64 max + 1"][1] == E["RANGE"]
    assert got["int64 min"] == ("ok", b"-9223372036854775808", None)
    assert got["float"][1] == E["NOT_INTEGER"] and got["exponent"][1] == E["NOT_INTEGER"]
    assert got["lone high surrogate"][1] == E["SURROGATE"] and got["reversed pair"][1] == E["SURROGATE"]
    assert got["good pair"] == ("ok", '"\U0001f695"'.encode(), None)
    assert got["encoded surrogate"][1] == E["UTF8"] and got["overlong NUL"][1] == E["UTF8"]
    assert got["raw NUL"][1] == E["CONTROL"]
    assert got["duplicate via escape"][1] == E["DUPLICATE_KEY"]


def test_unit_checks(programs: dict[str, Path]) -> None:
    result = subprocess.run([programs["json_unit"]], capture_output=True, text=True, timeout=30,
                            env={**os.environ, **SANITIZER_ENV})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ") and int(result.stdout.split()[1]) > 100


def test_driver_replays_files(programs: dict[str, Path], tmp_path: Path) -> None:
    """The file mode, to replay a case that failed: one answer per file."""
    (tmp_path / "a.json").write_bytes(b'{"after_id": 0, "limit": 50}')
    (tmp_path / "b.json").write_bytes(b"[1,")
    result = subprocess.run([programs["json_fuzz"], tmp_path / "a.json", tmp_path / "b.json"], capture_output=True,
                            text=True, timeout=30, env={**os.environ, **SANITIZER_ENV})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok " + b'{"after_id":0,"limit":50}'.hex(), f"err {E['TRUNCATED']} 3"]
