"""A fake Google and a fake GitHub: small Starlette apps speaking the providers' OAuth.

One app serves both, under ``/google/...`` and ``/github/...``; the handler reaches it
through ``httpx.ASGITransport`` (its injected client). Each fake issues an access token for
its known codes only, checks that token on the account endpoints, records what it was
sent, and can be told to fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from m3o.services.oauth.github import GithubEndpoints
from m3o.services.oauth.google import GoogleEndpoints
from support.http_fakes import served

GOOGLE_ENDPOINTS = GoogleEndpoints(
    authorize_url="https://accounts.google.test/o/oauth2/v2/auth",
    token_url="https://oauth2.google.test/google/token",
    userinfo_url="https://openidconnect.google.test/google/userinfo",
)
GITHUB_ENDPOINTS = GithubEndpoints(
    authorize_url="https://github.test/login/oauth/authorize",
    token_url="https://github.test/github/login/oauth/access_token",
    emails_url="https://api.github.test/github/user/emails",
)

GOOGLE_CODE = "4/0AY0e-g7-google-authorization-code"
GOOGLE_ACCESS_TOKEN = "ya29.a0-google-access-token-never-logged"
GITHUB_CODE = "9f3b2c1a-github-authorization-code"
GITHUB_ACCESS_TOKEN = "gho_github-access-token-never-logged"


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode()
    return {key: values[0] for key, values in parse_qs(body).items()}


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass
class FakeGoogle:
    """Google's token and userinfo endpoints."""

    email: str = "ann@example.com"
    email_verified: Any = True
    token_status: int = 200
    userinfo_status: int = 200
    token_requests: list[dict[str, str]] = field(default_factory=list)
    userinfo_requests: int = 0

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        self.token_requests.append(form)
        if self.token_status != 200:
            return JSONResponse({"error": "internal_failure"}, status_code=self.token_status)
        if form.get("code") != GOOGLE_CODE or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {"access_token": GOOGLE_ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def userinfo(self, request: Request) -> Response:
        self.userinfo_requests += 1
        if _bearer(request) != GOOGLE_ACCESS_TOKEN:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        if self.userinfo_status != 200:
            return JSONResponse({"error": "backend"}, status_code=self.userinfo_status)
        return JSONResponse(
            {
                "sub": "110169484474386276334",
                "email": self.email,
                "email_verified": self.email_verified,
            }
        )


@dataclass
class FakeGithub:
    """GitHub's token endpoint and ``GET /user/emails``."""

    emails: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"email": "ann@example.com", "primary": True, "verified": True, "visibility": None}
        ]
    )
    token_status: int = 200
    token_requests: list[dict[str, str]] = field(default_factory=list)
    emails_requests: int = 0

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        self.token_requests.append(form)
        if self.token_status != 200:
            return PlainTextResponse("unavailable", status_code=self.token_status)
        if request.headers.get("accept") != "application/json":
            # Without it GitHub answers form-encoded.
            return PlainTextResponse(f"access_token={GITHUB_ACCESS_TOKEN}&token_type=bearer")
        if form.get("code") != GITHUB_CODE:
            # GitHub reports a bad code with status 200.
            return JSONResponse(
                {"error": "bad_verification_code", "error_description": "The code is incorrect"}
            )
        return JSONResponse(
            {"access_token": GITHUB_ACCESS_TOKEN, "token_type": "bearer", "scope": "user:email"}
        )

    async def user_emails(self, request: Request) -> Response:
        self.emails_requests += 1
        if _bearer(request) != GITHUB_ACCESS_TOKEN:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(self.emails)


@dataclass
class FakeProviders:
    google: FakeGoogle = field(default_factory=FakeGoogle)
    github: FakeGithub = field(default_factory=FakeGithub)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/google/token", self.google.token, methods=["POST"]),
                Route("/google/userinfo", self.google.userinfo, methods=["GET"]),
                Route("/github/login/oauth/access_token", self.github.token, methods=["POST"]),
                Route("/github/user/emails", self.github.user_emails, methods=["GET"]),
            ]
        )


@dataclass
class ServedProviders:
    """The fakes behind a real server, at ``url``."""

    fakes: FakeProviders
    url: str


@contextmanager
def served_providers() -> Iterator[ServedProviders]:
    """The fake providers behind uvicorn on a free port, in a thread of their own."""
    fakes = FakeProviders()
    with served(fakes.app()) as url:
        yield ServedProviders(fakes, url)
