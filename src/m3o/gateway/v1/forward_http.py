"""Forwarding to an HTTP upstream: ``POST <address>/<Service>/<Method>`` with the JSON.

The response body of a 2xx answer is the response (an empty body is ``{}``). Any other
status is an error: an M3O error document keeps its id, kind and detail; otherwise the
kind follows the status and the detail is the start of the body (or the status phrase).
502, 503 and 504 mean the upstream is unavailable; other 5xx are crashes.

Unary calls only: streaming methods need a gRPC (or local) upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import httpx

from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.targets import Target
from m3o.gateway.v1.upstream import (
    Codec,
    JsonCodec,
    Payload,
    UpstreamStream,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    error_from_json,
)

__all__ = ["MAX_DETAIL", "HttpForwarder", "http_failure"]

MAX_DETAIL = 200
"""Characters of a plain-text error body passed on as the detail."""

_STREAMING = "Streaming endpoints need a gRPC upstream"
_KINDS: dict[int, type[M3OError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: TooManyRequests,
}
_UNAVAILABLE = frozenset({502, 503, 504})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def http_failure(response: httpx.Response) -> BaseException:
    """What a non-2xx answer of an HTTP upstream raises in the gateway."""
    status = response.status_code
    if status in _UNAVAILABLE:
        return UpstreamUnreachable(str(status))
    documented = error_from_json(response.content) if response.content else None
    if documented is not None and 400 <= documented.code < 500:
        return documented
    if status >= 500 or status < 400:
        return Internal(ERROR_ID, f"upstream answered {status}")
    detail = response.text.strip()[:MAX_DETAIL] or _phrase(status)
    return _KINDS.get(status, BadRequest)(ERROR_ID, detail)


class HttpForwarder:
    """``client`` is shared by every upstream (its pool is per host); it is closed by
    :meth:`close` when this forwarder made it."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            follow_redirects=False,
        )

    def codec(self, target: Target) -> Codec:
        pool = target.entry.pool
        descriptor = None
        if pool is not None and target.request_type:
            try:
                descriptor = pool.FindMessageTypeByName(target.request_type)
            except KeyError:
                descriptor = None
        return JsonCodec(descriptor)

    async def unary(
        self,
        target: Target,
        request: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Payload:
        body = request if isinstance(request, bytes) else request.SerializeToString()
        url = f"{target.address.rstrip('/')}/{target.handler}/{target.method}"
        headers = {**metadata, "content-type": "application/json"}
        try:
            response = await self._client.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise UpstreamTimeout() from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(type(exc).__name__) from None
        if not response.is_success:
            raise http_failure(response)
        return response.content or b"{}"

    async def open(
        self,
        target: Target,
        first: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> UpstreamStream:
        raise BadRequest(ERROR_ID, _STREAMING)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
