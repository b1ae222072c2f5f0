"""The console's routes, for the HTTP front's ``extra_routes``: ``GET /`` redirects to the
console at ``/console/``, whose pages and static files (``/console/static/...``) all carry the
security headers of :mod:`m3o.console.headers`."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from m3o.console.clients import ConsoleClients
from m3o.console.headers import SecurityHeaders
from m3o.console.pages import admin, billing, catalog, home, identity, keys, usage
from m3o.console.web import BASE, Console, ConsoleSettings
from m3o.runtime.config import Config
from m3o.runtime.rpc import Transport

__all__ = ["console_routes", "console_settings"]

STATIC = "/static"


def console_settings(config: Config) -> ConsoleSettings:
    """What the console offers, from the configuration."""
    stripe = config.stripe
    stripe_key = stripe.test_api_key if stripe.test_mode else stripe.api_key
    return ConsoleSettings(
        secure_cookies=config.server.public_url.startswith("https://"),
        google_login=bool(config.oauth.google.credentials(test=False)[0]),
        github_login=bool(config.oauth.github.credentials(test=False)[0]),
        payments=bool(stripe_key.get_secret_value()),
        public_url=config.server.base_url,
        emails_sent=config.emails.enabled,
    )


async def _to_console(request: Request) -> Response:
    return RedirectResponse(BASE + "/", status_code=307)


def console_routes(
    transport: Transport, settings: ConsoleSettings, *, timeout: float | None
) -> list[BaseRoute]:
    """``/`` and ``/console/...``, calling the services through ``transport``."""
    console = Console(ConsoleClients.over(transport, timeout=timeout), settings)
    pages: list[BaseRoute] = [
        *home.routes(console),
        *identity.routes(console),
        *catalog.routes(console),
        *keys.routes(console),
        *usage.routes(console),
        *billing.routes(console),
        *admin.routes(console),
    ]
    static = Mount(STATIC, app=StaticFiles(packages=[("m3o.console", "static")]))
    return [
        Route("/", _to_console, methods=["GET", "HEAD"]),
        Mount(
            BASE,
            routes=[static, *pages],
            middleware=[Middleware(SecurityHeaders, static_prefix=BASE + STATIC + "/")],
        ),
    ]
