"""Synthetic sales for a new store: invented people, fictional phone numbers
(+1-555-0100 to +1-555-0199, the range reserved for fiction), placeholder addresses.
Some totals are above the integration's $150.00 threshold, some below."""

from __future__ import annotations

import aiosqlite

from ..base.timeutil import iso_now

SALES: tuple[tuple[str, str, str, str, int, str], ...] = (
    # seller, customer, phone, address, total_cents, date
    ("Example Outfitters", "Alice Example", "+1-555-0101", "12 Example Street, Anytown", 18950, "2025-03-01"),
    ("Sample Electronics", "Bob Placeholder", "+1-555-0102", "3 Sample Road, Testville", 4999, "2025-03-01"),
    ("Placeholder Books", "Carol Sample", "+1-555-0103", "45 Fictional Avenue, Anytown", 2450, "2025-03-02"),
    ("Example Outfitters", "Dave Dummy", "+1-555-0104", "7 Mockingbird Lane, Testville", 32000, "2025-03-02"),
    ("Sample Electronics", "Erin Fictional", "+1-555-0105", "88 Imaginary Court, Notaplace", 15001, "2025-03-03"),
    ("Demo Furniture Co.", "Frank Testcase", "+1-555-0106", "1 Nowhere Plaza, Anytown", 15000, "2025-03-03"),
    ("Demo Furniture Co.", "Grace Mockwell", "+1-555-0107", "19 Specimen Street, Testville", 64999, "2025-03-04"),
    ("Placeholder Books", "Heidi Sampleton", "+1-555-0108", "5 Hypothetical Way, Notaplace", 1299, "2025-03-04"),
)


async def seed(conn: aiosqlite.Connection) -> None:
    now = iso_now()
    await conn.executemany(
        "INSERT INTO sales (seller, customer, phone, address, total_cents, date, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*sale, now) for sale in SALES],
    )
