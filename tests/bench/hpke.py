"""``hpke_c_seal_open_us_p50``: the C runtime's HPKE against the Python library's.

Ours is ``att_hpke_seal`` then ``att_hpke_open`` of a 1 KiB message
(``cheri/runtime/src/hpke.c``, compiled with every runtime source into ``c/hpke_driver.c``
with the daemon's ``-O2 -D_FORTIFY_SOURCE=2`` against the system's libcrypto), timed
inside the driver with CLOCK_MONOTONIC over ``k`` rounds: the mean per seal+open pair.
The baseline is ``attestables.shared.hpke.seal`` then ``open`` of the same size in this
process (``cryptography``'s HPKE, Rust over the OpenSSL that its wheel bundles), with the
key types the services use: the recipient's public key as 32 raw bytes, its private key
as a key object. Both sides use the protocol's info (a request to ``store``) and empty
aad. One driver process and one Python batch per repeat, interleaved.

The goal is relative: C no slower than the Python library in the same run.
"""

from __future__ import annotations

import os
import subprocess
import time

from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from attestables.shared import hpke

from .measure import Result, interleaved, median
from .native import NativePrograms

SIZE = 1024
SERIAL = "3a5f0c9e11d2b7a4"
ARMS = ("c", "python")


def c_round(driver: str, size: int, k: int) -> dict[str, float]:
    """One driver run: ns per seal+open, per seal, per open."""
    out = subprocess.run([driver, str(size), str(k)], capture_output=True, text=True, check=True).stdout
    values = dict(line.split() for line in out.splitlines() if line.strip())
    return {name: float(values[name]) for name in ("seal_open_ns", "seal_ns", "open_ns")}


def python_round(size: int, k: int) -> dict[str, float]:
    key = X25519PrivateKey.generate()
    public = hpke.public_key_bytes(key)
    info = hpke.build_info("request", "store", SERIAL, os.urandom(16))
    message = os.urandom(size)
    if hpke.open(key, hpke.seal(public, message, info), info) != message:  # untimed check round
        raise RuntimeError("the Python HPKE round trip failed")
    t0 = time.perf_counter()
    for _ in range(k):
        hpke.open(key, hpke.seal(public, message, info), info)
    t1 = time.perf_counter()
    sealed = [hpke.seal(public, message, info) for _ in range(k)]
    t2 = time.perf_counter()
    for item in sealed:
        hpke.open(key, item, info)
    t3 = time.perf_counter()
    return {"seal_open_ns": (t1 - t0) / k * 1e9, "seal_ns": (t2 - t1) / k * 1e9, "open_ns": (t3 - t2) / k * 1e9}


def bench_hpke(repeats: int, k: int) -> list[Result]:
    native = NativePrograms()
    try:
        driver = str(native.build("hpke_driver", runtime=True))
        c_round(driver, SIZE, max(1, k // 10))  # warm-up: page cache
        python_round(SIZE, max(1, k // 10))
        samples: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
        for _, arm in interleaved(repeats, ARMS):
            samples[arm].append(c_round(driver, SIZE, k) if arm == "c" else python_round(SIZE, k))
    finally:
        native.remove()

    def p50_us(arm: str, name: str) -> float:
        return round(median([s[name] for s in samples[arm]]) / 1000, 2)

    ours, base = p50_us("c", "seal_open_ns"), p50_us("python", "seal_open_ns")
    return [Result(
        key="hpke_c_seal_open_us_p50",
        value=ours,
        unit="us",
        goal=base,
        goal_op="<=",
        extra={
            "ours_ms_p50": round(ours / 1000, 4),
            "baseline_ms_p50": round(base / 1000, 4),
            "python_seal_open_us_p50": base,
            "ratio_c_over_python": round(ours / base, 3),
            "c_seal_us_p50": p50_us("c", "seal_ns"),
            "c_open_us_p50": p50_us("c", "open_ns"),
            "python_seal_us_p50": p50_us("python", "seal_ns"),
            "python_open_us_p50": p50_us("python", "open_ns"),
            "c_samples_us": [round(s["seal_open_ns"] / 1000, 2) for s in samples["c"]],
            "python_samples_us": [round(s["seal_open_ns"] / 1000, 2) for s in samples["python"]],
            "message_bytes": SIZE,
            "rounds_per_repeat": k,
            "repeats": repeats,
            "c_libcrypto": _system_openssl(),
            "python_libcrypto": backend.openssl_version_text(),
            "goal_means": "C no slower than the Python library measured in the same run",
            "baseline": "attestables.shared.hpke.seal + open in this process (cryptography's HPKE)",
        },
    )]


def _system_openssl() -> str | None:
    try:
        return subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return None
