"""What a service kind declares: its schema, seed data, attested endpoints and admin routes.

The base (server, verification, replay, sealing, logging, admin API) is the same for the
three services; a kind only supplies a :class:`ServiceDefinition`. Attested handlers see
a decoded, validated plaintext document and return an answer document. They are plain
functions: they run on the database's thread, inside the request's transaction, after
the certificate passed the policy and the nonce was claimed (``database.ServiceDatabase.run``),
so they never await and never touch the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import sqlite3
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generic, TypeVar

from aiohttp import web

from attestables.shared.verifier import VerificationResult

from .config import ServiceConfig
from .database import Seed
from .documents import Answer, Strict

if TYPE_CHECKING:
    from .runtime import ServiceRuntime

Q = TypeVar("Q", bound=Strict)


@dataclass(frozen=True)
class HandlerContext:
    """What an attested handler works with."""

    conn: sqlite3.Connection  # inside the request's transaction, on the database's thread
    now: float
    config: ServiceConfig
    verification: VerificationResult

    @property
    def serial(self) -> str:
        """The run certificate's serial (lowercase hex), for the service's own records."""
        return self.verification.serial or ""


@dataclass(frozen=True)
class AttestedEndpoint(Generic[Q]):
    path: str
    operation: str  # "read" or "write" (attestables.shared.eai.ENDPOINTS)
    query: type[Q]
    handler: Callable[[HandlerContext, Q], Answer]
    document: str  # the plaintext document's name, for error messages ("sales query")


AdminHandler = Callable[["ServiceRuntime", web.Request], Awaitable[Any]]


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str
    handler: AdminHandler


@dataclass(frozen=True)
class ServiceDefinition:
    kind: str
    title: str
    migrations: tuple[str, ...]
    seed: Seed
    endpoints: tuple[AttestedEndpoint[Any], ...]
    admin_routes: tuple[AdminRoute, ...] = field(default=())
