"""One transaction as one trip to an aiosqlite connection's thread.

aiosqlite runs every statement on the connection's own thread and wakes the event loop
for each result: a transaction of n statements costs n + 2 round trips, each a thread
hand-off and a loop wake-up. :func:`run_transaction` runs a plain function of the
``sqlite3.Connection`` there instead, between ``BEGIN IMMEDIATE`` and ``COMMIT``
(``ROLLBACK`` if it raises, and the exception reaches the caller): one round trip. The
function must not touch the event loop; it is where the hot paths (a service's attested
request, the broker's trace rows) do their statements.

It relies on ``aiosqlite.Connection._execute`` (queue a callable on the connection's
thread), which aiosqlite has no public name for; the import fails here, with this
explanation, if an aiosqlite without it is installed. The caller holds whatever lock
keeps its other transactions from interleaving.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, TypeVar

import aiosqlite

T = TypeVar("T")

_ON_THREAD = getattr(aiosqlite.Connection, "_execute", None)
if _ON_THREAD is None:  # pragma: no cover - depends on the installed aiosqlite
    raise ImportError("this aiosqlite has no Connection._execute (run a callable on the connection's thread), "
                      "which attestables.shared.sqlite relies on: install one that has it (0.20 to 0.22 do)")


async def run_transaction(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(sqlite3_connection)`` inside one transaction, on ``conn``'s thread."""
    return await _ON_THREAD(conn, _in_transaction, conn._conn, fn)  # type: ignore[misc]


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
