"""The platform API: ``/<service>/<endpoint>`` and ``/<service>/<Handler>/<endpoint>``.

Each call is JSON transcoded to a unary RPC of a platform service through the
:class:`~m3o.runtime.rpc.Transport`. The gateway does not check tokens: it forwards
``Authorization: Bearer <jwt>`` as the call's ``authorization`` metadata, with
``x-request-id`` and ``x-client-address``, and the service's dispatcher authenticates the
caller and applies the access rules (so anonymous calls to non-public endpoints are 401).

Methods: POST (the usual; the body's fields win over the query's) and GET (the query
string is the request), as M3O's clients and docs use them. Other methods are 405 with
``Allow: GET, POST``. A body must be declared ``application/json`` (415 otherwise), nest at
most :data:`~m3o.gateway.payload.MAX_DEPTH` levels and hold no NUL (400): checked before
the request goes to the service, so before the caller is authenticated.

Server-streaming methods answer BadRequest ``Streaming endpoints are served over
websockets``: the platform API serves unary calls only (v1 streams over websockets).
"""

from __future__ import annotations

import orjson
from google.protobuf.message import Message
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from m3o.gateway.context import client_address, request_id, set_route_label
from m3o.gateway.payload import check_content_type, read_body, request_data
from m3o.gateway.routing import Endpoint, RouteTable
from m3o.runtime.errors import BadRequest, Internal, M3OError
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import INTERNAL_DETAIL, Transport
from m3o.runtime.rpc.jsonmap import dict_to_message, message_to_dict

__all__ = ["ALLOWED_METHODS", "STREAMING_DETAIL", "PlatformAPI"]

_log = get_logger(__name__)

ALLOWED_METHODS = frozenset({"POST", "GET"})
STREAMING_DETAIL = "Streaming endpoints are served over websockets"
_ALLOW = ", ".join(sorted(ALLOWED_METHODS))


class PlatformAPI:
    """The endpoint behind both platform API route shapes."""

    def __init__(
        self,
        routes: RouteTable,
        transport: Transport,
        *,
        max_body_bytes: int,
        call_timeout: float | None,
    ) -> None:
        self._routes = routes
        self._transport = transport
        self._max_body_bytes = max_body_bytes
        self._call_timeout = call_timeout

    def _metadata(self, request: Request) -> dict[str, str]:
        metadata = {
            "x-request-id": request_id(request.scope),
            "x-client-address": client_address(request.scope),
        }
        authorization = request.headers.get("authorization")
        if authorization and authorization[:7].lower() == "bearer ":
            metadata["authorization"] = authorization
        return metadata

    async def _request(self, request: Request, endpoint: Endpoint) -> Message:
        body = await read_body(request, self._max_body_bytes, endpoint.error_id)
        check_content_type(request.headers.get("content-type"), body, endpoint.error_id)
        query = request.scope.get("query_string", b"")
        data = request_data(
            body,
            request.query_params.multi_items() if query else [],
            endpoint.method.request_type,
            endpoint.error_id,
        )
        return dict_to_message(data, endpoint.method.request_type, endpoint.error_id)

    async def handle(self, request: Request) -> Response:
        params = request.path_params
        endpoint = self._routes.resolve(
            params["service"], params.get("handler"), params["endpoint"]
        )
        set_route_label(request.scope, endpoint.label)
        if request.method not in ALLOWED_METHODS:
            raise HTTPException(405, headers={"Allow": _ALLOW})
        if endpoint.streaming:
            raise BadRequest(endpoint.error_id, STREAMING_DETAIL)
        message = await self._request(request, endpoint)
        try:
            response = await self._transport.unary(
                endpoint.spec,
                endpoint.method,
                message,
                metadata=self._metadata(request),
                timeout=self._call_timeout,
            )
        except M3OError:
            raise
        except Exception as exc:  # noqa: BLE001 - a transport failure must not leak its text
            _log.error(
                "platform_api.call_failed",
                endpoint=endpoint.error_id,
                request_id=request_id(request.scope),
                exc_info=exc,
            )
            raise Internal(endpoint.error_id, INTERNAL_DETAIL) from None
        return Response(orjson.dumps(message_to_dict(response)), media_type="application/json")
