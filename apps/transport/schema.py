"""The taxi company's tables and documents (``attestables.shared.eai``: transport WRITE /api/trips)."""

from __future__ import annotations

from ..base.documents import Answer, Cents, Id, Line, Phone, Strict

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1 (and the seed data: the fleet)
    """
    CREATE TABLE taxis (
        id          INTEGER PRIMARY KEY,
        taxi_number TEXT NOT NULL UNIQUE,
        driver_name TEXT NOT NULL
    );
    CREATE TABLE trips (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        sale_id     INTEGER NOT NULL UNIQUE,
        customer    TEXT NOT NULL,
        pickup      TEXT NOT NULL,
        destination TEXT NOT NULL,
        phone       TEXT NOT NULL,
        fare_cents  INTEGER NOT NULL CHECK (fare_cents >= 0),
        taxi_id     INTEGER NOT NULL REFERENCES taxis(id),
        eta_minutes INTEGER NOT NULL,
        booked_by   TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    """,
)


class TripBooking(Strict):
    """Sealed data of ``/api/trips``. ``sale_id`` makes the booking idempotent."""

    sale_id: Id
    customer: Line
    pickup: Line
    destination: Line
    phone: Phone
    fare_cents: Cents


class TripAnswer(Answer):
    """``existing``: true when the sale was already booked (the first booking is returned)."""

    trip_id: int
    taxi_number: str
    driver_name: str
    eta_minutes: int
    existing: bool
