"""Signing up, in and out, recovering a password, and signing in with Google or GitHub.

- ``GET|POST /console/signup``: an email address; ``Signup.User`` emails it an 8-letter code
  (or, for an address that has an account, tells its owner instead: the page answers the
  same either way), then on to the code page.
- ``GET|POST /console/signup/verify?email=...``: the code, a password and its confirmation;
  ``Signup.Verify`` (``token`` the code, ``secret`` the password) creates the account and
  returns its session: the session cookie is set and the person lands on the front page.
  The page also sends a new code (a POST to ``/console/signup`` with the same address).
- ``GET|POST /console/login``: an email and password (``Customers.Login``); an identifier
  without ``@`` is an account of the platform's own (the admin: ``Auth.Token``). Success
  sets the session cookie and goes on to ``next`` (a console path) or the front page.
- ``POST /console/logout``: ends the session with the platform (``Auth.Revoke``:
  the token stops working at once) and removes the cookie.
- ``GET|POST /console/recover``: an email address; ``Signup.Recover`` emails a reset token
  to a customer who may sign in, and answers the same for any other address (the page too);
  then on to the reset page.
- ``GET|POST /console/reset?email=...&token=...``: the address, the emailed token and a new
  password (twice); ``Signup.ResetPassword`` sets it and ends every session, and the person
  signs in again with it.
- ``GET /console/login/{google,github}`` (only when that provider is configured):
  ``Oauth.GoogleURL`` / ``Oauth.GithubURL`` give the provider's authorization URL, whose
  signed ``state`` is also kept in a short-lived cookie of this browser; 303 there.
- ``GET /console/oauth/{google,github}?state=...&code=...``: where the provider sends the
  browser back (the provider's redirect URL must be ``<public url>/console/oauth/<provider>``).
  The ``state`` must be the one this browser was given, else nothing is called (so nobody
  can send a victim's browser back with a code of the sender's account and sign the
  victim into it); ``Oauth.GoogleLogin`` /
  ``Oauth.GithubLogin`` exchange the code for a session, of an existing customer or a new
  one, and the person lands on the front page.

Every call carries the client's address (the services slow down repeated failures by it).
Passwords are never put back into a page; a code or reset token is only when the form comes
back for a mistake in the password (pages are ``no-store``), never after the service
refused it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.web import BASE, Console, Endpoint, next_path
from m3o.runtime.errors import Forbidden, M3OError, NotFound
from m3o.services.auth.proto import auth_pb2
from m3o.services.customers.proto import customers_pb2
from m3o.services.oauth.proto import oauth_pb2
from m3o.services.signup.proto import signup_pb2

__all__ = ["OAUTH_STATE_COOKIE", "routes"]

OAUTH_STATE_COOKIE = "m3o_oauth_state"
"""The ``state`` of the OAuth login this browser started, checked when the provider sends
it back (path ``/console/oauth``, ``HttpOnly``, ``SameSite=Lax``: sent on the provider's
top-level redirect)."""

_Send = Callable[[str, Mapping[str, str]], Awaitable[object]]
"""A signup call emailing something to an address, with the call's metadata."""

_OAUTH_PATH = BASE + "/oauth"
_OAUTH_STATE_LIFETIME = 10 * 60
"""The oauth service's default ``state_ttl``: a state older than this is refused anyway."""

_WELCOME = "Welcome to M3O: your account is ready."
_MIN_PASSWORD = 8
"""The signup service's shortest password, checked here first so that the form keeps the
code or reset token the person typed (the service checks it again)."""


@dataclass(frozen=True, slots=True)
class _Provider:
    name: str
    title: str


_PROVIDERS = {
    "google": _Provider("google", "Google"),
    "github": _Provider("github", "GitHub"),
}


def _text(form: FormData | Mapping[str, str], name: str) -> str:
    """The field ``name`` of ``form`` as text, surrounding blanks removed ("" when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _secret(form: FormData, name: str) -> str:
    """The password field ``name`` exactly as typed ("" when absent)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class _NewPassword:
    """A posted form setting a password with an emailed proof (a code or reset token)."""

    email: str
    proof: str
    password: str
    problem: str
    """What is wrong with the form ("" when nothing)."""


async def _new_password(
    console: Console, request: Request, proof_field: str, missing: str
) -> _NewPassword:
    """The posted form: ``missing`` is its problem unless the email and the proof are
    given; then the password must be long enough and equal its confirmation."""
    form = await console.form(request)
    email, proof = _text(form, "email"), _text(form, proof_field)
    password = _secret(form, "password")
    problem = ""
    if not (email and proof):
        problem = missing
    elif len(password) < _MIN_PASSWORD:
        problem = f"Choose a password of at least {_MIN_PASSWORD} characters."
    elif password != _secret(form, "confirm"):
        problem = "The password and its confirmation differ: type the same password twice."
    return _NewPassword(email, proof, password, problem)


def _with_query(path: str, **query: str) -> str:
    present = {key: value for key, value in query.items() if value}
    return f"{path}?{urlencode(present)}" if present else path


def _code_error(exc: M3OError) -> str:
    """What to tell a person whose code ``Signup.Verify`` refused."""
    if isinstance(exc, Forbidden):
        if "expired" in exc.detail.lower():
            return "This code has expired (a code lasts 5 minutes): send a new code below."
        return "This is not the code we emailed: check it, or send a new code below."
    if isinstance(exc, NotFound):
        return (
            "No code is waiting for this address (a code stops working after 5 wrong "
            "tries): send a new code below."
        )
    return exc.detail


def routes(console: Console) -> list[BaseRoute]:
    """The sign-in and sign-out, sign-up, recovery and OAuth pages."""
    return [
        *_signin_routes(console),
        *_signup_routes(console),
        *_recovery_routes(console),
        *_oauth_routes(console),
    ]


def _login_page(
    console: Console, request: Request, *, email: str = "", error: str = "", status: int = 200
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


def _signed_in(
    console: Console, request: Request, access: str, expiry: int, *, flash: str = ""
) -> Response:
    """To the front page with a session cookie for ``access``."""
    response = console.redirect(request, BASE + "/", flash=flash)
    return console.signed_in(response, request, access, expiry)


def _signin_routes(console: Console) -> list[BaseRoute]:
    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _login_page(console, request, email=_text(request.query_params, "email"))
        form = await console.form(request)
        email = _text(form, "email")
        password = _secret(form, "password")
        after = next_path(form.get("next"))
        if not email or not password:
            return _login_page(
                console, request, email=email, error="Enter your email and password.", status=400
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
            return _login_page(console, request, email=email, error=exc.detail, status=exc.code)
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


class _Render(Protocol):
    def __call__(self, request: Request, *, status: int = 200, **values: str) -> Response: ...


def _renderer(console: Console, template: str, title: str, **defaults: str) -> _Render:
    """Renders ``template`` titled ``title`` with ``defaults`` (and ``error``, empty) unless
    given other values."""

    def render(request: Request, *, status: int = 200, **values: str) -> Response:
        context = {"title": title, "error": "", **defaults, **values}
        return console.render(request, template, context, status=status)

    return render


def _email_step(console: Console, page: _Render, send: _Send, after: str, flash: str) -> Endpoint:
    """A page asking for an email address that ``send`` (a signup call) emails something
    to, then on to ``after`` with ``flash`` (both formatted with ``email``)."""

    async def step(request: Request) -> Response:
        if request.method == "GET":
            return page(request, email=_text(request.query_params, "email"))
        form = await console.form(request)
        email = _text(form, "email")
        if not email:
            return page(request, error="Enter your email address.", status=400)
        try:
            await send(email, console.metadata(request))
        except M3OError as exc:
            return page(request, email=email, error=exc.detail, status=exc.code)
        return console.redirect(
            request, _with_query(after, email=email), flash=flash.format(email=email)
        )

    return step


def _signup_routes(console: Console) -> list[BaseRoute]:
    signup_page = _renderer(console, "identity/signup.html", "Sign up", email="")
    verify_page = _renderer(console, "identity/verify.html", "Create your account", code="")

    async def send_code(email: str, metadata: Mapping[str, str]) -> object:
        return await console.clients.signup.user(
            signup_pb2.UserRequest(email=email), metadata=metadata
        )

    signup = _email_step(
        console,
        signup_page,
        send_code,
        BASE + "/signup/verify",
        "We emailed {email}: type the 8-letter code it holds below, within 5 minutes. If "
        "this address has an account already, the email says so instead.",
    )

    async def verify(request: Request) -> Response:
        if request.method == "GET":
            email = _text(request.query_params, "email")
            if not email:
                return console.redirect(request, BASE + "/signup")
            return verify_page(request, email=email)
        posted = await _new_password(
            console, request, "code", "Enter the 8-letter code from the email."
        )
        if posted.problem:
            return verify_page(
                request, email=posted.email, code=posted.proof, error=posted.problem, status=400
            )
        try:
            answer = await console.clients.signup.verify(
                signup_pb2.VerifyRequest(
                    email=posted.email, token=posted.proof, secret=posted.password
                ),
                metadata=console.metadata(request),
            )
        except M3OError as exc:
            error = _code_error(exc)
            return verify_page(request, email=posted.email, error=error, status=exc.code)
        token = answer.authToken
        return _signed_in(console, request, token.access_token, token.expiry, flash=_WELCOME)

    return [
        console.route("/signup", signup, methods=["GET", "POST"]),
        console.route("/signup/verify", verify, methods=["GET", "POST"]),
    ]


def _recovery_routes(console: Console) -> list[BaseRoute]:
    recover_page = _renderer(console, "identity/recover.html", "Recover your password", email="")
    reset_page = _renderer(console, "identity/reset.html", "Choose a new password", token="")

    async def send_token(email: str, metadata: Mapping[str, str]) -> object:
        return await console.clients.signup.recover(
            signup_pb2.RecoverRequest(email=email), metadata=metadata
        )

    recover = _email_step(
        console,
        recover_page,
        send_token,
        BASE + "/reset",
        "If {email} belongs to an account, we emailed it a reset token, valid for 10 "
        "minutes: type it below with your new password.",
    )

    async def reset(request: Request) -> Response:
        if request.method == "GET":
            query = request.query_params
            return reset_page(request, email=_text(query, "email"), token=_text(query, "token"))
        posted = await _new_password(
            console,
            request,
            "token",
            "Enter your email address and the reset token from the email.",
        )
        email = posted.email
        if posted.problem:
            return reset_page(
                request, email=email, token=posted.proof, error=posted.problem, status=400
            )
        try:
            await console.clients.signup.reset_password(
                signup_pb2.ResetPasswordRequest(
                    email=email, token=posted.proof, password=posted.password
                ),
                metadata=console.metadata(request),
            )
        except M3OError as exc:
            return reset_page(request, email=email, error=exc.detail, status=exc.code)
        response = console.redirect(
            request,
            _with_query(BASE + "/login", email=email),
            flash="Your password is changed and every session ended: sign in with the new one.",
        )
        # A session open in this browser was ended by the reset too.
        return console.signed_out(response, request)

    return [
        console.route("/recover", recover, methods=["GET", "POST"]),
        console.route("/reset", reset, methods=["GET", "POST"]),
    ]


def _oauth_routes(console: Console) -> list[BaseRoute]:
    def provider_of(request: Request) -> _Provider:
        provider = _PROVIDERS.get(str(request.path_params.get("provider", "")))
        settings = console.settings
        offered = provider is not None and (
            settings.google_login if provider.name == "google" else settings.github_login
        )
        if provider is None or not offered:
            raise NotFound("console.oauth", "This sign-in method is not offered here.")
        return provider

    def secure(request: Request) -> bool:
        return console.settings.secure_cookies or request.url.scheme == "https"

    async def start(request: Request) -> Response:
        provider = provider_of(request)
        metadata = console.metadata(request)
        if provider.name == "google":
            asked = oauth_pb2.GoogleURLRequest()
            url = (await console.clients.oauth.google_url(asked, metadata=metadata)).url
        else:
            wanted = oauth_pb2.GithubURLRequest()
            url = (await console.clients.oauth.github_url(wanted, metadata=metadata)).url
        response = console.redirect(request, url)
        response.set_cookie(
            OAUTH_STATE_COOKIE,
            _state_of(url),
            max_age=_OAUTH_STATE_LIFETIME,
            path=_OAUTH_PATH,
            secure=secure(request),
            httponly=True,
            samesite="lax",
        )
        return response

    async def finish(request: Request) -> Response:
        provider = provider_of(request)
        query = request.query_params
        state = query.get("state", "")
        kept = request.cookies.get(OAUTH_STATE_COOKIE, "")
        if not state or not kept or not hmac.compare_digest(state, kept):
            return _login_page(
                console,
                request,
                error=f"This {provider.title} sign-in did not start in this browser, or took "
                "too long. Try again.",
                status=403,
            )
        code = query.get("code", "")
        reason = query.get("error", "") or query.get("error_reason", "")
        metadata = console.metadata(request)
        try:
            if provider.name == "google":
                answer = await console.clients.oauth.google_login(
                    oauth_pb2.GoogleLoginRequest(state=state, code=code, errorReason=reason),
                    metadata=metadata,
                )
            else:
                answer = await console.clients.oauth.github_login(
                    oauth_pb2.GithubLoginRequest(state=state, code=code, errorReason=reason),
                    metadata=metadata,
                )
        except M3OError as exc:
            error = f"Signing in with {provider.title} did not work: {exc.detail}"
            response = _login_page(console, request, error=error, status=exc.code)
        else:
            token = answer.authToken
            welcome = _WELCOME if answer.isSignup else ""
            response = _signed_in(console, request, token.access_token, token.expiry, flash=welcome)
        # The state is used up either way.
        response.delete_cookie(
            OAUTH_STATE_COOKIE,
            path=_OAUTH_PATH,
            secure=secure(request),
            httponly=True,
            samesite="lax",
        )
        return response

    return [
        console.route("/login/{provider}", start),
        console.route("/oauth/{provider}", finish),
    ]


def _state_of(url: str) -> str:
    """The ``state`` parameter of the provider's authorization ``url`` ("" when none)."""
    return next((value for key, value in parse_qsl(urlsplit(url).query) if key == "state"), "")
