"""The store's tables and documents (``attestables.shared.eai``: store READ /api/sales)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ..base.documents import Answer, Cents, Date, Line, Phone, Strict

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1 (and the seed data)
    """
    CREATE TABLE sales (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        seller      TEXT NOT NULL,
        customer    TEXT NOT NULL,
        phone       TEXT NOT NULL,
        address     TEXT NOT NULL,
        total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
        date        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    """,
)


class SalesQuery(Strict):
    """Sealed query of ``/api/sales``: the sales with an id above ``after_id``, oldest first."""

    after_id: Annotated[int, Meta(ge=0, le=2**53 - 1)]
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class Sale(Answer):
    id: int
    seller: str
    customer: str
    phone: str
    address: str
    total_cents: int
    date: str


class SalesAnswer(Answer):
    """``last_id``: the highest id returned, or ``after_id`` when there is none (poll on from it)."""

    sales: list[Sale]
    last_id: int


class NewSale(Strict):
    """``POST /admin/sales``; ``date`` defaults to today (UTC)."""

    seller: Line
    customer: Line
    phone: Phone
    address: Line
    total_cents: Cents
    date: Date | None = None
