"""The messaging service's tables and documents (``attestables.shared.eai``: messaging
WRITE /send-message and READ /api/replies)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from ..base.documents import Answer, Id, Phone, Strict

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1 (and the seed data)
    """
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        key         TEXT NOT NULL UNIQUE,
        phone       TEXT NOT NULL,
        text        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        reply       TEXT CHECK (reply IN ('accepted', 'declined')),
        replied_at  REAL,
        sent_by     TEXT NOT NULL
    );
    """,
)

Reply = Literal["accepted", "declined"]
# Tabs and newlines allowed, no other control characters.
MessageText = Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
IdempotencyKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class SendMessage(Strict):
    """Sealed data of ``/send-message``. ``key`` makes sending idempotent (e.g. ``sale-42``)."""

    phone: Phone
    text: MessageText
    key: IdempotencyKey


class MessageSent(Answer):
    """``existing``: true when a message with this key was already sent (its id is returned)."""

    message_id: int
    existing: bool


class ReplyQuery(Strict):
    """Sealed query of ``/api/replies``."""

    message_id: Id


class ReplyAnswer(Answer):
    """``reply`` is null until the customer answered; ``replied_at`` is RFC 3339 UTC or null."""

    message_id: int
    reply: Reply | None
    replied_at: str | None


class SetReply(Strict):
    """``POST /admin/messages/{id}/reply``: answer for the customer (e.g. to decline)."""

    reply: Reply
