"""Forwarding to an HTTP upstream: ``POST <address>/<Service>/<Method>`` with the JSON.

The response body of a 2xx answer is the response (an empty body is ``{}``). Any other
status is an error: an M3O error document keeps its id, kind and detail; otherwise the
kind follows the status and the detail is the start of the body (or the status phrase).
502, 503 and 504 mean the upstream is unavailable; other 5xx are crashes.

Unary calls only: streaming methods need a gRPC (or local) upstream.

The client is the gateway's own (``http_client``): HTTP/1.1 over kept-alive connections,
answers read by httptools. Forwarding is the gateway's hot path, and a general client's
per-call work was its largest part: aiohttp's client took about 75 µs of CPU a call (over a
third of the worker's time with checks off); this one takes about 15 µs, and the same
worker forwards 1.6 times as many calls a second (``benchmarks/gateway.py``,
README "Performance"). Measured before: httpx 520 calls/s against aiohttp's 3,700 with 32
connections; pyreqwest (Rust's reqwest on a thread of its own) cost the loop's thread a fifth
of aiohttp's time per call, but handing each answer back across threads left the gateway's
throughput within 5 % of aiohttp's and added 0.07 ms to a lone call. No cookies are kept,
no redirects followed, no proxy settings of the environment used.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from m3o.gateway.v1.http_client import (
    MAX_ANSWER_BYTES,
    AnswerTooLarge,
    HttpClient,
    UnusableUrl,
)
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


def http_failure(status: int, content: bytes) -> BaseException:
    """What a non-2xx answer (``status``, body ``content``) of an HTTP upstream raises."""
    if status in _UNAVAILABLE:
        return UpstreamUnreachable(str(status))
    documented = error_from_json(content) if content else None
    if documented is not None and 400 <= documented.code < 500:
        return documented
    if status >= 500 or status < 400:
        return Internal(ERROR_ID, f"upstream answered {status}")
    text = content.decode("utf-8", errors="replace")
    detail = text.strip()[:MAX_DETAIL] or _phrase(status)
    return _KINDS.get(status, BadRequest)(ERROR_ID, detail)


class HttpForwarder:
    """One HTTP client shared by every upstream (its connections are pooled per origin),
    made on the first call (it belongs to the running event loop) and closed by
    :meth:`close`."""

    def __init__(self, *, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._max_answer_bytes = max_answer_bytes
        self._http: HttpClient | None = None

    def _client(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(max_answer_bytes=self._max_answer_bytes)
        return self._http

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
            answer = await self._client().post(url, body, headers, timeout)
        except TimeoutError:
            raise UpstreamTimeout() from None
        except AnswerTooLarge as exc:  # the upstream's fault: a crash, as a 5xx would be
            raise Internal(ERROR_ID, str(exc)) from None
        except (OSError, UnusableUrl) as exc:
            raise UpstreamUnreachable(type(exc).__name__) from None
        status, content = answer.status, answer.body
        if not 200 <= status < 300:
            raise http_failure(status, content)
        return content or b"{}"

    async def open(
        self,
        target: Target,
        first: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> UpstreamStream:
        raise BadRequest(ERROR_ID, _STREAMING)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
