"""Helpers of the mailchimp tests: a local fake of Mailchimp's Marketing API, accounts,
call contexts and the service under test."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.outbound import Retries
from m3o.services.mailchimp.audience import MailchimpAudience, MailchimpSettings
from m3o.services.mailchimp.handler import Mailchimp, Membership

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="signup", type="service", scopes=("service",))
ANN = Account(id="ann-0001", type="customer", scopes=("customer",))
BOB = Account(id="bob-0002", type="customer", scopes=("customer",))
API_KEY = "0123456789abcdef-us21"
LIST_ID = "list-1"
FAST = Retries(
    attempts=3, first_delay=timedelta(milliseconds=1), max_delay=timedelta(milliseconds=5)
)


def call(method: str, account: Account | None) -> CallContext:
    return CallContext(service="mailchimp", method=method, account=account)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: Any
    auth: tuple[str, str]


@dataclass
class MailchimpFake:
    """Records every request; answers each with the next of ``answers`` (status), then
    200 (a PUT) or 204 (a delete). ``delay`` seconds before answering (a slow server)."""

    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0

    async def endpoint(self, request: Request) -> Response:
        raw = await request.body()
        user, _, password = (
            base64.b64decode(request.headers.get("authorization", "Basic ")[6:])
            .decode()
            .partition(":")
        )
        self.received.append(
            Received(
                request.method,
                request.url.path,
                orjson.loads(raw) if raw else None,
                (user, password),
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answers:
            status = self.answers.pop(0)
            return JSONResponse({"status": status, "title": "scripted"}, status_code=status)
        if request.method == "PUT":
            return JSONResponse({"id": request.path_params["rest"].split("/")[-1]})
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/3.0/{rest:path}", self.endpoint, methods=["PUT", "POST", "GET"])]
        )


def audience(url: str, timeout: float = 5.0) -> MailchimpAudience:
    return MailchimpAudience(
        MailchimpSettings(
            api_key=API_KEY,
            list_id=LIST_ID,
            api_url=url,
            timeout=timedelta(seconds=timeout),
            retries=FAST,
        )
    )


def handler(membership: Membership) -> Mailchimp:
    return Mailchimp(membership=membership)
