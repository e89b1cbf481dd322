"""The store: a sales ledger the integration process polls for new sales."""

from .handlers import SERVICE

__all__ = ["SERVICE"]
