"""What the three services share: server, TLS, verification, sealed envelopes, replay
cache, verification log, admin API, CRL refresh and configuration.

A service kind (``apps/store``, ``apps/transport``, ``apps/messaging``) supplies only a
:class:`ServiceDefinition`: its schema, seed data, attested handlers and admin routes.
``docs/services.md`` describes the API and the rules.
"""

from .config import ConfigError, ServiceConfig
from .documents import Answer, Strict
from .errors import BadRequest, NotFound, ServiceError
from .server import run_service
from .service import AdminRoute, AttestedEndpoint, HandlerContext, ServiceDefinition

__all__ = [
    "AdminRoute",
    "Answer",
    "AttestedEndpoint",
    "BadRequest",
    "ConfigError",
    "HandlerContext",
    "NotFound",
    "ServiceConfig",
    "ServiceDefinition",
    "ServiceError",
    "Strict",
    "run_service",
]
