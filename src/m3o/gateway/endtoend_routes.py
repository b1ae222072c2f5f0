"""``/endtoend/check`` and ``/endtoend/mailin``: the end-to-end check's raw HTTP routes.

- ``GET|POST /endtoend/check`` (public, for uptime monitors): 200 ``{}`` when the last run
  passed and finished within ``endtoend.max_age``, else 500 in M3O's error format with the
  last run's error or ``No recent successful check``.
- ``POST /endtoend/mailin`` (public, for cloudmailin's "JSON normalized" posts): the body
  goes untouched, unparsed, to ``Endtoend.Mailin`` with the shared secret, taken from the
  ``secret`` query parameter or the password of HTTP Basic auth (cloudmailin can put it
  only in the target URL: ``https://api.example.com/endtoend/mailin?secret=...`` or
  ``https://mailin:<secret>@api.example.com/endtoend/mailin``). A wrong or missing secret
  is 401; any other mail is 200, even when it is not JSON or too large (it is then
  ignored), so that it does not bounce.

Both call the endtoend service with the front's own ``gateway`` account; the secret is
checked there, where the config holds it. The access log never shows query strings.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.gateway.http_errors import error_response
from m3o.gateway.payload import PayloadTooLarge, read_body
from m3o.runtime.errors import Internal
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from m3o.services.endtoend.proto.client import EndtoendService

__all__ = ["CHECK_PATH", "MAILIN_PATH", "endtoend_routes"]

CHECK_PATH = "/endtoend/check"
MAILIN_PATH = "/endtoend/mailin"
_CHECK_ID = "endtoend.check"
_MAILIN_ID = "endtoend.mailin"


def _basic_password(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def endtoend_routes(
    endtoend: EndtoendService, *, max_body_bytes: int, timeout: float | None
) -> list[Route]:
    """The two routes, calling ``endtoend`` (a client with the gateway's credentials)."""

    async def check(request: Request) -> Response:
        answer = await endtoend.check(pb.CheckRequest(), timeout=timeout)
        if answer.healthy:
            return JSONResponse({})
        return error_response(Internal(_CHECK_ID, answer.detail))

    async def mailin(request: Request) -> Response:
        secret = request.query_params.get("secret") or _basic_password(request)
        too_large = False
        try:
            body = await read_body(request, max_body_bytes, _MAILIN_ID)
        except PayloadTooLarge:
            body, too_large = b"", True
        await endtoend.mailin(
            pb.MailinRequest(body=body, secret=secret, too_large=too_large), timeout=timeout
        )
        return JSONResponse({})

    return [
        Route(CHECK_PATH, check, methods=["GET", "POST"]),
        Route(MAILIN_PATH, mailin, methods=["POST"]),
    ]
