"""The signup service's handler: ``signup.Signup``, every endpoint public but DeleteCustomer
(services only: admin's erasure).

The work is split by concern: ``verification.py`` (User, Verify), ``recovery.py``
(Recover, ResetPassword), ``tracking.py`` (Track, Waitlist). Calls to other services are
made outside database transactions (in the ``local`` profile they share the SQLite file,
whose writers queue behind one another).
"""

from __future__ import annotations

from m3o.runtime.auth import CallContext, verify_service
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.email_address import normalise_email
from m3o.runtime.errors import BadRequest
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto.client import AuthService
from m3o.services.customers.proto.client import CustomersService
from m3o.services.emails.proto.client import EmailsService
from m3o.services.signup import records
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.recovery import Recovery
from m3o.services.signup.settings import SignupSettings
from m3o.services.signup.tracking import Tracking
from m3o.services.signup.verification import Verification

__all__ = ["Signup"]

_log = get_logger(__name__)


class Signup:
    """Implements ``signup.Signup`` (see ``proto/signup.proto``)."""

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
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._verification = Verification(
            sessions=sessions,
            publisher=publisher,
            counters=counters,
            customers=customers,
            auth=auth,
            emails=emails,
            settings=settings,
            clock=clock,
        )
        self._recovery = Recovery(
            sessions=sessions,
            publisher=publisher,
            counters=counters,
            customers=customers,
            auth=auth,
            emails=emails,
            settings=settings,
            clock=clock,
        )
        self._tracking = Tracking(sessions=sessions, clock=clock)

    async def user(self, request: pb.UserRequest, ctx: CallContext) -> pb.UserResponse:
        return await self._verification.user(request, ctx)

    async def verify(self, request: pb.VerifyRequest, ctx: CallContext) -> pb.VerifyResponse:
        return await self._verification.verify(request, ctx)

    async def recover(self, request: pb.RecoverRequest, ctx: CallContext) -> pb.RecoverResponse:
        return await self._recovery.recover(request, ctx)

    async def reset_password(
        self, request: pb.ResetPasswordRequest, ctx: CallContext
    ) -> pb.ResetPasswordResponse:
        return await self._recovery.reset_password(request, ctx)

    async def track(self, request: pb.TrackRequest, ctx: CallContext) -> pb.TrackResponse:
        return await self._tracking.track(request, ctx)

    async def waitlist(self, request: pb.WaitlistRequest, ctx: CallContext) -> pb.WaitlistResponse:
        return await self._tracking.waitlist(request, ctx)

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_service(ctx)
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        email = normalise_email(request.email) if request.email.strip() else ""
        async with transaction(self._sessions) as session:
            gone = await records.delete_customer(session, customer_id, email)
        _log.info("signup.customer_deleted", customer_id=customer_id, rows=gone)
        return pb.DeleteCustomerResponse()

    async def purge_expired(self) -> None:
        """Delete expired verification codes and reset tokens (the daily retention cron)."""
        async with transaction(self._sessions) as session:
            gone_codes, gone_tokens = await records.purge_expired(session, self._clock())
        _log.info("signup.purged", verifications=gone_codes, resets=gone_tokens)
