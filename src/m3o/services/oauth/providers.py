"""What every provider has in common: the client it logs in as, its failures, the calls.

A provider (``google.py``, ``github.py``) builds its authorization URL and turns an
authorization code into the email address it has verified for the account. Its HTTP calls
go through the ``httpx.AsyncClient`` it is given (the service opens it with the configured
timeout; tests give one whose transport is a fake provider). Failures are
:class:`ProviderError` (the provider could not be used: a bad code, an error status, a
timeout, an answer we cannot read) or :class:`NoVerifiedEmail`; their messages are safe to
return to the caller. Codes, tokens and response bodies are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from m3o.runtime.logging import get_logger

__all__ = [
    "NoVerifiedEmail",
    "OAuthApp",
    "Provider",
    "ProviderError",
    "ProviderSettings",
    "exchange_code",
    "fetch_json",
    "title",
]

_log = get_logger(__name__)

_TITLES = {"google": "Google", "github": "GitHub"}
_ACCEPT_JSON = {"Accept": "application/json"}


def title(provider: str) -> str:
    """How users know the provider: ``github`` -> ``GitHub``."""
    return _TITLES.get(provider, provider.capitalize())


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """The OAuth client registered with a provider."""

    client_id: str
    client_secret: str
    redirect_url: str

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret and self.redirect_url)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """A provider's normal and test clients; ``always_test`` forces the test one."""

    app: OAuthApp
    test_app: OAuthApp
    always_test: bool = False

    def select(self, test: bool) -> OAuthApp:
        return self.test_app if test or self.always_test else self.app


class ProviderError(Exception):
    """The provider could not be used; the message says so without details."""


class NoVerifiedEmail(Exception):
    """The account has no email address the provider marks verified."""


class Provider(Protocol):
    """One OAuth provider."""

    @property
    def name(self) -> str:
        """``google`` or ``github``: the state's provider and the events' method."""
        ...

    def authorization_url(self, app: OAuthApp, state: str) -> str:
        """Where to send the browser to ask the user's permission."""
        ...

    async def verified_email(self, app: OAuthApp, code: str) -> str:
        """The verified email of the account that granted ``code``."""
        ...


async def exchange_code(
    http: httpx.AsyncClient, provider: str, token_url: str, app: OAuthApp, code: str
) -> str:
    """Exchange an authorization code for the provider's access token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": app.redirect_url,
    }
    failure = f"Could not exchange the code with {title(provider)}"
    answer = await _call(
        http,
        "POST",
        token_url,
        provider=provider,
        call="token",
        failure=failure,
        data=form,
        headers=_ACCEPT_JSON,
    )
    # GitHub answers a bad code with 200 and {"error": ...}: only a token is success.
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        _log.warning("oauth.exchange_refused", provider=provider, error=_error_of(answer))
        raise ProviderError(failure)
    return token


async def fetch_json(
    http: httpx.AsyncClient, provider: str, url: str, access_token: str, call: str
) -> Any:
    """GET ``url`` with the provider's access token; the decoded JSON answer."""
    headers = {**_ACCEPT_JSON, "Authorization": f"Bearer {access_token}"}
    failure = f"Could not read the {title(provider)} account"
    return await _call(
        http, "GET", url, provider=provider, call=call, failure=failure, headers=headers
    )


async def _call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    call: str,
    failure: str,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str],
) -> Any:
    try:
        response = await http.request(method, url, data=data, headers=headers)
    except httpx.TimeoutException:
        _log.warning("oauth.provider_timeout", provider=provider, call=call)
        raise ProviderError(f"{failure}: the provider did not answer in time") from None
    except httpx.HTTPError as exc:
        _log.warning(
            "oauth.provider_unreachable", provider=provider, call=call, kind=type(exc).__name__
        )
        raise ProviderError(failure) from None
    if not response.is_success:
        _log.warning(
            "oauth.provider_error", provider=provider, call=call, status=response.status_code
        )
        raise ProviderError(failure)
    try:
        return response.json()
    except ValueError:
        _log.warning("oauth.provider_bad_answer", provider=provider, call=call)
        raise ProviderError(failure) from None


def _error_of(answer: Any) -> str:
    """The OAuth ``error`` field of an answer (a fixed vocabulary, safe to log)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return str(answer["error"])[:64]
    return ""
