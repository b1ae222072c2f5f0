"""Google: the authorization URL, the code exchange and the verified email.

The email comes from the userinfo endpoint and counts only when Google says it is
verified (``email_verified``).
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

__all__ = ["GOOGLE_SCOPE", "GoogleEndpoints", "GoogleProvider"]

GOOGLE_SCOPE = "https://www.googleapis.com/auth/userinfo.email"


@dataclass(frozen=True, slots=True)
class GoogleEndpoints:
    """Google's URLs; tests point them at a fake Google."""

    authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
    userinfo_url: str = "https://www.googleapis.com/oauth2/v3/userinfo"


class GoogleProvider:
    """Login with Google."""

    name = "google"

    def __init__(self, http: httpx.AsyncClient, endpoints: GoogleEndpoints | None = None) -> None:
        self._http = http
        self._endpoints = endpoints or GoogleEndpoints()

    def authorization_url(self, app: OAuthApp, state: str) -> str:
        query = urlencode(
            {
                "client_id": app.client_id,
                "redirect_uri": app.redirect_url,
                "response_type": "code",
                "scope": GOOGLE_SCOPE,
                "state": state,
                # The email is read once, at login: no offline access (no Google refresh
                # token) is asked for.
                "access_type": "online",
            }
        )
        return f"{self._endpoints.authorize_url}?{query}"

    async def verified_email(self, app: OAuthApp, code: str) -> str:
        token = await exchange_code(self._http, self.name, self._endpoints.token_url, app, code)
        info = await fetch_json(
            self._http, self.name, self._endpoints.userinfo_url, token, "userinfo"
        )
        if not isinstance(info, dict):
            raise NoVerifiedEmail
        email = info.get("email")
        verified = info.get("email_verified")
        # Some Google endpoints spell booleans as strings.
        if not isinstance(email, str) or not email or verified not in (True, "true"):
            raise NoVerifiedEmail
        return email
