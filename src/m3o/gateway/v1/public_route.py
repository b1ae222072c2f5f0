"""``/v1/...`` as one route of the application's router.

Starlette's router tries its routes one by one, a pattern match each; the public API's
routes (the key-management paths, then every other ``/v1/`` path for calls, over HTTP and
websockets) are one entry here: a path outside ``/v1/`` is told apart by its prefix, a
key-management path is found by a dictionary lookup, and every other path goes to the call
endpoint of its kind (HTTP or websocket). What each path reaches is what the routes listed
one by one reached: an HTTP key-management path its endpoint for the methods it takes (the
call endpoint, which answers 405, for the others), any other ``/v1/`` path the call
endpoint, a websocket on any ``/v1/`` path the websocket endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette._utils import get_route_path
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

__all__ = ["PREFIX", "PublicApiRoute"]

PREFIX = "/v1/"


class PublicApiRoute(BaseRoute):
    def __init__(
        self, exact: Mapping[str, Route], calls: Route, websocket_calls: WebSocketRoute
    ) -> None:
        for path in exact:
            if not path.startswith(PREFIX):
                raise ValueError(f"{path!r} is not under {PREFIX}")
        self._exact = dict(exact)
        self._calls = calls
        self._websocket_calls = websocket_calls

    @property
    def routes(self) -> list[BaseRoute]:
        """The routes this one stands for, key-management paths first."""
        return [*self._exact.values(), self._calls, self._websocket_calls]

    def _route(self, scope: Scope) -> BaseRoute | None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return None
        path = get_route_path(scope)
        if not path.startswith(PREFIX):
            return None
        if kind == "websocket":
            return self._websocket_calls
        found = self._exact.get(path)
        if found is None or (found.methods is not None and scope["method"] not in found.methods):
            return self._calls
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        route = self._route(scope)
        if route is None:
            return Match.NONE, {}
        return route.matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope)
        if route is None:  # the router hands over only what matched
            raise RuntimeError(f"{scope.get('path')!r} is not a public API path")
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)
