"""What every console page relies on: the signed-in session, CSRF-checked forms, one-time
messages, rendering and the way errors become pages.

- **Session**: the person's access token (from ``customers/login``, ``signup/verify``, an
  OAuth login or ``auth/token``) in the ``m3o_session`` cookie: ``HttpOnly``,
  ``SameSite=Lax``, ``Secure`` when the console is served over TLS, path ``/console``,
  expiring with the token. The console keeps no session state of its own: each page asks
  the auth service whose token it is (``Auth.Inspect``), and every call it makes carries the
  token, so the services' own checks decide what a person may see and do.
- **CSRF**: a random token in the ``m3o_csrf`` cookie, repeated in every form as the hidden
  field ``csrf_token``; a POST whose field does not equal the cookie (compared in constant
  time) is refused with 403 before anything is called. Together with ``SameSite=Lax`` this
  is the double-submit pattern, which needs no server-side state and so works behind any
  number of gateways.
- **Messages**: :meth:`Console.redirect` can leave a one-line message (``flash``) for the
  next page in a short-lived cookie, shown once (POST, redirect, GET).
- **Errors**: an endpoint wrapped by :meth:`Console.route` that raises
  :class:`LoginRequired` (or whose call is refused with 401) is sent to the login page and
  back (a signed-in person who is not an admin gets a 403 page from an admin page); an
  :class:`~m3o.runtime.errors.M3OError` becomes an error page with the service's
  readable detail and its HTTP status. A page that can show the error beside its form
  catches the error itself and renders the form again with ``error=exc.detail``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from m3o.console.clients import ConsoleClients
from m3o.gateway.context import client_address
from m3o.runtime.errors import M3OError, Unauthorized
from m3o.runtime.logging import get_logger
from m3o.runtime.money import dollars
from m3o.services.auth.proto import auth_pb2

__all__ = [
    "BASE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "FLASH_COOKIE",
    "SESSION_COOKIE",
    "Console",
    "ConsoleSettings",
    "CsrfRefused",
    "Endpoint",
    "LoginRequired",
    "Session",
    "next_path",
]

BASE = "/console"
"""Where the console is served (``/`` redirects here)."""

SESSION_COOKIE = "m3o_session"
CSRF_COOKIE = "m3o_csrf"
CSRF_FIELD = "csrf_token"
FLASH_COOKIE = "m3o_flash"

_CSRF_LIFETIME = 7 * 24 * 3600
_FLASH_LIFETIME = 60
_MAX_FLASH = 300

Endpoint = Callable[[Request], Awaitable[Response]]

_log = get_logger(__name__)


class LoginRequired(Exception):
    """The page needs a signed-in person (an admin when ``admin``)."""

    def __init__(self, *, admin: bool = False) -> None:
        super().__init__("login required")
        self.admin = admin


class CsrfRefused(Exception):
    """A form arrived without the CSRF token of the browser that was given the form."""


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """How the console behaves; built from the configuration by the front."""

    secure_cookies: bool = False
    """Mark cookies ``Secure`` (the console is reached over TLS: ``server.public_url`` is
    ``https``). A request that arrives over https gets them ``Secure`` anyway."""
    google_login: bool = False
    """Offer "Continue with Google" (``oauth.google.client_id`` is set)."""
    github_login: bool = False
    """Offer "Continue with GitHub" (``oauth.github.client_id`` is set)."""
    payments: bool = False
    """Stripe is configured: offer top-ups, cards and paid tiers."""
    public_url: str = ""
    """Where the platform is reached (shown in examples)."""
    emails_sent: bool = False
    """Emails leave the platform (``emails.enabled``); otherwise they stay in the local
    outbox, and the signup page says how to read the code there (``m3o emails list``)."""


@dataclass(frozen=True, slots=True)
class Session:
    """The signed-in person."""

    token: str
    account_id: str
    name: str
    """The email of a customer, the account name of an admin."""
    scopes: tuple[str, ...] = ()
    expires: int = 0
    """Unix seconds the token expires at (0: not known)."""

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def metadata(self) -> dict[str, str]:
        """Call metadata carrying the person's token."""
        return {"authorization": f"Bearer {self.token}"}


def _money(units: int) -> str:
    return dollars(int(units))


def _when(unix: int | float) -> str:
    if not unix:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(unix)))


def _day(unix: int | float) -> str:
    if not unix:
        return ""
    return time.strftime("%Y-%m-%d", time.gmtime(float(unix)))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("m3o.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["money"] = _money
    environment.filters["when"] = _when
    environment.filters["day"] = _day
    environment.globals["base"] = BASE
    return environment


@dataclass
class _RequestState:
    session: Session | None = None
    inspected: bool = False
    csrf: str = ""
    new_csrf: bool = False
    cookies: list[tuple[str, str, int, bool]] = field(default_factory=list)


class Console:
    """The pages' shared machinery over the services' clients."""

    def __init__(self, clients: ConsoleClients, settings: ConsoleSettings) -> None:
        self.clients = clients
        self.settings = settings
        self._templates = _environment()

    # The session.

    async def session(self, request: Request) -> Session | None:
        """The signed-in person, or None (no cookie, or a token no longer valid)."""
        state = _state(request)
        if state.inspected:
            return state.session
        state.inspected = True
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        try:
            answer = await self.clients.auth.inspect(
                auth_pb2.InspectRequest(token=token),
                metadata={"authorization": f"Bearer {token}"},
            )
        except Unauthorized:
            return None
        account = answer.account
        state.session = Session(
            token=token,
            account_id=account.id,
            name=account.name or account.id,
            scopes=tuple(account.scopes),
        )
        return state.session

    def metadata(self, request: Request, session: Session | None = None) -> dict[str, str]:
        """Call metadata for a call made on behalf of ``request``: the client's address (the
        services slow down repeated failures by it) and ``session``'s token."""
        metadata = {"x-client-address": client_address(request.scope)}
        if session is not None:
            metadata.update(session.metadata)
        return metadata

    async def require(self, request: Request, *, admin: bool = False) -> Session:
        """The signed-in person; raises :class:`LoginRequired` when there is none (or, with
        ``admin``, when they are not an admin)."""
        session = await self.session(request)
        if session is None or (admin and not session.admin):
            raise LoginRequired(admin=admin)
        return session

    def signed_in(self, response: Response, request: Request, token: str, expiry: int) -> Response:
        """``response`` with the session cookie for ``token`` (expiring at ``expiry``, unix
        seconds; a session cookie when 0)."""
        max_age = max(0, int(expiry - time.time())) if expiry else 0
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max_age or None,
            path=BASE,
            secure=self._secure(request),
            httponly=True,
            samesite="lax",
        )
        return response

    def signed_out(self, response: Response, request: Request) -> Response:
        """``response`` removing the session cookie."""
        response.delete_cookie(
            SESSION_COOKIE, path=BASE, secure=self._secure(request), httponly=True, samesite="lax"
        )
        return response

    # Forms.

    async def form(self, request: Request) -> FormData:
        """The posted form, once its CSRF token is checked; raises :class:`CsrfRefused`."""
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
            raise CsrfRefused
        return form

    def csrf_token(self, request: Request) -> str:
        """This browser's CSRF token (a new one is set with the next page when it has none)."""
        state = _state(request)
        if not state.csrf:
            state.csrf = request.cookies.get(CSRF_COOKIE, "")
            if len(state.csrf) < 32:
                state.csrf = secrets.token_urlsafe(32)
                state.new_csrf = True
        return state.csrf

    # Answers.

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
    ) -> Response:
        """The page ``template`` with ``context``; every template also gets ``session`` (or
        None), ``csrf_token``, ``flash`` (the message left by the previous step, or ""),
        ``settings``, ``path`` and ``base``."""
        state = _state(request)
        flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:_MAX_FLASH]
        values = {
            "session": state.session,
            "csrf_token": self.csrf_token(request),
            "csrf_field": CSRF_FIELD,
            "flash": flash,
            "settings": self.settings,
            "path": request.url.path,
            **(context or {}),
        }
        body = self._templates.get_template(template).render(values)
        response = HTMLResponse(body, status_code=status)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=BASE, httponly=True, samesite="lax")
        self._finish(response, request)
        return response

    def redirect(self, request: Request, url: str, *, flash: str = "") -> Response:
        """303 to ``url`` (a console path), leaving ``flash`` for the next page."""
        response = RedirectResponse(url, status_code=303)
        if flash:
            response.set_cookie(
                FLASH_COOKIE,
                quote(flash[:_MAX_FLASH]),
                max_age=_FLASH_LIFETIME,
                path=BASE,
                secure=self._secure(request),
                httponly=True,
                samesite="lax",
            )
        self._finish(response, request)
        return response

    def route(self, path: str, endpoint: Endpoint, methods: Sequence[str] = ("GET",)) -> Route:
        """A route at ``BASE + path`` whose errors become pages (see the module's text)."""
        return Route(path, self._guarded(endpoint), methods=list(methods))

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except LoginRequired as exc:
                if exc.admin and _state(request).session is not None:
                    return self.render(
                        request,
                        "error.html",
                        {"title": "Forbidden", "message": "This page is for admins only."},
                        status=403,
                    )
                return self._to_login(request, admin=exc.admin)
            except CsrfRefused:
                return self.render(
                    request,
                    "error.html",
                    {
                        "title": "Form expired",
                        "message": "This form has expired or did not come from this site. "
                        "Go back, reload the page and try again.",
                    },
                    status=403,
                )
            except Unauthorized:
                return self._to_login(request, admin=False)
            except M3OError as exc:
                _log.info("console.refused", path=request.url.path, code=exc.code)
                return self.render(
                    request,
                    "error.html",
                    {"title": exc.status, "message": exc.detail},
                    status=exc.code,
                )

        return guarded

    def _to_login(self, request: Request, *, admin: bool) -> Response:
        after = request.url.path if request.method == "GET" else BASE + "/"
        if request.url.query and request.method == "GET":
            after += "?" + request.url.query
        login = f"{BASE}/login?" + urlencode({"next": after})
        flash = "Sign in with an admin account to open that page." if admin else ""
        response = self.redirect(request, login, flash=flash)
        if request.cookies.get(SESSION_COOKIE) and _state(request).session is None:
            self.signed_out(response, request)  # the token is no longer valid
        return response

    def _finish(self, response: Response, request: Request) -> None:
        state = _state(request)
        if state.new_csrf:
            response.set_cookie(
                CSRF_COOKIE,
                state.csrf,
                max_age=_CSRF_LIFETIME,
                path=BASE,
                secure=self._secure(request),
                httponly=True,
                samesite="lax",
            )
            state.new_csrf = False

    def _secure(self, request: Request) -> bool:
        return self.settings.secure_cookies or request.url.scheme == "https"


def next_path(value: object) -> str:
    """Where to go after signing in: a console path from ``value``, never another site."""
    if isinstance(value, str) and value.startswith(BASE + "/") and "//" not in value:
        return value
    return BASE + "/"


def _state(request: Request) -> _RequestState:
    state = getattr(request.state, "console", None)
    if state is None:
        state = _RequestState()
        request.state.console = state
    return state
