"""A small Starlette app with the public API's contract, served by uvicorn on a real port.

It answers like M3O's HTTP front: unary JSON at ``/v1/<api>/<endpoint>`` with an API key,
M3O's error JSON, websocket streams whose first text frame is the request and which close
with a code and reason on error, the key-management paths with a customer token, and
``/customers/login``. It records what it received so tests can assert on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from support.http_fakes import served

API_KEY = "m3o_fake-api-key-for-the-client-tests"
CUSTOMER_TOKEN = "fake.customer.jwt"
EMAIL = "dev@example.com"
PASSWORD = "correct horse battery staple"
APIS = ["helloworld", "streams"]

BALANCE = 20_010_000
LEDGER = [
    {"id": "a1", "created": "1764800000", "delta": "10000", "reference": "Promo credit"},
    {
        "id": "a2",
        "created": "1764800060",
        "delta": "20000000",
        "reference": "Credit added",
        "meta": {"charge_id": "ch_1", "receipt_url": "https://pay.stripe.com/receipts/ch_1"},
    },
]
"""The customer's ledger, oldest first, as ``balance/listAdjustments`` answers it."""

UNAUTHORIZED = {"id": "v1", "code": 401, "detail": "Unauthorized", "status": "Unauthorized"}
NO_SUCH_API = {"id": "v1", "code": 404, "detail": "No such API", "status": "Not Found"}
INSUFFICIENT_CREDIT = {
    "id": "v1.blocked",
    "code": 403,
    "detail": "Request blocked. Insufficient credit",
    "status": "Forbidden",
}


def error(code: int, error_id: str, detail: str, status: str) -> JSONResponse:
    body = {"id": error_id, "code": code, "detail": detail, "status": status}
    return JSONResponse(body, status_code=code, headers={"X-Request-Id": "req-123"})


@dataclass
class Received:
    """One HTTP request the fake got."""

    method: str
    path: str
    authorization: str
    content_type: str
    body: Any


@dataclass
class StreamSession:
    """One websocket the fake accepted: its path, auth, the frames it got, how it ended."""

    path: str
    authorization: str
    frames: list[Any] = field(default_factory=list)
    client_close_code: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class FakePlatform:
    address: str = ""
    received: list[Received] = field(default_factory=list)
    streams: list[StreamSession] = field(default_factory=list)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/customers/login", self._login, methods=["POST"]),
                Route("/v1/api/keys/generate", self._generate, methods=["POST"]),
                Route("/v1/api/keys/list", self._list, methods=["POST"]),
                Route("/v1/api/keys/revoke", self._revoke, methods=["POST"]),
                Route("/v1/api/apis/list", self._apis, methods=["POST"]),
                Route("/balance/current", self._balance, methods=["POST"]),
                Route("/balance/listAdjustments", self._adjustments, methods=["POST"]),
                Route("/v1/{api}/{rest:path}", self._call, methods=["POST"]),
                WebSocketRoute("/v1/{api}/{rest:path}", self._stream),
            ]
        )

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        body = orjson.loads(raw) if raw else None
        self.received.append(
            Received(
                request.method,
                request.url.path,
                request.headers.get("authorization", ""),
                request.headers.get("content-type", ""),
                body,
            )
        )
        return body

    # The platform API: customers/login.

    async def _login(self, request: Request) -> Response:
        body = await self._record(request)
        if body != {"email": EMAIL, "password": PASSWORD}:
            return error(401, "customers.login", "Invalid email or password", "Unauthorized")
        token = {"access_token": CUSTOMER_TOKEN, "refresh_token": "fake-refresh", "expiry": 9}
        return JSONResponse({"token": token, "namespace": "micro", "customer_id": "cust-1"})

    # The key-management paths, with a customer token.

    async def _customer(self, request: Request) -> tuple[Any, Response | None]:
        body = await self._record(request)
        if request.headers.get("authorization") != f"Bearer {CUSTOMER_TOKEN}":
            return None, JSONResponse(UNAUTHORIZED, status_code=401)
        return body, None

    async def _generate(self, request: Request) -> Response:
        body, refused = await self._customer(request)
        if refused is not None:
            return refused
        if not body.get("scopes"):
            return error(400, "v1.GenerateKey", "Missing scopes field", "Bad Request")
        if not body.get("description"):
            return error(400, "v1.GenerateKey", "Missing description field", "Bad Request")
        if any(scope not in [*APIS, "*"] for scope in body["scopes"]):
            detail = "Not allowed to generate a key with requested scopes"
            return error(403, "v1.GenerateKey", detail, "Forbidden")
        key_id = f"key-{len(self.keys) + 1}"
        self.keys[key_id] = {
            "id": key_id,
            "description": body["description"],
            "created_time": 1700000000,
            "scopes": body["scopes"],
            "status": "active",
        }
        return JSONResponse({"api_key": f"m3o_generated_{key_id}", "api_key_id": key_id})

    async def _list(self, request: Request) -> Response:
        _, refused = await self._customer(request)
        if refused is not None:
            return refused
        # Default values are omitted, as M3O's JSON mapping does: no keys is {}.
        return JSONResponse({"api_keys": list(self.keys.values())} if self.keys else {})

    async def _revoke(self, request: Request) -> Response:
        body, refused = await self._customer(request)
        if refused is not None:
            return refused
        if not body.get("id"):
            return error(400, "v1.RevokeKey", "Missing ID field", "Bad Request")
        if self.keys.pop(body["id"], None) is None:
            return error(404, "v1.RevokeKey", "Not found", "Not Found")
        return JSONResponse({})

    async def _apis(self, request: Request) -> Response:
        _, refused = await self._customer(request)
        if refused is not None:
            return refused
        return JSONResponse({"names": APIS})

    # The caller's balance and ledger; another customer's is refused.

    async def _balance(self, request: Request) -> Response:
        _, refused = await self._own_ledger(request, "balance.Current")
        return refused or JSONResponse({"current_balance": str(BALANCE)})

    async def _adjustments(self, request: Request) -> Response:
        body, refused = await self._own_ledger(request, "balance.ListAdjustments")
        if refused is not None:
            return refused
        offset, limit = int(body.get("offset", 0)), int(body.get("limit", 0)) or 100
        return JSONResponse({"adjustments": LEDGER[offset : offset + limit]})

    async def _own_ledger(self, request: Request, error_id: str) -> tuple[Any, Response | None]:
        body, refused = await self._customer(request)
        if refused is None and body.get("customer_id") not in (None, "", "cust-1"):
            refused = error(403, error_id, "Forbidden", "Forbidden")
        return body, refused

    # The public API, with an API key.

    async def _call(self, request: Request) -> Response:
        body = await self._record(request)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse(UNAUTHORIZED, status_code=401)
        api, rest = request.path_params["api"], request.path_params["rest"]
        route = f"{api}/{rest}".lower()
        if route in {"helloworld/call", "helloworld/helloworld/call"}:
            return JSONResponse({"message": f"Hello {body['name']}"})
        if route == "errors/raise":
            headers = {"X-Request-Id": "req-456", **body.get("headers", {})}
            return JSONResponse(body["error"], status_code=body["status"], headers=headers)
        if route == "errors/html":
            return Response("<html>Bad Gateway</html>", status_code=502, media_type="text/html")
        if route == "errors/notjson":
            return Response("surprise", media_type="text/plain")
        if route == "errors/list":
            return JSONResponse([1, 2])
        if route == "empty/call":
            return Response(b"", media_type="application/json")
        if route == "slow/call":
            await asyncio.sleep(body["seconds"])
            return JSONResponse({})
        return error(404, "v1", "No such API", "Not Found")

    async def _stream(self, websocket: WebSocket) -> None:
        authorization = websocket.headers.get("authorization", "")
        if authorization != f"Bearer {API_KEY}":
            await websocket.send_denial_response(JSONResponse(UNAUTHORIZED, status_code=401))
            return
        session = StreamSession(websocket.url.path, authorization)
        self.streams.append(session)
        await websocket.accept()
        try:
            request = orjson.loads(await websocket.receive_text())
            session.frames.append(request)
            route = websocket.url.path.lower().removeprefix("/v1/")
            await self._serve_stream(websocket, session, route, request)
        except WebSocketDisconnect as exc:
            session.client_close_code = exc.code
        finally:
            session.ended.set()

    async def _serve_stream(
        self, websocket: WebSocket, session: StreamSession, route: str, request: Any
    ) -> None:
        if route == "streams/subscribe":
            for count in range(request["count"]):
                await websocket.send_text(orjson.dumps({"count": count}).decode())
            await websocket.close()
        elif route == "streams/fail":
            await websocket.send_text(orjson.dumps({"count": 0}).decode())
            await websocket.close(4403, orjson.dumps(INSUFFICIENT_CREDIT).decode())
        elif route == "streams/close":
            await websocket.close(request["code"], request.get("reason", ""))
        elif route == "streams/binary":
            await websocket.send_bytes(orjson.dumps({"binary": True}))
            await websocket.send_bytes(b"\x00\x01 not json")
            await websocket.close()
        elif route == "streams/echo":
            while True:
                message = orjson.loads(await websocket.receive_text())
                session.frames.append(message)
                if message.get("end"):
                    await websocket.close()
                    return
                await websocket.send_text(orjson.dumps({"echo": message}).decode())
        else:
            # The reason's error JSON says NotFound; the close code (deliberately) says 400.
            await websocket.close(4400, orjson.dumps(NO_SUCH_API).decode())


@contextmanager
def serve(platform: FakePlatform) -> Iterator[FakePlatform]:
    """Serve the fake on a free port of 127.0.0.1, in a thread with its own event loop."""
    with served(platform.app(), ws="websockets-sansio") as url:
        platform.address = url
        yield platform
