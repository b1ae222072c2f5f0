"""Sessions: Token (credentials or refresh token), Inspect, Revoke and RevokeSessions.

A login starts a session: a refresh-token family whose id is the ``sid`` claim of every
access token issued in it. Each refresh marks the presented refresh token used and issues
a new one in the same family. Presenting a used one again means two parties hold the
family (one of them a thief): the whole family is revoked and the call is Unauthorized.
Revoking a session refuses its refresh tokens at once and, through the counter store, its
access tokens on every process.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.auth import CallContext, is_admin, is_service, verify_admin
from m3o.runtime.auth.tokens import SESSION_METADATA, JwtAuthenticator
from m3o.runtime.clock import Clock
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.credentials import INVALID_CREDENTIALS, CredentialCheck, client_address
from m3o.services.auth.passwords import Passwords
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.records import AccountRecord, find_account, is_blocked, normalise_name
from m3o.services.auth.revocation import (
    REVOCATION_MARGIN,
    CounterMirror,
    RevokedSession,
    revoke_sessions,
)
from m3o.services.auth.settings import AuthSettings
from m3o.services.auth.signing_keys import KeyRing

__all__ = ["INVALID_REFRESH_TOKEN", "Sessions", "hash_token"]

_log = get_logger(__name__)

INVALID_REFRESH_TOKEN = "Invalid refresh token"  # noqa: S105 - an error message


def hash_token(token: str) -> str:
    """How a refresh token is stored: its hex SHA-256 (it is random, so no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Rotated:
    """A refresh that succeeded: who, in which session, until when."""

    record: AccountRecord
    session_id: str
    expires: datetime


class Sessions:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        keys: KeyRing,
        passwords: Passwords,
        credentials: CredentialCheck,
        mirror: CounterMirror,
        authenticator: JwtAuthenticator,
        settings: AuthSettings,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._passwords = passwords
        self._credentials = credentials
        self._mirror = mirror
        self._authenticator = authenticator
        self._settings = settings
        self._clock = clock

    async def token(self, request: pb.TokenRequest, ctx: CallContext) -> pb.TokenResponse:
        self._check_expiry(ctx, request.token_expiry)
        if request.refresh_token:
            return await self._refresh(request, ctx)
        if not (request.id or request.name.strip()) or not request.secret:
            raise BadRequest(ctx.endpoint, "Missing credentials")
        return await self._login(request, ctx)

    async def grant(self, request: pb.GrantRequest, ctx: CallContext) -> pb.TokenResponse:
        """Tokens for an account without its secret: services only (oauth, once a provider
        vouched for the email). The secret is left as it is."""
        caller = ctx.account
        if caller is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not is_service(caller):
            raise Forbidden(ctx.endpoint, "Forbidden")
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing account id")
        self._check_expiry(ctx, request.token_expiry)
        record, blocked = await self._lookup(account_id=request.id)
        if record is None:
            raise NotFound(ctx.endpoint, "Account not found")
        if blocked:
            raise Forbidden(ctx.endpoint, "Account is blocked")
        _log.info("auth.granted", account_id=record.id, caller=caller.id)
        return await self._start(record, self._ttl(request.token_expiry))

    async def _lookup(
        self, *, account_id: str, name: str = ""
    ) -> tuple[AccountRecord | None, bool]:
        """The account (by id, else name) and whether it is blocked."""
        async with transaction(self._sessions) as session:
            record = await find_account(session, account_id=account_id, name=name)
            return record, record is not None and await is_blocked(session, record.id)

    def _check_expiry(self, ctx: CallContext, token_expiry: int) -> None:
        if token_expiry < 0:
            raise BadRequest(ctx.endpoint, "token_expiry must not be negative")
        if token_expiry > self._settings.max_token_ttl.total_seconds():
            raise BadRequest(ctx.endpoint, "token_expiry is longer than allowed")

    def _ttl(self, token_expiry: int) -> timedelta:
        return _seconds(token_expiry) or self._settings.access_token_ttl

    async def _login(self, request: pb.TokenRequest, ctx: CallContext) -> pb.TokenResponse:
        record, blocked = await self._lookup(account_id=request.id, name=request.name)
        subject = record.id if record is not None else request.id or normalise_name(request.name)
        address = client_address(ctx, request.client_address)
        await self._credentials.check(ctx, record, subject, request.secret, address)
        if record is None or blocked:
            # The secret was right, but a blocked account gets the same refusal.
            raise Unauthorized(ctx.endpoint, INVALID_CREDENTIALS)
        if self._passwords.needs_rehash(record.secret_hash):
            await self._rehash(record.id, request.secret)
        return await self._start(record, self._ttl(request.token_expiry))

    async def _rehash(self, account_id: str, secret: str) -> None:
        hashed = await self._passwords.hash(secret)
        async with transaction(self._sessions) as session:
            await session.execute(
                update(tables.accounts)
                .where(tables.accounts.c.id == account_id)
                .values(secret_hash=hashed)
            )

    async def _start(self, record: AccountRecord, ttl: timedelta) -> pb.TokenResponse:
        now = self._clock()
        session_id = uuid.uuid4().hex
        refresh = secrets.token_urlsafe(32)
        expires = now + ttl
        async with transaction(self._sessions) as session:
            await session.execute(
                tables.sessions.insert().values(
                    id=session_id,
                    account_id=record.id,
                    access_ttl=int(ttl.total_seconds()),
                    access_expires=expires,
                    created=now,
                    revoked=None,
                )
            )
            await self._add_refresh_token(session, session_id, refresh, now)
        return await self._issue(record, session_id, refresh, now, expires)

    async def _add_refresh_token(
        self, session: AsyncSession, session_id: str, token: str, now: datetime
    ) -> None:
        await session.execute(
            tables.refresh_tokens.insert().values(
                hash=hash_token(token),
                session_id=session_id,
                created=now,
                expires=now + self._settings.refresh_token_ttl,
                used=None,
            )
        )

    async def _issue(
        self,
        record: AccountRecord,
        session_id: str,
        refresh: str,
        now: datetime,
        expires: datetime,
    ) -> pb.TokenResponse:
        claims: dict[str, Any] = {
            "sub": record.id,
            "type": record.type,
            "iss": record.issuer,
            "name": record.name,
            "scopes": list(record.scopes),
            "metadata": dict(record.metadata),
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        access = await self._keys.sign(claims)
        return pb.TokenResponse(
            token=pb.Token(
                access_token=access,
                refresh_token=refresh,
                created=claims["iat"],
                expiry=claims["exp"],
            ),
            account=record.to_pb(),
        )

    async def _refresh(self, request: pb.TokenRequest, ctx: CallContext) -> pb.TokenResponse:
        now = self._clock()
        fresh = secrets.token_urlsafe(32)
        async with transaction(self._sessions) as session:
            outcome = await self._rotate(
                session, hash_token(request.refresh_token), fresh, now, request.token_expiry
            )
        if isinstance(outcome, _Rotated):
            return await self._issue(
                outcome.record, outcome.session_id, fresh, now, outcome.expires
            )
        if outcome:
            _log.warning("auth.refresh_token_reused", session_id=outcome[0].id)
            await self._mirror.revoked(outcome)
        raise Unauthorized(ctx.endpoint, INVALID_REFRESH_TOKEN)

    async def _rotate(
        self, session: AsyncSession, digest: str, fresh: str, now: datetime, token_expiry: int
    ) -> _Rotated | list[RevokedSession]:
        """Swap the refresh token ``digest`` for ``fresh``. Returns the new session state,
        or the family it revoked on reuse ([] when the token is simply not valid)."""
        r, s = tables.refresh_tokens.c, tables.sessions.c
        row = (
            await session.execute(
                select(r.session_id, r.expires, r.used, s.account_id, s.revoked, s.access_ttl)
                .join(tables.sessions, s.id == r.session_id)
                .where(r.hash == digest)
                .with_for_update()
            )
        ).first()
        if row is None or row.revoked is not None or row.expires <= now:
            return []
        if row.used is not None:
            return await revoke_sessions(session, now, session_id=row.session_id)
        record = await find_account(session, account_id=row.account_id)
        if record is None or await is_blocked(session, record.id):
            return []
        await session.execute(
            update(tables.refresh_tokens).where(r.hash == digest).values(used=now)
        )
        await self._add_refresh_token(session, row.session_id, fresh, now)
        expires = now + (_seconds(token_expiry) or timedelta(seconds=row.access_ttl))
        await session.execute(
            update(tables.sessions)
            .where(s.id == row.session_id, s.access_expires < expires)
            .values(access_expires=expires)
        )
        return _Rotated(record, row.session_id, expires)

    async def inspect(self, request: pb.InspectRequest, ctx: CallContext) -> pb.InspectResponse:
        if ctx.account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not request.token:
            raise BadRequest(ctx.endpoint, "Missing token")
        try:
            account = await self._authenticator.authenticate(request.token)
        except Unauthorized:
            raise Unauthorized(ctx.endpoint, "Invalid token") from None
        return pb.InspectResponse(
            account=pb.Account(
                id=account.id,
                type=account.type,
                issuer=account.issuer,
                name=account.name,
                scopes=list(account.scopes),
                metadata=dict(account.metadata),
            )
        )

    async def revoke(self, request: pb.RevokeRequest, ctx: CallContext) -> pb.RevokeResponse:
        """Revoking a token that is unknown or already over succeeds (as RFC 7009 says)."""
        account = ctx.account
        if account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        session_id = account.metadata.get(SESSION_METADATA, "")
        if not request.refresh_token and not session_id:
            raise BadRequest(ctx.endpoint, "No session to revoke")
        now = self._clock()
        async with transaction(self._sessions) as session:
            owner = account.id
            if request.refresh_token:
                found = await _session_of(session, hash_token(request.refresh_token))
                if found is None:
                    return pb.RevokeResponse()
                session_id, owner = found
            if owner != account.id and not (is_admin(account) or is_service(account)):
                raise Forbidden(ctx.endpoint, "Forbidden")
            revoked = await revoke_sessions(session, now, session_id=session_id)
        await self._mirror.revoked(revoked)
        return pb.RevokeResponse()

    async def revoke_sessions(
        self, request: pb.RevokeSessionsRequest, ctx: CallContext
    ) -> pb.RevokeSessionsResponse:
        verify_admin(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing account id")
        async with transaction(self._sessions) as session:
            revoked = await revoke_sessions(session, self._clock(), account_id=request.id)
        await self._mirror.revoked(revoked)
        return pb.RevokeSessionsResponse()

    async def purge_expired(self) -> None:
        """Forget expired refresh tokens, and sessions with none left whose access tokens
        have expired too."""
        now = self._clock()
        r, s = tables.refresh_tokens.c, tables.sessions.c
        async with transaction(self._sessions) as session:
            await session.execute(delete(tables.refresh_tokens).where(r.expires <= now))
            await session.execute(
                delete(tables.sessions).where(
                    s.access_expires <= now - REVOCATION_MARGIN,
                    ~exists().where(r.session_id == s.id),
                )
            )


async def _session_of(session: AsyncSession, digest: str) -> tuple[str, str] | None:
    """The session and account a refresh token belongs to."""
    r, s = tables.refresh_tokens.c, tables.sessions.c
    row = (
        await session.execute(
            select(s.id, s.account_id)
            .join(tables.refresh_tokens, r.session_id == s.id)
            .where(r.hash == digest)
        )
    ).first()
    return None if row is None else (row.id, row.account_id)


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)
