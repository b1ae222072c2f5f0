"""Signing in and out.

- ``GET|POST /console/login``: an email and password (``Customers.Login``); an identifier
  without ``@`` is an account of the platform's own (the admin: ``Auth.Token``). Success
  sets the session cookie and goes on to ``next`` (a console path) or the front page.
- ``POST /console/logout``: ends the session with the platform (``Auth.Revoke``:
  the token stops working at once) and removes the cookie.
"""

from __future__ import annotations

from contextlib import suppress

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.web import BASE, Console, next_path
from m3o.runtime.errors import M3OError
from m3o.services.auth.proto import auth_pb2
from m3o.services.customers.proto import customers_pb2

__all__ = ["routes"]


def routes(console: Console) -> list[BaseRoute]:
    """The sign-in and sign-out pages."""

    def login_page(
        request: Request, *, email: str = "", error: str = "", status: int = 200
    ) -> Response:
        return console.render(
            request,
            "identity/login.html",
            {
                "title": "Sign in",
                "email": email,
                "error": error,
                "next": next_path(request.query_params.get("next")),
            },
            status=status,
        )

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return login_page(request)
        form = await console.form(request)
        email = str(form.get("email", "")).strip()
        password = str(form.get("password", ""))
        after = next_path(form.get("next"))
        if not email or not password:
            return login_page(
                request, email=email, error="Enter your email and password.", status=400
            )
        metadata = console.metadata(request)
        try:
            if "@" in email:
                answer = await console.clients.customers.login(
                    customers_pb2.LoginRequest(email=email, password=password), metadata=metadata
                )
                access, expiry = answer.token.access_token, answer.token.expiry
            else:
                granted = await console.clients.auth.token(
                    auth_pb2.TokenRequest(id=email, secret=password), metadata=metadata
                )
                access, expiry = granted.token.access_token, granted.token.expiry
        except M3OError as exc:
            return login_page(request, email=email, error=exc.detail, status=exc.code)
        response = console.redirect(request, after)
        return console.signed_in(response, request, access, expiry)

    async def logout(request: Request) -> Response:
        await console.form(request)
        session = await console.session(request)
        if session is not None:
            # A token no longer valid: signed out either way.
            with suppress(M3OError):
                await console.clients.auth.revoke(
                    auth_pb2.RevokeRequest(), metadata=console.metadata(request, session)
                )
        response = console.redirect(request, BASE + "/login", flash="You are signed out.")
        return console.signed_out(response, request)

    return [
        console.route("/login", login, methods=["GET", "POST"]),
        console.route("/logout", logout, methods=["POST"]),
    ]
