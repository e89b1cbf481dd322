"""The store's handlers: the attested sales read and the admin sales API."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from attestables.shared import eai

from ..base import AdminRoute, AttestedEndpoint, HandlerContext, ServiceDefinition
from ..base.admin import body_of, page
from ..base.runtime import ServiceRuntime
from ..base.timeutil import iso_now
from .schema import MIGRATIONS, NewSale, Sale, SalesAnswer, SalesQuery
from .seed import seed

_COLUMNS = "id, seller, customer, phone, address, total_cents, date"


def read_sales(ctx: HandlerContext, query: SalesQuery) -> SalesAnswer:
    rows = ctx.conn.execute(
        f"SELECT {_COLUMNS} FROM sales WHERE id > ? ORDER BY id LIMIT ?", (query.after_id, query.limit)
    ).fetchall()
    sales = [Sale(**dict(row)) for row in rows]
    return SalesAnswer(sales=sales, last_id=sales[-1].id if sales else query.after_id)


async def add_sale(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    sale: NewSale = await body_of(request, NewSale)
    date = sale.date or time.strftime("%Y-%m-%d", time.gmtime())
    async with runtime.db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO sales (seller, customer, phone, address, total_cents, date, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sale.seller, sale.customer, sale.phone, sale.address, sale.total_cents, date, iso_now()),
        )
        sale_id = cursor.lastrowid
    return {"id": sale_id}


async def list_sales(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    after, limit = page(request)
    rows = await runtime.db.fetchall(
        f"SELECT {_COLUMNS}, created_at FROM sales WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    )
    return {"sales": [dict(row) for row in rows]}


SERVICE = ServiceDefinition(
    kind="store",
    title="store",
    migrations=MIGRATIONS,
    seed=seed,
    endpoints=(
        AttestedEndpoint(path=eai.ENDPOINTS["store"]["read"], operation="read", query=SalesQuery,
                         handler=read_sales, document="sales query"),
    ),
    admin_routes=(
        AdminRoute("POST", "/admin/sales", add_sale),
        AdminRoute("GET", "/admin/sales", list_sales),
    ),
)
