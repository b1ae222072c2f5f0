"""Login and Logout: what auth is asked, what the caller gets, what is published and logged."""

from __future__ import annotations

import pytest
import structlog

from m3o.events.customers import EventType
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    Internal,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.customers.proto import customers_pb2 as pb
from services.customers.support import ADMIN, World, call, customer_account

PASSWORD = "correct horse battery staple"
ACCESS = "eyJhbGciOiJFZERTQSJ9.access.signature"
REFRESH = "refresh-6a1f0c9e2b7d4e8f"


def issued(customer_id: str) -> auth_pb.TokenResponse:
    return auth_pb.TokenResponse(
        token=auth_pb.Token(
            access_token=ACCESS, refresh_token=REFRESH, created=1_700_000_000, expiry=1_702_592_000
        ),
        account=auth_pb.Account(id=customer_id, type="customer", scopes=["customer"]),
    )


async def test_login_with_email_and_password_returns_tokens_and_publishes_login(
    world: World,
) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.returns(issued(ann.id))
    ctx = call("Login", None, {"x-client-address": "203.0.113.7"})

    response = await world.handler.login(
        pb.LoginRequest(email=" Ann@Example.com", password=PASSWORD), ctx
    )

    assert response.customer_id == ann.id
    assert response.namespace == "micro"
    assert response.token == pb.Token(
        access_token=ACCESS, refresh_token=REFRESH, created=1_700_000_000, expiry=1_702_592_000
    )
    [asked] = world.auth.token.calls
    assert asked == auth_pb.TokenRequest(
        name="ann@example.com",
        secret=PASSWORD,
        token_expiry=30 * 24 * 3600,
        client_address="203.0.113.7",
    )
    [event] = world.events()
    assert event.type == EventType.EventTypeLogin
    assert event.login.method == "email"
    assert event.customer.id == ann.id
    assert event.customer.status == "verified"
    assert event.caller_id == ann.id
    world.assert_all_in_transaction()


async def test_active_customer_logs_in(world: World) -> None:
    ann = await world.create("ann@example.com", "active")
    world.auth.token.returns(issued(ann.id))
    response = await world.handler.login(
        pb.LoginRequest(email=ann.email, password=PASSWORD), call("Login", None)
    )
    assert response.customer_id == ann.id
    assert world.auth.token.calls[0].client_address == ""


async def test_login_with_refresh_token_refreshes_and_publishes_token_refresh(
    world: World,
) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.returns(issued(ann.id))
    response = await world.handler.login(
        pb.LoginRequest(refresh_token="old-refresh", email="ignored@example.com"),
        call("Login", None),
    )
    assert response.customer_id == ann.id
    assert response.token.refresh_token == REFRESH
    assert world.auth.token.calls == [auth_pb.TokenRequest(refresh_token="old-refresh")]
    [event] = world.events()
    assert event.type == EventType.EventTypeTokenRefresh
    assert not event.HasField("login")
    assert event.customer.id == ann.id
    world.assert_all_in_transaction()


async def _login_error(world: World, email: str) -> M3OError:
    with pytest.raises(Unauthorized) as caught:
        await world.handler.login(
            pb.LoginRequest(email=email, password=PASSWORD), call("Login", None)
        )
    return caught.value


async def test_refused_logins_are_indistinguishable(world: World) -> None:
    """Wrong password, unknown email, unverified, banned or deleted: one identical error."""
    verified = await world.create("ver@example.com", "verified")
    await world.create("unv@example.com")
    await world.create("ban@example.com", "banned")
    await world.create("del@example.com", "deleted")

    world.auth.token.returns_once(Unauthorized("auth.token", "Invalid credentials"))
    errors = [await _login_error(world, verified.email)]
    # Even if auth issued tokens, the customer's status decides.
    world.auth.token.returns(issued(""))
    for email in ("nobody@example.com", "unv@example.com", "ban@example.com", "del@example.com"):
        errors.append(await _login_error(world, email))

    assert {repr(error) for error in errors} == {
        repr(Unauthorized("customers.login", "Invalid email or password"))
    }
    assert world.events() == []


@pytest.mark.parametrize(
    "refusal",
    [
        BadRequest("auth.token", "Missing secret"),
        Forbidden("auth.token", "Account blocked"),
        NotFound("auth.token", "Account not found"),
    ],
)
async def test_any_refusal_by_auth_is_the_generic_error(world: World, refusal: M3OError) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.raises(refusal)
    assert await _login_error(world, ann.email) == Unauthorized(
        "customers.login", "Invalid email or password"
    )


async def test_login_tokens_of_another_account_are_refused(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.returns(issued("someone-else"))
    await _login_error(world, ann.email)
    assert world.events() == []


@pytest.mark.parametrize("status", ["banned", "deleted"])
async def test_refresh_of_a_customer_who_may_not_log_in_is_refused(
    world: World, status: str
) -> None:
    ann = await world.create("ann@example.com", status)
    world.auth.token.returns(issued(ann.id))
    with pytest.raises(Unauthorized) as caught:
        await world.handler.login(pb.LoginRequest(refresh_token="r"), call("Login", None))
    assert caught.value == Unauthorized("customers.login", "Invalid or expired refresh token")
    world.auth.token.raises(Unauthorized("auth.token", "Invalid refresh token"))
    with pytest.raises(Unauthorized) as again:
        await world.handler.login(pb.LoginRequest(refresh_token="r"), call("Login", None))
    assert again.value == caught.value
    assert world.events() == []


async def test_login_slowed_down_by_auth_passes_the_429_through(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.raises(TooManyRequests("auth.token", "Too many attempts, retry later"))
    with pytest.raises(TooManyRequests) as caught:
        await world.handler.login(
            pb.LoginRequest(email=ann.email, password=PASSWORD), call("Login", None)
        )
    assert caught.value.to_dict() == {
        "id": "customers.login",
        "code": 429,
        "detail": "Too many attempts, retry later",
        "status": "Too Many Requests",
    }


async def test_login_when_auth_is_down_is_unavailable(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.raises(Unavailable("counters", "Counter store unavailable"))
    with pytest.raises(Unavailable) as caught:
        await world.handler.login(
            pb.LoginRequest(email=ann.email, password=PASSWORD), call("Login", None)
        )
    assert caught.value.to_dict() == {
        "id": "customers.login",
        "code": 503,
        "detail": "Service unavailable",
        "status": "Service Unavailable",
    }
    assert world.events() == []


async def test_login_when_auth_fails_otherwise_is_internal(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.token.raises(Internal("auth.token", "Internal server error"))
    with pytest.raises(Internal) as caught:
        await world.handler.login(
            pb.LoginRequest(email=ann.email, password=PASSWORD), call("Login", None)
        )
    assert caught.value == Internal("customers.login", "Internal server error")


@pytest.mark.parametrize(
    "request_", [pb.LoginRequest(email="ann@example.com"), pb.LoginRequest(password=PASSWORD)]
)
async def test_login_without_email_or_password_is_bad_request(
    world: World, request_: pb.LoginRequest
) -> None:
    with pytest.raises(BadRequest):
        await world.handler.login(request_, call("Login", None))
    assert world.auth.token.call_count == 0


async def test_secrets_are_never_logged(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    request = pb.LoginRequest(email=ann.email, password=PASSWORD)
    with structlog.testing.capture_logs() as logs:
        world.auth.token.returns(issued(ann.id))
        world.auth.token.returns_once(
            issued(ann.id),
            Unauthorized("auth.token", "Invalid credentials"),
            Unavailable("auth.token", "down"),
        )
        await world.handler.login(request, call("Login", None))
        for failure in (Unauthorized, Unavailable):
            with pytest.raises(failure):
                await world.handler.login(request, call("Login", None))
        await world.handler.login(pb.LoginRequest(refresh_token=REFRESH), call("Login", None))
        await world.handler.logout(
            pb.LogoutRequest(refresh_token=REFRESH),
            call("Logout", customer_account(ann), {"authorization": f"Bearer {ACCESS}"}),
        )
    assert logs  # the failures were logged...
    text = repr(logs)
    for secret in (PASSWORD, REFRESH, ACCESS):
        assert secret not in text  # ...without a secret


async def test_logout_revokes_the_callers_session_and_publishes_logout(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    authorization = f"Bearer {ACCESS}"
    ctx = call("Logout", customer_account(ann), {"authorization": authorization})
    await world.handler.logout(pb.LogoutRequest(refresh_token=REFRESH), ctx)

    [revoke] = world.auth.revoke.recorded
    assert revoke.request == auth_pb.RevokeRequest(refresh_token=REFRESH)
    assert revoke.metadata == {"authorization": authorization}
    [event] = world.events()
    assert event.type == EventType.EventTypeLogout
    assert event.customer.id == ann.id
    assert event.customer.email == ann.email
    assert event.caller_id == ann.id
    world.assert_all_in_transaction()


async def test_logout_is_for_customers(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    with pytest.raises(Unauthorized):
        await world.handler.logout(pb.LogoutRequest(), call("Logout", None))
    with pytest.raises(Forbidden):
        await world.handler.logout(
            pb.LogoutRequest(), call("Logout", ADMIN, {"authorization": "Bearer a"})
        )
    with pytest.raises(Unauthorized):  # no token to forward: never revoke ours instead
        await world.handler.logout(pb.LogoutRequest(), call("Logout", customer_account(ann)))
    assert world.auth.revoke.call_count == 0
    assert world.events() == []


async def test_logout_refused_by_auth_passes_the_refusal_through(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.revoke.raises(Forbidden("auth.revoke", "Not your session"))
    with pytest.raises(Forbidden) as caught:
        await world.handler.logout(
            pb.LogoutRequest(refresh_token="someone-elses"),
            call("Logout", customer_account(ann), {"authorization": "Bearer a"}),
        )
    assert caught.value == Forbidden("customers.logout", "Not your session")
    assert world.events() == []
