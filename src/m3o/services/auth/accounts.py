"""Accounts: Generate, Delete, List, ChangeSecret, and the service accounts made at start.

Delete refuses the caller's own account and the last active admin (``lockout.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from m3o.runtime.auth import ISSUER, CallContext, is_admin, is_service, verify_admin
from m3o.runtime.clock import Clock
from m3o.runtime.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.credentials import CredentialCheck, client_address
from m3o.services.auth.lockout import refuse_lockout
from m3o.services.auth.passwords import Passwords, random_secret
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.records import (
    ACCOUNT_TYPES,
    AccountRecord,
    find_account,
    normalise_name,
)
from m3o.services.auth.revocation import CounterMirror, revoke_sessions

__all__ = ["DEFAULT_LIST_LIMIT", "MAX_LIST_LIMIT", "SERVICE_SCOPE", "Accounts"]

_log = get_logger(__name__)

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 320
SERVICE_SCOPE = "service"


class Accounts:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        passwords: Passwords,
        credentials: CredentialCheck,
        mirror: CounterMirror,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._passwords = passwords
        self._credentials = credentials
        self._mirror = mirror
        self._clock = clock

    async def generate(self, request: pb.GenerateRequest, ctx: CallContext) -> pb.GenerateResponse:
        verify_admin(ctx)
        if not request.id.strip():
            raise BadRequest(ctx.endpoint, "Missing account id")
        if len(request.id) > MAX_ID_LENGTH:
            raise BadRequest(ctx.endpoint, "Account id is too long")
        kind = request.type or "user"
        if kind not in ACCOUNT_TYPES:
            raise BadRequest(ctx.endpoint, f"Account type must be one of {sorted(ACCOUNT_TYPES)}")
        name = normalise_name(request.name)
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(ctx.endpoint, "Account name is too long")
        secret = request.secret or random_secret()
        record = AccountRecord(
            id=request.id,
            type=kind,
            name=name,
            scopes=tuple(s for s in request.scopes if s),
            metadata=dict(request.metadata),
            secret_hash=await self._passwords.hash(secret),
            created=self._clock(),
        )
        try:
            async with transaction(self._sessions) as session:
                if await find_account(session, account_id=record.id) is not None:
                    raise Conflict(ctx.endpoint, "Account already exists")
                if name and await find_account(session, name=name) is not None:
                    raise Conflict(ctx.endpoint, "Account name is already in use")
                await session.execute(insert(tables.accounts).values(**_row(record)))
        except IntegrityError:
            raise Conflict(ctx.endpoint, "Account already exists") from None
        return pb.GenerateResponse(account=record.to_pb(), secret="" if request.secret else secret)

    async def delete(self, request: pb.DeleteRequest, ctx: CallContext) -> pb.DeleteResponse:
        verify_admin(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing account id")
        async with transaction(self._sessions) as session:
            if await find_account(session, account_id=request.id) is None:
                raise NotFound(ctx.endpoint, "Account not found")
            await refuse_lockout(session, ctx, request.id, "delete")
            await session.execute(delete(tables.accounts).where(tables.accounts.c.id == request.id))
            revoked = await revoke_sessions(session, self._clock(), account_id=request.id)
        await self._mirror.revoked(revoked)
        return pb.DeleteResponse()

    async def list(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        verify_admin(ctx)
        if request.limit < 0 or request.offset < 0:
            raise BadRequest(ctx.endpoint, "limit and offset must not be negative")
        limit = min(request.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        a = tables.accounts.c
        async with transaction(self._sessions) as session:
            rows = await session.execute(
                select(tables.accounts)
                .order_by(a.created, a.id)
                .limit(limit)
                .offset(request.offset)
            )
            found = [AccountRecord.from_row(row).to_pb() for row in rows]
        return pb.ListResponse(accounts=found)

    async def change_secret(
        self, request: pb.ChangeSecretRequest, ctx: CallContext
    ) -> pb.ChangeSecretResponse:
        caller = ctx.account
        if caller is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing account id")
        if not request.new_secret:
            raise BadRequest(ctx.endpoint, "Missing new secret")
        privileged = is_admin(caller) or is_service(caller)
        if not privileged and caller.id != request.id:
            raise Forbidden(ctx.endpoint, "Forbidden")
        if not privileged and not request.old_secret:
            raise BadRequest(ctx.endpoint, "Missing old secret")
        async with transaction(self._sessions) as session:
            record = await find_account(session, account_id=request.id)
        if record is None:
            raise NotFound(ctx.endpoint, "Account not found")
        if not privileged:
            address = client_address(ctx)
            await self._credentials.check(ctx, record, record.id, request.old_secret, address)
        hashed = await self._passwords.hash(request.new_secret)
        now = self._clock()
        async with transaction(self._sessions) as session:
            await session.execute(
                update(tables.accounts)
                .where(tables.accounts.c.id == record.id)
                .values(secret_hash=hashed, updated=now)
            )
            revoked = await revoke_sessions(session, now, account_id=record.id)
        await self._mirror.revoked(revoked)
        return pb.ChangeSecretResponse()

    async def ensure_service_accounts(self, names: Sequence[str], secret: str) -> None:
        """Give each service an account (type and scope ``service``, id and name = the
        service's name) whose secret is ``secret``, updating any that differs.

        The services share one secret, so they share one hash of it: a start checks the
        secret once per distinct stored hash and hashes it at most once, instead of once
        per service (Argon2 is deliberately slow; the local profile, whose secret is new
        each start, used to spend seconds here).
        """
        if names and not secret:
            raise ValueError("auth.service_secret must be set to create service accounts")
        async with transaction(self._sessions) as session:
            current = {name: await find_account(session, account_id=name) for name in names}
        matches: dict[str, bool] = {}
        stale: list[str] = []
        for name, record in current.items():
            if record is None or not self._is_service_account(record, name):
                stale.append(name)
                continue
            hashed = record.secret_hash
            if hashed not in matches:
                matches[hashed] = not self._passwords.needs_rehash(
                    hashed
                ) and await self._passwords.verify(hashed, secret)
            if not matches[hashed]:
                stale.append(name)
        if not stale:
            return
        hashed = await self._passwords.hash(secret)
        now = self._clock()
        async with transaction(self._sessions) as session:
            for name in stale:
                found = current[name]
                record = AccountRecord(
                    id=name,
                    type="service",
                    name=name,
                    scopes=(SERVICE_SCOPE,),
                    metadata={},
                    secret_hash=hashed,
                    created=found.created if found is not None else now,
                )
                values = _row(record, updated=now)
                if found is None:
                    await session.execute(insert(tables.accounts).values(**values))
                else:
                    await session.execute(
                        update(tables.accounts).where(tables.accounts.c.id == name).values(**values)
                    )
        for name in stale:
            _log.info("auth.service_account_saved", account_id=name, created=current[name] is None)

    @staticmethod
    def _is_service_account(record: AccountRecord, name: str) -> bool:
        scopes = (SERVICE_SCOPE,)
        return record.type == "service" and record.name == name and record.scopes == scopes


def _row(record: AccountRecord, updated: datetime | None = None) -> Mapping[str, object]:
    return {
        "id": record.id,
        "type": record.type,
        "issuer": ISSUER,
        "name": record.name or None,
        "scopes": list(record.scopes),
        "meta": dict(record.metadata),
        "secret_hash": record.secret_hash,
        "created": record.created,
        "updated": updated or record.created,
    }
