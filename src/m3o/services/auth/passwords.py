"""Secrets: Argon2id hashes, computed off the event loop."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from m3o.runtime.blocking import run_blocking

__all__ = ["Passwords", "random_secret"]


def random_secret() -> str:
    """A secret for an account created without one (shown once, then only hashed)."""
    return secrets.token_urlsafe(32)


class Passwords:
    """Hashes and checks secrets. ``hasher`` defaults to argon2-cffi's Argon2id profile
    (RFC 9106, low memory); tests pass a cheaper one."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    async def hash(self, secret: str) -> str:
        return await run_blocking(self._hasher.hash, secret)

    async def verify(self, hashed: str | None, secret: str) -> bool:
        """Whether ``secret`` matches ``hashed``. With no hash (unknown account) a dummy
        hash is checked instead, so the answer takes as long either way."""
        if hashed is None:
            if self._dummy is None:
                self._dummy = await self.hash(random_secret())
            await self._matches(self._dummy, secret)
            return False
        return await self._matches(hashed, secret)

    async def _matches(self, hashed: str, secret: str) -> bool:
        try:
            return await run_blocking(self._hasher.verify, hashed, secret)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """True when ``hashed`` was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(hashed)
