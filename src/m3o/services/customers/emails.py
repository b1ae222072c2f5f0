"""Email addresses as the customers service stores and compares them."""

from __future__ import annotations

import re

__all__ = ["MAX_EMAIL_LENGTH", "is_valid_email", "normalise_email"]

MAX_EMAIL_LENGTH = 254
"""The longest address SMTP can carry (RFC 5321 path limit)."""

# One "@", no whitespace, and a dotted domain whose labels are not empty.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased: the form every lookup and every stored row uses."""
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    """Whether a normalised email looks deliverable (syntax only, no DNS)."""
    return len(email) <= MAX_EMAIL_LENGTH and _EMAIL.fullmatch(email) is not None
