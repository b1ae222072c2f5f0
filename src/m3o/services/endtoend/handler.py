"""The endtoend service's RPCs.

Roles: ``RunCheck`` is for admins and services; ``Check`` is public (uptime monitors call
``/endtoend/check``); ``Mailin`` only from the HTTP front's ``gateway`` account, which
forwards cloudmailin's posts untouched, so the shared secret is checked here, where the
config holds it, and compared in constant time. A Mailin with a wrong or missing secret is
Unauthorized and stores nothing; any other mail is answered with success (an error would
bounce it), and only a verification email to the test customer stores its code.
"""

from __future__ import annotations

import hmac

from m3o.runtime.auth import CallContext, is_service, verify_admin
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import Forbidden, Unauthorized
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.endtoend import records
from m3o.services.endtoend.mail import Refusal, parse_inbound, verification_code
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from m3o.services.endtoend.runner import Runner
from m3o.services.endtoend.settings import EndtoendSettings

__all__ = ["MAILIN_CALLER", "NO_RECENT_CHECK", "Endtoend"]

_log = get_logger(__name__)

MAILIN_CALLER = "gateway"
"""The service account that forwards inbound mail: the HTTP front's."""
NO_RECENT_CHECK = "No recent successful check"


class Endtoend:
    """Implements ``endtoend.Endtoend`` (see ``proto/endtoend.proto``)."""

    def __init__(
        self,
        *,
        settings: EndtoendSettings,
        sessions: SessionFactory,
        runner: Runner,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._runner = runner
        self._clock = clock

    async def run_check(self, request: pb.RunCheckRequest, ctx: CallContext) -> pb.RunCheckResponse:
        verify_admin(ctx)
        started, run_id = await self._runner.start()
        return pb.RunCheckResponse(started=started, run_id=run_id)

    async def check(self, request: pb.CheckRequest, ctx: CallContext) -> pb.CheckResponse:
        async with self._sessions() as session:
            last = await records.latest_result(session)
        running = await self._runner.running()
        if last is None:
            return pb.CheckResponse(healthy=False, detail=NO_RECENT_CHECK, running=running)
        fresh = self._clock() - last.finished <= self._settings.max_age
        healthy = last.passed and fresh
        detail = ""
        if not healthy:
            detail = last.error if not last.passed and last.error else NO_RECENT_CHECK
        return pb.CheckResponse(
            result=pb.Result(
                run_id=last.run_id,
                started=int(last.started.timestamp()),
                time=int(last.finished.timestamp()),
                passed=last.passed,
                error=last.error,
            ),
            healthy=healthy,
            detail=detail,
            running=running,
        )

    async def mailin(self, request: pb.MailinRequest, ctx: CallContext) -> pb.MailinResponse:
        account = ctx.account
        if account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not is_service(account) or account.id != MAILIN_CALLER:
            raise Forbidden(ctx.endpoint, "Forbidden")
        expected = self._settings.mailin_secret
        if not expected:
            _log.warning("endtoend.mailin_refused", reason="endtoend.mailin_secret is not set")
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not hmac.compare_digest(request.secret.encode(), expected.encode()):
            _log.warning("endtoend.mailin_refused", reason="wrong or missing secret")
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if request.too_large:
            _log.info("endtoend.mailin_ignored", reason="body too large")
            return pb.MailinResponse()
        mail = parse_inbound(request.body)
        found = (
            mail
            if isinstance(mail, Refusal)
            else verification_code(
                mail,
                email=self._settings.email,
                sender=self._settings.sender,
                subject=self._settings.subject,
            )
        )
        if isinstance(found, Refusal):
            _log.info("endtoend.mailin_ignored", reason=found.reason)
            return pb.MailinResponse()
        async with transaction(self._sessions) as session:
            await records.add_code(session, found, self._clock())
        _log.info("endtoend.mailin_stored")
        return pb.MailinResponse()
