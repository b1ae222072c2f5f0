"""Email addresses: the form signup stores and compares them in, and who may sign up.

The syntax rules are the customers service's (a service may not import another's code, so
they are repeated here): trimmed and lower-cased, one ``@``, a dotted domain, at most 254
characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_EMAIL_LENGTH", "SignupPolicy", "is_valid_email", "normalise_email"]

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


class SignupPolicy:
    """Which addresses may sign up and which get onboarding (promo credit, welcome email).

    ``block_list`` and ``allow_list`` are regular expressions matched against the whole
    normalised address: an address may sign up when it matches no blocked pattern and, if
    the allow list is not empty, at least one allowed pattern. An empty entry matches
    nothing (so an allow list of only empty entries lets nobody in).
    ``engagement_block_list`` holds addresses (compared case-insensitively) that get no
    onboarding.
    """

    def __init__(
        self,
        *,
        block_list: Iterable[str] = (),
        allow_list: Iterable[str] = (),
        engagement_block_list: Iterable[str] = (),
    ) -> None:
        self._blocked = [re.compile(p) for p in block_list if p]
        allowed = list(allow_list)
        self._allow_all = not allowed
        self._allowed = [re.compile(p) for p in allowed if p]
        self._no_engagement = frozenset(
            normalise_email(e) for e in engagement_block_list if e.strip()
        )

    def may_sign_up(self, email: str) -> bool:
        """Whether the normalised ``email`` passes both lists."""
        if any(p.fullmatch(email) for p in self._blocked):
            return False
        return self._allow_all or any(p.fullmatch(email) for p in self._allowed)

    def gets_onboarding(self, email: str) -> bool:
        """Whether ``email`` gets the promo credit and the welcome email."""
        return normalise_email(email) not in self._no_engagement
