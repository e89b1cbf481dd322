"""A transaction as one function of the ``sqlite3.Connection``, in one step.

aiosqlite runs every statement on the connection's own thread and wakes the event loop
for each result: a transaction of n statements costs n + 2 round trips, each a thread
hand-off and a loop wake-up (~150 µs apiece on the 2-core VMs here, measured in
``docs/benchmarks.md``). Two ways to do better, for the hot paths:

- :func:`run_transaction` runs the function on the connection's thread, between
  ``BEGIN IMMEDIATE`` and ``COMMIT`` (``ROLLBACK`` if it raises, and the exception reaches
  the caller): one round trip. The daemon's transactions (trace rows, uploads) use it.
- :func:`transaction_now` runs it right here, on the event loop's thread, if the write
  lock is free at once (else :class:`Locked`: the caller falls back to
  :func:`run_transaction`, which waits up to the busy timeout on the thread, never on the
  loop). A service's attested request uses it: its few indexed statements take tens of
  microseconds, less than one hand-off. This needs the connection opened with
  ``check_same_thread=False`` and a lock held by the caller around every use of the
  connection, so that the thread and the loop never use it at once.

:func:`execute`, :func:`fetch_one` and :func:`fetch_all` are one statement and its
result in one round trip, the cursor closed on the thread (a statement left in progress
would keep a later COMMIT on the connection from committing).

It relies on ``aiosqlite.Connection._execute`` (queue a callable on the connection's
thread), which aiosqlite has no public name for; the import fails here, with this
explanation, if an aiosqlite without it is installed. The caller holds whatever lock
keeps its other transactions from interleaving.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Sequence, TypeVar

import aiosqlite

T = TypeVar("T")

_ON_THREAD = getattr(aiosqlite.Connection, "_execute", None)
if _ON_THREAD is None:  # pragma: no cover - depends on the installed aiosqlite
    raise ImportError("this aiosqlite has no Connection._execute (run a callable on the connection's thread), "
                      "which attestables.shared.sqlite relies on: install one that has it (0.20 to 0.22 do)")


class Locked(Exception):
    """Another connection (another process) holds the database's write lock."""


def transaction_now(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, busy_timeout_ms: int) -> T:
    """``fn(conn)`` inside one transaction, on this thread, without waiting for the write
    lock: :class:`Locked` if it is held. ``busy_timeout_ms`` is restored afterwards."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise Locked(str(exc)) from None
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return _finish(conn, fn)


async def on_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(sqlite3_connection)`` on ``conn``'s thread, as it is (no transaction added)."""
    return await _ON_THREAD(conn, fn, conn._conn)  # type: ignore[misc]


async def _statement(conn: aiosqlite.Connection, sql: str, params: Sequence[Any],
                     take: Callable[[sqlite3.Cursor], T]) -> T:
    args = tuple(params)

    def run(c: sqlite3.Connection) -> T:
        cursor = c.execute(sql, args)
        try:
            return take(cursor)
        finally:
            cursor.close()

    return await on_thread(conn, run)


async def execute(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> tuple[int, int]:
    """One statement (its own transaction in autocommit mode): (rows changed, last row id)."""
    return await _statement(conn, sql, params, lambda c: (c.rowcount, int(c.lastrowid or 0)))


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first row of a query, or None."""
    return await _statement(conn, sql, params, sqlite3.Cursor.fetchone)


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Every row of a query."""
    return await _statement(conn, sql, params, sqlite3.Cursor.fetchall)


async def run_transaction(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(sqlite3_connection)`` inside one transaction, on ``conn``'s thread."""
    return await _ON_THREAD(conn, _in_transaction, conn._conn, fn)  # type: ignore[misc]


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    return _finish(conn, fn)


def _finish(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
