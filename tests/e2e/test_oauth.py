"""OAuth login and signup over HTTP against `m3o serve`, with a fake Google and GitHub
served on a real port: provider URLs come from the environment, as an operator sets them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from e2e.serving import CODE_SENTENCE, Platform, serving
from services.oauth.fake_providers import GITHUB_CODE, GOOGLE_CODE, served_providers
from services.oauth.fake_providers import ServedProviders as Providers

pytestmark = pytest.mark.e2e


@pytest.fixture
def providers() -> Iterator[Providers]:
    with served_providers() as served:
        yield served


@pytest.fixture
def platform(tmp_path: Path, providers: Providers) -> Iterator[Platform]:
    env = {
        "M3O_OAUTH__STATE_SECRET": "an e2e state secret long enough to sign with",
        "M3O_OAUTH__GOOGLE__CLIENT_ID": "google-client",
        "M3O_OAUTH__GOOGLE__CLIENT_SECRET": "google-secret",
        "M3O_OAUTH__GOOGLE__REDIRECT_URL": "http://console.test/google-login",
        "M3O_OAUTH__GOOGLE__TOKEN_URL": f"{providers.url}/google/token",
        "M3O_OAUTH__GOOGLE__USERINFO_URL": f"{providers.url}/google/userinfo",
        "M3O_OAUTH__GITHUB__CLIENT_ID": "github-client",
        "M3O_OAUTH__GITHUB__CLIENT_SECRET": "github-secret",
        "M3O_OAUTH__GITHUB__REDIRECT_URL": "http://console.test/github-login",
        "M3O_OAUTH__GITHUB__TOKEN_URL": f"{providers.url}/github/login/oauth/access_token",
        "M3O_OAUTH__GITHUB__EMAILS_URL": f"{providers.url}/github/user/emails",
    }
    yield from serving(tmp_path, env)


def _state(platform: Platform, provider: str) -> str:
    answer = platform.post(f"/oauth/{provider}URL", {})
    assert answer.status_code == 200, answer.text
    query = parse_qs(urlsplit(answer.json()["url"]).query)
    assert query["client_id"] == [f"{provider}-client"]
    return query["state"][0]


def _login(platform: Platform, provider: str, state: str, code: str) -> httpx.Response:
    return platform.post(f"/oauth/{provider}Login", {"state": state, "code": code})


def _signed_up_by_email(platform: Platform, email: str, password: str) -> None:
    assert platform.post("/signup/user", {"email": email}).status_code == 200
    code = platform.latest_email(email, "verification", CODE_SENTENCE)
    verified = platform.post("/signup/verify", {"email": email, "token": code, "secret": password})
    assert verified.status_code == 200, verified.text


def test_google_signs_up_then_logs_in(platform: Platform, providers: Providers) -> None:
    providers.fakes.google.email = "Google.User@Example.com"
    signup = _login(platform, "google", _state(platform, "google"), GOOGLE_CODE)
    assert signup.status_code == 200, signup.text
    first: dict[str, Any] = signup.json()
    assert first["isSignup"] is True
    assert first["namespace"] == "micro"

    token = first["authToken"]["access_token"]
    read = platform.post("/customers/read", {"id": first["customerID"]}, token)
    assert read.status_code == 200, read.text
    assert read.json()["customer"]["email"] == "google.user@example.com"
    assert read.json()["customer"]["status"] == "verified"

    login = _login(platform, "google", _state(platform, "google"), GOOGLE_CODE)
    assert login.status_code == 200, login.text
    assert login.json()["customerID"] == first["customerID"]
    assert "isSignup" not in login.json()  # false is omitted, as M3O's JSON does
    exchanged = providers.fakes.google.token_requests[-1]
    assert exchanged["client_id"] == "google-client"
    assert exchanged["redirect_uri"] == "http://console.test/google-login"


def test_a_github_login_leaves_the_password_unchanged(
    platform: Platform, providers: Providers
) -> None:
    email = "ann@example.com"  # the fake GitHub's primary verified address
    _signed_up_by_email(platform, email, "my own password")

    login = _login(platform, "github", _state(platform, "github"), GITHUB_CODE)
    assert login.status_code == 200, login.text
    assert "isSignup" not in login.json()

    again = platform.post("/customers/login", {"email": email, "password": "my own password"})
    assert again.status_code == 200, again.text


def test_tampered_foreign_and_missing_states_are_refused(
    platform: Platform, providers: Providers
) -> None:
    state = _state(platform, "google")
    tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    refused = _login(platform, "google", tampered, GOOGLE_CODE)
    assert refused.status_code == 403, refused.text
    assert refused.json()["id"] == "oauth.googlelogin"

    foreign = _login(platform, "github", state, GITHUB_CODE)
    assert foreign.status_code == 403, foreign.text
    assert _login(platform, "google", "", GOOGLE_CODE).status_code == 403
    # No state was good, so the code was never exchanged.
    assert providers.fakes.google.token_requests == []
    assert providers.fakes.github.token_requests == []


def test_an_unverified_provider_email_is_refused(platform: Platform, providers: Providers) -> None:
    providers.fakes.google.email = "unverified@example.com"
    providers.fakes.google.email_verified = False
    refused = _login(platform, "google", _state(platform, "google"), GOOGLE_CODE)
    assert refused.status_code == 403, refused.text

    providers.fakes.github.emails = [
        {"email": "gh@example.com", "primary": True, "verified": False, "visibility": None}
    ]
    refused = _login(platform, "github", _state(platform, "github"), GITHUB_CODE)
    assert refused.status_code == 403, refused.text

    admin = platform.admin_token()
    for email in ("unverified@example.com", "gh@example.com"):
        missing = platform.post("/customers/read", {"email": email}, admin)
        assert missing.status_code == 404, missing.text
