"""Wiring of the oauth service.

Reads config sections ``oauth`` (clients, state key and lifetime, provider timeout),
``signup`` (allow and block lists) and ``auth`` (customer token lifetime). The provider
endpoints are the real Google and GitHub ones (see the README).
"""

from __future__ import annotations

import secrets
from typing import Literal

import httpx

from m3o.runtime.config import Config
from m3o.runtime.email_address import SignupPolicy
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.auth.proto.client import AuthClient
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.oauth.github import GithubEndpoints, GithubProvider
from m3o.services.oauth.google import GoogleEndpoints, GoogleProvider
from m3o.services.oauth.handler import Oauth
from m3o.services.oauth.proto.client import SPEC
from m3o.services.oauth.providers import OAuthApp, ProviderSettings
from m3o.services.oauth.signin import SignIn
from m3o.services.oauth.state import StateSigner

__all__ = ["definition", "provider_settings", "state_key"]

_log = get_logger(__name__)


def provider_settings(config: Config, provider: Literal["google", "github"]) -> ProviderSettings:
    """The clients config ``oauth.<provider>`` describes."""
    section = config.oauth.google if provider == "google" else config.oauth.github
    return ProviderSettings(
        app=OAuthApp(
            section.client_id, section.client_secret.get_secret_value(), section.redirect_url
        ),
        test_app=OAuthApp(
            section.test_client_id,
            section.test_client_secret.get_secret_value(),
            section.test_redirect_url,
        ),
        always_test=section.test,
    )


def state_key(config: Config) -> bytes:
    """The key that signs states: ``oauth.state_secret``, else one for this process only."""
    configured = config.oauth.state_secret.get_secret_value()
    if configured:
        return configured.encode("utf-8")
    _log.warning(
        "oauth.state_secret_missing",
        detail="oauth.state_secret is empty: states only verify in the process that issued them",
    )
    return secrets.token_bytes(32)


async def _build(deps: Dependencies) -> ServiceParts:
    config = deps.config
    http = httpx.AsyncClient(timeout=config.oauth.timeout.total_seconds())
    handler = Oauth(
        google=GoogleProvider(
            http,
            GoogleEndpoints(
                authorize_url=config.oauth.google.authorize_url,
                token_url=config.oauth.google.token_url,
                userinfo_url=config.oauth.google.userinfo_url,
            ),
        ),
        google_settings=provider_settings(config, "google"),
        github=GithubProvider(
            http,
            GithubEndpoints(
                authorize_url=config.oauth.github.authorize_url,
                token_url=config.oauth.github.token_url,
                emails_url=config.oauth.github.emails_url,
            ),
        ),
        github_settings=provider_settings(config, "github"),
        state=StateSigner(state_key(config), ttl=config.oauth.state_ttl),
        signin=SignIn(
            customers=deps.clients.get(CustomersClient),
            auth=deps.clients.get(AuthClient),
            publisher=deps.publisher,
            policy=SignupPolicy(
                block_list=config.signup.block_list, allow_list=config.signup.allow_list
            ),
            token_ttl=config.auth.customer_token_ttl,
        ),
    )
    return ServiceParts(handlers=[Handler(SPEC, handler)], on_stop=[http.aclose])


definition = ServiceDefinition(
    name="oauth",
    build=_build,
    specs=(SPEC,),
)
