"""The taxi fleet of a new company: invented drivers, made-up taxi numbers. No trips:
trips are keyed by the store's sale ids, which the seed cannot know."""

from __future__ import annotations

import aiosqlite

TAXIS: tuple[tuple[str, str], ...] = (
    ("TX-101", "Quentin Example"),
    ("TX-102", "Rosa Samplewell"),
    ("TX-103", "Otto Testa"),
    ("TX-104", "Mina Mockford"),
    ("TX-105", "Felix Fakeley"),
)


async def seed(conn: aiosqlite.Connection) -> None:
    await conn.executemany("INSERT INTO taxis (taxi_number, driver_name) VALUES (?, ?)", TAXIS)
