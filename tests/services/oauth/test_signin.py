"""From a verified provider email to a session: signup, login, refusals, events, logs."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from m3o.events.customers import EventType
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    NotFound,
    Unavailable,
)
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.oauth.proto import oauth_pb2 as pb
from m3o.services.oauth.signin import ACCOUNT_REFUSED, SIGNUP_REFUSED
from services.oauth.fake_providers import (
    GITHUB_ACCESS_TOKEN,
    GITHUB_CODE,
    GOOGLE_ACCESS_TOKEN,
    GOOGLE_CODE,
)
from services.oauth.support import (
    ACCESS,
    CUSTOMER_TTL,
    PROVIDERS,
    REFRESH,
    SECRETS,
    World,
    build_world,
    login,
)

EXPECTED_TOKEN = pb.AuthToken(
    access_token=ACCESS, refresh_token=REFRESH, created=1_704_067_200, expiry=1_706_659_200
)


def grant_for(customer_id: str) -> auth_pb.GrantRequest:
    return auth_pb.GrantRequest(id=customer_id, token_expiry=int(CUSTOMER_TTL.total_seconds()))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_email_signs_up_a_verified_customer(world: World, provider: str) -> None:
    response = await login(world, provider)

    customer = world.book.by_email["ann@example.com"]
    assert customer.status == "verified"
    assert response == pb.LoginResponse(
        authToken=EXPECTED_TOKEN, customerID=customer.id, namespace="micro", isSignup=True
    )
    assert world.customers.create.calls == [customers_pb.CreateRequest(email="ann@example.com")]
    [generated] = world.auth.generate.calls
    assert generated.id == customer.id
    assert generated.type == "customer"
    assert list(generated.scopes) == ["customer"]
    assert generated.name == "ann@example.com"
    assert len(generated.secret) >= 32
    assert world.customers.mark_verified.calls == [customers_pb.MarkVerifiedRequest(id=customer.id)]
    assert world.auth.grant.calls == [grant_for(customer.id)]
    assert world.auth.change_secret.call_count == 0
    assert world.auth.token.call_count == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signup_publishes_signup_with_the_method_and_email(
    world: World, provider: str
) -> None:
    response = await login(world, provider)

    [event] = world.events()
    assert event.type == EventType.EventTypeSignup
    assert event.signup.method == provider
    assert event.customer.email == "ann@example.com"
    assert event.customer.id == response.customerID
    assert event.customer.status == "verified"
    assert event.caller_id == response.customerID


async def test_each_signup_gets_its_own_random_secret(world: World) -> None:
    await login(world, "google")
    world.providers.google.email = "bob@example.com"
    await login(world, "google")
    first, second = world.auth.generate.calls
    assert first.secret != second.secret


async def test_the_provider_email_is_normalised(world: World) -> None:
    world.providers.google.email = "  Ann@Example.COM "
    await login(world, "google")
    assert world.customers.read.calls[0].email == "ann@example.com"
    assert "ann@example.com" in world.book.by_email


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", ["verified", "active"])
async def test_a_known_customer_logs_in_and_keeps_its_password(
    world: World, provider: str, status: str
) -> None:
    ann = world.book.add("ann@example.com", status)

    response = await login(world, provider)

    assert response == pb.LoginResponse(
        authToken=EXPECTED_TOKEN, customerID=ann.id, namespace="micro", isSignup=False
    )
    assert world.auth.grant.calls == [grant_for(ann.id)]
    # The password is unchanged: nothing that sets a secret was called.
    assert world.password_untouched()
    assert world.auth.token.call_count == 0
    assert world.customers.create.call_count == 0
    assert world.customers.mark_verified.call_count == 0
    assert world.book.by_email["ann@example.com"].status == status


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_login_publishes_login_with_the_method(world: World, provider: str) -> None:
    ann = world.book.add("ann@example.com", "verified")

    await login(world, provider)

    [event] = world.events()
    assert event.type == EventType.EventTypeLogin
    assert event.login.method == provider
    assert event.customer.id == ann.id
    assert event.customer.email == ann.email
    assert event.customer.meta["generated_name"] == "Storm"
    assert event.caller_id == ann.id


async def test_logging_in_twice_never_changes_the_password(world: World) -> None:
    world.book.add("ann@example.com", "verified")
    await login(world, "google")
    await login(world, "github")
    assert world.password_untouched()
    assert world.auth.grant.call_count == 2


async def test_signing_up_then_logging_in_creates_the_account_once(world: World) -> None:
    first = await login(world, "google")
    second = await login(world, "github")
    assert first.isSignup
    assert not second.isSignup
    assert second.customerID == first.customerID
    assert world.auth.generate.call_count == 1
    assert world.auth.change_secret.call_count == 0
    assert [e.type for e in world.events()] == [EventType.EventTypeSignup, EventType.EventTypeLogin]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unverified_customer_completes_its_signup(world: World, provider: str) -> None:
    # Ann started an email signup but never entered the code; the provider verified her.
    ann = world.book.add("ann@example.com", "unverified")

    response = await login(world, provider)

    assert response.isSignup
    assert response.customerID == ann.id
    assert world.customers.create.call_count == 0
    assert world.auth.generate.calls[0].id == ann.id
    assert world.customers.mark_verified.calls == [customers_pb.MarkVerifiedRequest(id=ann.id)]
    assert world.book.by_email["ann@example.com"].status == "verified"
    [event] = world.events()
    assert event.type == EventType.EventTypeSignup
    assert event.signup.method == provider


async def test_an_existing_auth_account_is_kept_when_completing_a_signup(world: World) -> None:
    ann = world.book.add("ann@example.com", "unverified")
    world.auth.generate.raises(Conflict("auth.generate", "Account already exists"))

    response = await login(world, "google")

    assert response.isSignup
    assert world.auth.grant.calls == [grant_for(ann.id)]
    assert world.auth.change_secret.call_count == 0


async def test_a_verified_customer_without_an_auth_account_gets_one(world: World) -> None:
    ann = world.book.add("ann@example.com", "verified")
    world.auth.grant.returns_once(NotFound("auth.grant", "Account not found"))

    response = await login(world, "github")

    assert not response.isSignup
    assert response.authToken == EXPECTED_TOKEN
    [generated] = world.auth.generate.calls
    assert generated.id == ann.id
    assert world.auth.grant.call_count == 2


async def test_a_concurrently_verified_email_logs_in(world: World) -> None:
    # Between oauth's read and its create, the email was verified by another signup.
    world.customers.read.returns_once(NotFound("customers.read.notfound", "Customer not found"))
    ann = world.book.add("ann@example.com", "verified")
    world.customers.create.returns_once(
        Conflict("customers.create.exists", "A customer with this email exists")
    )

    response = await login(world, "google")

    assert response.customerID == ann.id
    assert not response.isSignup
    assert world.password_untouched()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_banned_customer_is_forbidden(world: World, provider: str) -> None:
    world.book.add("ann@example.com", "banned")

    with pytest.raises(Forbidden) as caught:
        await login(world, provider)

    assert caught.value.detail == ACCOUNT_REFUSED
    assert world.auth.grant.call_count == 0
    assert world.password_untouched()
    assert world.customers.mark_verified.call_count == 0
    assert world.events() == []


async def test_a_blocked_auth_account_is_forbidden(world: World) -> None:
    world.book.add("ann@example.com", "verified")
    world.auth.grant.returns_once(Forbidden("auth.grant", "Account is blocked"))
    with pytest.raises(Forbidden) as caught:
        await login(world, "google")
    assert caught.value == Forbidden("oauth.googlelogin", ACCOUNT_REFUSED)
    assert world.events() == []


@pytest.mark.parametrize(
    ("block_list", "allow_list", "email"),
    [
        pytest.param([r".*@spam\.example"], [], "eve@spam.example", id="blocked"),
        pytest.param([], [r".*@m3o\.com"], "ann@example.com", id="not-allowed"),
        pytest.param([r"eve@m3o\.com"], [r".*@m3o\.com"], "eve@m3o.com", id="allowed-but-blocked"),
    ],
)
async def test_a_signup_refused_by_the_lists_is_forbidden(
    block_list: list[str], allow_list: list[str], email: str
) -> None:
    world = build_world(block_list=block_list, allow_list=allow_list)
    world.providers.google.email = email
    try:
        with pytest.raises(Forbidden) as caught:
            await login(world, "google")
    finally:
        await world.http.aclose()
    assert caught.value == Forbidden("oauth.googlelogin", SIGNUP_REFUSED)
    assert world.customers.create.call_count == 0
    assert world.auth.generate.call_count == 0
    assert world.events() == []


@pytest.mark.parametrize(
    ("email", "block", "allow"),
    [
        # a pattern is found anywhere in the address (Go's MatchString)
        ("eve@spam.example", ["@spam.example"], []),
        # "@m3o\.com$" must not let "m3o.com.evil.example" in
        ("eve@m3o.com.evil.example", [], [r"@m3o\.com$"]),
    ],
)
async def test_signups_the_lists_refuse_are_forbidden(
    email: str, block: list[str], allow: list[str]
) -> None:
    world = build_world(block_list=block, allow_list=allow)
    world.providers.github.emails = [{"email": email, "primary": True, "verified": True}]
    try:
        with pytest.raises(Forbidden):
            await login(world, "github")
    finally:
        await world.http.aclose()


async def test_an_allowed_email_signs_up() -> None:
    world = build_world(block_list=[r".*@spam\.example"], allow_list=[r".*@example\.com"])
    try:
        response = await login(world, "google")
    finally:
        await world.http.aclose()
    assert response.isSignup


async def test_completing_an_email_signup_obeys_the_lists() -> None:
    world = build_world(block_list=[r"ann@example\.com"])
    world.book.add("ann@example.com", "unverified")
    try:
        with pytest.raises(Forbidden):
            await login(world, "google")
    finally:
        await world.http.aclose()
    assert world.customers.mark_verified.call_count == 0


async def test_an_existing_customer_logs_in_whatever_the_signup_lists_say() -> None:
    # The lists decide who may sign up, as with email signup; password logins ignore them too.
    world = build_world(block_list=[r"ann@example\.com"])
    world.book.add("ann@example.com", "verified")
    try:
        response = await login(world, "google")
    finally:
        await world.http.aclose()
    assert not response.isSignup


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        ("read", Unavailable("customers.read", "Service customers is not available")),
        ("create", Unavailable("customers.create", "Service unavailable")),
        ("mark_verified", Unavailable("customers.markverified", "Service unavailable")),
    ],
)
async def test_a_failing_customers_call_is_unavailable(
    world: World, failing: str, error: Exception
) -> None:
    getattr(world.customers, failing).returns_once(error)
    with pytest.raises(Unavailable) as caught:
        await login(world, "google")
    assert caught.value == Unavailable("oauth.googlelogin", "Service unavailable")


@pytest.mark.parametrize("failing", ["generate", "grant"])
async def test_a_failing_auth_call_is_an_internal_error(world: World, failing: str) -> None:
    getattr(world.auth, failing).returns_once(Internal(f"auth.{failing}", "database is down"))
    with pytest.raises(Internal) as caught:
        await login(world, "github")
    assert caught.value == Internal("oauth.githublogin", "Internal server error")
    assert world.events() == []


async def test_an_email_customers_refuses_is_a_bad_request(world: World) -> None:
    world.customers.create.returns_once(BadRequest("customers.create", "Invalid email"))
    with pytest.raises(BadRequest) as caught:
        await login(world, "google")
    assert caught.value == BadRequest("oauth.googlelogin", "Invalid email")


async def test_codes_tokens_and_secrets_are_never_logged(world: World) -> None:
    world.book.add("bob@example.com", "verified")
    with capture_logs() as logs:
        await login(world, "google")  # a signup
        world.providers.github.emails = [
            {"email": "bob@example.com", "primary": True, "verified": True}
        ]
        await login(world, "github")  # a login
        with pytest.raises(BadRequest):
            await login(world, "google", code="stale-code-that-fails-to-exchange")
        world.providers.google.token_status = 500
        with pytest.raises(BadRequest):
            await login(world, "google")
        world.auth.grant.returns_once(Internal("auth.grant", "database is down"))
        with pytest.raises(Internal):
            await login(world, "github")

    logged = repr(logs)
    assert logs, "the logins are logged"
    for secret in (
        GOOGLE_CODE,
        GITHUB_CODE,
        "stale-code-that-fails-to-exchange",
        GOOGLE_ACCESS_TOKEN,
        GITHUB_ACCESS_TOKEN,
        ACCESS,
        REFRESH,
        *SECRETS,
        *(generated.secret for generated in world.auth.generate.calls),
    ):
        assert secret not in logged
