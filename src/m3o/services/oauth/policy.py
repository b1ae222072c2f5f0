"""Who may sign up: the signup allow and block lists (config ``signup``).

Each list holds regular expressions matched against the whole normalised email. An email
may sign up when it matches no block pattern and, if the allow list is not empty, at least
one allow pattern: the same rule email signup applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["SignupPolicy", "normalise_email"]


def normalise_email(email: str) -> str:
    return email.strip().lower()


class SignupPolicy:
    """Decides whether an email may sign up."""

    def __init__(self, *, block_list: Iterable[str] = (), allow_list: Iterable[str] = ()) -> None:
        self._block = [re.compile(pattern) for pattern in block_list]
        self._allow = [re.compile(pattern) for pattern in allow_list]

    def allows(self, email: str) -> bool:
        """Whether the (normalised) ``email`` may sign up."""
        if any(pattern.fullmatch(email) for pattern in self._block):
            return False
        return not self._allow or any(pattern.fullmatch(email) for pattern in self._allow)
