"""The messaging service's handlers: send a message, read the customer's reply, and the
admin message API.

The customer is simulated: a message is accepted ``--reply-delay`` seconds after it was
sent, computed from its creation time when asked (no background task). An operator may
answer for the customer first (``POST /admin/messages/{id}/reply``), e.g. to decline.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from aiohttp import web

from attestables.shared import eai

from ..base import AdminRoute, AttestedEndpoint, BadRequest, HandlerContext, NotFound, ServiceDefinition
from ..base.admin import body_of, page
from ..base.runtime import ServiceRuntime
from ..base.timeutil import iso
from .schema import MIGRATIONS, MessageSent, Reply, ReplyAnswer, ReplyQuery, SendMessage, SetReply
from .seed import seed


def reply_of(row: sqlite3.Row, *, now: float, delay: float) -> tuple[Reply | None, float | None]:
    """The reply and when it came: the operator's, else the simulated customer's acceptance."""
    if row["reply"] is not None:
        return row["reply"], row["replied_at"]
    due = row["created_at"] + delay
    if now >= due:
        return "accepted", due
    return None, None


def send_message(ctx: HandlerContext, message: SendMessage) -> MessageSent:
    row = ctx.conn.execute("SELECT id FROM messages WHERE key = ?", (message.key,)).fetchone()
    if row is not None:
        return MessageSent(message_id=row[0], existing=True)
    cursor = ctx.conn.execute(
        "INSERT INTO messages (key, phone, text, created_at, sent_by) VALUES (?, ?, ?, ?, ?)",
        (message.key, message.phone, message.text, ctx.now, ctx.serial),
    )
    assert cursor.lastrowid is not None
    return MessageSent(message_id=cursor.lastrowid, existing=False)


def read_reply(ctx: HandlerContext, query: ReplyQuery) -> ReplyAnswer:
    row = ctx.conn.execute(
        "SELECT id, created_at, reply, replied_at FROM messages WHERE id = ?", (query.message_id,)
    ).fetchone()
    if row is None:
        raise BadRequest("the sealed reply query names no message of this service")
    reply, at = reply_of(row, now=ctx.now, delay=ctx.config.reply_delay_s)
    return ReplyAnswer(message_id=row["id"], reply=reply, replied_at=iso(at) if at is not None else None)


async def list_messages(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    after, limit = page(request)
    rows = await runtime.db.fetchall("SELECT * FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
    now = time.time()
    messages = []
    for row in rows:
        reply, at = reply_of(row, now=now, delay=runtime.config.reply_delay_s)
        messages.append({
            "id": row["id"], "key": row["key"], "phone": row["phone"], "text": row["text"],
            "created_at": iso(row["created_at"]), "reply": reply, "replied_at": iso(at) if at is not None else None,
            "sent_by": row["sent_by"],
        })
    return {"messages": messages}


async def set_reply(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    try:
        message_id = int(request.match_info["message_id"])
    except ValueError:
        raise BadRequest("the message id is an integer") from None
    body: SetReply = await body_of(request, SetReply)
    now = time.time()
    async with runtime.db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE messages SET reply = ?, replied_at = ? WHERE id = ?", (body.reply, now, message_id)
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no message {message_id}")
    return {"message_id": message_id, "reply": body.reply, "replied_at": iso(now)}


SERVICE = ServiceDefinition(
    kind="messaging",
    title="messaging service",
    migrations=MIGRATIONS,
    seed=seed,
    endpoints=(
        AttestedEndpoint(path=eai.ENDPOINTS["messaging"]["write"], operation="write", query=SendMessage,
                         handler=send_message, document="message"),
        AttestedEndpoint(path=eai.ENDPOINTS["messaging"]["read"], operation="read", query=ReplyQuery,
                         handler=read_reply, document="reply query"),
    ),
    admin_routes=(
        AdminRoute("GET", "/admin/messages", list_messages),
        AdminRoute("POST", r"/admin/messages/{message_id:\d+}/reply", set_reply),
    ),
)
