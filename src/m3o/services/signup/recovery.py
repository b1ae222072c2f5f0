"""Recover and ResetPassword: a verified customer sets a new password through the inbox.

Recover answers the same whether or not the address belongs to a customer who may log in,
so it tells nobody which addresses are registered; only such customers get an email. At
most one recovery email per address per ``recovery_interval``, counted in the counter
store so the limit holds across processes (and for unknown addresses too, for the same
reason). The token is random, stored only as its hash, valid ``reset_token_ttl`` and single
use; a newer token replaces unused older ones. The token is never logged.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import orjson

from m3o.events.customers import TOPIC, EventType
from m3o.runtime.auth import CallContext
from m3o.runtime.clock import Clock
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, TooManyRequests
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.customers.proto.client import CustomersService
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.emails.proto.client import EmailsService
from m3o.services.signup import codes, records
from m3o.services.signup.calls import CALLS
from m3o.services.signup.customer import MAY_LOG_IN, customer_event, read_customer
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.records import ResetTokenRecord
from m3o.services.signup.settings import SignupSettings, check_email, check_password

__all__ = ["RECOVERY_KEY_PREFIX", "RESET_EXPIRED", "RESET_INVALID", "RESET_USED", "Recovery"]

_log = get_logger(__name__)

RECOVERY_KEY_PREFIX = "signup:recover:"
TOO_SOON = "A recovery email was sent to this address recently; try again in a minute"
RESET_INVALID = "The reset token is invalid"
RESET_EXPIRED = "The reset token has expired; ask for a new one"
RESET_USED = "The reset token has been used already; ask for a new one"


class Recovery:
    """Recover and ResetPassword of ``signup.Signup``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        counters: CounterStore,
        customers: CustomersService,
        auth: AuthService,
        emails: EmailsService,
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

    # -- Recover ----------------------------------------------------------------------------

    async def recover(self, request: pb.RecoverRequest, ctx: CallContext) -> pb.RecoverResponse:
        email = check_email(ctx, request.email)
        key = RECOVERY_KEY_PREFIX + email
        if not await self._counters.set_if_absent(key, "1", ttl=self._settings.recovery_interval):
            raise TooManyRequests(ctx.endpoint, TOO_SOON)
        try:
            await self._send_token(ctx, email)
        except BaseException:
            # Nothing reached the customer: let them ask again at once.
            await self._counters.delete(key)
            raise
        return pb.RecoverResponse()

    async def _send_token(self, ctx: CallContext, email: str) -> None:
        customer = await read_customer(ctx, self._customers, email=email)
        if customer is None or customer.status not in MAY_LOG_IN:
            _log.info("signup.recovery_skipped")
            return
        token = codes.new_reset_token()
        now = self._clock()
        record = ResetTokenRecord(
            id=str(uuid.uuid4()),
            token_hash=codes.hash_reset_token(token),
            email=email,
            customer_id=customer.id,
            created=now,
            expires=now + self._settings.reset_token_ttl,
        )
        async with transaction(self._sessions) as session:
            await records.insert_reset_token(session, record)
            event = customer_event(EventType.EventTypePasswordReset, customer)
            await self._publisher.publish(TOPIC, event, session=session)
        send = emails_pb.SendRequest(
            to=email,
            template_id=self._settings.templates.recovery,
            template_data=orjson.dumps(self._template_data(email, token)).decode(),
            idempotency_key=f"recovery:{record.id}",
        )
        setattr(send, "from", self._settings.email_from)  # "from" is a Python keyword
        await CALLS.call(ctx, "emails.send", self._emails.send(send))
        _log.info("signup.recovery_sent", customer_id=customer.id, reset_id=record.id)

    def _template_data(self, email: str, token: str) -> dict[str, str]:
        data = {"token": token, "email": email}
        if self._settings.reset_page:
            query = urlencode({"email": email, "token": token})
            data["reset_url"] = f"{self._settings.reset_page}?{query}"
        return data

    # -- ResetPassword ----------------------------------------------------------------------

    async def reset_password(
        self, request: pb.ResetPasswordRequest, ctx: CallContext
    ) -> pb.ResetPasswordResponse:
        email = check_email(ctx, request.email)
        if not request.token.strip():
            raise BadRequest(ctx.endpoint, "Missing token")
        check_password(ctx, request.password, allow_empty=False)
        record = await self._usable_token(ctx, email, request.token)
        customer = await read_customer(ctx, self._customers, customer_id=record.customer_id)
        if customer is None or customer.status not in MAY_LOG_IN:
            raise BadRequest(ctx.endpoint, RESET_INVALID)
        async with transaction(self._sessions) as session:
            taken = await records.set_reset_token_used(session, record.id, self._clock())
        if not taken:
            raise BadRequest(ctx.endpoint, RESET_USED)
        try:
            change = auth_pb.ChangeSecretRequest(id=customer.id, new_secret=request.password)
            await CALLS.call(ctx, "auth.change_secret", self._auth.change_secret(change))
            revoke = auth_pb.RevokeSessionsRequest(id=customer.id)
            await CALLS.call(ctx, "auth.revoke_sessions", self._auth.revoke_sessions(revoke))
        except BaseException:
            # The password may not have changed: the token stays usable for a retry.
            async with transaction(self._sessions) as session:
                await records.set_reset_token_used(session, record.id, None)
            raise
        _log.info("signup.password_reset", customer_id=customer.id, reset_id=record.id)
        return pb.ResetPasswordResponse()

    async def _usable_token(self, ctx: CallContext, email: str, token: str) -> ResetTokenRecord:
        async with self._sessions() as session:
            record = await records.find_reset_token(session, codes.hash_reset_token(token))
        if record is None or record.email != email:
            raise BadRequest(ctx.endpoint, RESET_INVALID)
        if record.used is not None:
            raise BadRequest(ctx.endpoint, RESET_USED)
        if self._clock() >= record.expires:
            raise BadRequest(ctx.endpoint, RESET_EXPIRED)
        return record
