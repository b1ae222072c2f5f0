"""The outer layer every HTTP request goes through (a plain ASGI middleware, no buffering).

Per request it:

- settles the request id (echoed as ``X-Request-Id``) and the client's address, and leaves
  both in the scope (:mod:`m3o.gateway.context`); the request runs in its
  :func:`~m3o.runtime.logging.request_context`, so every log line it causes, here
  or in the services it calls, names it;
- counts and times the request (:class:`~m3o.gateway.metrics.Metrics`) by route label;
- writes one access log line: method, path (without the query string), status, duration,
  request id, client. Never headers or bodies;
- turns a failure that escaped every handler into the generic 500 error document, logging
  the cause;
- when tracing is on, runs the request in a ``SERVER`` span (:mod:`m3o.runtime.logging.tracing`)
  named by method and route, continuing the caller's ``traceparent`` header if any, with the
  status and request id as attributes (not for the probes and ``/metrics``).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from m3o.gateway.context import (
    CLIENT_ADDRESS,
    REQUEST_ID,
    ClientAddress,
    new_request_id,
    route_label,
)
from m3o.gateway.http_errors import internal_error_body
from m3o.gateway.metrics import Metrics
from m3o.runtime.logging import get_logger, request_context
from m3o.runtime.logging.tracing import TRACEPARENT, describe_span, server_span, tracing_on

__all__ = ["RequestMiddleware"]

_log = get_logger("m3o.gateway.access")

UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes: no span (one every few seconds per pod would say nothing)."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        client_address: ClientAddress,
        access_log: bool = True,
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._client_address = client_address
        self._access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        if not tracing_on() or scope.get("path") in UNTRACED_PATHS:
            await self._serve(scope, receive, send)
            return
        method = str(scope.get("method", "WS"))
        traceparent = _header(scope, TRACEPARENT.encode())
        carrier = {TRACEPARENT: traceparent} if traceparent else {}
        attributes = {"http.request.method": method, "url.path": str(scope.get("path", ""))}
        with server_span(method, carrier, attributes) as span:
            status = await self._serve(scope, receive, send)
            route = route_label(scope)
            describe_span(
                span,
                {
                    "http.route": route,
                    "http.response.status_code": status,
                    "m3o.request_id": scope.get(REQUEST_ID, ""),
                },
                name=f"{method} {route}",
                failed=status >= 500,
            )

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Serve an HTTP request or a websocket; the HTTP status answered (101 for a
        websocket)."""
        if scope["type"] == "websocket":
            scope[REQUEST_ID] = new_request_id(_header(scope, b"x-request-id"))
            scope[CLIENT_ADDRESS] = self._client_address.of(scope)
            with request_context(scope[REQUEST_ID]):
                await self._app(scope, receive, send)
            return 101
        started = time.perf_counter()
        rid = new_request_id(_header(scope, b"x-request-id"))
        scope[REQUEST_ID] = rid
        scope[CLIENT_ADDRESS] = self._client_address.of(scope)
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            with request_context(rid):
                await self._app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the last line: a client always gets an answer
            _log.error("http.unhandled_error", path=scope.get("path"), request_id=rid, exc_info=exc)
            status = 500
            if not started_response:
                await _send_internal_error(send, rid_header)
        finally:
            self._finish(scope, status, started, rid)
        return status

    def _finish(self, scope: Scope, status: int, started: float, rid: str) -> None:
        seconds = time.perf_counter() - started
        method = str(scope.get("method", ""))
        self._metrics.observe_http(method, route_label(scope), status, seconds)
        if self._access_log:
            _log.info(
                "http.request",
                method=method,
                path=scope.get("path", ""),
                status=status,
                duration_ms=round(seconds * 1000, 3),
                request_id=rid,
                client=scope.get(CLIENT_ADDRESS, ""),
            )


async def _send_internal_error(send: Send, rid_header: tuple[bytes, bytes]) -> None:
    body = internal_error_body()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                rid_header,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
