"""The console's front page: what to do next for a signed-in customer, an invitation to
sign up or sign in otherwise."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.web import Console

__all__ = ["routes"]


def routes(console: Console) -> list[BaseRoute]:
    """``/console/``."""

    async def home(request: Request) -> Response:
        session = await console.session(request)
        return console.render(request, "home.html", {"title": "Home", "signed_in": session})

    return [console.route("/", home)]
