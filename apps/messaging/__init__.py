"""The messaging service: sends a text to a phone and reports the customer's reply."""

from .handlers import SERVICE

__all__ = ["SERVICE"]
