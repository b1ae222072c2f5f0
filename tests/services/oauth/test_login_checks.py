"""GoogleLogin and GithubLogin: what is refused before anyone is logged in.

Forged, misdirected or expired states, denials, missing codes, failed exchanges and
unverified provider emails; each is refused before a customer is looked up or created.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from m3o.runtime.errors import BadRequest, Forbidden
from m3o.services.oauth.handler import CODE_NOT_FOUND, NO_VERIFIED_EMAIL, USER_DENIED
from m3o.services.oauth.providers import OAuthApp
from m3o.services.oauth.state import INVALID_STATE, STATE_EXPIRED
from services.oauth.fake_providers import GITHUB_CODE, GOOGLE_CODE
from services.oauth.support import (
    GITHUB_APP,
    GITHUB_TEST_APP,
    GOOGLE_APP,
    GOOGLE_TEST_APP,
    PROVIDERS,
    World,
    build_world,
    login,
)

ENDPOINTS = {"google": "oauth.googlelogin", "github": "oauth.githublogin"}


def token_requests(world: World, provider: str) -> list[dict[str, str]]:
    return getattr(world.providers, provider).token_requests  # type: ignore[no-any-return]


def nobody_touched(world: World) -> bool:
    """No customer was looked up or created and auth was not asked for anything."""
    return (
        world.customers.read.call_count == 0
        and world.customers.create.call_count == 0
        and world.auth.grant.call_count == 0
        and world.publisher.published == []
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tampered_state_is_forbidden_before_the_code_is_used(
    world: World, provider: str
) -> None:
    state = world.state.issue(provider)
    tampered = state[:-2] + ("xx" if not state.endswith("xx") else "yy")

    with pytest.raises(Forbidden) as caught:
        await login(world, provider, state=tampered)

    assert caught.value == Forbidden(ENDPOINTS[provider], INVALID_STATE)
    assert token_requests(world, provider) == []
    assert nobody_touched(world)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_missing_state_is_forbidden(world: World, provider: str) -> None:
    with pytest.raises(Forbidden):
        await login(world, provider, state="")
    assert token_requests(world, provider) == []


@pytest.mark.parametrize(("provider", "other"), [("google", "github"), ("github", "google")])
async def test_a_state_issued_for_the_other_provider_is_forbidden(
    world: World, provider: str, other: str
) -> None:
    with pytest.raises(Forbidden) as caught:
        await login(world, provider, state=world.state.issue(other))
    assert caught.value.detail == INVALID_STATE
    assert token_requests(world, provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_expired_state_is_forbidden(world: World, provider: str) -> None:
    state = world.state.issue(provider)
    world.clock.advance(timedelta(minutes=10, seconds=1))

    with pytest.raises(Forbidden) as caught:
        await login(world, provider, state=state)

    assert caught.value == Forbidden(ENDPOINTS[provider], STATE_EXPIRED)
    assert token_requests(world, provider) == []
    assert nobody_touched(world)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_state_just_inside_its_lifetime_still_logs_in(world: World, provider: str) -> None:
    state = world.state.issue(provider)
    world.clock.advance(timedelta(minutes=9, seconds=59))
    response = await login(world, provider, state=state)
    assert response.customerID


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("reason", ["user_denied", "access_denied"])
async def test_a_denied_permission_is_a_bad_request(
    world: World, provider: str, reason: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await login(world, provider, code="", error_reason=reason)
    assert caught.value == BadRequest(ENDPOINTS[provider], USER_DENIED)
    assert token_requests(world, provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_another_provider_error_is_a_bad_request(world: World, provider: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await login(world, provider, code="", error_reason="server_error")
    assert caught.value.detail == "authorization failed"
    assert token_requests(world, provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_missing_code_is_a_bad_request(world: World, provider: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await login(world, provider, code="")
    assert caught.value == BadRequest(ENDPOINTS[provider], CODE_NOT_FOUND)
    assert token_requests(world, provider) == []


@pytest.mark.parametrize(
    ("provider", "code", "app"),
    [("google", GOOGLE_CODE, GOOGLE_APP), ("github", GITHUB_CODE, GITHUB_APP)],
)
async def test_the_code_is_exchanged_with_the_client_credentials(
    world: World, provider: str, code: str, app: OAuthApp
) -> None:
    await login(world, provider)
    [sent] = token_requests(world, provider)
    assert sent == {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": app.redirect_url,
    }


@pytest.mark.parametrize(
    ("provider", "app"), [("google", GOOGLE_TEST_APP), ("github", GITHUB_TEST_APP)]
)
async def test_a_test_login_exchanges_the_code_as_the_test_client(
    world: World, provider: str, app: OAuthApp
) -> None:
    await login(world, provider, test=True)
    [sent] = token_requests(world, provider)
    assert sent["client_id"] == app.client_id
    assert sent["redirect_uri"] == app.redirect_url


@pytest.mark.parametrize(("provider", "title"), [("google", "Google"), ("github", "GitHub")])
async def test_a_code_the_provider_refuses_is_a_bad_request(
    world: World, provider: str, title: str
) -> None:
    # Google answers 400 invalid_grant; GitHub answers 200 with an "error" field.
    with pytest.raises(BadRequest) as caught:
        await login(world, provider, code="stale-or-forged-code")
    assert caught.value == BadRequest(
        ENDPOINTS[provider], f"Could not exchange the code with {title}"
    )
    assert nobody_touched(world)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_error_status_is_a_bad_request(world: World, provider: str) -> None:
    getattr(world.providers, provider).token_status = 503
    with pytest.raises(BadRequest):
        await login(world, provider)
    assert nobody_touched(world)


async def test_a_failing_google_userinfo_is_a_bad_request(world: World) -> None:
    world.providers.google.userinfo_status = 500
    with pytest.raises(BadRequest) as caught:
        await login(world, "google")
    assert caught.value == BadRequest("oauth.googlelogin", "Could not read the Google account")
    assert nobody_touched(world)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectTimeout("timed out"), httpx.ReadTimeout("timed out")],
    ids=["connect", "read"],
)
async def test_a_provider_that_does_not_answer_in_time_is_a_bad_request(
    provider: str, failure: Exception
) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise failure

    world = build_world(http=httpx.AsyncClient(transport=httpx.MockTransport(hang)))
    try:
        with pytest.raises(BadRequest) as caught:
            await login(world, provider)
    finally:
        await world.http.aclose()
    assert "did not answer in time" in caught.value.detail
    assert nobody_touched(world)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unreachable_provider_is_a_bad_request(provider: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    world = build_world(http=httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    try:
        with pytest.raises(BadRequest):
            await login(world, provider)
    finally:
        await world.http.aclose()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_answer_that_is_not_json_is_a_bad_request(provider: str) -> None:
    def garble(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    world = build_world(http=httpx.AsyncClient(transport=httpx.MockTransport(garble)))
    try:
        with pytest.raises(BadRequest):
            await login(world, provider)
    finally:
        await world.http.aclose()


@pytest.mark.parametrize("verified", [False, "false", None])
async def test_an_unverified_google_email_is_forbidden(world: World, verified: object) -> None:
    world.providers.google.email_verified = verified
    with pytest.raises(Forbidden) as caught:
        await login(world, "google")
    assert caught.value == Forbidden("oauth.googlelogin", NO_VERIFIED_EMAIL)
    assert nobody_touched(world)


async def test_a_google_account_without_email_is_forbidden(world: World) -> None:
    world.providers.google.email = ""
    with pytest.raises(Forbidden):
        await login(world, "google")
    assert nobody_touched(world)


@pytest.mark.parametrize(
    "emails",
    [
        pytest.param(
            [
                {"email": "ann@example.com", "primary": True, "verified": False},
                {"email": "ann@work.example", "primary": False, "verified": True},
            ],
            id="primary-unverified-secondary-verified",
        ),
        pytest.param(
            [{"email": "ann@example.com", "primary": False, "verified": True}],
            id="verified-but-not-primary",
        ),
        pytest.param([], id="no-emails"),
    ],
)
async def test_github_without_a_primary_verified_email_is_forbidden(
    world: World, emails: list[dict[str, object]]
) -> None:
    world.providers.github.emails = emails
    with pytest.raises(Forbidden) as caught:
        await login(world, "github")
    assert caught.value == Forbidden("oauth.githublogin", NO_VERIFIED_EMAIL)
    assert nobody_touched(world)


async def test_github_uses_the_primary_verified_email(world: World) -> None:
    world.providers.github.emails = [
        {"email": "old@example.com", "primary": False, "verified": True},
        {"email": "ann@example.com", "primary": True, "verified": True},
    ]
    await login(world, "github")
    [read] = world.customers.read.calls
    assert read.email == "ann@example.com"
