"""Checking a secret, with repeated failures slowed down per account and per address.

Each try counts, before the secret is checked, in two counter store windows:
``auth:tries:account:<id or name>`` and ``auth:tries:address:<client address>``. A success
takes its try back (and clears the account's count), so only failures add up, and
concurrent guesses cannot slip past the limit between a check and a count. Past a limit,
tries are refused with TooManyRequests, without checking the secret, until the window
that began with the first failure ends.

A wrong secret and an unknown account get the same Unauthorized answer after the same
amount of work (a dummy hash is checked for an unknown account).
"""

from __future__ import annotations

from datetime import timedelta

from m3o.runtime.auth import CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import TooManyRequests, Unauthorized
from m3o.runtime.logging import get_logger
from m3o.services.auth.passwords import Passwords
from m3o.services.auth.records import AccountRecord

__all__ = [
    "CLIENT_ADDRESS_METADATA",
    "INVALID_CREDENTIALS",
    "TOO_MANY_FAILURES",
    "CredentialCheck",
    "client_address",
]

_log = get_logger(__name__)

INVALID_CREDENTIALS = "Invalid credentials"
TOO_MANY_FAILURES = "Too many failed attempts, try again later"
CLIENT_ADDRESS_METADATA = "x-client-address"
"""Call metadata with the end user's address (the request's ``client_address`` wins)."""


def client_address(ctx: CallContext, given: str = "") -> str:
    return given or ctx.metadata.get(CLIENT_ADDRESS_METADATA, "")


class CredentialCheck:
    def __init__(
        self,
        passwords: Passwords,
        counters: CounterStore,
        *,
        account_limit: int,
        address_limit: int,
        window: timedelta,
    ) -> None:
        self._passwords = passwords
        self._counters = counters
        self._account_limit = account_limit
        self._address_limit = address_limit
        self._window = window

    async def check(
        self,
        ctx: CallContext,
        record: AccountRecord | None,
        subject: str,
        secret: str,
        address: str,
    ) -> None:
        """Pass if ``secret`` is ``record``'s, else raise Unauthorized (or TooManyRequests).

        ``subject`` names the account for counting: its id when known, else what the
        caller gave, so unknown names are slowed down exactly like known ones.
        """
        account_key = f"auth:tries:account:{subject}"
        address_key = f"auth:tries:address:{address}" if address and self._address_limit > 0 else ""
        over = await self._count(account_key, self._account_limit)
        if address_key:
            over = await self._count(address_key, self._address_limit) or over
        if over:
            _log.info("auth.credentials_throttled", endpoint=ctx.endpoint)
            raise TooManyRequests(ctx.endpoint, TOO_MANY_FAILURES)
        hashed = record.secret_hash if record is not None else None
        if not await self._passwords.verify(hashed, secret):
            _log.info(
                "auth.credentials_refused",
                endpoint=ctx.endpoint,
                account_id=record.id if record is not None else "",
            )
            raise Unauthorized(ctx.endpoint, INVALID_CREDENTIALS)
        await self._counters.delete(account_key)
        if address_key:
            await self._counters.incr(address_key, -1, ttl=self._window)

    async def _count(self, key: str, limit: int) -> bool:
        """Count one try; True when it is past ``limit`` (a limit <= 0 disables it)."""
        if limit <= 0:
            return False
        return await self._counters.incr(key, ttl=self._window) > limit
