"""The service definition, its config and the JSON the platform API speaks."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.auth import CallContext
from m3o.runtime.config import build_config
from m3o.runtime.errors import Forbidden
from m3o.runtime.rpc.jsonmap import json_to_message, message_to_dict
from m3o.runtime.service import ServiceParts
from m3o.runtime.store import SessionFactory
from m3o.services.oauth.handler import Oauth
from m3o.services.oauth.proto import oauth_pb2 as pb
from m3o.services.oauth.proto.client import SPEC, OauthClient
from m3o.services.oauth.providers import OAuthApp, ProviderSettings
from m3o.services.oauth.service import definition, provider_settings, state_key
from m3o.services.oauth.state import StateSigner
from support.services import dependencies, serve

CONFIG: dict[str, Any] = {
    "oauth": {
        "state_secret": "shared-by-every-process",
        "google": {
            "client_id": "g-id",
            "client_secret": "g-secret",
            "redirect_url": "https://m3o.test/google",
            "test_client_id": "g-test-id",
            "test_client_secret": "g-test-secret",
            "test_redirect_url": "http://localhost:3000/google-login",
        },
        "github": {
            "client_id": "h-id",
            "client_secret": "h-secret",
            "redirect_url": "https://m3o.test/github",
            "test": True,
            "test_client_id": "h-test-id",
            "test_client_secret": "h-test-secret",
            "test_redirect_url": "http://localhost:3000/github-login",
        },
    }
}


async def build(
    engine: AsyncEngine, sessions: SessionFactory, document: dict[str, Any]
) -> ServiceParts:
    return await definition.build(dependencies("oauth", engine, sessions, document))


def params(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def test_definition_serves_the_urls_from_the_configured_clients(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "oauth"
    assert definition.specs == (SPEC,)
    assert definition.metadata is None
    parts = await build(engine, sessions, CONFIG)
    try:
        [handler] = parts.handlers
        assert handler.spec is SPEC
        assert isinstance(handler.implementation, Oauth)
        oauth = OauthClient(serve(SPEC, handler.implementation))

        google = await oauth.google_url(pb.GoogleURLRequest())
        google_test = await oauth.google_url(pb.GoogleURLRequest(test=True))
        github = await oauth.github_url(pb.GithubURLRequest())

        assert google.url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
        assert params(google.url)["client_id"] == "g-id"
        assert params(google.url)["redirect_uri"] == "https://m3o.test/google"
        assert params(google_test.url)["client_id"] == "g-test-id"
        assert params(google_test.url)["redirect_uri"] == "http://localhost:3000/google-login"
        # github.test forces the test client.
        assert github.url.startswith("https://github.com/login/oauth/authorize?")
        assert params(github.url)["client_id"] == "h-test-id"
        assert params(github.url)["redirect_uri"] == "http://localhost:3000/github-login"
        with pytest.raises(Forbidden):
            await oauth.github_login(pb.GithubLoginRequest(state="forged", code="c"))
    finally:
        for stop in parts.on_stop:
            await stop()


async def test_a_state_from_one_process_verifies_in_another_sharing_the_secret(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    parts = await build(engine, sessions, CONFIG)
    try:
        implementation = parts.handlers[0].implementation
        assert isinstance(implementation, Oauth)
        ctx = CallContext(service="oauth", method="GoogleURL")
        url = (await implementation.google_url(pb.GoogleURLRequest(), ctx)).url
    finally:
        for stop in parts.on_stop:
            await stop()
    other_process = StateSigner(state_key(build_config(CONFIG, {})))
    other_process.check(params(url)["state"], "google", "oauth.googlelogin")


def test_without_a_state_secret_each_process_has_its_own_random_key() -> None:
    config = build_config({}, {})
    first, second = state_key(config), state_key(config)
    assert len(first) == 32
    assert first != second
    assert state_key(build_config(CONFIG, {})) == b"shared-by-every-process"


def test_provider_settings_come_from_the_config() -> None:
    config = build_config(CONFIG, {})
    assert provider_settings(config, "google") == ProviderSettings(
        app=OAuthApp("g-id", "g-secret", "https://m3o.test/google"),
        test_app=OAuthApp("g-test-id", "g-test-secret", "http://localhost:3000/google-login"),
        always_test=False,
    )
    assert provider_settings(config, "github").always_test


def test_login_response_keeps_the_reference_json_names() -> None:
    response = pb.LoginResponse(
        authToken=pb.AuthToken(access_token="a", refresh_token="r", created=1, expiry=2),
        customerID="c1",
        namespace="micro",
        isSignup=True,
    )
    assert message_to_dict(response) == {
        "authToken": {"access_token": "a", "refresh_token": "r", "created": 1, "expiry": 2},
        "customerID": "c1",
        "namespace": "micro",
        "isSignup": True,
    }


def test_login_request_reads_the_reference_json_names() -> None:
    request = json_to_message(
        b'{"state": "s", "code": "c", "errorReason": "user_denied", "test": true}',
        pb.GoogleLoginRequest,
        "oauth.googlelogin",
    )
    assert request == pb.GoogleLoginRequest(
        state="s", code="c", errorReason="user_denied", test=True
    )
