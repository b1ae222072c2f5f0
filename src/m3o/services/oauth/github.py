"""GitHub: the authorization URL, the code exchange and the verified email.

A GitHub account's profile email may be empty, private or unverified, so the email comes
from ``GET /user/emails``: the address marked both primary and verified, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from m3o.services.oauth.providers import (
    NoVerifiedEmail,
    OAuthApp,
    exchange_code,
    fetch_json,
)

__all__ = ["GITHUB_SCOPE", "GithubEndpoints", "GithubProvider"]

GITHUB_SCOPE = "user:email"


@dataclass(frozen=True, slots=True)
class GithubEndpoints:
    """GitHub's URLs; tests point them at a fake GitHub."""

    authorize_url: str = "https://github.com/login/oauth/authorize"
    token_url: str = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
    emails_url: str = "https://api.github.com/user/emails"


class GithubProvider:
    """Login with GitHub."""

    name = "github"

    def __init__(self, http: httpx.AsyncClient, endpoints: GithubEndpoints | None = None) -> None:
        self._http = http
        self._endpoints = endpoints or GithubEndpoints()

    def authorization_url(self, app: OAuthApp, state: str) -> str:
        query = urlencode(
            {
                "client_id": app.client_id,
                "redirect_uri": app.redirect_url,
                "response_type": "code",
                "scope": GITHUB_SCOPE,
                "state": state,
            }
        )
        return f"{self._endpoints.authorize_url}?{query}"

    async def verified_email(self, app: OAuthApp, code: str) -> str:
        token = await exchange_code(self._http, self.name, self._endpoints.token_url, app, code)
        emails = await fetch_json(
            self._http, self.name, self._endpoints.emails_url, token, "emails"
        )
        for entry in emails if isinstance(emails, list) else ():
            if (
                isinstance(entry, dict)
                and entry.get("primary") is True
                and entry.get("verified") is True
                and isinstance(entry.get("email"), str)
                and entry["email"]
            ):
                return str(entry["email"])
        raise NoVerifiedEmail
