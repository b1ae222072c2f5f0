"""Helpers of the alerts tests: accounts and call contexts, local fakes of Slack's Web API
and of a Discord webhook (each records exactly what it received), and the handler under
test pointed at them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.outbound import Retries
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.collapse import Collapser
from m3o.services.alerts.destinations import Destination, DiscordWebhook, SlackChannel
from m3o.services.alerts.handler import Alerts
from m3o.services.alerts.proto import alerts_pb2 as pb

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="stripe", type="service", scopes=("service",))
ANN = Account(id="ann", type="customer", scopes=("customer",), name="ann@example.com")
BOB = Account(id="bob", type="customer", scopes=("customer",), name="bob@example.com")
ROLES: dict[str, Account | None] = {
    "customer": ANN,
    "other customer": BOB,
    "admin": ADMIN,
    "service": SERVICE,
    "anonymous": None,
}

SLACK_TOKEN = "xoxb-test-token"
DISCORD_PATH = "/api/webhooks/123/discord-secret"
FAST = Retries(
    attempts=3, first_delay=timedelta(milliseconds=1), max_delay=timedelta(milliseconds=5)
)
"""Three tries, without waiting long between them."""


def call(method: str, account: Account | None = SERVICE) -> CallContext:
    metadata = {} if account is None else {"authorization": f"Bearer {account.id}-token"}
    return CallContext(service="alerts", method=method, account=account, metadata=metadata)


def event(**fields: Any) -> pb.ReportEventRequest:
    values: dict[str, Any] = {"category": "panic", "action": "/v1/helloworld/call"}
    values.update(fields)
    return pb.ReportEventRequest(event=pb.Event(**values))


@dataclass
class Received:
    path: str
    authorization: str
    content_type: str
    body: dict[str, Any]
    connection: str
    """The sender's address and port: one per connection it opened."""


@dataclass
class FakeHook:
    """A fake HTTP API answering one path: it records each request, answers the queued
    ``(status, body)`` in order (then ``ok``), and waits ``delay`` seconds first if set."""

    path: str
    ok: tuple[int, Any]
    token: str = ""
    """When set, a request without ``Authorization: Bearer <token>`` gets Slack's
    ``invalid_auth``."""
    answers: list[tuple[int, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.path, self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self._lock:
            self.received.append(
                Received(
                    path=request.url.path,
                    authorization=request.headers.get("authorization", ""),
                    content_type=request.headers.get("content-type", ""),
                    body=body,
                    connection=f"{request.client.host}:{request.client.port}"
                    if request.client
                    else "",
                )
            )
            status, answer = self.answers.pop(0) if self.answers else self.ok
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow server, not a synchronisation
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if answer is None:
            return Response(status_code=status)
        return JSONResponse(answer, status_code=status)


def slack_fake() -> FakeHook:
    return FakeHook("/api/chat.postMessage", (200, {"ok": True}), token=SLACK_TOKEN)


def discord_fake() -> FakeHook:
    return FakeHook(DISCORD_PATH, (204, None))


OPENED: list[Destination] = []
"""The destinations the helpers below made, closed after each test (conftest)."""


def slack_at(base_url: str, timeout: timedelta = timedelta(seconds=5)) -> SlackChannel:
    slack = SlackChannel(
        token=SLACK_TOKEN,
        channel="ops-alerts",
        user_name="M3O Alerts",
        timeout=timeout,
        retries=FAST,
        base_url=f"{base_url}/api/",
    )
    OPENED.append(slack)
    return slack


def discord_at(base_url: str, timeout: timedelta = timedelta(seconds=5)) -> DiscordWebhook:
    discord = DiscordWebhook(webhook=f"{base_url}{DISCORD_PATH}", timeout=timeout, retries=FAST)
    OPENED.append(discord)
    return discord


def alerts(
    sessions: SessionFactory,
    counters: CounterStore,
    destinations: Sequence[Destination],
    *,
    window: timedelta = timedelta(minutes=5),
    blocklist: Sequence[str] = (),
) -> Alerts:
    return Alerts(
        sessions=sessions,
        collapser=Collapser(counters, window),
        destinations=destinations,
        blocklist=blocklist,
    )


class Recorder:
    """A destination that records the texts it is given."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.texts: list[str] = []

    async def post(self, text: str) -> None:
        self.texts.append(text)
