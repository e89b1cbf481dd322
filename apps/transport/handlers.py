"""The taxi company's handlers: the attested booking and the admin trip list."""

from __future__ import annotations

from typing import Any

import sqlite3

from aiohttp import web

from attestables.shared import eai

from ..base import AdminRoute, AttestedEndpoint, HandlerContext, ServiceDefinition
from ..base.admin import page
from ..base.runtime import ServiceRuntime
from ..base.timeutil import iso
from .schema import MIGRATIONS, TripAnswer, TripBooking
from .seed import seed

_TRIP = """SELECT trips.id AS trip_id, taxis.taxi_number, taxis.driver_name, trips.eta_minutes
           FROM trips JOIN taxis ON taxis.id = trips.taxi_id"""


def _trip(conn: sqlite3.Connection, sale_id: int) -> sqlite3.Row | None:
    return conn.execute(f"{_TRIP} WHERE trips.sale_id = ?", (sale_id,)).fetchone()


def eta_for(trip_id: int) -> int:
    """A plausible, deterministic pickup time: 4 to 14 minutes."""
    return 4 + (trip_id * 7) % 11


def book_trip(ctx: HandlerContext, booking: TripBooking) -> TripAnswer:
    existing = _trip(ctx.conn, booking.sale_id)
    if existing is not None:
        return TripAnswer(**dict(existing), existing=True)
    # Round robin over the fleet, by the number of trips booked so far.
    taxi = ctx.conn.execute(
        "SELECT id FROM taxis ORDER BY id LIMIT 1 OFFSET (SELECT COUNT(*) FROM trips) % (SELECT COUNT(*) FROM taxis)"
    ).fetchone()
    if taxi is None:
        raise RuntimeError("the fleet is empty")
    cursor = ctx.conn.execute(
        """INSERT INTO trips (sale_id, customer, pickup, destination, phone, fare_cents, taxi_id, eta_minutes,
                              booked_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)""",
        (booking.sale_id, booking.customer, booking.pickup, booking.destination, booking.phone,
         booking.fare_cents, taxi[0], ctx.serial, iso(ctx.now)),
    )
    trip_id = cursor.lastrowid
    assert trip_id is not None
    ctx.conn.execute("UPDATE trips SET eta_minutes = ? WHERE id = ?", (eta_for(trip_id), trip_id))
    row = _trip(ctx.conn, booking.sale_id)
    assert row is not None
    return TripAnswer(**dict(row), existing=False)


async def list_trips(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    after, limit = page(request)
    rows = await runtime.db.fetchall(
        """SELECT trips.id, trips.sale_id, trips.customer, trips.pickup, trips.destination, trips.phone,
                  trips.fare_cents, taxis.taxi_number, taxis.driver_name, trips.eta_minutes, trips.booked_by,
                  trips.created_at
           FROM trips JOIN taxis ON taxis.id = trips.taxi_id WHERE trips.id > ? ORDER BY trips.id LIMIT ?""",
        (after, limit),
    )
    return {"trips": [dict(row) for row in rows]}


async def list_taxis(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    rows = await runtime.db.fetchall("SELECT id, taxi_number, driver_name FROM taxis ORDER BY id")
    return {"taxis": [dict(row) for row in rows]}


SERVICE = ServiceDefinition(
    kind="transport",
    title="taxi company",
    migrations=MIGRATIONS,
    seed=seed,
    endpoints=(
        AttestedEndpoint(path=eai.ENDPOINTS["transport"]["write"], operation="write", query=TripBooking,
                         handler=book_trip, document="trip booking"),
    ),
    admin_routes=(
        AdminRoute("GET", "/admin/trips", list_trips),
        AdminRoute("GET", "/admin/taxis", list_taxis),
    ),
)
