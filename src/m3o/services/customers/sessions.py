"""Customers' sessions: Login (password or refresh token) and Logout, on top of auth.

Auth checks the credentials and issues the tokens; this service adds that only a verified
or active customer may log in, and publishes Login, TokenRefresh and Logout. Whatever the
reason a login is refused (wrong password, unknown email, unverified, banned or deleted
customer), the caller gets one identical error, so the answer never tells whether an email
is registered.
"""

from __future__ import annotations

from datetime import timedelta

from m3o.events.customers import TOPIC, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.auth import ISSUER, CallContext, is_customer, verify_customer
from m3o.runtime.email_address import normalise_email
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import UNAVAILABLE_DETAIL
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.customers import records
from m3o.services.customers.authcalls import AUTH_CALLS
from m3o.services.customers.events import customer_event
from m3o.services.customers.proto import customers_pb2 as pb
from m3o.services.customers.records import CustomerRecord, Status

__all__ = ["CLIENT_ADDRESS_HEADER", "LOGIN_FAILED", "REFRESH_FAILED", "Logins"]

_log = get_logger(__name__)

CLIENT_ADDRESS_HEADER = "x-client-address"
"""Call metadata with the end user's address, passed on so auth can slow down guessing."""
LOGIN_FAILED = "Invalid email or password"
REFRESH_FAILED = "Invalid or expired refresh token"
_MAY_LOGIN = frozenset({Status.VERIFIED, Status.ACTIVE})
# What auth answers to bad credentials; all become the one generic refusal.
_REFUSED = (BadRequest, Unauthorized, Forbidden, NotFound)


class Logins:
    """Login and Logout of ``customers.Customers``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        auth: AuthService,
        token_ttl: timedelta,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._auth = auth
        self._token_ttl = token_ttl

    async def login(self, request: pb.LoginRequest, ctx: CallContext) -> pb.LoginResponse:
        if request.refresh_token:
            issued = await self._token(
                ctx, auth_pb.TokenRequest(refresh_token=request.refresh_token), REFRESH_FAILED
            )
            return await self._session_started(
                ctx, issued, REFRESH_FAILED, EventType.EventTypeTokenRefresh
            )
        email = normalise_email(request.email)
        if not email or not request.password:
            raise BadRequest(ctx.endpoint, "Missing email or password")
        credentials = auth_pb.TokenRequest(
            name=email,
            secret=request.password,
            token_expiry=int(self._token_ttl.total_seconds()),
            client_address=ctx.metadata.get(CLIENT_ADDRESS_HEADER, ""),
        )
        issued = await self._token(ctx, credentials, LOGIN_FAILED)
        return await self._session_started(
            ctx, issued, LOGIN_FAILED, EventType.EventTypeLogin, email=email
        )

    async def _token(
        self, ctx: CallContext, request: auth_pb.TokenRequest, refusal: str
    ) -> auth_pb.TokenResponse:
        try:
            return await self._auth.token(request)
        except _REFUSED as exc:
            _log.info("customers.login_refused", reason=type(exc).__name__)
            raise Unauthorized(ctx.endpoint, refusal) from None
        except TooManyRequests as exc:
            raise TooManyRequests(ctx.endpoint, exc.detail) from None
        except Unavailable as exc:
            # Auth, or its Redis, is down for now: the caller may retry; not a bug of ours.
            _log.warning("customers.login_unavailable", error_id=exc.id, detail=exc.detail)
            raise Unavailable(ctx.endpoint, UNAVAILABLE_DETAIL) from None
        except M3OError as exc:
            raise AUTH_CALLS.failure(ctx, "token", exc) from None

    async def _session_started(
        self,
        ctx: CallContext,
        issued: auth_pb.TokenResponse,
        refusal: str,
        event_type: EventType.ValueType,
        *,
        email: str = "",
    ) -> pb.LoginResponse:
        """Check the customer may have the session auth issued, then publish the event."""
        account_id = issued.account.id
        async with transaction(self._sessions) as session:
            if email:
                record = await records.find(session, email=email)
            else:
                record = await records.find(session, customer_id=account_id)
            if record is None or not _may_login(record, account_id):
                _log.info("customers.login_refused", reason="customer_may_not_login")
                raise Unauthorized(ctx.endpoint, refusal)
            login = events_pb.Login(method="email") if email else None
            event = customer_event(event_type, record.to_event(), record.id, login=login)
            await self._publisher.publish(TOPIC, event, session=session)
        return pb.LoginResponse(
            token=pb.Token(
                access_token=issued.token.access_token,
                refresh_token=issued.token.refresh_token,
                created=issued.token.created,
                expiry=issued.token.expiry,
            ),
            namespace=ISSUER,
            customer_id=record.id,
        )

    async def logout(self, request: pb.LogoutRequest, ctx: CallContext) -> pb.LogoutResponse:
        account = verify_customer(ctx)
        if not is_customer(account):
            raise Forbidden(ctx.endpoint, "Forbidden")
        authorization = ctx.metadata.get("authorization", "")
        if not authorization:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        try:
            # The caller's own token, so auth ends the caller's session, never ours.
            await self._auth.revoke(
                auth_pb.RevokeRequest(refresh_token=request.refresh_token),
                metadata={"authorization": authorization},
            )
        except (*_REFUSED, TooManyRequests) as exc:
            raise type(exc)(ctx.endpoint, exc.detail) from None
        except M3OError as exc:
            raise AUTH_CALLS.failure(ctx, "revoke", exc) from None
        async with transaction(self._sessions) as session:
            record = await records.find(session, customer_id=account.id)
            customer = record.to_event() if record else events_pb.Customer(id=account.id)
            event = customer_event(EventType.EventTypeLogout, customer, account.id)
            await self._publisher.publish(TOPIC, event, session=session)
        return pb.LogoutResponse()


def _may_login(record: CustomerRecord, account_id: str) -> bool:
    """The customer may log in and owns the auth account the tokens are for."""
    return record.status in _MAY_LOGIN and (not account_id or account_id == record.id)
