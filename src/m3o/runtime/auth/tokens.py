"""Authenticating callers in every process: access tokens and a service's own token.

- :class:`JwtAuthenticator` turns a bearer JWT issued by the auth service into an
  :class:`~m3o.runtime.auth.Account`: EdDSA signature against auth's JSON Web Key Set,
  expiry, issuer, then the blocklist and revoked sessions in the counter store.
- :class:`ServiceTokenSource` gives a service its own access token, renewed before expiry.

What an authenticated caller may do is :mod:`m3o.runtime.auth.access`'s business. The
runtime knows nothing of the auth service's code: each class takes the callable that
fetches what it needs (the JWKS, a token), and the composition supplies it.

The counter store keys the auth service writes and this module reads:
``auth:blocked:<account id>`` (an account's tokens are refused; no expiry) and
``auth:revoked:<session id>`` (a session's access tokens are refused, until they would have
expired anyway). Service accounts skip both checks, to keep service-to-service calls cheap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from m3o.runtime.auth import ISSUER, Account
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError, Unauthorized, Unavailable
from m3o.runtime.logging import get_logger

__all__ = [
    "ALGORITHM",
    "SESSION_METADATA",
    "JwtAuthenticator",
    "ServiceTokenSource",
    "blocked_key",
    "revoked_session_key",
]

_log = get_logger(__name__)

ALGORITHM: Final = "EdDSA"
"""The only signature algorithm accepted (``none`` and the HMAC family never are)."""
SESSION_METADATA: Final = "session"
"""Account metadata key holding the session (refresh token family) a token belongs to."""


def blocked_key(account_id: str) -> str:
    """Counter store key that, when non-zero, refuses every token of ``account_id``."""
    return f"auth:blocked:{account_id}"


def revoked_session_key(session_id: str) -> str:
    """Counter store key that, when non-zero, refuses the access tokens of a session."""
    return f"auth:revoked:{session_id}"


def _refused() -> Unauthorized:
    # One answer whatever went wrong: the caller learns nothing about why.
    return Unauthorized("auth", "Unauthorized")


class JwtAuthenticator:
    """Implements :class:`~m3o.runtime.rpc.Authenticator` for the auth service's JWTs.

    ``fetch_jwks`` returns the key set as a JSON document. It is fetched on first use,
    again after ``max_age``, and again when a token names a key not in the set (at most
    once per ``refetch_interval``, so made-up key ids cannot flood the auth service).
    A bad token is Unauthorized ``Unauthorized``; a key set that cannot be fetched at all is
    Unavailable (the token may be fine, the caller should retry).
    """

    def __init__(
        self,
        fetch_jwks: Callable[[], Awaitable[str]],
        counters: CounterStore,
        *,
        issuer: str = ISSUER,
        leeway: timedelta = timedelta(seconds=30),
        refetch_interval: timedelta = timedelta(seconds=10),
        max_age: timedelta = timedelta(minutes=10),
        clock: Clock = utc_now,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._counters = counters
        self._issuer = issuer
        self._leeway = leeway
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched: datetime | None = None
        self._attempted: datetime | None = None
        self._attempts = 0
        self._lock = asyncio.Lock()

    async def authenticate(self, token: str) -> Account:
        claims = await self._claims(token)
        account = _account(claims)
        if account.type != "service":
            keys = [blocked_key(account.id)]
            session = account.metadata.get(SESSION_METADATA, "")
            if session:
                keys.append(revoked_session_key(session))
            if any(await self._counters.get_many(keys)):
                raise _refused()
        return account

    async def _claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused() from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise _refused()
        key = await self._key(kid)
        if key is None:
            raise _refused()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={
                    # Times are checked below against the injectable clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "iss", "sub"],
                },
            )
        except jwt.PyJWTError:
            raise _refused() from None
        self._check_times(claims)
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock().timestamp()
        leeway = self._leeway.total_seconds()
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        if not all(_is_number(v) for v in (exp, iat, nbf)):
            raise _refused()
        if now > exp + leeway or iat > now + leeway or nbf > now + leeway:
            raise _refused()

    async def _key(self, kid: str) -> Ed25519PublicKey | None:
        now = self._clock()
        stale = self._fetched is None or now - self._fetched >= self._max_age
        if stale and self._may_fetch(now):
            await self._refresh(self._attempts)
        elif self._fetched is None:
            # A first fetch may be in flight (started by a concurrent call): wait for it
            # rather than answering "unavailable" while the keys are on their way.
            async with self._lock:
                pass
        if self._fetched is None:
            raise Unavailable("auth", "Authentication is unavailable")
        key = self._keys.get(kid)
        if key is None and self._may_fetch(now):
            await self._refresh(self._attempts)
            key = self._keys.get(kid)
        return key

    def _may_fetch(self, now: datetime) -> bool:
        """At most one fetch per ``refetch_interval``, also while the auth service is down.

        While no key is known at all (the auth service had none yet when first asked, as at
        a platform's very first start) every token would be refused, so fetch again.
        """
        if self._fetched is not None and not self._keys:
            return True
        return self._attempted is None or now - self._attempted >= self._refetch_interval

    async def _refresh(self, seen: int) -> None:
        """Fetch the key set, unless another call tried while this one waited for the lock."""
        async with self._lock:
            if self._attempts != seen:
                return
            self._attempts += 1
            self._attempted = self._clock()
            try:
                keys = _parse_jwks(await self._fetch_jwks())
            except (M3OError, TimeoutError, ValueError) as exc:
                _log.warning("tokens.jwks_fetch_failed", error=type(exc).__name__)
                return
            self._keys = keys
            self._fetched = self._attempted


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_jwks(raw: str) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS by key id; anything else in it is ignored."""
    data = orjson.loads(raw)
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JSON Web Key Set")
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("crv") != "Ed25519":
            continue
        kid = entry.get("kid")
        try:
            key = jwt.PyJWK(entry, algorithm=ALGORITHM).key
        except jwt.PyJWTError:
            continue
        if isinstance(kid, str) and kid and isinstance(key, Ed25519PublicKey):
            keys[kid] = key
    return keys


def _account(claims: Mapping[str, Any]) -> Account:
    """The account the (verified) claims describe; any malformed claim refuses the token."""
    sub, kind, name = claims.get("sub"), claims.get("type"), claims.get("name", "")
    scopes, metadata = claims.get("scopes", []), claims.get("metadata", {})
    session = claims.get("sid", "")
    if not (isinstance(sub, str) and sub and isinstance(kind, str) and kind):
        raise _refused()
    if not (isinstance(name, str) and isinstance(session, str)):
        raise _refused()
    if not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise _refused()
    if not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise _refused()
    if session:
        metadata = {**metadata, SESSION_METADATA: session}
    return Account(
        id=sub,
        type=kind,
        issuer=str(claims["iss"]),
        name=name,
        scopes=tuple(scopes),
        metadata=metadata,
    )


class ServiceTokenSource:
    """Implements :class:`~m3o.runtime.rpc.TokenSource` with a service's own token.

    ``fetch_token`` returns a fresh access token and its expiry (timezone-aware). The token
    is reused until ``renew_at`` of its lifetime has passed (80% by default), then fetched
    again, one fetch at a time however many calls wait. If renewing fails while the token
    is still valid, it is used a little longer and renewal is retried ``retry_after`` later.
    """

    def __init__(
        self,
        fetch_token: Callable[[], Awaitable[tuple[str, datetime]]],
        *,
        renew_at: float = 0.8,
        retry_after: timedelta = timedelta(seconds=5),
        clock: Clock = utc_now,
    ) -> None:
        if not 0 < renew_at <= 1:
            raise ValueError("renew_at must be in (0, 1]")
        self._fetch_token = fetch_token
        self._renew_at = renew_at
        self._retry_after = retry_after
        self._clock = clock
        self._token = ""
        self._expiry: datetime | None = None
        self._renew_after: datetime | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._usable():
            return self._token
        async with self._lock:
            if not self._usable():
                await self._renew()
            return self._token

    def _usable(self) -> bool:
        return self._renew_after is not None and self._clock() < self._renew_after

    async def _renew(self) -> None:
        started = self._clock()
        try:
            token, expiry = await self._fetch_token()
        except (M3OError, TimeoutError) as exc:
            if self._expiry is None or started >= self._expiry:
                raise
            _log.warning("tokens.service_token_renewal_failed", error=type(exc).__name__)
            self._renew_after = min(self._expiry, started + self._retry_after)
            return
        self._token, self._expiry = token, expiry
        self._renew_after = started + (expiry - started) * self._renew_at
