"""The taxi company: books a trip for a sale, at most once per sale."""

from .handlers import SERVICE

__all__ = ["SERVICE"]
