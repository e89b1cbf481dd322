"""The service's own log of verifications: one row per attested request that reached the
verifier, with the result and its reasons. Never plaintext: the endpoint, the
certificate's serial and fingerprint, the status, the reasons, the HTTP status, the
outcome and the request's nonce (which travels in clear anyway).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .database import ServiceDatabase
from .timeutil import iso_now


@dataclass
class Verification:
    endpoint: str
    status: str
    reasons: list[dict[str, str]] = field(default_factory=list)
    serial: str | None = None
    fingerprint: str | None = None
    nonce: str | None = None
    http_status: int = 0
    outcome: str = ""

    def answer(self) -> dict[str, Any]:
        """The ``verification`` member of an attested answer (the contract's shape)."""
        return {"status": self.status, "reasons": self.reasons}


def record(conn: sqlite3.Connection, entry: Verification) -> None:
    """Add ``entry`` to the log, inside the caller's transaction (on the database's thread)."""
    conn.execute(
        """INSERT INTO verifications (ts, endpoint, serial, fingerprint, status, reasons, http_status, outcome,
                                      nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (iso_now(), entry.endpoint, entry.serial, entry.fingerprint, entry.status, json.dumps(entry.reasons),
         entry.http_status, entry.outcome, entry.nonce),
    )


async def listing(db: ServiceDatabase, *, after: int, limit: int) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM verifications WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
    return [
        {"id": r["id"], "ts": r["ts"], "endpoint": r["endpoint"], "serial": r["serial"],
         "fingerprint": r["fingerprint"], "status": r["status"], "reasons": json.loads(r["reasons"]),
         "http_status": r["http_status"], "outcome": r["outcome"], "nonce": r["nonce"]}
        for r in rows
    ]


async def prune(db: ServiceDatabase, keep: int) -> int:
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM verifications WHERE id <= (SELECT MAX(id) FROM verifications) - ?", (keep,)
        )
        return cursor.rowcount
