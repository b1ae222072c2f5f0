"""User and Verify: an email address becomes a verified customer with a session.

User creates (or reuses) the unverified customer, stores a fresh code's hash (replacing any
earlier code) and emails the code. For an address that has an account, User answers
exactly as for a new one and emails the owner instead, so it never tells who is
registered. Verify checks the code and then, all or nothing:

1. creates the customer's auth account with the password (an account left by an earlier,
   half-done attempt gets the new password instead);
2. marks the customer verified;
3. issues the session.

If step 2 or 3 fails, an account created in step 1 is deleted again and the code stays
usable, so the customer simply tries again. While one Verify completes a code it holds it
(``claimed_until``), so two concurrent Verifies cannot both use it; the code is consumed,
and Signup published, in one transaction once every step succeeded.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta

import orjson

from m3o.events.customers import TOPIC, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.auth import ISSUER, CallContext
from m3o.runtime.clock import Clock
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    M3OError,
    NotFound,
)
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.emails.proto.client import EmailsService
from m3o.services.signup import codes, records
from m3o.services.signup.calls import CALLS
from m3o.services.signup.customer import BANNED, UNVERIFIED, VERIFIED, customer_event, read_customer
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.records import CodeRecord
from m3o.services.signup.settings import SignupSettings, check_email, check_password

__all__ = [
    "CLAIM_TTL",
    "CODE_EXPIRED",
    "CODE_INVALID",
    "EXISTS",
    "EXISTS_ID",
    "NOT_ALLOWED",
    "NO_CODE",
    "Verification",
]

_log = get_logger(__name__)

NOT_ALLOWED = "This email address cannot be used to sign up"
EXISTS_ID = "signup.user.exists"
EXISTS = "An account with this email address exists already; log in or recover the password"
NOTICE_KEY_PREFIX = "signup:exists-notice:"
NO_CODE = "No verification code is pending for this email address; ask for a new one"
CODE_INVALID = "The token you provided is invalid"
CODE_EXPIRED = "The token you provided has expired"
BUSY = "This code is being verified already"
CLAIM_TTL = timedelta(seconds=60)
"""How long one Verify holds a code: longer than its four calls' deadlines (10 s each)."""


class _Verdict(enum.Enum):
    MISSING = enum.auto()
    EXPIRED = enum.auto()
    WRONG = enum.auto()
    BUSY = enum.auto()
    GOOD = enum.auto()


class Verification:
    """User and Verify of ``signup.Signup``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        customers: CustomersService,
        auth: AuthService,
        emails: EmailsService,
        counters: CounterStore,
        settings: SignupSettings,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._counters = counters
        self._customers = customers
        self._auth = auth
        self._emails = emails
        self._settings = settings
        self._clock = clock

    # -- User -------------------------------------------------------------------------------

    async def user(self, request: pb.UserRequest, ctx: CallContext) -> pb.UserResponse:
        email = check_email(ctx, request.email)
        if not self._settings.policy.may_sign_up(email, given=request.email):
            raise Forbidden(ctx.endpoint, NOT_ALLOWED)
        existing = await read_customer(ctx, self._customers, email=email)
        if existing is not None and existing.status != UNVERIFIED:
            await self._notify_owner(ctx, existing)
            return pb.UserResponse()
        try:
            created = await CALLS.call(
                ctx,
                "customers.create",
                self._customers.create(customers_pb.CreateRequest(email=email)),
                passes=(Conflict,),
            )
        except Conflict:
            # Verified by another way since we looked: answered as above.
            found = await read_customer(ctx, self._customers, email=email)
            if found is not None:
                await self._notify_owner(ctx, found)
            return pb.UserResponse()
        code = codes.new_code()
        record = self._new_code_record(email, created.customer.id, code)
        async with transaction(self._sessions) as session:
            await records.replace_code(session, record)
        await CALLS.call(ctx, "emails.send", self._emails.send(self._code_email(record, code)))
        _log.info("signup.code_sent", customer_id=record.customer_id, code_id=record.id)
        return pb.UserResponse()

    async def _notify_owner(self, ctx: CallContext, customer: customers_pb.Customer) -> None:
        """Tell the owner of an existing account that someone asked to sign up with it.

        The caller gets the answer a new address gets, so User never tells who is
        registered. At most one notice per address per ``notice_interval``; banned
        customers get none.
        """
        if customer.status == BANNED:
            _log.info("signup.exists_notice_skipped", customer_id=customer.id, reason="banned")
            return
        key = NOTICE_KEY_PREFIX + customer.email
        if not await self._counters.set_if_absent(key, "1", ttl=self._settings.notice_interval):
            _log.info("signup.exists_notice_skipped", customer_id=customer.id, reason="recent")
            return
        send = emails_pb.SendRequest(
            to=customer.email,
            template_id=self._settings.templates.account_exists,
            template_data=orjson.dumps({"email": customer.email}).decode(),
            idempotency_key=f"account_exists:{uuid.uuid4()}",
        )
        setattr(send, "from", self._settings.email_from)  # "from" is a Python keyword
        try:
            await CALLS.call(ctx, "emails.send", self._emails.send(send))
        except BaseException:
            # Nothing reached the owner: the next attempt may notify at once.
            await self._counters.delete(key)
            raise
        _log.info("signup.exists_notice_sent", customer_id=customer.id)

    def _new_code_record(self, email: str, customer_id: str, code: str) -> CodeRecord:
        now = self._clock()
        salt = codes.new_salt()
        return CodeRecord(
            id=str(uuid.uuid4()),
            email=email,
            customer_id=customer_id,
            code_hash=codes.hash_code(code, salt),
            salt=salt,
            created=now,
            expires=now + self._settings.code_ttl,
        )

    def _code_email(self, record: CodeRecord, code: str) -> emails_pb.SendRequest:
        request = emails_pb.SendRequest(
            to=record.email,
            template_id=self._settings.templates.verification,
            template_data=orjson.dumps({"code": code}).decode(),
            idempotency_key=f"verification:{record.id}",
        )
        setattr(request, "from", self._settings.email_from)  # "from" is a Python keyword
        return request

    # -- Verify -----------------------------------------------------------------------------

    async def verify(self, request: pb.VerifyRequest, ctx: CallContext) -> pb.VerifyResponse:
        email = check_email(ctx, request.email)
        if not request.token.strip():
            raise BadRequest(ctx.endpoint, "Missing token")
        check_password(ctx, request.secret, allow_empty=True)
        secret = request.secret or codes.random_secret()
        record = await self._claim(ctx, email, request.token)
        try:
            customer, issued = await self._complete(ctx, record, secret)
        except BaseException:
            async with transaction(self._sessions) as session:
                await records.release_code(session, record.id)
            raise
        status = VERIFIED if customer.status == UNVERIFIED else customer.status
        event = customer_event(EventType.EventTypeSignup, customer, status=status)
        event.signup.CopyFrom(events_pb.Signup(method="email"))
        async with transaction(self._sessions) as session:
            await records.consume_code(session, record.id)
            await self._publisher.publish(TOPIC, event, session=session)
        _log.info("signup.verified", customer_id=customer.id)
        return pb.VerifyResponse(
            authToken=pb.AuthToken(
                access_token=issued.access_token,
                refresh_token=issued.refresh_token,
                created=issued.created,
                expiry=issued.expiry,
            ),
            customerID=customer.id,
            namespace=ISSUER,
        )

    async def _claim(self, ctx: CallContext, email: str, token: str) -> CodeRecord:
        """Check ``token`` against the pending code and hold the code if it matches.

        A wrong token is counted (the last allowed wrong attempt voids the code) in a
        transaction that commits before the error is raised.
        """
        now = self._clock()
        async with transaction(self._sessions) as session:
            record = await records.find_code(session, email, lock=True)
            verdict = self._judge(record, token, now)
            if record is not None and verdict is _Verdict.WRONG:
                void = record.attempts + 1 >= self._settings.code_attempts
                await records.wrong_attempt(session, record, void=void)
                _log.info("signup.wrong_code", code_id=record.id, voided=void)
            elif record is not None and verdict is _Verdict.GOOD:
                await records.claim_code(session, record, now + CLAIM_TTL)
        if verdict is _Verdict.MISSING or record is None:
            raise NotFound(ctx.endpoint, NO_CODE)
        if verdict is _Verdict.EXPIRED:
            raise Forbidden(ctx.endpoint, CODE_EXPIRED)
        if verdict is _Verdict.WRONG:
            raise Forbidden(ctx.endpoint, CODE_INVALID)
        if verdict is _Verdict.BUSY:
            raise Conflict(ctx.endpoint, BUSY)
        return record

    def _judge(self, record: CodeRecord | None, token: str, now: datetime) -> _Verdict:
        if record is None:
            return _Verdict.MISSING
        if now >= record.expires:
            return _Verdict.EXPIRED
        if not codes.code_matches(token, record.salt, record.code_hash):
            return _Verdict.WRONG
        if record.claimed_until is not None and now < record.claimed_until:
            return _Verdict.BUSY
        return _Verdict.GOOD

    async def _complete(
        self, ctx: CallContext, record: CodeRecord, secret: str
    ) -> tuple[customers_pb.Customer, auth_pb.Token]:
        """The three steps of a signup; undoes the account it created if a later one fails."""
        customer = await read_customer(ctx, self._customers, customer_id=record.customer_id)
        if customer is None:
            raise NotFound(ctx.endpoint, NO_CODE)
        if customer.status == BANNED:
            raise Conflict(EXISTS_ID, EXISTS)
        created = await self._set_account(ctx, customer, secret)
        try:
            await CALLS.call(
                ctx,
                "customers.mark_verified",
                self._customers.mark_verified(customers_pb.MarkVerifiedRequest(id=customer.id)),
            )
            issued = await CALLS.call(
                ctx,
                "auth.token",
                self._auth.token(
                    auth_pb.TokenRequest(
                        id=customer.id,
                        secret=secret,
                        token_expiry=int(self._settings.token_ttl.total_seconds()),
                    )
                ),
            )
        except BaseException:
            if created:
                await self._delete_account(customer.id)
            raise
        return customer, issued.token

    async def _set_account(
        self, ctx: CallContext, customer: customers_pb.Customer, secret: str
    ) -> bool:
        """Create the customer's account with ``secret``; True if this call created it."""
        account = auth_pb.GenerateRequest(
            id=customer.id,
            type="customer",
            scopes=["customer"],
            name=customer.email,
            secret=secret,
        )
        try:
            await CALLS.call(ctx, "auth.generate", self._auth.generate(account), passes=(Conflict,))
        except Conflict:
            # Left by an earlier attempt that did not finish: it gets this password.
            change = auth_pb.ChangeSecretRequest(id=customer.id, new_secret=secret)
            await CALLS.call(ctx, "auth.change_secret", self._auth.change_secret(change))
            return False
        return True

    async def _delete_account(self, customer_id: str) -> None:
        """Undo an account creation; a failure is logged (the caller's error wins)."""
        try:
            await self._auth.delete(auth_pb.DeleteRequest(id=customer_id))
        except NotFound:
            return
        except M3OError as exc:
            _log.error(
                "signup.undo_failed",
                customer_id=customer_id,
                kind=type(exc).__name__,
                error_id=exc.id,
                detail=exc.detail,
            )
