"""``/v1/<api>/<endpoint>`` over plain HTTP: one unary call per request.

The request is the JSON body (an object; empty: ``{}``) over the query string (dotted keys
nest, the body's fields win). A body must be declared ``application/json`` (415 otherwise),
be a JSON object nested at most ``MAX_DEPTH`` levels with no NUL character (400). Methods:
POST and GET (the query is the request); others 405 with ``Allow: GET, POST``. Endpoints
taking the raw HTTP request get the body as it came, whatever its type.
Streaming endpoints answer BadRequest: they are served over a websocket on the same URL.

Headers: ``X-Request-Id`` (the request middleware's), ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` once admission ran, ``X-M3O-Price`` on a
charged answer, ``Retry-After`` on 429.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from m3o.gateway.context import new_request_id, request_id, set_route_label
from m3o.gateway.http_errors import error_response
from m3o.gateway.payload import (
    check_content_type,
    check_query,
    fit_to_message,
    merge,
    parse_object,
    query_to_dict,
    read_body,
)
from m3o.gateway.platform_api import STREAMING_DETAIL
from m3o.gateway.v1.calls import Prepared, PublicCalls
from m3o.gateway.v1.credentials import key_from_headers
from m3o.gateway.v1.gate import Refused
from m3o.gateway.v1.paths import ERROR_ID, raw_call_path
from m3o.gateway.v1.raw_request import is_raw_request, raw_request_data
from m3o.gateway.v1.upstream import Payload
from m3o.runtime.errors import BadRequest, M3OError

__all__ = ["ALLOWED_METHODS", "HttpCalls", "request_json"]

CALL_METHODS = frozenset({"GET", "POST"})
"""The methods of a call."""
ALLOWED_METHODS = frozenset(
    {*CALL_METHODS, "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"}
)
"""Methods routed to the endpoint, so that the endpoint, not the router, refuses those it
does not serve (key-management paths included): one 405 answer, ``Allow: GET, POST``."""
_ALLOW = ", ".join(sorted(CALL_METHODS))
_JSON_TYPE = (b"content-type", b"application/json")
_UNMATCHED_LABEL = "/v1/<unknown>"


def request_json(
    body: bytes, query: list[tuple[str, str]], descriptor: Descriptor | None
) -> dict[str, Any]:
    """The request: the body (a JSON object, or empty) over the query."""
    data = parse_object(body, ERROR_ID)
    if not query:
        return data
    check_query(query, ERROR_ID)
    from_query = query_to_dict(query, ERROR_ID)
    if descriptor is not None:
        from_query = fit_to_message(from_query, descriptor)
    return merge(from_query, data)


class HttpCalls:
    def __init__(self, calls: PublicCalls, *, max_body_bytes: int) -> None:
        self._calls = calls
        self._max_body_bytes = max_body_bytes

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = request_id(request.scope) or new_request_id(None)
        set_route_label(request.scope, _UNMATCHED_LABEL)
        try:
            if request.method not in CALL_METHODS:
                raise HTTPException(405, headers={"Allow": _ALLOW})
            prepared = await self._calls.prepare(
                request.scope["path"],
                raw_call_path(request.scope),
                key_from_headers(request.headers),
            )
            set_route_label(request.scope, prepared.label)
            if prepared.target.streaming:
                raise BadRequest(ERROR_ID, STREAMING_DETAIL)
            payload = await self._payload(request, prepared)
            metadata = await self._calls.upstream_metadata(prepared, rid)
            return await self._forward(prepared, payload, metadata, started, rid)
        except Refused as refused:
            return error_response(refused.error, refused.headers)
        except M3OError as error:
            return error_response(error)

    async def _payload(self, request: Request, prepared: Prepared) -> Payload:
        codec = prepared.codec
        descriptor = codec.request_descriptor
        body = await read_body(request, self._max_body_bytes, ERROR_ID)
        query = request.query_params.multi_items() if request.scope.get("query_string") else []
        if descriptor is not None and is_raw_request(descriptor):
            data = raw_request_data(
                descriptor,
                method=request.method,
                path=request.scope["path"],
                headers=request.headers.items(),
                query=query,
                body=body,
                url=str(request.url),
            )
        else:
            check_content_type(request.headers.get("content-type"), body, ERROR_ID)
            data = request_json(body, query, descriptor)
        return codec.from_json(data)

    async def _forward(
        self,
        prepared: Prepared,
        payload: Payload,
        metadata: dict[str, str],
        started: float,
        rid: str,
    ) -> Response:
        calls = self._calls
        admission = await calls.admit(prepared)
        try:
            answer = await calls.forwarders.unary(
                prepared.target, payload, metadata, calls.upstream_timeout
            )
            body = prepared.codec.to_json(answer)
        except asyncio.CancelledError:
            calls.release_later(admission)
            raise
        except Exception as exc:  # noqa: BLE001 - every upstream failure is released and mapped
            error = await calls.failed(prepared, admission, exc, rid)
            headers = admission.headers
            headers.pop("X-M3O-Price", None)
            return error_response(error, headers)
        if calls.charges_first:
            await calls.charge_first(
                prepared, admission, status=200, started=started, request_id=rid
            )
            return _JsonAnswer(body, admission.raw_headers)
        return _Answer(
            body,
            admission.raw_headers,
            charge=functools.partial(
                calls.charged, prepared, admission, status=200, started=started, request_id=rid
            ),
            release=functools.partial(calls.release_later, admission),
        )


class _JsonAnswer(Response):
    """A call's 200 with a JSON body and headers given in the form they are sent in:
    what Response's constructor makes of them, without encoding them again call after
    call."""

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [*headers, (b"content-length", b"%d" % len(body)), _JSON_TYPE]


class _Answer(_JsonAnswer):
    """A call's 200: the call is charged (committed in the background) once the answer
    has been handed to the server, released if it never was (cancelled, or the send
    failed), so that nothing is charged without its 200 having been sent."""

    def __init__(
        self,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        charge: Callable[[], None],
        release: Callable[[], None],
    ) -> None:
        super().__init__(body, headers)
        self._charge = charge
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            self._release()
            raise
        self._charge()
