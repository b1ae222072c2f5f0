"""Helpers of the oauth tests: the handler wired to fake providers, customers and auth."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from m3o.events.customers import TOPIC, Event
from m3o.runtime.auth import CallContext
from m3o.runtime.email_address import SignupPolicy
from m3o.runtime.errors import NotFound
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.oauth.github import GithubProvider
from m3o.services.oauth.google import GoogleProvider
from m3o.services.oauth.handler import Oauth
from m3o.services.oauth.proto import oauth_pb2 as pb
from m3o.services.oauth.providers import OAuthApp, ProviderSettings
from m3o.services.oauth.signin import SignIn
from m3o.services.oauth.state import StateSigner
from services.oauth.fake_providers import (
    GITHUB_CODE,
    GITHUB_ENDPOINTS,
    GOOGLE_CODE,
    GOOGLE_ENDPOINTS,
    FakeProviders,
)
from support.services import MovableClock

START = datetime(2024, 1, 1, tzinfo=UTC)
STATE_KEY = b"test-state-key-0123456789abcdef!!"
CUSTOMER_TTL = timedelta(days=30)
ACCESS = "eyJhbGciOiJFZERTQSJ9.customer-access.signature"
REFRESH = "refresh-6a1f0c9e2b7d4e8f-customer"

GOOGLE_APP = OAuthApp("google-client", "google-client-secret-value", "https://m3o.test/google")
GOOGLE_TEST_APP = OAuthApp("google-test", "google-test-secret-value", "http://localhost:3000/g")
GITHUB_APP = OAuthApp("github-client", "github-client-secret-value", "https://m3o.test/github")
GITHUB_TEST_APP = OAuthApp("github-test", "github-test-secret-value", "http://localhost:3000/h")
SECRETS = (
    GOOGLE_APP.client_secret,
    GOOGLE_TEST_APP.client_secret,
    GITHUB_APP.client_secret,
    GITHUB_TEST_APP.client_secret,
)


def call(method: str) -> CallContext:
    """An anonymous call, as a browser makes it."""
    return CallContext(service="oauth", method=method)


@dataclass
class CustomerBook:
    """The customers service's behaviour, enough for oauth: read, create, mark verified."""

    by_email: dict[str, customers_pb.Customer] = field(default_factory=dict)

    def add(self, email: str, status: str) -> customers_pb.Customer:
        customer = customers_pb.Customer(
            id=str(uuid.uuid4()),
            email=email,
            status=status,
            created=1_700_000_000,
            updated=1_700_000_000,
            meta={"generated_name": "Storm"},
        )
        self.by_email[email] = customer
        return customer

    async def read(self, request: customers_pb.ReadRequest) -> customers_pb.ReadResponse:
        found = self.by_email.get(request.email)
        if found is None or found.status == "deleted":
            raise NotFound("customers.read.notfound", "Customer not found")
        return customers_pb.ReadResponse(customer=found)

    async def create(self, request: customers_pb.CreateRequest) -> customers_pb.CreateResponse:
        found = self.by_email.get(request.email)
        if found is not None and found.status == "unverified":
            return customers_pb.CreateResponse(customer=found)
        assert found is None or found.status == "deleted", "oauth created an existing customer"
        return customers_pb.CreateResponse(customer=self.add(request.email, "unverified"))

    async def mark_verified(
        self, request: customers_pb.MarkVerifiedRequest
    ) -> customers_pb.MarkVerifiedResponse:
        for customer in self.by_email.values():
            if customer.id == request.id and customer.status == "unverified":
                customer.status = "verified"
        return customers_pb.MarkVerifiedResponse()


def issued(customer_id: str) -> auth_pb.TokenResponse:
    return auth_pb.TokenResponse(
        token=auth_pb.Token(
            access_token=ACCESS, refresh_token=REFRESH, created=1_704_067_200, expiry=1_706_659_200
        ),
        account=auth_pb.Account(
            id=customer_id, type="customer", issuer="micro", scopes=["customer"]
        ),
    )


@dataclass
class World:
    handler: Oauth
    providers: FakeProviders
    book: CustomerBook
    customers: FakeCustomersClient
    auth: FakeAuthClient
    publisher: FakePublisher
    clock: MovableClock
    state: StateSigner
    http: httpx.AsyncClient

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        return [event for event in found if isinstance(event, Event)]

    def password_untouched(self) -> bool:
        """No call that sets or replaces an account's secret was made."""
        return self.auth.change_secret.call_count == 0 and self.auth.generate.call_count == 0


def build_world(
    *,
    http: httpx.AsyncClient | None = None,
    block_list: Sequence[str] = (),
    allow_list: Sequence[str] = (),
    providers: FakeProviders | None = None,
    google_settings: ProviderSettings | None = None,
    github_settings: ProviderSettings | None = None,
) -> World:
    providers = providers or FakeProviders()
    client = http or httpx.AsyncClient(transport=httpx.ASGITransport(app=providers.app()))
    book = CustomerBook()
    customers = FakeCustomersClient()
    customers.read.calls_through(book.read)
    customers.create.calls_through(book.create)
    customers.mark_verified.calls_through(book.mark_verified)
    auth = FakeAuthClient()

    async def grant(request: auth_pb.GrantRequest) -> auth_pb.TokenResponse:
        return issued(request.id)

    auth.grant.calls_through(grant)
    publisher = FakePublisher()
    clock = MovableClock(START)
    state = StateSigner(STATE_KEY, clock=clock)
    handler = Oauth(
        google=GoogleProvider(client, GOOGLE_ENDPOINTS),
        google_settings=google_settings or ProviderSettings(GOOGLE_APP, GOOGLE_TEST_APP),
        github=GithubProvider(client, GITHUB_ENDPOINTS),
        github_settings=github_settings or ProviderSettings(GITHUB_APP, GITHUB_TEST_APP),
        state=state,
        signin=SignIn(
            customers=customers,
            auth=auth,
            publisher=publisher,
            policy=SignupPolicy(block_list=block_list, allow_list=allow_list),
            token_ttl=CUSTOMER_TTL,
        ),
    )
    return World(handler, providers, book, customers, auth, publisher, clock, state, client)


PROVIDERS = ("google", "github")


async def login(
    world: World,
    provider: str,
    *,
    code: str | None = None,
    state: str | None = None,
    error_reason: str = "",
    test: bool = False,
) -> pb.LoginResponse:
    """What the front end sends back after the provider redirected the browser to it."""
    state = world.state.issue(provider) if state is None else state
    if provider == "google":
        return await world.handler.google_login(
            pb.GoogleLoginRequest(
                state=state,
                code=GOOGLE_CODE if code is None else code,
                errorReason=error_reason,
                test=test,
            ),
            call("GoogleLogin"),
        )
    return await world.handler.github_login(
        pb.GithubLoginRequest(
            state=state,
            code=GITHUB_CODE if code is None else code,
            errorReason=error_reason,
            test=test,
        ),
        call("GithubLogin"),
    )
