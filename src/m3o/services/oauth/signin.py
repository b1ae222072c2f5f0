"""From a provider-verified email to a customer session: login, signup or refusal.

- Unknown email: create the customer, create its auth account (a random secret nobody
  knows: the customer may set a password later with a reset), mark it verified, grant
  tokens; ``isSignup`` and a Signup event.
- Unverified customer (an email signup was started, never finished): the provider has
  just verified the email, so the signup is completed the same way.
- Verified or active customer: tokens for its account, a Login event. The account's
  secret is never touched: tokens come from auth's Grant, which needs no password.
- Banned customer (or any other status): Forbidden.

Signups (new and completed) must pass the signup allow and block lists; logging into an
existing account does not, as with email and password. Every step is safe to repeat, so a
login that failed half way succeeds when tried again: an auth account that already exists
counts as created, verifying a verified customer changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from m3o.events.customers import TOPIC, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.auth import ISSUER, CallContext
from m3o.runtime.email_address import InvalidEmail, SignupPolicy, parse_email
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    M3OError,
    NotFound,
)
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import INTERNAL_DETAIL
from m3o.runtime.rpc.calls import Calls
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService
from m3o.services.oauth.proto import oauth_pb2 as pb

__all__ = ["ACCOUNT_REFUSED", "SIGNUP_REFUSED", "SignIn"]

_log = get_logger(__name__)
_calls = Calls("oauth.call_failed")

SIGNUP_REFUSED = "Signups are not allowed for this email"
ACCOUNT_REFUSED = "This account may not log in"
_MAY_LOGIN = frozenset({"verified", "active"})
_UNVERIFIED = "unverified"


class SignIn:
    """Logs in, or signs up, the customer with a provider-verified email."""

    def __init__(
        self,
        *,
        customers: CustomersService,
        auth: AuthService,
        publisher: Publisher,
        policy: SignupPolicy,
        token_ttl: timedelta,
    ) -> None:
        self._customers = customers
        self._auth = auth
        self._publisher = publisher
        self._policy = policy
        self._token_ttl = token_ttl

    async def sign_in(self, ctx: CallContext, email: str, method: str) -> pb.LoginResponse:
        """The session of the customer ``email``; ``method`` is the provider's name."""
        given = email
        try:
            email = parse_email(email)
        except InvalidEmail as exc:
            # The provider vouched for it, but it is not an address the platform accepts.
            _log.info("oauth.login_refused", method=method, reason="invalid_email")
            raise BadRequest(ctx.endpoint, exc.detail()) from None
        customer = await self._find(ctx, email)
        if customer is None:
            self._check_policy(ctx, email, given)
            customer = await self._create(ctx, email)
        if customer.status in _MAY_LOGIN:
            issued = await self._grant(ctx, customer)
            await self._publish(EventType.EventTypeLogin, customer, method)
            _log.info("oauth.login", method=method, customer_id=customer.id)
            return _response(issued, customer.id, is_signup=False)
        if customer.status == _UNVERIFIED:
            return await self._complete_signup(ctx, customer, method)
        _log.info("oauth.login_refused", method=method, customer_id=customer.id)
        raise Forbidden(ctx.endpoint, ACCOUNT_REFUSED)

    async def _complete_signup(
        self, ctx: CallContext, customer: customers_pb.Customer, method: str
    ) -> pb.LoginResponse:
        self._check_policy(ctx, customer.email)
        await self._ensure_account(ctx, customer)
        await _calls.call(
            ctx,
            "customers.mark_verified",
            self._customers.mark_verified(customers_pb.MarkVerifiedRequest(id=customer.id)),
        )
        verified = customers_pb.Customer()
        verified.CopyFrom(customer)
        verified.status = "verified"
        issued = await self._grant(ctx, verified)
        await self._publish(EventType.EventTypeSignup, verified, method)
        _log.info("oauth.signup", method=method, customer_id=customer.id)
        return _response(issued, customer.id, is_signup=True)

    def _check_policy(self, ctx: CallContext, email: str, given: str = "") -> None:
        if not self._policy.may_sign_up(email, given=given):
            _log.info("oauth.signup_refused", reason="signup_lists")
            raise Forbidden(ctx.endpoint, SIGNUP_REFUSED)

    async def _find(self, ctx: CallContext, email: str) -> customers_pb.Customer | None:
        try:
            found = await self._customers.read(customers_pb.ReadRequest(email=email))
        except NotFound:
            return None
        except M3OError as exc:
            raise _calls.failure(ctx, "customers.read", exc) from None
        return found.customer

    async def _create(self, ctx: CallContext, email: str) -> customers_pb.Customer:
        try:
            return (await self._customers.create(customers_pb.CreateRequest(email=email))).customer
        except Conflict:
            pass  # verified meanwhile (a concurrent login or email signup): read it below
        except BadRequest as exc:
            raise BadRequest(ctx.endpoint, exc.detail) from None
        except M3OError as exc:
            raise _calls.failure(ctx, "customers.create", exc) from None
        customer = await self._find(ctx, email)
        if customer is None:
            _log.error("oauth.customer_vanished", endpoint=ctx.endpoint, call="customers.create")
            raise Internal(ctx.endpoint, INTERNAL_DETAIL)
        return customer

    async def _ensure_account(self, ctx: CallContext, customer: customers_pb.Customer) -> None:
        request = auth_pb.GenerateRequest(
            id=customer.id,
            type="customer",
            scopes=["customer"],
            name=customer.email,
            # Nobody knows it: the customer logs in with the provider, or resets it.
            secret=secrets.token_urlsafe(32),
        )
        try:
            await self._auth.generate(request)
        except Conflict:
            return  # created by an earlier attempt: never replaced, its secret kept
        except M3OError as exc:
            raise _calls.failure(ctx, "auth.generate", exc) from None

    async def _grant(
        self, ctx: CallContext, customer: customers_pb.Customer
    ) -> auth_pb.TokenResponse:
        request = auth_pb.GrantRequest(
            id=customer.id, token_expiry=int(self._token_ttl.total_seconds())
        )
        try:
            return await self._auth.grant(request)
        except NotFound:
            # A verified customer without an auth account (verified by an admin, never
            # logged in): it gets one now, with a secret nobody knows.
            pass
        except Forbidden:
            _log.info("oauth.login_refused", reason="account_blocked", customer_id=customer.id)
            raise Forbidden(ctx.endpoint, ACCOUNT_REFUSED) from None
        except M3OError as exc:
            raise _calls.failure(ctx, "auth.grant", exc) from None
        await self._ensure_account(ctx, customer)
        return await _calls.call(ctx, "auth.grant", self._auth.grant(request))

    async def _publish(
        self, event_type: EventType.ValueType, customer: customers_pb.Customer, method: str
    ) -> None:
        event = events_pb.Event(
            type=event_type,
            customer=events_pb.Customer(
                id=customer.id,
                status=customer.status,
                created=customer.created,
                email=customer.email,
                updated=customer.updated,
                name=customer.name,
                meta=dict(customer.meta),
            ),
            caller_id=customer.id,
        )
        if event_type == EventType.EventTypeSignup:
            event.signup.method = method
        else:
            event.login.method = method
        # This service has no tables: the event is written in a transaction of its own.
        await self._publisher.publish(TOPIC, event)


def _response(
    issued: auth_pb.TokenResponse, customer_id: str, *, is_signup: bool
) -> pb.LoginResponse:
    return pb.LoginResponse(
        authToken=pb.AuthToken(
            access_token=issued.token.access_token,
            refresh_token=issued.token.refresh_token,
            created=issued.token.created,
            expiry=issued.token.expiry,
        ),
        customerID=customer_id,
        namespace=issued.account.issuer or ISSUER,
        isSignup=is_signup,
    )
