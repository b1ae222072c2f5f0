"""GoogleURL and GithubURL: the authorization URLs the browser is sent to."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from m3o.runtime.errors import Unavailable
from m3o.services.oauth.proto import oauth_pb2 as pb
from m3o.services.oauth.providers import OAuthApp, ProviderSettings
from services.oauth.fake_providers import GITHUB_ENDPOINTS, GOOGLE_CODE, GOOGLE_ENDPOINTS
from services.oauth.support import (
    GITHUB_APP,
    GITHUB_TEST_APP,
    GOOGLE_APP,
    GOOGLE_TEST_APP,
    World,
    build_world,
    call,
)


def query(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values())
    return {key: values[0] for key, values in parsed.items()}


def base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def test_google_url_asks_for_a_code_and_the_email_with_a_signed_state(world: World) -> None:
    response = await world.handler.google_url(pb.GoogleURLRequest(), call("GoogleURL"))

    assert base(response.url) == GOOGLE_ENDPOINTS.authorize_url
    params = query(response.url)
    assert params == {
        "client_id": GOOGLE_APP.client_id,
        "redirect_uri": GOOGLE_APP.redirect_url,
        "response_type": "code",
        "scope": "https://www.googleapis.com/auth/userinfo.email",
        "state": params["state"],
        "access_type": "online",
    }
    world.state.check(params["state"], "google", "oauth.googlelogin")
    assert GOOGLE_APP.client_secret not in response.url


async def test_github_url_asks_for_a_code_and_user_email_with_a_signed_state(world: World) -> None:
    response = await world.handler.github_url(pb.GithubURLRequest(), call("GithubURL"))

    assert base(response.url) == GITHUB_ENDPOINTS.authorize_url
    params = query(response.url)
    assert params == {
        "client_id": GITHUB_APP.client_id,
        "redirect_uri": GITHUB_APP.redirect_url,
        "response_type": "code",
        "scope": "user:email",
        "state": params["state"],
    }
    world.state.check(params["state"], "github", "oauth.githublogin")
    assert GITHUB_APP.client_secret not in response.url


async def test_test_flag_selects_the_test_clients(world: World) -> None:
    google = await world.handler.google_url(pb.GoogleURLRequest(test=True), call("GoogleURL"))
    github = await world.handler.github_url(pb.GithubURLRequest(test=True), call("GithubURL"))

    assert query(google.url)["client_id"] == GOOGLE_TEST_APP.client_id
    assert query(google.url)["redirect_uri"] == GOOGLE_TEST_APP.redirect_url
    assert query(github.url)["client_id"] == GITHUB_TEST_APP.client_id
    assert query(github.url)["redirect_uri"] == GITHUB_TEST_APP.redirect_url


async def test_each_url_carries_a_new_state(world: World) -> None:
    first = await world.handler.google_url(pb.GoogleURLRequest(), call("GoogleURL"))
    second = await world.handler.google_url(pb.GoogleURLRequest(), call("GoogleURL"))
    assert query(first.url)["state"] != query(second.url)["state"]


def test_always_test_setting_uses_the_test_client_whatever_the_request() -> None:
    settings = ProviderSettings(GOOGLE_APP, GOOGLE_TEST_APP, always_test=True)
    assert settings.select(False) == GOOGLE_TEST_APP
    assert ProviderSettings(GOOGLE_APP, GOOGLE_TEST_APP).select(False) == GOOGLE_APP


@pytest.mark.parametrize("missing", ["client_id", "client_secret", "redirect_url"])
async def test_an_unconfigured_provider_is_unavailable(missing: str) -> None:
    parts = {
        "client_id": "id",
        "client_secret": "secret",
        "redirect_url": "https://m3o.test/cb",
        missing: "",
    }
    unconfigured = ProviderSettings(OAuthApp(**parts), OAuthApp(**parts))
    world = build_world(google_settings=unconfigured, github_settings=unconfigured)
    try:
        with pytest.raises(Unavailable) as caught:
            await world.handler.github_url(pb.GithubURLRequest(), call("GithubURL"))
        assert caught.value == Unavailable("oauth.githuburl", "GitHub login is not configured")
        with pytest.raises(Unavailable):
            await world.handler.google_login(
                pb.GoogleLoginRequest(state=world.state.issue("google"), code=GOOGLE_CODE),
                call("GoogleLogin"),
            )
        assert world.providers.google.token_requests == []
    finally:
        await world.http.aclose()
