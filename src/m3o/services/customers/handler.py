"""The customers service: customer records and their life cycle.

Every change and its event are written in one transaction (the outbox). Calls to auth are
made outside any database transaction (in the ``local`` profile auth shares the SQLite
file, whose writers queue behind one another) and BEFORE the change is written, so a
failure leaves the customer as it was and the call can simply be retried:

- Ban: block and delete the auth account, then write ``banned``. If auth fails the call
  fails and the customer is unchanged; a retry repeats the (idempotent) auth calls.
- Unban: create a fresh auth account (an existing one, left by a failed attempt, counts as
  done), unblock it, then write ``verified``.
- Delete: delete the auth account (already gone counts as done), then write ``deleted``.
- DeleteCustomer (admin's erasure): the same, then the record goes for good; a record
  deleted already just goes.

Banning a banned customer, verifying a verified one or saving an unchanged customer
succeeds without a write or an event. Login and Logout live in ``sessions.py``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.customers import TOPIC, EventType
from m3o.runtime.auth import (
    CallContext,
    is_admin,
    is_customer,
    is_service,
    verify_admin,
    verify_self_or_admin,
    verify_service,
)
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.email_address import InvalidEmail, normalise_email, parse_email
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
)
from m3o.runtime.events import Publisher
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.customers import records
from m3o.services.customers.authcalls import AUTH_CALLS
from m3o.services.customers.events import customer_event
from m3o.services.customers.names import random_hero_name
from m3o.services.customers.proto import customers_pb2 as pb
from m3o.services.customers.records import CustomerRecord, Status
from m3o.services.customers.sessions import Logins

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_TOKEN_TTL",
    "MAX_LIST_LIMIT",
    "MAX_NAME_LENGTH",
    "Customers",
]

DEFAULT_TOKEN_TTL = timedelta(days=30)
"""Lifetime of the access token a customer's login gets (the reference's 30 days)."""
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_NAME_LENGTH = 200
_CREATE_ATTEMPTS = 3
_UPDATABLE = frozenset({Status.UNVERIFIED, Status.VERIFIED, Status.ACTIVE, Status.DELETED})


@dataclass(frozen=True, slots=True)
class Ref:
    """Which customer a request names: by id, else by (normalised) email."""

    id: str = ""
    email: str = ""


class Customers:
    """Implements ``customers.Customers`` (see ``proto/customers.proto``)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        auth: AuthService,
        token_ttl: timedelta = DEFAULT_TOKEN_TTL,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._auth = auth
        self._clock = clock
        self._logins = Logins(
            sessions=sessions, publisher=publisher, auth=auth, token_ttl=token_ttl
        )

    async def create(self, request: pb.CreateRequest, ctx: CallContext) -> pb.CreateResponse:
        account = verify_admin(ctx)
        if not normalise_email(request.email):
            raise BadRequest(ctx.endpoint, "Email is required")
        try:
            email = parse_email(request.email)
        except InvalidEmail as exc:
            raise BadRequest(ctx.endpoint, exc.detail()) from None
        attempt = 1
        while True:
            try:
                record = await self._create_once(email, account.id)
            except IntegrityError:
                # A concurrent Create claimed the email first: the next attempt finds it.
                if attempt >= _CREATE_ATTEMPTS:
                    raise
                attempt += 1
            else:
                return pb.CreateResponse(customer=record.to_proto())

    async def _create_once(self, email: str, caller_id: str) -> CustomerRecord:
        async with transaction(self._sessions) as session:
            existing = await records.find(session, email=email)
            if existing is not None:
                if existing.status is Status.UNVERIFIED:
                    return existing
                raise Conflict("customers.create.exists", "A customer with this email exists")
            now = self._clock()
            record = CustomerRecord(
                id=str(uuid.uuid4()),
                email=email,
                status=Status.UNVERIFIED,
                created=now,
                updated=now,
                meta={"generated_name": random_hero_name()},
            )
            await records.insert_new(session, record)
            await self._publish(session, EventType.EventTypeCreated, record, caller_id)
            return record

    async def mark_verified(
        self, request: pb.MarkVerifiedRequest, ctx: CallContext
    ) -> pb.MarkVerifiedResponse:
        ref = self._target(ctx, request.id, request.email)

        def verify(current: CustomerRecord) -> CustomerRecord:
            # Only unverified moves: a ban is never lifted, active never demoted.
            if current.status is Status.UNVERIFIED:
                return replace(current, status=Status.VERIFIED)
            return current

        await self._change(ctx, ref, EventType.EventTypeVerified, verify)
        return pb.MarkVerifiedResponse()

    async def read(self, request: pb.ReadRequest, ctx: CallContext) -> pb.ReadResponse:
        ref = self._target(ctx, request.id, request.email)
        record = await self._read(ctx, ref, not_found_id="customers.read.notfound")
        return pb.ReadResponse(customer=record.to_proto())

    async def delete(self, request: pb.DeleteRequest, ctx: CallContext) -> pb.DeleteResponse:
        ref = self._target(ctx, request.id, request.email)
        async with self._sessions() as session:
            found = await records.find(session, customer_id=ref.id, email=ref.email)
        if found is None or found.status is Status.DELETED:
            if not request.force:
                raise NotFound(ctx.endpoint, "Customer not found")
            await self._purge(ctx, ref)
            return pb.DeleteResponse()
        self._check_owner(ctx, found)
        await self._delete_account(ctx, found.id)
        async with transaction(self._sessions) as session:
            current = await records.find(session, customer_id=found.id, lock=True)
            gone = replace(
                self._existing(ctx, current), status=Status.DELETED, updated=self._clock()
            )
            if request.force:
                await records.remove(session, gone.id)
            else:
                await records.save(session, gone)
            await self._publish(session, EventType.EventTypeDeleted, gone, _caller_id(ctx))
        return pb.DeleteResponse()

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_service(ctx)
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        await self._delete_account(ctx, customer_id)
        async with transaction(self._sessions) as session:
            current = await records.find(session, customer_id=customer_id, lock=True)
            if current is None:
                return pb.DeleteCustomerResponse()
            await records.remove(session, customer_id)
            if current.status is not Status.DELETED:
                gone = replace(current, status=Status.DELETED, updated=self._clock())
                await self._publish(session, EventType.EventTypeDeleted, gone, _caller_id(ctx))
        return pb.DeleteCustomerResponse(email=current.email)

    async def _purge(self, ctx: CallContext, ref: Ref) -> None:
        """Remove soft-deleted records for good; their Deleted event was published then."""
        async with transaction(self._sessions) as session:
            if ref.id:
                found = await records.find(session, customer_id=ref.id, lock=True)
                targets = [found] if found is not None and found.status is Status.DELETED else []
            else:
                targets = await records.deleted_with_email(session, ref.email)
            targets = [t for t in targets if _may_act_on(ctx, t)]
            if not targets:
                raise NotFound(ctx.endpoint, "Customer not found")
            for target in targets:
                await records.remove(session, target.id)

    async def list(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        verify_admin(ctx)
        if not 0 <= request.limit <= MAX_LIST_LIMIT:
            raise BadRequest(ctx.endpoint, f"limit must be between 0 and {MAX_LIST_LIMIT}")
        if request.offset < 0:
            raise BadRequest(ctx.endpoint, "offset must not be negative")
        async with self._sessions() as session:
            found = await records.page(
                session, limit=request.limit or DEFAULT_LIST_LIMIT, offset=request.offset
            )
        return pb.ListResponse(customers=[record.to_proto() for record in found])

    async def update(self, request: pb.UpdateRequest, ctx: CallContext) -> pb.UpdateResponse:
        verify_admin(ctx)
        if not request.HasField("customer"):
            raise BadRequest(ctx.endpoint, "Missing customer")
        wanted = request.customer
        if not wanted.id:
            raise BadRequest(ctx.endpoint, "Missing customer id")
        if wanted.status and wanted.status not in _UPDATABLE:
            raise BadRequest("customers.update.badstatus", "Invalid status")
        if len(wanted.name) > MAX_NAME_LENGTH:
            raise BadRequest(ctx.endpoint, f"name is longer than {MAX_NAME_LENGTH} characters")

        def apply(current: CustomerRecord) -> CustomerRecord:
            return _updated(ctx, current, wanted)

        ref = Ref(id=wanted.id)
        current = await self._read(ctx, ref)
        if apply(current) == current:
            return pb.UpdateResponse()
        if wanted.status == Status.DELETED:
            # Its sessions must end with it, as with Delete.
            await self._delete_account(ctx, current.id)
        await self._change(ctx, ref, EventType.EventTypeUpdated, apply)
        return pb.UpdateResponse()

    async def ban(self, request: pb.BanRequest, ctx: CallContext) -> pb.BanResponse:
        verify_admin(ctx)
        ref = self._target(ctx, request.id, request.email)
        current = await self._read(ctx, ref)
        if current.status is Status.BANNED:
            return pb.BanResponse()
        await AUTH_CALLS.call(ctx, "block", self._auth.block(auth_pb.BlockRequest(id=current.id)))
        await self._delete_account(ctx, current.id)
        await self._change(
            ctx,
            Ref(id=current.id),
            EventType.EventTypeBanned,
            lambda record: replace(record, status=Status.BANNED),
        )
        return pb.BanResponse()

    async def unban(self, request: pb.UnbanRequest, ctx: CallContext) -> pb.UnbanResponse:
        verify_admin(ctx)
        ref = self._target(ctx, request.id, request.email)
        current = await self._read(ctx, ref)

        def unban(record: CustomerRecord) -> CustomerRecord:
            if record.status is not Status.BANNED:
                raise BadRequest(ctx.endpoint, "Customer is not banned")
            return replace(record, status=Status.VERIFIED)

        unban(current)  # refuse before touching auth; checked again under the lock
        # No secret: auth generates a random one, so the customer must reset the password.
        account = auth_pb.GenerateRequest(
            id=current.id, type="customer", scopes=["customer"], name=current.email
        )
        with contextlib.suppress(Conflict):  # the account is there already
            await AUTH_CALLS.call(ctx, "generate", self._auth.generate(account), passes=(Conflict,))
        with contextlib.suppress(NotFound):  # nothing to unblock
            await AUTH_CALLS.call(
                ctx,
                "unblock",
                self._auth.unblock(auth_pb.UnblockRequest(id=current.id)),
                passes=(NotFound,),
            )
        await self._change(ctx, Ref(id=current.id), EventType.EventTypeUnbanned, unban)
        return pb.UnbanResponse()

    async def update_name(
        self, request: pb.UpdateNameRequest, ctx: CallContext
    ) -> pb.UpdateNameResponse:
        if ctx.account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing id")
        name = request.name.strip()
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(ctx.endpoint, f"name is longer than {MAX_NAME_LENGTH} characters")
        verify_self_or_admin(ctx, request.id)
        await self._change(
            ctx,
            Ref(id=request.id),
            EventType.EventTypeUpdated,
            lambda record: replace(record, name=name),
        )
        return pb.UpdateNameResponse()

    async def login(self, request: pb.LoginRequest, ctx: CallContext) -> pb.LoginResponse:
        return await self._logins.login(request, ctx)

    async def logout(self, request: pb.LogoutRequest, ctx: CallContext) -> pb.LogoutResponse:
        return await self._logins.logout(request, ctx)

    # -- shared steps ------------------------------------------------------------------------

    def _target(self, ctx: CallContext, customer_id: str, email: str) -> Ref:
        """Validate which customer a request names and check the caller may act on it.

        Runs before any lookup, so a customer naming another customer is Forbidden whether
        or not that customer exists. The id wins when both are given.
        """
        account = ctx.account
        if account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        customer_id = customer_id.strip()
        ref = Ref(id=customer_id) if customer_id else Ref(email=normalise_email(email))
        if not ref.id and not ref.email:
            raise BadRequest(ctx.endpoint, "Missing id or email")
        claimed = ref.id
        if not claimed and is_customer(account) and normalise_email(account.name) == ref.email:
            claimed = account.id
        verify_self_or_admin(ctx, claimed)
        return ref

    def _check_owner(self, ctx: CallContext, record: CustomerRecord) -> None:
        if not _may_act_on(ctx, record):
            raise Forbidden(ctx.endpoint, "Forbidden")

    def _existing(
        self, ctx: CallContext, record: CustomerRecord | None, not_found_id: str = ""
    ) -> CustomerRecord:
        """``record`` if it is a customer the caller may see; deleted ones are not found."""
        if record is None or record.status is Status.DELETED:
            raise NotFound(not_found_id or ctx.endpoint, "Customer not found")
        self._check_owner(ctx, record)
        return record

    async def _read(self, ctx: CallContext, ref: Ref, not_found_id: str = "") -> CustomerRecord:
        async with self._sessions() as session:
            found = await records.find(session, customer_id=ref.id, email=ref.email)
        return self._existing(ctx, found, not_found_id)

    async def _change(
        self,
        ctx: CallContext,
        ref: Ref,
        event_type: EventType.ValueType,
        change: Callable[[CustomerRecord], CustomerRecord],
    ) -> CustomerRecord:
        """Apply ``change`` to the locked record; write and publish only if it changed."""
        async with transaction(self._sessions) as session:
            current = await records.find(session, customer_id=ref.id, email=ref.email, lock=True)
            current = self._existing(ctx, current)
            changed = change(current)
            if changed == current:
                return current
            changed = replace(changed, updated=self._clock())
            await records.save(session, changed)
            await self._publish(session, event_type, changed, _caller_id(ctx))
            return changed

    async def _publish(
        self,
        session: AsyncSession,
        event_type: EventType.ValueType,
        record: CustomerRecord,
        caller_id: str,
    ) -> None:
        event = customer_event(event_type, record.to_event(), caller_id)
        await self._publisher.publish(TOPIC, event, session=session)

    async def _delete_account(self, ctx: CallContext, customer_id: str) -> None:
        with contextlib.suppress(NotFound):  # deleted already
            await AUTH_CALLS.call(
                ctx,
                "delete",
                self._auth.delete(auth_pb.DeleteRequest(id=customer_id)),
                passes=(NotFound,),
            )


def _caller_id(ctx: CallContext) -> str:
    return ctx.account.id if ctx.account is not None else ""


def _may_act_on(ctx: CallContext, record: CustomerRecord) -> bool:
    """A customer acts only on itself; admins and services on anyone."""
    account = ctx.account
    if account is None:
        return False
    if is_admin(account) or is_service(account):
        return True
    return is_customer(account) and account.id == record.id


def _updated(ctx: CallContext, current: CustomerRecord, wanted: pb.Customer) -> CustomerRecord:
    """``current`` with Update's new values; empty values keep the current ones."""
    status = current.status
    if wanted.status and wanted.status != current.status:
        if current.status is Status.BANNED:
            raise BadRequest(ctx.endpoint, "A banned customer's status changes only by Unban")
        status = Status(wanted.status)
    return replace(
        current,
        status=status,
        name=wanted.name.strip() or current.name,
        meta=dict(wanted.meta) if wanted.meta else current.meta,
    )
