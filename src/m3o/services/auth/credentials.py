"""Checking a secret, with repeated failures slowed down, never locked out.

Failures are counted in counter store windows (``failure_window``, 15 minutes from the
first failure) under three keys:

- ``auth:tries:pair:<account>|<client>``: one account from one client address. The first
  ``account_limit`` - 1 tries go straight through; from the ``account_limit``-th on, each
  try takes that pair's *turn* (``auth:turn:pair:...``) and the next one waits for it to
  end: 1 s, then 2 s, 4 s, ... at most ``max_delay``. A try during the wait is refused with
  TooManyRequests saying how many seconds are left, without checking the secret.
- ``auth:tries:address:<client>``: every account from one client address (credential
  stuffing), the same way past ``address_limit``.
- ``auth:tries:account:<account>``: one account from every client. Past
  ``account_ceiling`` (much higher) this never refuses anyone by itself: it only makes every
  client's backoff for the account start at its first failure instead of after
  ``account_limit``, which slows down guessing spread over many addresses.

So one client's failures never hold up another: the owner, from a client with no recent
failures for the account, gets through with the right secret while a guesser is waiting.

Each try counts before the secret is checked and takes a turn atomically
(``set_if_absent``), so concurrent guesses cannot slip past between a check and a count; a
success takes its try back (and clears its pair), so only failures add up.

A wrong secret and an unknown account get the same Unauthorized answer after the same
amount of work (a dummy hash is checked for an unknown account).

The client address is the gateway's ``x-client-address`` call metadata. A request field
naming it (``TokenRequest.client_address``) is trusted only from a service account (the
customers service passes on its caller's), so nobody picks a fresh address per guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from m3o.runtime.auth import CallContext, is_service
from m3o.runtime.clock import Clock, utc_now
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
    "too_many_failures",
]

_log = get_logger(__name__)

INVALID_CREDENTIALS = "Invalid credentials"
TOO_MANY_FAILURES = "Too many failed attempts"
"""How every refusal's detail starts (it goes on with the seconds to wait)."""
CLIENT_ADDRESS_METADATA = "x-client-address"
"""Call metadata with the end user's address, set by the gateway."""

_MAX_DOUBLINGS = 30
"""Beyond this the delay is ``max_delay`` anyway; it keeps the doubling small."""


def client_address(ctx: CallContext, given: str = "") -> str:
    """The end user's address: ``given`` (a request field) only from a service account,
    else the call metadata the gateway sets."""
    if given and ctx.account is not None and is_service(ctx.account):
        return given
    return ctx.metadata.get(CLIENT_ADDRESS_METADATA, "")


def too_many_failures(seconds: int) -> str:
    """The detail of a refusal that ends in ``seconds``."""
    unit = "second" if seconds == 1 else "seconds"
    return f"{TOO_MANY_FAILURES}, try again in {seconds} {unit}"


@dataclass(frozen=True, slots=True)
class _Throttle:
    """One counted window and its turn: ``free`` tries back to back, then one per turn."""

    tries: str
    turn: str
    free: int
    cleared_by_success: bool
    """A right secret forgets this throttle's failures (else it only takes its try back)."""


@dataclass(slots=True)
class _Taken:
    """What one try took from a throttle, so it can be given back."""

    throttle: _Throttle
    turn: bool = False


class CredentialCheck:
    def __init__(
        self,
        passwords: Passwords,
        counters: CounterStore,
        *,
        account_limit: int,
        address_limit: int,
        window: timedelta,
        account_ceiling: int = 100,
        first_delay: timedelta = timedelta(seconds=1),
        max_delay: timedelta | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """``account_limit``: tries per account and client before backoff;
        ``address_limit``: tries per client over all accounts before backoff;
        ``account_ceiling``: failures per account over all clients past which every
        client's backoff starts at its first failure; ``first_delay`` doubles per further
        failure up to ``max_delay`` (default: ``window``). A limit <= 0 disables it."""
        self._passwords = passwords
        self._counters = counters
        self._account_limit = account_limit
        self._address_limit = address_limit
        self._window = window
        self._account_ceiling = account_ceiling
        self._first_delay = first_delay
        self._max_delay = max_delay if max_delay is not None else window
        self._clock = clock

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
        caller gave, so unknown names are slowed down exactly like known ones. ``address``
        is the client's (see :func:`client_address`); empty counts as one client.
        """
        account_key = f"auth:tries:account:{subject}"
        busy = await self._counters.incr(account_key, ttl=self._window)
        past_ceiling = 0 < self._account_ceiling < busy
        taken: list[_Taken] = []
        wait = await self._take_all(self._throttles(subject, address, past_ceiling), taken)
        if wait is not None:
            await self._give_back(taken)
            await self._counters.incr(account_key, -1, ttl=self._window)
            _log.info("auth.credentials_throttled", endpoint=ctx.endpoint, retry_after=wait)
            raise TooManyRequests(ctx.endpoint, too_many_failures(wait))
        hashed = record.secret_hash if record is not None else None
        if not await self._passwords.verify(hashed, secret):
            _log.info(
                "auth.credentials_refused",
                endpoint=ctx.endpoint,
                account_id=record.id if record is not None else "",
                past_ceiling=past_ceiling,
            )
            raise Unauthorized(ctx.endpoint, INVALID_CREDENTIALS)
        await self._succeeded(taken)
        await self._counters.incr(account_key, -1, ttl=self._window)

    def _throttles(self, subject: str, address: str, past_ceiling: bool) -> list[_Throttle]:
        found: list[_Throttle] = []
        if self._account_limit > 0:
            # Length-prefixed, so no subject and address pair can spell another's key.
            pair = f"{len(subject)}:{subject}|{address}"
            free = 1 if past_ceiling else self._account_limit
            found.append(_Throttle(f"auth:tries:pair:{pair}", f"auth:turn:pair:{pair}", free, True))
        if address and self._address_limit > 0:
            found.append(
                _Throttle(
                    f"auth:tries:address:{address}",
                    f"auth:turn:address:{address}",
                    self._address_limit,
                    False,
                )
            )
        return found

    async def _take_all(self, throttles: list[_Throttle], taken: list[_Taken]) -> int | None:
        """Count this try in every throttle; the seconds to wait if one refuses it."""
        for throttle in throttles:
            tries = await self._counters.incr(throttle.tries, ttl=self._window)
            taking = _Taken(throttle)
            taken.append(taking)
            if tries < throttle.free:
                continue
            delay = self._delay(tries - throttle.free)
            until = self._clock() + delay
            if await self._counters.set_if_absent(throttle.turn, until.isoformat(), ttl=delay):
                taking.turn = True
                continue
            return await self._seconds_left(throttle.turn)
        return None

    def _delay(self, doublings: int) -> timedelta:
        delay = self._first_delay * (1 << min(doublings, _MAX_DOUBLINGS))
        return min(delay, self._max_delay)

    async def _seconds_left(self, turn: str) -> int:
        stored = await self._counters.get_value(turn)
        if stored is None:
            return 1  # it ended just now
        try:
            until = datetime.fromisoformat(stored)
        except ValueError:
            return 1
        return max(1, math.ceil((until - self._clock()).total_seconds()))

    async def _give_back(self, taken: list[_Taken]) -> None:
        """Undo a refused try: it was never checked, so it is no failure."""
        for taking in taken:
            await self._counters.incr(taking.throttle.tries, -1, ttl=self._window)
            if taking.turn:
                await self._counters.delete(taking.throttle.turn)

    async def _succeeded(self, taken: list[_Taken]) -> None:
        """A right secret: the pair starts afresh; the client's count loses this try."""
        for taking in taken:
            if taking.throttle.cleared_by_success:
                await self._counters.delete(taking.throttle.tries, taking.throttle.turn)
                continue
            await self._counters.incr(taking.throttle.tries, -1, ttl=self._window)
            if taking.turn:
                await self._counters.delete(taking.throttle.turn)
