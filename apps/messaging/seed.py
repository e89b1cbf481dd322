"""Two earlier conversations of a new messaging service: invented customers' fictional
numbers (+1-555-01xx), both long since accepted."""

from __future__ import annotations

import time

import aiosqlite

MESSAGES: tuple[tuple[str, str, str, str], ...] = (
    # key, phone, text, reply
    ("seed-1", "+1-555-0190", "Hello Ivy Example, your order is ready. Reply YES for a taxi.", "accepted"),
    ("seed-2", "+1-555-0191", "Hello Jack Placeholder, your order is ready. Reply YES for a taxi.", "declined"),
)


async def seed(conn: aiosqlite.Connection) -> None:
    earlier = time.time() - 86400
    await conn.executemany(
        "INSERT INTO messages (key, phone, text, created_at, reply, replied_at, sent_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(key, phone, text, earlier, reply, earlier + 60, "seed") for key, phone, text, reply in MESSAGES],
    )
